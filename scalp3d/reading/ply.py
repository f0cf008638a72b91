"""PLY scans (ascii, binary little and big endian), read by a small reader of our own.

The header is parsed first and its counts checked against the file size before anything is allocated (a header
promising 10^12 vertices is refused at once); binary vertex data is read with one structured ``numpy.frombuffer``.
Faces of any polygon size are fanned into triangles. The header parser is also used by ``design`` for painted masks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .columns import _columns, _fan, _polygons_to_triangles
from .sniff import HEADER_MAX_BYTES, TEXT_MIN_BYTES_PER_VALUE, _fail, _first_line, _truncated

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
