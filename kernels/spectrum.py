"""The periodogram of one tangent-plane patch of dots (numba), for :func:`scalp3d.quality.radial_spectrum`."""
import math

import numpy as np
from numba import njit

from .chunks import run_chunks


@njit(cache=True, nogil=True)
def _patch_rows(lo, hi, k0, dk, bins, angles, xy, w, power):
    """Directions lo..hi-1 of :func:`patch_power` (rows of ``power``)."""
    m = xy.shape[0]
    re = np.empty(bins)
    im = np.empty(bins)
    for a in range(lo, hi):
        ux = 2.0 * math.pi * math.cos(angles[a])
        uy = 2.0 * math.pi * math.sin(angles[a])
        re[:] = 0.0
        im[:] = 0.0
        for j in range(m):
            t = ux * xy[j, 0] + uy * xy[j, 1]
            c = math.cos(k0 * t)
            s = math.sin(k0 * t)
            cd = math.cos(dk * t)
            sd = math.sin(dk * t)
            for b in range(bins):
                re[b] += w[j] * c
                im[b] += w[j] * s
                c, s = c * cd - s * sd, s * cd + c * sd
        for b in range(bins):
            power[a, b] = re[b] * re[b] + im[b] * im[b]


@njit(cache=True)
def _average(power, w):
    n_ang, bins = power.shape
    w2 = 0.0
    for j in range(w.shape[0]):
        w2 += w[j] * w[j]
    out = np.zeros(bins)
    if w2 <= 0.0:
        return out
    for b in range(bins):
        acc = 0.0
        for a in range(n_ang):
            acc += power[a, b]
        out[b] = acc / n_ang / w2
    return out


def patch_power(k0, dk, bins, angles, xy, w):
    """Windowed periodogram of the points ``xy`` (m,2) with weights ``w`` (m,), averaged over directions.

    P(k) = |sum_j w_j exp(-2 pi i k . x_j)|^2 / sum_j w_j^2 at the radii k = k0 + b dk (1/mm), b = 0..bins-1, along
    each direction of ``angles`` (radians), averaged over the directions. Along one direction the phases of the radii
    grow by the same step, so each point costs two sines and cosines per direction and one complex product per
    radius (the recurrence drifts by about 1e-14 over 40 radii).

    Returns
    -------
    (bins,) float64
    """
    power = np.zeros((angles.shape[0], int(bins)))
    run_chunks(angles.shape[0], _patch_rows, float(k0), float(dk), int(bins), angles, xy, w, power, min_chunk=1)
    return _average(power, w)
