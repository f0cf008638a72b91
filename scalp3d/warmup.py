"""A first run's kernels compiled in a second process (issue 15, point 4: the cold first run).

On a first run numba compiles every kernel the run calls, one after the other, in the one process. :func:`start`
launches ``python -m scalp3d.warmup`` beside the run when the kernel cache is cold; the two processes share the
compiling by **stages** (:data:`STAGES`: the relaxations' kernels, the needle tour's 2-opt, its neighbour lists and
first tour, the quality figures', the rest of the placement's), each guarded by a lock file in the kernel cache folder:

- the second process takes the stages in that order, each only if its lock is free, and compiles it by calling the
  run's own functions on small inputs of the run's own types (the relaxation's first: the run compiles the
  elimination's meanwhile, and needs the relaxation's right after);
- the run enters a stage with :func:`stage`. When the second process is compiling it, the run waits, compiling
  meanwhile a short stage nobody has taken (:func:`_compile_ahead`, :data:`STAGES_AHEAD`), then loads the stage's
  kernels from the cache (numba looks in its cache before compiling a signature it has not seen). When nobody has
  begun it, the run holds its lock and compiles it itself, and the second process skips it.

So no kernel is compiled twice at once, and neither process idles while the other compiles. Measured on 2 cores, a
cold ``scalp3d demo --no-preview``: 71 s with no second process; 56 s once each helper kernel compiled once (see
tests/test_warmup.py); 55-58 s with the second process before the locks (both compiled the relaxation's kernels at
once); 38 s with the stages; 35-37 s (in an hour when the 38 s run took 46 s) once the parallel loops were chunks
of serial kernels (:mod:`scalp3d.kernels.chunks`: half the compiling). The second process writes nothing but the
kernel cache, the same files the run would write, and is stopped when the run ends. Without ``fcntl`` (Windows) no
stage is locked and both processes may compile one, as before. ``SCALP3D_WARMUP_LOG=FILE`` logs who takes which
stage when.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import os
import subprocess
import sys
import time

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no stage locks
    fcntl = None

#: the compile stages, in the order the second process takes them (see the module's doc)
STAGES = ("relax", "tour", "neighbours", "quality", "placement")
#: the stages a waiting run compiles ahead, in this order: the short ones (on a first run: quality about 1 s, the
#: tour's neighbour lists and first tour 3-4 s, placement 4 s). The tour's 2-opt (3 s) is left to the second process,
#: which takes it after the relaxations while the run places the dots: a run that compiled the whole tour (6 s) ahead
#: was still at it 5 s after the relaxations were ready
STAGES_AHEAD = ("quality", "neighbours", "placement")
#: the longest a run waits for the second process to finish a stage before compiling it itself (s)
STAGE_WAIT_S = 180.0

_second = None  # the second process this run started (None: no stage is locked)
_held = set()  # the stages this run holds now
_finished = set()  # the stages this run has been through (compiled, or loaded from the cache)
_stealing = False  # compiling a stage ahead (see _compile_ahead): its own stage() calls lock nothing


def _log(what):
    path = os.environ.get("SCALP3D_WARMUP_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{time.time():.2f} {os.getpid()} {what}\n")


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
    global _second
    _second = proc
    return proc


def _lock_path(name: str) -> str:
    from . import numba_cache_dir

    os.makedirs(numba_cache_dir(), exist_ok=True)
    return os.path.join(numba_cache_dir(), f"scalp3d-compile-{name}.lock")


@contextlib.contextmanager
def stage(name: str):
    """The run's side of a compile stage (one of :data:`STAGES`): a no-op unless this run started the second process;
    then the stage's lock is held for the block, after waiting (at most :data:`STAGE_WAIT_S`) for the second process
    to finish the stage if it is compiling it."""
    if _second is None or fcntl is None:
        yield
        return
    if _stealing or name in _held:
        yield  # inside a stage this run holds or is compiling ahead: nothing to lock
        return
    fd = None
    try:
        fd = os.open(_lock_path(name), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + STAGE_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _log(f"run holds {name}")
                break
            except BlockingIOError:
                if time.monotonic() > deadline or _second.poll() is not None:
                    break  # compile it here: a stuck or dead second process never holds the run
                if not _compile_ahead(name):
                    time.sleep(0.05)
    except OSError:
        pass  # no lock file (read-only cache folder): compile here, unlocked
    _held.add(name)
    try:
        yield
    finally:
        _held.discard(name)
        _finished.add(name)
        if fd is not None:
            _log(f"run releases {name}")
            os.close(fd)  # releases the lock


def _compile_ahead(waiting_for: str) -> bool:
    """While the run waits for the second process to finish ``waiting_for``: compile here, ahead, the first stage
    nobody has taken (the run needs it later anyway), a short one (:data:`STAGES_AHEAD`). Returns whether a
    stage was compiled."""
    global _stealing
    for other in STAGES_AHEAD:
        if other == waiting_for or other in _held or other in _finished:
            continue
        fd = _try_stage(other)
        if fd is None:
            continue
        _log(f"run takes {other} ahead")
        _stealing = True
        try:
            _compile_stage(other, _inputs())
        except Exception as exc:  # compiling ahead only saves time: it must never fail the run (which compiles later)
            _log(f"run: compiling {other} ahead failed: {exc!r}")
        finally:
            _stealing = False
            _finished.add(other)
            if fd >= 0:
                os.close(fd)
        return True
    return False


def in_stage(name: str):
    """Decorator: the function runs inside :func:`stage` ``name``."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with stage(name):
                return fn(*args, **kwargs)
        return wrapped
    return deco


def _try_stage(name: str):
    """The second process's side: the stage's lock file descriptor if the lock was free, else None (skip it)."""
    if fcntl is None:
        return -1
    try:
        fd = os.open(_lock_path(name), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def compile_kernels(stages=STAGES) -> None:
    """Call the run's kernels on small inputs of the run's own types, stage by stage (:data:`STAGES`), skipping a
    stage whose lock the run holds."""
    inputs = _inputs()
    for name in stages:
        fd = _try_stage(name)
        _log(f"second {'skips' if fd is None else 'takes'} {name}")
        if fd is None:
            continue  # the run is compiling it
        try:
            _compile_stage(name, inputs)
        finally:
            _log(f"second done {name}")
            if fd >= 0:
                os.close(fd)


def _inputs():
    """Small inputs of the run's own types: a sphere of 25 mm (vertices, faces, vertex normals), a density per
    vertex, a random generator."""
    import trimesh

    s = trimesh.creation.icosphere(3, radius=25.0)
    # writable copies: trimesh's cached arrays are read-only, and numba compiles a read-only array apart
    v, f = np.array(s.vertices, dtype=np.float64), np.array(s.faces, dtype=np.int64)
    vn = np.array(s.vertex_normals, dtype=np.float64)
    return v, f, vn, np.full(len(v), 40.0), np.random.default_rng(0)


def _compile_stage(name, inputs) -> None:
    """Run one stage's functions on ``inputs`` (see :func:`_inputs`)."""
    from . import config
    from .placement import place_dots
    from .quality import radial_spectrum, spread_figures

    v, f, vn, dens, rng = inputs
    if name == "relax":
        _relaxation(v, f, vn, dens, rng)
    elif name in ("tour", "neighbours"):
        # order_dots' kernels with its own types: the neighbour lists and the first tour ("neighbours"), the 2-opt
        # ("tour") on stand-ins of theirs, so that neither stage compiles the other's
        from . import kernels as K

        p = np.ascontiguousarray(rng.random((4 * config.TOUR_NEIGHBOURS, 3)) * 40.0)
        if name == "neighbours":
            K.nearest_neighbour_tour(p, 0, config.TOUR_CELL_MM)
            K.knn_lists(p, config.TOUR_NEIGHBOURS, config.TOUR_CELL_MM)
        else:
            d = np.linalg.norm(p[:, None] - p[None], axis=2)
            nb = np.ascontiguousarray(np.argsort(d, axis=1, kind="stable")[:, 1:config.TOUR_NEIGHBOURS + 1],
                                      dtype=np.int64)
            K.two_opt_or_opt(p, np.arange(len(p), dtype=np.int64), nb, config.TOUR_MOVES_PER_DOT * len(p))
    elif name == "quality":
        pts = np.column_stack([rng.random((400, 2)) * 40.0, np.zeros(400)])
        spread_figures(pts, np.full(len(pts), 2.0))
        radial_spectrum(pts, np.tile([0.0, 0.0, 1.0], (len(pts), 1)), 2.0, patches=4)
    else:
        place_dots(v, f, density_per_cm2=dens, sessions=config.SESSION_FRACTIONS, seed=0, vertex_normals=vn)


def _relaxation(v, f, vn, dens, rng) -> None:
    """The relaxations' kernels on a few hundred dots: the light relaxation's (nearest distances, the sweep, the
    pair lists, the floor guard) and the joint one's (the moved dots' spacing). One stage: the two share the sweep and
    the lists (as two stages, the run compiled the joint one ahead while the second process compiled the light one,
    and both compiled the sweep)."""
    from . import config
    from .kernels.multiclass import DotState, Mesh
    from .kernels.snap import vertex_faces
    from .meshes import face_areas, stratified_samples
    from .placement import _Fixed, _kernels_for, _relax, _relax_joint, local_spacing_mm

    m = 300
    face_ids, bary, pts, nrm = stratified_samples(v, vn, f, face_areas(v, f), m, rng)
    dots = DotState(pts, nrm, face_ids, bary)
    rad = local_spacing_mm(np.full(m, dens[0]), dens[0])
    fractions = tuple(config.SESSION_FRACTIONS)
    session = (np.arange(m, dtype=np.int64) % len(fractions)) + 1
    mesh = Mesh(v, vn, f, *vertex_faces(len(v), f), np.ones(len(f), bool))
    none = _Fixed(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    kern = _kernels_for("cpu")
    dots = _relax(mesh, none, dots, rad, 2, config.FOLD_COS, kern)
    _relax_joint(mesh, none, dots, rad, session, fractions, 1.0, config.FOLD_COS, kern, dens_v=dens)


if __name__ == "__main__":
    compile_kernels()
