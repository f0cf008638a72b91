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

ZONES = ("hairline", "front", "mid", "crown", "sides", "back", "scar")

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
        "irregularity_mm": (float, 3.0, (0.0, 10.0), "slow waves of the edge (symmetric), amplitude"),
        "micro_irregularity_mm": (float, 1.0, (0.0, 5.0), "small irregular steps along the edge, amplitude"),
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


#: arrays of tables: [[reserved]] regions get no dots; [[scars]] get their own density with a feathered margin
LIST_SCHEMA = {
    "reserved": {
        "center_mm": (list, None, None, "[x, y, z] on the skin, scan axes"),
        "radius_mm": (float, None, (0.5, 100.0), "no dot within this distance along the skin"),
        "comment": (str, None, None, ""),
    },
    "scars": {
        "polyline_mm": (list, None, None, "[[x, y, z], ...] along the scar (FUT strip), scan axes"),
        "points_mm": (list, None, None, "[[x, y, z], ...] punch scars (FUE), scan axes"),
        "width_mm": (float, 2.0, (0.1, 40.0), "scar width (FUT) or punch diameter (FUE)"),
        "density_per_cm2": (float, 80.0, (0.0, config.DENSITY_MAX_PER_CM2), "density on the scar"),
        "margin_mm": (float, 5.0, (0.0, 30.0), "feathered margin where density blends into the surroundings"),
        "depth_mm": (float, None, config.DEPTH_RANGE_MM, "depth on the scar"),
        "needle": (str, None, None, "needle on the scar"),
        "comment": (str, None, None, ""),
    },
}


def _points(where, name, val, single=False):
    arr = np.asarray(val, dtype=np.float64) if isinstance(val, list) else np.zeros(0)
    ok = arr.shape == (3,) if single else (arr.ndim == 2 and arr.shape[1:] == (3,) and len(arr) >= 1)
    if not ok or not np.isfinite(arr).all():
        form = "[x, y, z]" if single else "[[x, y, z], ...]"
        raise PlanError(f"{where}: '{name}' must be {form} in mm, not {val!r}")
    return arr


def _check_lists(where, data, plan):
    for key, sub in LIST_SCHEMA.items():
        items = data.pop(key, None)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise PlanError(f"{where}: '{key}' must be written as [[{key}]] tables")
        out = []
        for n, item in enumerate(items, start=1):
            got = _defaults(sub)
            _check(where, item, sub, got, f"{key}[{n}].")
            if key == "reserved":
                if "center_mm" not in got or "radius_mm" not in got:
                    raise PlanError(f"{where}: {key}[{n}] needs center_mm and radius_mm")
                _points(where, f"{key}[{n}].center_mm", got["center_mm"], single=True)
            else:
                if ("polyline_mm" in got) == ("points_mm" in got):
                    raise PlanError(f"{where}: {key}[{n}] needs either polyline_mm (a strip scar) or points_mm "
                                    "(punch scars)")
                k = "polyline_mm" if "polyline_mm" in got else "points_mm"
                _points(where, f"{key}[{n}].{k}", got[k])
                if "needle" in got and got["needle"] not in config.NEEDLE_DIAMETER_MM:
                    raise PlanError(f"{where}: {key}[{n}]: unknown needle '{got['needle']}'")
            out.append(got)
        plan[key] = out


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
        _check_lists(where, data, plan)
        _check(where, data, SCHEMA, plan)
    if overrides:
        overrides = dict(overrides)
        _check_lists(where, overrides, plan)
        _check(where, overrides, SCHEMA, plan)
    for key in LIST_SCHEMA:
        plan.setdefault(key, [])
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

    section("", {k: v for k, v in plan.items() if k not in LIST_SCHEMA})
    for key in LIST_SCHEMA:
        for item in plan.get(key, []):
            lines.append(f"[[{key}]]")
            lines.extend(f"{k} = {val(v)}" for k, v in item.items())
            lines.append("")
    return "\n".join(lines)


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


def edge_noise(azimuth_rad, macro_mm, micro_mm, seed):
    """Seeded irregularity of the edge (mm) at each azimuth: slow waves, symmetric left-right, plus small steps that
    are not, so the hairline never reads as a ruler line (Shapiro & Shapiro)."""
    rng = np.random.default_rng(seed + 104729)
    a = np.abs(np.asarray(azimuth_rad, dtype=np.float64))
    full = np.asarray(azimuth_rad, dtype=np.float64)
    macro = np.zeros_like(a)
    for k in range(2, 6):
        macro += rng.normal() / k * np.cos(k * a + rng.uniform(0, 2 * np.pi))
    micro = np.zeros_like(a)
    for k in range(18, 48, 3):
        micro += rng.normal() * np.cos(k * full + rng.uniform(0, 2 * np.pi))
    macro *= macro_mm / max(np.abs(macro).max(), 1e-12) if len(a) else 1.0
    micro *= micro_mm / max(np.abs(micro).max(), 1e-12) if len(a) else 1.0
    return macro + micro


def build_field(head: Head, landmarks: Landmarks, plan: dict, geodesic=None) -> Field:
    """Per-vertex density, zone, depth and needle on ``head`` for ``plan`` (see the module docstring).

    Distances along the skin come from the heat method (:class:`scalp3d.geodesic.HeadGeodesics`, built here unless
    given).
    """
    from scipy.spatial import cKDTree

    from .errors import GeometryError
    from .geodesic import HeadGeodesics

    g = geodesic or HeadGeodesics(head.vertices, head.faces)
    origin, R = landmarks.frame()
    local = (head.vertices - origin) @ R.T
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    tree = cKDTree(head.vertices)
    hp = plan["hairline"]
    # the mid-frontal point: on the midline, above the glabella, at the planned distance along the skin
    g_idx = int(tree.query(landmarks.glabella)[1])
    from_glabella = g.distance([g_idx])
    z_g = ((landmarks.glabella - origin) @ R.T)[2]
    mid = np.flatnonzero((np.abs(x) < 3.0) & (y > 0) & (z > z_g))
    if len(mid) == 0 or from_glabella[mid].max() < hp["height_above_glabella_mm"]:
        raise GeometryError("the forehead's midline is too short on this scan for a hairline "
                            f"{hp['height_above_glabella_mm']:.0f} mm above the glabella; lower "
                            "hairline.height_above_glabella_mm or check the landmarks")
    front = mid[np.argmin(np.abs(from_glabella[mid] - hp["height_above_glabella_mm"]))]
    z_front = z[front]
    phi = np.arctan2(x, y)  # 0 at the front, +-pi at the back
    c = np.cos(phi)
    edge = edge_height(np.degrees(np.abs(phi)), z_front, hp["side_above_tragus_mm"], -hp["nape_below_tragus_mm"])
    edge = edge + edge_noise(phi, hp["irregularity_mm"], hp["micro_irregularity_mm"], plan["seed"])
    inside = z >= edge
    # distance along the skin to the edge: from the inside vertices that touch the outside
    f = head.faces
    mixed = inside[f].any(axis=1) & ~inside[f].all(axis=1)
    border = np.unique(f[mixed][inside[f[mixed]]])
    to_edge = g.distance(border) if len(border) else np.full(len(z), np.inf)
    height = np.where(inside, to_edge, -to_edge)
    dp = plan["density"]
    band = hp["transition_mm"]
    t = np.clip(height / band, 0.0, 1.0) if band > 0 else inside.astype(float)
    ramp = t * t * (3.0 - 2.0 * t)
    density = np.where(inside, dp["hairline_per_cm2"] + (dp["core_per_cm2"] - dp["hairline_per_cm2"]) * ramp, 0.0)
    # zones, by priority
    top = z > 0.75 * z.max()
    zone = np.full(len(z), ZONES.index("sides"), dtype=np.int64)
    zone[c < -0.5] = ZONES.index("back")
    zone[c > 0.5] = ZONES.index("front")
    zone[top & (y >= 0)] = ZONES.index("mid")
    zone[top & (y < 0)] = ZONES.index("crown")
    zone[(c > 0.5) & inside & (height < band)] = ZONES.index("hairline")
    needle_names = tuple(config.NEEDLE_DIAMETER_MM)
    depth = np.full(len(z), plan["needle"]["depth_mm"])
    needle = np.full(len(z), needle_names.index(plan["needle"]["name"]), dtype=np.int64)
    for k, name in enumerate(ZONES):
        zp = plan["zones"].get(name, {})
        m = zone == k
        if "density_per_cm2" in zp:
            density[m & inside] = zp["density_per_cm2"]
        if "depth_mm" in zp:
            depth[m] = zp["depth_mm"]
        if "needle" in zp:
            needle[m] = needle_names.index(zp["needle"])
    # scars: their own density on the scar, blended into the surroundings over the margin
    for s in plan.get("scars", []):
        if "polyline_mm" in s:
            pts = np.asarray(s["polyline_mm"], dtype=np.float64)
            dense = [pts[:1]]
            for a, b in zip(pts[:-1], pts[1:]):
                k = max(int(np.ceil(np.linalg.norm(b - a) / 0.5)), 1)
                dense.append(a + np.outer(np.arange(1, k + 1) / k, b - a))
            pts = np.vstack(dense)
        else:
            pts = np.asarray(s["points_mm"], dtype=np.float64)
        dist_to_head, idx = tree.query(pts)
        if dist_to_head.max() > 10.0:
            raise GeometryError(f"a scar point lies {dist_to_head.max():.0f} mm from the head surface; give scar "
                                "coordinates in mm in the scan's axes, on the skin")
        dd = g.distance(np.unique(idx))
        half = 0.5 * s["width_mm"]
        on = dd <= half
        w = np.clip(1.0 - (dd - half) / max(s["margin_mm"], 1e-9), 0.0, 1.0) if s["margin_mm"] > 0 else on * 1.0
        blend = w * w * (3.0 - 2.0 * w)
        density = np.where(on, s["density_per_cm2"], density * (1 - blend) + s["density_per_cm2"] * blend)
        zone[on] = ZONES.index("scar")
        if "depth_mm" in s:
            depth[on] = s["depth_mm"]
        if "needle" in s:
            needle[on] = needle_names.index(s["needle"])
    # reserved regions: no dot at all
    for r in plan.get("reserved", []):
        dist_to_head, idx = tree.query(np.asarray(r["center_mm"], dtype=np.float64))
        if dist_to_head > 10.0:
            raise GeometryError(f"a reserved region's centre lies {dist_to_head:.0f} mm from the head surface; give "
                                "it in mm in the scan's axes, on the skin")
        # the skin distance, and to be safe the straight distance plus one edge (a dot lies in a face whose corners
        # all have density): no dot can land inside the radius
        centre = head.vertices[int(idx)]
        edge = float(np.linalg.norm(head.vertices[f[:, 0]] - head.vertices[f[:, 1]], axis=1).max())
        near = np.linalg.norm(head.vertices - centre, axis=1) <= r["radius_mm"] + edge
        density[near | (g.distance([int(idx)]) <= r["radius_mm"])] = 0.0
    return Field(density_per_cm2=density, zone=zone, zone_names=ZONES, depth_mm=depth, needle=needle,
                 needle_names=needle_names, height_mm=height)
