"""The practitioner's plan (a TOML file) and the design field it makes on the head.

The plan is read and validated key by key (unknown keys get a suggestion, wrong types and out-of-range values a
one-line error naming the key, the value and the allowed range). :func:`build_field` turns it into per-vertex target
density, zone, depth and needle on the head, in the head frame given by the landmarks:

* the frontal hairline's mid point lies ``height_above_glabella_mm`` above the glabella, measured along the skin of the
  midline; the treated area's edge runs level from there across the forehead, down round the temples, level above
  the ears (``side_above_tragus_mm``) and down to the nape (``nape_below_tragus_mm`` below the tragi), as a smooth
  function of the azimuth around the head's vertical axis (:func:`edge_height`);
* density rises from ``hairline_per_cm2`` at the edge to ``core_per_cm2`` over ``transition_mm`` (smoothstep);
* zones: hairline (the frontal transition band), front, mid, crown, sides, back; each may override density, depth and
  needle in ``[zones.NAME]``.
"""
from __future__ import annotations

import copy
import difflib
import math
import sys
from pathlib import Path

import numpy as np

from . import config
from .errors import PlanError
from .types import Field, Head, Landmarks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ZONES = ("hairline", "front", "mid", "crown", "sides", "back")

#: key -> (type, default, (min, max) or None, help). Sections are nested dicts.
SCHEMA = {
    "seed": (int, 0, (0, 2**31 - 1), "random seed for dot placement"),
    "hairline": {
        "height_above_glabella_mm": (float, config.HAIRLINE_HEIGHT_MM, config.HAIRLINE_HEIGHT_RANGE_MM,
                                     "mid-frontal hairline point above the glabella, along the skin"),
        "transition_mm": (float, config.TRANSITION_MM, (0.0, 60.0), "band where density rises from sparse to full"),
        "side_above_tragus_mm": (float, config.SIDE_HAIRLINE_ABOVE_TRAGUS_MM, (10.0, 90.0),
                                 "height of the treated area's edge above the ears"),
        "nape_below_tragus_mm": (float, config.NAPE_HAIRLINE_BELOW_TRAGUS_MM, (-40.0, 60.0),
                                 "how far below the tragi the treated area reaches at the back"),
    },
    "density": {
        "core_per_cm2": (float, config.CORE_DENSITY_PER_CM2, (1.0, config.DENSITY_MAX_PER_CM2),
                         "final density in the core"),
        "hairline_per_cm2": (float, config.HAIRLINE_DENSITY_PER_CM2, (1.0, config.DENSITY_MAX_PER_CM2),
                             "final density at the very edge"),
    },
    "sessions": {
        "fractions": (list, list(config.SESSION_FRACTIONS), None, "cumulative share of the final density"),
        "shades": (list, list(config.SESSION_SHADES), None, "pigment shade per session"),
    },
    "needle": {
        "name": (str, config.NEEDLE, None, "needle cartridge"),
        "depth_mm": (float, config.DEPTH_MM, config.DEPTH_RANGE_MM, "depth below the skin"),
        "standoff_mm": (float, config.STANDOFF_MM, config.STANDOFF_RANGE_MM, "approach height above the skin"),
        "plunge_feed_mm_per_min": (float, config.PLUNGE_FEED_MM_PER_MIN, config.FEED_RANGE_MM_PER_MIN, ""),
        "travel_feed_mm_per_min": (float, config.TRAVEL_FEED_MM_PER_MIN, config.FEED_RANGE_MM_PER_MIN, ""),
        "dwell_s": (float, config.DWELL_S, config.DWELL_RANGE_S, "pause at depth"),
        "clearance_mm": (float, config.CLEARANCE_MM, (0.5, 20.0), "closest travel may come to the skin"),
        "zone_order": (list, [], None, "zones toured first, in this order (e.g. [\"hairline\"])"),
    },
    "zones": {z: {
        "density_per_cm2": (float, None, (0.0, config.DENSITY_MAX_PER_CM2), "override of the zone's density"),
        "depth_mm": (float, None, config.DEPTH_RANGE_MM, "override of the zone's depth"),
        "needle": (str, None, None, "override of the zone's needle"),
    } for z in ZONES},
}


def _defaults(schema):
    out = {}
    for key, spec in schema.items():
        if isinstance(spec, dict):
            out[key] = _defaults(spec)
        elif spec[1] is not None:
            out[key] = copy.deepcopy(spec[1])
    return out


def _check(where, data, schema, out, prefix=""):
    for key, val in data.items():
        name = prefix + key
        if key not in schema:
            near = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.5)
            hint = f"did you mean '{prefix}{near[0]}'?" if near else f"allowed: {', '.join(schema)}"
            raise PlanError(f"{where}: unknown key '{name}'; {hint}")
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(val, dict):
                raise PlanError(f"{where}: '{name}' must be a section [{name}], not a value")
            out.setdefault(key, {})
            _check(where, val, spec, out[key], name + ".")
            continue
        typ, _, rng, _ = spec
        if typ is float and isinstance(val, int) and not isinstance(val, bool):
            val = float(val)
        if not isinstance(val, typ) or isinstance(val, bool):
            tname = {float: "a number", int: "a whole number", str: "text in quotes", list: "a list [..]"}[typ]
            raise PlanError(f"{where}: '{name}' must be {tname}, not {val!r}")
        if rng is not None and not (rng[0] <= val <= rng[1]):
            raise PlanError(f"{where}: '{name}' = {val} is out of range; allowed {rng[0]:g} to {rng[1]:g}")
        out[key] = val


def load_plan(path=None, overrides: dict | None = None) -> dict:
    """The fully resolved plan: defaults, then the TOML file, then ``overrides`` (same nesting), all validated."""
    plan = _defaults(SCHEMA)
    where = str(path) if path else "plan"
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise PlanError(f"{p}: plan file not found; check the path")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{p}: not valid TOML ({exc}); fix the line it names") from None
        _check(where, data, SCHEMA, plan)
    if overrides:
        _check(where, overrides, SCHEMA, plan)
    fr = plan["sessions"]["fractions"]
    if (not fr or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in fr)
            or any(b <= a for a, b in zip(fr, fr[1:])) or fr[0] <= 0 or abs(fr[-1] - 1.0) > 1e-9 or len(fr) > 8):
        raise PlanError(f"{where}: 'sessions.fractions' must rise strictly from above 0 to 1.0 "
                        f"(cumulative, at most 8), e.g. [0.3, 0.7, 1.0]; not {fr}")
    plan["sessions"]["fractions"] = [float(x) for x in fr]
    shades = plan["sessions"]["shades"]
    if len(shades) != len(fr) or not all(isinstance(s, str) and s for s in shades):
        raise PlanError(f"{where}: 'sessions.shades' needs one name per session ({len(fr)}), not {shades}")
    if plan["density"]["hairline_per_cm2"] > plan["density"]["core_per_cm2"]:
        raise PlanError(f"{where}: 'density.hairline_per_cm2' is above 'density.core_per_cm2'; the hairline is the "
                        "sparse edge")
    zo = plan["needle"]["zone_order"]
    bad = [z for z in zo if z not in ZONES]
    if bad or len(set(zo)) != len(zo):
        raise PlanError(f"{where}: 'needle.zone_order' lists zones once each among {', '.join(ZONES)}, not {zo}")
    needles = [plan["needle"]["name"]] + [z.get("needle") for z in plan["zones"].values() if z.get("needle")]
    for n in needles:
        if n not in config.NEEDLE_DIAMETER_MM:
            raise PlanError(f"{where}: unknown needle '{n}'; known: {', '.join(config.NEEDLE_DIAMETER_MM)}")
    return plan


def plan_to_toml(plan: dict) -> str:
    """Write a resolved plan back as TOML (flat values, lists and sections only)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    lines = ["# scalp3d plan, fully resolved: re-run with --plan this file to get the same outputs", ""]

    def section(name, d):
        flat = [(k, v) for k, v in d.items() if not isinstance(v, dict)]
        subs = [(k, v) for k, v in d.items() if isinstance(v, dict)]
        if flat:
            if name:
                lines.append(f"[{name}]")
            lines.extend(f"{k} = {val(v)}" for k, v in flat)
            lines.append("")
        for k, v in subs:
            section(f"{name}.{k}" if name else k, v)

    section("", plan)
    return "\n".join(lines)


def _midline_arc_point(head: Head, origin, R, start_local, length_mm):
    """Walk the midline profile from ``start_local`` upwards over the forehead by ``length_mm`` along the skin."""
    local = (head.vertices - origin) @ R.T
    mid = local[np.abs(local[:, 0]) < 2.5]
    # order the front/top midline points by their polar angle in the sagittal plane, seen from the origin
    ang0 = math.atan2(start_local[2], start_local[1])
    ang = np.arctan2(mid[:, 2], mid[:, 1])
    sel = (ang >= ang0) & (ang <= math.pi * 0.95)
    pts = mid[sel]
    ang = ang[sel]
    if len(pts) < 10:
        return None
    bins = np.linspace(ang0, ang.max(), 400)
    idx = np.digitize(ang, bins)
    prof = [start_local[1:]]
    for b in range(1, len(bins)):
        s = pts[idx == b]
        if len(s):
            r = np.hypot(s[:, 1], s[:, 2])
            k = np.argmax(r)  # outermost: the skin, not an inner fold
            prof.append(s[k, 1:])
    prof = np.array(prof)
    seg = np.linalg.norm(np.diff(prof, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] < length_mm:
        return None
    k = int(np.searchsorted(cum, length_mm))
    t = (length_mm - cum[k - 1]) / max(seg[k - 1], 1e-12)
    yz = prof[k - 1] + t * (prof[k] - prof[k - 1])
    return np.array([0.0, yz[0], yz[1]])


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def edge_height(azimuth_deg, z_front, z_side, z_back):
    """Height of the treated area's edge in the head frame at each azimuth (0 = front, 180 = back), in mm.

    Flat across the forehead, down round the temples to the side height, level above the ears, then down to the
    nape: ``config.HAIRLINE_AZIMUTH_DEG`` gives the four turning points.
    """
    a0, a1, a2, a3 = config.HAIRLINE_AZIMUTH_DEG
    a = np.asarray(azimuth_deg, dtype=np.float64)
    temple = _smoothstep((a - a0) / (a1 - a0))
    nape = _smoothstep((a - a2) / (a3 - a2))
    return z_front + (z_side - z_front) * temple + (z_back - z_side) * nape


def build_field(head: Head, landmarks: Landmarks, plan: dict) -> Field:
    """Per-vertex density, zone, depth and needle on ``head`` for ``plan`` (see the module docstring)."""
    origin, R = landmarks.frame()
    local = (head.vertices - origin) @ R.T
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    hp = plan["hairline"]
    g_local = (landmarks.glabella - origin) @ R.T
    front_pt = _midline_arc_point(head, origin, R, g_local, hp["height_above_glabella_mm"])
    if front_pt is None:
        from .errors import GeometryError

        raise GeometryError("the forehead's midline is too short on this scan for a hairline "
                            f"{hp['height_above_glabella_mm']:.0f} mm above the glabella; lower "
                            "hairline.height_above_glabella_mm or check the landmarks")
    z_front = front_pt[2]
    z_side = hp["side_above_tragus_mm"]
    z_back = -hp["nape_below_tragus_mm"]
    phi = np.arctan2(x, y)  # 0 at the front, +-pi at the back
    c = np.cos(phi)
    edge = edge_height(np.degrees(np.abs(phi)), z_front, z_side, z_back)
    height = z - edge
    dp = plan["density"]
    band = hp["transition_mm"]
    t = np.clip(height / band, 0.0, 1.0) if band > 0 else (height >= 0).astype(float)
    ramp = t * t * (3.0 - 2.0 * t)
    density = np.where(height >= 0, dp["hairline_per_cm2"] + (dp["core_per_cm2"] - dp["hairline_per_cm2"]) * ramp, 0.0)
    # zones, by priority
    top = z > 0.75 * z.max()
    zone = np.full(len(z), ZONES.index("sides"), dtype=np.int64)
    zone[c < -0.5] = ZONES.index("back")
    zone[c > 0.5] = ZONES.index("front")
    zone[top & (y >= 0)] = ZONES.index("mid")
    zone[top & (y < 0)] = ZONES.index("crown")
    zone[(c > 0.5) & (height < band) & (height >= 0)] = ZONES.index("hairline")
    needle_names = tuple(config.NEEDLE_DIAMETER_MM)
    depth = np.full(len(z), plan["needle"]["depth_mm"])
    needle = np.full(len(z), needle_names.index(plan["needle"]["name"]), dtype=np.int64)
    for k, name in enumerate(ZONES):
        zp = plan["zones"].get(name, {})
        m = zone == k
        if "density_per_cm2" in zp:
            density[m & (height >= 0)] = zp["density_per_cm2"]
        if "depth_mm" in zp:
            depth[m] = zp["depth_mm"]
        if "needle" in zp:
            needle[m] = needle_names.index(zp["needle"])
    return Field(density_per_cm2=density, zone=zone, zone_names=ZONES, depth_mm=depth, needle=needle,
                 needle_names=needle_names, height_mm=height)
