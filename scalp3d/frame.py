"""The head frame, estimated from the surface: the head's orientation, and the nasion and the two preauricular
points (LPA, RPA) that fix the frame. Its origin is midway between LPA and RPA, x towards RPA, y towards the nasion,
z up (see :meth:`scalp3d.types.Landmarks.frame`).

It is the lowest stage that knows what a head looks like: reading a scan (:mod:`scalp3d.reading.units`, the skull's
width for the unit), the head surface (:mod:`scalp3d.surface`, the neck cut) and the landmarks
(:mod:`scalp3d.landmarks`, which adds glabella, vertex and inion and resolves given points) all take the frame from
here; nothing here imports a later stage.

Estimation (any pose and position; the orientation is scale-free, the landmark rules are in millimetres):

1. The points are made even over the surface (area-weighted samples of a mesh, or a voxel grid of a point set laid
   in the points' principal axes, so that the same head gives the same points, in the same order, in any pose).
2. The left-right axis is the normal of the best mirror plane: a coarse search over about 200 candidate normals
   (the principal axes and a Fibonacci hemisphere) scored by the nearest-neighbour distance between the mirrored
   points and the surface, then mirrored-point ICP on the best few; the plane is refined on the dense points by
   point-to-plane ICP (matching sparse points point to point leaves it a degree or two off, varying with the sampling).
3. In the mirror plane, the nose tip is the extreme point whose cap (the surface within a small depth of it) is the
   narrowest; a first forward is the middle of the directions for which the tip stays the extreme point; the first
   sense of up is the side along which the midline profile recedes slowly from the tip (the nasal dorsum), not fast
   (the columella), unless the cranium's sections above the tip are clearly larger than those as far below it. Both
   senses are followed to their dorsum frames (step 4), and the first is kept unless the cranium is not above the
   nose in its frame (the first forward can be 25 degrees off, which can turn both tests).
4. Nasion, for the frame: the deepest stretch of the midline profile under its convex hull between the nose tip and
   the forehead (depth under a hull segment is tilt-free; the near-deepest bins are averaged, weighted by depth, so
   the point moves continuously with the data). The pitch then comes from the nasal dorsum (tip to nasion, two
   well-defined points): up is the dorsum tilted back by ``config.DORSUM_TILT_DEG``; tip, nasion and frame are
   iterated to a fixed point on the even points, then again on the midline profile of the dense ones (on a mesh, its
   exact section by the mirror plane, so that neither the pose nor the sampling moves it). The nasion itself lies
   between the middle of the hollow's flat bottom in that frame (its most posterior stretch, within
   ``config.NASION_FLAT_FRAC`` of the scale) and the hull's deepest point, which sits lower, pulled down by the nose
   tip (9 mm on fsaverage): ``config.NASION_DEEP_SHARE`` of the way.
5. LPA and RPA: on a head without ears, their midpoint is predicted from the cranium: below the centre of the sphere
   fitted to the head above the nasion, at fractions of its radius (``config.EAR_BELOW_CRANIUM_CENTRE``,
   ``config.EAR_BEHIND_CRANIUM_CENTRE``, fsaverage proportions), and the skin is found laterally there. (The ears
   are 45 mm from that centre and 115 mm from the nasion: measured from the nasion, the degree or two by which the
   nose frame's pitch varies would move them by several mm.) When the scan has ears (a pinna that stands out of a
   smooth quadratic fit of the side of the head), the point moves to the skin just in front of the tragus: at
   ``config.TRAGUS_HEIGHT_FRACTION`` of the pinna's height, ``config.TRAGUS_WIDTH_MM`` in front of the concha (the
   hollow behind the tragus).

Last, the frame must be a face in front of two ears at human proportions (``config.EAR_DISTANCE_RANGE_MM`` apart,
the nasion ``config.NASION_AHEAD_OF_EARS_RANGE_MM`` in front of them).

A scan that is too incomplete for a step (no face, no sides, only a dome or a patch) raises a GeometryError that asks
for a landmarks file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import config
from .errors import GeometryError
from .meshes import face_areas, random_samples

_INCOMPLETE = "give the landmarks with --landmarks L.json"


def _subsample(points, n, seed=0):
    if len(points) <= n:
        return points
    idx = np.random.default_rng(seed).choice(len(points), n, replace=False)
    return points[np.sort(idx)]


def _even_points(points, n):
    """About ``n`` points spread evenly over a point set (n,3): one mean point per cell of a voxel grid."""
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) <= n:
        return pts
    # the grid is laid in the points' principal axes about their centre, so the same head gives the same even
    # points in any pose (a sign flip of an axis mirrors the cells onto themselves)
    centre = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts[:: max(1, len(pts) // 20_000)] - centre, full_matrices=False)
    local = (pts - centre) @ vt.T
    cell = np.linalg.norm(np.ptp(local, axis=0)) / np.sqrt(n)
    for _ in range(6):
        key = np.floor(local / cell).astype(np.int64) + 100_000
        key = (key[:, 0] * 1_000_003 + key[:, 1]) * 1_000_033 + key[:, 2]
        uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
        if 0.7 * n <= len(uniq) <= 1.4 * n:
            break
        cell *= np.sqrt(len(uniq) / n)
    out = np.zeros((len(uniq), 3))
    np.add.at(out, inv, pts)
    out /= counts[:, None]
    # in an order that does not depend on the pose either (seeded subsamples of them are then the same points)
    return out[np.argsort(np.linalg.norm(out - centre, axis=1), kind="stable")]


def _surface_samples(vertices, faces, n, seed=0):
    """(points (n,3), mm2 per point): area-weighted samples of a triangle mesh, seeded
    (:func:`scalp3d.meshes.random_samples`)."""
    total = float(face_areas(vertices, faces).sum())
    if not np.isfinite(total) or total <= 0:
        raise GeometryError("the head mesh has no area; " + _INCOMPLETE)
    pts, total = random_samples(vertices, faces, n, seed)
    return pts, total / n


def _fibonacci_hemisphere(n):
    i = np.arange(n) + 0.5
    z = i / n
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _mirror(points, normal, offset):
    return points - 2.0 * ((points @ normal) - offset)[:, None] * normal


def _mirror_plane(pts):
    """(unit normal (3,), offset, trimmed mean mirror error) of the best mirror plane of even points (n,3)."""
    from scipy.spatial import cKDTree

    centre = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    cands = np.vstack([vt, _fibonacci_hemisphere(config.MIRROR_CANDIDATES)])
    tree = cKDTree(pts)
    probe = _subsample(pts, config.MIRROR_PROBE_POINTS, seed=1)
    # every candidate's mirrored probe in one query (one per candidate was 1 s a head, in Python overhead)
    mirrored = np.concatenate([_mirror(probe, c, centre @ c) for c in cands])
    scores = np.median(tree.query(mirrored, workers=-1)[0].reshape(len(cands), len(probe)), axis=1)
    picked = []
    for k in np.argsort(scores):
        if all(abs(cands[k] @ cands[j]) < np.cos(np.radians(20.0)) for j in picked):
            picked.append(k)
        if len(picked) == 4:
            break
    best = None
    for k in picked:
        n, d = cands[k], centre @ cands[k]
        for _ in range(config.MIRROR_ICP_ITERATIONS):
            m = _mirror(probe, n, d)
            dist, idx = tree.query(m)
            keep = dist <= np.quantile(dist, config.MIRROR_KEEP_FRACTION)
            src, dst = m[keep], pts[idx[keep]]
            cs, cd = src.mean(axis=0), dst.mean(axis=0)
            u, _, wt = np.linalg.svd((src - cs).T @ (dst - cd))
            rot = (u @ wt).T
            if np.linalg.det(rot) < 0:
                u[:, -1] *= -1
                rot = (u @ wt).T
            t = cd - rot @ cs
            a = rot @ (np.eye(3) - 2.0 * np.outer(n, n))
            b = rot @ (2.0 * d * n) + t
            evals, evecs = np.linalg.eigh(0.5 * (a + a.T))
            n_new = evecs[:, 0] * (1.0 if evecs[:, 0] @ n >= 0 else -1.0)
            d_new = 0.5 * (n_new @ b)
            done = np.linalg.norm(n_new - n) < 1e-5
            n, d = n_new, d_new
            if done:
                break
        dist = np.sort(tree.query(_mirror(probe, n, d))[0])
        err = dist[: int(config.MIRROR_KEEP_FRACTION * len(dist))].mean()
        if best is None or err < best[2]:
            best = (n, d, err)
    return best


def _mirror_refine(pts, n, d):
    """(unit normal (3,), offset): the mirror plane (n, d) refined on dense surface points (k,3) by point-to-plane
    ICP (mirrored probe points moved onto the tangent planes of their nearest points, the nearest
    ``config.MIRROR_KEEP_FRACTION`` of the pairs kept), which does not stall on the spacing of the points as matching
    them point to point does."""
    from scipy.spatial import cKDTree

    tree = cKDTree(pts)
    # tangent planes, where needed: the normal of a point's neighbourhood (its sign does not matter here)
    normals = np.full(pts.shape, np.nan)
    probe = _subsample(pts, config.MIRROR_REFINE_POINTS, seed=3)
    c = probe.mean(axis=0)
    rel = probe - c
    d_c = d - c @ n
    for _ in range(config.MIRROR_REFINE_ITERATIONS):
        e1 = np.cross(n, [1.0, 0, 0] if abs(n[0]) < 0.9 else [0, 1.0, 0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(n, e1)
        s = rel @ n - d_c
        m = probe - 2.0 * s[:, None] * n
        dist, idx = tree.query(m)
        keep = dist <= np.quantile(dist, config.MIRROR_KEEP_FRACTION)
        new = np.unique(idx[keep][np.isnan(normals[idx[keep], 0])])
        if len(new):
            _, nb = tree.query(pts[new], k=config.MIRROR_REFINE_NEIGHBOURS)
            local = pts[nb] - pts[nb].mean(axis=1, keepdims=True)
            normals[new] = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))[1][:, :, 0]
        nu, rk, sk = normals[idx[keep]], rel[keep], s[keep]
        r = np.einsum("ij,ij->i", m[keep] - pts[idx[keep]], nu)
        nn = nu @ n
        jac = np.stack([-2.0 * (rk @ e1) * nn - 2.0 * sk * (nu @ e1), -2.0 * (rk @ e2) * nn - 2.0 * sk * (nu @ e2),
                        2.0 * nn], axis=1)
        step = np.linalg.lstsq(jac, -r, rcond=None)[0]
        n = n + step[0] * e1 + step[1] * e2
        n /= np.linalg.norm(n)
        d_c += step[2]
        if 2.0 * (np.hypot(step[0], step[1]) * np.abs(rel).max() + abs(step[2])) < config.MIRROR_REFINE_TOL_MM:
            break  # no probe point's mirror image moves by more than the tolerance
    return n, d_c + c @ n


def _head_frame(pts):
    """Orientation of a head from even surface points (n,3) in any unit.

    Returns a dict: 'right', 'fwd', 'up' unit vectors (3,) (up is the nasal dorsum tilted back by
    ``config.DORSUM_TILT_DEG``), 'normal', 'offset' (mirror plane: points p with p @ normal == offset), 'tip',
    'nasion' (3,) points and 'scale' (rms radius of the points, scan units).
    Raises GeometryError when no face (nose and nasion) is found.
    """
    pts = np.asarray(pts, dtype=np.float64)
    if len(pts) < 200:
        raise GeometryError(f"the scan has only {len(pts)} usable points, too few to find the face; " + _INCOMPLETE)
    centre = pts.mean(axis=0)
    scale = np.sqrt(((pts - centre) ** 2).sum(axis=1).mean())
    # 2. the mirror plane
    n, d, _ = _mirror_plane(pts)
    x = pts @ n - d
    half = _midline_half_width(pts, scale)
    # 3. the nose tip and a first forward; a first sense of up
    tip, fwd = _nose_tip(pts, x, n, half, scale)
    mid = pts[np.abs(x) < half]
    wide = pts[np.abs(x) < 2 * half]
    side_up = np.cross(n, fwd)
    first = _first_sense_of_up(pts, wide, tip, fwd, side_up, n, scale)
    # 4. the dorsum frame, in the sense that puts the cranium above the nose
    tip_f, nasion, fwd, up = _dorsum_frame_either_sense(pts, mid, tip, fwd, side_up, n, scale, first)
    right = np.cross(fwd, up)
    return {"right": right / np.linalg.norm(right), "fwd": fwd, "up": up, "normal": n, "offset": d,
            "tip": tip_f, "nasion": nasion, "scale": scale}


def _midline_half_width(pts, scale):
    """Half width (scan units) of the midline band about the mirror plane: thin, ``config.MIDLINE_BAND_FRAC`` of
    the scale, but at least the points' median spacing, so that it holds the profile of a sparse scan."""
    from scipy.spatial import cKDTree

    probe = _subsample(pts, 2000, seed=2)
    spacing = np.median(cKDTree(pts).query(probe, k=2)[0][:, 1])
    return max(config.MIDLINE_BAND_FRAC * scale, 1.0 * spacing)


def _nose_tip(pts, x, n, half, scale):
    """(tip (3,), forward (3,) unit): the nose tip, the extreme point of the even points (n,3) whose cap (the points
    within ``config.NOSE_CAP_DEPTH_FRAC`` of the scale of it) is the narrowest across the mirror plane (normal ``n``,
    ``x`` (n,) the points' signed distances to it), among the extreme points of 360 directions in the plane lying
    within ``2 * half`` of it; forward is the mean of the directions for which the tip stays the extreme point.
    Raises GeometryError when no cap is narrow enough to be a nose."""
    a = np.cross(n, [1.0, 0, 0] if abs(n[0]) < 0.9 else [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    thetas = np.radians(np.arange(0.0, 360.0, 1.0))
    dirs = np.cos(thetas)[:, None] * a + np.sin(thetas)[:, None] * b
    h = pts @ dirs.T
    ext = np.argmax(h, axis=0)
    widths = np.full(len(thetas), np.inf)
    for k in range(len(thetas)):
        if abs(x[ext[k]]) > 2 * half:
            continue
        cap = h[:, k] >= h[ext[k], k] - config.NOSE_CAP_DEPTH_FRAC * scale
        widths[k] = np.ptp(x[cap])
    k_tip = int(np.argmin(widths))
    if not np.isfinite(widths[k_tip]) or widths[k_tip] > config.NOSE_CAP_MAX_WIDTH_FRAC * scale:
        raise GeometryError("no nose was found on the scan (the face may be missing or the scan may be only part of "
                            "a head), so the head cannot be oriented; " + _INCOMPLETE)
    tip = pts[ext[k_tip]]
    same = np.linalg.norm(pts[ext] - tip, axis=1) < 0.02 * scale
    fwd = dirs[same].sum(axis=0)
    fwd -= n * (fwd @ n)
    fwd /= np.linalg.norm(fwd)
    return tip, fwd


def _first_sense_of_up(pts, wide, tip, fwd, side_up, n, scale):
    """0 when up is first taken as ``side_up`` (3,), 1 when as its opposite: the side along which the midline
    profile (``wide``, the points near the mirror plane) recedes slowly from the tip (the nasal dorsum), not fast (the
    columella), voted over forward directions tilted by ``config.DORSUM_VOTE_TILTS_DEG`` around the first one (it is
    only good to about 10 degrees); unless the cranium is clearly above or below the tip (sections a little above it
    much larger than those as far below it: mouth, chin, neck), which then decides."""
    votes = 0
    for tilt in np.radians(config.DORSUM_VOTE_TILTS_DEG):
        f_t = np.cos(tilt) * fwd + np.sin(tilt) * side_up
        u_t = np.cross(n, f_t)
        votes += 1 if _recession(wide, tip, f_t, u_t, scale) <= _recession(wide, tip, f_t, -u_t, scale) else -1
    first = 0 if votes > 0 else 1
    cranium = _section_ratio(pts, tip, fwd, side_up, n, scale)
    if cranium > config.CRANIUM_RATIO or cranium < 1.0 / config.CRANIUM_RATIO:
        first = 0 if cranium > 1.0 else 1
    return first


def _dorsum_frame_either_sense(pts, mid, tip, fwd, side_up, n, scale, first):
    """(tip, nasion, fwd, up), each (3,): the nose frame (:func:`_dorsum_frame`, nasion the deepest point of the
    midline profile ``mid`` under its hull, pitch from the nasal dorsum) followed from both senses of up, the
    ``first`` one (see :func:`_first_sense_of_up`) tried first; the first found is kept unless the cranium is not
    above the nose in its own frame. Raises the last GeometryError when neither sense gives a frame."""
    tries, error = {}, None
    senses = (+1.0, -1.0) if first == 0 else (-1.0, +1.0)
    for sense in senses:
        try:
            tries[sense] = _dorsum_frame(mid, tip, fwd, sense * side_up, n, scale)
        except GeometryError as exc:
            error = exc
    # the first forward comes from the extreme points of sparse samples and can be 25 degrees off: enough to turn
    # both tests above, and to make the dorsum frame of the right sense fail from it (the forehead falls out of its
    # reach); a sense that failed starts again from the other sense's frame turned upside down
    for sense in senses:
        if sense not in tries and -sense in tries:
            other = tries[-sense]
            try:
                tries[sense] = _dorsum_frame(mid, other[0], other[2], -other[3], n, scale)
            except GeometryError as exc:
                error = exc
    if not tries:
        raise error
    tries = [tries[s] for s in senses if s in tries]
    # the sense is checked again in the frame found: in the dorsum's frame the cranium is clearly above the nose
    if len(tries) == 2 and _section_ratio(pts, tries[0][0], tries[0][2], tries[0][3], n, scale) < 1.0:
        tries.reverse()
    return tries[0]


def _section_ratio(pts, tip, fwd, up, n, scale):
    """Size of the head's sections (left-right extent times front-back extent) at ``config.CRANIUM_HEIGHTS_FRAC`` of
    the scale above the nose tip, over the same below it."""
    rel = pts - tip
    hh, ff, xx = rel @ up, rel @ fwd, rel @ n
    size = {1.0: 0.0, -1.0: 0.0}
    for sense in (1.0, -1.0):
        for frac in config.CRANIUM_HEIGHTS_FRAC:
            sel = np.abs(hh - sense * frac * scale) < 0.03 * scale
            if sel.sum() >= 10:
                size[sense] += np.ptp(xx[sel]) * np.ptp(ff[sel])
    return size[1.0] / max(size[-1.0], 1e-12)


def _recession(wide, tip, fwd, up, scale):
    """How far the midline profile recedes from the tip at a few heights along ``up`` (summed, scan units)."""
    rel = wide - tip
    hh, ff = rel @ up, rel @ fwd
    total = 0.0
    for step in config.DORSUM_STEP_FRAC:
        sel = np.abs(hh - step * scale) < 0.03 * scale
        total += -ff[sel].max() if sel.any() else scale
    return total


def _dorsum_frame(mid, tip, fwd, up, n, scale, deep_frac=config.NASION_DEEP_FRAC):
    """(tip, nasion, fwd, up): the nose frame iterated to a fixed point, up = the dorsum tilted by
    ``config.DORSUM_TILT_DEG``.
    """
    c, s_ = np.cos(np.radians(config.DORSUM_TILT_DEG)), np.sin(np.radians(config.DORSUM_TILT_DEG))
    for _ in range(3):
        nasion = _nasion_on_profile(mid, tip, fwd, up, scale, deep_frac=deep_frac)
        dors = nasion - tip
        dors -= n * (dors @ n)
        dors /= np.linalg.norm(dors)
        back = np.cross(n, dors)
        if back @ fwd > 0:
            back = -back
        up = c * dors - s_ * back
        fwd = np.cross(up, n) * (1.0 if np.cross(up, n) @ fwd > 0 else -1.0)
        near = np.linalg.norm(mid - tip, axis=1) < 0.15 * scale
        tip = _cap_centre(mid[near], fwd, config.TIP_CAP_FRAC * scale)
    return tip, nasion, fwd, up


def _cap_centre(points, direction, depth):
    """Centre (3,) of the points within ``depth`` of the extreme of ``points`` (n,3) along ``direction``."""
    h = points @ direction
    return points[h >= h.max() - depth].mean(axis=0)


def _nasion_on_profile(mid, tip, fwd, up, scale, bottom=False, deep_frac=config.NASION_DEEP_FRAC):
    """The nasion (3,): the deepest stretch of the midline profile under its upper hull above the nose tip (the bins
    within ``deep_frac`` of the scale of the deepest, weighted by depth); with ``bottom``, the middle of the hollow's
    flat bottom in this frame (the final estimate; the frame's own fixed point uses the deepest stretch, which does
    not feed back into the frame's pitch)."""
    hh = (mid - tip) @ up
    ff = (mid - tip) @ fwd
    step = 0.015 * scale
    heights = np.arange(0.0, 0.9 * scale, step)
    front_side = ff > -0.3 * scale
    front = np.full(len(heights), np.nan)
    which = np.full(len(heights), -1)
    for k, z in enumerate(heights):
        sel = np.flatnonzero((np.abs(hh - z) < 0.75 * step) & front_side)
        if len(sel):
            j = sel[np.argmax(ff[sel])]
            front[k], which[k] = ff[j], j
    ok = np.isfinite(front)
    if ok.sum() < 15 or not ok[: len(ok) // 2].any() or not ok[len(ok) // 2:].any():
        raise GeometryError("the face above the nose is missing from the scan, so the nasion cannot be estimated; "
                            + _INCOMPLETE)
    z, f, j = heights[ok], front[ok], which[ok]
    # upper hull of (z, f) seen from the front: depth of each profile point under it
    hull = []
    for p in zip(z, f):
        while len(hull) >= 2:
            (z1, f1), (z2, f2) = hull[-2], hull[-1]
            if (z2 - z1) * (p[1] - f1) - (f2 - f1) * (p[0] - z1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    hz, hf = np.array(hull).T
    depth = np.interp(z, hz, hf) - f
    depth[z < 0.05 * scale] = 0.0
    k = int(np.argmax(depth))
    if depth[k] < 0.01 * scale:
        raise GeometryError("no nasion (the hollow between forehead and nose) was found on the scan; " + _INCOMPLETE)
    lo, hi = _hollow_around(depth, k)
    if not bottom:
        # depth under the hull segment is frame-free (proportional to the distance from its chord); the bins near the
        # deepest, weighted by how near, give a point that moves continuously with the data instead of jumping
        # between near-tied bins
        w = np.maximum(depth[lo: hi + 1] - (depth[k] - deep_frac * scale), 0.0)
    else:
        # the hollow's bottom is long and flat on many faces, and the hull from the nose tip pulls its deepest point
        # down; the soft-tissue nasion is the most posterior point of the hollow (the profile's tangent parallel to
        # up): the bins near the most posterior one (3-bin smoothed profile), weighted by how near
        fs = np.convolve(np.pad(f, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")[lo: hi + 1]
        w = np.maximum(fs.min() + config.NASION_FLAT_FRAC * scale - fs, 0.0)
    zc = float((w * z[lo: hi + 1]).sum() / w.sum())
    # the profile's point at that height, interpolated between the bins' points
    prof = mid[j]
    return np.array([np.interp(zc, z, prof[:, c]) for c in range(3)])


def _mesh_section(vertices, faces, normal, offset, step_mm):
    """Points (m,3) along the section of a triangle mesh by the plane ``p @ normal == offset``, at most ``step_mm``
    apart along each crossing segment (the middles of equal sub-segments, so shared ends are not doubled).

    Exact and independent of the order of the vertices and triangles; empty when the plane misses the mesh.
    """
    s = vertices @ normal - offset
    sf = s[faces]
    pos = sf > 0.0
    cross = pos.any(axis=1) & ~pos.all(axis=1)
    fc, sc, pc = faces[cross], sf[cross], pos[cross]
    edges = ((0, 1), (1, 2), (2, 0))
    on = np.stack([pc[:, a] != pc[:, b] for a, b in edges], axis=1)  # (m,3): two crossing edges per triangle
    with np.errstate(divide="ignore", invalid="ignore"):
        at = np.stack([vertices[fc[:, a]] + (sc[:, a] / (sc[:, a] - sc[:, b]))[:, None]
                       * (vertices[fc[:, b]] - vertices[fc[:, a]]) for a, b in edges], axis=1)
    pick = np.argsort(~on, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(fc))
    p0, p1 = at[rows, pick[:, 0]], at[rows, pick[:, 1]]
    count = np.maximum(np.ceil(np.linalg.norm(p1 - p0, axis=1) / step_mm), 1).astype(np.int64)
    seg = np.repeat(np.arange(len(fc)), count)
    first = np.repeat(np.cumsum(count) - count, count)
    t = (np.arange(len(seg)) - first + 0.5) / count[seg]
    return p0[seg] + t[:, None] * (p1[seg] - p0[seg])


def _hollow_around(depth, k):
    """(first, last) index of the run around k where depth stays at least half of depth[k] (the hollow around k)."""
    lo, hi = k, k
    while lo > 0 and depth[lo - 1] >= 0.5 * depth[k]:
        lo -= 1
    while hi < len(depth) - 1 and depth[hi + 1] >= 0.5 * depth[k]:
        hi += 1
    return lo, hi


def estimate_axes(points):
    """(right, forward, up) unit vectors of a head in any unit, any pose, from its surface points (n,3).

    The orientation is scale-free (see the module's steps 1-4); up is the nasal dorsum tilted back by
    ``config.DORSUM_TILT_DEG`` (within about 10 degrees of the scanner's up on fsaverage and Lee), right = forward x up.

    Examples
    --------
    >>> right, fwd, up = estimate_axes(head.vertices)  # doctest: +SKIP
    """
    fr = _head_frame(_even_points(points, config.ORIENT_POINTS))
    return fr["right"], fr["fwd"], fr["up"]


def _ear_centre(pts, nasion, fwd, up):
    """The predicted midpoint (3,) of the preauricular points on a head without ears, from its surface points (n,3).

    The cranium above the nasion (the points above the plane through it at right angles to ``up``) is fitted with a
    sphere (least squares); the midpoint lies ``EAR_BELOW_CRANIUM_CENTRE`` of its radius below the sphere's centre
    and ``EAR_BEHIND_CRANIUM_CENTRE`` behind it. The centre is set by the whole vault (a tilt of the cut by two
    degrees moves it by under a millimetre), and the ears are 45 mm from it, not 115 mm from the nasion: a degree
    of pitch in the frame (which comes from the 35 mm nasal dorsum, where a millimetre of nose tip tilts it by two)
    moves them by under a millimetre.
    """
    cap = pts[(pts - nasion) @ up > 0.0]
    if len(cap) < config.MIN_SCAN_POINTS:
        raise GeometryError("the top of the head is missing from the scan, so the preauricular points cannot be "
                            "estimated; " + _INCOMPLETE)
    sol = np.linalg.lstsq(np.c_[2.0 * cap, np.ones(len(cap))], (cap ** 2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    radius = float(np.sqrt(max(sol[3] + centre @ centre, 0.0)))
    return centre - radius * (config.EAR_BELOW_CRANIUM_CENTRE * up + config.EAR_BEHIND_CRANIUM_CENTRE * fwd)


def _preauricular(pts, area_per_point, nasion, centre_l, R, side):
    """The preauricular point (3,) on one side (+1 right, -1 left) near the predicted midpoint ``centre_l``.

    ``R`` rows are (right, fwd, up); ``centre_l`` is the predicted ear midpoint in those axes relative to ``nasion``.
    """
    local = (pts - nasion) @ R.T
    lat = side * local[:, 0]
    win = ((np.abs(local[:, 1] - centre_l[1]) < config.EAR_SEARCH_HALF_MM)
           & (np.abs(local[:, 2] - centre_l[2]) < config.EAR_SEARCH_HALF_MM) & (lat > config.EAR_SEARCH_LATERAL_MIN_MM))
    if win.sum() < config.EAR_SEARCH_MIN_POINTS:
        raise GeometryError(f"the {'right' if side > 0 else 'left'} side of the head is missing from the scan, so "
                            "the preauricular point cannot be estimated; " + _INCOMPLETE)
    p = local[win]
    q = lat[win]
    # outermost skin per location: the smooth fit of the side is made on the outer layer only
    f, u = p[:, 1] - centre_l[1], p[:, 2] - centre_l[2]
    design = np.stack([np.ones_like(f), f, u, f * f, f * u, u * u], axis=1)
    keep = np.ones(len(q), dtype=bool)
    for _ in range(6):
        coef, *_ = np.linalg.lstsq(design[keep], q[keep], rcond=None)
        res = q - design @ coef
        spread = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep])))
        keep = np.abs(res) < max(config.SIDE_FIT_OUTLIER_SPREADS * spread, config.SIDE_FIT_OUTLIER_MIN_MM)
    res = q - design @ coef
    pinna = res > config.PINNA_PROTRUSION_MM
    if pinna.sum() * area_per_point >= config.PINNA_MIN_AREA_MM2:
        # the pinna's biggest cluster (ears are one piece; noise is scattered)
        from scipy.sparse.csgraph import connected_components
        from scipy.spatial import cKDTree

        ip = np.flatnonzero(pinna)
        pairs = cKDTree(p[ip]).query_pairs(3.0 * np.sqrt(area_per_point), output_type="ndarray")
        from scipy.sparse import coo_matrix

        g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(ip), len(ip)))
        _, lab = connected_components(g, directed=False)
        big = ip[lab == np.bincount(lab).argmax()]
        if len(big) * area_per_point >= config.PINNA_MIN_AREA_MM2:
            u_lo, u_hi = p[big, 2].min(), p[big, 2].max()
            u_t = u_lo + config.TRAGUS_HEIGHT_FRACTION * (u_hi - u_lo)
            front_rows = big[np.abs(p[big, 2] - u_t) < config.TRAGUS_ROW_HALF_MM]
            f_t = (p[front_rows, 1] if len(front_rows) else p[big, 1]).max()
            # the concha: the hollow in front of the antihelix; the tragus is its front rim
            pit = (np.abs(p[:, 2] - u_t) < config.CONCHA_HALF_HEIGHT_MM) & (p[:, 1] > f_t - config.CONCHA_BEHIND_MM) \
                & (p[:, 1] < f_t + config.TRAGUS_SEARCH_MM) & (res < -config.CONCHA_DEPTH_MM)
            f_t = (p[pit, 1].max() + config.TRAGUS_WIDTH_MM) if pit.any() else f_t + config.TRAGUS_WIDTH_MM
            # the skin point nearest that spot; where the samples there are all off the smooth side (the tragus
            # and the concha are a few mm wide), the smooth fit of the side at the spot: the ear was found, and the
            # earless prediction below would be a head proportion away (20 mm on the Lee Perry-Smith head)
            gap = (p[:, 1] - f_t) ** 2 + (p[:, 2] - u_t) ** 2
            skin = (np.abs(res) < config.SIDE_FIT_SKIN_MM) & (gap < config.TRAGUS_SKIN_RADIUS_MM ** 2)
            if skin.any():
                return pts[win][np.flatnonzero(skin)[np.argmin(gap[skin])]]
            f_c, u_c = f_t - centre_l[1], u_t - centre_l[2]
            lat_fit = float(coef @ [1.0, f_c, u_c, f_c * f_c, f_c * u_c, u_c * u_c])
            return nasion + R.T @ np.array([side * lat_fit, f_t, u_t])
    # no ear: the outermost skin around the prediction
    near = (np.abs(p[:, 1] - centre_l[1]) < config.EARLESS_SKIN_HALF_MM) \
        & (np.abs(p[:, 2] - centre_l[2]) < config.EARLESS_SKIN_HALF_MM)
    if not near.any():
        raise GeometryError(f"the {'right' if side > 0 else 'left'} side of the head has a hole where the "
                            "preauricular point should be; " + _INCOMPLETE)
    # the smooth fit of the side's skin at exactly the predicted point (no jitter from which sample is nearest)
    lat_fit = float(coef[0])
    return nasion + R.T @ np.array([side * lat_fit, centre_l[1], centre_l[2]])


@dataclass
class FrameEstimate:
    """The head frame estimated on a surface (mm, scan axes), and what it was estimated on."""

    nasion: np.ndarray  #: (3,)
    lpa: np.ndarray  #: (3,)
    rpa: np.ndarray  #: (3,)
    #: (3,3) the face's own upright axes, rows right, forward, up (up: the nasal dorsum tilted back by
    #: ``config.DORSUM_TILT_DEG``); see :attr:`scalp3d.types.Landmarks.face_axes`
    axes: np.ndarray
    points: np.ndarray  #: (k,3) the dense surface points the estimate was made on
    midline: np.ndarray  #: (m,3) the midline profile: the surface's section by the mirror plane
    length_mm: float  #: the head's length behind the nasion, at its height, along the midline


def estimate_frame(vertices, faces) -> FrameEstimate:
    """Estimate the head frame (nasion, LPA, RPA and the face's axes) on a head surface in mm, in any pose: a mesh
    (vertices (n,3), faces (m,3)) or a point set (faces (0,3)).

    See the module's steps. Raises GeometryError (asking for a landmarks file) when the scan is too incomplete for an
    estimate or the frame found is implausible.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    pts, area_pp = _dense_points(v, f)
    fr = _head_frame(_even_points(pts, config.ORIENT_POINTS))
    # the mirror plane again on the dense points (on the even ones it wobbles by a degree or two with the sampling)
    n, offset = _mirror_refine(pts, fr["normal"], fr["offset"])
    mid = _midline_points(v, f, pts, n, offset)
    # the frame's pitch again from the dense profile (the even points hold one or two points per profile bin)
    # (in mm from here: the rms radius of a head alone, so that shoulders or a torso in the scan change nothing)
    scale_mm = config.HEAD_RMS_RADIUS_MM
    _, _, fwd_d, up_d = _dorsum_frame(mid, fr["tip"], fr["fwd"], fr["up"], n, scale_mm, config.NASION_FLAT_FRAC)
    right_d = np.cross(fwd_d, up_d)
    fr.update(fwd=fwd_d, up=up_d, right=right_d / np.linalg.norm(right_d))
    nasion = _nasion_in_frame(mid, fr, n, offset, scale_mm)
    R = np.vstack([fr["right"], fr["fwd"], fr["up"]])
    length = _head_length(mid, nasion, R)
    # the ears' midpoint, predicted from the centre of the cranium (see _ear_centre), on the mirror plane
    centre = _ear_centre(pts, nasion, fr["fwd"], fr["up"])
    centre_l = R @ (centre - n * (centre @ n - offset) - nasion)
    rpa = _preauricular(pts, area_pp, nasion, centre_l, R, +1)
    lpa = _preauricular(pts, area_pp, nasion, centre_l, R, -1)
    _check_plausible(nasion, lpa, rpa, fr["fwd"])
    return FrameEstimate(nasion=nasion, lpa=lpa, rpa=rpa, axes=R, points=pts, midline=mid, length_mm=length)


def _dense_points(v, f):
    """(points (k,3) mm, mm2 of surface per point): ``config.LANDMARK_POINTS`` area-weighted samples of a mesh, or
    even points of a point set (faces (0,3)) with ``config.POINT_SET_AREA_PER_POINT_MM2`` each."""
    if len(f):
        return _surface_samples(v, f, config.LANDMARK_POINTS)
    return _even_points(v, config.LANDMARK_POINTS), config.POINT_SET_AREA_PER_POINT_MM2


def _midline_points(v, f, pts, n, offset):
    """Points (m,3) mm of the midline profile on the mirror plane (``p @ n == offset``): the mesh's own section by
    the plane (exact: the random samples of a 3 mm band around it move the nose tip and the nasion by a millimetre
    or two from one sampling to the next, which tilts the frame by a few degrees and moves the ears' prediction
    115 mm behind by several millimetres), or the dense points ``pts`` (k,3) within ``config.MIDLINE_BAND_MM`` of it
    for a point set. Raises GeometryError when fewer than ``config.MIDLINE_MIN_POINTS``."""
    mid = _mesh_section(v, f, n, offset, config.MIDLINE_SECTION_STEP_MM) if len(f) else \
        pts[np.abs(pts @ n - offset) < config.MIDLINE_BAND_MM]
    if len(mid) < config.MIDLINE_MIN_POINTS:
        raise GeometryError("the scan is too sparse along the face's midline to estimate the nasion; " + _INCOMPLETE)
    return mid


def _nasion_in_frame(mid, fr, n, offset, scale_mm):
    """The nasion (3,) mm on the midline profile ``mid`` (m,3), in the frame ``fr`` (its 'fwd', 'up' and even-points
    'tip'): the nose tip's cap centre on the profile, then the point between the hollow's most posterior point in
    this frame and its deepest point under the chord from the nose tip to the forehead (see
    ``config.NASION_DEEP_SHARE``), projected on the mirror plane (``p @ n == offset``)."""
    tip_band = mid[np.linalg.norm(mid - fr["tip"], axis=1) < config.NOSE_TIP_BAND_MM]
    tip = _cap_centre(tip_band, fr["fwd"], config.NOSE_TIP_CAP_MM) if len(tip_band) else fr["tip"]
    bottom = _nasion_on_profile(mid, tip, fr["fwd"], fr["up"], scale_mm, bottom=True)
    deep = _nasion_on_profile(mid, tip, fr["fwd"], fr["up"], scale_mm, deep_frac=config.NASION_FLAT_FRAC)
    nasion = bottom + config.NASION_DEEP_SHARE * (deep - bottom)
    return nasion - n * (nasion @ n - offset)


def _head_length(mid, nasion, R):
    """Head length (mm) at the nasion's height: from the nasion to the back of the skull along the midline profile
    ``mid`` (m,3), in the frame's axes ``R`` (3,3). Raises GeometryError when under ``config.HEAD_LENGTH_MIN_MM``
    (the back of the head is missing, and with it the ears' prediction)."""
    loc_mid = (mid - nasion) @ R.T
    level_band = np.abs(loc_mid[:, 2]) < config.HEAD_LENGTH_BAND_MM
    length = -loc_mid[level_band, 1].min() if level_band.any() else 0.0
    if length < config.HEAD_LENGTH_MIN_MM:
        raise GeometryError(f"the back of the head is missing from the scan (it is {length:.0f} mm long behind the "
                            "nasion), so the preauricular points cannot be estimated; " + _INCOMPLETE)
    return length


def _check_plausible(nasion, lpa, rpa, fwd):
    """Raise GeometryError unless the frame is a face in front of two ears at human proportions: LPA and RPA
    ``config.EAR_DISTANCE_RANGE_MM`` apart, the nasion ``config.NASION_AHEAD_OF_EARS_RANGE_MM`` in front of their
    midpoint along ``fwd`` (3,)."""
    width = float(np.linalg.norm(rpa - lpa))
    ahead = float((nasion - 0.5 * (lpa + rpa)) @ fwd)
    lo, hi = config.EAR_DISTANCE_RANGE_MM
    ahead_lo, ahead_hi = config.NASION_AHEAD_OF_EARS_RANGE_MM
    if not (lo <= width <= hi and ahead_lo <= ahead <= ahead_hi):
        raise GeometryError(f"the landmarks estimated on this scan are implausible (ears {width:.0f} mm apart, nasion "
                            f"{ahead:.0f} mm in front of them): the face or the sides may be missing or the scan may "
                            "not be in mm; " + _INCOMPLETE)
