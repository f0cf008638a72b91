"""Landmarks: nasion, glabella, left and right preauricular points (LPA, RPA), vertex, inion.

Landmarks come from a file (JSON, mm, scan axes), from the sample head's fiducials, or are estimated. The head frame
has its origin midway between LPA and RPA, x towards RPA, y towards the nasion, z up.

Estimation: nasion, LPA and RPA, the points that fix the head frame, and the face's axes are estimated by
:func:`scalp3d.frame.estimate_frame` (steps 1-5 and the plausibility check are described there); then

6. Glabella: the most prominent midline point 5-25 mm above the nasion. Vertex: the highest point. Inion: the
   rearmost midline point at the height of the preauricular points.

A scan that is too incomplete for a step (no face, no sides, only a dome or a patch) raises a GeometryError that asks
for a landmarks file.
"""
from __future__ import annotations

import numpy as np

from . import config
from .errors import InputError, nearest_name
from .fileio import read_json
from .frame import estimate_axes, estimate_frame  # noqa: F401  (estimate_axes: a public name of this module)
from .types import Head, Landmarks

LANDMARK_KEYS = ("nasion", "glabella", "lpa", "rpa", "vertex", "inion")


def _midline_profile(vertices, origin, R, band_mm=config.MIDLINE_BAND_MM):
    """Points of the midline (|x| < band) in head coordinates, sorted by height: (y forward, z up) arrays."""
    local = (vertices - origin) @ R.T
    sel = np.abs(local[:, 0]) < band_mm
    return local[sel]


def estimate_landmarks(head: Head) -> Landmarks:
    """Estimate nasion, glabella, LPA, RPA, vertex and inion on a head mesh in mm, in any pose.

    See the module's steps. Coordinates are returned in the scan's axes (mm); every source is 'estimated'.
    Raises GeometryError (asking for a landmarks file) when the scan is too incomplete for an estimate.

    Examples
    --------
    >>> lm = estimate_landmarks(head)  # doctest: +SKIP
    >>> lm.nasion.shape
    (3,)
    """
    fr = estimate_frame(head.vertices, head.faces)
    glabella, vertex, inion = _derived_points(fr)
    srcs = {k: "estimated" for k in LANDMARK_KEYS}
    return Landmarks(nasion=fr.nasion, lpa=fr.lpa, rpa=fr.rpa, glabella=glabella, vertex=vertex, inion=inion,
                     sources=srcs, face_axes=fr.axes)


def _derived_points(fr):
    """(glabella (3,), vertex (3,), inion (3,) or None) in mm from an estimated frame (:class:`FrameEstimate`):
    the glabella is the most prominent midline point ``config.GLABELLA_SEARCH_MM`` above the nasion (else
    ``config.GLABELLA_ABOVE_NASION_MM`` straight above it), the vertex the highest surface point, the inion the rearmost
    midline point at the preauricular points' height (in the back half of the head's length)."""
    nasion, R, mid, pts = fr.nasion, fr.axes, fr.midline, fr.points
    up = R[2]
    loc_mid = (mid - nasion) @ R.T
    local = (pts - nasion) @ R.T
    sel = (loc_mid[:, 2] > config.GLABELLA_SEARCH_MM[0]) & (loc_mid[:, 2] < config.GLABELLA_SEARCH_MM[1]) \
        & (loc_mid[:, 1] > -config.GLABELLA_MAX_BEHIND_MM)
    glabella = mid[sel][np.argmax(loc_mid[sel, 1])] if sel.any() else \
        nasion + config.GLABELLA_ABOVE_NASION_MM * up
    vertex = pts[np.argmax(local[:, 2])]
    level = ((0.5 * (fr.lpa + fr.rpa)) - nasion) @ up
    back = (np.abs(loc_mid[:, 2] - level) < config.INION_BAND_MM) & (loc_mid[:, 1] < -0.5 * fr.length_mm)
    inion = mid[back][np.argmin(loc_mid[back, 1])] if back.any() else None
    return glabella, vertex, inion


def load_landmarks(path, scale_to_mm: float = 1.0) -> dict:
    """Read a landmarks JSON file: keys among nasion, glabella, lpa, rpa, vertex, inion, each [x, y, z].

    Coordinates are in millimetres unless the file has ``"units": "scan"`` (then they are in the scan's own unit
    and scaled like the scan). A ``"comment"`` and a ``"scale_mm_per_unit"`` (a record of the scale the points were
    picked for; the scan's scale is what applies) are allowed. Returns a dict of the given points in mm.

    Raises InputError (one line) for a missing, unreadable or malformed file, an unknown key, or a point that is not
    three finite numbers within 10 m of the scan's origin.
    """
    from .errors import one_line

    return one_line(_read_landmarks)(path, scale_to_mm)


def _read_landmarks(path, scale_to_mm):
    from pathlib import Path

    max_mm = config.MAX_COORD_MM  # a landmark farther than this from the scan's origin is a wrong unit or a typo
    if Path(path).is_dir():
        raise InputError(f"{path}: is a folder; give the landmarks JSON file")
    try:
        data = read_json(path, "landmarks")
    except RecursionError:
        raise InputError(f"{path}: landmarks file is not valid JSON (nested too deeply); fix or re-export it") \
            from None
    except OSError as exc:
        raise InputError(f"{path}: landmarks file cannot be read ({exc.strerror or exc}); check the file") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: landmarks must be a JSON object like {{\"nasion\": [x, y, z], ...}}")
    units = data.get("units", "mm")
    if units not in ("mm", "scan"):
        raise InputError(f"{path}: landmarks 'units' must be \"mm\" or \"scan\", not {repr(units)[:40]}")
    factor = scale_to_mm if units == "scan" else 1.0
    out = {}
    for key, val in data.items():
        if key in ("units", "sources", "comment", "scale_mm_per_unit"):
            continue
        if key not in LANDMARK_KEYS:
            near = nearest_name(key, LANDMARK_KEYS)
            hint = f"; did you mean '{near}'?" if near else f"; use {', '.join(LANDMARK_KEYS)}"
            raise InputError(f"{path}: unknown landmark {key[:40]!r}{hint}")
        ok = isinstance(val, list) and len(val) == 3 and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and abs(c) < 1e300 for c in val)
        arr = np.asarray(val, dtype=np.float64) * factor if ok else None
        if arr is None or not np.isfinite(arr).all() or np.abs(arr).max() > max_mm:
            shown = repr(val) if len(repr(val)) <= 60 else repr(val)[:57] + "..."
            raise InputError(f"{path}: landmark '{key}' must be three finite numbers [x, y, z] (within "
                             f"{max_mm:g} mm of the scan's origin), not {shown}")
        out[key] = arr
    return out


def resolve_landmarks(head: Head, given: dict | None = None, given_source: str = "file") -> Landmarks:
    """Landmarks for ``head``: the given ones where present (snapped to the skin), estimates for the rest."""
    from scipy.spatial import cKDTree

    given = dict(given or {})
    need_estimate = any(k not in given for k in ("nasion", "lpa", "rpa", "glabella", "vertex", "inion"))
    est = estimate_landmarks(head) if need_estimate and not all(k in given for k in ("nasion", "lpa", "rpa")) \
        else None
    tree = cKDTree(head.vertices)
    vals, srcs = {}, {}
    for key in LANDMARK_KEYS:
        if key in given:
            dist, i = tree.query(given[key])
            if dist > config.LANDMARK_MAX_OFF_SURFACE_MM:
                raise InputError(f"landmark '{key}' lies {dist:.0f} mm from the head surface; check its units "
                                 f"(mm, or \"units\": \"scan\") and axes")
            vals[key], srcs[key] = np.asarray(given[key], dtype=np.float64), given_source
        elif est is not None and getattr(est, key) is not None:
            vals[key], srcs[key] = getattr(est, key), "estimated"
    lm = Landmarks(nasion=vals["nasion"], lpa=vals["lpa"], rpa=vals["rpa"], sources=srcs)
    lo, hi = config.EAR_DISTANCE_RANGE_MM
    if not lo <= np.linalg.norm(lm.rpa - lm.lpa) <= hi:
        raise InputError(f"LPA and RPA are {np.linalg.norm(lm.rpa - lm.lpa):.0f} mm apart; on a head they are "
                         f"{lo:.0f}-{hi:.0f} mm apart: check the landmarks and their units")
    origin, R = lm.frame()
    local = (head.vertices - origin) @ R.T
    if "glabella" in vals:
        lm.glabella = vals["glabella"]
    else:
        prof = _midline_profile(head.vertices, origin, R)
        n_l = (lm.nasion - origin) @ R.T
        near = prof[np.abs(prof[:, 2] - (n_l[2] + config.GLABELLA_ABOVE_NASION_MM)) < config.GLABELLA_PROFILE_BAND_MM]
        near = near[near[:, 1] > 0]
        g_l = near[np.argmax(near[:, 1])] if len(near) else n_l + [0, 0, config.GLABELLA_ABOVE_NASION_MM]
        lm.glabella, srcs["glabella"] = origin + g_l @ R, "derived"
    lm.vertex = vals.get("vertex", origin + local[np.argmax(local[:, 2])] @ R)
    srcs.setdefault("vertex", "derived")
    if "inion" in vals:
        lm.inion = vals["inion"]
    else:
        prof = _midline_profile(head.vertices, origin, R)
        back = prof[(np.abs(prof[:, 2]) < config.INION_PROFILE_BAND_MM) & (prof[:, 1] < 0)]
        lm.inion = origin + back[np.argmin(back[:, 1])] @ R if len(back) else None
        srcs["inion"] = "derived"
    lm.sources = srcs
    return lm
