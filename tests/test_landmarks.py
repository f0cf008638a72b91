"""Landmarks: estimates on real heads in any pose, the head frame, and landmark files."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import LEE_SCALE_MM
from scalp3d.errors import InputError
from scalp3d.landmarks import estimate_axes, estimate_landmarks, load_landmarks, resolve_landmarks
from scalp3d.sample import load_sample_head
from scalp3d.types import Head

LEE_LANDMARKS = Path(__file__).parent / "data" / "lee-perry-smith.landmarks.json"
FIDUCIALS = ("nasion", "lpa", "rpa")
TARGET_MM = 6.0  # issue 5: every estimated fiducial within 6 mm of the reference, in any pose
N_POSES = 50  # issue 11: LPA and RPA (and the nasion) within the target in every pose of at least 50


@pytest.fixture(scope="module")
def sample():
    _, head, fid = load_sample_head(subdivisions=2)
    return head, fid


@pytest.fixture(scope="module")
def lee(lee_path):
    import trimesh

    m = trimesh.load(str(lee_path), force="mesh")
    v = np.asarray(m.vertices, dtype=np.float64) * LEE_SCALE_MM
    f = np.asarray(m.faces, dtype=np.int64)
    ref = load_landmarks(LEE_LANDMARKS, scale_to_mm=LEE_SCALE_MM)
    return v, f, ref


def _pose_errors(vertices, faces, ref, n_poses, seed=0):
    """(n_poses + 1, 3) errors (mm) of nasion, LPA, RPA: upright first, then seeded random poses.

    A pose is a rotation over the whole sphere, a translation and a new order of the vertices and triangles: a
    scanner's export order is arbitrary, and with the very same triangle list in every pose the estimate's seeded
    surface samples would be the same points in every pose, which hides any drift.
    """
    from scipy.spatial.transform import Rotation

    from scalp3d.placement import vertex_normals_of

    rng = np.random.default_rng(seed)
    normals = vertex_normals_of(vertices, faces)  # once: a pose turns them with the head
    out = []
    for k in range(n_poses + 1):
        if k == 0:
            rot, shift = np.eye(3), np.zeros(3)
            v, f, n = vertices, faces, normals
        else:
            rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
            shift = rng.uniform(-500.0, 500.0, 3)
            order = rng.permutation(len(vertices))
            v, n = vertices[order] @ rot.T + shift, normals[order] @ rot.T
            f = np.argsort(order)[faces][rng.permutation(len(faces))]
        est = estimate_landmarks(Head(v, f, n))
        out.append([np.linalg.norm(getattr(est, key) - (ref[key] @ rot.T + shift)) for key in FIDUCIALS])
    return np.array(out)


def _report(name, errs):
    worst, median = errs.max(axis=0), np.median(errs, axis=0)
    ok = (errs < TARGET_MM).all(axis=1)
    print(f"\n{name}: errors (mm) upright " + ", ".join(f"{k} {e:.1f}" for k, e in zip(FIDUCIALS, errs[0]))
          + f"; over {len(errs)} poses worst " + ", ".join(f"{k} {e:.1f}" for k, e in zip(FIDUCIALS, worst))
          + ", median " + ", ".join(f"{k} {e:.1f}" for k, e in zip(FIDUCIALS, median))
          + f"; poses with all three within {TARGET_MM:g} mm: {ok.sum()}/{len(errs)}"
          + (f" (over it: {', '.join(map(str, np.flatnonzero(~ok)))})" if not ok.all() else ""))
    return worst, median, ok


@pytest.fixture(scope="module")
def fsaverage_pose_errors(sample):
    head, fid = sample
    return _pose_errors(head.vertices, head.faces, fid, N_POSES)


@pytest.fixture(scope="module")
def lee_pose_errors(lee):
    v, f, ref = lee
    return _pose_errors(v, f, ref, 8)


def test_estimates_near_fsaverage_fiducials(sample):
    head, fid = sample
    est = estimate_landmarks(head)
    errors = {k: float(np.linalg.norm(getattr(est, k) - fid[k])) for k in FIDUCIALS}
    print("landmark errors on fsaverage (mm):", {k: round(v, 1) for k, v in errors.items()})
    assert max(errors.values()) < TARGET_MM, errors


def test_fsaverage_in_random_poses(fsaverage_pose_errors):
    """The estimate does not depend on the pose (issue 11: the earless head's LPA and RPA used to be a head
    proportion measured from the nasion along a pitch that varied by a few degrees with the sampling, and the sense
    of up could flip): medians within the target, every pose entirely within it."""
    worst, median, ok = _report("fsaverage", fsaverage_pose_errors)
    assert (median < TARGET_MM).all(), median
    assert ok.all(), ok


def test_fsaverage_every_pose_within_target(fsaverage_pose_errors):
    assert (fsaverage_pose_errors < TARGET_MM).all()


@pytest.mark.parametrize("subdivisions", [0, 1, 3])
def test_fsaverage_at_every_resolution(subdivisions):
    """The native 2,033-vertex fsaverage head and its Loop refinements (Loop shrinks the nose a few mm): every
    fiducial within the target, upright and in a few poses."""
    _, head, fid = load_sample_head(subdivisions=subdivisions)
    errs = _pose_errors(head.vertices, head.faces, fid, 3, seed=subdivisions + 7)
    _report(f"fsaverage, {subdivisions} Loop subdivisions", errs)
    assert (errs < TARGET_MM).all(), errs


def test_lee_annotation_file_loads(lee):
    v, _, ref = lee
    from scipy.spatial import cKDTree

    assert set(ref) == {"nasion", "glabella", "lpa", "rpa", "vertex", "inion"}
    dist, _ = cKDTree(v).query(np.array([ref[k] for k in ref]))
    assert dist.max() < 6.0  # every annotated point lies on the skin (vertices are 1-6 mm apart)
    assert abs(np.linalg.norm(ref["lpa"] - ref["rpa"]) - 136.0) < 5.0


def test_lee_estimates_near_annotation(lee_pose_errors):
    worst, median, ok = _report("Lee Perry-Smith (48 mm/unit)", lee_pose_errors)
    assert (lee_pose_errors[0] < TARGET_MM).all(), lee_pose_errors[0]  # upright
    assert (median < TARGET_MM).all(), median
    assert ok.mean() >= 0.75, ok


@pytest.mark.parametrize("convention", [
    "z-up", "y-up",
    "y-up facing -x",
])
def test_axes_in_common_conventions(sample, convention):
    head, _ = sample
    # fsaverage is RAS: x right, y forward, z up. Re-express it in other scanner conventions.
    R = {"z-up": np.eye(3),
         "y-up": np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0.0]]) @ np.diag([1, 1, 1.0]),
         "y-up facing -x": np.array([[0, -1, 0], [0, 0, 1], [-1, 0, 0.0]])}[convention]
    if np.linalg.det(R) < 0:
        R = R @ np.diag([-1, 1, 1.0])  # a proper rotation: mirror images are not heads
    v = head.vertices @ R.T
    right, fwd, up = estimate_axes(v)
    assert np.degrees(np.arccos(np.clip(fwd @ (R @ [0, 1, 0]), -1, 1))) < 15
    assert np.degrees(np.arccos(np.clip(up @ (R @ [0, 0, 1]), -1, 1))) < 15
    assert np.degrees(np.arccos(np.clip(right @ (R @ [1, 0, 0]), -1, 1))) < 15


def test_real_head_axes(lee_path):
    import trimesh

    m = trimesh.load(str(lee_path), force="mesh")
    right, fwd, up = estimate_axes(np.asarray(m.vertices) * LEE_SCALE_MM)
    # Y up, face towards +Z (so the subject's right is -X)
    assert up @ [0, 1, 0] > 0.97 and fwd @ [0, 0, 1] > 0.97 and right @ [-1, 0, 0] > 0.97


def test_frame(sample):
    head, fid = sample
    lm = resolve_landmarks(head, fid, "fiducials")
    origin, R = lm.frame()
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) > 0
    n = R @ (lm.nasion - origin)
    assert abs(n[0]) < 5 and n[1] > 80 and abs(n[2]) < 1e-9  # nasion in the x-y plane, ahead
    assert lm.sources["nasion"] == "fiducials" and lm.sources["vertex"] == "derived"
    v = R @ (lm.vertex - origin)
    assert v[2] > 100  # the vertex is the top


def test_landmark_file(tmp_path, sample):
    head, fid = sample
    p = tmp_path / "l.json"
    p.write_text(json.dumps({k: list(map(float, fid[k] / 1000.0)) for k in fid} | {"units": "scan"}))
    got = load_landmarks(p, scale_to_mm=1000.0)
    assert all(np.allclose(got[k], fid[k]) for k in fid)
    p.write_text(json.dumps({"nasoin": [0, 0, 0]}))
    with pytest.raises(InputError, match="did you mean 'nasion'"):
        load_landmarks(p)
    p.write_text(json.dumps({"nasion": [0, 0]}))
    with pytest.raises(InputError, match="three finite numbers"):
        load_landmarks(p)
    p.write_text("{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        load_landmarks(p)
    far = {k: list(map(float, fid[k] * 10)) for k in fid}
    with pytest.raises(InputError, match="from the head surface; check its units"):
        resolve_landmarks(head, {k: np.array(v) for k, v in far.items()})


def test_too_incomplete_scan_is_refused(sample):
    head, _ = sample
    keep = head.vertices[:, 1] < 0  # the back half only: no face
    idx = np.flatnonzero(keep)
    remap = -np.ones(len(keep), dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    f = remap[head.faces]
    f = f[(f >= 0).all(axis=1)]
    half = Head(head.vertices[idx], f, head.vertex_normals[idx])
    from scalp3d.errors import Scalp3dError

    with pytest.raises(Scalp3dError, match="--landmarks"):
        estimate_landmarks(half)


def _part(head, keep):
    idx = np.flatnonzero(keep)
    remap = -np.ones(len(keep), dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    f = remap[head.faces]
    f = f[(f >= 0).all(axis=1)]
    return Head(head.vertices[idx], f, head.vertex_normals[idx])


@pytest.mark.parametrize("part", ["top half", "flat patch"])
def test_partial_scans_are_refused_with_a_fix(sample, part):
    from scalp3d.errors import GeometryError

    head, _ = sample
    v = head.vertices
    if part == "top half":
        keep = v[:, 2] > 10.0  # a dome above the brows: no face
        h = _part(head, keep)
    else:
        g = np.linspace(-60.0, 60.0, 60)
        xx, yy = np.meshgrid(g, g)
        pts = np.stack([xx.ravel(), yy.ravel(), 0.01 * xx.ravel() ** 2], axis=1)
        n = len(g)
        i = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]).ravel()
        faces = np.vstack([np.stack([i, i + 1, i + n], 1), np.stack([i + 1, i + n + 1, i + n], 1)])
        h = Head(pts, faces, np.tile([0, 0, 1.0], (len(pts), 1)))
    with pytest.raises(GeometryError, match="--landmarks") as exc:
        estimate_landmarks(h)
    assert "\n" not in str(exc.value)
