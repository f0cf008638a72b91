"""Landmarks: estimates on real heads, the head frame, and landmark files."""
import json

import numpy as np
import pytest

from conftest import LEE_SCALE_MM
from scalp3d.errors import InputError
from scalp3d.landmarks import estimate_axes, estimate_landmarks, load_landmarks, resolve_landmarks
from scalp3d.sample import load_sample_head
from scalp3d.types import Head


@pytest.fixture(scope="module")
def sample():
    _, head, fid = load_sample_head(subdivisions=2)
    return head, fid


def test_estimates_near_fsaverage_fiducials(sample):
    head, fid = sample
    est = estimate_landmarks(head)
    errors = {k: float(np.linalg.norm(getattr(est, k) - fid[k])) for k in ("nasion", "lpa", "rpa")}
    print("landmark errors on fsaverage (mm):", {k: round(v, 1) for k, v in errors.items()})
    assert max(errors.values()) < 12.0, errors


@pytest.mark.parametrize("convention", ["z-up", "y-up", "y-up facing -x"])
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
