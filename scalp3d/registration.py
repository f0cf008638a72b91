"""Re-scan registration (issue 14, point 3): today's scan of a patient brought onto the reference head of the case.

Each visit the patient sits in another pose, and sometimes another scanner is used; the dots planned on the reference
head must be found again on today's scan. :func:`register` finds the rigid motion from the reference head (mm) to
today's head (mm, today's scan axes); :func:`carry_points` carries dots with it and re-projects them on today's skin.

Method:

1. **Scalp region** of the reference (the only part that is matched): in the reference's head frame (see
   :meth:`scalp3d.types.Landmarks.frame`), the surface higher than ``REGISTRATION_SCALP_MIN_Z_MM`` above the ears'
   level, less the face (more than ``REGISTRATION_FACE_AHEAD_MM`` in front of the ears and below the glabella plus
   ``REGISTRATION_BROW_MARGIN_MM``) and less the holes the surface stage filled (not measured). It is sampled with
   ``REGISTRATION_SCALP_POINTS`` seeded area-weighted points.
2. **Size check**: today's surface must be the reference's size within ``REGISTRATION_SIZE_RATIO_RANGE`` (its RMS
   radius); a scan in the wrong units (x10, x25.4, x1000) is refused before any fit.
3. **Coarse alignment**: today's landmarks (given, else estimated by :func:`scalp3d.landmarks.resolve_landmarks`) put
   today's head frame on the reference's. When they cannot be had (a re-scan without the face) or the result fails the
   checks, a **global search** runs instead: ``REGISTRATION_SEARCH_ROTATIONS`` rotations spread over all of SO(3)
   (the icosahedral group, and again turned by a fixed 36 degree rotation), each started with the surfaces' centroids
   together, refined all at once by a batched point-to-plane ICP with Tukey's kernel that narrows its distances and
   keeps fewer starts at each step (``REGISTRATION_SEARCH_SCHEDULE``, by their share of matched points); the best
   ``REGISTRATION_SEARCH_KEEP`` go through the middle ICP stage and the best of them on. It found the motion in every
   one of 12 seeded poses over all of SO(3) (sample head) and 5 (real head), faces and backs missing.
4. **Robust ICP, multi-scale** (open3d point-to-plane, Tukey's biweight kernel: a residual over the kernel's width
   weighs nothing, so a missing face or back, a stray object or hair grown 1-2 mm do not pull): the stages of
   ``REGISTRATION_ICP_STAGES`` (voxel, largest correspondence distance, kernel width, iterations) from coarse to fine;
   the reference's scalp points are the source, today's surface points with today's normals the target. The coarse
   stage is open3d's ``registration_icp``; the middle and fine stages (numpy, one k-d tree) also solve a uniform
   layer of today's surface outside the reference's (``offset_mm``, within ``REGISTRATION_OFFSET_RANGE_MM``): hair
   grown everywhere since the reference scan, which no rigid motion explains and which otherwise slid the fit
   3-4 mm along the dome; a patch of hair is left to the kernel.
5. **Figures**: the distances of the reference's scalp points, moved, to today's triangle surface (exact point to
   triangle). ``overlap`` is the share within ``REGISTRATION_OVERLAP_TOL_MM``; ``rms_mm`` and ``p95_mm`` are taken
   on those (the overlapping part). A result under ``REGISTRATION_MIN_OVERLAP`` or over ``REGISTRATION_MAX_RMS_MM`` is
   refused with a :class:`RegistrationError` naming the figures and the fix.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import config
from .errors import InputError, Scalp3dError
from .meshes import face_areas
from .types import Head, Landmarks


class RegistrationError(Scalp3dError):
    """Today's scan cannot be registered to the reference head (too little overlap, too large a residual, another
    object or the wrong units); the one-line message gives the figures and what to do. Exit code 2."""

    exit_code = 2


@dataclass
class Registration:
    """A rigid motion from the reference head (mm) to today's scan (mm, today's axes), and how well it fits.

    transform : (4,4) float64, homogeneous: ``today = R @ reference + t``
    rms_mm, p95_mm : residual distances (mm) of the reference's scalp points, moved, to today's surface, on the
        overlapping part (those within ``tolerance_mm``)
    overlap : share (0-1) of the reference's scalp points with today's surface within ``tolerance_mm``
    method : how it was found (coarse step, ICP stages), one line
    """

    transform: np.ndarray
    rms_mm: float
    p95_mm: float
    overlap: float
    method: str
    tolerance_mm: float = config.REGISTRATION_OVERLAP_TOL_MM
    points: int = 0  #: reference scalp points the figures were measured on
    seconds: float = 0.0
    steps_s: dict = field(default_factory=dict)
    #: today's surface found this far (mm) outside the reference's over the scalp, uniformly (hair grown since the
    #: reference scan); the figures are measured with it taken off
    offset_mm: float = 0.0

    @property
    def rotation(self) -> np.ndarray:
        return self.transform[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self.transform[:3, 3]

    def apply(self, points) -> np.ndarray:
        """Points (n,3) in the reference's mm moved into today's axes (mm)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return p @ self.rotation.T + self.translation

    def rotate(self, vectors) -> np.ndarray:
        """Directions (n,3) (normals) turned into today's axes."""
        return np.asarray(vectors, dtype=np.float64).reshape(-1, 3) @ self.rotation.T

    def to_dict(self) -> dict:
        """The registration report (``registration.json``): method, residual RMS and p95 (mm), overlap, transform."""
        return {"method": self.method, "rms_mm": round(float(self.rms_mm), 4), "p95_mm": round(float(self.p95_mm), 4),
                "overlap": round(float(self.overlap), 4), "tolerance_mm": float(self.tolerance_mm),
                "points": int(self.points), "transform": [[round(float(c), 9) for c in row] for row in self.transform],
                "offset_mm": round(float(self.offset_mm), 3), "units": "mm", "direction": "reference head -> today's scan",
                "seconds": round(float(self.seconds), 3)}


# --- the scalp region and surface samples ---------------------------------------------------------------------------

def _samples(vertices, faces, normals, n, seed):
    """(points (n,3), unit normals (n,3)): ``n`` seeded area-weighted samples of a mesh, normals interpolated."""
    area = face_areas(vertices, faces)
    rng = np.random.default_rng(seed)
    k = rng.choice(len(faces), n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.column_stack([1.0 - s, s * (1.0 - r2), s * r2])
    f = faces[k]
    pts = np.einsum("ij,ijk->ik", w, vertices[f])
    nrm = np.einsum("ij,ijk->ik", w, normals[f])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return pts, nrm


def scalp_faces(head: Head, landmarks: Landmarks) -> np.ndarray:
    """Indices of the faces of ``head`` in its scalp region (see the module's step 1), from ``landmarks``' frame."""
    origin, R = landmarks.frame()
    local = (head.vertices - origin) @ R.T
    brow = config.REGISTRATION_BROW_MARGIN_MM
    if landmarks.glabella is not None:
        brow += float(((landmarks.glabella - origin) @ R.T)[2])
    face = (local[:, 1] > config.REGISTRATION_FACE_AHEAD_MM) & (local[:, 2] < brow)
    keep = (local[:, 2] > config.REGISTRATION_SCALP_MIN_Z_MM) & ~face
    if head.filled is not None and len(head.filled) == len(keep):
        keep &= ~np.asarray(head.filled, dtype=bool)
    return np.flatnonzero(keep[head.faces].all(axis=1))


def scalp_points(head: Head, landmarks: Landmarks, n: int = config.REGISTRATION_SCALP_POINTS, seed: int = 0):
    """(points (n,3), normals (n,3)) mm: seeded area-weighted samples of ``head``'s scalp region."""
    sel = scalp_faces(head, landmarks)
    if len(sel) == 0:
        raise InputError("the reference head has no scalp above its ears in the frame of its landmarks; check the "
                         "reference landmarks")
    return _samples(head.vertices, head.faces[sel], head.vertex_normals, n, seed)


def _rms_radius(points) -> float:
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))


def _target_points(head: Head):
    """(points, normals) of today's surface for the ICP: its vertices when its edges are at most
    ``REGISTRATION_TARGET_SPACING_MM`` (a remeshed head), else area samples at that spacing (a coarse mesh's
    vertices are too far apart for point-to-plane)."""
    area = float(face_areas(head.vertices, head.faces).sum())
    wanted = int(min(area / config.REGISTRATION_TARGET_SPACING_MM ** 2, config.REGISTRATION_TARGET_MAX_POINTS))
    if len(head.vertices) >= wanted:
        return head.vertices, head.vertex_normals
    return _samples(head.vertices, head.faces, head.vertex_normals, wanted, seed=1)


# --- open3d helpers ---------------------------------------------------------------------------------------------------

def _cloud(points, normals=None):
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    if normals is not None:
        pc.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(normals, dtype=np.float64))
    return pc


def _down(pc, voxel):
    if voxel <= 0:
        return pc
    out = pc.voxel_down_sample(voxel)
    if out.has_normals():
        out.normalize_normals()
    return out


def _icp(source, target, init, max_dist, kernel_mm, iterations):
    import open3d as o3d

    reg = o3d.pipelines.registration
    est = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=kernel_mm))
    crit = reg.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7, max_iteration=int(iterations))
    res = reg.registration_icp(source, target, max_dist, init, est, crit)
    return np.asarray(res.transformation), float(res.fitness)


class _Pyramid:
    """The source (reference scalp) and target (today) clouds at each ICP stage's voxel, built once."""

    def __init__(self, src_pts, tgt_pts, tgt_nrm):
        self.src = _cloud(src_pts)
        self.tgt = _cloud(tgt_pts, tgt_nrm)
        self._cache = {}

    def at(self, voxel):
        if voxel not in self._cache:
            # the target a little finer than the source: every source point finds its plane
            self._cache[voxel] = (_down(self.src, voxel), _down(self.tgt, 0.5 * voxel))
        return self._cache[voxel]

    def fitness(self, T, voxel, tol):
        import open3d as o3d

        s, t = self.at(voxel)
        return float(o3d.pipelines.registration.evaluate_registration(s, t, tol, T).fitness)

    def refine(self, T, stages):
        for voxel, max_dist, kernel, iterations in stages:
            s, t = self.at(voxel)
            T, _ = _icp(s, t, T, max_dist, kernel, iterations)
        return T


def _frame_transform(ref_lm: Landmarks, today_lm: Landmarks) -> np.ndarray:
    """The 4x4 motion putting the reference's head frame on today's: ``p -> o_t + R_t^T R_r (p - o_r)``."""
    o_r, R_r = ref_lm.frame()
    o_t, R_t = today_lm.frame()
    R = R_t.T @ R_r
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = o_t - R @ o_r
    return T


def _search_rotations() -> np.ndarray:
    """(k,3,3) rotations spread over SO(3): the icosahedral group (60, 72 degrees apart at most between neighbours'
    axes), and the same turned by a fixed 36 degree rotation about an axis of no symmetry of the group."""
    from scipy.spatial.transform import Rotation

    group = Rotation.create_group("I").as_matrix()
    turn = Rotation.from_rotvec(np.deg2rad(36.0) * np.array([0.3, 0.5, 0.81]) / np.linalg.norm([0.3, 0.5, 0.81]))
    both = np.concatenate([group, group @ turn.as_matrix()])
    return both[: config.REGISTRATION_SEARCH_ROTATIONS]


def _batched_icp(src, tree, tgt_pts, tgt_nrm, Ts, schedule, offset=None):
    """Point-to-plane ICP with Tukey's kernel on many starts at once (numpy and one k-d tree: open3d's ICP builds its
    tree anew on every call, which dominated a search over a hundred starts).

    src (m,3); tree: cKDTree of tgt_pts (p,3) with unit normals tgt_nrm; Ts (k,4,4) starts; schedule: list of
    (max distance mm, kernel width mm, iterations, starts kept after). Returns (Ts (k',4,4), fitness (k',)), best
    first; fitness is the share of source points within ``REGISTRATION_SEARCH_TOL_MM`` at the end.

    offset : (k,) mm or None: when given, a 7th unknown is solved with the motion: today's surface lying this far
    outside the reference's everywhere (hair grown since the reference scan: a uniform layer a rigid motion cannot
    explain, which would otherwise slide the fit along the dome); the last values are then returned third.
    """
    from scipy.spatial.transform import Rotation

    Ts = np.array(Ts, dtype=np.float64)
    tol = config.REGISTRATION_SEARCH_TOL_MM
    fit = np.zeros(len(Ts))
    delta = None if offset is None else np.array(offset, dtype=np.float64).reshape(len(Ts))
    dim = 6 if delta is None else 7
    for max_dist, kernel, iterations, keep in schedule:
        for _ in range(int(iterations)):
            P = np.einsum("kij,mj->kmi", Ts[:, :3, :3], src) + Ts[:, None, :3, 3]  # (k,m,3)
            d, j = tree.query(P.reshape(-1, 3), distance_upper_bound=max_dist, workers=-1)
            ok = np.isfinite(d).reshape(P.shape[:2])
            j = np.minimum(j, len(tgt_pts) - 1).reshape(P.shape[:2])
            q, n = tgt_pts[j], tgt_nrm[j]
            r = ((P - q) * n).sum(axis=2)  # negative when today's surface lies outside
            if delta is not None:
                r = r + delta[:, None]
            w = np.where(ok & (np.abs(r) < kernel), (1.0 - (r / kernel) ** 2) ** 2, 0.0)
            c = (w[:, :, None] * P).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)[:, None]
            parts = [np.cross(P - c[:, None, :], n), n] + ([] if delta is None else [np.ones(r.shape + (1,))])
            J = np.concatenate(parts, axis=2)  # (k,m,6 or 7)
            A = np.einsum("km,kmi,kmj->kij", w, J, J) + 1e-6 * np.eye(dim)
            b = -np.einsum("km,kmi,km->ki", w, J, r)
            x = np.linalg.solve(A, b[:, :, None])[:, :, 0]
            if delta is not None:
                delta = np.clip(delta + x[:, 6], *config.REGISTRATION_OFFSET_RANGE_MM)
            dR = Rotation.from_rotvec(x[:, :3]).as_matrix()
            # p -> c + dR (p - c) + v, after the current motion
            new = np.repeat(np.eye(4)[None], len(Ts), axis=0)
            new[:, :3, :3] = dR
            new[:, :3, 3] = c + x[:, 3:6] - np.einsum("kij,kj->ki", dR, c)
            Ts = new @ Ts
        P = np.einsum("kij,mj->kmi", Ts[:, :3, :3], src) + Ts[:, None, :3, 3]
        d, _ = tree.query(P.reshape(-1, 3), distance_upper_bound=tol, workers=-1)
        fit = np.isfinite(d).reshape(P.shape[:2]).mean(axis=1)
        order = np.argsort(-fit, kind="stable")[: int(keep)]
        Ts, fit = Ts[order], fit[order]
        delta = None if delta is None else delta[order]
    return (Ts, fit) if delta is None else (Ts, fit, delta)


def _refine_fine(pyr, T, stages):
    """(transform, offset mm): the given ICP stages (voxel, max distance, kernel, iterations) from ``T``, each solving
    the motion and today's uniform offset outside the reference (see :func:`_batched_icp`)."""
    from scipy.spatial import cKDTree

    delta = np.zeros(1)
    Ts = np.asarray(T, dtype=np.float64)[None]
    for voxel, max_dist, kernel, iterations in stages:
        s, t = pyr.at(voxel)
        tp, tn = np.asarray(t.points), np.asarray(t.normals)
        Ts, _, delta = _batched_icp(np.asarray(s.points), cKDTree(tp), tp, tn, Ts,
                                    [(max_dist, kernel, iterations, 1)], offset=delta)
    return Ts[0], float(delta[0])


def _global_search(pyr, c_ref, c_today):
    """The best start found by trying rotations over SO(3) (centroids together), refined by a batched coarse ICP that
    keeps fewer starts as it narrows (``REGISTRATION_SEARCH_SCHEDULE``), the best ``REGISTRATION_SEARCH_KEEP`` again
    by the middle ICP stage; returns (transform, fitness)."""
    from scipy.spatial import cKDTree

    src = np.asarray(pyr.at(config.REGISTRATION_SEARCH_VOXEL_MM)[0].points)
    tgt = pyr.at(2.0 * config.REGISTRATION_SEARCH_VOXEL_MM)[1]
    tp, tn = np.asarray(tgt.points), np.asarray(tgt.normals)
    rots = _search_rotations()
    Ts = np.repeat(np.eye(4)[None], len(rots), axis=0)
    Ts[:, :3, :3] = rots
    Ts[:, :3, 3] = c_today - rots @ c_ref
    Ts, _ = _batched_icp(src, cKDTree(tp), tp, tn, Ts, config.REGISTRATION_SEARCH_SCHEDULE)
    stage = config.REGISTRATION_ICP_STAGES[1]
    best = []
    for T in Ts[: config.REGISTRATION_SEARCH_KEEP]:
        T = pyr.refine(T, [stage])
        best.append((pyr.fitness(T, stage[0], 0.5 * config.REGISTRATION_SEARCH_TOL_MM), T))
    best.sort(key=lambda x: -x[0])
    return best[0][1], best[0][0]


# --- the figures ------------------------------------------------------------------------------------------------------

def _figures(query, points, normals, T, offset, tol):
    """(rms, p95, overlap) of the distances of ``points`` moved by ``T`` and lifted by ``offset`` mm along their
    normals (today's uniform layer of hair) to today's surface (see the module)."""
    d = query.distance(points @ T[:3, :3].T + T[:3, 3] + offset * (normals @ T[:3, :3].T))
    near = d[d <= tol]
    if len(near) == 0:
        return float("inf"), float("inf"), 0.0
    return float(np.sqrt(np.mean(near ** 2))), float(np.percentile(near, 95)), float(len(near) / len(d))


def _acceptable(fig) -> bool:
    rms, _, overlap = fig
    return overlap >= config.REGISTRATION_MIN_OVERLAP and rms <= config.REGISTRATION_MAX_RMS_MM


def _as_landmarks(head, given, what):
    from .landmarks import resolve_landmarks

    if isinstance(given, Landmarks):
        return given
    return resolve_landmarks(head, given, given_source=what) if given is not None else resolve_landmarks(head)


def register(today: Head, reference: Head, *, today_landmarks=None, reference_landmarks=None,
             progress=None) -> Registration:
    """Register today's scan to the reference head: the rigid motion reference (mm) -> today (mm), and its figures.

    Parameters
    ----------
    today : Head, today's scan as a surface (see :func:`scalp3d.surface.make_head`); it may lack the face or the
        back, carry hair grown 1-2 mm, or stray pieces
    reference : Head, the case's reference head
    today_landmarks : Landmarks or dict of points (mm, today's axes), optional: estimated when missing; when they
        cannot be estimated (no face in today's scan), a global search over all rotations replaces them
    reference_landmarks : Landmarks or dict (mm, the reference's axes), optional: estimated when missing
    progress : callable taking a line, optional

    Returns
    -------
    Registration (transform, rms_mm, p95_mm, overlap, method)

    Raises
    ------
    RegistrationError (exit code 2, one line) when today's scan is not the reference's size (wrong units), or the
    best fit found overlaps less than ``config.REGISTRATION_MIN_OVERLAP`` of the reference's scalp or leaves an RMS
    residual over ``config.REGISTRATION_MAX_RMS_MM``.
    """
    from .errors import GeometryError
    from .progress import Timer
    from .proximity import SurfaceQuery

    t0 = time.perf_counter()
    step = Timer(progress, prefix="registration: ", digits=3)
    for name, h in (("today's scan", today), ("the reference head", reference)):
        if not isinstance(h, Head) or h.faces is None or len(h.faces) == 0:
            raise InputError(f"{name} must be a head surface (a triangle mesh: scalp3d.surface.make_head); got "
                             f"{type(h).__name__}")
    with step("scalp"):
        ref_lm = _as_landmarks(reference, reference_landmarks, "file")
        src_pts, src_nrm = scalp_points(reference, ref_lm)
    with step("size"):
        ref_all, _ = _samples(reference.vertices, reference.faces, reference.vertex_normals,
                              config.REGISTRATION_SIZE_POINTS, seed=2)
        today_all, _ = _samples(today.vertices, today.faces, today.vertex_normals,
                                config.REGISTRATION_SIZE_POINTS, seed=3)
        ratio = _rms_radius(today_all) / _rms_radius(ref_all)
        lo, hi = config.REGISTRATION_SIZE_RATIO_RANGE
        if not lo <= ratio <= hi:
            raise RegistrationError(
                f"today's scan is {ratio:.3g} times the size of the reference head (a re-scan of the same head is "
                f"{lo:g}-{hi:g}): check its units (--units or --scale) and that it is this patient's head")
    with step("target"):
        tgt_pts, tgt_nrm = _target_points(today)
        pyr = _Pyramid(src_pts, tgt_pts, tgt_nrm)
        query = SurfaceQuery(today)
    stages = config.REGISTRATION_ICP_STAGES
    tol = config.REGISTRATION_OVERLAP_TOL_MM
    tried = []
    T = fig = None
    with step("landmarks"):
        today_lm, why = None, ""
        try:
            today_lm = _as_landmarks(today, today_landmarks, "file")
        except (GeometryError, InputError) as exc:
            why = str(exc).split(";")[0]
    if today_lm is not None:
        with step("icp"):
            T, offset = _refine_fine(pyr, pyr.refine(_frame_transform(ref_lm, today_lm), stages[:1]), stages[1:])
            fig = _figures(query, src_pts, src_nrm, T, offset, tol)
        given = today_landmarks is not None
        tried.append(f"landmarks ({'given' if given else 'estimated'} on today's scan)")
    if T is None or not _acceptable(fig):
        with step("search"):
            T2, _ = _global_search(pyr, ref_all.mean(axis=0), today_all.mean(axis=0))
        with step("icp"):
            T2, offset2 = _refine_fine(pyr, T2, stages[1:])
            fig2 = _figures(query, src_pts, src_nrm, T2, offset2, tol)
        if T is not None and today_lm is not None:
            tried[-1] += " failed its checks"
        elif why:
            tried.append(f"no landmarks on today's scan ({why})")
        tried.append(f"global search over {len(_search_rotations())} rotations")
        if fig is None or (fig2[2], -fig2[0]) > (fig[2], -fig[0]):
            T, fig, offset = T2, fig2, offset2
    rms, p95, overlap = fig
    icp = ", ".join(f"{v:g}/{d:g}/{k:g} mm" for v, d, k, _ in stages)
    method = (f"coarse: {'; '.join(tried)}; robust point-to-plane ICP (Tukey kernel; voxel/max distance/kernel "
              f"{icp}; open3d, then the fine stages solving a uniform layer outside the reference too: "
              f"{offset:+.2f} mm) on {len(src_pts)} reference scalp points above the ears, face excluded")
    reg = Registration(transform=T, rms_mm=rms, p95_mm=p95, overlap=overlap, method=method, tolerance_mm=tol,
                       points=len(src_pts), seconds=time.perf_counter() - t0, steps_s=dict(step.stages),
                       offset_mm=offset)
    if not _acceptable(fig):
        shown = "no" if not np.isfinite(rms) else f"{rms:.2f} mm"
        raise RegistrationError(
            f"today's scan does not match the reference head: {overlap:.0%} of the reference scalp lies within "
            f"{tol:g} mm of it (at least {config.REGISTRATION_MIN_OVERLAP:.0%} needed), residual RMS {shown} (at most "
            f"{config.REGISTRATION_MAX_RMS_MM:g} mm); rescan the whole scalp of the same patient, or give today's "
            f"landmarks (--landmarks)")
    return reg


def _on_rim(faces, f, bary, eps=1e-5):
    """(n,) bool: the closest points (faces ``f`` (n,3) of the mesh ``faces``, barycentric ``bary``) on the mesh's
    boundary: on a boundary edge (used by one face only) or at a vertex of one."""
    e = np.sort(np.concatenate([faces[:, [1, 2]], faces[:, [2, 0]], faces[:, [0, 1]]]), axis=1)
    key = e[:, 0] * (int(faces.max()) + 1) + e[:, 1]
    uniq, count = np.unique(key, return_counts=True)
    rim = uniq[count == 1]
    rim_vertices = np.zeros(int(faces.max()) + 1, dtype=bool)
    rim_vertices[rim // (int(faces.max()) + 1)] = True
    rim_vertices[rim % (int(faces.max()) + 1)] = True
    zero = bary < eps
    out = np.zeros(len(f), dtype=bool)
    for k in range(3):  # on the edge opposite vertex k
        a, b = f[:, (k + 1) % 3], f[:, (k + 2) % 3]
        ek = np.minimum(a, b) * (int(faces.max()) + 1) + np.maximum(a, b)
        out |= zero[:, k] & np.isin(ek, rim)
    at_vertex = zero.sum(axis=1) >= 2
    corner = f[np.arange(len(f)), np.argmax(bary, axis=1)]
    out |= at_vertex & rim_vertices[corner]
    return out


def carry_points(points, normals, registration: Registration, today_head: Head, *,
                 max_offset_mm: float = config.REGISTRATION_CARRY_MAX_MM):
    """Carry dots from the reference head to today's surface: moved by the registration, then re-projected on today's
    triangles (closest point), with today's (smooth) normals there.

    Parameters
    ----------
    points, normals : (n,3) mm and unit vectors on the reference head
    registration : Registration from :func:`register`
    today_head : Head, today's surface (the one registered)
    max_offset_mm : a moved dot farther than this from today's surface, or more than
        ``config.REGISTRATION_CARRY_RIM_MM`` from it with its closest point on the rim of a hole or of a missing
        region (the boundary of today's mesh), lies where today's scan has no skin: refused with a RegistrationError (one line). A dot under hair grown since the
        reference scan is carried (lifted onto the hair's surface by its length).

    Returns
    -------
    points (n,3) mm on today's surface, normals (n,3) unit (today's), face_ids (n,) int64 into ``today_head.faces``,
    bary (n,3) float64 barycentric coordinates in those faces
    """
    import open3d as o3d

    from .proximity import SurfaceQuery

    p = registration.apply(points)
    registration.rotate(normals)  # checks the shape; today's normals replace them
    if len(p) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    query = SurfaceQuery(today_head)
    ans = query.scene.compute_closest_points(o3d.core.Tensor(np.ascontiguousarray(p, dtype=np.float32)))
    fid = ans["primitive_ids"].numpy().astype(np.int64)
    uv = ans["primitive_uvs"].numpy().astype(np.float64)
    bary = np.column_stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]])
    bary = np.clip(bary, 0.0, 1.0)
    bary /= bary.sum(axis=1, keepdims=True)
    f = today_head.faces[fid]
    q = np.einsum("ij,ijk->ik", bary, today_head.vertices[f])
    n = np.einsum("ij,ijk->ik", bary, today_head.vertex_normals[f])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    dist = np.linalg.norm(q - p, axis=1)
    far = (dist > max_offset_mm) | ((dist > config.REGISTRATION_CARRY_RIM_MM) & _on_rim(today_head.faces, f, bary))
    if far.any():
        raise RegistrationError(
            f"{int(far.sum())} of {len(p)} dots fall where today's scan has no skin (their closest point on it is on "
            f"the rim of a missing region, or up to {dist[far].max():.1f} mm away): rescan covering the whole "
            f"treated area")
    return q, n, fid, bary
