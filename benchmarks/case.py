"""The patient's case (issue 14): time of the re-scan registration on a 500k-point re-scan (goal: under 10 s).

    python benchmarks/case.py [--repeat 3] [--real] [--with-face] [--points 500000] [--end-to-end]

The reference is the sample head (fsaverage, Loop-subdivided 3 times: about 130k vertices) with its fiducials; the
re-scan is the same head subdivided 4 times (other vertices, other triangles), the face cut away (more than 35 mm
in front of the ears, below the brow), its longest edges split until it has ``--points`` (500,000) vertices, 0.2 mm
Gaussian noise, a 1.5 mm patch of hair on the crown, moved by a seeded rigid motion (30 degrees, up to 100 mm). ``--real`` uses the real head instead
(../shared/data/heads/lee-perry-smith.obj, 48 mm per unit, split to 1.5 mm edges). ``--with-face``
keeps the face (the coarse step is then the landmarks estimated on today's scan, not the global search).

Prints the re-scan's size, the time of :func:`scalp3d.registration.register` (best of the repeats, and its steps),
its figures (RMS, p95, overlap), the error of the recovered motion on 2,000 scalp points against the known one, and the
machine's load average before the run.

``--end-to-end`` also times what a practitioner waits for (goal: under 30 s for a full head): a case made from the
reference at the default plan (not timed), session 1 marked done, then ``scalp3d case session CASE 2 --scan TODAY
--no-preview`` (today's re-scan read from a binary PLY, meshed, smoothed, registered, the dots carried, the programs
made, verified and written) and ``scalp3d case touch-up`` (with the pictures) after sessions 2 and 3 are done, each in
a fresh process. With ``--real`` today's landmarks (the reference's moved by the known motion) are given with
``--landmarks``: that re-scan keeps its whole neck, and the case's head is cut below it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEE = ROOT.parent / "shared" / "data" / "heads" / "lee-perry-smith.obj"
LEE_LANDMARKS = ROOT / "tests" / "data" / "lee-perry-smith.landmarks.json"


def _densify(v, f, points):
    """(v, f) with the longest edges split (trimesh's subdivide_to_size) until at least ``points`` vertices."""
    import trimesh

    edges = np.linalg.norm(v[f[:, [1, 2, 0]]] - v[f], axis=2).max(axis=1)
    for q in (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3, 0.0):
        if len(v) >= points:
            break
        v2, f2 = trimesh.remesh.subdivide_to_size(v, f, max_edge=float(np.quantile(edges, q)), max_iter=4)
        if len(v2) >= points or q == 0.0:
            v, f = np.asarray(v2, dtype=np.float64), np.asarray(f2, dtype=np.int64)
    return v, f


def rescan(head, lm, seed=0, face=False, noise_mm=0.2, hair_mm=1.5, points=500_000):
    """(today's Head, true 4x4 motion reference -> today), with at least ``points`` vertices."""
    from scipy.spatial.transform import Rotation

    from scalp3d.meshes import vertex_normals_of
    from scalp3d.types import Head

    rng = np.random.default_rng(seed)
    origin, R = lm.frame()
    local = (head.vertices - origin) @ R.T
    brow = ((lm.glabella - origin) @ R.T)[2]
    keep = np.ones(len(local), dtype=bool) if face else ~((local[:, 1] > 35.0) & (local[:, 2] < brow))
    v, f = _densify(*submesh(head.vertices, head.faces, keep), points)
    n = vertex_normals_of(v, f)
    v = v + rng.normal(0.0, noise_mm, v.shape)
    crown = origin + R.T @ np.array([20.0, -30.0, 90.0])
    crown = v[np.argmin(np.linalg.norm(v - crown, axis=1))]
    v = v + hair_mm * (np.linalg.norm(v - crown, axis=1) < 30.0)[:, None] * n
    axis = rng.normal(size=3)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.deg2rad(30.0)).as_matrix()
    T[:3, 3] = rng.uniform(-100.0, 100.0, 3)
    v = v @ T[:3, :3].T + T[:3, 3]
    return Head(v, f, vertex_normals_of(v, f)), T


def heads(real):
    """(reference Head, its Landmarks, the finer surface the re-scan is cut from)."""
    from scalp3d.landmarks import load_landmarks, resolve_landmarks
    from scalp3d.meshes import vertex_normals_of
    from scalp3d.sample import load_sample_head
    from scalp3d.types import Head

    if not real:
        _, ref, fid = load_sample_head(subdivisions=3)
        _, fine, _ = load_sample_head(subdivisions=4)
        return ref, resolve_landmarks(ref, fid, given_source="fiducials"), fine
    import trimesh

    m = trimesh.load(str(LEE), force="mesh")
    v = np.asarray(m.vertices, dtype=np.float64) * 48.0
    f = np.asarray(m.faces, dtype=np.int64)
    ref = Head(v, f, vertex_normals_of(v, f))
    lm = resolve_landmarks(ref, load_landmarks(LEE_LANDMARKS, scale_to_mm=48.0))
    v2, f2 = trimesh.remesh.subdivide_to_size(v, f, max_edge=1.5)
    f2 = np.asarray(f2, dtype=np.int64)
    return ref, lm, Head(v2, f2, vertex_normals_of(v2, f2))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--real", action="store_true", help="the real head (../shared/data/heads) instead of the sample")
    ap.add_argument("--with-face", action="store_true", help="keep the face in the re-scan")
    ap.add_argument("--points", type=int, default=500_000, help="at least this many points in the re-scan")
    ap.add_argument("--end-to-end", action="store_true", help="also time case session --scan and case touch-up")
    args = ap.parse_args(argv)
    from scalp3d.registration import register, scalp_points

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    t = time.perf_counter()
    ref, lm, fine = heads(args.real)
    today, T = rescan(fine, lm, face=args.with_face, points=args.points)
    print(f"reference: {len(ref.vertices):,} vertices; re-scan: {len(today.vertices):,} points, "
          f"{len(today.faces):,} triangles (made in {time.perf_counter() - t:.1f} s)")
    pts, _ = scalp_points(ref, lm, 2000, seed=9)
    times = []
    for _ in range(max(args.repeat, 1)):
        t = time.perf_counter()
        reg = register(today, ref, reference_landmarks=lm)
        times.append(time.perf_counter() - t)
    err = np.linalg.norm(reg.apply(pts) - (pts @ T[:3, :3].T + T[:3, 3]), axis=1)
    steps = ", ".join(f"{k} {v:.2f}" for k, v in reg.steps_s.items())
    print(f"registration: {min(times):.2f} s (best of {len(times)}; goal under 10 s); steps (s): {steps}")
    print(f"figures: RMS {reg.rms_mm:.3f} mm, p95 {reg.p95_mm:.3f} mm, overlap {reg.overlap:.1%}")
    print(f"recovered motion on 2,000 scalp points: {np.sqrt(np.mean(err ** 2)):.3f} mm RMS, {err.max():.3f} mm max")
    print(f"method: {reg.method}")
    ok = min(times) < 10.0
    if args.end_to_end:
        # the real head's re-scan keeps its whole neck, the case's head is cut below it: without today's landmarks
        # (the face is missing) the neck is not cut and the search does not find the pose (refused, 24 % overlap)
        ok &= end_to_end(ref, today, _moved_landmarks(lm, T) if args.real else None)
    return 0 if ok else 1


def _moved_landmarks(lm, T) -> dict:
    """The reference's nasion and ears moved by the known motion: today's landmarks, as a practitioner would pick."""
    return {"units": "mm", **{k: (T[:3, :3] @ getattr(lm, k) + T[:3, 3]).tolist() for k in ("nasion", "lpa", "rpa")}}


def end_to_end(ref, today, today_landmarks=None) -> bool:
    """Time `case session K --scan TODAY` and `case touch-up --scan TODAY` as a practitioner runs them."""
    from scalp3d.export import write_head_ply

    def cli(*argv):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", "import sys; from scalp3d.cli import main; sys.exit(main(sys.argv[1:]))",
                            *map(str, argv), "--quiet"], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"scalp3d {' '.join(map(str, argv))} failed: {r.stderr.strip()}")
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_head_ply(ref, d / "ref.ply")
        write_head_ply(today, d / "today.ply")
        given = []
        if today_landmarks is not None:
            (d / "today.json").write_text(json.dumps(today_landmarks))
            given = ["--landmarks", d / "today.json"]
        cli("case", "new", d / "p.case", "--scan", d / "ref.ply", "--units", "mm")
        cli("case", "done", d / "p.case", 1)
        from scalp3d.case import Case

        with Case.open(d / "p.case") as c:
            n = [int((c.dots().session == k).sum()) for k in (1, 2, 3)]
        t_session = cli("case", "session", d / "p.case", 2, "--out", d / "s2", "--scan", d / "today.ply", "--units",
                        "mm", *given, "--no-preview")
        cli("case", "done", d / "p.case", 2)
        cli("case", "done", d / "p.case", 3)
        t_touch = cli("case", "touch-up", d / "p.case", "--scan", d / "today.ply", "--units", "mm", *given, "--out",
                      d / "t")
    print(f"end to end, {sum(n):,} dots planned ({n[1]:,} in session 2), re-scan of {len(today.vertices):,} points: "
          f"case session --scan --no-preview {t_session:.1f} s (goal under 30 s), case touch-up --scan {t_touch:.1f} s "
          "(with the pictures)")
    return t_session < 30.0


if __name__ == "__main__":
    sys.exit(main())
