"""Time every stage of `scalp3d plan` on the embedded sample head and on the real head (../shared/data/heads).

    python benchmarks/pipeline.py [--repeat 3] [--no-preview]

First, a cold run in a fresh process with an empty numba cache gives the one-off JIT compile cost; then, in this
process, each head is planned once to warm up and ``--repeat`` times timed; the table shows the median per stage.
Not run by CI (speed is measured here, never asserted in tests).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEE = ROOT.parent / "shared" / "data" / "heads" / "lee-perry-smith.obj"


def cold_run(args):
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scalp3d.cli", *args, "--out", Path(out) / "cold", "--no-preview"],
                       env=env, check=True, capture_output=True)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scalp3d.cli", *args, "--out", Path(out) / "warm", "--no-preview"],
                       env=env, check=True, capture_output=True)
        return cold, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-preview", dest="render", action="store_false")
    a = ap.parse_args()
    from scalp3d.pipeline import Timer, run

    cases = [("sample head (fsaverage)", dict(sample=True), ["demo"]),
             ("real head (Lee Perry-Smith, --scale 48)", dict(scan_path=LEE, scale=48.0),
              ["plan", str(LEE), "--scale", "48"])]
    print(f"numba threads: {os.environ.get('NUMBA_NUM_THREADS', os.cpu_count())}, cpus: {os.cpu_count()}")
    for name, kw, cli in cases:
        cold, warm_cache = cold_run(cli)
        print(f"\n{name}: whole command, fresh process: {cold:.1f} s with JIT compiling (empty cache), "
              f"{warm_cache:.1f} s with numba's on-disk cache")
        runs = []
        with tempfile.TemporaryDirectory() as out:
            for r in range(a.repeat + 1):
                timer = Timer()
                t = time.perf_counter()
                summary = run(Path(out) / str(r), render=a.render, log=lambda *x: None, timer=timer, **kw)
                timer.stages["total"] = time.perf_counter() - t
                if r:
                    runs.append(timer.stages)
        print(f"  {summary['dots_total']:,} dots on {summary['head']['faces']:,} triangles, "
              f"{summary['treated_area_cm2']:.0f} cm2; median of {a.repeat} warm runs:")
        for stage in runs[0]:
            print(f"  {stage:<18}{np.median([x[stage] for x in runs]):>8.2f} s")


if __name__ == "__main__":
    main()
