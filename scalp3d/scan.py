"""Load a head scan in real units: meshes (PLY OBJ STL OFF GLB/glTF) and point clouds (PLY without faces, PCD, XYZ/PTS).

Coordinates stay in the scan's own axes, scaled to millimetres. The unit is given (``units`` or ``scale``) or detected
from the width of the skull (140-220 mm); when no unit fits, a one-line :class:`UnitsError` asks for one. Every read
failure becomes a one-line :class:`InputError` naming the file and the fix; nothing here may print a traceback, hang or
allocate more than the file could hold.

How each format is read
-----------------------
* PLY (ascii, binary little and big endian) and PCD (ascii, binary): by the small readers below. The header is parsed
  first and its counts are checked against the file size before anything is allocated (a header promising 10^12
  vertices is refused at once); binary vertex data is read with one structured ``numpy.frombuffer``.
* OFF (OFF, COFF, NOFF, CNOFF) and XYZ/PTS/TXT text: by the readers below (``numpy.loadtxt``).
* OBJ (+ MTL + texture), STL, GLB and glTF: by trimesh, after the header checks trimesh does not make (binary STL size,
  ASCII STL end, GLB length). Textures are sampled at the vertices' UVs into vertex colours; a missing texture image
  gives a scan without colours and a note, not a failure.

Colours are returned as (n,3) uint8 per vertex (float colours 0-1 are scaled by 255, 16-bit ones by 1/257); normals
(n,3) float64 are kept when the file has them. Notes on what was repaired or dropped are appended to
``Scan.units_reason`` after a "; ".

Non-finite coordinates: points with a NaN or infinite coordinate are dropped (with their faces) and noted when they are
fewer than :data:`MAX_NONFINITE_FRACTION` of the points, and refused otherwise; in an organised PCD (HEIGHT > 1) NaN
points are pixels without a measurement and are always dropped.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from . import config
from .errors import InputError, UnitsError, one_line
from .types import Scan

MESH_FORMATS = {".ply", ".obj", ".stl", ".off", ".glb", ".gltf"}
CLOUD_FORMATS = {".pcd", ".xyz", ".pts", ".txt"}

#: points with NaN/inf coordinates are dropped (and noted) below this fraction of the scan, refused at or above it
MAX_NONFINITE_FRACTION = 0.01
#: a scan whose thinnest principal extent is below this fraction of its widest is flat: not a head
PLANE_THICKNESS_RATIO = 1e-3
#: coordinates beyond this (in the scan's own unit) are refused: a km in mm, and far from where float64 sums of
#: squares overflow (a file with 1e300 in it is broken, not a head)
MAX_COORDINATE = 1e9
#: headers (PLY, PCD) must end within this many bytes
HEADER_MAX_BYTES = 1 << 16
#: the fewest bytes one value takes in a text format: a digit and a separator
TEXT_MIN_BYTES_PER_VALUE = 2

#: what the content of each extension must look like (see :func:`_sniff`)
_EXPECTED = {".ply": "PLY", ".obj": "OBJ", ".stl": "STL", ".off": "OFF", ".glb": "GLB", ".gltf": "glTF",
             ".pcd": "PCD", ".xyz": "text", ".pts": "text", ".txt": "text"}
_EXT_OF = {"PLY": ".ply", "OBJ": ".obj", "STL": ".stl", "OFF": ".off", "GLB": ".glb", "glTF": ".gltf",
           "PCD": ".pcd", "text": ".xyz"}
_DESCRIBE = {"text": "text point cloud (x y z per line)"}


def _fail(path, fmt, reason, fix="re-export the scan"):
    fmt = _DESCRIBE.get(fmt, fmt)
    raise InputError(f"{path}: cannot be read as {_a(fmt)} {fmt} scan: {reason}; {fix}")


def _a(word: str) -> str:
    """The article for a format name: 'an OBJ', 'an OFF', 'an STL', 'a PLY'."""
    return "an" if word[:1] in "AEIOU" or word in ("STL", "XYZ") else "a"


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------------------------------
# format sniffing
# ---------------------------------------------------------------------------------------------------------------------

def _sniff(head: bytes, size: int):
    """What the first bytes of a file look like: 'PLY', 'GLB', 'PCD', 'STL', 'OFF', 'glTF', 'OBJ', 'text', a
    description of another known kind ('PNG image'...), 'binary data' or None."""
    if head.startswith(b"ply") and head[3:4] in (b"\n", b"\r"):
        return "PLY"
    if head.startswith(b"glTF"):
        return "GLB"
    for magic, kind in ((b"\x89PNG", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"PK\x03\x04", "ZIP archive"),
                        (b"%PDF", "PDF document")):
        if head.startswith(magic):
            return kind
    text = head[:4096].decode("latin-1")
    if re.search(r"^FIELDS\s", text, re.M) and re.search(r"^(POINTS|WIDTH|DATA)\s", text, re.M):
        return "PCD"
    if size >= 84 and 84 + 50 * int.from_bytes(head[80:84], "little") == size:
        return "STL"
    if "\x00" in text:
        return "binary data"
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "glTF"
    if re.match(r"[A-Z]*OFF\b", stripped):
        return "OFF"
    if stripped.lower().startswith("solid") and ("facet" in text or len(text) < 4096):
        return "STL"
    if re.search(r"^\s*(v|vt|vn|f|mtllib|usemtl|o|g)\s", text, re.M):
        return "OBJ"
    for line in stripped.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        try:
            [float(t) for t in line.replace(",", " ").split()]
            return "text"
        except ValueError:
            return None
    return None


def _check_kind(path: Path, ext: str, size: int) -> None:
    """Refuse a file whose content is not the format its extension names (one line, naming what it looks like)."""
    with open(path, "rb") as fh:
        head = fh.read(HEADER_MAX_BYTES)
    kind = _sniff(head, size)
    expected = _EXPECTED[ext]
    if kind == expected:
        return
    if head.startswith(b"\xef\xbb\xbf") and _sniff(head[3:], size - 3) == expected:
        raise InputError(f"{path}: starts with a byte-order mark (BOM) before its {ext[1:].upper()} content; save it "
                         "again as plain text (UTF-8 without BOM, or ASCII)")
    if expected == "STL" and kind in ("binary data", None):
        return  # a binary STL whose size does not match its triangle count: _check_stl says how
    what = f"{_a(ext[1:].upper())} {ext[1:].upper()} file" if expected != "text" else "a text point cloud (x y z per line)"
    if kind in _EXT_OF:
        raise InputError(f"{path}: is not {what}: its content looks like {_DESCRIBE.get(kind, kind + ' data')}; "
                         f"rename it to {_EXT_OF[kind]} or re-export the scan")
    if kind is not None:
        raise InputError(f"{path}: is not {what}: its content looks like {kind}; re-export the scan")
    raise InputError(f"{path}: is not {what}: it does not start like one; re-export the scan")


# ---------------------------------------------------------------------------------------------------------------------
# shared helpers for the readers
# ---------------------------------------------------------------------------------------------------------------------

def _to_uint8_colors(c) -> np.ndarray:
    """(n,3) colours of any numeric dtype to uint8: floats in 0-1 are scaled by 255, 16-bit ones by 1/257."""
    c = np.asarray(c)
    if c.dtype.kind == "f":
        c = np.nan_to_num(c.astype(np.float64), nan=0.0)
        if c.size and c.max() <= 1.0:
            c = c * 255.0
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)
    if c.dtype.itemsize > 1 and c.size and c.max() > 255:
        return np.clip(np.rint(c / 257.0), 0, 255).astype(np.uint8)
    return np.clip(c, 0, 255).astype(np.uint8)


def _fan(polys: np.ndarray) -> np.ndarray:
    """(m,k) polygons (k >= 3) as (m*(k-2),3) triangles fanned from each polygon's first corner."""
    k = polys.shape[1]
    if k == 3:
        return polys
    tris = [polys[:, [0, i, i + 1]] for i in range(1, k - 1)]
    return np.stack(tris, axis=1).reshape(-1, 3)


def _polygons_to_triangles(rows) -> np.ndarray:
    """A list of 1-D index arrays (polygons of any size) as (m,3) int64 triangles."""
    by_len = {}
    for r in rows:
        if len(r) >= 3:
            by_len.setdefault(len(r), []).append(r)
    if not by_len:
        return np.zeros((0, 3), np.int64)
    return np.concatenate([_fan(np.asarray(v, dtype=np.int64)) for _, v in sorted(by_len.items())])


def _pick(names, *candidates):
    """The first tuple of property names all present in ``names``, or None."""
    for cand in candidates:
        if all(c in names for c in cand):
            return cand
    return None


_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))


def _columns(get, names):
    """(x y z, colours or None, normals or None) from a column getter ``get(name) -> (n,)`` and the names present."""
    if not all(c in names for c in "xyz"):
        return None
    x = get("x")
    v = np.empty((len(x), 3), np.float64)
    v[:, 0], v[:, 1], v[:, 2] = x, get("y"), get("z")
    colors = normals = None
    cn = _pick(names, *_COLOR_NAMES)
    if cn is not None:
        cols = [get(n) for n in cn]
        dtype = np.result_type(*[c.dtype for c in cols])
        colors = _to_uint8_colors(np.column_stack(cols).astype(dtype))
    nn = _pick(names, *_NORMAL_NAMES)
    if nn is not None:
        normals = np.column_stack([get(n) for n in nn]).astype(np.float64)
    return v, colors, normals


# ---------------------------------------------------------------------------------------------------------------------
# PLY
# ---------------------------------------------------------------------------------------------------------------------

_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def _ply_header(path: Path, size: int):
    """Parse a PLY header: (format, elements, offset of the data). Each element is (name, count, props), each prop
    (name, dtype code) or (name, (count dtype code, item dtype code)) for a list."""
    with open(path, "rb") as fh:
        head = fh.read(HEADER_MAX_BYTES)
    end = head.find(b"end_header")
    if end < 0:
        _fail(path, "PLY", f"no 'end_header' in its first {HEADER_MAX_BYTES // 1024} KB")
    nl = head.find(b"\n", end)
    offset = nl + 1 if nl >= 0 else len(head)
    fmt = None
    elements = []
    for raw in head[:end].decode("latin-1").splitlines()[1:]:
        tok = raw.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format" and len(tok) >= 2:
            fmt = tok[1]
        elif tok[0] == "element" and len(tok) == 3:
            try:
                count = int(tok[2])
            except ValueError:
                count = -1
            if count < 0:
                _fail(path, "PLY", f"the header's element '{tok[1]}' has count '{tok[2]}'")
            elements.append((tok[1], count, []))
        elif tok[0] == "property" and elements:
            if len(tok) == 5 and tok[1] == "list" and tok[2] in _PLY_TYPES and tok[3] in _PLY_TYPES:
                elements[-1][2].append((tok[4], (_PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]])))
            elif len(tok) == 3 and tok[1] in _PLY_TYPES:
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]]))
            else:
                _fail(path, "PLY", f"the header line '{raw.strip()[:60]}' is not a PLY property")
        else:
            _fail(path, "PLY", f"the header line '{raw.strip()[:60]}' is not PLY")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        _fail(path, "PLY", f"the header's format is '{fmt}', not ascii or binary_little/big_endian")
    if not any(e[0] == "vertex" for e in elements):
        _fail(path, "PLY", "the header declares no vertex element")
    return fmt, elements, offset


def _ply_check_sizes(path, fmt, elements, offset, size):
    """Refuse a header whose counts need more bytes than the file has, before anything is allocated."""
    have = size - offset
    need = 0
    for name, count, props in elements:
        if fmt == "ascii":
            row = TEXT_MIN_BYTES_PER_VALUE * len(props)
        else:
            row = sum(np.dtype(p[0]).itemsize if isinstance(p, tuple) else np.dtype(p).itemsize for _, p in props)
        need += count * row
        if need > have:
            what = {"vertex": "vertices", "face": "faces"}.get(name, f"'{name}' elements")
            exact = "at least " if fmt == "ascii" else ""
            _fail(path, "PLY", f"the header promises {count:,} {what} ({exact}{need:,} bytes of "
                               f"{'text' if fmt == 'ascii' else 'data'}) but the file holds only {have:,} bytes "
                               f"after its header; the file is truncated or its header is wrong")


def _ply_binary(path, fmt, elements, offset):
    bo = "<" if fmt == "binary_little_endian" else ">"
    with open(path, "rb") as fh:
        fh.seek(offset)
        body = fh.read()
    pos = 0
    out = {}
    for name, count, props in elements:
        lists = [p for p in props if isinstance(p[1], tuple)]
        if not lists:
            dt = np.dtype([(pn, bo + pt) for pn, pt in props])
            if pos + count * dt.itemsize > len(body):
                _truncated(path, name, count, (len(body) - pos) // max(dt.itemsize, 1))
            out[name] = np.frombuffer(body, dt, count, offset=pos)
            pos += count * dt.itemsize
            continue
        rows, pos = _ply_binary_lists(path, bo, name, count, props, body, pos)
        out[name] = rows
    return out


def _truncated(path, name, count, got, fmt="PLY", unit="rows"):
    what = {"vertex": "vertices", "face": "faces"}.get(name, f"'{name}' elements")
    _fail(path, fmt, f"truncated: the header promises {count:,} {what} but the file holds {got:,} {unit} of them")


def _ply_binary_lists(path, bo, name, count, props, body, pos):
    """An element with list properties: {prop: (count,k) array or list of arrays}. Fast path when every list of a
    property has the length of the first row's; a row-by-row walk otherwise."""
    if count == 0:
        return {p[0]: np.zeros((0, 3), np.int64) for p in props}, pos
    # lengths of the first row's lists
    fields, p0 = [], pos
    for pn, pt in props:
        if isinstance(pt, tuple):
            ct, it = np.dtype(bo + pt[0]), np.dtype(bo + pt[1])
            if p0 + ct.itemsize > len(body):
                _truncated(path, name, count, 0)
            k = int(np.frombuffer(body, ct, 1, offset=p0)[0])
            fields += [(pn + "__n", ct), (pn, it, (k,))]
            p0 += ct.itemsize + k * it.itemsize
        else:
            fields.append((pn, np.dtype(bo + pt)))
            p0 += np.dtype(pt).itemsize
    dt = np.dtype(fields)
    if pos + count * dt.itemsize <= len(body):
        arr = np.frombuffer(body, dt, count, offset=pos)
        lists = [pn for pn, pt in props if isinstance(pt, tuple)]
        if all((arr[pn + "__n"] == dt[pn].shape[0]).all() for pn in lists):
            return {pn: arr[pn].reshape(count, -1) for pn in lists}, pos + count * dt.itemsize
    # rows of different lengths: walk them (the count was checked against the file size)
    res = {pn: [] for pn, pt in props if isinstance(pt, tuple)}
    for i in range(count):
        for pn, pt in props:
            if isinstance(pt, tuple):
                ct, it = np.dtype(bo + pt[0]), np.dtype(bo + pt[1])
                if pos + ct.itemsize > len(body):
                    _truncated(path, name, count, i)
                k = int(np.frombuffer(body, ct, 1, offset=pos)[0])
                pos += ct.itemsize
                if pos + k * it.itemsize > len(body):
                    _truncated(path, name, count, i)
                res[pn].append(np.frombuffer(body, it, k, offset=pos))
                pos += k * it.itemsize
            else:
                pos += np.dtype(pt).itemsize
    return res, pos


def _ply_ascii(path, elements, offset):
    with open(path, "rb") as fh:
        fh.seek(offset)
        lines = fh.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    pos = 0
    out = {}
    for name, count, props in elements:
        rows = lines[pos:pos + count]
        if len(rows) < count:
            _truncated(path, name, count, len(rows), unit="lines")
        pos += count
        if count == 0:
            out[name] = None
            continue
        lists = [p for p in props if isinstance(p[1], tuple)]
        if not lists:
            try:
                arr = np.loadtxt(rows, dtype=np.float64, ndmin=2)
            except ValueError as exc:
                _fail(path, "PLY", f"{name} data is not {len(props)} numbers per line ({_first_line(exc)[:80]})")
            if arr.shape[1] != len(props):
                _fail(path, "PLY", f"{name} lines hold {arr.shape[1]} numbers, the header declares {len(props)}")
            out[name] = {pn: arr[:, i] for i, (pn, _) in enumerate(props)}
            continue
        if name != "face":
            out[name] = None
            continue
        # faces: the first list is the vertex indices; rows may have different lengths
        li = next(i for i, p in enumerate(props) if isinstance(p[1], tuple))
        if li != 0:
            _fail(path, "PLY", "the face element has properties before its vertex list", "re-export the scan")
        try:
            toks = [r.split() for r in rows]
            out[name] = {props[0][0]: [np.asarray(t[1:1 + int(t[0])], dtype=np.float64).astype(np.int64)
                                       for t in toks]}
        except (ValueError, IndexError) as exc:
            _fail(path, "PLY", f"face data is not 'n i1 ... in' per line ({_first_line(exc)[:80]})")
    return out


def _read_ply(path: Path, size: int):
    fmt, elements, offset = _ply_header(path, size)
    _ply_check_sizes(path, fmt, elements, offset, size)
    data = _ply_binary(path, fmt, elements, offset) if fmt != "ascii" else _ply_ascii(path, elements, offset)
    vert = data["vertex"]
    names = [p[0] for p in next(e for e in elements if e[0] == "vertex")[2]]
    if not all(c in names for c in "xyz"):
        _fail(path, "PLY", "the vertex element has no x, y and z properties")
    if vert is None:  # no vertices
        return np.zeros((0, 3)), None, None, None, []
    v, colors, normals = _columns(lambda n: vert[n], names)
    faces = None
    face = data.get("face")
    if isinstance(face, dict):
        key = next((k for k in ("vertex_indices", "vertex_index") if k in face), None)
        if key is not None:
            rows = face[key]
            faces = _fan(np.asarray(rows, np.int64)) if isinstance(rows, np.ndarray) and rows.ndim == 2 and \
                rows.shape[1] >= 3 else _polygons_to_triangles(rows)
            if len(faces) == 0:
                faces = None
    return v, faces, colors, normals, []


# ---------------------------------------------------------------------------------------------------------------------
# PCD
# ---------------------------------------------------------------------------------------------------------------------

def _read_pcd(path: Path, size: int):
    with open(path, "rb") as fh:
        head = fh.read(HEADER_MAX_BYTES)
    meta, offset = {}, None
    pos = 0
    while pos < len(head):
        nl = head.find(b"\n", pos)
        if nl < 0:
            break
        line = head[pos:nl].decode("latin-1").strip()
        pos = nl + 1
        if not line or line.startswith("#"):
            continue
        tok = line.split()
        meta[tok[0].upper()] = tok[1:]
        if tok[0].upper() == "DATA":
            offset = pos
            break
    if offset is None:
        _fail(path, "PCD", f"no DATA line in its first {HEADER_MAX_BYTES // 1024} KB")
    fields = meta.get("FIELDS", [])
    n_f = len(fields)
    sizes = meta.get("SIZE", ["4"] * n_f)
    types = meta.get("TYPE", ["F"] * n_f)
    counts = meta.get("COUNT", ["1"] * n_f)
    try:
        sizes, counts = [int(s) for s in sizes], [int(c) for c in counts]
        width = int(meta.get("WIDTH", ["-1"])[0])
        height = int(meta.get("HEIGHT", ["1"])[0])
        points = int(meta.get("POINTS", [str(width * height)])[0])
    except (ValueError, IndexError):
        _fail(path, "PCD", "a header count (SIZE, COUNT, WIDTH, HEIGHT or POINTS) is not a whole number")
    if not n_f or not (len(sizes) == len(types) == len(counts) == n_f):
        _fail(path, "PCD", f"the header lists {n_f} FIELDS but {len(sizes)} SIZE, {len(types)} TYPE and "
                           f"{len(counts)} COUNT entries")
    if not all(c in fields for c in "xyz"):
        _fail(path, "PCD", f"the FIELDS ({' '.join(fields)[:60]}) have no x, y and z")
    if min([points, height] + counts) < 0 or (width >= 0 and width * height != points):
        _fail(path, "PCD", f"the header says POINTS {points:,} but WIDTH x HEIGHT is {width:,} x {height:,}")
    kinds = {"F": "f", "I": "i", "U": "u"}
    try:
        dt = np.dtype([(f, "<" + kinds[t.upper()] + str(s), (c,) if c > 1 else ())
                       for f, t, s, c in zip(fields, types, sizes, counts)])
    except (KeyError, TypeError):
        _fail(path, "PCD", f"field types {' '.join(types)} with sizes {' '.join(map(str, sizes))} are not F/I/U 1-8")
    mode = (meta.get("DATA") or ["?"])[0].lower()
    have = size - offset
    notes = []
    if mode == "binary":
        need = points * dt.itemsize
        if need > have:
            _fail(path, "PCD", f"the header promises {points:,} points ({need:,} bytes) but the file holds only "
                               f"{have:,} bytes after its header; the file is truncated or its header is wrong")
        with open(path, "rb") as fh:
            fh.seek(offset)
            arr = np.frombuffer(fh.read(need), dt, points)
        get = lambda n: arr[n] if arr[n].ndim == 1 else arr[n][:, 0]  # noqa: E731
    elif mode == "ascii":
        need = points * TEXT_MIN_BYTES_PER_VALUE * sum(counts)
        if need > have:
            _fail(path, "PCD", f"the header promises {points:,} points (at least {need:,} bytes of text) but the "
                               f"file holds only {have:,} bytes after its header; the file is truncated or its "
                               f"header is wrong")
        with open(path, "rb") as fh:
            fh.seek(offset)
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
        if len(lines) < points:
            _fail(path, "PCD", f"truncated: the header promises {points:,} points but the file holds "
                               f"{len(lines):,} lines of them")
        try:
            arr = np.loadtxt(lines[:points], dtype=np.float64, ndmin=2)
        except ValueError as exc:
            _fail(path, "PCD", f"point data is not {sum(counts)} numbers per line ({_first_line(exc)[:80]})")
        if arr.shape[1] != sum(counts):
            _fail(path, "PCD", f"point lines hold {arr.shape[1]} numbers, the header declares {sum(counts)}")
        starts = np.cumsum([0] + counts)
        col = {f: starts[i] for i, f in enumerate(fields)}
        ftype = {f: dt[f].base for f in fields}

        def get(n):
            c = arr[:, col[n]]
            if n in ("rgb", "rgba"):  # packed colours are written as the float or integer holding the bytes
                c = c.astype(ftype[n])
            return c
    elif mode == "binary_compressed":
        with open(path, "rb") as fh:
            fh.seek(offset)
            sizes8 = fh.read(8)
        packed_len = int.from_bytes(sizes8[:4], "little") if len(sizes8) == 8 else -1
        unpacked_len = int.from_bytes(sizes8[4:], "little") if len(sizes8) == 8 else -1
        if packed_len < 0 or packed_len > have - 8 or unpacked_len != points * dt.itemsize:
            _fail(path, "PCD", f"the header promises {points:,} points ({points * dt.itemsize:,} bytes) but the "
                               f"compressed data holds {max(packed_len, 0):,} of {max(have - 8, 0):,} bytes "
                               f"unpacking to {max(unpacked_len, 0):,}; the file is truncated or its header is wrong")
        return _read_pcd_open3d(path)
    else:
        _fail(path, "PCD", f"DATA is '{mode}', not ascii, binary or binary_compressed")
    cols = _columns(get, fields)
    v, colors, normals = cols
    packed = next((n for n in ("rgb", "rgba") if n in fields), None)
    if colors is None and packed is not None:
        raw = np.ascontiguousarray(get(packed))
        u = raw.view(np.uint32) if raw.dtype.itemsize == 4 else raw.astype(np.uint32)
        colors = np.column_stack([(u >> 16) & 255, (u >> 8) & 255, u & 255]).astype(np.uint8)
    if height > 1:
        bad = ~np.isfinite(v).all(axis=1)
        if bad.any():
            keep = ~bad
            v = v[keep]
            colors = colors[keep] if colors is not None else None
            normals = normals[keep] if normals is not None else None
            notes.append(f"dropped {int(bad.sum()):,} points without a measurement (NaN) from the organised cloud")
    return v, None, colors, normals, notes


def _read_pcd_open3d(path: Path):
    import open3d as o3d

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        pc = o3d.io.read_point_cloud(str(path), format="pcd")
    v = np.asarray(pc.points, dtype=np.float64)
    if len(v) == 0:
        _fail(path, "PCD", "no points could be decompressed from its binary_compressed data")
    colors = _to_uint8_colors(np.asarray(pc.colors)) if pc.has_colors() else None
    normals = np.asarray(pc.normals, dtype=np.float64) if pc.has_normals() else None
    return v, None, colors, normals, []


# ---------------------------------------------------------------------------------------------------------------------
# OFF
# ---------------------------------------------------------------------------------------------------------------------

def _read_off(path: Path, size: int):
    with open(path, "rb") as fh:
        lines = [ln.split(b"#", 1)[0].strip() for ln in fh.read().splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        _fail(path, "OFF", "no header")
    head = lines[0].split()
    key = head[0].decode("latin-1")
    if not key.endswith("OFF") or any(ch not in "CNST" for ch in key[:-3].replace("ST", "")):
        _fail(path, "OFF", f"its header keyword is '{key[:20]}', not OFF, COFF, NOFF or CNOFF")
    rest = head[1:]
    body = 1
    if not rest:
        if len(lines) < 2:
            _fail(path, "OFF", "truncated: no vertex and face counts after the OFF line")
        rest = lines[1].split()
        body = 2
    try:
        nv, nf = int(rest[0]), int(rest[1])
    except (ValueError, IndexError):
        _fail(path, "OFF", "the counts line is not 'vertices faces edges'")
    if nv < 0 or nf < 0:
        _fail(path, "OFF", f"negative counts ({nv} vertices, {nf} faces)")
    prefix = key[:-3]
    per_vertex = 3 + 3 * ("N" in prefix) + 3 * ("C" in prefix) + 2 * ("ST" in prefix)
    need = (nv * per_vertex + nf * 4) * TEXT_MIN_BYTES_PER_VALUE
    if need > size:
        _fail(path, "OFF", f"the header promises {nv:,} vertices and {nf:,} faces (at least {need:,} bytes of text) "
                           f"but the file holds only {size:,} bytes; the file is truncated or its header is wrong")
    vrows = lines[body:body + nv]
    if len(vrows) < nv:
        _truncated(path, "vertex", nv, len(vrows), "OFF", "lines")
    frows = lines[body + nv:body + nv + nf]
    if len(frows) < nf:
        _truncated(path, "face", nf, len(frows), "OFF", "lines")
    try:
        arr = np.loadtxt(vrows, dtype=np.float64, ndmin=2) if nv else np.zeros((0, 3))
    except ValueError as exc:
        _fail(path, "OFF", f"vertex lines are not numbers ({_first_line(exc)[:80]})")
    if arr.shape[1] < 3:
        _fail(path, "OFF", f"vertex lines hold {arr.shape[1]} numbers, not x y z")
    v = arr[:, :3].copy()
    col = 3
    normals = colors = None
    if "N" in prefix and arr.shape[1] >= col + 3:
        normals, col = arr[:, col:col + 3].copy(), col + 3
    if "C" in prefix and arr.shape[1] >= col + 3:
        colors = _to_uint8_colors(arr[:, col:col + 3])  # 0-255 integers or 0-1 floats
    try:
        toks = [r.split() for r in frows]
        rows = [np.asarray(t[1:1 + int(t[0])], dtype=np.int64) for t in toks]
    except (ValueError, IndexError) as exc:
        _fail(path, "OFF", f"face lines are not 'n i1 ... in' ({_first_line(exc)[:80]})")
    faces = _polygons_to_triangles(rows) if rows else None
    return v, faces if faces is not None and len(faces) else None, colors, normals, []


# ---------------------------------------------------------------------------------------------------------------------
# text point clouds: XYZ, PTS, TXT
# ---------------------------------------------------------------------------------------------------------------------

def _is_normals(block: np.ndarray) -> bool:
    n = np.linalg.norm(block, axis=1)
    return bool(np.mean(np.abs(n - 1.0) < 0.05) > 0.99)


def _is_colors(block: np.ndarray) -> bool:
    if block.min() < 0 or block.max() > 255:
        return False
    return bool(block.max() <= 1.0 or np.all(block == np.rint(block)))


def _read_text(path: Path, size: int):
    with open(path, "rb") as fh:
        text_lines = fh.read(HEADER_MAX_BYTES).splitlines()[:-1] or [b""]  # whole lines of the start only
        if size <= HEADER_MAX_BYTES:
            fh.seek(0)
            text_lines = fh.read().splitlines()
    first = next((i for i, ln in enumerate(text_lines)
                  if ln.strip() and not ln.lstrip().startswith((b"#", b"//"))), None)
    if first is None:
        _fail(path, "text", "no data lines")
    skip = 0
    promised = None
    tok = text_lines[first].replace(b",", b" ").split()
    if len(tok) == 1:  # PTS: a count line first
        try:
            promised = int(tok[0])
        except ValueError:
            _fail(path, "text", f"the first line '{tok[0][:20].decode('latin-1')}' is neither a point count nor x y z")
        if promised < 0 or promised * 3 * TEXT_MIN_BYTES_PER_VALUE > size:
            _fail(path, "text", f"the count line promises {promised:,} points but the file holds only {size:,} bytes; "
                                f"the file is truncated or its count is wrong")
        skip = first + 1
    delim = "," if b"," in text_lines[first if promised is None else min(first + 1, len(text_lines) - 1)] else None
    try:
        arr = np.loadtxt(path, comments=("#", "//"), ndmin=2, dtype=np.float64, delimiter=delim, skiprows=skip,
                         encoding="latin-1")
    except ValueError as exc:
        msg = _first_line(exc)
        m = re.search(r"at row (\d+)", msg)
        where = f"line {skip + int(m.group(1))}" if m else "a line"
        what = "has a different number of values than the first" if "columns changed" in msg else \
            "holds something that is not a number"
        _fail(path, "text", f"{where} {what}", "fix that line or re-export the points")
    if arr.size == 0:
        return np.zeros((0, 3)), None, None, None, []
    if promised is not None and len(arr) != promised:
        reason = "truncated: " if len(arr) < promised else ""
        _fail(path, "text", f"{reason}the count line promises {promised:,} points but the file holds {len(arr):,}",
              "fix the count line or re-export the points")
    if arr.shape[1] < 3:
        _fail(path, "text", f"lines hold {arr.shape[1]} values; a point cloud needs x y z per line")
    v = arr[:, :3].copy()
    normals = colors = None
    extra = arr.shape[1] - 3
    taken = set()
    for off in range(3, 3 + extra - 2):  # normals: the first triple of unit vectors
        if _is_normals(arr[:, off:off + 3]):
            normals = arr[:, off:off + 3].copy()
            taken = {off, off + 1, off + 2}
            break
    for off in range(arr.shape[1] - 3, 2, -1):  # colours: the last other triple in 0-255 (PTS: x y z i r g b)
        if not taken & {off, off + 1, off + 2} and _is_colors(arr[:, off:off + 3]):
            colors = _to_uint8_colors(arr[:, off:off + 3])  # 0-255 integers or 0-1 floats
            break
    return v, None, colors, normals, []


# ---------------------------------------------------------------------------------------------------------------------
# trimesh formats: OBJ, STL, GLB, glTF
# ---------------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------------------

def head_width(vertices: np.ndarray) -> float:
    """Skull width (left-right) of a head scan in the scan's own unit, from a scale-free orientation estimate.

    The head is oriented by :func:`scalp3d.landmarks.estimate_axes`; the width is the left-right extent of the part of
    the head within 0.45 of its front-back length below the top (above the ears, below the widest point of the skull).
    """
    from .errors import GeometryError
    from .landmarks import estimate_axes

    try:
        axes = estimate_axes(vertices)
    except GeometryError:
        # no face to orient by (a scalp-only scan, a test shape): the middle principal extent is the width
        c = vertices - vertices.mean(axis=0)
        _, _, vt = np.linalg.svd(c[:: max(1, len(c) // 20000)], full_matrices=False)
        return float(np.sort(np.ptp(c @ vt.T, axis=0))[1])
    right, fwd, up = axes
    h = vertices @ up
    top = h.max()
    x = vertices @ right
    y = vertices @ fwd
    depth = 0.0
    span = h.max() - h.min()
    for frac in np.linspace(0.05, 0.9, 35):
        depth = frac * span
        sel = h >= top - depth
        if sel.sum() < 10:
            continue
        length = np.ptp(y[sel])
        if depth >= 0.45 * length:
            break
    sel = h >= top - depth
    return float(np.ptp(x[sel]))


def suggested_scale(width_units: float) -> str:
    """The ``--scale`` (mm per scan unit, two significant digits) that makes a head ``width_units`` wide
    :data:`config.HEAD_WIDTH_TYPICAL_MM` wide, as text for a message."""
    if not np.isfinite(width_units) or width_units <= 0:
        return "MM_PER_UNIT"
    return f"{float(f'{config.HEAD_WIDTH_TYPICAL_MM / width_units:.2g}'):g}"


def check_head_width(path, width_mm: float, width_units: float, how: str) -> None:
    """The one plausibility check of a head's size: refuse (UnitsError, one line) a skull width outside
    :data:`config.HEAD_WIDTH_MIN_MM`-:data:`config.HEAD_WIDTH_MAX_MM`, suggesting the ``--scale`` that makes it
    :data:`config.HEAD_WIDTH_TYPICAL_MM` wide. ``how`` names the given unit ('--units cm', '--scale 10')."""
    if config.HEAD_WIDTH_MIN_MM <= width_mm <= config.HEAD_WIDTH_MAX_MM:
        return
    raise UnitsError(f"{path}: with {how} the head is {width_mm:.3g} mm wide; heads are "
                     f"{config.HEAD_WIDTH_MIN_MM:.0f}-{config.HEAD_WIDTH_MAX_MM:.0f} mm; for this scan try "
                     f"--scale {suggested_scale(width_units)}")


def decide_units(path, vertices, units=None, scale=None, head=True):
    """(scale_to_mm, unit name, reason) for a scan: given by ``scale`` or ``units``, else detected.

    A given unit or scale is checked against the head's size first (:func:`check_head_width`), so a wrong one fails
    here, on size, and never later on a landmark; with ``head=False`` (the placement engine on any mesh) a given unit
    or scale is taken as it is."""
    if scale is not None:
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            scale = float("nan")
        if not np.isfinite(scale) or scale <= 0:
            raise UnitsError(f"{path}: --scale must be a positive number of millimetres per scan unit, not {scale}")
        if head:
            width = head_width(vertices)
            check_head_width(path, width * scale, width, f"--scale {scale:g}")
        return float(scale), "scale", f"given: {scale:g} mm per scan unit"
    if units is not None:
        if units not in config.UNIT_TO_MM:
            raise UnitsError(f"{path}: unknown unit '{units}'; use one of {', '.join(config.UNIT_TO_MM)}")
        if head:
            width = head_width(vertices)
            check_head_width(path, width * config.UNIT_TO_MM[units], width, f"--units {units}")
        return config.UNIT_TO_MM[units], units, f"given: {units}"
    width = head_width(vertices)
    fits = [u for u, s in config.UNIT_TO_MM.items()
            if config.HEAD_WIDTH_MIN_MM <= width * s <= config.HEAD_WIDTH_MAX_MM]
    if len(fits) == 1:
        u = fits[0]
        return config.UNIT_TO_MM[u], u, (f"detected: the head is {width:.4g} {u} wide "
                                         f"({width * config.UNIT_TO_MM[u]:.0f} mm)")
    raise UnitsError(
        f"{path}: head is {width:.3g} units wide, which is not {config.HEAD_WIDTH_MIN_MM:.0f}-"
        f"{config.HEAD_WIDTH_MAX_MM:.0f} mm in mm, cm, m or in; pass --units mm|cm|m|in or --scale MM_PER_UNIT "
        f"(for this scan try --scale {suggested_scale(width)}, a {config.HEAD_WIDTH_TYPICAL_MM:.0f} mm wide head)")


def _read(path: Path, ext: str, size: int):
    """(vertices, faces or None, colours or None, normals or None, notes) from a file of a known extension."""
    _check_kind(path, ext, size)
    if ext == ".ply":
        return _read_ply(path, size)
    if ext == ".pcd":
        return _read_pcd(path, size)
    if ext == ".off":
        return _read_off(path, size)
    if ext in (".xyz", ".pts", ".txt"):
        return _read_text(path, size)
    return _read_trimesh(path, size, ext)


@one_line
def load_scan(path, *, units=None, scale=None, head=True) -> Scan:
    """Read a scan file and scale it to millimetres.

    Parameters
    ----------
    path : str or Path. Mesh: .ply .obj(+.mtl+texture) .stl .off .glb .gltf; point cloud: .ply without faces, .pcd,
        .xyz/.pts/.txt (x y z [r g b] [nx ny nz] per line, a PTS file may start with a count line).
    units : 'mm', 'cm', 'm' or 'in', optional. The scan's unit; detected when omitted.
    scale : float, optional. Millimetres per scan unit (overrides ``units``).
    head : bool. The scan is a head (default): a given unit or scale must give a head 140-220 mm wide. False for
        any mesh (``scalp3d sample``): a given unit or scale is taken as it is.

    Returns
    -------
    Scan with vertices (n,3) float64 in mm (scan axes, never rotated), faces (m,3) int64 or None, colours (n,3) uint8
    or None (textures sampled at the vertices), normals (n,3) float64 or None. Repairs (dropped NaN points, a missing
    texture) are noted at the end of ``units_reason``.

    Raises
    ------
    InputError (one line) for a missing, empty, truncated, mislabelled or unreadable file, fewer than
    ``config.MIN_SCAN_POINTS`` points, 1 % or more non-finite points, or points all on a plane; UnitsError when no unit
    fits.

    Example
    -------
    >>> scan = load_scan("head.ply")            # doctest: +SKIP
    >>> scan.units, scan.vertices.shape          # doctest: +SKIP
    ('mm', (250000, 3))
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the scan file inside it")
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"{path}: the file is empty; re-export the scan")
    ext = path.suffix.lower()
    if ext not in _EXPECTED:
        raise InputError(f"{path}: unknown scan format '{ext}'; use one of "
                         f"{', '.join(sorted(MESH_FORMATS | CLOUD_FORMATS))}")
    try:
        v, f, colors, normals, notes = _read(path, ext, size)
    except (InputError, UnitsError):
        raise
    except MemoryError:
        raise InputError(f"{path}: too large to read in the memory available; decimate the scan") from None
    except Exception as exc:  # noqa: BLE001 - a reader bug or an unforeseen file must still give one line
        raise InputError(f"{path}: cannot be read as a {ext[1:].upper()} scan ({_first_line(exc)}); "
                         f"re-export the scan") from None
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"{path}: coordinates have shape {v.shape}, not (n,3); re-export the scan")
    if colors is not None and len(colors) != len(v):
        colors = None
    if normals is not None and len(normals) != len(v):
        normals = None
    if f is not None and len(f):
        lo, hi = int(f.min()), int(f.max())
        if lo < 0 or hi >= len(v):
            bad = lo if lo < 0 else hi
            raise InputError(f"{path}: a face refers to vertex {bad:,} but the file has {len(v):,} vertices "
                             f"(0-based); re-export the scan")
    finite = np.isfinite(v).all(axis=1)
    n_bad = int(len(v) - finite.sum())
    if n_bad:
        if n_bad >= MAX_NONFINITE_FRACTION * len(v):
            raise InputError(f"{path}: {n_bad:,} of {len(v):,} points have NaN or infinite coordinates "
                             f"({100 * n_bad / len(v):.1f} %, at least {100 * MAX_NONFINITE_FRACTION:g} % is refused); "
                             f"fix the export")
        if f is not None:
            f = f[finite[f].all(axis=1)]
            f = (np.cumsum(finite) - 1)[f]
        v = v[finite]
        colors = colors[finite] if colors is not None else None
        normals = normals[finite] if normals is not None else None
        notes.append(f"dropped {n_bad:,} points with NaN or infinite coordinates")
    reach = float(np.abs(v).max()) if len(v) else 0.0
    if reach > MAX_COORDINATE:
        raise InputError(f"{path}: coordinates reach {reach:.3g} scan units; no head scan is that large in any unit "
                         f"(at most {MAX_COORDINATE:g}); re-export the scan")
    if len(v) < config.MIN_SCAN_POINTS:
        raise InputError(f"{path}: only {len(v)} valid points: too few points for a head scan (at least "
                         f"{config.MIN_SCAN_POINTS} are needed); re-export the scan")
    sample = v[:: max(1, len(v) // 100_000)]
    s = np.linalg.svd(sample - sample.mean(axis=0), compute_uv=False)
    if s[2] <= PLANE_THICKNESS_RATIO * s[0]:
        shape = "a line" if s[1] <= PLANE_THICKNESS_RATIO * s[0] else "a plane"
        raise InputError(f"{path}: not a head: all points lie on {shape}; give a 3D scan of the head")
    scale_mm, unit, reason = decide_units(path, v, units, scale, head)
    if notes:
        reason = "; ".join([reason] + notes)
    return Scan(path=str(path), vertices=v * scale_mm, faces=f, colors=colors, normals=normals, units=unit,
                scale_to_mm=scale_mm, units_reason=reason)
