"""Live design through its API (issue 15, points 2 and 3): scalp3d.LiveDesign on the sample head's full plan.

A 5 mm hairline move re-places only the dots near the change (the rest bit for bit), is as even as a fresh plan of
the new design and never under the floor; undo and redo give back the very dots shown; a settings change keeps every
dot; a bad key changes nothing; save writes a plan folder whose dots are the ones shown, and it opens again."""
import json

import numpy as np
import pytest

from scalp3d import config


@pytest.fixture(scope="module")
def base():
    import scalp3d

    return scalp3d.LiveDesign.sample()


@pytest.fixture
def live(base):
    from scalp3d.live import LiveDesign

    return LiveDesign(base.head, base.landmarks, base.plan, base.field, base.dots, source=base.source)


def rhos(head, field, fractions, dots, figure="rho"):
    """rho (or another figure of spread_figures) of all dots and of each session alone (at its own spacing), and the
    floor's breaches."""
    from scalp3d.placement import local_spacing_mm
    from scalp3d.quality import spread_figures
    from scalp3d.spacing import check_floor

    sp = local_spacing_mm((dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1),
                          field.density_per_cm2.max())
    shares = np.diff(np.concatenate([[0.0], fractions]))
    out = [spread_figures(dots.positions, sp)[figure]]
    for k in range(1, len(fractions) + 1):
        m = dots.session == k
        out.append(spread_figures(dots.positions[m], sp[m] / np.sqrt(shares[k - 1]))[figure])
    return np.array(out), check_floor(dots.positions, sp, dots.session, fractions)


def same_dots(a, b):
    return all(np.array_equal(getattr(a, k), getattr(b, k))
               for k in ("positions", "normals", "face_ids", "session", "ids", "bary", "depth_mm", "shade", "zone"))


def test_a_hairline_move_replaces_only_the_band_and_its_seam(live):
    from scipy.spatial import cKDTree

    from scalp3d.live import LiveDesign

    before, old_field = live.dots, live.field
    h0 = live.get("hairline.height_above_glabella_mm")
    u = live.set("hairline.height_above_glabella_mm", h0 + 5.0)
    assert u.how == "local" and u.seconds > 0
    assert u.dots is live.dots and live.get("hairline.height_above_glabella_mm") == h0 + 5.0
    # the dots not reported as changed or removed are the old ones, bit for bit
    untouched = ~np.isin(before.ids, np.concatenate([u.changed_ids, u.removed_ids]))
    assert 0.5 < untouched.mean() < 0.97, untouched.mean()
    now = {int(i): k for k, i in enumerate(u.dots.ids)}
    rows = np.array([now[int(i)] for i in before.ids[untouched]])
    for k in ("positions", "normals", "face_ids", "session", "bary"):
        assert np.array_equal(getattr(u.dots, k)[rows], getattr(before, k)[untouched]), k
    # every dot that went lies within the seam of a vertex whose density moved by more than the tolerance
    d0, d1 = old_field.density_per_cm2, u.field.density_per_cm2
    moved = ((d0 > 0) != (d1 > 0)) | (np.abs(d1 - d0) > config.LIVE_DENSITY_TOL * np.maximum(d0, d1))
    gone = np.isin(before.ids, u.removed_ids) | ~untouched
    dist = cKDTree(live.head.vertices[moved]).query(before.positions[gone])[0]
    assert dist.max() <= config.LOCAL_SEAM_MM + 1e-9
    # as even as a fresh plan of the new design, and never under the floor. rho is the worst pair's: the kept dots
    # bring the old plan's own (a fresh plan of the old design, as even as any), so it is held to the lower of the
    # two fresh plans'; nn p1 (the 1 % worst dots) to the new one's
    fr = live.plan.sessions.fractions
    got, breaches = rhos(live.head, u.field, fr, u.dots)
    fresh = LiveDesign.new(live.head, live.landmarks, live.plan)
    want = np.minimum(rhos(live.head, fresh.field, fr, fresh.dots)[0], rhos(live.head, old_field, fr, before)[0])
    assert breaches == []
    assert (got >= want - 0.03).all(), (got, want)
    p1, p1_fresh = (rhos(live.head, x.field, fr, x.dots, "nn_p1")[0] for x in (u, fresh))
    assert (p1 >= p1_fresh - 0.03).all(), (p1, p1_fresh)
    assert abs(len(u.dots) - len(fresh.dots)) < 0.005 * len(fresh.dots), (len(u.dots), len(fresh.dots))


def test_a_zone_density_change_places_as_many_dots_as_a_fresh_plan(live):
    """The crown 15 % lighter: its dots placed again around the kept ones, as many as a fresh plan of the new design
    places there, and as even. The joint projection once lowered all its targets a step there (0.82 -> 0.795 of the
    spacing for the union), and the last pass, dropping each new dot under 0.80, took 563 of 8,921 (the crown 5 %
    under its plan); it now drops only the stalled pairs under the new dots' own level."""
    from scalp3d.live import LiveDesign
    from scalp3d.quality import placement_quality

    u = live.set("zones.crown.density_per_cm2", 85.0)
    assert u.how == "local"
    fresh = LiveDesign.new(live.head, live.landmarks, live.plan)
    fr = live.plan.sessions.fractions
    q = placement_quality(live.head, u.field, u.dots, fr)["zones"]["crown"]
    assert abs(q["realised_per_cm2"] / q["planned_per_cm2"] - 1.0) < 0.03, q
    assert abs(len(u.dots) - len(fresh.dots)) < 0.005 * len(fresh.dots), (len(u.dots), len(fresh.dots))
    got, breaches = rhos(live.head, u.field, fr, u.dots)
    want = rhos(live.head, fresh.field, fr, fresh.dots)[0]
    assert breaches == [] and (got >= want - 0.03).all(), (got, want)


def test_undo_and_redo_give_back_the_very_dots_shown(live):
    first = live.dots
    h0 = live.get("hairline.height_above_glabella_mm")
    a = live.set("hairline.height_above_glabella_mm", h0 + 5.0)
    b = live.set("zones.crown.density_per_cm2", 30.0)
    assert b.how == "local" and live.history[-1].startswith("zones.crown.density_per_cm2 = 30 ")
    u = live.undo()
    assert u.how == "undo" and same_dots(u.dots, a.dots) and live.get("zones.crown.density_per_cm2") is None
    assert set(u.changed_ids) == set(b.removed_ids) | (set(a.dots.ids) & set(b.changed_ids))
    assert same_dots(live.undo().dots, first) and not live.can_undo
    with pytest.raises(Exception, match="nothing to undo"):
        live.undo()
    assert same_dots(live.redo().dots, a.dots)
    assert same_dots(live.redo().dots, b.dots) and not live.can_redo
    # a new change after an undo drops the redo
    live.undo()
    live.set("needle.depth_mm", 0.7)
    assert not live.can_redo


def test_a_settings_change_keeps_every_dot(live):
    before = live.dots
    u = live.set("needle.depth_mm", 0.8)
    assert u.how == "settings" and len(u.changed_ids) == 0 and len(u.removed_ids) == 0
    assert np.array_equal(u.dots.positions, before.positions) and np.array_equal(u.dots.ids, before.ids)
    assert not np.array_equal(u.dots.depth_mm, before.depth_mm)
    assert live.set("needle.depth_mm", 0.8).how == "none"


def test_a_bad_key_or_value_changes_nothing(live):
    from scalp3d.errors import PlanError

    before = live.dots
    with pytest.raises(PlanError, match="height_above_glabela_mm.*did you mean 'height_above_glabella_mm'"):
        live.set("hairline.height_above_glabela_mm", 70.0)
    with pytest.raises(PlanError, match="height_above_glabella_mm"):
        live.set("hairline.height_above_glabella_mm", 500.0)
    with pytest.raises(PlanError, match="not one of the 0 items"):
        live.set("reserved.0.radius_mm", 5.0)
    assert live.dots is before and not live.can_undo


def test_a_point_off_the_head_is_refused_not_snapped(live):
    """A point given in metres (or in other axes) is no place on the skin: it is refused, not taken to whatever skin
    is nearest; a point a few mm off the skin (a handle let go beside the head) is taken to the skin."""
    from scalp3d.errors import PlanError

    before = live.dots
    centre = live.head.vertices.mean(axis=0)
    top = live.head.vertices[np.argmax(live.head.vertices[:, 2])]
    with pytest.raises(PlanError, match=r"painted region .* mm off the skin \(at most 15\); drop it on the head"):
        live.paint(top / 1000.0)  # the crown's point in metres: near the head's middle, far from any skin
    with pytest.raises(PlanError, match=r"20 mm off the skin"):
        live.paint(top + np.array([0.0, 0.0, 20.0]))  # above the crown, farther than a handle let go beside it
    with pytest.raises(PlanError, match="handle 'hairline.mid-frontal'.* mm off the skin"):
        live.move_handle("hairline.mid-frontal", centre)
    with pytest.raises(PlanError, match="must be finite"):
        live.paint([float("nan"), 0.0, 0.0])
    with pytest.raises(PlanError, match="must be three numbers"):
        live.paint([1.0, 2.0])
    assert live.dots is before and not live.can_undo
    u = live.paint(top + np.array([0.0, 0.0, 8.0]))  # 8 mm above the crown: the skin below it
    assert u.how == "local" and np.allclose(live.get("reserved.0.center_mm"), top)


def test_a_change_under_the_floor_is_refused_and_the_design_stays(live, monkeypatch):
    """A re-placement that put two dots side by side (simulated here) is refused by the check every change gets."""
    import scalp3d.live as L
    from scalp3d.errors import PlanRefused

    real = L.replace_where_changed

    def clumped(*args, **kwargs):
        placed, keep = real(*args, **kwargs)
        pos = placed.positions.copy()
        pos[-1] = pos[-2] + 0.05  # the last new dot on top of the one before
        return type(placed)(pos, placed.normals, placed.face_ids, placed.session, placed.ids, placed.bary), keep

    monkeypatch.setattr(L, "replace_where_changed", clumped)
    before, plan = live.dots, live.plan
    with pytest.raises(PlanRefused, match="closer than the spacing floor"):
        live.set("zones.crown.density_per_cm2", 30.0)
    assert live.dots is before and live.plan == plan and not live.can_undo


def test_a_reserved_region_added(live):
    from scipy.spatial import cKDTree

    crown = live.landmarks.vertex + 0.0
    centre = live.head.vertices[cKDTree(live.head.vertices).query(crown)[1]]
    u = live.set("reserved", [{"center_mm": [float(x) for x in centre], "radius_mm": 6.0}])
    assert u.how == "local" and len(u.removed_ids) > 0
    from scalp3d.geodesic import HeadGeodesics

    g = HeadGeodesics.of(live.head.vertices, live.head.faces).distance(
        [int(cKDTree(live.head.vertices).query(centre)[1])])
    near = cKDTree(live.head.vertices).query(u.dots.positions)[1]
    assert g[near].min() >= 6.0 - 1.0  # no dot in the region (within a face's size)
    assert live.get("reserved.0.radius_mm") == 6.0


def test_save_writes_the_dots_shown_and_opens_again(live, tmp_path):
    from scalp3d.errors import InputError
    from scalp3d.export import read_dots_csv
    from scalp3d.live import LiveDesign

    h0 = live.get("hairline.height_above_glabella_mm")
    live.set("hairline.height_above_glabella_mm", h0 + 5.0)
    out = tmp_path / "approved"
    s = live.save(out, render=False, log=lambda *_: None)
    names = {p.name for p in out.iterdir()}
    assert {"dots.csv", "head.ply", "landmarks.json", "plan.toml", "summary.json"} <= names
    assert {f"session-{k}.ngc" for k in range(1, len(live.plan.sessions) + 1)} <= names
    assert s["dots_total"] == len(live.dots) and s["live_design"]["changes"][0].startswith("hairline.")
    assert json.loads((out / "summary.json").read_text())["scan"] == live.source.scan_name
    cols = read_dots_csv(out / "dots.csv")
    order = np.argsort(cols["id"])
    mine = np.argsort(live.dots.ids)
    assert np.array_equal(cols["id"][order], live.dots.ids[mine])
    xyz = np.column_stack([cols["x"], cols["y"], cols["z"]])[order]
    assert np.abs(xyz - live.dots.positions[mine]).max() <= 0.5 * 10.0 ** -config.ROUND_MM + 1e-12
    assert "height_above_glabella_mm = " + repr(h0 + 5.0) in (out / "plan.toml").read_text()
    # a folder holding a plan is not overwritten unless asked
    with pytest.raises(InputError, match="already holds a plan"):
        live.save(out, render=False, log=lambda *_: None)
    # it opens again with exactly those dots, and can be changed again
    again = LiveDesign.open(out)
    assert np.array_equal(np.sort(again.dots.ids), np.sort(live.dots.ids))
    assert np.array_equal(again.dots.positions, np.column_stack([cols["x"], cols["y"], cols["z"]]))
    assert again.get("hairline.height_above_glabella_mm") == h0 + 5.0
    u = again.set("zones.crown.density_per_cm2", 30.0)
    assert u.how == "local"


def test_open_refuses_files_that_do_not_belong_together(live, tmp_path):
    from scalp3d.errors import InputError
    from scalp3d.live import LiveDesign

    out = tmp_path / "plan"
    live.save(out, render=False, log=lambda *_: None)
    text = (out / "dots.csv").read_text().splitlines()
    cells = text[1].split(",")
    cells[3] = str(float(cells[3]) + 5.0)  # a dot lifted 5 mm off the head
    (out / "dots.csv").write_text("\n".join([text[0], ",".join(cells)] + text[2:]) + "\n")
    with pytest.raises(InputError, match=r"dots.csv: dot \d+ is .* mm off the head.ply"):
        LiveDesign.open(out)
    with pytest.raises(InputError, match="has no plan.toml"):
        (out / "plan.toml").unlink()
        LiveDesign.open(out)


def test_a_case_under_way_changes_live_around_its_done_dots(tmp_path):
    """`scalp3d design CASE`: session 1 done, the hairline lowered live: the done dots stay as tattooed (places and
    settings), new dots only in sessions 2 and 3, the floor held with the done dots; saved as the case's revision 2,
    exactly the dots shown; a case that changed since it was opened is refused."""
    from scalp3d.case import Case
    from scalp3d.cli import main
    from scalp3d.errors import InputError
    from scalp3d.export import write_head_ply
    from scalp3d.live import LiveDesign
    from scalp3d.sample import load_sample_head

    _, head, _ = load_sample_head()
    write_head_ply(head, tmp_path / "scan.ply")
    (tmp_path / "light.toml").write_text("[density]\ncore_per_cm2 = 20.0\nhairline_per_cm2 = 15.0\n")
    case = tmp_path / "p.case"
    assert main(["case", "new", str(case), "--scan", str(tmp_path / "scan.ply"), "--units", "mm", "--plan",
                 str(tmp_path / "light.toml"), "--quiet"]) == 0
    assert main(["case", "session", str(case), "1", "--out", str(tmp_path / "s1"), "--no-preview", "--quiet"]) == 0
    assert main(["case", "done", str(case), "1"]) == 0
    live = LiveDesign.open_case(case)
    with Case.open(case) as c:
        done = c.done_dots()
    h0 = live.get("hairline.height_above_glabella_mm")
    u = live.set("hairline.height_above_glabella_mm", h0 - 6.0)
    assert u.how == "local" and not np.isin(done.ids, np.concatenate([u.changed_ids, u.removed_ids])).any()
    rows = [int(np.flatnonzero(u.dots.ids == i)[0]) for i in done.ids]
    for k in ("positions", "normals", "face_ids", "bary", "session", "depth_mm", "dot_size_mm"):
        assert np.array_equal(getattr(u.dots, k)[rows], getattr(done, k)), k
    fresh = np.isin(u.dots.ids, u.changed_ids)
    assert fresh.any() and set(np.unique(u.dots.session[fresh]).tolist()) <= {2, 3}
    assert u.dots.ids[fresh].min() > done.ids.max()
    n = live.save_case()
    with Case.open(case) as c:
        stored, plan = c.dots(), c.plan()
    assert n == 2 and plan.hairline.height_above_glabella_mm == h0 - 6.0
    assert np.array_equal(np.sort(stored.ids), np.sort(u.dots.ids))
    order, mine = np.argsort(stored.ids), np.argsort(u.dots.ids)
    assert np.array_equal(stored.positions[order], u.dots.positions[mine])
    # the case moves on (session 2 done) while an old design is still open: its save is refused
    stale = LiveDesign.open_case(case)
    stale.set("zones.crown.density_per_cm2", 15.0)
    assert main(["case", "session", str(case), "2", "--out", str(tmp_path / "s2"), "--no-preview", "--quiet"]) == 0
    assert main(["case", "done", str(case), "2"]) == 0
    with pytest.raises(InputError, match="marked done since the design was opened"):
        stale.save_case()
