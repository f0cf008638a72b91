"""The data types that flow through the pipeline: dataclasses of numpy arrays, millimetres throughout."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from . import config


@dataclass
class Scan:
    """A loaded scan, scaled to millimetres, in the scan's own axes.

    vertices : (n,3) float64 mm; faces : (m,3) int64 or None for a point cloud; colors : (n,3) uint8 or None;
    normals : (n,3) float64 or None (point clouds that carry them).
    """

    path: str
    vertices: np.ndarray
    faces: np.ndarray | None
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    units: str = "mm"
    scale_to_mm: float = 1.0
    units_reason: str = ""

    @property
    def is_point_cloud(self) -> bool:
        return self.faces is None or len(self.faces) == 0


@dataclass
class Head:
    """The triangle mesh the plan is made on (mm, scan axes), with per-vertex unit normals."""

    vertices: np.ndarray
    faces: np.ndarray
    vertex_normals: np.ndarray
    source: str = ""
    notes: list = field(default_factory=list)
    #: (n,3) uint8 per-vertex colour from the scan, or None
    colors: np.ndarray | None = None
    #: (n,) bool, vertices of holes filled by scalp3d (not measured), or None
    filled: np.ndarray | None = None
    #: how the surface was made: units, counts, holes, deviation from the input, time per step
    report: dict = field(default_factory=dict)


@dataclass
class Landmarks:
    """Anatomical points in mm, scan axes, and where each came from ('file', 'fiducials', 'estimated')."""

    nasion: np.ndarray
    lpa: np.ndarray
    rpa: np.ndarray
    glabella: np.ndarray | None = None
    vertex: np.ndarray | None = None
    inion: np.ndarray | None = None
    sources: dict = field(default_factory=dict)
    #: estimated only: the face's own upright axes (3,3), rows right, forward, up (up = the nasal dorsum tilted back
    #: by a typical angle: close to a standing head's vertical, unlike the frame's z, which leans with the nasion's
    #: height above the ears); None when the landmarks came from a file
    face_axes: np.ndarray | None = None

    def frame(self):
        """Head frame (origin (3,), rotation (3,3)) with rows x = towards RPA, y = forwards (nasion), z = up.

        A point p in scan axes has head coordinates ``R @ (p - origin)``.
        """
        origin = 0.5 * (self.lpa + self.rpa)
        x = self.rpa - self.lpa
        x = x / np.linalg.norm(x)
        y = self.nasion - origin
        y = y - x * (y @ x)
        y = y / np.linalg.norm(y)
        z = np.cross(x, y)
        return origin, np.vstack([x, y, z])

    def to_dict(self) -> dict:
        out = {}
        for key in ("nasion", "glabella", "lpa", "rpa", "vertex", "inion"):
            val = getattr(self, key)
            if val is not None:
                out[key] = [round(float(c), 4) for c in val]
        out["units"] = "mm"
        out["sources"] = dict(self.sources)
        return out


@dataclass
class Field:
    """Per-vertex design on the head: target density and the settings each dot inherits from its nearest vertex.

    density_per_cm2 : (n,) float64, 0 outside the treated area; zone : (n,) int64 index into ``zone_names``;
    depth_mm : (n,) float64; needle : (n,) int64 index into ``needle_names``;
    height_mm : (n,) float64, signed distance above the hairline boundary (negative outside).
    """

    density_per_cm2: np.ndarray
    zone: np.ndarray
    zone_names: tuple
    depth_mm: np.ndarray
    needle: np.ndarray
    needle_names: tuple
    height_mm: np.ndarray
    #: (n,) float 0-1, existing hair's cover estimated from the scan's colour (None when not asked for)
    hair: np.ndarray | None = None
    #: (n,) float, the density before existing hair lowered it (None when not asked for)
    density_without_hair: np.ndarray | None = None
    #: figures of the design as built (e.g. the realised mid-frontal height along the skin), for the summary
    figures: dict = field(default_factory=dict)
    #: (n,) float, healed dot diameter aimed at, mm (the needle's diameter unless a zone sets it)
    dot_size_mm: np.ndarray | None = None
    #: (sessions, n) int index into ``shade_names``: the pigment each session puts at each vertex
    shade: np.ndarray | None = None
    shade_names: tuple = ()
    #: (n,) bool, treated skin the plan leaves bare: reserved regions and filled holes that would have had dots (None
    #: when not known). The pictures draw it as bare skin, not as the hair around it
    left_bare: np.ndarray | None = None


def settings_vertex(faces, face_ids, bary) -> np.ndarray:
    """The vertex each dot takes its settings from (zone, depth, needle, shade, dot size): the corner of its face with
    the largest barycentric weight. The one rule every stage uses, so the zone column of ``dots.csv`` and the per-zone
    counts of ``summary.json`` always agree.

    faces : (m,3) int64; face_ids : (n,) int64; bary : (n,3) float64. Returns (n,) int64 vertex indices.
    """
    return np.asarray(faces)[np.asarray(face_ids), np.argmax(np.asarray(bary), axis=1)]


def is_number(x) -> bool:
    """A finite real number (not a bool; an int too large for a float is not one)."""
    import math
    import numbers

    if not isinstance(x, numbers.Real) or isinstance(x, (bool, np.bool_)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def check_fractions(fractions, what="session fractions") -> tuple[float, ...]:
    """The cumulative session fractions, checked: 1 to ``config.MAX_SESSIONS`` finite numbers rising strictly from
    above 0 to 1.0 (the share of the final density reached after each session). The one check of them: place_dots
    and the plan reader both call it (it lives here, below both stages).

    Parameters
    ----------
    fractions : sequence of numbers, e.g. (0.3, 0.7, 1.0)
    what : the name the message gives them (e.g. a plan's key)

    Returns
    -------
    tuple of floats

    Raises
    ------
    InputError (a ValueError)
        naming the rule and the value given.

    Examples
    --------
    >>> check_fractions([0.3, 0.7, 1])
    (0.3, 0.7, 1.0)
    """
    fr = None if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__") else list(fractions)
    if (not fr or len(fr) > config.MAX_SESSIONS or not all(is_number(x) for x in fr)
            or any(b <= a for a, b in zip(fr, fr[1:])) or fr[0] <= 0 or abs(fr[-1] - 1.0) > 1e-9):
        shown = repr(fractions)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        from .errors import InputError

        raise InputError(f"{what} must rise strictly from above 0 to 1.0 (cumulative, at most "
                         f"{config.MAX_SESSIONS}), e.g. [0.3, 0.7, 1.0]; not {shown}")
    return tuple(float(x) for x in fr)


@dataclass
class Placement:
    """Dots as placed on the skin, geometry only (what :func:`scalp3d.place_dots` returns). ``session`` is 1-based;
    ``ids`` are stable 1-based identifiers.

    positions, normals : (n,3) float64 (mm, unit normals pointing out of the skin); face_ids : (n,) int64;
    session, ids : (n,) int64; bary : (n,3) float64 barycentric coordinates in their face.
    """

    positions: np.ndarray
    normals: np.ndarray
    face_ids: np.ndarray
    session: np.ndarray
    ids: np.ndarray
    bary: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)

    def subset(self, mask) -> "Placement":
        """The dots where ``mask`` (a boolean (n,) array or indices) selects, every array cut alike."""
        return type(self)(**{k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()})

    def geometry(self) -> dict:
        """The placement's own fields (positions, normals, face_ids, session, ids, bary), e.g. to make Dots of it."""
        return {f.name: getattr(self, f.name) for f in fields(Placement)}


@dataclass
class Dots(Placement):
    """Placed dots with every setting the needle needs, complete when made (by :func:`scalp3d.design.dots_with_settings`
    from a :class:`Placement` and the design :class:`Field`). Settings come from each dot's settings vertex
    (:func:`settings_vertex`).

    zone, needle, shade : (n,) int64 indices into ``zone_names``, ``needle_names``, ``shade_names``;
    depth_mm, dot_size_mm : (n,) float64 (mm, dot size = the healed diameter aimed at).
    """

    zone: np.ndarray
    depth_mm: np.ndarray
    needle: np.ndarray
    shade: np.ndarray
    dot_size_mm: np.ndarray
    zone_names: tuple
    needle_names: tuple
    shade_names: tuple


# ---- the plan: what the practitioner decided, validated (scalp3d.design.load_plan) and frozen ----------------------

def _plain(v):
    """A plan value as TOML writes it: tuples as lists, recursively."""
    return [_plain(x) for x in v] if isinstance(v, (tuple, list)) else v


def _section_dict(obj) -> dict:
    """A plan section's set values in field order (unset optional keys left out, as in the TOML)."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if getattr(obj, f.name) is not None}


@dataclass(frozen=True)
class HairlinePlan:
    """``[hairline]``: where the treated area's edge runs (mm along the skin or in the head frame; see
    :mod:`scalp3d.design`)."""

    height_above_glabella_mm: float
    transition_mm: float
    side_above_tragus_mm: float
    nape_below_tragus_mm: float
    frontotemporal_half_width_mm: float
    recession_mm: float
    temple_ahead_of_tragus_mm: float
    temple_above_tragus_mm: float
    irregularity_mm: float
    micro_irregularity_mm: float
    #: a drawn frontal hairline, ((x, y, z), ...) mm in scan axes, or None
    polyline_mm: tuple | None = None


@dataclass(frozen=True)
class HairPlan:
    """``[hair]``: lower the added density where the scan's colour shows existing hair."""

    from_colour: bool
    strength: float


@dataclass(frozen=True)
class DensityPlan:
    """``[density]``: final dots per cm2 in the core and at the very edge."""

    core_per_cm2: float
    hairline_per_cm2: float


@dataclass(frozen=True)
class SessionsPlan:
    """``[sessions]``: cumulative share of the final density after each session, and each session's shade."""

    fractions: tuple
    shades: tuple

    def __len__(self) -> int:
        return len(self.fractions)


@dataclass(frozen=True)
class Motion:
    """How the needle moves between and into dots: approach height and travel clearance (mm), feeds (mm/min),
    dwell at depth (s). What a program needs of the needle settings."""

    standoff_mm: float
    clearance_mm: float
    plunge_feed_mm_per_min: float
    travel_feed_mm_per_min: float
    dwell_s: float


@dataclass(frozen=True)
class NeedleSettings:
    """``[needle]``: the cartridge, the depth below the skin (mm), the motion, and zones toured first."""

    name: str
    depth_mm: float
    standoff_mm: float
    plunge_feed_mm_per_min: float
    travel_feed_mm_per_min: float
    dwell_s: float
    clearance_mm: float
    zone_order: tuple = ()

    @property
    def motion(self) -> Motion:
        return Motion(self.standoff_mm, self.clearance_mm, self.plunge_feed_mm_per_min, self.travel_feed_mm_per_min,
                      self.dwell_s)


@dataclass(frozen=True)
class PreviewPlan:
    """``[preview]``: how the pictures show the result: the skin ('auto', 'scan' or a Fitzpatrick preset), the
    hair-bearing fringe ('stubble', 'scan', 'bare'), a healed dot's halo (mm) and pigment colours per shade
    (((name, "#rrggbb"), ...), sRGB)."""

    skin: str = "auto"
    fringe: str = "stubble"
    halo_mm: float = config.HEALED_HALO_MM
    pigments: tuple = ()

    def pigment(self, shade: str) -> str:
        """The colour of a shade: the plan's, else scalp3d's default, else the fallback."""
        return dict(self.pigments).get(shade) or config.PIGMENTS.get(shade, config.PIGMENT_FALLBACK)


@dataclass(frozen=True)
class ZonePlan:
    """``[zones.NAME]``: a zone's overrides; None where the zone follows the plan."""

    density_per_cm2: float | None = None
    depth_mm: float | None = None
    needle: str | None = None
    shades: tuple | None = None
    dot_size_mm: float | None = None


@dataclass(frozen=True)
class ReservedRegion:
    """``[[reserved]]``: no dot within ``radius_mm`` (along the skin) of ``center_mm``, or on the vertices a painted
    PLY marks (``mask_ply``, an absolute path once loaded)."""

    mask_property: str = "mask"
    center_mm: tuple | None = None
    radius_mm: float | None = None
    mask_ply: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class ScarPlan:
    """``[[scars]]``: a strip scar (``polyline_mm``), punch scars (``points_mm``) or a painted one (``mask_ply``),
    with its own density, a feathered margin, and optionally its own depth and needle."""

    width_mm: float = 2.0
    density_per_cm2: float = 80.0
    margin_mm: float = 5.0
    mask_property: str = "mask"
    polyline_mm: tuple | None = None
    points_mm: tuple | None = None
    mask_ply: str | None = None
    depth_mm: float | None = None
    needle: str | None = None
    comment: str | None = None


def _frozen(v):
    """Lists as tuples, recursively (a plan is immutable)."""
    return tuple(_frozen(x) for x in v) if isinstance(v, (list, tuple)) else v


@dataclass(frozen=True)
class Plan:
    """A fully resolved, validated treatment plan (what :func:`scalp3d.load_plan` returns). Immutable: what the
    patient approved cannot drift; make a changed copy with :func:`dataclasses.replace`.

    ``to_dict()`` gives the nested dict the TOML holds (``plan.toml`` in every output folder); ``Plan.from_dict``
    the reverse, for a dict already validated by :func:`scalp3d.design.load_plan`.
    """

    seed: int
    mode: str
    hairline: HairlinePlan
    hair: HairPlan
    density: DensityPlan
    sessions: SessionsPlan
    needle: NeedleSettings
    zones: dict  # name -> ZonePlan, every zone of scalp3d.design.ZONES
    preview: PreviewPlan = PreviewPlan()
    reserved: tuple = ()  # of ReservedRegion
    scars: tuple = ()  # of ScarPlan

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        def make(typ, sub):
            return typ(**{k: _frozen(v) for k, v in sub.items()})

        return cls(seed=int(d["seed"]), mode=d["mode"], hairline=make(HairlinePlan, d["hairline"]),
                   hair=make(HairPlan, d["hair"]), density=make(DensityPlan, d["density"]),
                   sessions=make(SessionsPlan, d["sessions"]), needle=make(NeedleSettings, d["needle"]),
                   zones={z: make(ZonePlan, zp) for z, zp in d["zones"].items()},
                   preview=PreviewPlan(**{**d.get("preview", {}),
                                          "pigments": tuple(d.get("preview", {}).get("pigments", {}).items())}),
                   reserved=tuple(make(ReservedRegion, r) for r in d.get("reserved", [])),
                   scars=tuple(make(ScarPlan, s) for s in d.get("scars", [])))

    def to_dict(self) -> dict:
        return {"seed": self.seed, "hairline": _section_dict(self.hairline), "mode": self.mode,
                "hair": _section_dict(self.hair), "density": _section_dict(self.density),
                "sessions": _section_dict(self.sessions), "needle": _section_dict(self.needle),
                "preview": {**_section_dict(self.preview), "pigments": dict(self.preview.pigments)},
                "zones": {z: _section_dict(zp) for z, zp in self.zones.items()},
                "reserved": [_section_dict(r) for r in self.reserved],
                "scars": [_section_dict(s) for s in self.scars]}
