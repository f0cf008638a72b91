"""Baking dots into a texture: each dot a soft disc of pigment, composited into the texels that cover it.

A dot is given in texel coordinates (x right, y down the image rows) with the local metric of the texture on the skin
(``g``: mm^2 per texel^2 as a symmetric 2x2, so that a texel offset ``d`` is ``sqrt(d' g d)`` mm along the skin):
the disc is round on the skin whatever the atlas's stretch. Its coverage at distance ``r`` mm from its centre is 1 inside
the pigment's radius ``R`` and falls off as a Gaussian of width ``halo`` outside (to ``R + 3 halo``); the coverage
of each dot is then scaled so that its sum over the texels equals the profile's exact area (the average tone from afar
is right even where a dot spans two texels), capped at 1.

Pigment acts as a filter (light passes through the skin and the pigment under it): a texel's transmittance per channel
is the product over the dots that cover it of ``1 - a (1 - t)``, with ``a`` the coverage and ``t`` the pigment's
transmittance. It is accumulated as a sum of logarithms, each texel row band owned by one thread (deterministic
whatever the thread count: every texel sums its dots in their given order).
"""
import math

import numba
import numpy as np
from numba import njit

from .chunks import run_chunks

#: rows of the texture each parallel task owns
BAND_ROWS = 32


@njit(cache=True)
def profile_area_mm2(radius_mm, halo_mm):
    """Exact area (mm^2) under the dot's coverage profile: pi R^2 + 2 pi (R h sqrt(pi/2) + h^2), cut at 3 h."""
    if halo_mm <= 0.0:
        return math.pi * radius_mm * radius_mm
    # integral over s in [0, 3h] of (R + s) exp(-s^2 / 2h^2) ds
    h = halo_mm
    tail = radius_mm * h * math.sqrt(math.pi / 2.0) * math.erf(3.0 / math.sqrt(2.0)) + h * h * (1.0 - math.exp(-4.5))
    return math.pi * radius_mm * radius_mm + 2.0 * math.pi * tail


@njit(cache=True)
def _coverage(r, radius_mm, halo_mm):
    if r <= radius_mm:
        return 1.0
    if halo_mm <= 0.0 or r >= radius_mm + 3.0 * halo_mm:
        return 0.0
    s = (r - radius_mm) / halo_mm
    return math.exp(-0.5 * s * s)


@njit(cache=True)
def _extent(g, reach_mm):
    """Half-widths (texels) in x and y of the ellipse d' g d <= reach^2."""
    det = g[0] * g[2] - g[1] * g[1]
    if det <= 0.0:
        return 0.0, 0.0
    return reach_mm * math.sqrt(g[2] / det), reach_mm * math.sqrt(g[0] / det)


@njit(cache=True)
def _splat_rows(log_t, x, y, g, radius_mm, halo_mm, opacity, trans, row_lo, row_hi):
    """Composite one dot into rows [row_lo, row_hi) of ``log_t`` (H,W,3): two passes over its footprint, the first to
    normalise its coverage to the profile's area, the second to add log(1 - a (1 - t)) per channel."""
    h, w = log_t.shape[0], log_t.shape[1]
    reach = radius_mm + 3.0 * halo_mm
    ex, ey = _extent(g, reach)
    x0 = max(int(math.floor(x - ex)), 0)
    x1 = min(int(math.ceil(x + ex)), w - 1)
    y0 = int(math.floor(y - ey))
    y1 = int(math.ceil(y + ey))
    det = g[0] * g[2] - g[1] * g[1]
    if det <= 0.0 or x1 < x0:
        return
    texel_mm2 = math.sqrt(det)
    # pass 1 over the whole footprint (all rows, also those of other bands: the scale must not depend on the band)
    total = 0.0
    for iy in range(max(y0, 0), min(y1, h - 1) + 1):
        dy = iy + 0.5 - y
        for ix in range(x0, x1 + 1):
            dx = ix + 0.5 - x
            q = g[0] * dx * dx + 2.0 * g[1] * dx * dy + g[2] * dy * dy
            total += _coverage(math.sqrt(q), radius_mm, halo_mm)
    if total <= 0.0:
        return
    scale = profile_area_mm2(radius_mm, halo_mm) / (total * texel_mm2)
    for iy in range(max(y0, row_lo), min(y1 + 1, row_hi, h)):
        dy = iy + 0.5 - y
        for ix in range(x0, x1 + 1):
            dx = ix + 0.5 - x
            q = g[0] * dx * dx + 2.0 * g[1] * dx * dy + g[2] * dy * dy
            a = _coverage(math.sqrt(q), radius_mm, halo_mm) * scale
            if a <= 0.0:
                continue
            a = min(a, 1.0) * opacity
            for c in range(3):
                log_t[iy, ix, c] += math.log(max(1.0 - a * (1.0 - trans[c]), 1e-6))


@njit(cache=True, nogil=True, _nrt=False)
def _bake_bands(k_lo, k_hi, bands, log_t, xy, metric, radius_mm, halo_mm, opacity, trans, band_start, band_items):
    """Bands bands[k_lo..k_hi-1] of :func:`bake_dots` (each band's rows are its own: no two chunks write one
    texel)."""
    for kb in range(k_lo, k_hi):
        b = bands[kb]
        lo = b * BAND_ROWS
        hi = lo + BAND_ROWS
        for k in range(band_start[b], band_start[b + 1]):
            i = band_items[k]
            _splat_rows(log_t, xy[i, 0], xy[i, 1], metric[i], radius_mm[i], halo_mm[i], opacity[i], trans[i], lo, hi)


def bake_dots(log_t, xy, metric, radius_mm, halo_mm, opacity, trans, band_start, band_items, bands=None):
    """Composite dots into ``log_t`` (H,W,3) float32, the log of the transmittance, in place.

    xy : (n,2) texel coordinates (x along a row, y down the rows; a texel's centre is at +0.5); metric : (n,3) the
    skin metric (g00, g01, g11) in mm^2 per texel^2; radius_mm, halo_mm, opacity : (n,); trans : (n,3) the pigment's
    transmittance per channel (0 black, 1 clear); band_start, band_items : CSR lists of the dots touching each band of
    :data:`BAND_ROWS` rows (:func:`band_lists`), each in increasing dot order; bands : (k,) int, optional, the only
    bands to bake (default all; the others' texels are left as they are). The bands are dealt to the threads round
    robin (:func:`scalp3d.kernels.chunks.run_chunks` gives each a contiguous run of the deal): each thread's share
    spreads over the whole texture, whose dense rows lie together (in ranges of bands, one thread baked 0.4 s of a
    design change's bands while the other waited).
    """
    chosen = np.arange(len(band_start) - 1) if bands is None else np.asarray(bands, dtype=np.int64)
    t = max(numba.get_num_threads(), 1)
    dealt = np.ascontiguousarray(np.concatenate([chosen[k::t] for k in range(t)]), dtype=np.int64)
    run_chunks(len(dealt), _bake_bands, dealt, log_t, xy, metric, radius_mm, halo_mm, opacity, trans, band_start,
               band_items, min_chunk=1)


def band_lists(xy, metric, reach_mm, height):
    """CSR lists (band_start (B+1,), band_items) of the dots whose footprint (``reach_mm`` (n,) along the skin)
    touches each band of :data:`BAND_ROWS` rows of a texture ``height`` rows high, dots in increasing order."""
    g00, g01, g11 = metric[:, 0], metric[:, 1], metric[:, 2]
    det = g00 * g11 - g01 * g01
    ok = det > 0  # a degenerate metric draws nothing (_splat_rows returns): list it in no band's extent beyond its own
    ey = np.where(ok, reach_mm * np.sqrt(np.where(ok, g00, 0.0) / np.where(ok, det, 1.0)), 0.0)
    n_bands = (int(height) + BAND_ROWS - 1) // BAND_ROWS
    b0 = np.clip(np.floor((xy[:, 1] - ey) / BAND_ROWS).astype(np.int64), 0, max(n_bands - 1, 0))
    b1 = np.clip(np.floor((xy[:, 1] + ey) / BAND_ROWS).astype(np.int64), 0, max(n_bands - 1, 0))
    counts = b1 - b0 + 1
    dot = np.repeat(np.arange(len(xy), dtype=np.int64), counts)
    band = np.repeat(b0, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    order = np.lexsort((dot, band))
    start = np.zeros(n_bands + 1, dtype=np.int64)
    np.add.at(start, band + 1, 1)
    return np.cumsum(start), dot[order]
