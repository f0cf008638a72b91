"""The take-home file of a plan: its scene handed to :func:`scalp3d.viewers.share.write_share`.

The head is the drawn mesh made coarser (``config.SHARE_TRIANGLES`` triangles: the dots live in the texture, not the
geometry, and the file's budget goes to texture detail), cut cleanly below the head, with its skin colour per vertex
and one texture per state the patient can switch between: before, healed after each session, fresh after the last. ``no_face`` drops the face below
the brow (the triangles in front of the ears and below the glabella) for the patient's privacy.
"""
from __future__ import annotations

import numpy as np

from scalp3d import config


def share_plan(scene, out_html, *, no_face=False, glb_path=None) -> dict:
    """Write ``out_html`` (and ``glb_path`` when given) for ``scene``; returns what :func:`write_share` reports."""
    from .share import write_share

    mesh, skin_of = coarse_mesh(scene)
    k = scene.n_sessions
    textures = {"before": scene.texture(0)}
    labels = ["before"]
    for s in range(1, k + 1):
        textures[f"session {s}"] = scene.texture(s)
        labels.append(f"after session {s}")
    textures["fresh"] = scene.texture(k, True)
    labels.append(f"fresh (first days after session {k})")
    skin = np.clip(np.round(mesh.per_vertex(scene.skin(k)[skin_of]) * 255.0), 0, 255).astype(np.uint8)
    keep = face_kept(scene, mesh) if no_face else None
    return write_share(out_html, vertices=mesh.vertices, faces=mesh.faces, uv=mesh.uv, normals=mesh.normals,
                       colors=skin, textures=textures, frame=scene.frame, labels=labels, keep_faces=keep,
                       glb_path=glb_path, title=f"scalp3d preview: {k} sessions",
                       camera_orbit=config.SHARE_CAMERA_ORBIT)


def coarse_mesh(scene):
    """The head decimated to ``config.SHARE_TRIANGLES`` (quadric error, open3d), textured by the scene's atlas and cut
    cleanly below: (DisplayMesh whose vertex indices refer to the coarse mesh, (k,) the head's vertex nearest each
    coarse vertex, to carry per-vertex colours)."""
    import open3d as o3d
    from scipy.spatial import cKDTree

    from scalp3d.meshes import vertex_normals_of
    from scalp3d.types import Head

    from .scene import clean_cut

    head = scene.head
    if len(head.faces) > config.SHARE_TRIANGLES:
        m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(head.vertices),
                                      o3d.utility.Vector3iVector(head.faces.astype(np.int32)))
        m = m.simplify_quadric_decimation(target_number_of_triangles=config.SHARE_TRIANGLES)
        m.remove_unreferenced_vertices()
        v, f = np.asarray(m.vertices, dtype=np.float64), np.asarray(m.triangles, dtype=np.int64)
    else:
        v, f = head.vertices, head.faces
    coarse = Head(v, f, vertex_normals_of(v, f))
    mesh = clean_cut(scene.atlas.project(v, f, coarse.vertex_normals), coarse)
    _, near = cKDTree(head.vertices).query(v)
    return mesh, near


def face_kept(scene, mesh) -> np.ndarray:
    """(m,) bool: the drawn mesh's triangles kept by ``--no-face``: all but those in front of the ears
    (``config.SHARE_FACE_AHEAD_MM`` ahead of them in the head frame) and below the brow (the glabella's height plus
    ``config.SHARE_BROW_MARGIN_MM``)."""
    origin, R = scene.frame
    q = (mesh.vertices[mesh.faces].mean(axis=1) - origin) @ R.T
    brow = ((scene.landmarks.glabella - origin) @ R.T)[2] + config.SHARE_BROW_MARGIN_MM
    return ~((q[:, 1] > config.SHARE_FACE_AHEAD_MM) & (q[:, 2] < brow))
