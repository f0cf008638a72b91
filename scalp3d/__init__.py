"""scalp3d: plans scalp micropigmentation on a 3D head scan.

A scan in real units becomes a head surface, the practitioner's plan a density field on it, the field blue-noise dots
split into sessions, and each session a needle program (G-code, JSON, CSV) checked against the head, with previews.
``import scalp3d`` needs neither a GPU nor a display; heavy libraries load where they are used.
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"


def numba_cache_dir() -> str:
    """Where numba keeps the compiled kernels: a per-user cache folder, never inside the installed package (a cache
    left in site-packages outlived ``pip install .`` and, after ``pip install -e .``, shadowed the package as an empty
    namespace). ``NUMBA_CACHE_DIR`` in the environment wins."""
    given = _os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return given
    if _sys.platform == "win32":
        base = _os.environ.get("LOCALAPPDATA") or _os.path.expanduser("~\\AppData\\Local")
    elif _sys.platform == "darwin":
        base = _os.path.expanduser("~/Library/Caches")
    else:
        base = _os.environ.get("XDG_CACHE_HOME") or _os.path.expanduser("~/.cache")
    return _os.path.join(base, "scalp3d", "numba")


def numba_cache_is_warm() -> bool:
    """Whether the kernels were compiled and cached before (a first run compiles them: about 30 s)."""
    root = _os.path.join(numba_cache_dir(), "")
    for _dirpath, _dirs, files in _os.walk(root):
        if any(f.startswith("multiclass.multiclass_sweep") and f.endswith(".nbi") for f in files):
            return True
    return False


# set before any kernel is decorated (numba reads it when a cached function is defined)
_os.environ["NUMBA_CACHE_DIR"] = numba_cache_dir()
if "numba" in _sys.modules:
    _sys.modules["numba"].config.CACHE_DIR = _os.environ["NUMBA_CACHE_DIR"]


def place_dots(*args, **kwargs):
    """See :func:`scalp3d.placement.place_dots`."""
    from .placement import place_dots as _place

    return _place(*args, **kwargs)


__all__ = ["place_dots", "__version__"]
