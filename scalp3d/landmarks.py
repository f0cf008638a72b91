"""Landmarks and the head frame: nasion, glabella, left and right preauricular points (LPA, RPA), vertex, inion.

Landmarks come from a file (JSON, mm, scan axes), from the sample head's fiducials, or are estimated with the heuristic
below. The head frame has its origin midway between LPA and RPA, x towards RPA, y towards the nasion, z up.

Estimation heuristic (scale-free orientation, then millimetre rules; a later design stage refines it):

1. The left-right axis is the normal of the best mirror plane: among the coordinate axes and the principal axes,
   the one whose reflection through the centre maps the surface best onto itself.
2. In the mirror plane, the forward direction is the sharpest extreme (the nose tip: the least surface near it);
   up is the perpendicular along which the midline profile recedes slowly from the nose tip (the nasal dorsum),
   not fast (the underside of the nose).
3. Nasion: on the midline profile, the first dip above the nose tip. Glabella: 12 mm higher along the profile.
   LPA and RPA: the most lateral skin points 8 mm below the nasion and 0.6 head-lengths behind it.
   Vertex: the highest point; inion: the rearmost midline point at the height of the preauricular points.
"""
from __future__ import annotations

import numpy as np

from . import config
from .errors import GeometryError, InputError
from .fileio import read_json
from .types import Head, Landmarks

LANDMARK_KEYS = ("nasion", "glabella", "lpa", "rpa", "vertex", "inion")


def _subsample(points, n, seed=0):
    if len(points) <= n:
        return points
    idx = np.random.default_rng(seed).choice(len(points), n, replace=False)
    return points[np.sort(idx)]


def estimate_axes(points):
    """(right, forward, up) unit vectors of a head in any unit, from its surface points (n,3)."""
    from scipy.spatial import cKDTree

    pts = _subsample(np.asarray(points, dtype=np.float64), 20000)
    centre = pts.mean(axis=0)
    size = np.linalg.norm(np.ptp(pts, axis=0))
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    candidates = [np.eye(3)[k] for k in range(3)] + [vt[k] for k in range(3)]
    tree = cKDTree(pts)
    probe = _subsample(pts, 4000, seed=1)
    best = None
    for axis in candidates:
        off = np.median(probe @ axis)
        mirrored = probe - 2.0 * ((probe @ axis) - off)[:, None] * axis
        err = tree.query(mirrored)[0].mean() / size
        if best is None or err < best[0] - 1e-9:
            best = (err, axis)
    right = best[1] / np.linalg.norm(best[1])
    # two in-plane directions: coordinate axes when the mirror normal is one, else principal axes
    basis = [c - right * (c @ right) for c in candidates]
    basis = sorted(basis, key=lambda c: -np.linalg.norm(c))
    a = basis[0] / np.linalg.norm(basis[0])
    b = np.cross(right, a)
    extent = np.ptp(pts @ a) + np.ptp(pts @ b)

    def extreme_width(d, depth_frac):
        h = pts @ d
        sel = h >= h.max() - depth_frac * extent
        return np.ptp(pts[sel] @ right) if sel.sum() > 1 else 0.0

    dirs = [a, -a, b, -b]
    sharp = [extreme_width(d, 0.01) for d in dirs]
    k_fwd = int(np.argmin(sharp))
    fwd = dirs[k_fwd]
    ups = [d for d in dirs if abs(d @ fwd) < 0.5]
    # up: from the nose tip, the midline profile recedes slowly upwards (the nasal dorsum) and fast downwards
    # (the underside of the nose, towards the lip)
    x = pts @ right
    x0 = np.median(x)
    mid = pts[np.abs(x - x0) < 0.012 * extent]
    f_mid = mid @ fwd
    tip = mid[np.argmax(f_mid)]
    recede = []
    for d in ups:
        h = (mid - tip) @ d
        sel = np.abs(h - 0.02 * extent) < 0.006 * extent
        recede.append(f_mid.max() - f_mid[sel].max() if sel.any() else np.inf)
    up = ups[int(np.argmin(recede))]
    right = np.cross(fwd, up)
    return right / np.linalg.norm(right), fwd, up


def _midline_profile(vertices, origin, R, band_mm=3.0):
    """Points of the midline (|x| < band) in head coordinates, sorted by height: (y forward, z up) arrays."""
    local = (vertices - origin) @ R.T
    sel = np.abs(local[:, 0]) < band_mm
    return local[sel]


def estimate_landmarks(head: Head) -> Landmarks:
    """Estimate nasion, glabella, LPA, RPA, vertex and inion on a head mesh in mm (see the module's heuristic)."""
    v = head.vertices
    right, fwd, up = estimate_axes(v)
    centre = v.mean(axis=0)
    R = np.vstack([right, fwd, up])
    local = (v - centre) @ R.T
    # refine the mirror plane's offset: median x of the points
    x0 = np.median(local[:, 0])
    mid = local[np.abs(local[:, 0] - x0) < 3.0]
    if len(mid) < 30:
        raise GeometryError("the scan is too sparse along the face's midline to estimate the nasion; "
                            "give the landmarks with --landmarks L.json")
    tip = mid[np.argmax(mid[:, 1])]
    # profile: frontmost y per 2 mm height step above the nose tip
    steps = np.arange(tip[2] + 6.0, tip[2] + 70.0, 2.0)
    front = np.full(len(steps), np.nan)
    for k, z in enumerate(steps):
        s = mid[np.abs(mid[:, 2] - z) < 1.5]
        if len(s):
            front[k] = s[:, 1].max()
    ok = np.isfinite(front)
    if ok.sum() < 8:
        raise GeometryError("the face above the nose is missing from the scan, so the nasion cannot be estimated; "
                            "give the landmarks with --landmarks L.json")
    steps, front = steps[ok], front[ok]
    # the nasion: the deepest point of the profile between the nose tip and the forehead
    window = (steps >= steps[0] + 4.0) & (steps <= steps[0] + 54.0)
    k_nas = int(np.flatnonzero(window)[np.argmin(front[window])]) if window.any() else int(np.argmin(front))
    nasion_l = np.array([x0, front[k_nas], steps[k_nas]])
    gl = mid[np.abs(mid[:, 2] - (steps[k_nas] + config.GLABELLA_ABOVE_NASION_MM)) < 1.5]
    glabella_l = (np.array([x0, gl[:, 1].max(), steps[k_nas] + config.GLABELLA_ABOVE_NASION_MM])
                  if len(gl) else nasion_l + [0, 0, config.GLABELLA_ABOVE_NASION_MM])
    # preauricular points
    level = nasion_l[2] - 8.0
    slab = local[np.abs(local[:, 2] - level) < 5.0]
    length = np.ptp(slab[:, 1]) if len(slab) else np.ptp(local[:, 1])
    y_pa = nasion_l[1] - 0.6 * length
    band = slab[np.abs(slab[:, 1] - y_pa) < 5.0]
    if len(band) < 4 or band[:, 0].max() <= x0 or band[:, 0].min() >= x0:
        raise GeometryError("the sides of the head are missing from the scan, so the preauricular points cannot be "
                            "estimated; give the landmarks with --landmarks L.json")
    rpa_l = band[np.argmax(band[:, 0])]
    lpa_l = band[np.argmin(band[:, 0])]
    vertex_l = local[np.argmax(local[:, 2])]
    back = mid[np.abs(mid[:, 2] - level) < 5.0]
    inion_l = back[np.argmin(back[:, 1])] if len(back) else None

    # plausibility: a face in front of two ears, at human proportions
    width = rpa_l[0] - lpa_l[0]
    ahead = nasion_l[1] - 0.5 * (rpa_l[1] + lpa_l[1])
    if not (110.0 <= width <= 200.0 and 60.0 <= ahead <= 140.0 and abs(nasion_l[2] - level) < 40.0):
        raise GeometryError(f"the landmarks estimated on this scan are implausible (ears {width:.0f} mm apart, nasion "
                            f"{ahead:.0f} mm in front of them): the face or the sides may be missing or the head may "
                            "be tilted; give the landmarks with --landmarks L.json")

    def to_scan(p):
        return None if p is None else centre + p @ R

    srcs = {k: "estimated" for k in LANDMARK_KEYS}
    return Landmarks(nasion=to_scan(nasion_l), lpa=to_scan(lpa_l), rpa=to_scan(rpa_l), glabella=to_scan(glabella_l),
                     vertex=to_scan(vertex_l), inion=to_scan(inion_l), sources=srcs)


def load_landmarks(path, scale_to_mm: float = 1.0) -> dict:
    """Read a landmarks JSON file: keys among nasion, glabella, lpa, rpa, vertex, inion, each [x, y, z].

    Coordinates are in millimetres unless the file has ``"units": "scan"`` (then they are in the scan's own unit
    and scaled like the scan). Returns a dict of the given points in mm.
    """
    data = read_json(path, "landmarks")
    if not isinstance(data, dict):
        raise InputError(f"{path}: landmarks must be a JSON object like {{\"nasion\": [x, y, z], ...}}")
    units = data.get("units", "mm")
    if units not in ("mm", "scan"):
        raise InputError(f"{path}: landmarks 'units' must be \"mm\" or \"scan\", not {units!r}")
    factor = scale_to_mm if units == "scan" else 1.0
    out = {}
    for key, val in data.items():
        if key in ("units", "sources", "comment"):
            continue
        if key not in LANDMARK_KEYS:
            import difflib

            near = difflib.get_close_matches(key, LANDMARK_KEYS, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; use {', '.join(LANDMARK_KEYS)}"
            raise InputError(f"{path}: unknown landmark '{key}'{hint}")
        arr = np.asarray(val, dtype=np.float64) if isinstance(val, list) else None
        if arr is None or arr.shape != (3,) or not np.isfinite(arr).all():
            raise InputError(f"{path}: landmark '{key}' must be three finite numbers [x, y, z], not {val!r}")
        out[key] = arr * factor
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
            if dist > 25.0:
                raise InputError(f"landmark '{key}' lies {dist:.0f} mm from the head surface; check its units "
                                 f"(mm, or \"units\": \"scan\") and axes")
            vals[key], srcs[key] = np.asarray(given[key], dtype=np.float64), given_source
        elif est is not None and getattr(est, key) is not None:
            vals[key], srcs[key] = getattr(est, key), "estimated"
    lm = Landmarks(nasion=vals["nasion"], lpa=vals["lpa"], rpa=vals["rpa"], sources=srcs)
    if np.linalg.norm(lm.rpa - lm.lpa) < 60.0:
        raise InputError(f"LPA and RPA are only {np.linalg.norm(lm.rpa - lm.lpa):.0f} mm apart; a head is "
                         "130-180 mm wide between them: check the landmarks")
    origin, R = lm.frame()
    local = (head.vertices - origin) @ R.T
    if "glabella" in vals:
        lm.glabella = vals["glabella"]
    else:
        prof = _midline_profile(head.vertices, origin, R)
        n_l = (lm.nasion - origin) @ R.T
        near = prof[np.abs(prof[:, 2] - (n_l[2] + config.GLABELLA_ABOVE_NASION_MM)) < 2.0]
        near = near[near[:, 1] > 0]
        g_l = near[np.argmax(near[:, 1])] if len(near) else n_l + [0, 0, config.GLABELLA_ABOVE_NASION_MM]
        lm.glabella, srcs["glabella"] = origin + g_l @ R, "derived"
    lm.vertex = vals.get("vertex", origin + local[np.argmax(local[:, 2])] @ R)
    srcs.setdefault("vertex", "derived")
    if "inion" in vals:
        lm.inion = vals["inion"]
    else:
        prof = _midline_profile(head.vertices, origin, R)
        back = prof[(np.abs(prof[:, 2]) < 10.0) & (prof[:, 1] < 0)]
        lm.inion = origin + back[np.argmin(back[:, 1])] @ R if len(back) else None
        srcs["inion"] = "derived"
    lm.sources = srcs
    return lm
