"""The plan file: defaults, round trip, and one-line errors for bad plans; the design field on the sample head."""
import numpy as np
import pytest

from scalp3d.design import ZONES, build_field, load_plan, plan_to_toml
from scalp3d.errors import PlanError
from scalp3d.landmarks import resolve_landmarks
from scalp3d.sample import load_sample_head


def write(tmp_path, text):
    p = tmp_path / "plan.toml"
    p.write_text(text)
    return p


def test_defaults_and_round_trip(tmp_path):
    plan = load_plan()
    assert plan.density.core_per_cm2 == 100.0 and plan.sessions.fractions == (0.3, 0.7, 1.0)
    again = load_plan(write(tmp_path, plan_to_toml(plan)))
    assert again == plan


@pytest.mark.parametrize("text,match", [
    ("[density]\ncore_per_cm3 = 90\n", "unknown key 'density.core_per_cm3'; did you mean 'density.core_per_cm2'"),
    ("[density]\ncore_per_cm2 = 200\n", "out of range; allowed 1 to 160"),
    ("[needle]\ndepth_mm = 3.0\n", "'needle.depth_mm' = 3.0 is out of range"),
    ("[needle]\ndepth_mm = \"deep\"\n", "must be a number"),
    ("[sessions]\nfractions = [0.5, 0.4, 1.0]\n", "must rise strictly"),
    ("[sessions]\nfractions = [0.5, 1.0]\n", "one name per session"),
    ("[needle]\nname = \"0999\"\n", "unknown needle"),
    ("[density\n", "not valid TOML"),
    ("[zones.crownn]\ndepth_mm = 1.0\n", "did you mean 'zones.crown'"),
])
def test_bad_plans(tmp_path, text, match):
    with pytest.raises(PlanError, match=match) as exc:
        load_plan(write(tmp_path, text))
    assert "\n" not in str(exc.value)


def test_field_on_sample_head():
    _, head, fid = load_sample_head()
    lm = resolve_landmarks(head, fid, "fiducials")
    plan = load_plan()
    f = build_field(head, lm, plan)
    d = f.density_per_cm2
    assert d.max() == pytest.approx(100.0) and d[d > 0].min() >= 40.0 - 1e-9
    origin, R = lm.frame()
    z = (head.vertices - origin) @ R[2]
    assert d[z < -40].max() == 0  # nothing below the ears and nape
    assert (d[z > 115] == 100).mean() > 0.99  # the top is core density
    # density rises monotonically across the transition band
    band = (f.height_mm > 0.5) & (f.height_mm <= 25)
    order = np.argsort(f.height_mm[band])
    assert np.all(np.diff(d[band][order]) >= -1e-9)
    # zones where the module docstring puts them, in the head frame (x right, y forward, z up): the hairline is the
    # frontal transition band, crown and mid share the top (crown behind, mid in front), front ahead, back behind
    q = (head.vertices - origin) @ R.T
    treated = d > 0
    zone = {name: treated & (f.zone == k) for k, name in enumerate(ZONES)}
    assert {n for n, m in zone.items() if m.any()} == set(ZONES) - {"scar"}  # every zone, and no scar unplanned
    hl = zone["hairline"]
    assert np.all(q[hl, 1] > 0) and np.all(f.height_mm[hl] < plan.hairline.transition_mm)
    assert np.all(d[hl] < 100.0)  # the sparse edge, not the core
    assert np.all(q[zone["crown"], 1] < 0) and np.all(q[zone["mid"], 1] >= 0)
    assert np.all(q[zone["front"], 1] > 0) and np.all(q[zone["back"], 1] < 0)
    top = min(q[zone["crown"], 2].min(), q[zone["mid"], 2].min())
    assert top > 0.5 * q[treated, 2].max() and np.all(q[zone["sides"] | zone["back"] | zone["front"], 2] <= top)
    # the sides are beside the head: further from the midline than forward or back
    assert np.median(np.abs(q[zone["sides"], 0])) > np.median(np.abs(q[zone["sides"], 1]))


def test_zone_overrides():
    _, head, fid = load_sample_head(subdivisions=1)
    lm = resolve_landmarks(head, fid, "fiducials")
    plan = load_plan(overrides={"zones": {"crown": {"density_per_cm2": 60.0, "depth_mm": 0.9}}})
    f = build_field(head, lm, plan)
    crown = (f.zone == ZONES.index("crown")) & (f.density_per_cm2 > 0)
    assert crown.any() and np.all(f.density_per_cm2[crown] == 60.0) and np.all(f.depth_mm[crown] == 0.9)
