"""The live design window (issue 15, point 1), off screen, driven by a script as a practitioner would: a handle's
sphere widget moved and let go (its end-of-interaction event, which calls the window's callback), a slider set and
let go, the paint key's pick, undo, save. A screenshot before and after each step (the test's temporary folder);
the assertions read the design, the dots and the pixels."""
import numpy as np
import pytest

from scalp3d import config

WINDOW = (1100, 800)


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    import scalp3d
    from scalp3d.viewers.design import DesignWindow

    live = scalp3d.LiveDesign.sample()
    w = DesignWindow(live, off_screen=True, window_size=WINDOW, save_to=tmp_path_factory.mktemp("saved") / "plan",
                     log=lambda *_: None)
    yield w
    w.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("design-shots")


def darkness(img, xy, half=12):
    """Mean darkness (255 - grey) of the image in a box around pixel ``xy``."""
    x, y = (int(round(c)) for c in xy)
    box = img[max(y - half, 0):y + half, max(x - half, 0):x + half].astype(float)
    return 255.0 - box.mean()


def let_go(widget, centre):
    widget.SetCenter(*centre)
    widget.InvokeEvent("EndInteractionEvent")


def test_every_text_is_read_whole(window):
    """The help, the title and the status lie inside the window, and the title and the status stay left of the
    sliders, with the density map's title and a long refusal too (the help once lost its last word past the right
    edge; the status ran under the first slider's label)."""
    from scalp3d.viewers.design import SLIDERS_X

    def extent(name):
        ren = window.plotter.renderer
        actor = window.plotter.actors[name]
        box = [0.0] * 4
        actor.GetBoundingBox(ren, box)  # x min, x max, y min, y max in pixels, from the actor's anchor
        x, y = actor.GetPositionCoordinate().GetComputedDisplayValue(ren)
        return x + box[0], x + box[1], y + box[2], y + box[3]

    long_refusal = ("plan: 'hairline.frontotemporal_half_width_mm' = 75.0 is out of range; allowed 30 to 70; lower "
                    "hairline.frontotemporal_half_width_mm or hairline.temple_ahead_of_tragus_mm")
    for density_map, message in ((False, ""), (True, long_refusal)):
        window.density_map, window.message, window.error = density_map, message, bool(message)
        window._refresh()
        window.image()  # rendered: the text actors measure themselves against the renderer
        for name in ("help", "title", "status"):
            x0, x1, y0, y1 = extent(name)
            assert 0 <= x0 and x1 <= WINDOW[0] and 0 <= y0 and y1 <= WINDOW[1], (name, x0, x1, y0, y1)
            if name != "help":
                assert x1 < SLIDERS_X * WINDOW[0], (name, density_map, x1)
    assert "q close" in window.plotter.actors["help"].GetInput()
    assert "temple_ahead_of_tragus_mm" in window.plotter.actors["status"].GetInput().replace("\n", " ")
    window.density_map, window.message, window.error = False, "", False
    window._refresh()


def test_dragging_the_mid_frontal_handle_lowers_the_hairline(window, shots):
    live = window.live
    up = live._frame().R[2]
    h0 = live.get("hairline.height_above_glabella_mm")
    mid = live.handles()["hairline.mid-frontal"]
    probe = live._frame().nearest_skin(mid - 5.0 * up)  # skin just below today's hairline: bare now
    before = window.image()
    window.screenshot(shots / "0-opened.png")
    assert set(live.handles()) == set(window.handle_widgets)
    widget = window.handle_widgets["hairline.mid-frontal"]
    let_go(widget, np.asarray(widget.GetCenter()) - 10.0 * up)
    after = window.image()
    window.screenshot(shots / "1-hairline-lowered.png")
    h1 = live.get("hairline.height_above_glabella_mm")
    assert 5.0 < h0 - h1 < 15.0, (h0, h1)
    assert window.last.how == "local" and not window.error
    # the handle sits where the design now has it, on the skin
    assert np.linalg.norm(np.asarray(widget.GetCenter()) - live.handles()["hairline.mid-frontal"]) < 2.0
    # the skin that was bare below the old hairline now holds dots: darker on screen
    xy = window.to_pixels(probe[None])[0]
    assert darkness(after, xy) > darkness(before, xy) + 3.0, (darkness(before, xy), darkness(after, xy))
    from scipy.spatial import cKDTree

    assert cKDTree(live.dots.positions).query(probe)[0] < 2.0


def test_a_slider_sets_its_plan_key(window, shots):
    live = window.live
    s = window.sliders["hairline.irregularity_mm"]
    s.GetRepresentation().SetValue(6.0)
    s.InvokeEvent("EndInteractionEvent")
    window.screenshot(shots / "2-irregular.png")
    assert live.get("hairline.irregularity_mm") == 6.0 and window.last.how == "local"


def test_a_refused_value_is_shown_and_changes_nothing(window, shots):
    live = window.live
    n = len(live.history)
    s = window.sliders["density.core_per_cm2"]
    window.slide("density.core_per_cm2", 30.0)  # under the hairline's 40 per cm2: the plan refuses it
    window.screenshot(shots / "3-refused.png")
    assert window.error and "hairline_per_cm2" in window.message and len(live.history) == n
    # the slider shows the design's value again
    assert s.GetRepresentation().GetValue() == pytest.approx(live.get("density.core_per_cm2"))
    # two keys at once, as a script sets them: refused whole (the second is out of range), the first not kept
    assert window.change({"hairline.transition_mm": 20.0, "hairline.recession_mm": 500.0}) is None
    assert window.error and "recession_mm" in window.message and len(live.history) == n
    assert live.get("hairline.transition_mm") == 25.0


def test_painting_reserves_skin_and_undo_takes_it_back(window, shots):
    from scipy.spatial import cKDTree

    live = window.live
    top = live._frame().nearest_skin(live.landmarks.vertex)
    before = live.dots
    window.paint(top)
    window.screenshot(shots / "4-painted.png")
    assert "reserved.0" in window.handle_widgets
    assert cKDTree(live.dots.positions).query(top)[0] > config.LIVE_PAINT_RADIUS_MM - 1.0
    window.undo()
    window.screenshot(shots / "5-undone.png")
    assert "reserved.0" not in window.handle_widgets and live.dots is before


def test_save_writes_what_was_shown(window):
    from scalp3d.export import read_dots_csv

    s = window.save()
    assert s is not None and not window.error, window.message
    cols = read_dots_csv(window.save_to / "dots.csv")
    assert np.array_equal(np.sort(cols["id"]), np.sort(window.live.dots.ids))
    assert (window.save_to / "session-1.ngc").is_file()


def test_design_without_a_screen_says_so(tmp_path, monkeypatch, capsys):
    from scalp3d.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["design", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "scalp3d design needs a screen" in err and err.count("\n") == 1


def test_the_stubble_follows_a_change_of_the_hair_bearing_skin():
    """A hairline-only band moved 5 mm forward leaves hair behind it: the window drew that strip bare (5.7 cm2 of the
    sample head), since its stubble was the opening one filtered to the skin left untreated. Now the fringe is the
    design's own after every change, stubble is placed on the skin it gained at the core density, and along the
    edge where the dots were placed again the stubble is placed again around them, so no bare seam opens (edge p99
    1.15 mm from a spot against 0.87 inside when the opening stubble was kept there)."""
    from scipy.spatial import cKDTree

    import scalp3d
    from scalp3d.design import hair_bearing, load_plan
    from scalp3d.meshes import face_areas
    from scalp3d.viewers.design import _scene

    live = scalp3d.LiveDesign.sample(load_plan("hairline-only"))
    before = _scene(live, None)
    final = before.n_sessions, False
    opened = before.texture(*final).copy()  # (a scene's bake is handed on to the next one and updated in place)
    live.set("hairline.height_above_glabella_mm", live.get("hairline.height_above_glabella_mm") - 5.0)
    sc = _scene(live, before)
    moved = sc.texture(*final).copy()
    v, f = live.head.vertices, live.head.faces
    assert np.array_equal(sc.fringe, hair_bearing(live.head, live.landmarks, live.plan, live.field))
    grown = (sc.fringe & ~before.fringe)[f].all(axis=1)
    assert face_areas(v, f[grown]).sum() > 300.0  # mm2
    # the spots drawn on each face, from the scene's own record of the stubble's faces
    faces = sc._stubble_all_faces[sc.fringe[f[sc._stubble_all_faces]].any(axis=1)]
    assert len(faces) == len(sc.stubble().positions)
    per_cm2 = grown[faces].sum() / (face_areas(v, f[grown]).sum() / 100.0)
    assert per_cm2 == pytest.approx(live.plan.density.core_per_cm2, rel=0.15)
    # no bare seam along the treated edge
    rng = np.random.default_rng(0)
    tree = cKDTree(np.vstack([sc.stubble().positions, sc.dots.positions]))

    def far(rows, per_face):
        fi = np.repeat(rows, per_face)
        r1, r2 = np.sqrt(rng.random(len(fi))), rng.random(len(fi))
        q = (np.column_stack([1 - r1, r1 * (1 - r2), r1 * r2])[:, :, None] * v[f[fi]]).sum(axis=1)
        return np.percentile(tree.query(q)[0], 99)

    edge = np.flatnonzero(sc.treated[f].any(axis=1) & sc.fringe[f].any(axis=1))
    inside = rng.choice(np.flatnonzero(sc.fringe[f].all(axis=1)), 20000)
    assert far(edge, 20) < 1.15 * far(inside, 1), (far(edge, 20), far(inside, 1))
    # undo and redo give back the very picture shown, stubble and all (its spots along the edge were placed again)
    live.undo()
    sc = _scene(live, sc)
    assert np.array_equal(sc.texture(*final), opened)
    live.redo()
    sc = _scene(live, sc)
    assert np.array_equal(sc.texture(*final), moved)
    # the core density drawn anew: all the stubble follows it (it is the same tone as the treatment)
    live.set("density.core_per_cm2", 60.0)
    sc2 = _scene(live, sc)
    faces = sc2._stubble_all_faces[sc2.fringe[f[sc2._stubble_all_faces]].any(axis=1)]
    inner = sc2.fringe[f].all(axis=1)
    assert inner[faces].sum() / (face_areas(v, f[inner]).sum() / 100.0) == pytest.approx(60.0, rel=0.05)


def test_the_window_keeps_the_pictures_of_the_last_designs_only():
    """Each design shown keeps its stubble for an undo back to it (a few MB on a full head): the window keeps the
    most recently shown :data:`SHOWN_KEPT`, a design shown again counting as the most recent, not every one of a long
    consultation."""
    from types import SimpleNamespace

    from scalp3d.viewers.design import SHOWN_KEPT, _remembered

    shown = {}
    designs = [object() for _ in range(SHOWN_KEPT + 5)]

    def show(d):
        return _remembered(SimpleNamespace(_shown=shown, fringe=None, _stubble_all=None, _stubble_all_faces=None,
                                           _stubble_domain=None, _stubble=None), d)

    for d in designs[:SHOWN_KEPT]:
        show(d)
    show(designs[0])  # undone back to the first: the most recent now
    for d in designs[SHOWN_KEPT:]:
        show(d)
    kept = [v[0] for v in shown.values()]
    assert len(kept) == SHOWN_KEPT and kept[-1] is designs[-1]
    assert designs[0] in kept and designs[1] not in kept
