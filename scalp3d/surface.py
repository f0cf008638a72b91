"""From a scan to the head surface the plan is made on: a clean triangle mesh in mm, in the scan's own axes.

Meshes are merged, cleaned of degenerate and duplicate faces, reduced to their largest part, given outward winding
and split until no edge is longer than ``max_edge_mm``. Point clouds get normals pointing away from their centre,
a Poisson reconstruction (open3d) and a trim of the low-support surface the reconstruction invents far from any point.
"""
from __future__ import annotations

import numpy as np

from . import config
from .errors import GeometryError
from .placement import vertex_normals_of
from .types import Head, Scan


def _clean_mesh(vertices, faces, notes):
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=True, validate=True)
    if len(mesh.faces) == 0:
        raise GeometryError("the scan has no usable triangles (all degenerate); re-export it")
    parts = mesh.split(only_watertight=False, repair=False)
    if len(parts) > 1:
        areas = np.array([p.area for p in parts])
        mesh = parts[int(np.argmax(areas))]
        notes.append(f"kept the largest of {len(parts)} parts ({areas.max() / areas.sum():.1%} of the area)")
    trimesh.repair.fix_winding(mesh)
    trimesh.repair.fix_inversion(mesh)
    return mesh


def _poisson(scan: Scan, notes):
    import open3d as o3d

    pts = scan.vertices
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    spacing = float(np.median(np.asarray(pc.compute_nearest_neighbor_distance())))
    if scan.normals is not None and len(scan.normals) == len(pts):
        pc.normals = o3d.utility.Vector3dVector(scan.normals)
    else:
        pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=30))
    nrm = np.asarray(pc.normals)
    flip = ((pts - pts.mean(axis=0)) * nrm).sum(axis=1) < 0
    nrm[flip] *= -1
    pc.normals = o3d.utility.Vector3dVector(nrm)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
            pc, depth=config.POISSON_DEPTH, linear_fit=True)
    density = np.asarray(density)
    mesh.remove_vertices_by_mask(density < np.quantile(density, config.POISSON_TRIM_QUANTILE))
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.triangles, dtype=np.int64)
    # trim what the reconstruction invented far from any scanned point
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pts).query(v)
    keep_v = d < max(3.0 * spacing, 2.0)
    f = f[keep_v[f].all(axis=1)]
    notes.append(f"meshed {len(pts)} points by Poisson reconstruction (depth {config.POISSON_DEPTH}, "
                 f"point spacing {spacing:.2f} mm)")
    return v, f


def make_head(scan: Scan, *, max_edge_mm: float = config.SURFACE_MAX_EDGE_MM) -> Head:
    """Build the head surface from a loaded scan (mm).

    Returns
    -------
    Head with vertices (n,3) float64 mm, faces (m,3) int64, unit outward vertex normals.
    """
    import trimesh

    notes = []
    if scan.is_point_cloud:
        v, f = _poisson(scan, notes)
    else:
        v, f = scan.vertices, scan.faces
    mesh = _clean_mesh(v, f, notes)
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)
    edges = np.linalg.norm(v[f[:, [1, 2, 0]]] - v[f], axis=2)
    if edges.max() > max_edge_mm:
        v, f = trimesh.remesh.subdivide_to_size(v, f, max_edge=max_edge_mm, max_iter=12)
        notes.append(f"split faces to edges of at most {max_edge_mm} mm")
    v = np.ascontiguousarray(v, dtype=np.float64)
    f = np.ascontiguousarray(f, dtype=np.int64)
    vn = vertex_normals_of(v, f)
    # outward: normals point away from the centre on average
    if ((v - v.mean(axis=0)) * vn).sum() < 0:
        f = f[:, ::-1].copy()
        vn = -vn
    colors = None
    if scan.colors is not None and len(scan.colors) == len(scan.vertices):
        from scipy.spatial import cKDTree

        # every head vertex takes the colour of the nearest scan point (meshes, clouds, split faces alike)
        _, near = cKDTree(scan.vertices).query(v, workers=-1)
        colors = np.ascontiguousarray(scan.colors[near, :3], dtype=np.uint8)
    return Head(vertices=v, faces=f, vertex_normals=vn, source=scan.path, notes=notes, colors=colors)


def principal_curvatures(head: Head) -> np.ndarray:
    """Per-vertex principal curvatures (n,2) [k1, k2], k1 >= k2, in 1/mm (1/R on a sphere of radius R).

    From :func:`scalp3d.kernels.curvature.principal_curvatures`; for the design (e.g. thinning dots where the skin bends
    sharply) and the checks.
    """
    from scalp3d.kernels.curvature import principal_curvatures as _k, vertex_neighbours

    ip, ix = vertex_neighbours(len(head.vertices), head.faces)
    return _k(np.ascontiguousarray(head.vertices), np.ascontiguousarray(head.vertex_normals), ip, ix)
