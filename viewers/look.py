"""The healed look: what each dot is on the skin, the skin's own colour, and the texture they make together.

The picture of a head is its skin colour (per vertex: the scan's own, or a Fitzpatrick preset) times a texture, a
filter that is white on bare skin and darker where pigment lies under it. Each dot is baked into that texture at true
scale (:mod:`scalp3d.kernels.bake`): opaque over its healed diameter (the plan's ``dot_size_mm``), a Gaussian halo
around it (``[preview] halo_mm``), in its session's pigment colour (``[preview.pigments]``). Seen from a metre, the
texture's mipmaps average to coverage times pigment; in a close-up single dots show.

A fresh look (the first days) draws every dot wider, crisper and darker, on reddened skin. The hair-bearing fringe
outside the treated area is drawn as the plan says: shaved stubble of the same tone (the default), the scan's own
colour, or bare.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalp3d import config
from scalp3d.kernels.bake import BAND_ROWS, bake_dots, band_lists


def hex_rgb(colour: str) -> np.ndarray:
    """"#rrggbb" -> (3,) float64 in 0-1."""
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64) / 255.0


@dataclass
class Spots:
    """Pigment spots to bake: positions, normals (n,3) mm, scan axes; radius_mm, halo_mm (n,); trans (n,3) the filter
    each makes where it fully covers the skin (0 black, 1 clear)."""

    positions: np.ndarray
    normals: np.ndarray
    radius_mm: np.ndarray
    halo_mm: np.ndarray
    trans: np.ndarray

    def take(self, mask) -> "Spots":
        return Spots(self.positions[mask], self.normals[mask], self.radius_mm[mask], self.halo_mm[mask],
                     self.trans[mask])

    def table(self) -> np.ndarray:
        """(n, 11) float64: everything a spot is drawn from, one row per spot."""
        return np.column_stack([self.positions, self.normals, self.radius_mm, self.halo_mm, self.trans])

    @staticmethod
    def join(parts) -> "Spots":
        parts = [p for p in parts if p is not None and len(p.positions)]
        if not parts:
            z = np.zeros((0, 3))
            return Spots(z, z.copy(), np.zeros(0), np.zeros(0), z.copy())
        return Spots(*(np.concatenate([getattr(p, k) for p in parts])
                       for k in ("positions", "normals", "radius_mm", "halo_mm", "trans")))


def dot_spots(positions, normals, dot_size_mm, shade_names, pigments, *, halo_mm, fresh=False) -> Spots:
    """Spots of planned dots: ``dot_size_mm`` (n,) their healed diameter, ``shade_names`` (n,) each one's shade,
    ``pigments`` a callable shade name -> "#rrggbb"."""
    n = len(positions)
    names = np.asarray(shade_names, dtype=object)
    trans = np.zeros((n, 3))
    for name in dict.fromkeys(names.tolist()):
        trans[names == name] = hex_rgb(pigments(name))
    size = np.asarray(dot_size_mm, dtype=np.float64)
    halo = np.full(n, float(halo_mm))
    if fresh:
        size = size * config.FRESH_SIZE_GAIN
        halo = np.full(n, config.FRESH_HALO_MM)
        trans = trans * config.FRESH_DARKEN
    return Spots(np.asarray(positions, dtype=np.float64), np.asarray(normals, dtype=np.float64), 0.5 * size, halo,
                 trans)


def bake(atlas, spots: Spots, log_t=None) -> np.ndarray:
    """The filter texture (atlas.height, atlas.width, 3) uint8 of ``spots`` on ``atlas``: white where no pigment.
    ``log_t``: a float32 (H,W,3) running sum of the log transmittance to add these spots to (kept, so that states can
    be baked one after another: the texture after session k adds session k's dots to the one after k - 1)."""
    if log_t is None:
        log_t = np.zeros((atlas.height, atlas.width, 3), dtype=np.float32)
    _composite(atlas, spots, log_t)
    return to_image(log_t)


def rebake(atlas, before: Spots, after: Spots, log_t, image) -> np.ndarray:
    """The texture of ``after`` made from the one of ``before`` (``log_t`` its running sum from :func:`bake`, started
    at zero, and ``image`` its texture; both updated in place and returned as the image): only the bands of
    :data:`~scalp3d.kernels.bake.BAND_ROWS` rows that a spot added or taken away touches are baked again, from every
    spot of ``after`` that touches them, in ``after``'s order. Every texel then sums the same terms in the same order
    as ``bake(atlas, after)``: the same texture, bit for bit. A live design change (a hairline moved: a fifth of the
    dots) bakes a fraction of the texture."""
    a, b = before.table(), after.table()
    ha, hb = _hashed(a), _hashed(b)
    n_bands = (atlas.height + BAND_ROWS - 1) // BAND_ROWS
    # the spots are matched as sets: a spot drawn twice (never seen: the floor keeps dots apart) bakes everything
    bands = np.full(n_bands, not (_distinct(ha) and _distinct(hb)))
    for part in (before.take(~_found_in(a, ha, b, hb)), after.take(~_found_in(b, hb, a, ha))):
        start, _ = _band_lists(atlas, part)[2:]
        bands |= np.diff(start) > 0
    chosen = np.flatnonzero(bands)
    for k in chosen:
        log_t[k * BAND_ROWS:(k + 1) * BAND_ROWS] = 0.0
    if len(chosen):
        _composite(atlas, after, log_t, chosen)
    for k in chosen:
        lo, hi = k * BAND_ROWS, min((k + 1) * BAND_ROWS, atlas.height)
        image[lo:hi] = to_image(log_t[lo:hi])
    return image


def _band_lists(atlas, spots: Spots):
    """The spots drawn on ``atlas`` (their indices into ``spots``), their splats (texel xy and skin metric) and the
    CSR lists of the bands each touches (:func:`scalp3d.kernels.bake.band_lists`): (idx, (xy, metric), start,
    items)."""
    idx, xy, metric = atlas.splats(spots.positions, spots.normals)
    start, items = band_lists(xy, metric, spots.radius_mm[idx] + 3.0 * spots.halo_mm[idx], atlas.height)
    return idx, (xy, metric), start, items


def _composite(atlas, spots: Spots, log_t, bands=None) -> None:
    """Add ``spots`` to ``log_t`` in place (in the bands ``bands`` only, when given)."""
    idx, (xy, metric), start, items = _band_lists(atlas, spots)
    if len(idx):
        bake_dots(log_t, np.ascontiguousarray(xy), np.ascontiguousarray(metric),
                  np.ascontiguousarray(spots.radius_mm[idx]), np.ascontiguousarray(spots.halo_mm[idx]),
                  np.ones(len(idx)), np.ascontiguousarray(spots.trans[idx]), start, items, bands=bands)


def _hashed(t) -> np.ndarray:
    """(n,) uint64: a hash of each row's bits."""
    bits = np.ascontiguousarray(t, dtype=np.float64).view(np.uint64)
    h = np.zeros(len(t), dtype=np.uint64)
    for k in range(bits.shape[1]):
        h ^= bits[:, k]
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


def _distinct(h) -> bool:
    """No two row hashes ``h`` alike (so no row is there twice)."""
    h = np.sort(h)
    return not (h[1:] == h[:-1]).any()


def _found_in(a, ha, b, hb) -> np.ndarray:
    """(len(a),) bool: the rows of ``a`` that are rows of ``b``, exactly (``ha``, ``hb`` their rows' hashes from
    :func:`_hashed`: a hash finds a candidate, the whole row is compared; a rare collision only costs a band baked
    again, never a stale spot)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    order = np.argsort(hb, kind="stable")
    at = np.minimum(np.searchsorted(hb[order], ha), len(b) - 1)
    cand = order[at]
    return (hb[cand] == ha) & (b[cand] == a).all(axis=1)


def to_image(log_t) -> np.ndarray:
    """uint8 image of a log-transmittance array, row band by row band (no second full-size float array)."""
    out = np.empty(log_t.shape, dtype=np.uint8)
    step = 256
    for y in range(0, len(log_t), step):
        band = np.exp(log_t[y:y + step])
        band *= 255.0
        band += 0.5
        out[y:y + step] = band
    return out


def skin_colours(head, skin: str) -> np.ndarray:
    """(n,3) float64 0-1 per vertex: the scan's colour ('scan', or 'auto' when the head has colours), else a preset."""
    if skin in ("scan", "auto") and head.colors is not None:
        return np.asarray(head.colors[:, :3], dtype=np.float64) / 255.0
    preset = config.SKIN_PRESETS[config.PREVIEW_SKIN if skin in ("scan", "auto") else skin]
    return np.tile(np.asarray(preset, dtype=np.float64) / 255.0, (len(head.vertices), 1))
