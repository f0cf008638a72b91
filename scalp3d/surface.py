"""From a scan to the head surface the plan is made on: a clean triangle mesh in mm, in the scan's own axes.

Steps (each timed in the head's ``report``):

* **point clouds**: thinned to ``CLOUD_SPACING_MM`` (voxel means: the scanner's noise averages out), statistical
  outliers removed, normals estimated and oriented consistently (on a coarse copy, carried to every point, outward
  overall), Poisson reconstruction (open3d) at an octree depth chosen from the spacing; surface farther than
  ``SUPPORT_SPACINGS`` spacings from every point is not measured;
* **meshes**: duplicate vertices merged, degenerate and duplicate faces and non-manifold edges removed, the largest
  part kept, winding made consistent; very dense scans decimated (quadric) first;
* **crop**: in the landmarks' head frame, everything below the neck (the narrowest section below the tragi, less a
  margin) is cut away: shoulders, background and stray pieces go;
* **holes**: gaps in the skin up to ``HOLE_MAX_AREA_CM2`` are filled smoothly (Poisson's own surface for clouds; a
  thin-plate fill for meshes) and their vertices marked ``filled`` (not measured) so the summary and the previews can
  show them; larger gaps stay open and are reported;
* **remesh**: isotropic remeshing (Botsch and Kobbelt, via gpytoolbox) to ``REMESH_EDGE_MM``, projected on the
  surface;
* **report**: units, points and vertices in and out, holes filled and their area, deviation of the final surface from
  the input points (median, p95, max), time per step.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from . import config
from .errors import GeometryError, InputError
from .meshes import face_areas, random_samples, vertex_normals_of
from .progress import Timer
from .types import Head, Landmarks, Scan


def make_head(scan: Scan, *, edge_mm: float = config.REMESH_EDGE_MM, landmarks=None, crop: bool = True,
              remesh: bool = True, progress=None) -> Head:
    """Build the head surface from a loaded scan (mm).

    Parameters
    ----------
    scan : Scan, in mm (see :func:`scalp3d.scan.load_scan`)
    edge_mm : target edge length of the isotropic remeshing
    landmarks : Landmarks or dict with nasion, lpa, rpa (mm, scan axes), optional: the frame for the neck cut
        (estimated when missing; when it cannot be estimated, nothing is cut and a note says so)
    crop, remesh : switch those steps off
    progress : callable taking a line, optional: told of every step (never written into the report)

    Returns
    -------
    Head with vertices (n,3) float64 mm, faces (m,3) int64, unit outward vertex normals, ``filled`` (n,) bool,
    colours when the scan has them, ``notes`` and ``report``.
    """
    report = {"units": scan.units_reason, "points_in": int(len(scan.vertices)),
              "faces_in": 0 if scan.faces is None else int(len(scan.faces))}
    step = Timer(progress, prefix="surface: ", stages=report.setdefault("steps_s", {}), digits=3)
    notes = []
    first_mesh = _mesh_of_cloud if scan.is_point_cloud else _mesh_of_mesh
    v, f, unsupported, reference = first_mesh(scan, report, notes, step)
    opening = cut = None
    if crop:
        with step("crop"):
            v, f, unsupported, opening, cut = _crop_below_neck(v, f, unsupported, landmarks, report, notes)
    with step("holes"):
        v, f, filled_f = _close_holes(v, f, unsupported, opening, scan.is_point_cloud, report, notes)
    v, f, filled = _remesh_and_smooth(v, f, filled_f, edge_mm, remesh, scan.is_point_cloud, notes, step)
    v = np.ascontiguousarray(v, dtype=np.float64)
    f = np.ascontiguousarray(f, dtype=np.int64)
    if len(f) == 0:
        raise GeometryError(f"{scan.path}: nothing of the head is left after cleaning; check the scan")
    f, vn = _outward(v, f)
    colors = _scan_colours(scan, v)
    with step("deviation"):
        report["deviation_mm"] = _deviation(v, f, _measured_reference(reference, cut, v), filled)
    report["vertices_out"] = int(len(v))
    report["faces_out"] = int(len(f))
    report["filled_vertices"] = int(filled.sum())
    return Head(vertices=v, faces=f, vertex_normals=vn, source=scan.path, notes=notes, colors=colors,
                filled=filled, report=report)


class _NeckCut(NamedTuple):
    """The plane of the neck cut: the surface kept lies where ``(p - origin) @ up > height`` (mm, scan axes)."""

    origin: np.ndarray  # (3,) mm: the head frame's origin, midway between the preauricular points
    up: np.ndarray  # (3,) unit: the vertical the sections were cut square to
    height: float  # mm along ``up`` from ``origin`` (negative: below the tragi)


def _mesh_of_cloud(scan, report, notes, step):
    """A point cloud meshed: (vertices (n,3) mm, faces (m,3), unsupported (n,) bool: farther than
    ``config.SUPPORT_SPACINGS`` spacings from every point, reference points (k,3) mm for the deviation).

    Outliers removed, normals oriented, Poisson reconstruction; what it invented over large gaps (the open bottom,
    the background) goes before the crop, then the most head-like part is kept."""
    with step("outliers"):
        pts, nrm, spacing = _clean_points(scan, report)
    with step("normals"):
        nrm = _oriented_normals(pts, nrm, spacing)
    with step("poisson"):
        v, f = _poisson(pts, nrm, spacing, report)
    notes.append(f"meshed {len(pts):,} points (spacing {spacing:.2f} mm) by Poisson reconstruction, depth "
                 f"{report['poisson_depth']}")
    from scipy.spatial import cKDTree

    with step("support"):
        support, _ = cKDTree(pts).query(v, workers=-1)
        unsupported = support > config.SUPPORT_SPACINGS * max(spacing, config.SUPPORT_MIN_SPACING_MM)
        f, _ = _keep_small_unsupported(v, f, unsupported, report, border_too=False)
        v, f, unsupported = _compact(v, f, unsupported)
    with step("head part"):
        v, f, unsupported = _head_part(v, f, unsupported, notes)
    return v, f, unsupported, pts


def _mesh_of_mesh(scan, report, notes, step):
    """A scanned mesh made clean: (vertices (n,3) mm, faces (m,3), unsupported (n,) bool, all False, reference
    points (k,3) mm: the scan's vertices).

    Repaired, decimated (quadric) above ``config.DECIMATE_ABOVE_FACES`` faces, the most head-like part kept."""
    with step("repair"):
        v, f = _repair(scan.vertices, scan.faces, notes, where=scan.path)
    if len(f) > config.DECIMATE_ABOVE_FACES:
        with step("decimate"):
            v, f = _decimate(v, f, config.DECIMATE_ABOVE_FACES // 2)
            notes.append(f"decimated to {len(f):,} faces")
    unsupported = np.zeros(len(v), bool)
    with step("head part"):
        v, f, unsupported = _head_part(v, f, unsupported, notes)
    return v, f, unsupported, scan.vertices


def _close_holes(v, f, unsupported, opening, is_cloud, report, notes):
    """Holes closed and the largest part kept: (vertices, faces, filled (m,) bool per face).

    A cloud keeps Poisson's own surface over small unsupported patches (larger ones and non-manifold faces go, the
    pinholes left are closed); a mesh has its small border loops fan-filled, except the neck cut's ``opening`` (n,)
    bool, or None."""
    if is_cloud:
        f, filled_f = _keep_small_unsupported(v, f, unsupported, report)
        keep = _manifold_faces(v, f)
        report["non_manifold_faces_removed"] = int((~keep).sum())
        v, f, filled_f = _fill_tiny_holes(v, f[keep], filled_f[keep])
    else:
        v, f, filled_f = _fill_holes(v, f, report, opening)
    return _largest_part(v, f, filled_f, notes)


def _remesh_and_smooth(v, f, filled_f, edge_mm, remesh, is_cloud, notes, step):
    """(vertices, faces, filled (n,) bool per vertex): remeshed to ``edge_mm`` edges unless ``remesh`` is off (or
    nothing is left); on a mesh, the filled vertices then placed by a thin-plate fit to the skin around them."""
    if remesh and len(f) > 0:
        with step("remesh"):
            v, f, filled = _remesh(v, f, filled_f, edge_mm)
            notes.append(f"remeshed to {edge_mm:g} mm edges")
    else:
        filled = np.zeros(len(v), bool)
        filled[np.unique(f[filled_f])] = True
    if not is_cloud and filled.any():
        with step("smooth fill"):
            v = _thin_plate(v, f, filled)
    return v, f, filled


def _outward(v, f):
    """(faces, unit vertex normals (n,3)) wound so that the normals point away from the centre on average."""
    vn = vertex_normals_of(v, f)
    if ((v - v.mean(axis=0)) * vn).sum() < 0:
        f = f[:, ::-1].copy()
        vn = -vn
    return f, vn


def _scan_colours(scan, v):
    """(n,3) uint8 colours of the head's vertices ``v`` (n,3): each takes the colour of the nearest scan point
    (meshes, clouds, remeshed alike); None when the scan has no colours."""
    if scan.colors is None or len(scan.colors) != len(scan.vertices):
        return None
    from scipy.spatial import cKDTree

    _, near = cKDTree(scan.vertices).query(v, workers=-1)
    return np.ascontiguousarray(scan.colors[near, :3], dtype=np.uint8)


def _measured_reference(reference, cut, v):
    """The input points (k,3) mm the deviation is measured on: those above the neck ``cut`` (a :class:`_NeckCut`, or
    None), which cut the rest away on purpose, and within the head's box plus ``config.DEVIATION_BOX_MARGIN_MM``
    (the background and stray pieces were removed on purpose too)."""
    reference = np.asarray(reference)
    if cut is not None:
        reference = reference[(reference - cut.origin) @ cut.up > cut.height]
    lo, hi = v.min(axis=0) - config.DEVIATION_BOX_MARGIN_MM, v.max(axis=0) + config.DEVIATION_BOX_MARGIN_MM
    return reference[((reference >= lo) & (reference <= hi)).all(axis=1)]


# --- point clouds --------------------------------------------------------------------------------------------------

def _clean_points(scan, report):
    """Voxel means at CLOUD_SPACING_MM (with their mean normals), then statistical outlier removal."""
    import open3d as o3d

    pts = np.asarray(scan.vertices, dtype=np.float64)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    have_normals = scan.normals is not None and len(scan.normals) == len(pts)
    if have_normals:
        pc.normals = o3d.utility.Vector3dVector(np.asarray(scan.normals, dtype=np.float64))
    n_est = config.SPACING_ESTIMATE_POINTS
    raw = np.asarray(pc.compute_nearest_neighbor_distance()) if len(pts) <= n_est else \
        np.asarray(pc.random_down_sample(n_est / len(pts)).compute_nearest_neighbor_distance())
    spacing_in = float(np.median(raw)) if len(raw) else 1.0
    if spacing_in < config.CLOUD_SPACING_MM:
        pc = pc.voxel_down_sample(config.CLOUD_SPACING_MM)
    n_thin = len(pc.points)
    pc, _ = pc.remove_statistical_outlier(config.OUTLIER_NEIGHBOURS, config.OUTLIER_STD_RATIO)
    if len(pc.points) < config.MIN_SCAN_POINTS:
        raise GeometryError(f"{scan.path}: only {len(pc.points)} points are left after removing outliers; "
                            "the scan is too sparse or too noisy for a head")
    spacing = max(spacing_in, config.CLOUD_SPACING_MM)
    report.update({"point_spacing_in_mm": round(spacing_in, 3), "points_thinned": int(n_thin),
                   "outliers_removed": int(n_thin - len(pc.points)), "points_used": int(len(pc.points))})
    nrm = np.asarray(pc.normals) if have_normals else None
    return np.asarray(pc.points), nrm, spacing


def _oriented_normals(pts, nrm, spacing):
    """Unit normals consistently oriented: propagated over a coarse copy's tangent planes (open3d), then outward
    overall; each point takes the orientation of its nearest coarse point."""
    import open3d as o3d
    from scipy.spatial import cKDTree

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    if nrm is None or not np.isfinite(nrm).all() or (np.linalg.norm(nrm, axis=1) < 0.5).any():
        pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=config.NORMAL_NEIGHBOURS))
        nrm = np.asarray(pc.normals).copy()
        given = False
    else:
        nrm = nrm / np.linalg.norm(nrm, axis=1, keepdims=True)
        given = True
    coarse = pc.voxel_down_sample(max(config.ORIENT_SPACING_MM, 2 * spacing))
    coarse.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=config.ORIENT_NORMAL_NEIGHBOURS))
    cn_pts = np.asarray(coarse.points)
    if len(cn_pts) >= config.ORIENT_MIN_POINTS:
        coarse.orient_normals_consistent_tangent_plane(config.ORIENT_GRAPH_NEIGHBOURS)
    cn = np.asarray(coarse.normals)
    if ((cn_pts - cn_pts.mean(axis=0)) * cn).sum() < 0:
        cn = -cn
    _, near = cKDTree(cn_pts).query(pts, workers=-1)
    if not given:
        flip = (nrm * cn[near]).sum(axis=1) < 0
        nrm[flip] *= -1
    elif ((pts - pts.mean(axis=0)) * nrm).sum() < 0:
        nrm = -nrm
    return nrm


def _poisson(pts, nrm, spacing, report):
    import open3d as o3d

    extent = float((pts.max(axis=0) - pts.min(axis=0)).max())
    lo, hi = config.POISSON_DEPTH_RANGE
    depth = int(np.clip(np.ceil(np.log2(max(extent / spacing, 2.0))), lo, hi))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pc.normals = o3d.utility.Vector3dVector(nrm)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pc, depth=depth, linear_fit=True,
                                                                                  n_threads=1)
    report["poisson_depth"] = depth
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64)


def _keep_small_unsupported(v, f, unsupported, report, border_too=True):
    """Faces the points do not support: small enclosed patches stay (holes filled by the reconstruction, marked);
    patches larger than HOLE_MAX_AREA_CM2 go, and (``border_too``) those touching the border. Returns (faces,
    filled face mask)."""
    bad = unsupported[f].all(axis=1)
    holes, removed = [], list(report.get("unsupported_removed_cm2", []))
    keep = np.ones(len(f), bool)
    filled = np.zeros(len(f), bool)
    if bad.any():
        border = _boundary_vertices(f, len(v))
        areas = face_areas(v, f)
        for comp in _face_components(f, bad):
            area_cm2 = float(areas[comp].sum() / 100.0)
            if (border_too and border[f[comp]].any()) or area_cm2 > config.HOLE_MAX_AREA_CM2:
                keep[comp] = False
                removed.append(round(area_cm2, 2))
            else:
                filled[comp] = True
                holes.append(round(area_cm2, 2))
    report["holes_filled_cm2"] = sorted(holes, reverse=True)
    report["unsupported_removed_cm2"] = sorted(removed, reverse=True)
    return f[keep], filled[keep]


# --- meshes --------------------------------------------------------------------------------------------------------

def _repair(vertices, faces, notes, where="the scan"):
    """Merged duplicate vertices, no degenerate or duplicate faces, no non-manifold edges, consistent winding."""
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
                                  o3d.utility.Vector3iVector(np.asarray(faces, dtype=np.int32)))
    n_v, n_f = len(m.vertices), len(m.triangles)
    m.remove_duplicated_vertices()
    m.remove_degenerate_triangles()
    m.remove_duplicated_triangles()
    m.remove_non_manifold_edges()
    m.remove_unreferenced_vertices()
    v, f = np.asarray(m.vertices), np.asarray(m.triangles, dtype=np.int64)
    if len(f) == 0:
        raise GeometryError(f"{where}: the scan has no usable triangles (all degenerate); re-export it")
    area = face_areas(v, f)
    f = f[area > 1e-12]
    if len(f) < n_f or len(v) < n_v:
        notes.append(f"repaired: {n_v - len(v):,} duplicate or unused vertices, {n_f - len(f):,} degenerate, "
                     "duplicate or non-manifold faces removed")
    import trimesh

    mesh = trimesh.Trimesh(v, f, process=False)
    trimesh.repair.fix_winding(mesh)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)


def _decimate(v, f, target):
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))
    m = m.simplify_quadric_decimation(int(target))
    m.remove_unreferenced_vertices()
    return np.asarray(m.vertices), np.asarray(m.triangles, dtype=np.int64)


def _fill_holes(v, f, report, opening=None):
    """Fan-fill every border loop of at most HOLE_MAX_AREA_CM2 except the scan's opening: the loops through
    ``opening`` vertices (the neck cut) or, without a cut, the longest loop when it is too large to fill. Returns
    (vertices, faces, filled face mask)."""
    loops = _boundary_loops(f)
    report["holes_filled_cm2"], report["holes_left_open_cm2"] = [], []
    if not loops:
        return v, f, np.zeros(len(f), bool)
    perim = [float(np.linalg.norm(v[np.roll(lp, -1)] - v[lp], axis=1).sum()) for lp in loops]
    longest = int(np.argmax(perim))
    new_v, new_f, holes, left = [v], [f], [], []
    n = len(v)
    for k, lp in enumerate(loops):
        if opening is not None and opening[lp].any():
            continue
        p = v[lp]
        c = p.mean(axis=0)
        area_cm2 = 0.5 * float(np.linalg.norm(np.cross(p - c, np.roll(p, -1, axis=0) - c).sum(axis=0))) / 100.0
        if area_cm2 > config.HOLE_MAX_AREA_CM2:
            if not (opening is None and k == longest):
                left.append(round(area_cm2, 2))
            continue
        # loops run along the border edges as the faces have them (a -> b); new faces run b -> a
        new_v.append(c[None])
        new_f.append(np.column_stack([np.roll(lp, -1), lp, np.full(len(lp), n)]))
        n += 1
        holes.append(round(area_cm2, 2))
    report["holes_filled_cm2"] = sorted(holes, reverse=True)
    report["holes_left_open_cm2"] = sorted(left, reverse=True)
    v2, f2 = np.vstack(new_v), np.vstack(new_f)
    filled = np.zeros(len(f2), bool)
    filled[len(f):] = True
    return v2, f2, filled


def _fill_tiny_holes(v, f, filled_f, max_loop=config.PINHOLE_MAX_EDGES):
    """Close pinholes (border loops of at most ``max_loop`` edges) left where non-manifold bits were cut out."""
    tiny = [lp for lp in _boundary_loops(f) if len(lp) <= max_loop]
    if not tiny:
        return v, f, filled_f
    new_v, new_f, n = [v], [f], len(v)
    for lp in tiny:
        new_v.append(v[lp].mean(axis=0)[None])
        new_f.append(np.column_stack([np.roll(lp, -1), lp, np.full(len(lp), n)]))
        n += 1
    f2 = np.vstack(new_f)
    return np.vstack(new_v), f2, np.concatenate([filled_f, np.zeros(len(f2) - len(f), bool)])


def _boundary_loops(f):
    """Closed loops of border edges, each an array of vertex ids in the faces' edge direction.

    Not gpytoolbox's boundary_loops: it finds the same loops but starts and orders them differently (the fill's new
    vertices, and so the head, would be numbered differently), needs a connected manifold mesh (it fails on the
    pinholes of a Poisson mesh of the real head's points) and was 2.2 times slower (1.65 s against 0.74 s, summed over
    make_head on the real head's mesh, a cloud of its points and a test cap)."""
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = e[:, 0] * (f.max() + 1) + e[:, 1]
    rev = e[:, 1] * (f.max() + 1) + e[:, 0]
    border = e[~np.isin(key, rev)]
    nxt = {}
    for a, b in border.tolist():
        nxt.setdefault(a, b)
    loops, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        lp, a = [], start
        while a not in seen and a in nxt:
            seen.add(a)
            lp.append(a)
            a = nxt[a]
        if len(lp) >= 3 and a == start:
            loops.append(np.array(lp, dtype=np.int64))
    return loops


def _thin_plate(v, f, filled):
    """Filled vertices placed by a discrete thin-plate fit (cotangent bi-Laplacian = 0) to the measured skin
    around them, so a fill continues the head's curvature instead of sagging flat."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    from gpytoolbox import cotangent_laplacian, massmatrix

    L = cotangent_laplacian(v, f.astype(np.int32)).tocsr()
    M = massmatrix(v, f.astype(np.int32)).tocsr()
    L2 = (L @ sp.diags(1.0 / np.maximum(M.diagonal(), 1e-12)) @ L).tocsr()
    u = np.flatnonzero(filled)
    k = np.flatnonzero(~filled)
    rhs = -L2[u][:, k] @ v[k]
    out = v.copy()
    sol = spsolve(L2[u][:, u].tocsc(), rhs)
    out[u] = sol.reshape(len(u), 3)
    return out


# --- both ----------------------------------------------------------------------------------------------------------

def _crop_below_neck(v, f, unsupported, landmarks, report, notes):
    """Cut everything below the neck in the head frame (from ``landmarks`` or estimated): the narrowest section
    below the tragi (:func:`_narrowest_section`), less ``config.NECK_MARGIN_MM``.

    Returns (vertices, faces, unsupported, opening, cut): ``opening`` (n,) bool marks the kept vertices on the cut's
    border and ``cut`` is the :class:`_NeckCut`; both None when nothing was cut."""
    try:
        origin, R, lpa, rpa = _neck_frame(v, f, landmarks)
    except (GeometryError, InputError, KeyError) as exc:
        notes.append(f"not cropped below the neck: {exc}")
        report["neck_cut_mm"] = None
        return v, f, unsupported, None, None
    z = (v - origin) @ R[2]
    half_width = 0.5 * float(np.linalg.norm(rpa - lpa))
    best, z_best = _narrowest_section(v, f, unsupported, origin, R, half_width)
    hi = config.NECK_SEARCH_MM[1]
    if z_best is None or z_best <= -hi + config.NECK_END_MARGIN_MM \
            or (z < z_best - config.NECK_MARGIN_MM).sum() == 0:
        report["neck_cut_mm"] = None
        return v, f, unsupported, None, None
    cut = z_best - config.NECK_MARGIN_MM
    keep_f = (z[f] > cut).all(axis=1)
    report["neck_cut_mm"] = round(float(-cut), 1)
    report["neck_width_mm"] = round(float(best), 1)
    notes.append(f"cut below the neck, {-cut:.0f} mm below the tragi (shoulders and anything lower removed)")
    # the cut's border: vertices of kept faces that had a neighbour below the cut
    below = (z[f] <= cut).any(axis=1)
    opening = np.zeros(len(v), bool)
    opening[f[below].ravel()] = True
    used = np.unique(f[keep_f])
    v2, f2, unsupported2 = _compact(v, f[keep_f], unsupported)
    return v2, f2, unsupported2, opening[used], _NeckCut(origin, R[2], cut)


def _neck_frame(v, f, landmarks):
    """(origin (3,), axes (3,3) rows x, y, z, lpa (3,), rpa (3,)), mm, of the head frame the neck is cut in: from the
    given ``landmarks`` (Landmarks or dict), else estimated on the surface (:func:`scalp3d.frame.estimate_frame`).

    With the face's own axes (estimated), z is a standing head's vertical: the frame's z leans back or forth with the
    nasion's height above the ears (about 15 degrees on the real head), enough to slice the trapezius at the back.
    Raises GeometryError (no frame found), InputError or KeyError (a dict without nasion, lpa, rpa)."""
    from .frame import estimate_frame

    if landmarks is None:
        est = estimate_frame(v, f)
        lm = Landmarks(nasion=est.nasion, lpa=est.lpa, rpa=est.rpa, face_axes=est.axes)
    elif isinstance(landmarks, Landmarks):
        lm = landmarks
    else:
        lm = Landmarks(nasion=np.asarray(landmarks["nasion"], float), lpa=np.asarray(landmarks["lpa"], float),
                       rpa=np.asarray(landmarks["rpa"], float))
    origin, R = lm.frame()
    if lm.face_axes is not None:
        R = np.asarray(lm.face_axes, dtype=np.float64)
    return origin, R, lm.lpa, lm.rpa


def _narrowest_section(v, f, unsupported, origin, R, half_width):
    """(width mm, height mm along R[2] from ``origin``) of the narrowest section of the neck, or (inf, None).

    Sections ``config.NECK_STEP_MM`` apart are taken downwards over ``config.NECK_SEARCH_MM`` below the origin, on
    ``config.NECK_SAMPLES`` points spread evenly over the measured surface (a coarse mesh has few vertices), within a
    cylinder round the head's vertical axis (``config.NECK_CYLINDER_FRAC`` of the ear distance ``2 * half_width``:
    the shoulders beyond it never make a section look wide); the search stops where a section is no longer a ring
    round the axis (below the neck: the torso, or the scan's end). A section's width is the mean of its x and y
    extents between ``config.NECK_WIDTH_PERCENTILES``."""
    ok_f = ~unsupported[f].all(axis=1)
    sp = _spread_points(v, f[ok_f], config.NECK_SAMPLES)
    zs = (sp - origin) @ R[2]
    xy = (sp - origin) @ R[:2].T
    inside = np.linalg.norm(xy, axis=1) < config.NECK_CYLINDER_FRAC * 2.0 * half_width
    lo, hi = config.NECK_SEARCH_MM
    best, z_best = np.inf, None
    for zc in np.arange(-lo, -hi, -config.NECK_STEP_MM):
        m = (np.abs(zs - zc) < config.NECK_SECTION_HALF_MM) & inside
        if m.sum() < config.NECK_SECTION_MIN_POINTS:
            break  # the scan ends here
        q = xy[m]
        sectors = np.unique(np.floor(np.degrees(np.arctan2(q[:, 0], q[:, 1])) / config.NECK_SECTOR_DEG))
        if len(sectors) < config.NECK_RING_MIN_SECTORS:
            break  # no longer a ring round the axis: below the neck, the torso (or the scan's end)
        p_lo, p_hi = config.NECK_WIDTH_PERCENTILES
        width = np.mean(np.percentile(q, p_hi, axis=0) - np.percentile(q, p_lo, axis=0))
        if width < best:
            best, z_best = width, zc
    return best, z_best


def _spread_points(v, f, n, seed=0):
    """``n`` points spread over the triangles by area (seeded; :func:`scalp3d.meshes.random_samples`)."""
    return random_samples(v, f, n, seed)[0]


def _compact(v, f, per_vertex):
    """Drop unused vertices; returns (vertices (k,3), faces (m,3) int64, per_vertex (k,)) renumbered, the kept
    vertices in their order (gpytoolbox's remove_unreferenced: the same result, as its source shows and the real
    head's meshes confirm bit for bit; it cannot take no faces, which leave no vertex here)."""
    from gpytoolbox import remove_unreferenced

    if len(f) == 0:
        return v[:0], f.astype(np.int64), per_vertex[:0]
    v2, f2, _, kept = remove_unreferenced(v, f, return_maps=True)
    return v2, f2.astype(np.int64, copy=False), per_vertex[kept]


def _head_part(v, f, per_vertex, notes):
    """Keep the most head-like connected part: the largest area, but a flat part (a wall, a table, the floor behind
    or under the head) counts for little, whatever its size."""
    comps = _face_components(f, np.ones(len(f), bool))
    if len(comps) <= 1:
        return v, f, per_vertex
    areas = face_areas(v, f)
    scores = []
    for c in comps:
        p = v[np.unique(f[c])]
        if len(p) < 4:
            scores.append(0.0)
            continue
        ext = np.sort(np.ptp((p - p.mean(axis=0)) @ np.linalg.svd(p - p.mean(axis=0), full_matrices=False)[2].T,
                             axis=0))
        flatness = ext[0] / max(ext[2], 1e-9)  # about 0 for a wall, 0.5-0.8 for a head
        scores.append(areas[c].sum() * min(1.0, flatness / config.HEAD_MIN_THICKNESS_RATIO))
    best = int(np.argmax(scores))
    dropped = sum(areas[c].sum() for k, c in enumerate(comps) if k != best)
    notes.append(f"kept the head, the most head-like of {len(comps)} parts; {dropped / 100.0:.0f} cm2 of other parts "
                 "(background, stray pieces) removed")
    mask = np.zeros(len(f), bool)
    mask[comps[best]] = True
    return _compact(v, f[mask], per_vertex)


def _largest_part(v, f, filled_f, notes):
    comps = _face_components(f, np.ones(len(f), bool))
    if len(comps) > 1:
        areas = face_areas(v, f)
        sizes = np.array([areas[c].sum() for c in comps])
        keep = comps[int(np.argmax(sizes))]
        notes.append(f"kept the largest of {len(comps)} parts ({sizes.max() / sizes.sum():.1%} of the area)")
        mask = np.zeros(len(f), bool)
        mask[keep] = True
        f, filled_f = f[mask], filled_f[mask]
    v, f, _ = _compact(v, f, np.zeros(len(v), bool))
    return v, f, filled_f


def _remesh(v, f, filled_f, edge_mm):
    """Isotropic remeshing projected on the surface; a new vertex is filled when its closest point on the old
    surface lies in a filled face."""
    from gpytoolbox import remesh_botsch

    keep = _manifold_faces(v, f)
    f, filled_f = f[keep], filled_f[keep]
    V, F = remesh_botsch(np.ascontiguousarray(v, dtype=np.float64), np.ascontiguousarray(f, dtype=np.int32),
                         config.REMESH_ITERATIONS, float(edge_mm), True)
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    filled = np.zeros(len(V), bool)
    if filled_f.any():
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
        ans = scene.compute_closest_points(o3d.core.Tensor(V.astype(np.float32)))
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        filled = filled_f[prim]
    return V, F, filled


def _manifold_faces(v, f):
    """Mask of faces to keep so that no edge has more than two faces: on an over-used edge, the two largest stay."""
    keep = np.ones(len(f), bool)
    areas = face_areas(v, f)
    for _ in range(config.MANIFOLD_REPAIR_PASSES):
        idx = np.flatnonzero(keep)
        e = np.sort(np.concatenate([f[idx][:, [0, 1]], f[idx][:, [1, 2]], f[idx][:, [2, 0]]]), axis=1)
        face_of = np.tile(idx, 3)
        # one int64 key per edge, in the rows' lexicographic order (np.unique over rows is 5-10 times slower)
        _, inv, counts = np.unique(_edge_keys(e), return_inverse=True, return_counts=True)
        over = counts[inv] > 2
        if not over.any():
            break
        for group in np.unique(inv[over]):
            faces = face_of[inv == group]
            faces = faces[np.argsort(-areas[faces], kind="stable")]
            keep[faces[2:]] = False
    return keep


def _deviation(v, f, reference, filled):
    """Distance (mm) from the input points to the final surface: median, p95, max, over the points above the cut
    and near the kept surface's measured part (at most DEVIATION_SAMPLES, seeded)."""
    import open3d as o3d

    ref = np.asarray(reference, dtype=np.float64)
    if len(ref) > config.DEVIATION_SAMPLES:
        ref = ref[np.random.default_rng(0).choice(len(ref), config.DEVIATION_SAMPLES, replace=False)]
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    ans = scene.compute_closest_points(o3d.core.Tensor(ref.astype(np.float32)))
    d = np.linalg.norm(ans["points"].numpy() - ref, axis=1)
    prim = ans["primitive_ids"].numpy().astype(np.int64)
    # points whose closest surface is a cut border or a filled patch are not where the surface was measured
    border = _boundary_vertices(f, len(v))
    measured = ~(border[f[prim]].any(axis=1) | filled[f[prim]].any(axis=1))
    d = d[measured]
    if len(d) == 0:
        return {"median": None, "p95": None, "max": None, "points": 0}
    return {"median": round(float(np.median(d)), 3), "p95": round(float(np.percentile(d, 95)), 3),
            "max": round(float(d.max()), 3), "points": int(len(d))}


def _edge_keys(e):
    """One int64 per (k,2) vertex pair, ordered as the pairs are lexicographically."""
    e = np.asarray(e, dtype=np.int64)
    return e[:, 0] * (int(e.max()) + 1 if len(e) else 1) + e[:, 1]


def _boundary_vertices(f, n):
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    key, first, counts = np.unique(_edge_keys(e), return_index=True, return_counts=True)
    out = np.zeros(n, bool)
    out[e[first[counts == 1]].ravel()] = True
    return out


def _face_components(f, mask):
    """Connected components (lists of face indices) of the faces in ``mask``, joined through shared edges.

    Not gpytoolbox's connected_components: it joins faces through a shared vertex too, so parts touching at a point
    are one (on a Poisson mesh of the real head's points it found 83 parts where there are 151 edge-connected ones,
    changing what is kept), and it was 4 times slower (1.3 s against 0.33 s, over the same three make_head runs)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    sub = f[idx]
    e = np.sort(np.concatenate([sub[:, [0, 1]], sub[:, [1, 2]], sub[:, [2, 0]]]), axis=1)
    face_of = np.tile(np.arange(len(sub)), 3)
    order = np.argsort(_edge_keys(e), kind="stable")  # as np.lexsort((e[:, 1], e[:, 0])), faster
    e, face_of = e[order], face_of[order]
    same = np.all(e[1:] == e[:-1], axis=1)
    a, b = face_of[:-1][same], face_of[1:][same]
    g = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(sub), len(sub)))
    _, labels = connected_components(g, directed=False)
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return [idx[c] for c in np.split(order, cuts)]


def report_lines(head: Head) -> list:
    """The surface report as printed lines."""
    r = head.report
    L = [f"units: {r.get('units') or 'mm'}",
         f"in: {r.get('points_in', 0):,} points, {r.get('faces_in', 0):,} faces; out: {r.get('vertices_out', 0):,} "
         f"vertices, {r.get('faces_out', 0):,} faces"]
    if "points_used" in r:
        L.append(f"point cloud: spacing {r['point_spacing_in_mm']} mm, {r['points_thinned']:,} after thinning, "
                 f"{r['outliers_removed']:,} outliers removed, Poisson depth {r['poisson_depth']}")
    holes = r.get("holes_filled_cm2", [])
    L.append(f"holes filled (marked, not measured): {len(holes)}, {sum(holes):.1f} cm2"
             + (f" (largest {holes[0]:.1f} cm2)" if holes else ""))
    if r.get("holes_left_open_cm2"):
        L.append(f"holes left open (over {config.HOLE_MAX_AREA_CM2:g} cm2): {r['holes_left_open_cm2']}")
    if r.get("neck_cut_mm") is not None:
        L.append(f"cut below the neck, {r['neck_cut_mm']:.0f} mm below the tragi")
    d = r.get("deviation_mm", {})
    if d.get("median") is not None:
        L.append(f"deviation from the input points: median {d['median']:.3f} mm, p95 {d['p95']:.3f} mm, "
                 f"max {d['max']:.2f} mm ({d['points']:,} points)")
    L.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.get("steps_s", {}).items()))
    L.extend(f"note: {n}" for n in head.notes)
    return L


def load_head(path) -> Head:
    """A head surface scalp3d wrote (``head.ply``, mm, scan axes), read exactly as it is: no repair, crop or
    remeshing, because the needle programs were checked against this very surface. Its ``filled`` vertex property,
    when present, marks the filled holes."""
    import trimesh

    from .scan import load_scan

    scan = load_scan(path, units="mm", head=False)  # written by scalp3d in mm; a faceless re-scan misleads the width check
    if scan.is_point_cloud:
        raise InputError(f"{path}: has no faces; give the head.ply that scalp3d plan or scalp3d mesh wrote")
    v = np.ascontiguousarray(scan.vertices, dtype=np.float64)
    f = np.ascontiguousarray(scan.faces, dtype=np.int64)
    filled = None
    if str(path).lower().endswith(".ply"):
        raw = trimesh.load(str(path), file_type="ply", process=False).metadata.get("_ply_raw", {})
        data = raw.get("vertex", {}).get("data")
        if data is not None and "filled" in (data.dtype.names or ()) and len(data) == len(v):
            filled = np.asarray(data["filled"]) > 0
    return Head(vertices=v, faces=f, vertex_normals=vertex_normals_of(v, f), source=str(path), colors=scan.colors,
                filled=filled)


def smooth_skin(head: Head, iterations: int = config.RESCAN_SMOOTHING_ITERATIONS) -> Head:
    """The head with its skin smoothed by Taubin's filter (lambda 0.5, mu -0.53: no shrinkage to speak of; uniform
    weights, the vertices of open borders held where they are, so a cut neck or a missing face does not creep in),
    vertex normals made again: a re-scan's noise (0.2 mm on a 1 mm mesh swings the skin normal by 10 degrees within a
    needle's depth, and the verifier refuses such plunges) is taken out before programs are made on it. The measured
    reference head is not smoothed (its dots were placed on it as it is). ``head.report["smoothing"]`` says how far
    the vertices moved (mm)."""
    from scipy import sparse

    if iterations <= 0:
        return head
    v0 = np.asarray(head.vertices, dtype=np.float64)
    f = np.asarray(head.faces, dtype=np.int64)
    n = len(v0)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    a = sparse.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n))
    a = a.tocsr()
    a.data[:] = 1.0  # an edge shared by two faces counts once
    deg = np.asarray(a.sum(axis=1)).ravel()
    free = (deg > 0) & ~_boundary_vertices(f, n)
    w = sparse.diags(np.where(free, 1.0 / np.maximum(deg, 1), 0.0)) @ a  # rows of held vertices are zero
    v = v0.copy()
    for _ in range(int(iterations)):
        for step in (0.5, -0.53):
            v += step * (w @ v - np.where(free[:, None], v, 0.0))
    moved = np.linalg.norm(v - v0, axis=1)
    report = {**head.report, "smoothing": {"iterations": int(iterations), "moved_mm_mean": float(moved.mean()),
                                           "moved_mm_max": float(moved.max())}}
    return replace(head, vertices=v, vertex_normals=vertex_normals_of(v, f), report=report)


def rescan_head(scan: Scan, landmarks=None, progress=None) -> Head:
    """Today's head from a re-scan, for carrying a case's dots onto it and making programs on it: :func:`make_head`,
    then :func:`smooth_skin`. A mesh already finer than ``config.REMESH_EDGE_MM`` is not remeshed (the isotropic
    remesh of a million-triangle re-scan took 16 of the 36 s a practitioner waited for a session), and its smoothing
    is scaled to its edges (Taubin's filter reaches about an edge times the square root of the iterations).
    ``head.report["smoothing"]`` gives the iterations and how far the skin moved. ``landmarks`` (today's, mm) crop
    the neck as in :func:`make_head`."""
    fine = False
    if not scan.is_point_cloud:
        f = np.asarray(scan.faces)
        sample = f[:: max(len(f) // 200_000, 1)]
        fine = float(np.median(np.linalg.norm(scan.vertices[sample[:, 0]] - scan.vertices[sample[:, 1]], axis=1))) \
            < config.REMESH_EDGE_MM
    head = make_head(scan, remesh=not fine, landmarks=landmarks, progress=progress)
    f = head.faces[:: max(len(head.faces) // 200_000, 1)]
    edge = float(np.median(np.linalg.norm(head.vertices[f[:, 0]] - head.vertices[f[:, 1]], axis=1)))
    # a mesh left as scanned is smoothed twice as far (in mm) as a remeshed one: the remesh regularises too (at the
    # same reach, 40 iterations on the benchmark's 0.5 mm re-scan left 2 of 18,965 plunges over 5 degrees; 80 none)
    scale = 1.0 if not fine else 2.0 * (config.REMESH_EDGE_MM / max(edge, 1e-6)) ** 2
    return smooth_skin(head, min(int(math.ceil(config.RESCAN_SMOOTHING_ITERATIONS * scale)),
                                 config.RESCAN_SMOOTHING_MAX_ITERATIONS))
