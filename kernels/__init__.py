"""scalp3d.kernels: numba kernels on plain arrays (numpy, numba, math only; no files, no meshes libraries).

CPU kernels (``njit``; parallel where it pays, as chunks of a serial ``nogil`` kernel on a few threads:
:mod:`scalp3d.kernels.chunks`) live in the topic modules; their CUDA twins live in
:mod:`scalp3d.kernels.cuda`, imported only when asked for, so ``import scalp3d`` needs no GPU.
"""
from .elimination import conflict_graph, eliminate, skin_distance
from .geometry import interpolate_on_faces, triangle_areas
from .grid import build_grid
from .nearest import nearest_distance
from .sampling import stratified_faces
from .tour import knn_lists, nearest_neighbour_tour, path_length, two_opt_or_opt

__all__ = [
    "build_grid", "conflict_graph", "eliminate", "interpolate_on_faces", "nearest_distance",
    "nearest_neighbour_tour", "path_length", "skin_distance", "stratified_faces", "triangle_areas", "knn_lists",
    "two_opt_or_opt",
]
