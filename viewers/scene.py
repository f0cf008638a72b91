"""Everything a picture, the 3D view and the take-home file show of one plan, made once and shared.

A :class:`Scene` holds the head, its landmarks' frame, the plan, its design field (the treated area, heat maps), the
hair-bearing fringe, the dots with their session, shade and size, the texture atlas, and the baked textures of every
state (before; healed after each session; fresh after each session), made on first use and kept. It comes from a plan
folder (:meth:`Scene.from_dir`, what ``scalp3d preview``, ``view`` and ``share`` read) or straight from the pipeline's
objects (:meth:`Scene.from_plan`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from scalp3d import config
from scalp3d.errors import InputError

from scalp3d.design import hair_bearing

from . import look


@dataclass
class DotsShown:
    """The planned dots as the pictures need them: positions, normals (n,3) mm, scan axes; session (n,) 1-based;
    shade (n,) names; dot_size_mm (n,); zone (n,) names; ids (n,)."""

    positions: np.ndarray
    normals: np.ndarray
    session: np.ndarray
    shade: np.ndarray
    dot_size_mm: np.ndarray
    zone: np.ndarray
    ids: np.ndarray

    def __len__(self):
        return len(self.positions)


@dataclass
class Scene:
    head: object
    landmarks: object
    plan: object
    field: object
    dots: DotsShown
    #: (n,) bool per vertex: hair-bearing skin outside the treated area (drawn as the plan's [preview] fringe says)
    fringe: np.ndarray
    source: str = ""
    _atlas: object = None
    _textures: dict = field(default_factory=dict)
    _stubble: object = None
    #: (k,) the face of each stubble spot
    _stubble_faces: object = None
    #: a live design's scene: the stubble drawn so far (the opening's and any a change added; :attr:`_stubble` is its
    #: part over the fringe now), the face of each, and the skin (n,) bool it covers
    _stubble_all: object = None
    _stubble_all_faces: object = None
    _stubble_domain: object = None
    _tree: object = None
    _display: object = None
    #: True: only the healed state after the last session is ever asked for (the live design window): it is baked in
    #: one pass, with no texture made for the states before it
    final_only: bool = False
    #: a final_only scene's bake (spots, log transmittance, image), which the next scene of a live design takes over
    #: (:func:`scalp3d.viewers.look.rebake`)
    _baked: tuple = None

    # ---- making one -------------------------------------------------------------------------------------------
    @classmethod
    def from_plan(cls, head, landmarks, plan, field, dots, *, geodesic=None, source="") -> "Scene":
        """From the pipeline's objects: ``dots`` complete :class:`scalp3d.types.Dots`."""
        shown = DotsShown(dots.positions, dots.normals, dots.session,
                          np.asarray(dots.shade_names, dtype=object)[dots.shade], dots.dot_size_mm,
                          np.asarray(dots.zone_names, dtype=object)[dots.zone], dots.ids)
        return cls(head, landmarks, plan, field, shown, hair_bearing(head, landmarks, plan, field, geodesic),
                   source=source)

    @classmethod
    def from_dir(cls, folder) -> "Scene":
        """From a folder ``scalp3d plan`` wrote (head.ply, landmarks.json, plan.toml, dots.csv); the design field is
        made again from them (a few seconds)."""
        from scalp3d.design import build_field, load_plan
        from scalp3d.export import read_dots_csv
        from scalp3d.fileio import plan_folder
        from scalp3d.geodesic import HeadGeodesics
        from scalp3d.landmarks import load_landmarks, resolve_landmarks
        from scalp3d.surface import load_head

        d = plan_folder(folder)
        head = load_head(d / "head.ply")
        lm = resolve_landmarks(head, load_landmarks(d / "landmarks.json"), "file")
        plan = load_plan(d / "plan.toml")
        cols = read_dots_csv(d / "dots.csv")
        need = ("x", "y", "z", "nx", "ny", "nz", "session", "shade", "dot_size_mm", "zone")
        missing = [c for c in need if c not in cols]
        if missing:
            raise InputError(f"{d / 'dots.csv'}: has no column {missing[0]}; it is not the dots.csv of a plan "
                             "(re-run scalp3d plan)")
        dots = DotsShown(np.column_stack([cols["x"], cols["y"], cols["z"]]),
                         np.column_stack([cols["nx"], cols["ny"], cols["nz"]]), cols["session"].astype(np.int64),
                         np.asarray(cols["shade"], dtype=object), np.asarray(cols["dot_size_mm"], dtype=np.float64),
                         np.asarray(cols["zone"], dtype=object), cols["id"].astype(np.int64))
        g = HeadGeodesics.of(head.vertices, head.faces)
        fld = build_field(head, lm, plan, geodesic=g)
        return cls(head, lm, plan, fld, dots, hair_bearing(head, lm, plan, fld, g), source=str(d))

    # ---- what it shows ------------------------------------------------------------------------------------------
    @property
    def frame(self):
        return self.landmarks.frame()

    @property
    def n_sessions(self) -> int:
        return len(self.plan.sessions)

    @property
    def treated(self) -> np.ndarray:
        """(n,) bool per vertex: the plan's treated area."""
        return self.field.density_per_cm2 > 0

    @property
    def atlas(self):
        if self._atlas is None:
            from .atlas import make_atlas

            # texels only where pigment can be: triangles touching the treated skin or the fringe
            f = self.head.faces
            near = self.treated | self.fringe
            self._atlas = make_atlas(self.head.vertices, f, self.head.vertex_normals, self.frame,
                                     textured=near[f].any(axis=1))
        return self._atlas

    def skin(self, session: int | None = None, fresh: bool = False) -> np.ndarray:
        """(n,3) float64 0-1 skin colour per vertex; ``fresh``: reddened around the dots of ``session``."""
        pp = self.plan.preview
        if pp.skin == "scan" and self.head.colors is None:
            raise InputError(f"{self.source or 'the plan'}: preview.skin is 'scan' but the head has no colour; choose "
                             f"one of {', '.join(config.SKIN_PRESETS)}")
        base = look.skin_colours(self.head, pp.skin)
        if pp.fringe == "scan":
            if self.head.colors is None:
                raise InputError(f"{self.source or 'the plan'}: preview.fringe is 'scan' but the head has no colour; "
                                 "use 'stubble' or 'bare'")
            base[self.fringe] = self.head.colors[self.fringe, :3] / 255.0
        if fresh and session:
            from scipy.spatial import cKDTree

            m = self.dots.session == session
            if m.any():
                d, _ = cKDTree(self.dots.positions[m]).query(self.head.vertices,
                                                             distance_upper_bound=config.FRESH_REDNESS_MM)
                w = np.clip(1.0 - d / config.FRESH_REDNESS_MM, 0.0, 1.0)[:, None]
                base = base * (1.0 - w + w * np.asarray(config.FRESH_SKIN_TINT))
        return base

    def state_name(self, session: int, fresh: bool = False) -> str:
        return "before" if session == 0 else f"{'fresh' if fresh else 'healed'} after session {session}"

    def texture(self, session: int, fresh: bool = False) -> np.ndarray:
        """The filter texture after ``session`` (0 = before): sessions before it healed, it healed or ``fresh``, each
        in its own shade; the fringe's stubble in every state. (H,W,3) uint8, kept once made. The healed states are
        baked together, each adding its session's dots to the one before."""
        key = (int(session), bool(fresh) and session > 0)
        if key not in self._textures:
            if self.final_only and key == (self.n_sessions, False):
                self._bake_final()
            elif not key[1]:
                self._bake_healed()
            else:
                d = self.dots
                older, this = d.session < session, d.session == session
                self._textures[key] = look.bake(self.atlas, look.Spots.join(
                    [self.stubble(), self._spots(older), self._spots(this, fresh=True)]))
        return self._textures[key]

    def _spots(self, mask, fresh=False):
        if not mask.any():
            return None
        d, pp = self.dots, self.plan.preview
        return look.dot_spots(d.positions[mask], d.normals[mask], d.dot_size_mm[mask], d.shade[mask], pp.pigment,
                              halo_mm=pp.halo_mm, fresh=fresh)

    def _bake_healed(self):
        log_t = np.zeros((self.atlas.height, self.atlas.width, 3), dtype=np.float32)
        self._textures[(0, False)] = look.bake(self.atlas, look.Spots.join([self.stubble()]), log_t)
        for k in range(1, self.n_sessions + 1):
            self._textures[(k, False)] = look.bake(self.atlas, look.Spots.join([self._spots(self.dots.session == k)]),
                                                   log_t)

    def _bake_final(self):
        """The healed state after the last session alone: the stubble and every session's dots in one bake, in the
        order :meth:`_bake_healed` adds them (each texel sums the same terms in the same order: the same texture)."""
        parts = [self.stubble()] + [self._spots(self.dots.session == k) for k in range(1, self.n_sessions + 1)]
        spots = look.Spots.join(parts)
        if self._baked is not None:  # the scene before a change: bake again only where spots came or went
            before, log_t, image = self._baked
            image = look.rebake(self.atlas, before, spots, log_t, image)
        else:
            log_t = np.zeros((self.atlas.height, self.atlas.width, 3), dtype=np.float32)
            image = look.bake(self.atlas, spots, log_t)
        self._baked = (spots, log_t, image)
        self._textures[(self.n_sessions, False)] = image

    def take_bake(self):
        """This final_only scene's bake, handed over to the next scene of a live design (and forgotten here: the
        arrays are updated in place from then on)."""
        baked, self._baked = self._baked, None
        self._textures.clear()
        return baked

    def stubble(self):
        """Spots of shaved stubble over the fringe (None unless the plan's fringe is 'stubble'), the same tone as the
        finished treatment: at the plan's core density, evenly spread (scalp3d's own placement, one session, seeded by
        the plan's seed), each spot taking a session's shade in the plan's session shares, at the needle's size."""
        if self.plan.preview.fringe != "stubble" or not self.fringe.any():
            return None
        if self._stubble is None:
            self._stubble, self._stubble_faces = self.place_stubble(self.fringe)
        return self._stubble

    def vertex_tree(self):
        """A cKDTree of the head's vertices, made once (a live design's scenes share it)."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.head.vertices)
        return self._tree

    def place_stubble(self, cover, held=None):
        """Stubble spots over the fringe's skin ``cover`` ((n,) bool: all of :attr:`fringe`, or the part a live change
        added to it or placed dots beside) and the face of each, (None, None) when it holds no whole face. ``held``
        (k,3): stubble already drawn beside it, which the new spots interleave with (held fixed, its skin at the core
        density). The plan's seed draws the placement and the shades."""
        from scipy.spatial import cKDTree

        from scalp3d.placement import place_dots, spacing_for_density

        seed = self.plan.seed
        core = self.plan.density.core_per_cm2
        v, f = self.head.vertices, self.head.faces
        dens = np.where(cover, core, 0.0)
        if not (dens[f] > 0).all(axis=1).any():
            return None, None
        # the stubble interleaves with the dots of the bald treated skin along the fringe's edge: those within a
        # few spacings of it are held fixed, their skin at its own density, so that no bare seam runs between the
        # two (placed apart, each kept clear of its own edge, they left a light line 1-1.5 mm wide along a crown's
        # edge, which the patient's own shaved hair will not show). Dots on the fringe itself (a scar's feathered
        # margin among the hair) are not held: the hair is there whatever dots are added among it
        reach = config.STUBBLE_SEAM_SPACINGS * spacing_for_density(core)
        amid = held is not None and len(held) > 0
        # (amid held stubble the density reaches two spacings past the spots held, so that none held sits on the
        # edge of the skin the new ones are counted over: there they were counted without their area, and the new
        # spots came 10 % too few)
        wide_mm = reach + 2.0 * spacing_for_density(core) if amid else reach
        to_cover = cKDTree(v[cover])
        d_v = to_cover.query(v, distance_upper_bound=wide_mm)[0]
        bald = self.treated & ~self.fringe
        dens = np.where(bald & (d_v < reach), self.field.density_per_cm2, dens)
        rows = np.flatnonzero(to_cover.query(self.dots.positions, distance_upper_bound=reach)[0] < reach)
        near = rows[bald[self.vertex_tree().query(self.dots.positions[rows])[1]]]
        fixed = [self.dots.positions[near]]
        if amid:
            # and the stubble beside it, its skin in the density too (new spots go in its holes only); every held
            # spot and dot counts as one at the core spacing, so that the new spots come as close to a sparse
            # hairline's dots as to the stubble (at their own wider spacing, a gap opened around them)
            dens = np.where((self.fringe & ~cover | bald) & (d_v < wide_mm), core, dens)
            fixed.append(held[to_cover.query(held, distance_upper_bound=reach)[0] < reach])
        fixed = np.vstack(fixed)
        # (among held stubble, the new spots fill its holes at the union's spacing: as a session of their own, as
        # place_dots takes a few new dots among many fixed ones, they were spread at their own, far wider spacing)
        p = place_dots(v, f, density_per_cm2=dens, sessions=1, seed=seed + 1, vertex_normals=self.head.vertex_normals,
                       session_mode="subsets", fixed=fixed if len(fixed) else None,
                       candidates_per_dot=config.CANDIDATES_PER_DOT if len(fixed) else None,
                       fixed_session=np.zeros(len(fixed), np.int64) if amid else None)
        p = p.subset(cover[f[p.face_ids]].any(axis=1))  # none on skin wholly treated: the dots fill it
        n = len(p)
        shares = np.diff(np.concatenate([[0.0], self.plan.sessions.fractions]))
        k = np.minimum(np.searchsorted(np.cumsum(shares), (np.arange(n) + 0.5) / max(n, 1)), len(shares) - 1)
        shade = np.asarray(self.plan.sessions.shades, dtype=object)[np.random.default_rng(seed + 2).permutation(k)]
        size = config.NEEDLE_DIAMETER_MM[self.plan.needle.name]
        return (look.dot_spots(p.positions, p.normals, np.full(n, size), shade, self.plan.preview.pigment,
                               halo_mm=self.plan.preview.halo_mm), p.face_ids)

    def display_mesh(self) -> "DisplayMesh":
        """The head as drawn: the atlas's split mesh cut cleanly below the head (made once)."""
        if self._display is None:
            smooth = display_normals(self.head)
            self._display = clean_cut(replace(self.atlas, normals=smooth[self.atlas.vertex_of]), self.head)
        return self._display


def display_normals(head) -> np.ndarray:
    """(n,3) unit normals for drawing: the head's, averaged over their 1-ring ``config.DISPLAY_NORMAL_PASSES`` times,
    so that a scan made of flat facets (the real test head's are about 10 mm) is shaded smoothly. Drawing only: the
    plan's normals are the head's own."""
    import scipy.sparse as sp

    from scalp3d.kernels.geometry import vertex_neighbours

    n = len(head.vertices)
    ip, ix = vertex_neighbours(n, head.faces)
    rows = np.repeat(np.arange(n), np.diff(ip))
    A = sp.csr_matrix((np.ones(len(ix)), (rows, ix)), shape=(n, n)) + sp.identity(n, format="csr")
    nrm = np.asarray(head.vertex_normals, dtype=np.float64)
    for _ in range(config.DISPLAY_NORMAL_PASSES):
        nrm = A @ nrm
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return nrm


@dataclass
class DisplayMesh:
    """A mesh to draw: vertices, normals (k,3) mm; faces (m,3); uv (k,2) float32 (OpenGL, v = 0 at the bottom);
    each vertex is ``(1 - t) * head[a] + t * head[b]`` of the head's vertices (a = b, t = 0 where it is one)."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    normals: np.ndarray
    a: np.ndarray
    b: np.ndarray
    t: np.ndarray

    def per_vertex(self, values):
        """Per-head-vertex ``values`` (n,...) carried to this mesh's vertices (k,...)."""
        values = np.asarray(values)
        t = self.t.reshape((-1,) + (1,) * (values.ndim - 1))
        return values[self.a] * (1.0 - t) + values[self.b] * t


def clean_cut(atlas, head) -> DisplayMesh:
    """The atlas mesh cut by a plane fitted to the head's lowest open edge (the neck cut) and moved up past its ragged
    triangles by ``config.DISPLAY_CUT_ABOVE_MM``; a head with no such edge is drawn whole."""
    f = head.faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    border = np.unique(uniq[counts == 1])
    up = atlas.rotation[2]
    if len(border) >= 3:
        pts = head.vertices[border]
        c = pts.mean(axis=0)
        _, _, vt = np.linalg.svd(pts - c, full_matrices=False)
        n = vt[2] if vt[2] @ up > 0 else -vt[2]
        if n @ up < 0.5:  # not a neck cut (a scan open elsewhere): cut level with the frame
            n = up
        point = c + (float(((pts - c) @ n).max()) + config.DISPLAY_CUT_ABOVE_MM) * n
    else:
        n, point = up, atlas.vertices.min(axis=0) - 1.0  # nothing to cut
    return _clip(atlas, point, n)


def _clip(atlas, point, normal) -> DisplayMesh:
    """Keep the part of the atlas mesh above a plane, triangles cut exactly (new vertices interpolated)."""
    v, f = atlas.vertices, atlas.faces
    s = (v - point) @ normal
    above = s[f] >= 0
    keep = above.all(axis=1)
    new_faces = [f[keep]]
    cuts = {}  # (i, j) -> new index; t along i -> j

    def cut(i, j):
        key = (min(i, j), max(i, j))
        if key not in cuts:
            cuts[key] = len(v) + len(cuts)
        return cuts[key]

    for tri in f[~keep & above.any(axis=1)]:
        order = list(tri)
        up = [i for i in order if s[i] >= 0]
        if len(up) == 1:
            k = order.index(up[0])
            a, b, c = order[k], order[(k + 1) % 3], order[(k + 2) % 3]
            new_faces.append(np.array([[a, cut(a, b), cut(a, c)]]))
        else:
            k = order.index([i for i in order if s[i] < 0][0])
            lo, a1, a2 = order[k], order[(k + 1) % 3], order[(k + 2) % 3]
            p1, p2 = cut(lo, a1), cut(lo, a2)
            new_faces.append(np.array([[a1, a2, p2], [a1, p2, p1]]))
    pairs = np.array(list(cuts), dtype=np.int64).reshape(-1, 2)
    t = s[pairs[:, 0]] / (s[pairs[:, 0]] - s[pairs[:, 1]]) if len(pairs) else np.zeros(0)
    i0, i1 = pairs[:, 0], pairs[:, 1]
    V = np.vstack([v, v[i0] + t[:, None] * (v[i1] - v[i0])])
    UV = np.vstack([atlas.uv, atlas.uv[i0] + t[:, None] * (atlas.uv[i1] - atlas.uv[i0])]).astype(np.float32)
    N = np.vstack([atlas.normals, atlas.normals[i0] + t[:, None] * (atlas.normals[i1] - atlas.normals[i0])])
    N /= np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
    src_a = np.concatenate([atlas.vertex_of, atlas.vertex_of[i0]])
    src_b = np.concatenate([atlas.vertex_of, atlas.vertex_of[i1]])
    T = np.concatenate([np.zeros(len(v)), t])
    if len(pairs) >= 3:  # a flat cap over the cut (a bust's base): no view looks into the hollow head
        ring = np.arange(len(v), len(V))
        c = V[ring].mean(axis=0)
        e1 = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(normal, e1)
        order = ring[np.argsort(np.arctan2((V[ring] - c) @ e2, (V[ring] - c) @ e1))]
        base = len(V)
        V = np.vstack([V, V[order], c[None]])
        UV = np.vstack([UV, np.tile(np.asarray(atlas.white_uv, dtype=np.float32), (len(order) + 1, 1))])
        N = np.vstack([N, np.tile(-np.asarray(normal), (len(order) + 1, 1))])
        src_a = np.concatenate([src_a, src_a[order], src_a[order[:1]]])
        src_b = np.concatenate([src_b, src_b[order], src_b[order[:1]]])
        T = np.concatenate([T, T[order], T[order[:1]]])
        k = len(order)
        centre = base + k
        fan = np.column_stack([np.full(k, centre), base + (np.arange(k) + 1) % k, base + np.arange(k)])
        new_faces.append(fan)
    F = np.vstack(new_faces).astype(np.int64)
    used = np.unique(F)
    remap = np.full(len(V), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return DisplayMesh(V[used], remap[F], UV[used], N[used], src_a[used], src_b[used], T[used])
