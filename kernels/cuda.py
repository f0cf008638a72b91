"""CUDA twins of the CPU kernels (numba.cuda): same names with ``_cuda``, same arguments, same returns.

Each operation has three layers, as in stumpy's ``gpu_*`` modules: a ``@cuda.jit`` kernel with an explicit signature
(the sweep's is typed at its first launch: its arguments are namedtuples of arrays) and a grid-stride loop, a private
host launcher that copies the arrays to the device, launches and copies the results back, and a public wrapper that
makes the arrays float64/int64 C-contiguous and checks that a device is there. The kernels are compiled on first use,
never at import, so ``import scalp3d.kernels.cuda`` works on a machine with neither a GPU nor the simulator; only
calling a public function there raises ``RuntimeError``. This module must not be imported by ``scalp3d.kernels``
itself, and, like every kernel, it trusts its input's shapes and indices (validated upstream).

The sweep of the joint session relaxation (:func:`multiclass_sweep_cuda`) is not written twice: its kernel calls the
CPU sweep's per-dot function (:func:`scalp3d.kernels.multiclass.update_dot`) and the mesh walk it uses, recompiled
from their Python source as device functions with their callees swapped for the device versions (``_on_device``). It
takes the same grouped arguments (:class:`scalp3d.kernels.multiclass.DotState`, ``Targets``, ``SweepStep``, the
neighbour lists, ``Mesh``).

The texture bake (:func:`bake_dots_cuda`, twin of :func:`scalp3d.kernels.bake.bake_dots`) runs one dot per thread
and adds its log transmittance into the texels with float32 atomic additions: no band lists, but the order of the
additions into a texel varies from run to run, so it equals the CPU's within float32 rounding (``BAKE_ATOL``), not
bit for bit. The per-texel math (coverage profile, footprint, profile area) is the CPU's own functions compiled as
device functions; the dot's two passes are the CPU's ``_splat_rows`` line for line (its ``+=`` into a texel cannot
be swapped for an atomic addition from outside), over all rows instead of one band's.

The weighted sample elimination's conflict graph (:func:`conflict_graph_cuda`, twin of
:func:`scalp3d.kernels.elimination.conflict_graph`) runs one candidate per thread through the CPU's own row scan
(``_scan_row``: the 27 grid cells, the pair weight, the skin distance, compiled as device functions), in two passes
(row lengths, then rows from their offsets) over the dense grid, which is built on the host by the CPU's own
:func:`scalp3d.kernels.elimination.conflict_grid` (a serial counting sort). The removal itself
(:func:`scalp3d.kernels.elimination.eliminate`) pops a heap one point at a time, each pop depending on the last: it
stays on the CPU for both paths. :func:`snap_points_cuda` (twin of :func:`scalp3d.kernels.snap.snap_points`) puts
points back onto the mesh, one per thread, through the CPU's :func:`scalp3d.kernels.snap.snap_xyz`.

How close the twins come to the CPU: on the simulator they run the CPU's float64 operations in the CPU's order with
the same libm, so they agree to :data:`KERNEL_RTOL` (equal in practice) and ``place_dots(backend="cuda")`` gives the
CPU's dots within :data:`PLACEMENT_ATOL_MM` (tests/test_cuda_kernels.py). A real GPU may fuse multiply-adds and takes
``asin`` and ``pow`` from libdevice (1-2 ulp from glibc's), so its kernels still agree to :data:`KERNEL_RTOL`, but a
whole placement can part from the CPU's where a discrete choice rests on a difference of a few ulps (two candidates'
elimination weights, a guard's floor test, a face walk). Emulated on the CPU (``benchmarks/gpu.py --emulate-ulps``:
the twinned kernels' float outputs moved by up to 2 ulp), the benchmark cap's 60,000-dot plan keeps its count and
session sizes and its rho (0.812), 81 % of the dots stay within :data:`PLACEMENT_ATOL_MM` of a CPU dot and 98.5 %
within 0.01 mm, the rest placed otherwise in small patches (at most 0.84 mm away): an equally good plan, not the same
one. ``benchmarks/gpu.py`` measures the real figures on the first machine with a GPU.

On a machine without a GPU the kernels run on numba's CUDA simulator when ``NUMBA_ENABLE_CUDASIM=1`` is in the
environment before numba is first imported (slow: keep inputs to a few hundred elements).
"""
import math

import numpy as np

try:
    from numba import cuda
except ImportError as exc:  # numba-cuda or the CUDA Python bindings are missing
    cuda = None
    _CUDA_IMPORT_ERROR = exc
else:
    _CUDA_IMPORT_ERROR = None

#: threads in a block; the tests patch it small so the simulator is quick
THREADS_PER_BLOCK = 256
#: upper bound on blocks in a launch; the grid-stride loops cover whatever the grid does not
MAX_BLOCKS = 4096

#: how far a CUDA twin's float64 results may lie from its CPU kernel's, relative (a few ulps: fused multiply-adds and
#: libdevice's asin and pow on a GPU; nothing on the simulator)
KERNEL_RTOL = 1e-12
#: place_dots(backend="cuda") against backend="cpu" on the simulator: every position within this (mm), and the same
#: count, faces, sessions and ids (the kernels' agreement carried through every sweep; on a real GPU a few dots in a
#: hundred may be placed otherwise: see the module's docstring)
PLACEMENT_ATOL_MM = 1e-9

#: what float32 atomic additions in any order may change in a texel's log transmittance against the CPU bake
#: (whose float64 terms are added to float32 texels in dot order): a few float32 ulps of values of order 1-10
BAKE_ATOL = 1e-5

_NO_GPU = (
    "no CUDA GPU was found: use the CPU kernels in scalp3d.kernels, "
    "or set NUMBA_ENABLE_CUDASIM=1 (before numba is imported) to run the CUDA kernels on numba's simulator"
)


# ---------------------------------------------------------------------------------------------------------- kernels
# Plain functions marked with their signature; ``_compiled`` turns one into a ``cuda.jit`` kernel on first launch.

def _kernel(signature):
    def mark(fn):
        fn.signature = signature
        return fn
    return mark


_COMPILED = {}


def _compiled(fn):
    kernel = _COMPILED.get(fn.__name__)
    if kernel is None:
        kernel = _COMPILED[fn.__name__] = cuda.jit(fn) if fn.signature is None else cuda.jit(fn.signature)(fn)
    return kernel


@_kernel("void(float64[:, ::1], int64[:, ::1], float64[::1])")
def _triangle_areas_kernel(vertices, faces, out):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for f in range(start, faces.shape[0], stride):
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        ux = vertices[b, 0] - vertices[a, 0]
        uy = vertices[b, 1] - vertices[a, 1]
        uz = vertices[b, 2] - vertices[a, 2]
        vx = vertices[c, 0] - vertices[a, 0]
        vy = vertices[c, 1] - vertices[a, 1]
        vz = vertices[c, 2] - vertices[a, 2]
        cx = uy * vz - uz * vy
        cy = uz * vx - ux * vz
        cz = ux * vy - uy * vx
        out[f] = 0.5 * math.sqrt(cx * cx + cy * cy + cz * cz)


@_kernel("void(float64[:, ::1], float64[:, ::1], int64[:, ::1], int64[::1], float64[:, ::1], "
         "float64[:, ::1], float64[:, ::1])")
def _interpolate_on_faces_kernel(vertices, vertex_normals, faces, face_ids, bary, points, normals):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, face_ids.shape[0], stride):
        f = face_ids[i]
        for d in range(3):
            p = 0.0
            q = 0.0
            for j in range(3):
                v = faces[f, j]
                p += bary[i, j] * vertices[v, d]
                q += bary[i, j] * vertex_normals[v, d]
            points[i, d] = p
            normals[i, d] = q
        s = math.sqrt(normals[i, 0] * normals[i, 0] + normals[i, 1] * normals[i, 1] + normals[i, 2] * normals[i, 2])
        if s > 0.0:
            for d in range(3):
                normals[i, d] /= s


@_kernel("void(float64[:, ::1], float64[:, ::1], boolean, float64[::1], int64[::1])")
def _nearest_distance_kernel(queries, points, exclude_self, dist, index):
    # brute force: one query per thread, every point in turn; ascending j with a strict < keeps the smaller index on ties
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    n = points.shape[0]
    for i in range(start, queries.shape[0], stride):
        best = math.inf
        bj = -1
        for j in range(n):
            if exclude_self and j == i:
                continue
            d = 0.0
            for k in range(3):
                t = points[j, k] - queries[i, k]
                d += t * t
            if d < best:
                best = d
                bj = j
        dist[i] = math.sqrt(best)
        index[i] = bj


_update_dot_device = None  # built on first use by _device_functions, with _store_dot_device
_store_dot_device = None


# typed from the first launch's arguments (namedtuples of device arrays, which a signature string cannot spell); the
# public wrapper makes them float64/int64/bool C-contiguous, so there is one specialization
@_kernel(None)
def _multiclass_sweep_kernel(dots, movable, targets, step, lists, mesh, new, moved, worst_i):
    # one dot per thread: the CPU sweep's own per-dot source, compiled for the device (see _device_functions)
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, dots.points.shape[0], stride):
        _store_dot_device(i, _update_dot_device(i, dots, movable, targets, step, lists, mesh), new.points, new.normals,
                          new.face_ids, new.bary, moved, worst_i)


_scan_row_device = None  # built on first use by _elimination_device_functions


# typed from the first launch's arguments (the grid and the weight rule are tuples)
@_kernel(None)
def _conflict_rows_kernel(points, normals, radius, rule, grid, indptr, out_idx, out_w, write):
    # one candidate per thread: kernels.elimination._scan_row compiled for the device; the counting pass (write
    # False) puts row i's length in indptr[i + 1], the writing pass fills row i from indptr[i]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, points.shape[0], stride):
        if write:
            _scan_row_device(i, points, normals, radius, rule, grid, out_idx, out_w, indptr[i], out_idx.shape[0])
        else:
            indptr[i + 1] = _scan_row_device(i, points, normals, radius, rule, grid, out_idx, out_w, 0, 0)


_snap_device = None  # built on first use by _device_functions


@_kernel("void(float64[:, ::1], int64[::1], float64[:, ::1], int64[:, ::1], int64[::1], int64[::1], "
         "float64[:, ::1], int64[::1], float64[:, ::1])")
def _snap_points_kernel(points, face_ids, vertices, faces, vf_indptr, vf_indices, snapped, face, bary):
    # one point per thread: kernels.snap.snap_xyz compiled for the device
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, points.shape[0], stride):
        x, y, z, f, u, v, w = _snap_device(points[i, 0], points[i, 1], points[i, 2], face_ids[i], vertices, faces,
                                           vf_indptr, vf_indices)
        snapped[i, 0] = x
        snapped[i, 1] = y
        snapped[i, 2] = z
        face[i] = f
        bary[i, 0] = u
        bary[i, 1] = v
        bary[i, 2] = w


_coverage_device = None  # built on first use by _bake_device_functions, with _extent_device, _profile_area_device
_extent_device = None
_profile_area_device = None


@_kernel("void(float32[:, :, ::1], float64[:, ::1], float64[:, ::1], float64[::1], float64[::1], float64[::1], "
         "float64[:, ::1])")
def _bake_dots_kernel(log_t, xy, metric, radius_mm, halo_mm, opacity, trans):
    # one dot per thread: kernels.bake._splat_rows line for line over all the texture's rows (row_lo = 0, row_hi = h),
    # its per-texel functions compiled for the device (see _bake_device_functions), its += an atomic addition
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    h, w = log_t.shape[0], log_t.shape[1]
    for i in range(start, xy.shape[0], stride):
        x = xy[i, 0]
        y = xy[i, 1]
        g = metric[i]
        radius = radius_mm[i]
        halo = halo_mm[i]
        reach = radius + 3.0 * halo
        ex, ey = _extent_device(g, reach)
        x0 = max(int(math.floor(x - ex)), 0)
        x1 = min(int(math.ceil(x + ex)), w - 1)
        y0 = int(math.floor(y - ey))
        y1 = int(math.ceil(y + ey))
        det = g[0] * g[2] - g[1] * g[1]
        if det <= 0.0 or x1 < x0:
            continue
        texel_mm2 = math.sqrt(det)
        # pass 1 over the whole footprint: the dot's normalisation
        total = 0.0
        for iy in range(max(y0, 0), min(y1, h - 1) + 1):
            dy = iy + 0.5 - y
            for ix in range(x0, x1 + 1):
                dx = ix + 0.5 - x
                q = g[0] * dx * dx + 2.0 * g[1] * dx * dy + g[2] * dy * dy
                total += _coverage_device(math.sqrt(q), radius, halo)
        if total <= 0.0:
            continue
        scale = _profile_area_device(radius, halo) / (total * texel_mm2)
        for iy in range(max(y0, 0), min(y1 + 1, h)):
            dy = iy + 0.5 - y
            for ix in range(x0, x1 + 1):
                dx = ix + 0.5 - x
                q = g[0] * dx * dx + 2.0 * g[1] * dx * dy + g[2] * dy * dy
                a = _coverage_device(math.sqrt(q), radius, halo) * scale
                if a <= 0.0:
                    continue
                a = min(a, 1.0) * opacity[i]
                for c in range(3):
                    cuda.atomic.add(log_t, (iy, ix, c), math.log(max(1.0 - a * (1.0 - trans[i, c]), 1e-6)))


def _on_device(fn, **callees):
    """The Python source of the numba function ``fn`` compiled as a CUDA device function, with the numba functions it
    calls (by global name) replaced by their device versions: one source for both targets, no copy to drift."""
    import types

    py = fn.py_func
    # only the globals the source names: numba's simulator scans a device function's globals on every call it makes
    # (to swap in its fake cuda module), and a whole module's globals made the simulated placement several times slower
    scope = {k: py.__globals__[k] for k in py.__code__.co_names if k in py.__globals__}
    scope["__builtins__"] = py.__globals__["__builtins__"]
    scope.update(callees)
    return cuda.jit(device=True)(types.FunctionType(py.__code__, scope, py.__name__, py.__defaults__, py.__closure__))


def _device_functions():
    """Build the sweep's device functions once (they need numba.cuda, so not at import)."""
    if _update_dot_device is None:
        from .multiclass import store_dot, update_dot
        from .snap import _closest_on_face, closest_xyz, snap_xyz

        closest = _on_device(closest_xyz)
        on_face = _on_device(_closest_on_face, closest_xyz=closest)
        snap = _on_device(snap_xyz, _closest_on_face=on_face)
        globals()["_snap_device"] = snap
        globals()["_store_dot_device"] = _on_device(store_dot)
        globals()["_update_dot_device"] = _on_device(update_dot, snap_xyz=snap)


def _elimination_device_functions():
    """Build the conflict graph's device function once: the CPU's row scan with its grid walk, pair weight and skin
    distance."""
    if _scan_row_device is None:
        from .elimination import _pair_weight, _scan_row, skin_distance

        weight = _on_device(_pair_weight, skin_distance=_on_device(skin_distance))
        globals()["_scan_row_device"] = _on_device(_scan_row, _pair_weight=weight)


def _bake_device_functions():
    """Build the bake's device functions once: the CPU bake's coverage profile, footprint and profile area."""
    if _coverage_device is None:
        from .bake import _coverage, _extent, profile_area_mm2

        globals()["_profile_area_device"] = _on_device(profile_area_mm2)
        globals()["_extent_device"] = _on_device(_extent)
        globals()["_coverage_device"] = _on_device(_coverage)


# ---------------------------------------------------------------------------------------------------- host launchers

def _launch(kernel, n, *args):
    """Launch ``kernel`` over ``n`` >= 1 items: one thread per item up to MAX_BLOCKS blocks, grid-stride beyond."""
    threads = THREADS_PER_BLOCK
    blocks = max(1, min(MAX_BLOCKS, (n + threads - 1) // threads))
    kernel[blocks, threads](*args)


def _triangle_areas(vertices, faces):
    m = faces.shape[0]
    if m == 0:
        return np.empty(0)
    d_out = cuda.device_array(m, dtype=np.float64)
    _launch(_compiled(_triangle_areas_kernel), m, cuda.to_device(vertices), cuda.to_device(faces), d_out)
    return d_out.copy_to_host()


def _interpolate_on_faces(vertices, vertex_normals, faces, face_ids, bary):
    k = face_ids.shape[0]
    if k == 0:
        return np.empty((0, 3)), np.empty((0, 3))
    d_points = cuda.device_array((k, 3), dtype=np.float64)
    d_normals = cuda.device_array((k, 3), dtype=np.float64)
    _launch(_compiled(_interpolate_on_faces_kernel), k, cuda.to_device(vertices), cuda.to_device(vertex_normals),
            cuda.to_device(faces), cuda.to_device(face_ids), cuda.to_device(bary), d_points, d_normals)
    return d_points.copy_to_host(), d_normals.copy_to_host()


def _nearest_distance(queries, points, exclude_self):
    q = queries.shape[0]
    if q == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    d_dist = cuda.device_array(q, dtype=np.float64)
    d_index = cuda.device_array(q, dtype=np.int64)
    _launch(_compiled(_nearest_distance_kernel), q, cuda.to_device(queries), cuda.to_device(points),
            exclude_self, d_dist, d_index)
    return d_dist.copy_to_host(), d_index.copy_to_host()


def _multiclass_sweep(dots, movable, targets, step, lists, mesh, worst_rows=None):
    from .multiclass import DotState, Mesh, SweepStep, Targets

    n = dots.points.shape[0]
    if n == 0:
        return dots.points.copy(), dots.normals.copy(), dots.face_ids.copy(), dots.bary.copy(), 0.0, 0
    _device_functions()
    d_new = DotState(*(cuda.to_device(a) for a in dots))  # dots that do not move keep their row
    d_moved = cuda.to_device(np.zeros(n, dtype=np.int64))
    d_worst = cuda.to_device(np.zeros(n))
    args = (DotState(*(cuda.to_device(a) for a in dots)), cuda.to_device(movable),
            Targets(*(cuda.to_device(a) for a in targets)), SweepStep(*(float(x) for x in step)),
            tuple(cuda.to_device(a) for a in lists), Mesh(*(cuda.to_device(a) for a in mesh)))
    _launch(_compiled(_multiclass_sweep_kernel), n, *args, d_new, d_moved, d_worst)
    new = [d.copy_to_host() for d in d_new]
    worst = d_worst.copy_to_host()
    if worst_rows is not None:
        worst_rows[:] = worst
    return new[0], new[1], new[2], new[3], float(worst.max()), int(d_moved.copy_to_host().sum())


def _conflict_graph(points, normals, radius, rule):
    from .elimination import conflict_grid

    n = points.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0)
    _elimination_device_functions()
    grid = conflict_grid(points, radius)  # the CPU's grid, built on the host
    args = (cuda.to_device(points), cuda.to_device(normals), cuda.to_device(radius), rule,
            tuple(cuda.to_device(a) for a in grid))
    kernel = _compiled(_conflict_rows_kernel)
    d_counts = cuda.to_device(np.zeros(n + 1, dtype=np.int64))
    _launch(kernel, n, *args, d_counts, cuda.device_array(1, dtype=np.int64), cuda.device_array(1), False)
    indptr = np.cumsum(d_counts.copy_to_host())
    nnz = int(indptr[n])
    d_idx = cuda.device_array(max(nnz, 1), dtype=np.int64)  # (never a zero-size device array)
    d_w = cuda.device_array(max(nnz, 1))
    _launch(kernel, n, *args, cuda.to_device(indptr), d_idx, d_w, True)
    return indptr, d_idx.copy_to_host()[:nnz], d_w.copy_to_host()[:nnz]


def _snap_points(points, face_ids, vertices, faces, vf_indptr, vf_indices):
    k = points.shape[0]
    if k == 0:
        return np.empty((0, 3)), np.empty(0, dtype=np.int64), np.empty((0, 3))
    _device_functions()
    d_snapped = cuda.device_array((k, 3), dtype=np.float64)
    d_face = cuda.device_array(k, dtype=np.int64)
    d_bary = cuda.device_array((k, 3), dtype=np.float64)
    _launch(_compiled(_snap_points_kernel), k, cuda.to_device(points), cuda.to_device(face_ids),
            cuda.to_device(vertices), cuda.to_device(faces), cuda.to_device(vf_indptr), cuda.to_device(vf_indices),
            d_snapped, d_face, d_bary)
    return d_snapped.copy_to_host(), d_face.copy_to_host(), d_bary.copy_to_host()


def _bake_dots(log_t, xy, metric, radius_mm, halo_mm, opacity, trans):
    """Add the dots into ``log_t`` (float32 C-contiguous, updated in place from the device's result)."""
    n = xy.shape[0]
    if n == 0 or log_t.size == 0:
        return log_t
    _bake_device_functions()
    d_log_t = cuda.to_device(log_t)
    _launch(_compiled(_bake_dots_kernel), n, d_log_t, cuda.to_device(xy), cuda.to_device(metric),
            cuda.to_device(radius_mm), cuda.to_device(halo_mm), cuda.to_device(opacity), cuda.to_device(trans))
    d_log_t.copy_to_host(log_t)
    return log_t


# ---------------------------------------------------------------------------------------------------- public wrappers

def simulated():
    """Whether ``numba.cuda`` is numba's simulator (``NUMBA_ENABLE_CUDASIM=1`` when it was first imported)."""
    return cuda is not None and cuda.jit.__module__.startswith("numba.cuda.simulator")


def gpu_present():
    """Whether a real CUDA GPU is there to run the twins: ``numba.cuda.is_available()``, the simulator not counted
    (it runs every thread in Python, thousands of times slower than the CPU kernels)."""
    return cuda is not None and not simulated() and cuda.is_available()


def require_device():
    """Raise ``RuntimeError`` naming the fix unless a CUDA GPU or numba's simulator is there to run the twins."""
    if cuda is None:
        raise RuntimeError(f"{_NO_GPU} (numba.cuda cannot be imported: {_CUDA_IMPORT_ERROR})".replace("\n", " "))
    if not cuda.is_available():  # always True on the simulator
        raise RuntimeError(_NO_GPU)


def _f64(a):
    return np.ascontiguousarray(a, dtype=np.float64)


def _i64(a):
    return np.ascontiguousarray(a, dtype=np.int64)


def triangle_areas_cuda(vertices, faces):
    """Area of every triangle, on the GPU; twin of :func:`scalp3d.kernels.triangle_areas`.

    Parameters
    ----------
    vertices : (n,3) float array
    faces : (m,3) int array

    Returns
    -------
    areas : (m,) float64, in the square of the vertices' unit

    Raises
    ------
    RuntimeError
        No CUDA GPU and the simulator is off.

    Examples
    --------
    >>> triangle_areas_cuda([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])  # doctest: +SKIP
    array([0.5])
    """
    require_device()
    return _triangle_areas(_f64(vertices), _i64(faces))


def interpolate_on_faces_cuda(vertices, vertex_normals, faces, face_ids, bary):
    """Points and unit normals at barycentric coordinates on faces, on the GPU; twin of
    :func:`scalp3d.kernels.interpolate_on_faces`.

    Parameters
    ----------
    vertices, vertex_normals : (n,3) float arrays
    faces : (m,3) int array
    face_ids : (k,) int array
    bary : (k,3) float array, rows sum to 1

    Returns
    -------
    points : (k,3) float64
    normals : (k,3) float64, unit length (left at zero where the interpolated normal is zero)

    Raises
    ------
    RuntimeError
        No CUDA GPU and the simulator is off.
    """
    require_device()
    return _interpolate_on_faces(_f64(vertices), _f64(vertex_normals), _i64(faces), _i64(face_ids), _f64(bary))


def nearest_distance_cuda(queries, points, cell, exclude_self):
    """Euclidean distance from every query to its nearest point, on the GPU; twin of
    :func:`scalp3d.kernels.nearest_distance`.

    Brute force (every point for every query), so ``cell`` is accepted for the matching signature and ignored.

    Parameters
    ----------
    queries : (q,3) float array
    points : (n,3) float array, n >= 1 (n >= 2 with ``exclude_self``)
    cell : float, unused
    exclude_self : bool, queries are the points themselves: skip index i for query i

    Returns
    -------
    dist : (q,) float64
    index : (q,) int64, index into ``points``; ties go to the smaller index

    Raises
    ------
    RuntimeError
        No CUDA GPU and the simulator is off.
    """
    require_device()
    return _nearest_distance(_f64(queries), _f64(points), bool(exclude_self))


def multiclass_sweep_cuda(dots, movable, targets, step, lists, mesh, active=None, worst_rows=None):
    """One Jacobi sweep of the joint multi-class relaxation over neighbour lists, on the GPU (one dot per thread);
    twin of :func:`scalp3d.kernels.multiclass.multiclass_sweep`, from the same per-dot source
    (:func:`scalp3d.kernels.multiclass.update_dot` and the mesh snapping it calls, compiled as device functions).

    Parameters
    ----------
    As :func:`scalp3d.kernels.multiclass.multiclass_sweep`: the dots (a ``DotState``: points, normals (n,3),
    face_ids (n,), bary (n,3)), movable (n,) bool, the pair targets (``Targets``: cls (n,), radius (n,),
    scale (K,K)), the step (``SweepStep``: fold_cos, omega, max_step), the neighbour lists (indptr, indices) from
    :func:`scalp3d.kernels.multiclass.pair_lists`, and the mesh (``Mesh``: vertices, vertex_normals, faces, its
    vertex -> faces CSR, face_ok (F,) bool); ``active`` is taken and every row computed (the rows it leaves out are
    ones the sweep leaves as they are: the same result), ``worst_rows`` filled.

    Returns
    -------
    new points, normals, face_ids, bary; worst : float, the largest relative violation; moved : int

    Raises
    ------
    RuntimeError
        No CUDA GPU and the simulator is off.
    """
    from .multiclass import DotState, Mesh, Targets

    require_device()
    points, normals, face_ids, bary = dots
    cls, radius, scale = targets
    vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok = mesh
    return _multiclass_sweep(DotState(_f64(points), _f64(normals), _i64(face_ids), _f64(bary)),
                             np.ascontiguousarray(movable, dtype=np.bool_),
                             Targets(_i64(cls), _f64(radius), _f64(scale)), step, (_i64(lists[0]), _i64(lists[1])),
                             Mesh(_f64(vertices), _f64(vertex_normals), _i64(faces), _i64(vf_indptr), _i64(vf_indices),
                                  np.ascontiguousarray(face_ok, dtype=np.bool_)), worst_rows)


def conflict_graph_cuda(points, normals, radius, alpha, rmin_factor, fold_cos):
    """The weighted sample elimination's conflicting pairs and weights as CSR rows, on the GPU (one candidate per
    thread); twin of :func:`scalp3d.kernels.elimination.conflict_graph`, through its own row scan compiled as a device
    function, over the same dense grid (built on the host). The removal that follows
    (:func:`scalp3d.kernels.elimination.eliminate`, a heap popped one point at a time) stays on the CPU.

    Parameters
    ----------
    points, normals : (n,3) float arrays, mm and unit normals
    radius : (n,) float array, each point's radius (mm)
    alpha, rmin_factor, fold_cos : floats, the conflict weight's exponent, its r_min as a fraction of r_ij, and the
        fold (pairs with n_i . n_j below it never conflict)

    Returns
    -------
    indptr : (n+1,) int64; indices : (nnz,) int64, rows in the CPU's grid order; weights : (nnz,) float64, the CPU's
    within :data:`KERNEL_RTOL`

    Raises
    ------
    RuntimeError
        No CUDA GPU and the simulator is off.
    """
    require_device()
    return _conflict_graph(_f64(points), _f64(normals), _f64(radius), (float(alpha), float(rmin_factor),
                                                                       float(fold_cos)))


def snap_points_cuda(points, face_ids, vertices, faces, vf_indptr, vf_indices):
    """Points put back onto the mesh, on the GPU (one point per thread, walking from its face); twin of
    :func:`scalp3d.kernels.snap.snap_points`, through its own :func:`scalp3d.kernels.snap.snap_xyz` compiled as a
    device function.

    Parameters
    ----------
    points : (k,3) float array, mm
    face_ids : (k,) int array, the face each walk starts from
    vertices : (V,3) float array; faces : (F,3) int array
    vf_indptr, vf_indices : int arrays, the vertex -> faces CSR (:func:`scalp3d.kernels.snap.vertex_faces`)

    Returns
    -------
    snapped : (k,3) float64; face : (k,) int64; bary : (k,3) float64 (the CPU's within :data:`KERNEL_RTOL`)

    Raises
    ------
    RuntimeError
        No CUDA GPU and the simulator is off.
    """
    require_device()
    return _snap_points(_f64(points), _i64(face_ids), _f64(vertices), _i64(faces), _i64(vf_indptr),
                        _i64(vf_indices))


def bake_dots_cuda(log_t, xy, metric, radius_mm, halo_mm, opacity, trans):
    """Composite soft pigment discs into a log-transmittance texture, on the GPU (one dot per thread, float32 atomic
    additions into the texels); twin of :func:`scalp3d.kernels.bake.bake_dots`, without its band lists.

    Parameters
    ----------
    log_t : (H,W,3) float32 array, the running sum of the log transmittance; updated in place when it is a float32
        C-contiguous ndarray (as the CPU kernel does), else copied
    xy : (n,2) float array, texel coordinates (x along a row, y down the rows; a texel's centre is at +0.5)
    metric : (n,3) float array, the skin metric (g00, g01, g11) in mm^2 per texel^2
    radius_mm, halo_mm, opacity : (n,) float arrays
    trans : (n,3) float array, the pigment's transmittance per channel (0 black, 1 clear)

    Returns
    -------
    log_t : (H,W,3) float32, the updated log transmittance; equal to the CPU kernel's within :data:`BAKE_ATOL`
        (the additions into a texel come in a varying order)

    Raises
    ------
    RuntimeError
        No CUDA GPU and the simulator is off.
    """
    require_device()
    out = np.ascontiguousarray(log_t, dtype=np.float32)
    return _bake_dots(out, _f64(xy), _f64(metric), _f64(radius_mm), _f64(halo_mm), _f64(opacity), _f64(trans))
