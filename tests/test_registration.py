"""Re-scan registration (issue 14, point 3; Checks: "Re-scan registration").

A re-scan is made from a head: the face cut away (35 mm and more in front of the ears, below the brow), another triangulation
(open3d's vertex clustering), 0.2 mm Gaussian noise, a 1.5 mm outward patch of hair on the crown, then a seeded rigid
motion (up to 30 degrees, up to 100 mm). The motion recovered must put 2,000 points sampled on the reference scalp
within 0.3 mm RMS and 1 mm at most of where the known motion puts them; scans of something else and scans in the wrong
units are refused in one line.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LEE_SCALE_MM

from scalp3d import config
from scalp3d.landmarks import load_landmarks, resolve_landmarks
from scalp3d.meshes import submesh, vertex_normals_of
from scalp3d.registration import RegistrationError, carry_points, register, scalp_points
from scalp3d.sample import load_sample_head
from scalp3d.types import Head

LEE_LANDMARKS = Path(__file__).parent / "data" / "lee-perry-smith.landmarks.json"
RMS_MM, MAX_MM = 0.3, 1.0  # issue 14's Checks
N_POINTS = 2000
HAIR_RADIUS_MM = 30.0


def _motion(rng, max_deg=30.0, max_mm=100.0):
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    rot = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.deg2rad(rng.uniform(0.5, 1.0) * max_deg))
    T = np.eye(4)
    T[:3, :3] = rot.as_matrix()
    T[:3, 3] = rng.uniform(-max_mm, max_mm, 3)
    return T


def _crown(head, lm):
    """The centre of the re-scan's patch of hair (mm, reference axes): the head's vertex nearest a point right of the
    midline, behind and below the vertex."""
    origin, R = lm.frame()
    p = origin + R.T @ np.array([20.0, -30.0, 90.0])
    return head.vertices[np.argmin(np.linalg.norm(head.vertices - p, axis=1))]


def rescan(head, lm, seed, *, voxel_mm=1.3, noise_mm=0.2, hair_mm=1.5, hair_radius_mm=HAIR_RADIUS_MM, cut_back=False,
           cut_face=True, motion=None):
    """(today's Head, true 4x4 motion reference -> today): the issue's re-scan of ``head`` (see the module)."""
    import open3d as o3d

    rng = np.random.default_rng(seed)
    origin, R = lm.frame()
    local = (head.vertices - origin) @ R.T
    brow = ((lm.glabella - origin) @ R.T)[2]
    keep = np.ones(len(local), dtype=bool)
    if cut_face:
        keep &= ~((local[:, 1] > 35.0) & (local[:, 2] < brow))
    if cut_back:
        keep &= ~((local[:, 1] < -50.0) & (local[:, 2] < 50.0))
    v, f = submesh(head.vertices, head.faces, keep)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))
    mesh = mesh.simplify_vertex_clustering(voxel_size=voxel_mm)
    mesh.remove_degenerate_triangles()
    mesh.remove_unreferenced_vertices()
    v = np.asarray(mesh.vertices).copy()
    f = np.asarray(mesh.triangles).astype(np.int64)
    n = vertex_normals_of(v, f)
    v = v + rng.normal(0.0, noise_mm, v.shape)
    if hair_mm:
        v = v + hair_mm * (np.linalg.norm(v - _crown(head, lm), axis=1) < hair_radius_mm)[:, None] * n
    T = _motion(rng) if motion is None else motion
    v = v @ T[:3, :3].T + T[:3, 3]
    return Head(v, f, vertex_normals_of(v, f)), T


def _moved(T, p):
    return p @ T[:3, :3].T + T[:3, 3]


def _check(reg, T, pts, name):
    err = np.linalg.norm(reg.apply(pts) - _moved(T, pts), axis=1)
    rms, worst = float(np.sqrt(np.mean(err ** 2))), float(err.max())
    print(f"{name}: {N_POINTS} scalp points off by {rms:.3f} mm RMS, {worst:.3f} mm max; figures rms "
          f"{reg.rms_mm:.2f} p95 {reg.p95_mm:.2f} mm, overlap {reg.overlap:.0%}, {reg.seconds:.1f} s")
    assert rms <= RMS_MM and worst <= MAX_MM, (rms, worst)
    assert reg.overlap >= config.REGISTRATION_MIN_OVERLAP and reg.rms_mm <= config.REGISTRATION_MAX_RMS_MM


@pytest.fixture(scope="module")
def sample():
    _, ref, fid = load_sample_head(subdivisions=2)
    _, fine, _ = load_sample_head(subdivisions=3)  # the re-scan is cut from a finer surface: other vertices
    lm = resolve_landmarks(ref, fid, given_source="fiducials")
    pts, nrm = scalp_points(ref, lm, N_POINTS, seed=9)
    return ref, fine, lm, pts, nrm


@pytest.fixture(scope="module")
def sample_faceless(sample):
    ref, fine, lm, _, _ = sample
    today, T = rescan(fine, lm, seed=1)
    return today, T, register(today, ref, reference_landmarks=lm)


def test_faceless_rescan_of_the_sample_head(sample, sample_faceless):
    _, _, _, pts, _ = sample
    _, T, reg = sample_faceless
    _check(reg, T, pts, "sample head, no face")
    assert "global search" in reg.method  # no face: no landmarks on today's scan
    assert reg.transform.shape == (4, 4) and np.allclose(reg.rotation @ reg.rotation.T, np.eye(3), atol=1e-9)
    json.dumps(reg.to_dict())


def test_dots_carried_to_todays_surface(sample, sample_faceless):
    from scalp3d.proximity import SurfaceQuery

    ref, _, lm, pts, nrm = sample
    today, T, reg = sample_faceless
    q, n, fid, bary = carry_points(pts, nrm, reg, today)
    err = np.linalg.norm(q - _moved(T, pts), axis=1)
    # re-projected on today's skin: the dots under the crown's 1.5 mm patch of hair are lifted by as much
    hair = np.linalg.norm(pts - _crown(ref, lm), axis=1) < HAIR_RADIUS_MM + 2.0
    rms = float(np.sqrt(np.mean(err[~hair] ** 2)))
    print(f"carried dots: {rms:.3f} mm RMS, {err[~hair].max():.3f} mm max from the known motion's ({hair.sum()} under "
          f"the hair: {err[hair].max():.2f} mm max)")
    assert rms <= RMS_MM and err[~hair].max() <= MAX_MM
    assert hair.any() and err[hair].max() <= 1.5 + MAX_MM
    assert SurfaceQuery(today).distance(q).max() < 1e-3
    assert np.allclose(np.einsum("ij,ijk->ik", bary, today.vertices[today.faces[fid]]), q, atol=1e-9)
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    cos = (n * (nrm @ T[:3, :3].T)).sum(axis=1)
    assert np.median(cos) > np.cos(np.deg2rad(5.0)) and cos.min() > 0.5


def test_dots_where_todays_scan_has_no_skin_are_refused(sample, sample_faceless):
    _, _, lm, _, _ = sample
    today, _, reg = sample_faceless
    with pytest.raises(RegistrationError, match="no skin") as exc:  # the nasion: the re-scan has no face
        carry_points(lm.nasion[None, :], np.array([[0.0, 1.0, 0.0]]), reg, today)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("case", ["face kept", "any orientation, no back", "hair grown 1.5 mm everywhere"])
def test_other_rescans_of_the_sample_head(sample, case):
    from scipy.spatial.transform import Rotation

    ref, fine, lm, pts, _ = sample
    if case == "face kept":
        today, T = rescan(fine, lm, seed=2, cut_face=False)
    elif case.startswith("hair"):  # a uniform layer a rigid motion cannot explain: solved as an offset
        today, T = rescan(fine, lm, seed=5, hair_radius_mm=1000.0)
    else:  # another scanner's axes: a rotation anywhere in SO(3)
        T = np.eye(4)
        T[:3, :3] = Rotation.random(random_state=3).as_matrix()
        T[:3, 3] = [40.0, -70.0, 25.0]
        today, T = rescan(fine, lm, seed=3, cut_back=True, motion=T)
    reg = register(today, ref, reference_landmarks=lm)
    _check(reg, T, pts, f"sample head, {case}")
    if case == "face kept":
        assert reg.method.startswith("coarse: landmarks (estimated")
    if case.startswith("hair"):
        assert abs(reg.offset_mm - 1.5) < 0.2, reg.offset_mm
    else:
        assert abs(reg.offset_mm) < 0.2, reg.offset_mm


def test_faceless_rescan_of_the_real_head(lee_path):
    import trimesh

    m = trimesh.load(str(lee_path), force="mesh")
    v = np.asarray(m.vertices, dtype=np.float64) * LEE_SCALE_MM
    f = np.asarray(m.faces, dtype=np.int64)
    ref = Head(v, f, vertex_normals_of(v, f))
    lm = resolve_landmarks(ref, load_landmarks(LEE_LANDMARKS, scale_to_mm=LEE_SCALE_MM))
    # the scan's facets are about 5-10 mm: split to 1.5 mm before the re-scan's own triangulation
    v2, f2 = trimesh.remesh.subdivide_to_size(v, f, max_edge=1.5)
    fine = Head(v2, np.asarray(f2, dtype=np.int64), vertex_normals_of(v2, f2))
    pts, _ = scalp_points(ref, lm, N_POINTS, seed=9)
    today, T = rescan(fine, lm, seed=4, cut_back=True)
    reg = register(today, ref, reference_landmarks=lm)
    _check(reg, T, pts, "real head, no face, no back")


def _sphere(radius):
    import open3d as o3d

    s = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=100)
    v, f = np.asarray(s.vertices), np.asarray(s.triangles).astype(np.int64)
    return Head(v, f, vertex_normals_of(v, f))


def test_a_scan_of_something_else_is_refused(sample):
    ref, _, lm, _, _ = sample
    with pytest.raises(RegistrationError, match="does not match the reference head") as exc:
        register(_sphere(90.0), ref, reference_landmarks=lm)
    msg = str(exc.value)
    assert "\n" not in msg and "rescan" in msg and "--landmarks" in msg and "%" in msg and "RMS" in msg
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("factor", [10.0, 0.1])
def test_wrong_units_are_refused(sample, sample_faceless, factor):
    ref, _, lm, _, _ = sample
    today, _, _ = sample_faceless
    scaled = Head(today.vertices * factor, today.faces, today.vertex_normals)
    with pytest.raises(RegistrationError, match="units") as exc:
        register(scaled, ref, reference_landmarks=lm)
    assert "\n" not in str(exc.value) and exc.value.exit_code == 2
