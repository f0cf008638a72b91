"""The pictures of a plan, as the command line and scripts ask for them: the standard set, or one picture.

:func:`render_preview` writes the standard set of :mod:`scalp3d.viewers.pictures` for a
:class:`~scalp3d.viewers.scene.Scene`; :func:`render_view` one picture (a view, a state, a size) for ``scalp3d
preview``. Rendering is off screen (EGL on Linux: no display, no GPU needed). pyvista is imported inside the functions,
so ``import scalp3d.viewers`` stays light and a missing pyvista is one line naming ``pip install pyvista``.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from scalp3d import config
from scalp3d.errors import InputError, MissingDependencyError


def render_preview(scene, out_dir, *, credit=None, extra=None, turntable=True) -> list:
    """Write the standard pictures of ``scene`` into ``out_dir``: ``preview.png`` (six views, healed),
    ``preview-before-after.png``, ``preview-sessions.png`` (healed after each session), ``preview-closeups.png``
    (true scale, healed and fresh), ``preview-turntable.gif`` (unless ``turntable`` is false) and ``design.png`` (the
    design's maps; ``extra``: more per-vertex maps, name -> (n,) values). Returns their paths.

    Examples
    --------
    >>> from scalp3d.viewers.scene import Scene
    >>> paths = render_preview(Scene.from_dir("my-plan"), "my-plan")  # doctest: +SKIP
    """
    from .pictures import render_standard

    return render_standard(scene, out_dir, credit=credit, turntable_gif=turntable, extra=extra)


def render_view(scene, out, *, view="three-quarter", session=None, before=False, fresh=False, size=None,
                credit=None) -> Path:
    """One picture of ``scene`` to ``out`` (PNG): ``view`` one of :data:`scalp3d.viewers.pictures.STANDARD_VIEWS`,
    after ``session`` (default the last; ``before``: the head as it is now), healed or ``fresh``, ``size`` (w, h)
    pixels."""
    from .pictures import Renderer, _label, _save, _state_title, view_shot

    size = check_view(view, size)
    k = 0 if before else (scene.n_sessions if session is None else int(session))
    if not 0 <= k <= scene.n_sessions:
        raise InputError(f"--session {session} is not a session of this plan; it has sessions 1 to {scene.n_sessions}")
    r = Renderer(scene, size)
    try:
        img = r.image(view_shot(scene, view, size[0] / size[1]), k, fresh and k > 0, size)
    finally:
        r.close()
    return _save(_label(img, f"{_state_title(scene, k, fresh)}, {view}", credit=credit), out)


def check_view(view, size=None):
    """Refuse an unknown view or a picture size out of range (before any heavy work); returns the size (w, h)."""
    from .pictures import STANDARD_VIEWS

    if view not in STANDARD_VIEWS:
        raise InputError(f"--view {view!r} is not a view; use one of {', '.join(STANDARD_VIEWS)}")
    size = tuple(size or config.PICTURE_TILE_PX)
    if min(size) < config.PICTURE_MIN_PX or max(size) > config.PICTURE_MAX_PX:
        raise InputError(f"--size {size[0]}x{size[1]} is out of range; give {config.PICTURE_MIN_PX} to "
                         f"{config.PICTURE_MAX_PX} pixels a side, e.g. 1200x900")
    return size


@contextlib.contextmanager
def _egl_window():
    """Ask VTK for its EGL render window while plotters are made (Linux, no display): off screen with no X warning.

    VTK reads ``VTK_DEFAULT_OPENGL_WINDOW`` when a render window is created; without it, it tries X first and prints
    "bad X server connection" before falling back to EGL. A value the user set is left alone.
    """
    key = "VTK_DEFAULT_OPENGL_WINDOW"
    use = (sys.platform.startswith("linux") and key not in os.environ
           and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"))
    if use:
        os.environ[key] = "vtkEGLRenderWindow"
    try:
        yield
    finally:
        if use:
            os.environ.pop(key, None)


def _import_pyvista():
    try:
        import pyvista
    except ImportError:
        raise MissingDependencyError("rendering previews needs pyvista: pip install pyvista") from None
    return pyvista
