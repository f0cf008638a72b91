"""Machine profiles (TOML): axes, workspace, limits, feeds, units, the scan -> machine transform, cartridges.

X Y Z are always the needle tip's position in the machine frame; with ``axes = "xyzab"`` the A B words turn the needle
axis (see :func:`scalp3d.needle.axis_angles_deg`), with ``axes = "xyz"`` the axis is written as a unit vector in each
dot's comment for a controller that orients the needle itself. The transform from the scan (mm) to the machine frame
comes from three or more registration points touched on the patient or a fixture (rigid, least squares); it is the
identity by default, so programs stay in the scan's own axes in mm.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from . import config
from .errors import PlanError, nearest_name, one_line, parse_toml


@dataclass
class Machine:
    """A machine's axes and limits (mm, degrees, mm/min, s)."""

    name: str = "generic-5axis"
    axes: str = "xyzab"
    units: str = "mm"
    workspace_min_mm: tuple = (-config.WORKSPACE_HALF_MM,) * 3
    workspace_max_mm: tuple = (config.WORKSPACE_HALF_MM,) * 3
    depth_range_mm: tuple = config.DEPTH_RANGE_MM
    feed_range_mm_per_min: tuple = config.FEED_RANGE_MM_PER_MIN
    rapid_mm_per_min: float = 10000.0
    tilt_limit_deg: float = config.TILT_LIMIT_DEG
    a_range_deg: tuple = (-180.0, 180.0)
    b_range_deg: tuple = (-180.0, 180.0)
    scan_to_machine: np.ndarray = field(default_factory=lambda: np.eye(4))
    registration_rms_mm: float | None = None
    cartridges: dict = field(default_factory=lambda: dict(config.NEEDLE_DIAMETER_MM))

    @property
    def rotary(self) -> bool:
        return self.axes == "xyzab"

    def to_machine(self, points):
        """Scan-frame points (n,3) -> machine frame."""
        T = self.scan_to_machine
        return np.asarray(points, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]

    def rotate(self, vectors):
        """Scan-frame directions (n,3) -> machine frame."""
        return np.asarray(vectors, dtype=np.float64) @ self.scan_to_machine[:3, :3].T

    def head_in_machine_frame(self, head):
        from .types import Head

        return Head(self.to_machine(head.vertices), head.faces, self.rotate(head.vertex_normals), head.source,
                    list(head.notes))

    def summary(self) -> dict:
        return {"name": self.name, "axes": self.axes, "units": self.units,
                "workspace_min_mm": list(self.workspace_min_mm), "workspace_max_mm": list(self.workspace_max_mm),
                "scan_to_machine": np.round(self.scan_to_machine, 9).tolist(),
                "registration_rms_mm": self.registration_rms_mm}


def rigid_transform(src, dst):
    """Least-squares rigid motion (4x4) taking points ``src`` (k,3) onto ``dst`` (k,3), k >= 3 (Kabsch), and the
    RMS residual in mm."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    H = (src - cs).T @ (dst - cd)
    U, S, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = cd - R @ cs
    res = np.linalg.norm(src @ R.T + T[:3, 3] - dst, axis=1)
    return T, float(np.sqrt((res ** 2).mean())), res


_KEYS = {"name", "axes", "units", "workspace", "limits", "feeds", "registration", "cartridges", "comment"}


def _section(where, data, key, allowed):
    sec = data.get(key, {})
    if not isinstance(sec, dict):
        raise PlanError(f"{where}: '{key}' must be a section [{key}]")
    for k in sec:
        if k not in allowed:
            near = nearest_name(k, allowed)
            hint = f"; did you mean '{key}.{near}'?" if near else f"; allowed: {', '.join(allowed)}"
            raise PlanError(f"{where}: unknown key '{key}.{k}'{hint}")
    return sec


def _numbers(val, shape):
    """``val`` as a float array of ``shape`` if it is a (nested) list of finite numbers of that shape, else None."""
    def ok(x):
        return isinstance(x, list) and all(ok(y) for y in x) if isinstance(x, list) else \
            isinstance(x, (int, float)) and not isinstance(x, bool)

    if not isinstance(val, list) or not ok(val):
        return None
    try:
        arr = np.asarray(val, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    if (shape[0] is None and (arr.ndim != len(shape) or arr.shape[1:] != shape[1:])) or \
            (shape[0] is not None and arr.shape != shape) or not np.isfinite(arr).all():
        return None
    return arr


def _pair(where, name, val, lo=-1e6, hi=1e6):
    arr = _numbers(val, (2,))
    if arr is None or not (lo <= arr[0] < arr[1] <= hi):
        raise PlanError(f"{where}: '{name}' must be [low, high] with low < high within {lo:g}..{hi:g}, not {val!r}")
    return tuple(float(x) for x in arr)


@one_line
def load_machine(spec=None) -> Machine:
    """A machine profile: ``None`` (the generic 5-axis one), a shipped name ('generic-5axis', 'generic-3axis') or
    the path of a TOML file."""
    if spec is None:
        return Machine()
    text, where = _profile_text(spec)
    data = parse_toml(text, where)
    for k in data:
        if k not in _KEYS:
            near = nearest_name(k, sorted(_KEYS))
            raise PlanError(f"{where}: unknown key '{k}'" + (f"; did you mean '{near}'?" if near else ""))
    m = Machine(name=_profile_name(where, data))
    _read_axes_and_units(where, data, m)
    _read_workspace(where, data, m)
    _read_limits(where, data, m)
    _read_feeds(where, data, m)
    _read_registration(where, data, m)
    _read_cartridges(where, data, m)
    return m


def _profile_text(spec):
    """(TOML text, name for messages) of a shipped profile's name or a profile's path; PlanError when it is missing
    or unreadable."""
    path = Path(spec)
    if not path.exists() and not str(spec).endswith(".toml"):
        shipped = resources.files("scalp3d.machines") / f"{spec}.toml"
        if not shipped.is_file():
            names = sorted(p.name[:-5] for p in resources.files("scalp3d.machines").iterdir()
                           if p.name.endswith(".toml"))
            raise PlanError(f"machine profile '{spec}' not found; give a TOML file or one of {', '.join(names)}")
        return shipped.read_text(encoding="utf-8"), f"{spec}.toml"
    if not path.exists():
        raise PlanError(f"{path}: machine profile not found; check the path")
    if not path.is_file():
        raise PlanError(f"{path}: is a folder, not a machine profile; give the TOML file")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except UnicodeDecodeError:
        raise PlanError(f"{path}: machine profile is not UTF-8 text; save it as a TOML text file") from None
    except OSError as exc:
        raise PlanError(f"{path}: machine profile cannot be read ({exc.strerror or exc}); check the file") \
            from None


def _profile_name(where, data) -> str:
    """The profile's ``name`` (default: the file's stem): one line without parentheses, as it goes into the
    programs' comments."""
    name = data.get("name", Path(where).stem)
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or any(c in name for c in "()\n\r"):
        raise PlanError(f"{where}: 'name' must be one line of text without parentheses, not {name!r}")
    return name


def _read_axes_and_units(where, data, m: Machine) -> None:
    """``axes`` ("xyzab" or "xyz") and ``units`` ("mm" or "in") into ``m``."""
    axes = data.get("axes", "xyzab")
    if axes not in ("xyzab", "xyz"):
        raise PlanError(f"{where}: 'axes' must be \"xyzab\" (5-axis, A B rotary) or \"xyz\" (position only, the "
                        f"needle axis as a vector in comments), not {axes!r}")
    m.axes = axes
    units = data.get("units", "mm")
    if units not in ("mm", "in"):
        raise PlanError(f"{where}: 'units' must be \"mm\" or \"in\", not {units!r}")
    m.units = units


def _read_workspace(where, data, m: Machine) -> None:
    """``[workspace]`` min_mm, max_mm (3,) each, min < max on every axis, into ``m``."""
    ws = _section(where, data, "workspace", ("min_mm", "max_mm"))
    if ws:
        lo = _numbers(ws.get("min_mm", list(m.workspace_min_mm)), (3,))
        hi = _numbers(ws.get("max_mm", list(m.workspace_max_mm)), (3,))
        if lo is None or hi is None or not np.all(lo < hi):
            raise PlanError(f"{where}: workspace min_mm and max_mm must be [x, y, z] with min < max")
        m.workspace_min_mm, m.workspace_max_mm = tuple(lo), tuple(hi)


def _read_limits(where, data, m: Machine) -> None:
    """``[limits]``: depth_mm [low, high] within 0-5 mm, tilt_limit_deg in (0, 45], a_range_deg and b_range_deg
    [low, high] within -360..360 degrees, into ``m``."""
    lim = _section(where, data, "limits", ("depth_mm", "tilt_limit_deg", "a_range_deg", "b_range_deg"))
    if "depth_mm" in lim:
        m.depth_range_mm = _pair(where, "limits.depth_mm", lim["depth_mm"], 0.0, 5.0)
    if "tilt_limit_deg" in lim:
        t = lim["tilt_limit_deg"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 < t <= 45:
            raise PlanError(f"{where}: 'limits.tilt_limit_deg' must be above 0 and at most 45, not {t!r}")
        m.tilt_limit_deg = float(t)
    if "a_range_deg" in lim:
        m.a_range_deg = _pair(where, "limits.a_range_deg", lim["a_range_deg"], -360, 360)
    if "b_range_deg" in lim:
        m.b_range_deg = _pair(where, "limits.b_range_deg", lim["b_range_deg"], -360, 360)


def _read_feeds(where, data, m: Machine) -> None:
    """``[feeds]``: range_mm_per_min [low, high] and rapid_mm_per_min (mm/min), into ``m``."""
    fd = _section(where, data, "feeds", ("range_mm_per_min", "rapid_mm_per_min"))
    if "range_mm_per_min" in fd:
        m.feed_range_mm_per_min = _pair(where, "feeds.range_mm_per_min", fd["range_mm_per_min"], 0.0, 1e6)
    if "rapid_mm_per_min" in fd:
        r = fd["rapid_mm_per_min"]
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not 0 < r < 1e7:
            raise PlanError(f"{where}: 'feeds.rapid_mm_per_min' must be a positive number, not {r!r}")
        m.rapid_mm_per_min = float(r)


def _read_registration(where, data, m: Machine) -> None:
    """``[registration]``: the same k >= 3 points (k,3) mm in the scan (scan_mm) and on the machine (machine_mm),
    not on a line; their rigid least-squares transform (4,4) and RMS residual (mm, within
    ``config.REGISTRATION_RMS_LIMIT_MM``) into ``m``."""
    reg = _section(where, data, "registration", ("scan_mm", "machine_mm"))
    if reg:
        s = _numbers(reg.get("scan_mm"), (None, 3))
        d = _numbers(reg.get("machine_mm"), (None, 3))
        if s is None or d is None or s.shape != d.shape or len(s) < 3 or np.abs(np.vstack([s, d])).max() > 1e6:
            raise PlanError(f"{where}: registration needs the same three or more points as scan_mm and machine_mm, "
                            "each [[x, y, z], ...]")
        if np.linalg.matrix_rank(s - s.mean(axis=0), tol=1.0) < 2:
            raise PlanError(f"{where}: the registration points lie on a line; touch three points spread apart")
        T, rms, res = rigid_transform(s, d)
        if rms > config.REGISTRATION_RMS_LIMIT_MM:
            worst = int(np.argmax(res))
            raise PlanError(f"{where}: registration points disagree by {rms:.2f} mm RMS (point {worst + 1} is "
                            f"{res[worst]:.2f} mm off); re-touch it or check the order of the points")
        m.scan_to_machine, m.registration_rms_mm = T, rms


def _read_cartridges(where, data, m: Machine) -> None:
    """``[cartridges]``: needle name = diameter in mm (above 0, at most 5), replacing the default set in ``m``."""
    carts = data.get("cartridges", {})
    if not isinstance(carts, dict):
        raise PlanError(f"{where}: 'cartridges' must be a section [cartridges] of needle = diameter in mm")
    for k, v in carts.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 5:
            raise PlanError(f"{where}: cartridge '{k}' must have a diameter in mm above 0 and at most 5, not {v!r}")
    if carts:
        m.cartridges = {str(k): float(v) for k, v in carts.items()}
