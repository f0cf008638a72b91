"""The data types that flow through the pipeline: dataclasses of numpy arrays, millimetres throughout."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


def settings_vertex(faces, face_ids, bary) -> np.ndarray:
    """The vertex each dot takes its settings from (zone, depth, needle, shade, dot size): the corner of its face with
    the largest barycentric weight. The one rule every stage uses, so the zone column of ``dots.csv`` and the per-zone
    counts of ``summary.json`` always agree.

    faces : (m,3) int64; face_ids : (n,) int64; bary : (n,3) float64. Returns (n,) int64 vertex indices.
    """
    return np.asarray(faces)[np.asarray(face_ids), np.argmax(np.asarray(bary), axis=1)]


@dataclass
class Dots:
    """Placed dots. ``session`` is 1-based; ``ids`` are stable 1-based identifiers.

    positions, normals : (n,3) float64 (mm, unit normals pointing out of the skin); face_ids : (n,) int64;
    bary : (n,3) float64 barycentric coordinates in their face.
    """

    positions: np.ndarray
    normals: np.ndarray
    face_ids: np.ndarray
    session: np.ndarray
    ids: np.ndarray
    bary: np.ndarray | None = None
    zone: np.ndarray | None = None
    depth_mm: np.ndarray | None = None
    needle: np.ndarray | None = None
    shade: np.ndarray | None = None
    dot_size_mm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def subset(self, mask) -> "Dots":
        def take(a):
            return None if a is None else a[mask]

        return Dots(self.positions[mask], self.normals[mask], self.face_ids[mask], self.session[mask],
                    self.ids[mask], take(self.bary), take(self.zone), take(self.depth_mm), take(self.needle),
                    take(self.shade), take(self.dot_size_mm))
