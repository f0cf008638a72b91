"""Time the healed look: the texture bake of 60,000 dots on a 500,000-triangle head, the contact sheet and the
take-home HTML of the sample head's full plan, and the bake's CUDA twin where there is a GPU.

    python benchmarks/render.py [--repeat 3] [--head lee|sample] [--edge-mm 0.47] [--dots 60000]

The bake's head is the real head (../shared/data/heads/lee-perry-smith.obj at 48 mm per unit) made by scalp3d's
``make_head`` with ``--edge-mm`` edges (0.47 mm: about 500k triangles; the sample head has 260k, once more refined
1.04M: ``--head sample`` takes that one). The default plan's design field on it, its landmarks estimated, gives the
density's shape; ``place_dots`` scales it to ``--dots`` dots. The atlas is the scene's (texels where pigment can
be), the bake is :func:`scalp3d.viewers.look.bake` of every dot healed (splats, band lists, the kernel, the uint8
image), also split into its steps.

The contact sheet and the share HTML are those of the sample head's full default plan (built as tests/test_pictures.py's
``full`` fixture does): the first call makes the atlas and bakes the states it needs, warm calls find them made.

Everything runs in this process; warm times are medians of ``--repeat`` runs after a warm-up (numba compiled or read
from its cache). The CUDA twin (:func:`scalp3d.kernels.cuda.bake_dots_cuda`) is timed only on a real GPU, never on
numba's simulator. Not run by CI (speed is measured here, never asserted in tests).
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEE = ROOT.parent / "shared" / "data" / "heads" / "lee-perry-smith.obj"

BAKE_GOAL_S = 3.0
SHEET_GOAL_S = 10.0
SHARE_GOAL_MB = 15.0


def timed(fn, repeat):
    """(first call's seconds, median of ``repeat`` more calls' seconds, last result)."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), out


def load_avg():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def bake_head(which, edge_mm):
    """(head, landmarks) of the bake case."""
    from scalp3d import config
    from scalp3d.landmarks import resolve_landmarks

    if which == "sample":
        from scalp3d.sample import load_sample_head

        _, head, fid = load_sample_head(config.SAMPLE_HEAD_SUBDIVISIONS + 1)
        return head, resolve_landmarks(head, fid, "fiducials"), f"sample head, Loop-subdivided " \
                                                                 f"{config.SAMPLE_HEAD_SUBDIVISIONS + 1} times"
    from scalp3d.scan import load_scan
    from scalp3d.surface import make_head

    head = make_head(load_scan(LEE, scale=48.0), edge_mm=edge_mm)
    return head, resolve_landmarks(head, None, "file"), f"Lee Perry-Smith, make_head at {edge_mm:g} mm edges"


def bake_case(a, rows):
    from scalp3d.design import build_field, dots_with_settings, load_plan
    from scalp3d.kernels.bake import bake_dots, band_lists
    from scalp3d.placement import place_dots
    from scalp3d.viewers import look
    from scalp3d.viewers.scene import Scene

    t = time.perf_counter()
    head, lm, name = bake_head(a.head, a.edge_mm)
    plan = load_plan()
    field = build_field(head, lm, plan)
    placed = place_dots(head.vertices, head.faces, count=a.dots, density_per_cm2=field.density_per_cm2,
                        sessions=plan.sessions.fractions, seed=plan.seed, vertex_normals=head.vertex_normals)
    dots = dots_with_settings(placed, head, field)
    scene = Scene.from_plan(head, lm, plan, field, dots)
    setup = time.perf_counter() - t
    print(f"bake case: {name}: {len(head.faces):,} triangles, {len(dots):,} dots (setup {setup:.0f} s: head, design, "
          "placement)")

    def atlas():
        scene._atlas = None
        return scene.atlas

    first, warm, at = timed(atlas, a.repeat)
    rows.append(("atlas (make_atlas, scene's textured faces)", first, warm, None, ""))
    d, pp = scene.dots, plan.preview
    spots = look.dot_spots(d.positions, d.normals, d.dot_size_mm, d.shade, pp.pigment, halo_mm=pp.halo_mm)
    first, warm, img = timed(lambda: look.bake(at, spots), a.repeat)
    print(f"  texture {at.width} x {at.height} texels ({at.width * at.height / 1e6:.1f} Mtexels), "
          f"texel {at.texel_mm:.3f} mm")
    rows.append((f"bake {len(dots):,} dots (look.bake, {at.width}x{at.height})", first, warm, BAKE_GOAL_S, "s"))
    # its steps
    idx, xy, metric = at.splats(spots.positions, spots.normals)
    r, h = spots.radius_mm[idx], spots.halo_mm[idx]
    args = (np.ascontiguousarray(xy), np.ascontiguousarray(metric), np.ascontiguousarray(r), np.ascontiguousarray(h),
            np.ones(len(idx)), np.ascontiguousarray(spots.trans[idx]))
    _, warm, _ = timed(lambda: at.splats(spots.positions, spots.normals), a.repeat)
    rows.append((f"  of which splats ({len(idx):,}: a dot per chart it falls in)", None, warm, None, ""))
    _, warm, bands = timed(lambda: band_lists(xy, metric, r + 3.0 * h, at.height), a.repeat)
    rows.append(("  of which band lists", None, warm, None, ""))

    def kernel():
        log_t = np.zeros((at.height, at.width, 3), dtype=np.float32)
        bake_dots(log_t, *args, *bands)
        return log_t

    _, warm, cpu = timed(kernel, a.repeat)
    rows.append((f"  of which bake_dots (CPU, {os.environ.get('NUMBA_NUM_THREADS', os.cpu_count())} threads, "
                 "zeroed texture incl.)", None, warm, None, ""))
    _, warm, _ = timed(lambda: look.to_image(cpu), a.repeat)
    rows.append(("  of which to_image", None, warm, None, ""))
    cuda_row(a, rows, at, args, cpu)


def cuda_row(a, rows, at, args, cpu):
    """The CUDA twin on the same bake, only on a real GPU."""
    label = "bake_dots_cuda (GPU, same bake, with copies)"
    try:
        import numba
        from numba import cuda
    except ImportError as exc:
        rows.append((label, None, None, None, f"numba.cuda cannot be imported ({exc}): not measured"))
        return
    if numba.config.ENABLE_CUDASIM:
        rows.append((label, None, None, None, "NUMBA_ENABLE_CUDASIM=1 (the simulator): not measured"))
        return
    if not cuda.is_available():
        rows.append((label, None, None, None, "no CUDA GPU here: not measured"))
        return
    from scalp3d.kernels.cuda import bake_dots_cuda

    def gpu():
        return bake_dots_cuda(np.zeros((at.height, at.width, 3), dtype=np.float32), *args)

    first, warm, got = timed(gpu, a.repeat)
    diff = float(np.abs(got - cpu).max())
    rows.append((f"{label} on {cuda.get_current_device().name.decode()}", first, warm, BAKE_GOAL_S,
                 f"max |GPU - CPU| {diff:.1e}"))


def full_plan_scene():
    """The sample head's full default plan, as tests/test_pictures.py's ``full`` fixture builds it."""
    from scalp3d.design import build_field, load_plan
    from scalp3d.landmarks import resolve_landmarks
    from scalp3d.pipeline import plan_dots
    from scalp3d.sample import load_sample_head
    from scalp3d.viewers.scene import Scene

    _, head, fid = load_sample_head()
    lm = resolve_landmarks(head, fid, "fiducials")
    plan = load_plan()
    field = build_field(head, lm, plan)
    dots, _ = plan_dots(head, field, plan)
    return Scene.from_plan(head, lm, plan, field, dots)


def pictures_case(a, rows):
    from scalp3d import config
    from scalp3d.viewers.pictures import Renderer, contact_sheet
    from scalp3d.viewers.share_plan import share_plan

    t = time.perf_counter()
    scene = full_plan_scene()
    print(f"sample head's full plan: {len(scene.head.faces):,} triangles, {len(scene.dots):,} dots, "
          f"{scene.n_sessions} sessions (setup {time.perf_counter() - t:.0f} s)")
    r = Renderer(scene, config.PICTURE_TILE_PX)
    try:
        first, warm, sheet = timed(lambda: contact_sheet(scene, r), a.repeat)
    finally:
        r.close()
    rows.append((f"contact sheet ({sheet.width}x{sheet.height}, six {config.PICTURE_TILE_PX[0]}px views)",
                 first, warm, SHEET_GOAL_S, "s"))
    with tempfile.TemporaryDirectory() as tmp:
        first, warm, rep = timed(lambda: share_plan(scene, Path(tmp) / "share.html"), a.repeat)
        size = (Path(tmp) / "share.html").stat().st_size
    sizes = sorted(set(tuple(s) for s in rep["texture_sizes"].values()))
    rows.append((f"share HTML ({len(rep['texture_sizes'])} states)", first, warm, None, ""))
    rows.append((f"share HTML size (textures {', '.join(f'{w}x{h}' for w, h in sizes)}; longest side "
                 f"{rep['texture_px']})", None, size / 1e6, SHARE_GOAL_MB, "MB"))
    print(f"  atlas of the full plan: {scene.atlas.width} x {scene.atlas.height} texels")


def print_table(rows):
    print(f"\n{'':<62}{'first':>9}{'warm':>9}{'goal':>8}{'ratio':>8}")
    for name, first, warm, goal, unit in rows:
        f = f"{first:>8.2f}s" if first is not None else " " * 9
        if unit == "MB":
            w = f"{warm:>7.1f}MB"
        else:
            w = f"{warm:>8.2f}s" if warm is not None else " " * 9
        g = f"{goal:>6g}{'MB' if unit == 'MB' else 's '}" if goal is not None else " " * 8
        ratio = f"{warm / goal:>8.2f}" if goal is not None and warm is not None else " " * 8
        note = unit if unit not in ("s", "MB") else ""
        print(f"{name:<62}{f}{w}{g}{ratio}  {note}".rstrip())
    print("ratio = warm / goal (under 1 meets the goal)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--head", choices=("lee", "sample"), default="lee")
    ap.add_argument("--edge-mm", type=float, default=0.47)
    ap.add_argument("--dots", type=int, default=60_000)
    a = ap.parse_args()
    print(f"cpus: {os.cpu_count()}, numba threads: {os.environ.get('NUMBA_NUM_THREADS', os.cpu_count())}; "
          f"start: {load_avg()}")
    rows = []
    bake_case(a, rows)
    pictures_case(a, rows)
    print_table(rows)
    print(f"end: {load_avg()}")


if __name__ == "__main__":
    main()
