"""Load a head scan in real units: meshes (PLY OBJ STL OFF GLB/glTF) and point clouds (PLY without faces, PCD, XYZ/PTS).

Coordinates stay in the scan's own axes, scaled to millimetres. The unit is given (``units`` or ``scale``) or detected
from the width of the skull (140-220 mm); when no unit fits, a one-line :class:`UnitsError` asks for one. Every read
failure becomes a one-line :class:`InputError` naming the file and the fix; nothing here may print a traceback, hang or
allocate more than the file could hold.

How each format is read
-----------------------
Every file is first sniffed (:mod:`.sniff`): content that is not the format its extension names is refused.

* PLY (ascii, binary little and big endian; :mod:`.ply`) and PCD (ascii, binary; :mod:`.pcd`): by small readers of
  our own. The header is parsed first and its counts are checked against the file size before anything is allocated
  (a header promising 10^12 vertices is refused at once); binary vertex data is read with one structured
  ``numpy.frombuffer``.
* OFF (OFF, COFF, NOFF, CNOFF) and XYZ/PTS/TXT text (:mod:`.text`): with ``numpy.loadtxt``.
* OBJ (+ MTL + texture), STL, GLB and glTF (:mod:`.trimesh_formats`): by trimesh, after the header checks trimesh
  does not make (binary STL size, ASCII STL end, GLB length). Textures are sampled at the vertices' UVs into vertex
  colours; a missing texture image gives a scan without colours and a note, not a failure.

Colours are returned as (n,3) uint8 per vertex (float colours 0-1 are scaled by 255, 16-bit ones by 1/257); normals
(n,3) float64 are kept when the file has them. Notes on what was repaired or dropped are appended to
``Scan.units_reason`` after a "; ".

Non-finite coordinates: points with a NaN or infinite coordinate are dropped (with their faces) and noted when they are
fewer than :data:`MAX_NONFINITE_FRACTION` of the points, and refused otherwise; in an organised PCD (HEIGHT > 1) NaN
points are pixels without a measurement and are always dropped.

The unit (:mod:`.units`) is given or detected after the checks common to every format (:func:`load_scan`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import config
from ..errors import InputError, UnitsError, one_line
from ..types import Scan
from .pcd import _read_pcd
from .ply import _read_ply
from .sniff import _EXPECTED, CLOUD_FORMATS, MESH_FORMATS, _check_kind, _first_line
from .text import _read_off, _read_text
from .trimesh_formats import _read_trimesh
from .units import check_head_width, decide_units, head_width, suggested_scale

__all__ = ["load_scan", "decide_units", "head_width", "check_head_width", "suggested_scale", "MESH_FORMATS",
           "CLOUD_FORMATS"]

#: points with NaN/inf coordinates are dropped (and noted) below this fraction of the scan, refused at or above it
MAX_NONFINITE_FRACTION = 0.01
#: a scan whose thinnest principal extent is below this fraction of its widest is flat: not a head
PLANE_THICKNESS_RATIO = 1e-3
#: coordinates beyond this (in the scan's own unit) are refused: a km in mm, and far from where float64 sums of
#: squares overflow (a file with 1e300 in it is broken, not a head)
MAX_COORDINATE = 1e9


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
    size, ext = _check_file(path)
    v, f, colors, normals, notes = _read_guarded(path, ext, size)
    v, f, colors, normals = _check_arrays(path, v, f, colors, normals)
    v, f, colors, normals = _drop_nonfinite(path, v, f, colors, normals, notes)
    _check_extent(path, v)
    scale_mm, unit, reason = decide_units(path, v, units, scale, head)
    if notes:
        reason = "; ".join([reason] + notes)
    return Scan(path=str(path), vertices=v * scale_mm, faces=f, colors=colors, normals=normals, units=unit,
                scale_to_mm=scale_mm, units_reason=reason)


def _check_file(path: Path):
    """(size in bytes, lower-case extension) of a scan file that exists, is a file, is not empty and has a known
    extension; a one-line InputError otherwise."""
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
    return size, ext


def _read_guarded(path: Path, ext: str, size: int):
    """:func:`_read`, with any failure but ours turned into one line naming the file."""
    try:
        return _read(path, ext, size)
    except (InputError, UnitsError):
        raise
    except MemoryError:
        raise InputError(f"{path}: too large to read in the memory available; decimate the scan") from None
    except Exception as exc:  # noqa: BLE001 - a reader bug or an unforeseen file must still give one line
        raise InputError(f"{path}: cannot be read as a {ext[1:].upper()} scan ({_first_line(exc)}); "
                         f"re-export the scan") from None


def _check_arrays(path: Path, v, f, colors, normals):
    """Coordinates as (n,3) float64; colours and normals of another length dropped; faces refused when they refer to
    a vertex the file does not have."""
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
    return v, f, colors, normals


def _drop_nonfinite(path: Path, v, f, colors, normals, notes):
    """Points with NaN or infinite coordinates dropped with their faces (and noted in ``notes``) when they are fewer
    than :data:`MAX_NONFINITE_FRACTION` of the points; refused otherwise."""
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
    return v, f, colors, normals


def _check_extent(path: Path, v) -> None:
    """Refuse coordinates beyond :data:`MAX_COORDINATE`, fewer than ``config.MIN_SCAN_POINTS`` points, or points all
    on a line or a plane."""
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
