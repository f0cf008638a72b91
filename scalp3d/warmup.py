"""A first run's kernels compiled in a second process (issue 15, point 4: the cold first run).

On a first run numba compiles every kernel the run calls, one after the other, in the one process: about 55 s of
a cold ``scalp3d demo --no-preview``'s 76 s on a 2-core machine where the warm run takes 21 s (placement's kernels
about 39 s, the needle tour's 11 s); with this second process, 43 s, the same files. :func:`start` launches ``python -m scalp3d.warmup`` beside the run when the
kernel cache is cold: it compiles the needle tour's kernels first (the run needs them last), then the joint
relaxation's (needed after the elimination's), then places a few hundred dots on a small sphere, which compiles the
rest of the placement's, each loaded from the cache where the run compiled it already. The run loads from the cache every kernel the second process
finished first (numba looks in its cache before compiling a signature it has not seen), so the two cores share the
compiling. The second process writes nothing but the kernel cache, the same files the run would write; it is stopped
when the run ends.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys

import numpy as np


def start():
    """Launch the second process when the kernel cache is cold (returns it, or None: the cache is warm, or
    ``SCALP3D_NO_WARMUP`` is set)."""
    from . import numba_cache_dir, numba_cache_is_warm

    if numba_cache_is_warm() or os.environ.get("SCALP3D_NO_WARMUP"):
        return None
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache_dir(), "SCALP3D_NO_WARMUP": "1"}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "scalp3d.warmup"], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None  # the run compiles alone, as before
    atexit.register(_stop, proc)
    return proc


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def compile_kernels() -> None:
    """Call the run's kernels on small inputs of the run's own types: the needle tour's, then the placement's."""
    import trimesh

    from . import config
    from .needle import order_dots
    from .placement import place_dots

    rng = np.random.default_rng(0)
    order_dots(rng.random((4 * config.TOUR_NEIGHBOURS, 3)) * 40.0)
    s = trimesh.creation.icosphere(3, radius=25.0)
    v, f = np.ascontiguousarray(s.vertices, dtype=np.float64), np.ascontiguousarray(s.faces, dtype=np.int64)
    vn = np.ascontiguousarray(s.vertex_normals, dtype=np.float64)
    dens = np.full(len(v), 40.0)
    _joint_relaxation(v, f, vn, dens, rng)  # the run needs these after the elimination's: compiled first here
    place_dots(v, f, density_per_cm2=dens, sessions=config.SESSION_FRACTIONS, seed=0, vertex_normals=vn)


def _joint_relaxation(v, f, vn, dens, rng) -> None:
    """The joint relaxation's kernels (pair lists, the sweep, its floor guard), on a few hundred dots."""
    from . import config
    from .kernels.multiclass import DotState, Mesh
    from .kernels.snap import vertex_faces
    from .meshes import face_areas, stratified_samples
    from .placement import _Fixed, _kernels_for, _relax_joint, local_spacing_mm

    m = 300
    face_ids, bary, pts, nrm = stratified_samples(v, vn, f, face_areas(v, f), m, rng)
    dots = DotState(pts, nrm, face_ids, bary)
    rad = local_spacing_mm(np.full(m, dens[0]), dens[0])
    fractions = tuple(config.SESSION_FRACTIONS)
    session = (np.arange(m, dtype=np.int64) % len(fractions)) + 1
    mesh = Mesh(v, vn, f, *vertex_faces(len(v), f), np.ones(len(f), bool))
    none = _Fixed(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    _relax_joint(mesh, none, dots, rad, session, fractions, 1.0, config.FOLD_COS, _kernels_for("cpu"),
                 dens_v=dens)


if __name__ == "__main__":
    compile_kernels()
