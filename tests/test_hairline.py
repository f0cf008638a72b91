"""Issue 5's design checks: the parametric and drawn hairline, modes, existing hair from colour, painted masks and
the design heat maps, on the sample head (and the real head for the hairline height)."""
import numpy as np
import pytest
import trimesh

from scalp3d.design import ZONES, build_field, load_plan, read_polyline
from scalp3d.errors import GeometryError, PlanError
from scalp3d.geodesic import HeadGeodesics
from scalp3d.landmarks import resolve_landmarks
from scalp3d.sample import load_sample_head
from scalp3d.types import Head


@pytest.fixture(scope="module")
def sample():
    _, head, fid = load_sample_head()
    return head, resolve_landmarks(head, fid, "fiducials"), HeadGeodesics(head.vertices, head.faces)


def border_vertices(head, field):
    inside = field.density_per_cm2 > 0
    f = head.faces
    mixed = inside[f].any(axis=1) & ~inside[f].all(axis=1)
    return np.unique(f[mixed][inside[f[mixed]]])


def midline_edge_mm(head, lm, field, step_deg=0.05):
    """Where the treated area starts on the forehead's midline, as an arc length along the skin from the glabella,
    measured without the engine's geodesics or border logic: rays from the head frame's origin, moved sideways into
    the glabella's plane (the real head's glabella is 5.6 mm off the frame's midline), sweep that plane (y forward,
    z up) upwards from the glabella's direction; their hits on the mesh trace the midline, and the
    summed lengths between hits give the arc length. Returns (low, high): the arc lengths of the first hit triangle
    with a treated corner and of the first with all three corners treated; the edge lies between."""
    import open3d as o3d

    origin, R = lm.frame()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(head.vertices, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(head.faces, np.uint32)))
    g = R @ (lm.glabella - origin)
    origin = origin + g[0] * R[0]
    a = np.radians(np.arange(np.degrees(np.arctan2(g[2], g[1])), 120.0, step_deg))
    dirs = np.outer(np.cos(a), R[1]) + np.outer(np.sin(a), R[2])
    ans = scene.cast_rays(o3d.core.Tensor(np.hstack([np.tile(origin, (len(a), 1)), dirs]).astype(np.float32)))
    t = ans["t_hit"].numpy()
    assert np.isfinite(t).all()  # the sweep stays on the head
    hits = origin + t[:, None] * dirs
    assert np.linalg.norm(hits[0] - lm.glabella) < 1.0  # it starts at the glabella
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(hits, axis=0), axis=1))])
    treated = field.density_per_cm2[head.faces[ans["primitive_ids"].numpy().astype(np.int64)]] > 0
    assert treated.all(axis=1).any()
    return float(arc[np.argmax(treated.any(axis=1))]), float(arc[np.argmax(treated.all(axis=1))])


#: Tolerance of the planned height against the measured one, mm. The edge is located to one triangle (high - low:
#: about 1.1 mm on the sample head); the design sets the height with heat-method geodesics, which read short by 1-3 %
#: (0.5-2.5 mm here against the midline's arc; tests/test_geodesic.py finds the same on a sphere), so the edge lands
#: that much higher than planned; Measured: 1.6-2.9 mm high.
HEIGHT_TOL_MM = 3.0


@pytest.mark.parametrize("height", [70.0, 80.0, 95.0])
def test_hairline_height_along_the_skin(sample, height):
    head, lm, g = sample
    f = build_field(head, lm, load_plan(overrides={"hairline": {"height_above_glabella_mm": height}}), geodesic=g)
    low, high = midline_edge_mm(head, lm, f)
    measured = 0.5 * (low + high)
    print(f"\nsample head: planned {height:.0f} mm, edge at {low:.1f}-{high:.1f} mm along the midline; "
          f"the design reports {f.figures['mid_frontal_above_glabella_mm']} mm")
    assert high - low < 2.5
    assert abs(measured - height) <= HEIGHT_TOL_MM
    # the summary's figure (measured by the engine on its own geodesics) reads short by the same geodesic error
    assert abs(f.figures["mid_frontal_above_glabella_mm"] - measured) <= HEIGHT_TOL_MM


def test_hairline_height_on_the_real_head(lee_path):
    """Found by the independent midline measure: with the heat method on a copy clustered in 2.5 mm cells the real
    head's edge lay 68.4-69.3 mm along the midline for 65 mm planned (3.8 mm high); 2 mm cells (config) fix it."""
    from scalp3d.landmarks import estimate_landmarks
    from scalp3d.scan import load_scan
    from scalp3d.surface import make_head

    head = make_head(load_scan(lee_path, scale=48.0))
    lm = estimate_landmarks(head)
    g = HeadGeodesics(head.vertices, head.faces)
    plan = load_plan(overrides={"hairline": {"height_above_glabella_mm": 65.0}})
    f = build_field(head, lm, plan, geodesic=g)
    low, high = midline_edge_mm(head, lm, f)
    measured = 0.5 * (low + high)
    print(f"\nreal head: planned 65 mm, edge at {low:.1f}-{high:.1f} mm along the midline")
    assert abs(measured - 65.0) <= 3.0


def test_recession_raises_the_frontotemporal_points(sample):
    head, lm, g = sample
    flat = {"irregularity_mm": 0.0, "micro_irregularity_mm": 0.0}
    lo = build_field(head, lm, load_plan(overrides={"hairline": {**flat, "recession_mm": 0.0}}), geodesic=g)
    hi = build_field(head, lm, load_plan(overrides={"hairline": {**flat, "recession_mm": 20.0}}), geodesic=g)
    c_lo = np.array(lo.figures["hairline_controls_deg_mm"])
    c_hi = np.array(hi.figures["hairline_controls_deg_mm"])
    mid = lambda c: c[np.argmin(np.abs(c[:, 0])), 1]  # noqa: E731
    ftp = lambda c: c[np.argsort(np.abs(c[:, 0] - 25))[:1], 1][0]  # noqa: E731 - nearest to 25 deg
    assert mid(c_lo) == pytest.approx(mid(c_hi))
    assert ftp(c_hi) > ftp(c_lo) + 10.0  # 20 mm along the sloping forehead: more than 10 mm higher
    # symmetric: the left and right frontotemporal points mirror each other
    right = c_hi[(c_hi[:, 0] > 0) & (c_hi[:, 0] < 60)]
    left = c_hi[(c_hi[:, 0] < 0) & (c_hi[:, 0] > -60)][::-1]
    assert np.allclose(right[:, 0], -left[:, 0]) and np.allclose(right[:, 1], left[:, 1])
    # more recession, less treated forehead
    assert (hi.density_per_cm2 > 0).sum() < (lo.density_per_cm2 > 0).sum()


def test_bad_temple_point_is_refused(sample):
    head, lm, g = sample
    plan = load_plan(overrides={"hairline": {"frontotemporal_half_width_mm": 75.0,
                                             "temple_ahead_of_tragus_mm": 85.0}})
    with pytest.raises(GeometryError, match="hairline\\.") as exc:
        build_field(head, lm, plan, geodesic=g)
    assert "\n" not in str(exc.value)


def drawn_line(head, lm, z_of_az):
    """Points on the skin of the forehead at the given head-frame heights, from right to left."""
    origin, R = lm.frame()
    q = (head.vertices - origin) @ R.T
    az = np.degrees(np.arctan2(q[:, 0], q[:, 1]))
    pts = []
    for a in np.linspace(40, -40, 17):
        m = (np.abs(az - a) < 1.5) & (q[:, 1] > 0)
        k = np.flatnonzero(m)[np.argmin(np.abs(q[m, 2] - z_of_az(a)))]
        pts.append(head.vertices[k])
    return np.array(pts)


def test_drawn_polyline_sets_the_edge(sample, tmp_path):
    head, lm, g = sample
    origin, R = lm.frame()
    pts = drawn_line(head, lm, lambda a: 75.0 + 0.004 * a ** 2)  # a low, rounded line, asymmetric by sampling
    path = tmp_path / "line.csv"
    path.write_text("x,y,z\n" + "\n".join(",".join(f"{c:.3f}" for c in p) for p in pts) + "\n")
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('[hairline]\npolyline_file = "line.csv"\nirregularity_mm = 0.0\n'
                         'micro_irregularity_mm = 0.0\n')
    plan = load_plan(plan_file)
    assert len(plan.hairline.polyline_mm) == len(pts) and not hasattr(plan.hairline, "polyline_file")
    f = build_field(head, lm, plan, geodesic=g)
    b = head.vertices[border_vertices(head, f)]
    gap = np.array([np.linalg.norm(b - p, axis=1).min() for p in pts])
    print(f"\ndrawn hairline: border within {gap.max():.2f} mm of every drawn point")
    assert gap.max() <= 3.0
    # the same line inline gives the same field
    f2 = build_field(head, lm, load_plan(overrides={"hairline": {"polyline_mm": read_polyline(path),
                                                                 "irregularity_mm": 0.0,
                                                                 "micro_irregularity_mm": 0.0}}), geodesic=g)
    assert np.array_equal(f.density_per_cm2, f2.density_per_cm2)


def test_drawn_polyline_errors(sample, tmp_path):
    head, lm, g = sample
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 5\n")
    with pytest.raises(PlanError, match="line 2 has 2 numbers"):
        read_polyline(bad)
    bad.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(PlanError, match="at least 3"):
        read_polyline(bad)
    with pytest.raises(PlanError, match="not found"):
        read_polyline(tmp_path / "missing.csv")
    pts = drawn_line(head, lm, lambda a: 80.0)
    with pytest.raises(GeometryError, match="from the skin"):
        build_field(head, lm, load_plan(overrides={"hairline": {"polyline_mm": (pts + [0, 0, 40]).tolist()}}),
                    geodesic=g)
    back = np.vstack([pts[:6], pts[3:4], pts[6:]])
    with pytest.raises(GeometryError, match="turns back"):
        build_field(head, lm, load_plan(overrides={"hairline": {"polyline_mm": back.tolist()}}), geodesic=g)


def test_modes(sample):
    head, lm, g = sample
    with pytest.raises(PlanError, match="whole-scalp"):
        load_plan(overrides={"mode": "whole-scalp", "zones": {"crown": {"density_per_cm2": 60.0}}})
    with pytest.raises(PlanError, match="did you mean 'density'"):
        load_plan(overrides={"mode": "densty"})
    whole = build_field(head, lm, load_plan(overrides={"mode": "whole-scalp"}), geodesic=g)
    assert whole.density_per_cm2.max() == pytest.approx(100.0)
    thin = build_field(head, lm, load_plan(overrides={"mode": "density", "density": {"core_per_cm2": 50.0,
                                                                                     "hairline_per_cm2": 30.0}}),
                       geodesic=g)
    d = thin.density_per_cm2
    assert ZONES.index("hairline") not in set(np.unique(thin.zone[d > 0]))
    assert d[d > 0].min() >= 25.0 - 1e-9 and d.max() == pytest.approx(50.0)
    # the feather is 10 mm: beyond it, the full density
    assert np.all(d[thin.height_mm > 10.5] == 50.0)


def painted(head, lm, centre_head_frame, radius, dark):
    """The sample head with vertex colours: light skin, dark within ``radius`` of a point in the head frame."""
    origin, R = lm.frame()
    q = (head.vertices - origin) @ R.T
    hair = np.linalg.norm(q - np.asarray(centre_head_frame), axis=1) < radius
    colors = np.tile(np.array([224, 180, 160], np.uint8), (len(q), 1))
    colors[hair] = dark
    return Head(head.vertices, head.faces, head.vertex_normals, source="painted", colors=colors), hair


def test_existing_hair_lowers_the_density(sample):
    head, lm, g = sample
    origin, R = lm.frame()
    q = (head.vertices - origin) @ R.T
    top = q[np.argmax(q[:, 2])]
    coloured, hair = painted(head, lm, top - [0, 40, 0], 35.0, (40, 30, 25))
    off = build_field(coloured, lm, load_plan(), geodesic=g)
    assert off.hair is None
    on = build_field(coloured, lm, load_plan(overrides={"hair": {"from_colour": True}}), geodesic=g)
    deep = hair & (np.linalg.norm(q - (top - [0, 40, 0]), axis=1) < 25.0)
    assert np.all(on.hair[deep] > 0.95) and np.all(on.density_per_cm2[deep] < 5.0)
    bare = ~hair & (on.density_per_cm2 > 0) & (np.linalg.norm(q - (top - [0, 40, 0]), axis=1) > 45.0)
    assert np.allclose(on.density_per_cm2[bare], off.density_per_cm2[bare])
    half = build_field(coloured, lm, load_plan(overrides={"hair": {"from_colour": True, "strength": 0.5}}),
                       geodesic=g)
    assert np.allclose(half.density_per_cm2[deep], 0.5 * off.density_per_cm2[deep], atol=3.0)
    # the summary's figure
    from scalp3d import kernels as K
    from scalp3d.pipeline import design_figures

    fig = design_figures(coloured, on, K.triangle_areas(head.vertices, head.faces))["existing_hair"]
    assert fig["area_with_hair_cm2"] > 20.0 and 0.05 < fig["share_of_dots_not_added"] < 0.5
    with pytest.raises(PlanError, match="no colour"):
        build_field(head, lm, load_plan(overrides={"hair": {"from_colour": True}}), geodesic=g)


def write_mask(head, path, marked, prop="mask", red=False):
    m = trimesh.Trimesh(head.vertices, head.faces, process=False)
    if red:
        c = np.tile(np.array([200, 200, 200, 255], np.uint8), (len(head.vertices), 1))
        c[marked] = (255, 0, 0, 255)
        m.visual.vertex_colors = c
    else:
        m.vertex_attributes[prop] = marked.astype(np.uint8)
    path.write_bytes(trimesh.exchange.ply.export_ply(m, encoding="binary", include_attributes=not red))
    return path


def test_masks_from_ply(sample, tmp_path):
    head, lm, g = sample
    origin, R = lm.frame()
    q = (head.vertices - origin) @ R.T
    top = q[np.argmax(q[:, 2])]
    spot = np.linalg.norm(q - (top - [20, 30, 0]), axis=1) < 8.0
    write_mask(head, tmp_path / "mole.ply", spot)
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('[[reserved]]\nmask_ply = "mole.ply"\ncomment = "painted mole"\n')
    plan = load_plan(plan_file)
    f = build_field(head, lm, plan, geodesic=g)
    assert np.all(f.density_per_cm2[spot] == 0) and (f.density_per_cm2 > 0).sum() > 0.3 * len(q)
    strip = (np.abs(q[:, 2] - 20.0) < 1.5) & (q[:, 1] < -60) & (np.abs(q[:, 0]) < 40)
    write_mask(head, tmp_path / "scar.ply", strip, red=True)
    plan_file.write_text('[[scars]]\nmask_ply = "scar.ply"\nmask_property = "red"\ndensity_per_cm2 = 70.0\n')
    f = build_field(head, lm, load_plan(plan_file), geodesic=g)
    assert np.all(f.zone[strip] == ZONES.index("scar")) and np.all(f.density_per_cm2[strip] == 70.0)
    # errors: a missing property, nothing marked, a mask from another head
    plan_file.write_text('[[reserved]]\nmask_ply = "mole.ply"\nmask_property = "quality"\n')
    with pytest.raises(PlanError, match="no vertex property 'quality'"):
        load_plan(plan_file)
    write_mask(head, tmp_path / "none.ply", np.zeros(len(q), bool))
    plan_file.write_text('[[reserved]]\nmask_ply = "none.ply"\n')
    with pytest.raises(PlanError, match="no vertex is marked"):
        load_plan(plan_file)
    moved = Head(head.vertices + [0, 0, 50.0], head.faces, head.vertex_normals)
    write_mask(moved, tmp_path / "other.ply", spot)
    plan_file.write_text('[[reserved]]\nmask_ply = "other.ply"\n')
    with pytest.raises(GeometryError, match="from this head"):
        build_field(head, lm, load_plan(plan_file), geodesic=g)


def test_design_heat_maps(sample, tmp_path):
    from PIL import Image

    from scalp3d.errors import InputError
    from scalp3d.viewers.pictures import DESIGN_VIEWS, Renderer, design_maps, design_sheet
    from scalp3d.viewers.scene import DotsShown, Scene

    head, lm, g = sample
    plan = load_plan(overrides={"zones": {"crown": {"depth_mm": 0.9, "needle": "0803-1RL",
                                                    "shades": ["light", "dark", "dark"]}}})
    f = build_field(head, lm, plan, geodesic=g)
    assert f.shade.shape == (3, len(head.vertices)) and f.shade_names == ("light", "medium", "dark")
    crown = f.zone == ZONES.index("crown")
    assert np.all(f.shade[1, crown] == 2) and np.all(f.shade[1, ~crown] == 1)
    e = np.zeros((0, 3))
    none = DotsShown(e, e, np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0), np.zeros(0, object),
                     np.zeros(0, np.int64))
    scene = Scene(head, lm, plan, f, none, np.zeros(len(head.vertices), bool))
    assert [m[0] for m in design_maps(scene)] == ["target density", "zone", "depth", "needle", "shade, session 1",
                                                  "shade, session 2", "shade, session 3"]
    tile = (200, 200)
    sheets = []
    for _ in range(2):
        r = Renderer(scene, tile)
        try:
            sheets.append(np.asarray(design_sheet(scene, r, tile=tile).convert("RGB")).astype(int))
        finally:
            r.close()
    assert np.array_equal(sheets[0], sheets[1])  # deterministic
    img = sheets[0]
    assert img.shape[1] == 7 * tile[0]
    top = img.shape[0] - 2 * tile[1]  # the title band above; the legends below the two views of each column
    heads = img[img.shape[0] // 2 - tile[1]:img.shape[0] // 2 + tile[1]]
    for c in range(7):
        col = heads[:, c * tile[0]:(c + 1) * tile[0]].reshape(-1, 3)
        drawn = np.abs(col - col[0]).sum(axis=1) > 60  # differs from the background
        assert drawn.mean() > 0.03, f"map {c} is empty"
    # the shade maps differ where the crown's session-2 shade differs
    assert not np.array_equal(img[:, 4 * tile[0]:5 * tile[0]], img[:, 5 * tile[0]:6 * tile[0]])
    assert top > 0 and len(DESIGN_VIEWS) == 2
    f.depth_mm = f.depth_mm[:10]
    with pytest.raises(InputError, match="depth"):
        design_maps(scene)


def test_zone_shades_and_dot_sizes(sample):
    from scalp3d.design import dots_with_settings
    from scalp3d.export import dots_csv_text
    from scalp3d.placement import place_dots

    head, lm, g = sample
    with pytest.raises(PlanError, match="zones.hairline.shades"):
        load_plan(overrides={"zones": {"hairline": {"shades": ["light"]}}})
    with pytest.raises(PlanError, match="dot_size_mm"):
        load_plan(overrides={"zones": {"crown": {"dot_size_mm": 0.9}}})
    plan = load_plan(overrides={"zones": {"hairline": {"shades": ["light", "light", "medium"], "dot_size_mm": 0.12}}})
    f = build_field(head, lm, plan, geodesic=g)
    dots = place_dots(head.vertices, head.faces, density_per_cm2=f.density_per_cm2 * 0.1, seed=0,
                      vertex_normals=head.vertex_normals, sessions=plan.sessions.fractions)
    dots = dots_with_settings(dots, head, f)
    shade = np.asarray(dots.shade_names)[dots.shade]
    hl = dots.zone == ZONES.index("hairline")
    assert hl.any() and (~hl).any()
    assert set(shade[hl & (dots.session == 3)]) == {"medium"}
    assert set(shade[~hl & (dots.session == 3)]) == {"dark"}
    assert set(shade[hl & (dots.session == 2)]) == {"light"}
    assert np.all(dots.dot_size_mm[hl] == 0.12) and np.all(dots.dot_size_mm[~hl] == 0.20)  # 0603: 0.20 mm
    rows = dots_csv_text(dots).splitlines()
    assert rows[0].endswith(",shade,dot_size_mm") and len(rows) == len(dots) + 1
