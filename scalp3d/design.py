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
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import config
from .errors import InputError, PlanError, nearest_name, one_line, parse_toml
from .meshes import face_areas, vertex_reach_mm
from .types import (Dots, Field, HairlinePlan, HairPlan, Head, Landmarks, Placement, Plan, ScarPlan, ZonePlan,
                    check_fractions, settings_vertex)

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
        "frontotemporal_half_width_mm": (float, config.FRONTOTEMPORAL_HALF_WIDTH_MM, (20.0, 80.0),
                                         "each frontotemporal point's distance from the midline"),
        "recession_mm": (float, config.RECESSION_MM, (0.0, 40.0),
                         "frontotemporal points this far above the mid-frontal level, along the skin"),
        "temple_ahead_of_tragus_mm": (float, config.TEMPLE_AHEAD_OF_TRAGUS_MM, (10.0, 90.0),
                                      "temple point: how far in front of the tragus"),
        "temple_above_tragus_mm": (float, config.TEMPLE_ABOVE_TRAGUS_MM, (10.0, 100.0),
                                   "temple point: how far above the tragus"),
        "polyline_mm": (list, None, None, "a drawn frontal hairline [[x, y, z], ...] on the skin, scan axes, "
                        "from one side to the other (replaces the points above where it runs)"),
        "polyline_file": (str, None, None, "the same from a file: x y z per line (mm, scan axes; CSV, spaces or "
                          "a JSON list), relative to the plan file"),
        "irregularity_mm": (float, 3.0, (0.0, 10.0), "slow waves of the edge (symmetric), amplitude"),
        "micro_irregularity_mm": (float, 1.0, (0.0, 5.0), "small irregular steps along the edge, amplitude"),
    },
    "mode": (str, "bald", None, "bald (design a hairline and zones), whole-scalp (alopecia areata/totalis: every "
             "zone at the core density) or density (thinning hair: the hairline is intact, no sparse edge band)"),
    "hair": {
        "from_colour": (bool, False, None, "lower the added density where the scan's colour shows hair"),
        "strength": (float, 1.0, (0.0, 1.0), "how much of the density hair replaces (1 = all of it)"),
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
        "clearance_mm": (float, config.CLEARANCE_MM, config.CLEARANCE_RANGE_MM, "closest travel may come to the skin"),
        "zone_order": (list, [], None, "zones toured first, in this order (e.g. [\"hairline\"])"),
    },
    "preview": {
        "skin": (str, "auto", None, "skin colour of the pictures: 'scan' (the scan's colour), one of "
                 + ", ".join(config.SKIN_PRESETS) + ", or 'auto' (the scan's colour when it has one)"),
        "fringe": (str, "stubble", None, "hair-bearing skin outside the treated area: 'stubble' (shaved, the same "
                   "tone), 'scan' (the scan's colour) or 'bare' (alopecia totalis)"),
        "halo_mm": (float, config.HEALED_HALO_MM, (0.0, 0.5), "a healed dot's halo as seen through the skin"),
        "pigments": (dict, {}, None, "pigment colour per shade, e.g. {light = \"#6c6e72\"} (sRGB hex)"),
    },
    "zones": {z: {
        "density_per_cm2": (float, None, (0.0, config.DENSITY_MAX_PER_CM2), "override of the zone's density"),
        "depth_mm": (float, None, config.DEPTH_RANGE_MM, "override of the zone's depth"),
        "needle": (str, None, None, "override of the zone's needle"),
        "shades": (list, None, None, "override of the shade per session in this zone"),
        "dot_size_mm": (float, None, config.DOT_SIZE_RANGE_MM, "healed dot diameter aimed at in this zone"),
    } for z in ZONES},
}


#: arrays of tables: [[reserved]] regions get no dots; [[scars]] get their own density with a feathered margin
LIST_SCHEMA = {
    "reserved": {
        "center_mm": (list, None, None, "[x, y, z] on the skin, scan axes"),
        "radius_mm": (float, None, (0.5, 100.0), "no dot within this distance along the skin"),
        "mask_ply": (str, None, None, "instead of a centre: a PLY of the head (mm, scan axes, e.g. the head.ply "
                     "scalp3d wrote) whose marked vertices are reserved; relative to the plan file"),
        "mask_property": (str, "mask", None, "the PLY vertex property that marks them (> 0), or \"red\" for "
                          "vertices painted red"),
        "comment": (str, None, None, ""),
    },
    "scars": {
        "polyline_mm": (list, None, None, "[[x, y, z], ...] along the scar (FUT strip), scan axes"),
        "points_mm": (list, None, None, "[[x, y, z], ...] punch scars (FUE), scan axes"),
        "mask_ply": (str, None, None, "or: a PLY of the head whose marked vertices are the scar (see reserved)"),
        "mask_property": (str, "mask", None, "the PLY vertex property that marks the scar, or \"red\""),
        "width_mm": (float, 2.0, (0.1, 40.0), "scar width (FUT) or punch diameter (FUE)"),
        "density_per_cm2": (float, 80.0, (0.0, config.DENSITY_MAX_PER_CM2), "density on the scar"),
        "margin_mm": (float, 5.0, (0.0, 30.0), "feathered margin where density blends into the surroundings"),
        "depth_mm": (float, None, config.DEPTH_RANGE_MM, "depth on the scar"),
        "needle": (str, None, None, "needle on the scar"),
        "comment": (str, None, None, ""),
    },
}


def _short(val, n=60) -> str:
    """repr of a value a user wrote, cut to ``n`` characters (a message stays one readable line)."""
    r = repr(val)
    return r if len(r) <= n else r[:n - 3] + "..."


def _is_num(x) -> bool:
    """A finite number (not a bool; an int too large for a float is not one)."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _points(where, name, val, single=False):
    rows = [val] if single else val
    ok = isinstance(val, list) and (single or len(val) >= 1) and all(
        isinstance(r, list) and len(r) == 3 and all(_is_num(c) for c in r) for r in rows)
    arr = np.asarray(rows, dtype=np.float64) if ok else None
    if arr is None or not np.isfinite(arr).all() or np.abs(arr).max() > config.MAX_COORD_MM:
        form = "[x, y, z]" if single else "[[x, y, z], ...]"
        raise PlanError(f"{where}: '{name}' must be {form} in mm (finite, within {config.MAX_COORD_MM:g} mm of the "
                        f"scan's origin), not {_short(val)}")
    return arr[0] if single else arr


#: characters refused in a plan's text values: line breaks and other control characters (plan.toml is written back
#: from them) and parentheses (names and shades go into G-code comments, which must never nest)
_BAD_TEXT = set(chr(c) for c in range(32)) | {chr(127), "\u2028", "\u2029", "\x85", "(", ")"}


def _check_text(where, name, val, path=False):
    """Refuse text a G-code comment or plan.toml cannot carry; ``path``: a file name (parentheses allowed)."""
    bad = {c for c in val if c in _BAD_TEXT and not (path and c in "()")}
    if bad or len(val) > (config.PLAN_PATH_MAX_CHARS if path else config.PLAN_TEXT_MAX_CHARS):
        what = "a line break or control character" if bad - {"(", ")"} else "parentheses" if bad else "too long"
        raise PlanError(f"{where}: '{name}' = {_short(val)} holds {what}; write it as one short line"
                        + ("" if path else " without parentheses"))


def _check_lists(where, data, plan, base=None):
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
            if "mask_ply" in got:
                mp = Path(got["mask_ply"])
                mp = mp if mp.is_absolute() else (Path(base) if base else Path.cwd()) / mp
                got["mask_ply"] = str(mp.resolve())
                read_mask_ply(got["mask_ply"], got["mask_property"])  # fail now, not after minutes of work
            if key == "reserved":
                if "mask_ply" in got:
                    if "center_mm" in got:
                        raise PlanError(f"{where}: {key}[{n}] has both center_mm and mask_ply; give one")
                    got.setdefault("radius_mm", config.RESERVED_MASK_RADIUS_MM)
                else:
                    if "center_mm" not in got or "radius_mm" not in got:
                        raise PlanError(f"{where}: {key}[{n}] needs center_mm and radius_mm, or mask_ply")
                    _points(where, f"{key}[{n}].center_mm", got["center_mm"], single=True)
            else:
                given = [k for k in ("polyline_mm", "points_mm", "mask_ply") if k in got]
                if len(given) != 1:
                    raise PlanError(f"{where}: {key}[{n}] needs one of polyline_mm (a strip scar), points_mm "
                                    "(punch scars) or mask_ply (painted on the head)")
                k = given[0]
                if k != "mask_ply":
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
            near = nearest_name(key, schema, cutoff=0.5)
            hint = f"did you mean '{prefix}{near}'?" if near else f"allowed: {', '.join(schema)}"
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
            val = float(val) if _is_num(val) else math.inf  # an int past float range is out of any range
        if not isinstance(val, typ) or (isinstance(val, bool) and typ is not bool):
            tname = {float: "a number", int: "a whole number", str: "text in quotes", list: "a list [..]",
                     bool: "true or false", dict: "a table {name = value, ...}"}[typ]
            raise PlanError(f"{where}: '{name}' must be {tname}, not {_short(val)}")
        if typ is str:
            _check_text(where, name, val, path=key in ("polyline_file", "mask_ply"))
        if rng is not None and not (rng[0] <= val <= rng[1]):
            raise PlanError(f"{where}: '{name}' = {val} is out of range; allowed {rng[0]:g} to {rng[1]:g}")
        out[key] = val


def example_plans() -> list:
    """The names of the example plans shipped in ``scalp3d/plans/`` (``full-bald``, ``fut-scar``, ...)."""
    from importlib import resources

    return sorted(e.name[:-5] for e in resources.files("scalp3d.plans").iterdir() if e.name.endswith(".toml"))


def example_plan(name: str):
    """The shipped example plan ``name`` (``fut-scar`` or ``fut-scar.toml``, no folder) as a Path, None if there is
    none of that name."""
    from importlib import resources

    stem = name[:-5] if name.endswith(".toml") else name
    if stem not in example_plans():
        return None
    return Path(str(resources.files("scalp3d.plans") / f"{stem}.toml"))


@one_line
def load_plan(path=None, overrides: dict | None = None) -> Plan:
    """The fully resolved plan: defaults, then the TOML file, then ``overrides`` (a dict of the TOML's nesting), all
    validated, frozen into a :class:`scalp3d.types.Plan`. ``path`` names a TOML file, or, when no such file exists,
    one of the example plans by name (:func:`example_plans`: ``--plan fut-scar``)."""
    plan = _defaults(SCHEMA)
    where = str(path) if path else "plan"
    if path is not None:
        p = Path(path)
        if not p.exists():
            p = example_plan(str(path))
        if p is None:
            raise PlanError(f"{path}: plan file not found; check the path, or name an example plan: "
                            f"{', '.join(example_plans())}")
        if not p.is_file():
            raise PlanError(f"{p}: is a folder, not a plan file; give the TOML file")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PlanError(f"{p}: not UTF-8 text; save the plan as a TOML text file") from None
        except OSError as exc:
            raise PlanError(f"{p}: plan file cannot be read ({exc.strerror or exc}); check the file") from None
        data = parse_toml(text, str(p))
        _check_lists(where, data, plan, base=p.parent)
        _check(where, data, SCHEMA, plan)
    if overrides:
        overrides = dict(overrides)
        _check_lists(where, overrides, plan)
        _check(where, overrides, SCHEMA, plan)
    for key in LIST_SCHEMA:
        plan.setdefault(key, [])
    try:  # the one check of session fractions, shared with place_dots
        fr = plan["sessions"]["fractions"] = list(check_fractions(plan["sessions"]["fractions"],
                                                                   what="'sessions.fractions'"))
    except InputError as exc:
        raise PlanError(f"{where}: {exc}") from None
    shades = plan["sessions"]["shades"]
    if len(shades) != len(fr) or not all(isinstance(s, str) and s for s in shades):
        raise PlanError(f"{where}: 'sessions.shades' needs one name per session ({len(fr)}), not {_short(shades)}")
    for s in shades:
        _check_text(where, "sessions.shades", s)
    for z, zp in plan["zones"].items():
        zs = zp.get("shades")
        if zs is not None and (len(zs) != len(fr) or not all(isinstance(s, str) and s for s in zs)):
            raise PlanError(f"{where}: 'zones.{z}.shades' needs one name per session ({len(fr)}), not {_short(zs)}")
        for s in zs or []:
            _check_text(where, f"zones.{z}.shades", s)
    if plan["density"]["hairline_per_cm2"] > plan["density"]["core_per_cm2"]:
        raise PlanError(f"{where}: 'density.hairline_per_cm2' is above 'density.core_per_cm2'; the hairline is the "
                        "sparse edge")
    modes = ("bald", "whole-scalp", "density")
    if plan["mode"] not in modes:
        near = nearest_name(plan["mode"], modes, cutoff=0.4)
        hint = f"did you mean '{near}'?" if near else f"use one of {', '.join(modes)}"
        raise PlanError(f"{where}: 'mode' = '{plan['mode']}' is not a mode; {hint}")
    if plan["mode"] == "whole-scalp":
        over = [z for z, zp in plan["zones"].items() if zp.get("density_per_cm2") is not None and z != "scar"]
        if over:
            raise PlanError(f"{where}: mode 'whole-scalp' treats every zone at density.core_per_cm2; remove "
                            f"zones.{over[0]}.density_per_cm2 or use mode 'bald'")
    hp = plan["hairline"]
    if "polyline_mm" in hp and "polyline_file" in hp:
        raise PlanError(f"{where}: give the drawn hairline once, as 'hairline.polyline_mm' or "
                        "'hairline.polyline_file', not both")
    if "polyline_file" in hp:
        base = Path(path).parent if path is not None else Path.cwd()
        hp["polyline_mm"] = read_polyline(base / hp.pop("polyline_file"))
    if "polyline_mm" in hp:
        pts = _points(where, "hairline.polyline_mm", hp["polyline_mm"])
        if len(pts) < 3:
            raise PlanError(f"{where}: 'hairline.polyline_mm' needs at least 3 points along the hairline, "
                            f"not {len(pts)}")
        hp["polyline_mm"] = [[float(c) for c in q] for q in pts]
    _check_preview(where, plan["preview"])
    zo = plan["needle"]["zone_order"]
    bad = [z for z in zo if not isinstance(z, str) or z not in ZONES]
    if bad or len(set(zo)) != len(zo):
        raise PlanError(f"{where}: 'needle.zone_order' lists zones once each among {', '.join(ZONES)}, "
                        f"not {_short(zo)}")
    needles = [plan["needle"]["name"]] + [z.get("needle") for z in plan["zones"].values() if z.get("needle")]
    for n in needles:
        if n not in config.NEEDLE_DIAMETER_MM:
            raise PlanError(f"{where}: unknown needle '{n}'; known: {', '.join(config.NEEDLE_DIAMETER_MM)}")
    return Plan.from_dict(plan)


def _check_preview(where, pp):
    """The [preview] section's names and colours."""
    skins = ("auto", "scan", *config.SKIN_PRESETS)
    for key, allowed in (("skin", skins), ("fringe", config.PREVIEW_FRINGES)):
        if pp[key] not in allowed:
            near = nearest_name(pp[key], allowed, cutoff=0.5)
            hint = f"did you mean '{near}'?" if near else f"use one of {', '.join(allowed)}"
            raise PlanError(f"{where}: 'preview.{key}' = {_short(pp[key])} is not known; {hint}")
    for name, colour in pp["pigments"].items():
        _check_text(where, f"preview.pigments.{name}", name)
        if not (isinstance(colour, str) and len(colour) == 7 and colour[0] == "#"
                and all(c in "0123456789abcdefABCDEF" for c in colour[1:])):
            raise PlanError(f"{where}: 'preview.pigments.{name}' = {_short(colour)} is not a colour; write it as "
                            "\"#rrggbb\" (sRGB hex), e.g. \"#45474c\"")


def read_mask_ply(path, prop="mask"):
    """Marked vertices of a PLY mask: (k,3) positions (mm, scan axes) and a matching tolerance (mm), the mask mesh's
    median edge length (the painted region's resolution)."""
    import trimesh

    p = Path(path)
    if not p.is_file():
        raise PlanError(f"{p}: mask PLY not found; check mask_ply (relative to the plan file)")
    from .errors import InputError
    from .scan import _ply_check_sizes, _ply_header

    try:  # the header's counts against the file's size first: a damaged header must not allocate gigabytes
        size = p.stat().st_size
        fmt, elements, offset = _ply_header(p, size)
        _ply_check_sizes(p, fmt, elements, offset, size)
    except InputError as exc:
        raise PlanError(f"mask_ply {exc}".replace(" scan:", " mask:").replace("re-export the scan",
                                                                              "export the painted head as PLY again")) \
            from None
    except OSError as exc:
        raise PlanError(f"{p}: mask PLY cannot be read ({exc.strerror or exc}); check the file") from None
    try:
        m = trimesh.load(str(p), file_type="ply", process=False, force="mesh")
        raw = m.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise PlanError(f"{p}: not a readable PLY ({type(exc).__name__}); export it again as PLY") from None
    if raw is None or len(m.vertices) == 0:
        raise PlanError(f"{p}: the PLY has no vertices")
    names = raw.dtype.names or ()
    if prop == "red":
        if not {"red", "green", "blue"} <= set(names):
            raise PlanError(f"{p}: mask_property 'red' needs vertex colours; the PLY has {', '.join(names)}")
        red_min, other_max = config.MASK_RED_MIN, config.MASK_GREEN_BLUE_MAX
        marked = (raw["red"] >= red_min) & (raw["green"] <= other_max) & (raw["blue"] <= other_max)
    else:
        if prop not in names:
            raise PlanError(f"{p}: no vertex property '{prop}'; it has {', '.join(names)}; set mask_property")
        marked = np.asarray(raw[prop], dtype=np.float64) > 0
    if not marked.any():
        raise PlanError(f"{p}: no vertex is marked by '{prop}'; paint the region or check mask_property")
    v = np.asarray(m.vertices, dtype=np.float64)
    tol = config.MASK_POINTS_TOL_MM
    if len(m.faces):
        f = np.asarray(m.faces)
        tol = max(float(np.median(np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1))), config.MASK_MIN_TOL_MM)
    return v[marked], tol


def read_polyline(path) -> list:
    """Points [[x, y, z], ...] (mm) from a text file: one point per line (commas or spaces; '#' comments and a
    header line are skipped) or a JSON list of triples."""
    import json

    p = Path(path)
    if not p.is_file():
        raise PlanError(f"{p}: hairline polyline file not found; check 'hairline.polyline_file' (relative to the "
                        "plan file)")
    if p.stat().st_size > config.HAIRLINE_FILE_BYTES_PER_POINT * config.HAIRLINE_FILE_MAX_POINTS:
        raise PlanError(f"{p}: {p.stat().st_size} bytes is too large for a hairline polyline; give at most "
                        f"{config.HAIRLINE_FILE_MAX_POINTS} points")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise PlanError(f"{p}: hairline polyline file cannot be read ({exc.strerror or exc}); check the file") \
            from None
    pts = []
    if text.lstrip().startswith("["):
        try:
            pts = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise PlanError(f"{p}: not valid JSON ({str(exc)[:80] or 'nested too deeply'}); write a list of "
                            "[x, y, z] in mm") from None
        if not isinstance(pts, list) or not all(isinstance(q, list) and len(q) == 3 and all(_is_num(c) for c in q)
                                                for q in pts):
            raise PlanError(f"{p}: the JSON is not a list of [x, y, z] in mm; write it as [[x, y, z], ...]")
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").replace(";", " ").split()
            try:
                vals = [float(x) for x in parts]
            except ValueError:
                if not pts and n <= 2:
                    continue  # a header such as "x,y,z"
                raise PlanError(f"{p}: line {n} is not three numbers (x y z in mm): {line[:60]!r}") from None
            if len(vals) != 3:
                raise PlanError(f"{p}: line {n} has {len(vals)} numbers; each line is x y z in mm")
            pts.append(vals)
    arr = np.asarray(pts, dtype=np.float64) if pts else np.zeros((0, 3))
    if arr.ndim != 2 or arr.shape[1:] != (3,) or len(arr) < 3 or not np.isfinite(arr).all() \
            or np.abs(arr).max() > config.MAX_COORD_MM:
        raise PlanError(f"{p}: a hairline polyline needs at least 3 finite points x y z in mm (within "
                        f"{config.MAX_COORD_MM:g} mm of the scan's origin)")
    return arr.tolist()


def plan_to_toml(plan: Plan) -> str:
    """Write a resolved plan back as TOML (flat values, lists and sections only)."""
    plan = plan.to_dict()
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


def _column_profile(x, y, z, x0, z_lo, z_hi, half=config.FOREHEAD_COLUMN_HALF_MM):
    """The front skin's profile in the vertical plane at lateral ``x0``: (z bins, y) with 1 mm bins, or None."""
    m = (np.abs(x - x0) < half) & (y > 0) & (z > z_lo) & (z < z_hi)
    if m.sum() < config.FOREHEAD_COLUMN_MIN_POINTS:
        return None
    zb = np.floor(z[m]).astype(np.int64)
    ys = y[m]
    uz = np.unique(zb)
    yb = np.array([ys[zb == u].max() for u in uz])
    return uz + 0.5, yb


def hairline_controls(local, z_front, hp: HairlinePlan):
    """Control points (azimuth in degrees from the front, positive to the right; height z in the head frame, mm) of
    the treated area's edge: mid-frontal point, frontotemporal points ``recession_mm`` higher along the skin,
    temple points, the side above the ears, the nape. Symmetric unless a drawn polyline replaces the front.
    """
    from .errors import GeometryError

    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    w = hp.frontotemporal_half_width_mm
    az_f, z_f = [], []
    for side in (1.0, -1.0):
        below, above = config.FOREHEAD_COLUMN_SPAN_MM
        prof = _column_profile(x, y, z, side * w, z_front - below, z_front + above)
        if prof is None or prof[0][0] > z_front or prof[0][-1] < z_front:
            raise GeometryError(f"no forehead skin {w:.0f} mm from the midline at the hairline's height; lower "
                                "hairline.frontotemporal_half_width_mm or check the landmarks")
        zc, yc = prof
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(zc), np.diff(yc)))])
        arc -= np.interp(z_front, zc, arc)
        if arc[-1] < hp.recession_mm:
            raise GeometryError("the forehead is too short on this scan for a recession of "
                                f"{hp.recession_mm:.0f} mm; lower hairline.recession_mm")
        zz = float(np.interp(hp.recession_mm, arc, zc))
        az_f.append(np.degrees(np.arctan2(w, np.interp(zz, zc, yc))))
        z_f.append(zz)
    yt, zt = hp.temple_ahead_of_tragus_mm, hp.temple_above_tragus_mm
    xt = []
    for side in (1.0, -1.0):
        m = (np.abs(y - yt) < config.TEMPLE_SEARCH_HALF_MM) & (np.abs(z - zt) < config.TEMPLE_SEARCH_HALF_MM) \
            & (side * x > 0)
        if not m.any():
            raise GeometryError(f"no skin at the temple point ({yt:.0f} mm ahead of and {zt:.0f} mm above the "
                                "tragi); adjust hairline.temple_ahead_of_tragus_mm / temple_above_tragus_mm")
        xt.append(np.abs(x[m]).max())
    az_ftp, z_ftp = float(np.mean(az_f)), float(np.mean(z_f))
    az_tp = float(np.degrees(np.arctan2(np.mean(xt), yt)))
    margin = config.HAIRLINE_AZIMUTH_MARGIN_DEG
    if not margin < az_ftp < az_tp - margin or az_tp > 90.0 - margin:
        raise GeometryError(f"the temple point (azimuth {az_tp:.0f} deg) must lie behind the frontotemporal point "
                            f"({az_ftp:.0f} deg) and in front of the ear; lower hairline.frontotemporal_half_width_mm "
                            "or hairline.temple_ahead_of_tragus_mm")
    z_side, z_back = hp.side_above_tragus_mm, -hp.nape_below_tragus_mm
    a2, a3 = config.NAPE_AZIMUTH_DEG
    half = [(az_ftp, z_ftp), (az_tp, zt), (90.0, z_side), (a2, z_side), (a3, z_back), (180.0, z_back)]
    pts = [(0.0, z_front)] + half + [(-a, h) for a, h in half]
    return np.array(sorted(pts))


def polyline_controls(local_poly, controls):
    """Replace the control points within a drawn hairline's azimuth range by its own points."""
    from .errors import GeometryError

    az = np.degrees(np.arctan2(local_poly[:, 0], local_poly[:, 1]))
    d = np.diff(az)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise GeometryError("the drawn hairline (hairline.polyline_mm) turns back on itself around the head; give "
                            "its points in order from one side to the other, each further round than the last")
    lo, hi = az.min(), az.max()
    margin = config.POLYLINE_CONTROL_MARGIN_DEG
    keep = (controls[:, 0] < lo - margin) | (controls[:, 0] > hi + margin)
    pts = np.vstack([controls[keep], np.column_stack([az, local_poly[:, 2]])])
    return pts[np.argsort(pts[:, 0])]


def edge_height(azimuth_deg, controls):
    """Height of the treated area's edge in the head frame at each azimuth (degrees, signed, 0 = front), in mm:
    a shape-preserving (PCHIP) curve through the control points, so the line rounds off at the frontotemporal
    points and never overshoots between them."""
    from scipy.interpolate import PchipInterpolator

    c = np.asarray(controls, dtype=np.float64)
    ext = np.vstack([c[c[:, 0] > 0] - [360.0, 0.0], c, c[c[:, 0] < 0] + [360.0, 0.0]])
    ext = ext[np.unique(ext[:, 0], return_index=True)[1]]
    return PchipInterpolator(ext[:, 0], ext[:, 1])(np.asarray(azimuth_deg, dtype=np.float64))


def edge_noise(azimuth_rad, macro_mm, micro_mm, seed):
    """Seeded irregularity of the edge (mm) at each azimuth: slow waves, symmetric left-right, plus small steps that
    are not, so the hairline never reads as a ruler line (Shapiro & Shapiro)."""
    rng = np.random.default_rng(seed + 104729)
    a = np.abs(np.asarray(azimuth_rad, dtype=np.float64))
    full = np.asarray(azimuth_rad, dtype=np.float64)
    macro = np.zeros_like(a)
    for k in range(*config.EDGE_NOISE_MACRO_WAVES):
        macro += rng.normal() / k * np.cos(k * a + rng.uniform(0, 2 * np.pi))
    micro = np.zeros_like(a)
    for k in range(*config.EDGE_NOISE_MICRO_WAVES):
        micro += rng.normal() * np.cos(k * full + rng.uniform(0, 2 * np.pi))
    macro *= macro_mm / max(np.abs(macro).max(), 1e-12) if len(a) else 1.0
    micro *= micro_mm / max(np.abs(micro).max(), 1e-12) if len(a) else 1.0
    return macro + micro


_LAST_NOISE: dict = {}  # the last edge noise: {(azimuths' sha1, macro, micro, seed): noise}


def _edge_noise_at(phi, macro_mm, micro_mm, seed):
    """:func:`edge_noise` at azimuth 0 then at every vertex's azimuth ``phi`` (radians), kept for the next field of
    the same head and frame with the same irregularity and seed: a design change (a hairline moved, a zone's
    density) asks for the very same noise, and it was 40 % of the field's time (50 of 127 ms on the sample head)."""
    import hashlib

    key = (hashlib.sha1(np.ascontiguousarray(phi).tobytes()).hexdigest(), float(macro_mm), float(micro_mm),
           int(seed))
    if key not in _LAST_NOISE:
        noise = edge_noise(np.concatenate([[0.0], phi]), macro_mm, micro_mm, seed)
        noise.setflags(write=False)
        _LAST_NOISE.clear()
        _LAST_NOISE[key] = noise
    return _LAST_NOISE[key]


@dataclass
class _OnHead:
    """The head as the design steps see it: vertices in the head frame (mm; x right, y forward, z up), the skin's
    distances (heat method), a nearest-vertex tree and the faces."""

    head: Head
    local: np.ndarray
    origin: np.ndarray
    R: np.ndarray
    tree: object
    geodesic: object

    @property
    def x(self):
        return self.local[:, 0]

    @property
    def y(self):
        return self.local[:, 1]

    @property
    def z(self):
        return self.local[:, 2]

    def nearest(self, points, what: str):
        """Nearest vertex of each point (scan axes, mm), refused when a point lies off the skin."""
        from .errors import GeometryError

        off, idx = self.tree.query(points)
        if np.max(off) > config.PLAN_POINT_MAX_OFF_SKIN_MM:
            raise GeometryError(f"{what} lies {np.max(off):.0f} mm from the skin; give it in mm in the "
                                "scan's axes, on the skin")
        return idx


def build_field(head: Head, landmarks: Landmarks, plan: Plan, geodesic=None) -> Field:
    """Per-vertex density, zone, depth, needle, dot size and shade on ``head`` for ``plan`` (see the module
    docstring), in steps: the mid-frontal point, the edge of the treated area, the height above it, the density
    ramp, zones and their overrides, scars, existing hair, reserved regions, filled holes.

    Distances along the skin come from the heat method (:class:`scalp3d.geodesic.HeadGeodesics`, given, or the one
    kept for this mesh by :meth:`~scalp3d.geodesic.HeadGeodesics.of`).
    """
    from scipy.spatial import cKDTree

    from .geodesic import HeadGeodesics

    origin, R = landmarks.frame()
    geo = geodesic or HeadGeodesics.of(head.vertices, head.faces)
    # the geodesics' tree when they are this mesh's (a design change asks again for the same head)
    same = geo.n == len(head.vertices) and np.array_equal(geo.vertices, head.vertices)
    on = _OnHead(head, (head.vertices - origin) @ R.T, origin, R,
                 geo.vertex_tree() if same else cKDTree(head.vertices), geo)
    front, from_glabella = _mid_frontal_point(on, landmarks, plan.hairline)
    controls, edge = _edge_of_treated_area(on, plan, front)
    inside = on.z >= edge
    height, front_border = _height_above_edge(on, inside)
    figures = {"mode": plan.mode,
               "mid_frontal_above_glabella_mm": round(float(from_glabella[front_border].min()), 1)
               if len(front_border) else None,
               "hairline_controls_deg_mm": [[round(float(a), 1), round(float(h), 1)] for a, h in controls]}
    density, band = _density_ramp(height, inside, plan)
    zone = _zones(on, inside, height, band, plan.mode)
    needle_names = tuple(config.NEEDLE_DIAMETER_MM)
    depth, needle, dot_size = _zone_overrides(zone, inside, density, plan, needle_names)
    density = _scars(on, density, zone, depth, needle, plan.scars, needle_names)
    density, hair, without_hair = _existing_hair(on, density, plan.hair, landmarks)
    dotted = density > 0
    _reserved(on, density, plan.reserved)
    _unmeasured(head, density, figures)
    return Field(density_per_cm2=density, zone=zone, zone_names=ZONES, depth_mm=depth, needle=needle,
                 needle_names=needle_names, height_mm=height, hair=hair, density_without_hair=without_hair,
                 figures=figures, dot_size_mm=_dot_sizes(dot_size, needle, needle_names),
                 left_bare=dotted & (density == 0), **_shades(plan, zone))


def _mid_frontal_point(on: _OnHead, landmarks: Landmarks, hp: HairlinePlan):
    """The mid-frontal hairline point: on the midline, above the glabella, at the planned distance along the skin.
    Returns its vertex index and every vertex's distance from the glabella along the skin (mm)."""
    from .errors import GeometryError

    g_idx = int(on.tree.query(landmarks.glabella)[1])
    from_glabella = on.geodesic.distance([g_idx])
    z_g = ((landmarks.glabella - on.origin) @ on.R.T)[2]
    mid = np.flatnonzero((np.abs(on.x) < config.HAIRLINE_MIDLINE_BAND_MM) & (on.y > 0) & (on.z > z_g))
    if len(mid) == 0 or from_glabella[mid].max() < hp.height_above_glabella_mm:
        raise GeometryError("the forehead's midline is too short on this scan for a hairline "
                            f"{hp.height_above_glabella_mm:.0f} mm above the glabella; lower "
                            "hairline.height_above_glabella_mm or check the landmarks")
    front = mid[np.argmin(np.abs(from_glabella[mid] - hp.height_above_glabella_mm))]
    return front, from_glabella


def _edge_of_treated_area(on: _OnHead, plan: Plan, front):
    """The edge's control points (azimuth deg, height mm) from the plan or a drawn polyline, and the edge's height
    (mm, head frame) above every vertex's azimuth, with its irregularity (none at the mid-frontal point)."""
    hp = plan.hairline
    controls = hairline_controls(on.local, on.z[front], hp)
    if hp.polyline_mm:
        poly = np.asarray(hp.polyline_mm, dtype=np.float64)
        on.nearest(poly, "a point of the drawn hairline (hairline.polyline_mm)")
        controls = polyline_controls((poly - on.origin) @ on.R.T, controls)
    phi = np.arctan2(on.x, on.y)  # 0 at the front, +-pi at the back
    edge = edge_height(np.degrees(phi), controls)
    noise = _edge_noise_at(phi, hp.irregularity_mm, hp.micro_irregularity_mm, plan.seed)
    edge = edge + noise[1:] - noise[0] * np.exp(-(phi / np.radians(config.EDGE_NOISE_FRONT_TAPER_DEG)) ** 2)
    return controls, edge


def _height_above_edge(on: _OnHead, inside):
    """Signed distance along the skin to the edge (mm, negative outside), from the inside vertices touching the
    outside; and those border vertices on the front midline."""
    f = on.head.faces
    mixed = inside[f].any(axis=1) & ~inside[f].all(axis=1)
    border = np.unique(f[mixed][inside[f[mixed]]])
    to_edge = on.geodesic.distance(border) if len(border) else np.full(len(inside), np.inf)
    front_border = border[(np.abs(on.x[border]) < config.HAIRLINE_MIDLINE_BAND_MM) & (on.y[border] > 0)]
    return np.where(inside, to_edge, -to_edge), front_border


def _density_ramp(height, inside, plan: Plan):
    """Density rising from the edge's to the core's over the transition band (smoothstep); the band (mm) too."""
    dp = plan.density
    band = plan.hairline.transition_mm
    sparse = dp.hairline_per_cm2
    if plan.mode in ("density", "whole-scalp"):
        # thinning hair, alopecia areata: the patient's own hairline is intact, so no designed sparse edge (the whole
        # scalp at one density); a short feather only
        band, sparse = min(band, config.DENSITY_MODE_FEATHER_MM), config.DENSITY_MODE_EDGE_SHARE * dp.core_per_cm2
    t = np.clip(height / band, 0.0, 1.0) if band > 0 else inside.astype(float)
    ramp = t * t * (3.0 - 2.0 * t)
    return np.where(inside, sparse + (dp.core_per_cm2 - sparse) * ramp, 0.0), band


def _zones(on: _OnHead, inside, height, band, mode):
    """Each vertex's zone (index into ZONES), by priority: sides, back, front, mid and crown on top, the hairline
    band of a bald plan."""
    z, c = on.z, np.cos(np.arctan2(on.x, on.y))
    top = z > config.ZONE_TOP_FRACTION * z.max()
    zone = np.full(len(z), ZONES.index("sides"), dtype=np.int64)
    zone[c < -config.ZONE_FRONT_BACK_COS] = ZONES.index("back")
    zone[c > config.ZONE_FRONT_BACK_COS] = ZONES.index("front")
    zone[top & (on.y >= 0)] = ZONES.index("mid")
    zone[top & (on.y < 0)] = ZONES.index("crown")
    if mode == "bald":
        zone[(c > config.ZONE_FRONT_BACK_COS) & inside & (height < band)] = ZONES.index("hairline")
    return zone


def _zone_overrides(zone, inside, density, plan: Plan, needle_names):
    """Depth (mm), needle index and dot size (mm, nan = the needle's) per vertex: the plan's, then each zone's own;
    a zone's density override is written into ``density`` (treated vertices only)."""
    depth = np.full(len(zone), plan.needle.depth_mm)
    needle = np.full(len(zone), needle_names.index(plan.needle.name), dtype=np.int64)
    dot_size = np.full(len(zone), np.nan)
    for k, name in enumerate(ZONES):
        zp = plan.zones.get(name, ZonePlan())
        m = zone == k
        if zp.density_per_cm2 is not None:
            density[m & inside] = zp.density_per_cm2
        if zp.depth_mm is not None:
            depth[m] = zp.depth_mm
        if zp.needle is not None:
            needle[m] = needle_names.index(zp.needle)
        if zp.dot_size_mm is not None:
            dot_size[m] = zp.dot_size_mm
    return depth, needle, dot_size


def _scar_points(s: ScarPlan):
    """Points along a scar (mm, scan axes) and the tolerance of a painted one (mm; 0 otherwise)."""
    if s.mask_ply is not None:
        return read_mask_ply(s.mask_ply, s.mask_property)
    if s.polyline_mm is not None:
        pts = np.asarray(s.polyline_mm, dtype=np.float64)
        dense = [pts[:1]]
        for a, b in zip(pts[:-1], pts[1:]):
            k = max(int(np.ceil(np.linalg.norm(b - a) / config.SCAR_POLYLINE_STEP_MM)), 1)
            dense.append(a + np.outer(np.arange(1, k + 1) / k, b - a))
        return np.vstack(dense), 0.0
    return np.asarray(s.points_mm, dtype=np.float64), 0.0


def _named(entry) -> str:
    """' ("its comment")' of a [[scars]] or [[reserved]] entry with a comment, '' without: which one an error is
    about, when a plan has several."""
    return f' ("{entry.comment}")' if entry.comment else ""


def _scars(on: _OnHead, density, zone, depth, needle, scars, needle_names):
    """Scars: their own density on the scar, blended into the surroundings over the margin (smoothstep); zone, and
    depth and needle where the scar sets them, written in place. Returns the new density."""
    for i, s in enumerate(scars, start=1):
        pts, mask_tol = _scar_points(s)
        idx = on.nearest(pts, f"a point of scar {i}{_named(s)}")
        dd = on.geodesic.distance(np.unique(idx))
        half = max(0.5 * s.width_mm, mask_tol)
        hit = dd <= half
        w = np.clip(1.0 - (dd - half) / max(s.margin_mm, 1e-9), 0.0, 1.0) if s.margin_mm > 0 else hit * 1.0
        blend = w * w * (3.0 - 2.0 * w)
        density = np.where(hit, s.density_per_cm2, density * (1 - blend) + s.density_per_cm2 * blend)
        zone[hit] = ZONES.index("scar")
        if s.depth_mm is not None:
            depth[hit] = s.depth_mm
        if s.needle is not None:
            needle[hit] = needle_names.index(s.needle)
    return density


def _existing_hair(on: _OnHead, density, hp: HairPlan, landmarks: Landmarks):
    """Where the plan asks, density lowered by the hair the scan's colour shows. Returns (density, hair cover or
    None, density without hair or None)."""
    if not hp.from_colour:
        return density, None, None
    head = on.head
    if head.colors is None:
        raise PlanError(f"{head.source or 'the scan'}: hair.from_colour is on but the scan has no colour; give "
                        "a scan with vertex colours or a texture, or set hair.from_colour = false")
    z_g = ((landmarks.glabella - on.origin) @ on.R.T)[2]
    hair = hair_cover(head, on.local, z_g)
    share = 1.0 - hp.strength * hair
    # where hair leaves less than HAIR_MIN_SHARE of the density, no dots at all: a few scattered dots among
    # hair help nothing and their spacing cannot be judged
    return np.where(share >= config.HAIR_MIN_SHARE, density * share, 0.0), hair, density.copy()


def _reserved(on: _OnHead, density, reserved) -> None:
    """Reserved regions get no dot at all: density set to 0 in place."""
    from scipy.spatial import cKDTree

    from .errors import GeometryError

    if not reserved:
        return
    v = on.head.vertices
    edge = vertex_reach_mm(v, on.head.faces)  # each vertex's own faces' longest edge (:func:`vertex_reach_mm`)
    for i, r in enumerate(reserved, start=1):
        if r.mask_ply is not None:
            pts, tol = read_mask_ply(r.mask_ply, r.mask_property)
            off, _ = on.tree.query(pts)
            if np.median(off) > config.MASK_MAX_OFF_SKIN_MM:
                raise GeometryError(f"{r.mask_ply}: the marked vertices lie {np.median(off):.0f} mm from this "
                                    "head; paint the head.ply of this scan (mm, scan axes)")
            # every vertex within the mask's resolution (plus the radius) of a marked vertex, and its faces' longest
            # edge more
            dmask, _ = cKDTree(pts).query(v, distance_upper_bound=tol + r.radius_mm + float(edge.max()))
            density[dmask <= tol + r.radius_mm + edge] = 0.0
            continue
        idx = on.nearest(np.asarray(r.center_mm, dtype=np.float64), f"the centre of reserved region {i}{_named(r)}")
        # the skin distance, and to be safe the straight distance plus the vertex's faces' longest edge (a dot lies in
        # a face whose corners all have density): no dot can land inside the radius
        near = np.linalg.norm(v - v[int(idx)], axis=1) <= r.radius_mm + edge
        density[near | (on.geodesic.distance([int(idx)]) <= r.radius_mm)] = 0.0


def _unmeasured(head: Head, density, figures) -> None:
    """A filled hole was never measured: the needle's depth there would be a guess, so no dot goes there (density 0
    in place; the treated area lost is reported in ``figures``)."""
    filled = getattr(head, "filled", None)
    if filled is not None and filled.any():
        f = head.faces
        treated = (density[f] > 0).all(axis=1) & filled[f].any(axis=1)
        area = face_areas(head.vertices, f[treated]).sum()
        figures["unmeasured_treated_cm2"] = round(float(area / 100.0), 2)
        density[filled] = 0.0


def _shades(plan: Plan, zone):
    """Per session, the shade at every vertex: the session's, or its zone's own (``zones.NAME.shades``)."""
    per_session = list(plan.sessions.shades)
    names = list(dict.fromkeys(per_session + [s for zp in plan.zones.values() for s in zp.shades or ()]))
    shade = np.empty((len(per_session), len(zone)), dtype=np.int64)
    for k, s in enumerate(per_session):
        shade[k] = names.index(s)
        for z, zp in plan.zones.items():
            if zp.shades:
                shade[k, zone == ZONES.index(z)] = names.index(zp.shades[k])
    return {"shade": shade, "shade_names": tuple(names)}


def _dot_sizes(dot_size, needle, needle_names):
    """Where no zone sets a dot size, the healed dot is about the needle's diameter."""
    diam = np.array([config.NEEDLE_DIAMETER_MM[n] for n in needle_names])[needle]
    return np.where(np.isnan(dot_size), diam, dot_size)


def hair_cover(head: Head, local, z_glabella) -> np.ndarray:
    """Existing hair's cover (0-1 per vertex) from the scan's colour: how much darker than the forehead's bare skin
    each vertex is, 0 at the skin's luminance, 1 at ``config.HAIR_FULL_COVER_LUMINANCE`` of it, smoothed over the
    1-ring a few times (hair is a texture, not a vertex property). Dark hair on light skin reads best; grey or blond
    hair on light skin is hardly seen (the summary says how much density it removed).
    """
    from .errors import GeometryError
    from scalp3d.kernels.geometry import vertex_neighbours

    rgb = head.colors[:, :3].astype(np.float64) / 255.0
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    lo, hi = config.HAIR_SKIN_BAND_MM
    skin = (np.abs(x) < config.HAIR_SKIN_HALF_WIDTH_MM) & (y > 0) & (z > z_glabella + lo) & (z < z_glabella + hi)
    if skin.sum() < config.HAIR_SKIN_MIN_SAMPLES:
        raise GeometryError("no forehead skin to take the skin's colour from; set hair.from_colour = false")
    ref = float(np.median(lum[skin]))
    if ref <= config.HAIR_SKIN_MIN_LUMINANCE:
        raise GeometryError(f"the forehead reads black in the scan's colour (luminance {ref:.2f}); hair cannot be "
                            "told from skin; set hair.from_colour = false")
    cover = np.clip((ref - lum) / (ref * (1.0 - config.HAIR_FULL_COVER_LUMINANCE)), 0.0, 1.0)
    ip, ix = vertex_neighbours(len(cover), head.faces)
    counts = np.diff(ip)
    rows = np.repeat(np.arange(len(cover)), counts)
    for _ in range(config.HAIR_SMOOTHING_PASSES):
        s = np.bincount(rows, weights=cover[ix], minlength=len(cover))
        cover = (cover + s) / (1.0 + counts)
    return cover


def dots_with_settings(placed: Placement, head: Head, field: Field) -> Dots:
    """The placed dots with every setting the needle needs: zone, depth, needle, dot size and shade, each from the
    dot's settings vertex (:func:`scalp3d.types.settings_vertex`, the one rule); the shade is the field's for the dot's
    session there (the session's, or its zone's own ``zones.NAME.shades``).

    placed : :class:`Placement` on ``head``; field : the design :class:`Field` of ``head``. Returns a new
    :class:`Dots` (the placement is not changed).
    """
    corner = settings_vertex(head.faces, placed.face_ids, placed.bary)
    size = field.dot_size_mm if field.dot_size_mm is not None else \
        np.array([config.NEEDLE_DIAMETER_MM[n] for n in field.needle_names])[field.needle]
    return Dots(**placed.geometry(), zone=field.zone[corner], depth_mm=field.depth_mm[corner],
                needle=field.needle[corner], shade=field.shade[placed.session - 1, corner], dot_size_mm=size[corner],
                zone_names=tuple(field.zone_names), needle_names=tuple(field.needle_names),
                shade_names=tuple(field.shade_names))


def hair_bearing(head, landmarks, plan, field, geodesic=None) -> np.ndarray:
    """(n,) bool: hair-bearing skin the plan does not make bald. The natural scalp is the area inside a natural
    hairline (the plan's frontal hairline, the sides FRINGE_SIDE_ABOVE_TRAGUS_MM above the tragi, the nape
    FRINGE_NAPE_BELOW_TRAGUS_MM below); of it, the skin the plan treats in its zones and its scars is bald (the dots
    replace the hair there), the rest keeps its hair: outside the treated area, and in zones the plan sets to 0 dots
    (the hair around a scar, whose feathered margin adds dots among the hair). Skin the plan leaves bare among its dots
    (``field.left_bare``: a reserved mole, an unmeasured hole) is bald too: the patient sees it bare, not covered by
    the stubble of hair that is not there."""
    # the plan's own hairline (its irregularity too: the same seed draws the same edge, so no sliver of fringe opens
    # along the treated edge), lowered at the sides and the nape
    hp = replace(plan.hairline, side_above_tragus_mm=config.FRINGE_SIDE_ABOVE_TRAGUS_MM,
                 nape_below_tragus_mm=config.FRINGE_NAPE_BELOW_TRAGUS_MM)
    natural = replace(plan, mode="bald", hairline=hp, zones={z: ZonePlan() for z in plan.zones}, scars=(),
                      reserved=(), hair=replace(plan.hair, from_colour=False))
    scalp = _natural_scalp(head, landmarks, natural, geodesic)
    names = list(field.zone_names)
    hairy_zone = np.array([plan.zones.get(z, ZonePlan()).density_per_cm2 == 0 and z != "scar" for z in names])
    treated = field.density_per_cm2 > 0
    if field.left_bare is not None:
        treated = treated | field.left_bare  # a mole or an unmeasured hole among the dots: bare skin, not hair
    return scalp & ~(treated & ~hairy_zone[field.zone])


#: the last few natural scalps (:func:`hair_bearing`): (head, landmarks, natural plan, mask), newest last. A live
#: design asks for one at every change, and a painted region, a scar or a zone's density leaves it as it was
_NATURAL_SCALPS: list = []


def _natural_scalp(head, landmarks, natural, geodesic):
    """(n,) bool: the skin ``natural`` (a plan of the natural hairline alone) treats, made once per head, landmarks
    and plan (the objects themselves are kept and compared, never their ids)."""
    for h, lm, pl, mask in _NATURAL_SCALPS:
        if h is head and lm is landmarks and pl == natural:
            return mask
    mask = build_field(head, landmarks, natural, geodesic=geodesic).density_per_cm2 > 0
    mask.setflags(write=False)
    _NATURAL_SCALPS.append((head, landmarks, natural, mask))
    del _NATURAL_SCALPS[:-4]
    return mask
