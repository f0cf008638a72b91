"""Quality figures: the spectrum tells blue noise from white noise and from a lattice; spread figures are right."""
import numpy as np
import pytest

from scalp3d import kernels as K
from scalp3d.placement import place_dots, spacing_for_density
from scalp3d.quality import radial_spectrum, spread_figures

from shapes import ellipsoid_cap


@pytest.fixture(scope="module")
def cap():
    v, f = ellipsoid_cap(50)
    return v, f, float(K.triangle_areas(v, f).sum())


def hex_lattice(n=60, spacing=1.0):
    g = np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1).reshape(-1, 2).astype(float)
    g[:, 0] += 0.5 * (g[:, 1] % 2)
    g[:, 1] *= np.sqrt(3) / 2
    return np.column_stack([g * spacing, np.zeros(len(g))])


def test_spectrum_separates_blue_white_and_lattice(cap):
    v, f, area = cap
    n = 8000
    dmax = float(spacing_for_density(n / area * 100))
    blue = place_dots(v, f, count=n, seed=0)
    white = place_dots(v, f, count=n, seed=0, relax_passes=0, candidates_per_dot=1, sessions=1)  # no relaxation
    _, pb = radial_spectrum(blue.positions, blue.normals, dmax)
    _, pw = radial_spectrum(white.positions, white.normals, dmax)
    lat = hex_lattice()
    _, pl = radial_spectrum(lat, np.tile([0, 0, 1.0], (len(lat), 1)), 1.0)
    assert pl.max() > 6  # lattice spikes (diluted by the radial average)
    assert pb.max() < 3.0  # no spike in our dots (the blue-noise ring peaks near 2)
    assert pb[:6].mean() < 0.3 < pw[:6].mean()  # blue noise: little low-frequency power, white noise has it


def test_spread_figures_on_lattice_and_random():
    lat = hex_lattice(40)
    s = spread_figures(lat, np.full(len(lat), 1.0))
    assert s["rho"] == pytest.approx(1.0) and s["nn_cv"] == pytest.approx(0.0, abs=1e-9)
    rnd = np.random.default_rng(0).random((20000, 3)) * [100, 100, 0]
    dmax = float(np.sqrt(2 * 1e4 / (np.sqrt(3) * 20000)))
    r = spread_figures(rnd, np.full(len(rnd), dmax))
    assert r["rho"] < 0.05 and 0.45 < r["nn_cv"] < 0.6  # random points: CV about 0.52
