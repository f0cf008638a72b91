"""Tests of scalp3d.viewers: the healed-look preview PNGs, rendered off screen on a synthetic head.

The head is an icosphere of radius 90 mm in its own head frame (x right, y forward, z up); dots cover the upper half.
Pictures are small (640x480) so the module renders in a few seconds; pixel checks compare a render with dots
against the same render without, never against stored images.
"""
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from scalp3d.errors import InputError, MissingDependencyError
from scalp3d.types import Head, Placement

WINDOW = (640, 480)
RADIUS_MM = 90.0
FRAME = (np.zeros(3), np.eye(3))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sphere_head():
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=5, radius=RADIUS_MM)
    return Head(np.asarray(s.vertices), np.asarray(s.faces), np.asarray(s.vertex_normals), source="icosphere")


def _dots(head, where):
    from scalp3d.placement import place_dots

    density = np.where(where(head.vertices), 15.0, 0.0)  # dots per cm2: a few thousand dots
    return place_dots(head.vertices, head.faces, density_per_cm2=density, seed=0, vertex_normals=head.vertex_normals)


def _no_dots():
    empty = np.zeros((0, 3))
    return Placement(empty, empty.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                     empty.copy())


def _image(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _luma(img):
    return img @ np.array([0.299, 0.587, 0.114])


def _tile(img, row, col, rows=2, cols=2):
    h, w = img.shape[:2]
    return img[h * row // rows:h * (row + 1) // rows, w * col // cols:w * (col + 1) // cols]


def _dotted(img, bare, step=25.0):
    """Share of pixels at least ``step`` grey levels darker than in the render without dots."""
    return float((_luma(bare) - _luma(img) > step).mean())


def _dark(img, level=110.0):
    """Pixels darker than ``level`` (0-255): dots and their shadow tone; the lit skin is far brighter."""
    return int((_luma(img) < level).sum())


@pytest.fixture(scope="module")
def head():
    return _sphere_head()


@pytest.fixture(scope="module")
def top_dots(head):
    return _dots(head, lambda v: v[:, 2] > 0.0)


@pytest.fixture(scope="module")
def renders(head, top_dots, tmp_path_factory):
    """Three renders: with the dots, again with the same dots (determinism), and with no dots."""
    pytest.importorskip("pyvista")
    from scalp3d.viewers import render_preview

    out = tmp_path_factory.mktemp("preview")
    credit = "Head: synthetic icosphere"
    with_dots = render_preview(head, top_dots, FRAME, out, prefix="dots", window_size=WINDOW, credit=credit)
    again = render_preview(head, top_dots, FRAME, out, prefix="again", window_size=WINDOW, credit=credit)
    bare = render_preview(head, _no_dots(), FRAME, out, prefix="bare", window_size=WINDOW, credit=credit)
    return {"dir": out, "dots": with_dots, "again": again, "bare": bare}


def test_synthetic_plan_has_a_few_thousand_dots_in_three_sessions(top_dots):
    assert 2000 < len(top_dots) < 20000
    assert set(np.unique(top_dots.session)) == {1, 2, 3}
    assert (top_dots.positions[:, 2] > -1.0).all()


def test_files_are_pngs_of_the_right_size(renders, top_dots):
    from PIL import Image

    main, sessions = renders["dots"]
    assert main == renders["dir"] / "dots.png" and sessions == renders["dir"] / "dots-sessions.png"
    n_sessions = len(np.unique(top_dots.session))
    for path, size in ((main, WINDOW), (sessions, (WINDOW[0], n_sessions * (WINDOW[1] // 2)))):
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.size == size and im.mode in ("RGB", "RGBA")


def test_writes_atomically_and_leaves_no_temporary_files(renders):
    names = sorted(p.name for p in Path(renders["dir"]).iterdir())
    assert names == sorted(["dots.png", "dots-sessions.png", "again.png", "again-sessions.png",
                            "bare.png", "bare-sessions.png"])


def test_dots_darken_the_top_view(renders):
    top_with = _tile(_image(renders["dots"][0]), 1, 0)
    top_bare = _tile(_image(renders["bare"][0]), 1, 0)
    head_part = top_bare[..., 0] - top_bare[..., 2] > 15  # the head's pixels: skin is reddish, the background bluish
    assert 0.2 < head_part.mean() < 0.6
    darker = _luma(top_bare)[head_part].mean() - _luma(top_with)[head_part].mean()
    assert darker > 2.5, f"the dots darken the top view by only {darker:.1f} grey levels"
    assert _dotted(top_with, top_bare) > 0.02


def _top_view_parts(bare):
    """Find, in the top view's tile of the render without dots, the skin regions a viewer sees: the head (the largest),
    the skin inside the close-up's white frame (enclosed by the head) and the close-up inset (beside the head).
    Returns boolean masks over the tile: head, framed patch, inset."""
    from scipy import ndimage

    skin = bare[..., 0] - bare[..., 2] > 15  # skin is reddish, the background and the frame are not
    labels, n = ndimage.label(skin)
    sizes = np.bincount(labels.ravel())[1:]
    boxes = ndimage.find_objects(labels)
    head_k = int(np.argmax(sizes))
    hb = boxes[head_k]

    def within(b, outer):
        return all(o.start <= s.start and s.stop <= o.stop for s, o in zip(b, outer))

    big = [k for k in np.argsort(sizes)[::-1] if k != head_k and sizes[k] > 100]
    framed = next(k for k in big if within(boxes[k], hb))
    inset = next(k for k in big if not within(boxes[k], hb))
    return labels == head_k + 1, labels == framed + 1, labels == inset + 1


def _blobs(dark):
    from scipy import ndimage

    labels, n = ndimage.label(dark)
    return n, (np.bincount(labels.ravel())[1:].mean() if n else 0.0)


def test_dots_show_in_the_close_up(renders):
    """What a viewer sees in the top view: a small white frame on the head and, beside the head, a square inset of
    magnified skin showing the dots of that 2 cm patch (15 dots/cm2: about 60), larger than in the overview."""
    with_dots = _tile(_image(renders["dots"][0]), 1, 0)
    bare = _tile(_image(renders["bare"][0]), 1, 0)
    head, framed, inset = _top_view_parts(bare)
    rows, cols = np.nonzero(head)
    head_width = cols.max() - cols.min() + 1
    fr, fc = np.nonzero(framed)
    frame_width = fc.max() - fc.min() + 1
    # the frame marks 2 cm on a head 18 cm across (perspective and the frame's lift make it read a little larger)
    assert 0.07 < frame_width / head_width < 0.2, (frame_width, head_width)
    ir, ic = np.nonzero(inset)
    h, w = ir.max() - ir.min() + 1, ic.max() - ic.min() + 1
    assert 0.8 < h / w < 1.25 and w > 3 * frame_width  # square, and magnified
    assert ic.min() > cols.max()  # beside the head, not over it
    dotted = _luma(bare) - _luma(with_dots) > 25.0
    assert dotted[inset].mean() > 0.01
    n_inset, size_inset = _blobs(dotted & inset)
    n_head, size_head = _blobs(dotted & head & ~framed)
    assert 25 < n_inset < 90, n_inset  # the dots of about 4 cm2 (part under the inset's label)
    assert size_inset > 3 * size_head, (size_inset, size_head)  # each dot drawn larger than in the overview


def test_dots_build_up_session_by_session(renders, top_dots):
    img = _image(renders["dots"][1])
    rows = len(np.unique(top_dots.session))
    dark = [_dark(_tile(img, r, 0, rows, 3)) for r in range(rows)]
    assert dark[0] < dark[1] < dark[2], dark
    close = [_dark(_tile(img, r, 2, rows, 3)) for r in range(rows)]
    assert close[0] < close[1] < close[2], close


def test_lower_half_stays_bare(renders):
    # the front view's lower half (below the equator, where no dots are) is the same with and without dots
    front_with = _tile(_image(renders["dots"][0]), 0, 0)
    front_bare = _tile(_image(renders["bare"][0]), 0, 0)
    h = front_with.shape[0]
    lower = slice(int(h * 0.62), int(h * 0.9))
    assert np.abs(front_with[lower] - front_bare[lower]).mean() < 0.5


def test_rendering_is_deterministic(renders):
    for a, b in zip(renders["dots"], renders["again"]):
        assert a.read_bytes() == b.read_bytes()


def test_dots_behind_the_head_are_hidden(head, tmp_path):
    """Dots only on the back of the head must not show through it in the front view (depth test)."""
    pytest.importorskip("pyvista")
    from scalp3d.viewers import render_preview

    back = _dots(head, lambda v: v[:, 1] < -20.0)
    with_back = render_preview(head, back, FRAME, tmp_path, prefix="back", window_size=WINDOW)
    bare = render_preview(head, _no_dots(), FRAME, tmp_path, prefix="bare", window_size=WINDOW)
    below_label = slice(int(0.15 * WINDOW[1] / 2), None)  # the label holds the number of dots
    front_with = _tile(_image(with_back[0]), 0, 0)[below_label]
    front_bare = _tile(_image(bare[0]), 0, 0)[below_label]
    changed = (np.abs(front_with - front_bare).max(axis=2) > 30).mean()
    assert changed < 0.001, f"{changed:.2%} of the front view changed"
    back_with = _tile(_image(with_back[0]), 1, 1)
    back_bare = _tile(_image(bare[0]), 1, 1)
    assert _dotted(back_with, back_bare) > 0.02


def test_import_needs_no_pyvista():
    code = "import sys, scalp3d.viewers, scalp3d.viewers.preview; " \
           "assert not any(m.split('.')[0] in ('pyvista', 'vtk', 'vtkmodules') for m in sys.modules), 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_pyvista_says_what_to_install(monkeypatch, head, tmp_path):
    from scalp3d.viewers import render_preview

    monkeypatch.setitem(sys.modules, "pyvista", None)  # makes `import pyvista` raise ImportError
    with pytest.raises(MissingDependencyError, match="pip install pyvista"):
        render_preview(head, _no_dots(), FRAME, tmp_path)
    assert not list(tmp_path.iterdir())


def test_renders_without_display_and_without_x_warning(tmp_path):
    pytest.importorskip("pyvista")
    script = textwrap.dedent(f"""
        import numpy as np, trimesh
        from scalp3d.types import Head, Placement
        from scalp3d.viewers import render_preview
        s = trimesh.creation.icosphere(3, radius=90.0)
        head = Head(np.asarray(s.vertices), np.asarray(s.faces), np.asarray(s.vertex_normals))
        e = np.zeros((0, 3)); i = np.zeros(0, np.int64)
        render_preview(head, Placement(e, e, i, i, i, e), (np.zeros(3), np.eye(3)), {str(tmp_path)!r}, window_size=(320, 240))
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "bad X server" not in run.stderr
    assert (tmp_path / "preview.png").exists() and (tmp_path / "preview-sessions.png").exists()


@pytest.mark.parametrize("change, message", [
    (lambda h, d, f: (h, replace(d, positions=d.positions[:, :2]), f), "positions"),
    (lambda h, d, f: (h, replace(d, normals=d.normals[:5]), f), "normals"),
    (lambda h, d, f: (h, replace(d, session=d.session - 1), f), "1-based"),
    (lambda h, d, f: (Head(h.vertices, h.faces + len(h.vertices), h.vertex_normals), d, f), "faces"),
    (lambda h, d, f: (h, d, (np.zeros(3), 2 * np.eye(3))), "rotation"),
    (lambda h, d, f: (h, d, np.zeros(3)), "frame"),
])
def test_bad_input_is_refused_with_a_message(head, top_dots, tmp_path, change, message):
    from scalp3d.viewers import render_preview

    h, d, f = change(head, top_dots, FRAME)
    with pytest.raises(InputError, match=message):
        render_preview(h, d, f, tmp_path)
    assert not list(tmp_path.iterdir())


def test_window_too_small_is_refused(head, tmp_path):
    from scalp3d.viewers import render_preview

    with pytest.raises(InputError, match="window_size"):
        render_preview(head, _no_dots(), FRAME, tmp_path, window_size=(100, 80))
