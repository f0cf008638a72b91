"""Scans read by trimesh: OBJ (+ MTL + texture), STL, GLB and glTF.

trimesh is imported only here, inside the reader. Before it runs, the header checks trimesh does not make are made
(binary STL size, ASCII STL end, GLB length, glTF JSON and buffer files). Textures are sampled at the vertices' UVs
into vertex colours; a missing texture image gives a scan without colours and a note, not a failure. Scene parts are
moved by their node transforms and concatenated.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .sniff import _EXPECTED, _fail, _first_line


def _check_stl(path: Path, size: int):
    with open(path, "rb") as fh:
        head = fh.read(84)
    text_start = head.lstrip()[:5].lower() == b"solid"
    if size >= 84:
        n = int.from_bytes(head[80:84], "little")
        if 84 + 50 * n == size:
            return
        if not text_start or b"\x00" in head:
            _fail(path, "STL", f"the binary header promises {n:,} triangles ({84 + 50 * n:,} bytes) but the file "
                               f"holds {size:,} bytes; the file is truncated or not an STL")
    if not text_start:
        _fail(path, "STL", f"it is neither ASCII ('solid ...') nor binary ({size:,} bytes, shorter than a header)")
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 1024))
        tail = fh.read().decode("latin-1").strip().splitlines()
    if not tail or not tail[-1].strip().lower().startswith("endsolid"):
        _fail(path, "STL", "truncated: the ASCII file does not end with 'endsolid'")


def _check_glb(path: Path, size: int):
    with open(path, "rb") as fh:
        head = fh.read(20)
    if len(head) < 20:
        _fail(path, "GLB", f"truncated: {size} bytes, shorter than a GLB header")
    length = int.from_bytes(head[8:12], "little")
    json_len = int.from_bytes(head[12:16], "little")
    if length > size or 20 + json_len > size:
        _fail(path, "GLB", f"truncated: the header says {length:,} bytes but the file holds {size:,}")


def _check_gltf(path: Path):
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(path, "glTF", f"not valid JSON ({_first_line(exc)[:80]})")
    for buf in doc.get("buffers", []) if isinstance(doc, dict) else []:
        uri = buf.get("uri", "") if isinstance(buf, dict) else ""
        if uri and not uri.startswith("data:") and not (path.parent / uri).exists():
            _fail(path, "glTF", f"its buffer file '{uri}' is missing", "copy it beside the .gltf file")


def _missing_textures(path: Path):
    """Texture images an OBJ's MTL files name that do not exist (names as written)."""
    missing = []
    try:
        text = path.read_text(encoding="latin-1")
        for lib in re.findall(r"^\s*mtllib\s+(.+?)\s*$", text, re.M):
            mtl = path.parent / lib
            if not mtl.exists():
                missing.append(lib)
                continue
            for tex in re.findall(r"^\s*map_Kd\s+(?:-\S+\s+\S+\s+)*(.+?)\s*$", mtl.read_text(encoding="latin-1"),
                                  re.M):
                if not (mtl.parent / tex).exists():
                    missing.append(tex)
    except OSError:
        pass
    return missing


def _geometry_colors(g, notes):
    """Per-vertex uint8 colours of a trimesh geometry, from its texture or vertex colours; None if it has none."""
    vis = getattr(g, "visual", None)
    kind = getattr(vis, "kind", None)
    if kind == "texture":
        mat = getattr(vis, "material", None)
        img = getattr(mat, "image", None) if mat is not None else None
        if img is None and getattr(mat, "baseColorTexture", None) is None:
            if getattr(vis, "uv", None) is not None:
                notes.append("no colours: the texture image could not be read")
            return None
        try:
            vc = vis.to_color().vertex_colors
        except Exception as exc:  # noqa: BLE001 - colours are optional, a scan without them is still a scan
            notes.append(f"no colours: the texture could not be sampled ({_first_line(exc)[:60]})")
            return None
    elif kind in ("vertex", "face"):
        vc = vis.vertex_colors
    else:
        c = getattr(g, "colors", None)  # point clouds
        if c is None or len(c) == 0:
            return None
        vc = c
    vc = np.asarray(vc)
    if vc.ndim != 2 or len(vc) != len(g.vertices) or vc.shape[1] < 3:
        return None
    return vc[:, :3].astype(np.uint8)


def _read_trimesh(path: Path, size: int, ext: str):
    import trimesh

    fmt = _EXPECTED[ext]
    notes = []
    if ext == ".stl":
        _check_stl(path, size)
    elif ext == ".glb":
        _check_glb(path, size)
    elif ext == ".gltf":
        _check_gltf(path)
    elif ext == ".obj":
        missing = _missing_textures(path)
        if missing:
            notes.append(f"no colours: {', '.join(missing[:3])} (named by the OBJ's material) is missing")
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as exc:  # noqa: BLE001 - trimesh raises many types for bad files
        _fail(path, fmt, _first_line(exc))
    if isinstance(loaded, trimesh.Scene):
        parts = []
        for node in loaded.graph.nodes_geometry:
            transform, gname = loaded.graph[node]
            parts.append((loaded.geometry[gname], transform))
    else:
        parts = [(loaded, None)]
    vs, fs, cs, any_faces, n = [], [], [], False, 0
    for g, transform in parts:
        gv = np.asarray(getattr(g, "vertices", np.zeros((0, 3))), dtype=np.float64)
        if len(gv) == 0:
            continue
        if transform is not None and not np.allclose(transform, np.eye(4)):
            gv = gv @ np.asarray(transform)[:3, :3].T + np.asarray(transform)[:3, 3]
        gf = getattr(g, "faces", None)
        if gf is not None and len(gf):
            fs.append(np.asarray(gf, dtype=np.int64) + n)
            any_faces = True
        if ext == ".obj" and notes and getattr(getattr(g, "visual", None), "kind", None) == "texture":
            gc = None
        else:
            gc = _geometry_colors(g, notes)
        cs.append(gc)
        vs.append(gv)
        n += len(gv)
    if not vs:
        _fail(path, fmt, "it holds no vertices")
    v = np.concatenate(vs)
    f = np.concatenate(fs) if any_faces else None
    colors = None
    if any(c is not None for c in cs):
        if all(c is not None for c in cs):
            colors = np.concatenate(cs)
        else:
            notes.append("no colours: only some of its parts are coloured")
    return v, f, colors, None, list(dict.fromkeys(notes))
