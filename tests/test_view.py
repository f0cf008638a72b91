"""Tests of scalp3d.viewers.interactive: the 3D view of ``scalp3d view`` (issue 13, point 4), off screen.

One small plan on the sample head (30 dots/cm2, three sessions) is opened off screen and driven as a user would:
the session slider's own callback (its representation set, then the interaction's end event the widget fires on
release), the checkboxes' (state set, then their StateChangedEvent), key presses (the interactor's KeyPressEvent and
CharEvent, as a real key sends both). A screenshot follows each step (written to the test's temporary folder); the
assertions read their pixels: on the head only (the head's box on screen, above the help line), so the controls,
whose looks change with the state, never count.
"""
import sys

import numpy as np
import pytest
from PIL import Image
from scalp3d.viewers.interactive import MAPS, no_display_reason, open_view

WINDOW = (960, 720)


@pytest.fixture(scope="module")
def scene():
    from scalp3d.viewers.scene import Scene

    import scalp3d
    from scalp3d.design import build_field
    from scalp3d.landmarks import resolve_landmarks
    from scalp3d.pipeline import plan_dots
    from scalp3d.sample import load_sample_head

    plan = scalp3d.load_plan(overrides={"density": {"core_per_cm2": 30.0, "hairline_per_cm2": 20.0}})
    _, head, fiducials = load_sample_head()
    lm = resolve_landmarks(head, fiducials, "fiducials")
    field = build_field(head, lm, plan)
    dots, _ = plan_dots(head, field, plan)
    return Scene.from_plan(head, lm, plan, field, dots)


@pytest.fixture(scope="module")
def view(scene):
    v = open_view(scene, off_screen=True, window_size=WINDOW)
    yield v
    v.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("view-shots")


class User:
    """Drives the view's widgets and keys, saving a screenshot after each step."""

    def __init__(self, view, folder):
        import vtk

        self.vtk = vtk
        self.view = view
        self.folder = folder
        self.n = 0

    def slide(self, value):
        (slider,) = sliders(self.view.plotter)
        slider.GetRepresentation().SetValue(value)
        slider.InvokeEvent(self.vtk.vtkCommand.EndInteractionEvent)

    def click(self, box):
        w = self.view.checkboxes[box]
        rep = w.GetRepresentation()
        rep.SetState(1 - rep.GetState())
        w.InvokeEvent(self.vtk.vtkCommand.StateChangedEvent)

    def key(self, key):
        iren = self.view.plotter.iren.interactor
        iren.SetKeySym(key)
        iren.SetKeyCode(key if len(key) == 1 else "\0")
        iren.InvokeEvent("KeyPressEvent")
        iren.InvokeEvent("CharEvent")

    def shot(self, name) -> np.ndarray:
        self.n += 1
        path = self.view.screenshot(self.folder / f"{self.n:02d}-{name}.png")
        return np.asarray(Image.open(path).convert("RGB")).astype(np.int32)


def sliders(plotter):
    """The plotter's slider widgets (pyvista >= 0.47 keeps them under ``widgets``)."""
    w = getattr(plotter, "widgets", None)
    return w.slider_widgets if w is not None and hasattr(w, "slider_widgets") else plotter.slider_widgets


def head_region(view):
    """Slices of the window's head: its box on screen, above the help line."""
    x0, y0, x1, y1 = view.head_box()
    h = view.plotter.window_size[1]
    return slice(max(y0, 0), min(y1, h - 60)), slice(max(x0, 0), x1)


def test_no_display_reason_without_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    msg = no_display_reason()
    assert msg and "DISPLAY" in msg and "\n" not in msg
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert "X server" in no_display_reason()


def test_no_display_reason_dead_display(monkeypatch):
    import ctypes.util

    if not ctypes.util.find_library("X11"):
        pytest.skip("no libX11 to ask an X server")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":987")
    msg = no_display_reason()
    assert msg and "cannot open display ':987'" in msg


def test_scripted_session(view, shots, scene):
    """A user's walk through the window: every control, with a screenshot after each step."""
    u = User(view, shots)
    K = scene.n_sessions
    assert K == 3 and view.session == K and view.map is None
    rows, cols = head_region(view)
    assert (rows.stop - rows.start) > 0.5 * WINDOW[1] and (cols.stop - cols.start) > 0.3 * WINDOW[0]

    # the session slider: 3, then 1, then 0
    u.slide(3.0)
    s3 = u.shot("healed-session-3")
    u.slide(1.2)  # a drag ends between stops: the session is the nearest
    assert view.session == 1
    assert sliders(view.plotter)[0].GetRepresentation().GetValue() == 1
    s1 = u.shot("healed-session-1")
    u.slide(0.0)
    s0 = u.shot("before-session-0")
    assert "Before" in view.describe()[0]

    # the treated skin: where the last session's look differs from the head before treatment
    treated = np.abs(s3 - s0)[rows, cols].sum(axis=2) > 12
    assert treated.sum() > 5000
    tone = {k: img[rows, cols][treated].mean() for k, img in (("0", s0), ("1", s1), ("3", s3))}
    print("tone over the treated skin", tone)
    # each session darker: session 1 adds 30 % of the dots in 'light', 2 and 3 the rest in 'medium' and 'dark'
    assert tone["0"] - tone["1"] > 1.5 and tone["1"] - tone["3"] > 6, tone

    # keys: Right steps the session, digits jump, b switches to before and back
    u.key("Right")
    assert view.session == 1
    u.key("3")
    assert view.session == 3 and view.shown_session == 3
    u.key("b")
    assert view.before and view.shown_session == 0
    before = u.shot("before-by-key-b")
    assert np.array_equal(before[rows, cols], s0[rows, cols])  # before is session 0, pixel for pixel
    u.click("before")  # its checkbox switches back
    assert not view.before and view.session == 3
    assert np.array_equal(u.shot("after-by-checkbox")[rows, cols], s3[rows, cols])

    # fresh: darker dots on reddened skin over the treated area
    u.click("fresh")
    assert view.fresh
    fresh = u.shot("fresh-session-3")
    redness = lambda img: (img[rows, cols][treated][:, 0] - img[rows, cols][treated][:, 1]).mean()
    print("redness fresh, healed", redness(fresh), redness(s3))
    assert redness(fresh) > redness(s3) + 5
    assert fresh[rows, cols][treated].mean() < tone["3"]
    u.key("f")
    assert not view.fresh

    # VTK's own keys are off: 'w' would turn the head to wireframe, 's' to surfaces, '3' stereo
    u.key("w")
    assert view.actor.prop.style == "Surface"
    assert np.array_equal(u.shot("after-w-key")[rows, cols], s3[rows, cols])

    # heat maps: checkboxes, radio-like
    u.click("map:density")
    assert view.map == "density" and "density" in view.describe()[0]
    density = u.shot("map-density")
    assert np.abs(density - s3)[rows, cols][treated].mean() > 40
    u.click("map:zone")
    assert view.map == "zone"
    assert not view.checkboxes["map:density"].GetRepresentation().GetState()
    zone = u.shot("map-zone")
    assert np.abs(zone - density)[rows, cols][treated].mean() > 20
    u.key("m")  # the next map: depth
    assert view.map == "depth"
    depth = u.shot("map-depth")
    assert "0.60 mm everywhere" in view.describe()[1]  # the sample plan's depth is uniform: said, not a bar
    u.key("s")
    assert view.map == "spacing"
    spacing = u.shot("map-spacing")
    for img in (depth, spacing):
        assert np.abs(img - s3)[rows, cols][treated].mean() > 20
    pos, ratio = view.spacing_ratio(3)
    assert len(pos) == len(scene.dots) and ratio.min() >= 0.5 - 1e-6  # never below the plan's spacing floor
    u.click("map:spacing")  # unchecking the map shown: the look again
    assert view.map is None
    assert np.array_equal(u.shot("look-again")[rows, cols], s3[rows, cols])

    # the hairline adds pixels along the border of the treated area, and only there
    u.click("hairline")
    assert view.hairline
    line = u.shot("hairline")
    added = np.argwhere(np.abs(line - s3)[rows, cols].sum(axis=2) > 60) + [rows.start, cols.start]
    assert len(added) > 300
    border = view.to_pixels(view.hairline_segments().reshape(-1, 3))
    from scipy.spatial import cKDTree

    d, _ = cKDTree(border).query(added[:, ::-1])
    print("hairline: pixels added", len(added), "within 6 px of the border", np.mean(d < 6))
    assert np.mean(d < 6) > 0.95, np.percentile(d, [50, 95, 99])
    u.key("h")
    assert not view.hairline

    # landmarks: labelled points where the landmarks are
    u.key("k")
    assert view.landmarks
    marks = u.shot("landmarks")
    added = np.argwhere(np.abs(marks - s3).sum(axis=2) > 60)
    where = view.to_pixels(np.array([scene.landmarks.vertex, scene.landmarks.nasion]))
    for x, y in where:
        assert (np.hypot(added[:, 1] - x, added[:, 0] - y) < 12).sum() > 30
    assert "landmarks" in view._explain.GetInput()

    # r: the starting camera again after a turn
    view.plotter.camera.azimuth = 60
    turned = u.shot("turned")
    assert not np.array_equal(turned, marks)
    u.key("r")
    assert np.array_equal(u.shot("reset-view"), marks)


def test_methods_clip_and_refuse(view):
    view.set_session(99)
    assert view.session == view.scene.n_sessions
    view.set_session(-4)
    assert view.session == 0
    with pytest.raises(ValueError, match="unknown map"):
        view.show_map("colour")
    for name in [*MAPS, None]:
        view.show_map(name)
        assert view.map == name
        assert all(bool(w.GetRepresentation().GetState()) == (f"map:{name}" == box)
                   for box, w in view.checkboxes.items() if box.startswith("map:"))

