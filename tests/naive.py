"""Slow, obvious NumPy references for every kernel in ``scalp3d.kernels``, to test the kernels against.

Each function has the name and the arguments of its kernel and returns the same thing. They are brute force on purpose
(all pairs, full rescans, weights recomputed from scratch) so that a reader can check them by eye; never use them on
more than a few thousand elements, and never import them from the package.
"""
import math

import numpy as np

_P1 = np.int64(73856093)
_P2 = np.int64(19349663)
_P3 = np.int64(83492791)


# ------------------------------------------------------------------------------------------------------------ geometry

def triangle_areas(vertices, faces):
    """Half the length of the cross product of two edges, face by face."""
    vertices = np.asarray(vertices, dtype=np.float64)
    out = np.empty(len(faces))
    for f, (a, b, c) in enumerate(faces):
        out[f] = 0.5 * np.linalg.norm(np.cross(vertices[b] - vertices[a], vertices[c] - vertices[a]))
    return out


def interpolate_on_faces(vertices, vertex_normals, faces, face_ids, bary):
    """Barycentric blend of the three corners; normals blended then scaled to unit length (zero stays zero)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    vertex_normals = np.asarray(vertex_normals, dtype=np.float64)
    k = len(face_ids)
    points = np.zeros((k, 3))
    normals = np.zeros((k, 3))
    for i, f in enumerate(face_ids):
        for j in range(3):
            points[i] += bary[i][j] * vertices[faces[f][j]]
            normals[i] += bary[i][j] * vertex_normals[faces[f][j]]
        s = np.linalg.norm(normals[i])
        if s > 0.0:
            normals[i] /= s
    return points, normals


# ------------------------------------------------------------------------------------------------------------ sampling

def stratified_faces(cumulative, u):
    """For each stratum k, the first face whose inclusive cumulative weight exceeds t = (k + u_k) / M * total.

    When t rounds up to the total, the face where the cumulative weight reaches the total (never a zero-weight face).
    """
    cumulative = np.asarray(cumulative, dtype=np.float64)
    M = len(u)
    total = cumulative[-1]
    out = np.empty(M, dtype=np.int64)
    for k in range(M):
        t = (k + u[k]) / M * total
        above = np.nonzero(cumulative > t)[0]
        out[k] = above[0] if len(above) else np.nonzero(cumulative == total)[0][0]
    return out


# ---------------------------------------------------------------------------------------------------------------- grid

def cell_hash(ix, iy, iz, mask):
    """The grid's hash of integer cell coordinates (int64 arithmetic, wrapping)."""
    with np.errstate(over="ignore"):
        return ((np.int64(ix) * _P1) ^ (np.int64(iy) * _P2) ^ (np.int64(iz) * _P3)) & np.int64(mask)


def build_grid(points, cell):
    """Cells by floor division from the lowest corner, buckets by hash, points sorted by bucket, then by cell
    (x, y, z), then by index."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    n = len(points)
    origin = points.min(axis=0) if n else np.zeros(3)
    table = 1
    while table < 2 * n:
        table *= 2
    mask = np.int64(table - 1)
    cells = np.floor((points - origin) / cell).astype(np.int64)
    bucket = np.array([cell_hash(*c, mask) for c in cells], dtype=np.int64)
    order = np.lexsort((np.arange(n), cells[:, 2], cells[:, 1], cells[:, 0], bucket)).astype(np.int64) if n else \
        np.zeros(0, np.int64)
    start = np.zeros(table + 1, dtype=np.int64)
    start[1:] = np.cumsum(np.bincount(bucket, minlength=table))
    return origin, cells, start, order, mask


# ------------------------------------------------------------------------------------------------------------- nearest

def _squared_distances(queries, points):
    # (q, n) squared distances, summed in the kernels' order: ((dx*dx + dy*dy) + dz*dz)
    diff = points[None, :, :] - queries[:, None, :]
    sq = diff * diff
    return (sq[..., 0] + sq[..., 1]) + sq[..., 2]


def nearest_distance(queries, points, cell, exclude_self):
    """Every query against every point; ties go to the smaller index. ``cell`` is ignored (no grid)."""
    queries = np.asarray(queries, dtype=np.float64).reshape(-1, 3)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    d2 = _squared_distances(queries, points)
    if exclude_self:
        for i in range(min(len(queries), len(points))):
            d2[i, i] = np.inf
    index = np.argmin(d2, axis=1).astype(np.int64)  # argmin returns the first (smallest) index of equal minima
    dist = np.sqrt(d2[np.arange(len(queries)), index])
    return dist, index


# --------------------------------------------------------------------------------------------------------- elimination

def skin_distance(p, q, n1, n2):
    """Bowers et al. 2010: chord * (asin c1 - asin c2) / (c1 - c2), c = cosine of normal and chord; chord when flat."""
    p, q, n1, n2 = (np.asarray(x, dtype=np.float64) for x in (p, q, n1, n2))
    v = q - p
    chord = math.sqrt(float(v @ v))
    if chord == 0.0:
        return 0.0
    c1 = float(np.clip(n1 @ v / chord, -1.0, 1.0))
    c2 = float(np.clip(n2 @ v / chord, -1.0, 1.0))
    if abs(c1 - c2) < 1e-6:
        return chord
    return chord * (math.asin(c1) - math.asin(c2)) / (c1 - c2)


def pair_weight(i, j, points, normals, radius, alpha, rmin_factor, fold_cos):
    """Conflict weight of points i and j (0 when they do not conflict), by the rule in kernels/elimination.py."""
    if normals[i] @ normals[j] < fold_cos:
        return 0.0  # two sides of a fold
    r = 0.5 * (radius[i] + radius[j])
    v = points[j] - points[i]
    if v @ v >= r * r:
        return 0.0
    d = skin_distance(points[i], points[j], normals[i], normals[j])
    if d >= r:
        return 0.0
    d = max(d, r * rmin_factor)
    return (1.0 - d / r) ** alpha


def conflict_graph(points, normals, radius, alpha, rmin_factor, fold_cos):
    """Every ordered pair i != j; rows in CSR with the column indices ascending."""
    points = np.asarray(points, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    radius = np.asarray(radius, dtype=np.float64)
    n = len(points)
    indptr = [0]
    indices = []
    weights = []
    for i in range(n):
        for j in range(n):
            if j == i:
                continue
            w = pair_weight(i, j, points, normals, radius, alpha, rmin_factor, fold_cos)
            if w > 0.0:
                indices.append(j)
                weights.append(w)
        indptr.append(len(indices))
    return np.array(indptr, dtype=np.int64), np.array(indices, dtype=np.int64), np.array(weights, dtype=np.float64)


def eliminate(indptr, indices, weights, removable, target, return_weights=False):
    """Greedy elimination with every weight recomputed from scratch at every step.

    Each step sums, for every live point, the weights of its conflicts with live points, and removes the removable
    point with the largest sum (ties to the larger index), until ``max(target, fixed points)`` remain. With
    ``return_weights`` it also returns the weight each removed point had when it was removed.
    """
    n = len(indptr) - 1
    removable = np.asarray(removable, dtype=bool)
    alive = np.ones(n, dtype=bool)
    to_remove = max(0, n - max(int(target), int(n - removable.sum())))
    removed = []
    removed_weights = []
    for _ in range(to_remove):
        weight = np.zeros(n)
        for i in range(n):
            for k in range(indptr[i], indptr[i + 1]):
                if alive[indices[k]]:
                    weight[i] += weights[k]
        best = -1
        for i in range(n):
            if alive[i] and removable[i] and (best < 0 or weight[i] >= weight[best]):
                best = i  # ascending i with >=: equal weights go to the larger index
        alive[best] = False
        removed.append(best)
        removed_weights.append(weight[best])
    removed = np.array(removed, dtype=np.int64)
    if return_weights:
        return alive, removed, np.array(removed_weights)
    return alive, removed


# ---------------------------------------------------------------------------------------------------------------- tour

def nearest_neighbour_tour(points, start_index, cell):
    """From the current point, go to the nearest unvisited one (ties to the smaller index). ``cell`` is ignored."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    n = len(points)
    order = np.empty(n, dtype=np.int64)
    if n == 0:
        return order
    visited = np.zeros(n, dtype=bool)
    cur = start_index
    for step in range(n):
        order[step] = cur
        visited[cur] = True
        if step == n - 1:
            break
        d2 = _squared_distances(points[cur:cur + 1], points)[0]
        d2[visited] = np.inf
        cur = int(np.argmin(d2))
    return order


def path_length(points, order):
    """Sum of the straight legs between consecutive points of ``order``."""
    points = np.asarray(points, dtype=np.float64)
    return float(sum(np.linalg.norm(points[order[k + 1]] - points[order[k]]) for k in range(len(order) - 1)))


def multiclass_step_on_plane(p, nrm, movable, cls, radius, scale, fold_cos, omega, max_step):
    """multiclass_step (omega 1: the plain relaxation pass) on the plane z = 0 (no snapping needed): the rule, pair by pair.

    Returns (new points, largest relative violation).
    """
    out = p.copy()
    worst = 0.0
    for i in range(len(p)):
        if not movable[i]:
            continue
        disp = np.zeros(3)
        for j in range(len(p)):
            if j == i or nrm[i] @ nrm[j] < fold_cos:
                continue
            t = min(radius[i], radius[j]) * scale[cls[i], cls[j]]
            e = p[i] - p[j]
            d = np.linalg.norm(e)
            if d >= t:
                continue
            worst = max(worst, (t - d) / t)
            if d < 1e-12:
                continue
            disp += (0.5 if movable[j] else 1.0) * (t - d) / d * e
        disp = omega * (disp - (disp @ nrm[i]) * nrm[i])
        length = np.linalg.norm(disp)
        if length > max_step * radius[i]:
            disp *= max_step * radius[i] / length
        out[i] = p[i] + disp
    return out, worst
