"""The embedded sample head: the FreeSurfer fsaverage scalp shipped inside MNE-Python's wheel (BSD-3).

It is loaded at run time from the installed ``mne`` package (never copied into this repository): 2,033 vertices,
closed, in metres, with its fiducials (nasion, LPA, RPA). It is scaled to millimetres and refined by Loop subdivision
into a smooth surface with edges of about 1-2 mm, fine enough for 1 mm dots.
"""
from __future__ import annotations

import os

import numpy as np

from . import config
from .errors import MissingDependencyError
from .meshes import vertex_normals_of
from .types import Head, Scan

CREDIT = ("Sample head: FreeSurfer fsaverage scalp (Fischl et al.; MNE-Python, BSD-3). "
          "Real test head: 'Infinite, 3D Head Scan' by Lee Perry-Smith, CC BY 3.0.")


def _fsaverage_dir():
    try:
        import mne
    except ImportError:
        raise MissingDependencyError("the sample head ships inside MNE-Python: pip install mne") from None
    return os.path.join(os.path.dirname(mne.__file__), "data", "fsaverage")


def sample_scan_path() -> str:
    """Path of fsaverage-head.fif inside the installed mne package."""
    return os.path.join(_fsaverage_dir(), "fsaverage-head.fif")


def load_sample_head(subdivisions: int = config.SAMPLE_HEAD_SUBDIVISIONS):
    """The sample head (refined, mm) and its fiducials.

    Returns
    -------
    scan : Scan, the original 2,033-vertex surface in mm
    head : Head, Loop-subdivided ``subdivisions`` times
    fiducials : dict with 'nasion', 'lpa', 'rpa' (3,) float64 mm
    """
    import mne
    import trimesh

    d = _fsaverage_dir()
    surf = mne.read_bem_surfaces(os.path.join(d, "fsaverage-head.fif"), verbose=False)[0]
    v = np.asarray(surf["rr"], dtype=np.float64) * 1000.0
    f = np.asarray(surf["tris"], dtype=np.int64)
    fids, _ = mne.io.read_fiducials(os.path.join(d, "fsaverage-fiducials.fif"), verbose=False)
    names = {1: "lpa", 2: "nasion", 3: "rpa"}
    fiducials = {names[int(p["ident"])]: np.asarray(p["r"], dtype=np.float64) * 1000.0 for p in fids
                 if int(p["ident"]) in names}
    scan = Scan(path=sample_scan_path(), vertices=v, faces=f, units="m", scale_to_mm=1000.0,
                units_reason="sample head: metres (FreeSurfer MRI coordinates)")
    if subdivisions > 0:
        v2, f2 = trimesh.remesh.subdivide_loop(v, f, iterations=subdivisions)
    else:
        v2, f2 = v, f
    v2 = np.ascontiguousarray(v2, dtype=np.float64)
    f2 = np.ascontiguousarray(f2, dtype=np.int64)
    head = Head(vertices=v2, faces=f2, vertex_normals=vertex_normals_of(v2, f2), source=scan.path,
                notes=[f"fsaverage scalp, Loop-subdivided {subdivisions} times"])
    return scan, head, fiducials
