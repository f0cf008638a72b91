"""Text scans: OFF meshes (OFF, COFF, NOFF, CNOFF) and XYZ/PTS/TXT point clouds, read with ``numpy.loadtxt``.

Counts in a header or a PTS count line are checked against the file size before anything is read. In XYZ-like files
the extra columns are recognised by their values: the first triple of unit vectors is normals, the last other triple
within 0-255 (or 0-1) is colours.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .columns import _polygons_to_triangles, _to_uint8_colors
from .sniff import HEADER_MAX_BYTES, TEXT_MIN_BYTES_PER_VALUE, _fail, _first_line, _truncated


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
