"""One rule for a dot's settings (issue 12): the zone column of dots.csv and the per-zone counts of summary.json
come from the same vertex, and the shades from the one source the design field holds."""
import numpy as np

from scalp3d.design import ZONES, build_field, dots_with_settings, load_plan
from scalp3d.landmarks import resolve_landmarks
from scalp3d.placement import place_dots
from scalp3d.quality import placement_quality
from scalp3d.sample import load_sample_head
from scalp3d.types import settings_vertex


def test_settings_vertex_is_the_largest_corner():
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    bary = np.array([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    assert settings_vertex(faces, np.array([0, 1, 1]), bary).tolist() == [1, 4, 2]


def test_zone_counts_and_shades_agree_with_the_dots():
    _, head, fid = load_sample_head()
    lm = resolve_landmarks(head, fid, "fiducials")
    plan = load_plan(overrides={"zones": {"hairline": {"shades": ["light", "light", "medium"]}}})
    field = build_field(head, lm, plan)
    fr = plan.sessions.fractions
    field.density_per_cm2 = field.density_per_cm2 * 0.1  # a tenth of the dots: quick, every zone still there
    dots = place_dots(head.vertices, head.faces, density_per_cm2=field.density_per_cm2, sessions=fr, seed=2,
                      vertex_normals=head.vertex_normals)
    dots = dots_with_settings(dots, head, field)
    q = placement_quality(head, field, dots, fr, coverage_samples=10_000)
    counts = np.bincount(dots.zone, minlength=len(field.zone_names))
    for name, z in q["zones"].items():
        assert z["dots"] == counts[field.zone_names.index(name)], name
    assert sum(z["dots"] for z in q["zones"].values()) == len(dots)
    treated = (field.density_per_cm2[head.faces] > 0).all(axis=1)
    from scalp3d.kernels import triangle_areas

    area = triangle_areas(head.vertices, head.faces)[treated].sum() / 100.0
    assert abs(sum(z["area_cm2"] for z in q["zones"].values()) - area) < 0.05  # every treated cm2 in one zone
    hl = dots.zone == ZONES.index("hairline")
    assert hl.any() and (~hl).any()
    shade = np.asarray(dots.shade_names)[dots.shade]
    assert set(shade[hl & (dots.session == 3)]) == {"medium"}
    assert set(shade[~hl & (dots.session == 3)]) == {"dark"}
    assert set(shade[dots.session == 1]) == {"light"}
