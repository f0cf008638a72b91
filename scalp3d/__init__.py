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
    """Whether the kernels of this installed copy were compiled and cached before (a first run compiles them: about
    20 s). Numba keeps each source folder's kernels in a folder of its own, named as numba names it (the folder's
    name and the sha1 of its path): another copy's kernels (a regular install beside an editable one) do not count."""
    import hashlib
    import importlib.util

    def has_sweep(files):
        return any(f.startswith("multiclass._sweep_rows") and f.endswith(".nbi") for f in files)

    try:
        spec = importlib.util.find_spec("scalp3d.kernels")
        where = _os.path.abspath(list(spec.submodule_search_locations)[0])
    except (ImportError, AttributeError, IndexError, TypeError, ValueError):
        where = None
    if where is not None:
        own = _os.path.join(numba_cache_dir(), "_".join([_os.path.basename(where),
                                                          hashlib.sha1(where.encode()).hexdigest()]))
        try:
            return has_sweep(_os.listdir(own))
        except OSError:
            return False
    return any(has_sweep(files) for _dirpath, _dirs, files in _os.walk(_os.path.join(numba_cache_dir(), "")))


# set before any kernel is decorated (numba reads it when a cached function is defined)
_os.environ["NUMBA_CACHE_DIR"] = numba_cache_dir()
if "numba" in _sys.modules:
    _sys.modules["numba"].config.CACHE_DIR = _os.environ["NUMBA_CACHE_DIR"]


#: the public API: name -> module it lives in (imported on first use, so ``import scalp3d`` stays light)
_API = {
    # reading and the head surface
    "load_scan": "scan", "make_head": "surface", "load_head": "surface", "load_sample_head": "sample",
    # landmarks and the design
    "estimate_landmarks": "landmarks", "resolve_landmarks": "landmarks", "load_landmarks": "landmarks",
    "load_plan": "design", "build_field": "design", "dots_with_settings": "design", "plan_to_toml": "design",
    # dots, their quality and the spacing floor
    "place_dots": "placement", "replace_where_changed": "placement", "spacing_for_density": "placement",
    "local_spacing_mm": "placement",
    "placement_quality": "quality", "check_floor": "spacing",
    # needle programs, writing them, verifying them
    "load_machine": "machine", "plan_session": "needle", "SurfaceQuery": "proximity",
    "gcode_text": "export", "dots_csv_text": "export", "read_dots_csv": "export",
    "verify_program": "verify", "verify_file": "verify",
    # the whole pass, as `scalp3d plan` runs it
    "run": "pipeline", "plan_dots": "pipeline",
    # live design
    "LiveDesign": "live",
    # pictures
    "render_preview": "viewers.preview", "render_view": "viewers.preview", "Scene": "viewers.scene",
    # data types and errors
    "Scan": "types", "Head": "types", "Landmarks": "types", "Field": "types", "Placement": "types", "Dots": "types",
    "Plan": "types", "NeedleSettings": "types", "Motion": "types", "Program": "needle", "Visits": "needle",
    "Scalp3dError": "errors", "InputError": "errors", "PlanError": "errors", "SafetyError": "errors",
    "PlanRefused": "errors",
}


def __getattr__(name):
    """The public API (``scalp3d.load_scan``, ``scalp3d.place_dots``, ...), imported on first use; see the README's
    "Using scalp3d from Python" and each function's docstring (shapes, dtypes, units)."""
    mod = _API.get(name)
    if mod is None:
        raise AttributeError(f"module 'scalp3d' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_API))


__all__ = ["__version__", "numba_cache_dir", "numba_cache_is_warm", *_API]
