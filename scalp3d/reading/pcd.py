"""PCD point clouds (ascii, binary, binary_compressed), read by a small reader of our own.

The header is parsed and checked (FIELDS, SIZE, TYPE, COUNT agree; POINTS = WIDTH x HEIGHT; the counts fit the file)
before anything is allocated; binary data is read with one structured ``numpy.frombuffer``. Packed ``rgb``/``rgba``
colours are unpacked; in an organised cloud (HEIGHT > 1) NaN points are pixels without a measurement and are dropped.
binary_compressed data is checked here and decompressed by open3d, imported only then.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .columns import _columns, _to_uint8_colors
from .sniff import HEADER_MAX_BYTES, TEXT_MIN_BYTES_PER_VALUE, _fail, _first_line

_PCD_KINDS = {"F": "f", "I": "i", "U": "u"}


def _pcd_header(path: Path):
    """({KEYWORD: [values]}, offset of the data) of a PCD header, which ends at its DATA line."""
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
    return meta, offset


def _pcd_layout(path: Path, meta: dict):
    """(fields, counts, height, points, dtype of one point) from a parsed header, refusing inconsistent counts."""
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
    try:
        dt = np.dtype([(f, "<" + _PCD_KINDS[t.upper()] + str(s), (c,) if c > 1 else ())
                       for f, t, s, c in zip(fields, types, sizes, counts)])
    except (KeyError, TypeError):
        _fail(path, "PCD", f"field types {' '.join(types)} with sizes {' '.join(map(str, sizes))} are not F/I/U 1-8")
    return fields, counts, height, points, dt


def _pcd_binary(path: Path, offset: int, have: int, points: int, dt):
    """A column getter ``get(name) -> (n,)`` over binary point data, after checking its size."""
    need = points * dt.itemsize
    if need > have:
        _fail(path, "PCD", f"the header promises {points:,} points ({need:,} bytes) but the file holds only "
                           f"{have:,} bytes after its header; the file is truncated or its header is wrong")
    with open(path, "rb") as fh:
        fh.seek(offset)
        arr = np.frombuffer(fh.read(need), dt, points)
    return lambda n: arr[n] if arr[n].ndim == 1 else arr[n][:, 0]


def _pcd_ascii(path: Path, offset: int, have: int, points: int, fields, counts, dt):
    """A column getter ``get(name) -> (n,)`` over ascii point data, after checking its size and shape."""
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
    return get


def _pcd_check_compressed(path: Path, offset: int, have: int, points: int, dt) -> None:
    """Refuse binary_compressed data whose sizes do not fit the file or the header, before decompressing it."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        sizes8 = fh.read(8)
    packed_len = int.from_bytes(sizes8[:4], "little") if len(sizes8) == 8 else -1
    unpacked_len = int.from_bytes(sizes8[4:], "little") if len(sizes8) == 8 else -1
    if packed_len < 0 or packed_len > have - 8 or unpacked_len != points * dt.itemsize:
        _fail(path, "PCD", f"the header promises {points:,} points ({points * dt.itemsize:,} bytes) but the "
                           f"compressed data holds {max(packed_len, 0):,} of {max(have - 8, 0):,} bytes "
                           f"unpacking to {max(unpacked_len, 0):,}; the file is truncated or its header is wrong")


def _unpack_rgb(get, fields):
    """(n,3) uint8 colours from a packed ``rgb``/``rgba`` field (0x00RRGGBB in 4 bytes), or None without one."""
    packed = next((n for n in ("rgb", "rgba") if n in fields), None)
    if packed is None:
        return None
    raw = np.ascontiguousarray(get(packed))
    u = raw.view(np.uint32) if raw.dtype.itemsize == 4 else raw.astype(np.uint32)
    return np.column_stack([(u >> 16) & 255, (u >> 8) & 255, u & 255]).astype(np.uint8)


def _read_pcd(path: Path, size: int):
    meta, offset = _pcd_header(path)
    fields, counts, height, points, dt = _pcd_layout(path, meta)
    mode = (meta.get("DATA") or ["?"])[0].lower()
    have = size - offset
    if mode == "binary":
        get = _pcd_binary(path, offset, have, points, dt)
    elif mode == "ascii":
        get = _pcd_ascii(path, offset, have, points, fields, counts, dt)
    elif mode == "binary_compressed":
        _pcd_check_compressed(path, offset, have, points, dt)
        return _read_pcd_open3d(path)
    else:
        _fail(path, "PCD", f"DATA is '{mode}', not ascii, binary or binary_compressed")
    v, colors, normals = _columns(get, fields)
    if colors is None:
        colors = _unpack_rgb(get, fields)
    notes = []
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
