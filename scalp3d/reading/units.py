"""The scan's unit: given (``units`` or ``scale``) or detected from the width of the skull, and the one plausibility
rule for a head's size (:data:`config.HEAD_WIDTH_MIN_MM`-:data:`config.HEAD_WIDTH_MAX_MM`).

A wrong unit fails here, on size, with a one-line :class:`UnitsError` suggesting a ``--scale``; never later on a
landmark. :func:`head_width` takes the head's orientation from :func:`scalp3d.frame.estimate_axes`, the head frame's
own module, which imports no stage (only config, errors and meshes); it is imported inside the function, so only
unit detection loads it.
"""
from __future__ import annotations

import numpy as np

from .. import config
from ..errors import UnitsError


def head_width(vertices: np.ndarray) -> float:
    """Skull width (left-right) of a head scan in the scan's own unit, from a scale-free orientation estimate.

    The head is oriented by :func:`scalp3d.frame.estimate_axes`; the width is the left-right extent of the part of
    the head within 0.45 of its front-back length below the top (above the ears, below the widest point of the skull).
    """
    from ..errors import GeometryError
    from ..frame import estimate_axes

    try:
        axes = estimate_axes(vertices)
    except GeometryError:
        # no face to orient by (a scalp-only scan, a test shape): the middle principal extent is the width
        c = vertices - vertices.mean(axis=0)
        _, _, vt = np.linalg.svd(c[:: max(1, len(c) // 20000)], full_matrices=False)
        return float(np.sort(np.ptp(c @ vt.T, axis=0))[1])
    right, fwd, up = axes
    h = vertices @ up
    top = h.max()
    x = vertices @ right
    y = vertices @ fwd
    depth = 0.0
    span = h.max() - h.min()
    for frac in np.linspace(0.05, 0.9, 35):
        depth = frac * span
        sel = h >= top - depth
        if sel.sum() < 10:
            continue
        length = np.ptp(y[sel])
        if depth >= 0.45 * length:
            break
    sel = h >= top - depth
    return float(np.ptp(x[sel]))


def suggested_scale(width_units: float) -> str:
    """The ``--scale`` (mm per scan unit, two significant digits) that makes a head ``width_units`` wide
    :data:`config.HEAD_WIDTH_TYPICAL_MM` wide, as text for a message."""
    if not np.isfinite(width_units) or width_units <= 0:
        return "MM_PER_UNIT"
    return f"{float(f'{config.HEAD_WIDTH_TYPICAL_MM / width_units:.2g}'):g}"


def check_head_width(path, width_mm: float, width_units: float, how: str) -> None:
    """The one plausibility check of a head's size: refuse (UnitsError, one line) a skull width outside
    :data:`config.HEAD_WIDTH_MIN_MM`-:data:`config.HEAD_WIDTH_MAX_MM`, suggesting the ``--scale`` that makes it
    :data:`config.HEAD_WIDTH_TYPICAL_MM` wide. ``how`` names the given unit ('--units cm', '--scale 10')."""
    if config.HEAD_WIDTH_MIN_MM <= width_mm <= config.HEAD_WIDTH_MAX_MM:
        return
    raise UnitsError(f"{path}: with {how} the head is {width_mm:.3g} mm wide; heads are "
                     f"{config.HEAD_WIDTH_MIN_MM:.0f}-{config.HEAD_WIDTH_MAX_MM:.0f} mm; for this scan try "
                     f"--scale {suggested_scale(width_units)}")


def check_same_head(path, vertices_mm, reference_mm, scale_to_mm: float, how: str) -> None:
    """The plausibility check of a re-scan's given unit: refuse (UnitsError, one line) a scan whose smallest extent
    along its principal axes (about the skull's width, whatever is left of the face, the back or the neck) is not
    within ``config.RESCAN_SIZE_RATIO`` of the patient's own head's, either way (a wrong unit is a factor of 10, 25.4
    or 1000). The general check (:func:`check_head_width`) orients a head by its face, which a re-scan may lack: a
    faceless re-scan of the real head measured 411 mm wide."""

    def extent(v):
        v = np.asarray(v, dtype=np.float64)[:: max(len(v) // 50_000, 1)]
        c = v - v.mean(axis=0)
        _, _, vt = np.linalg.svd(c, full_matrices=False)
        return float(np.ptp(c @ vt.T, axis=0).min())

    ratio = extent(vertices_mm) / max(extent(reference_mm), 1e-9)
    if not 1.0 / config.RESCAN_SIZE_RATIO <= ratio <= config.RESCAN_SIZE_RATIO:
        raise UnitsError(f"{path}: with {how} this scan is {ratio:.3g} times the size of the case's head; give the "
                         f"unit it was saved in (try --scale {scale_to_mm / ratio:.2g})")


def decide_units(path, vertices, units=None, scale=None, head=True):
    """(scale_to_mm, unit name, reason) for a scan: given by ``scale`` or ``units``, else detected.

    A given unit or scale is checked against the head's size first (:func:`check_head_width`), so a wrong one fails
    here, on size, and never later on a landmark; with ``head=False`` (the placement engine on any mesh) a given unit
    or scale is taken as it is."""
    if scale is not None:
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            scale = float("nan")
        if not np.isfinite(scale) or scale <= 0:
            raise UnitsError(f"{path}: --scale must be a positive number of millimetres per scan unit, not {scale}")
        if head:
            width = head_width(vertices)
            check_head_width(path, width * scale, width, f"--scale {scale:g}")
        return float(scale), "scale", f"given: {scale:g} mm per scan unit"
    if units is not None:
        if units not in config.UNIT_TO_MM:
            raise UnitsError(f"{path}: unknown unit '{units}'; use one of {', '.join(config.UNIT_TO_MM)}")
        if head:
            width = head_width(vertices)
            check_head_width(path, width * config.UNIT_TO_MM[units], width, f"--units {units}")
        return config.UNIT_TO_MM[units], units, f"given: {units}"
    width = head_width(vertices)
    fits = [u for u, s in config.UNIT_TO_MM.items()
            if config.HEAD_WIDTH_MIN_MM <= width * s <= config.HEAD_WIDTH_MAX_MM]
    if len(fits) == 1:
        u = fits[0]
        return config.UNIT_TO_MM[u], u, (f"detected: the head is {width:.4g} {u} wide "
                                         f"({width * config.UNIT_TO_MM[u]:.0f} mm)")
    raise UnitsError(
        f"{path}: head is {width:.3g} units wide, which is not {config.HEAD_WIDTH_MIN_MM:.0f}-"
        f"{config.HEAD_WIDTH_MAX_MM:.0f} mm in mm, cm, m or in; pass --units mm|cm|m|in or --scale MM_PER_UNIT "
        f"(for this scan try --scale {suggested_scale(width)}, a {config.HEAD_WIDTH_TYPICAL_MM:.0f} mm wide head)")
