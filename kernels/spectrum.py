"""The periodogram of one tangent-plane patch of dots (numba), for :func:`scalp3d.quality.radial_spectrum`."""
import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
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
    n_ang = angles.shape[0]
    m = xy.shape[0]
    w2 = 0.0
    for j in range(m):
        w2 += w[j] * w[j]
    power = np.zeros((n_ang, bins))
    for a in prange(n_ang):
        ux = 2.0 * math.pi * math.cos(angles[a])
        uy = 2.0 * math.pi * math.sin(angles[a])
        re = np.zeros(bins)
        im = np.zeros(bins)
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
    out = np.zeros(bins)
    if w2 <= 0.0:
        return out
    for b in range(bins):
        acc = 0.0
        for a in range(n_ang):
            acc += power[a, b]
        out[b] = acc / n_ang / w2
    return out
