"""The command line: ``scalp3d demo | plan | verify``.

Errors a user can cause print one line (``scalp3d: error: ...``) and exit non-zero; never a traceback
(set SCALP3D_DEBUG=1 to see one for an internal error).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _add_common(p):
    p.add_argument("--plan", dest="plan_path", metavar="PLAN.toml", help="the treatment plan (defaults otherwise)")
    p.add_argument("--seed", type=int, help="random seed (overrides the plan's)")
    p.add_argument("--overwrite", action="store_true", help="replace a plan already in the output folder")
    p.add_argument("--no-preview", dest="render", action="store_false", help="skip the PNG previews")


def build_parser():
    ap = argparse.ArgumentParser(prog="scalp3d", description="Plan scalp micropigmentation on a 3D head scan.")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="plan a whole treatment on the embedded sample head")
    d.add_argument("--out", default="scalp3d-demo", help="output folder (default ./scalp3d-demo)")
    _add_common(d)
    p = sub.add_parser("plan", help="plan a treatment on your scan")
    p.add_argument("scan", help="scan file: mesh (PLY OBJ STL OFF GLB) or point cloud (PLY PCD XYZ)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--units", choices=["mm", "cm", "m", "in"], help="the scan's unit (detected when omitted)")
    p.add_argument("--scale", type=float, help="millimetres per scan unit (overrides --units)")
    p.add_argument("--landmarks", dest="landmarks_path", metavar="L.json",
                   help="nasion, lpa, rpa (and optionally glabella, vertex, inion) in mm, scan axes")
    _add_common(p)
    v = sub.add_parser("verify", help="check an exported needle program against the head")
    v.add_argument("program", help="session-K.ngc")
    v.add_argument("--head", required=True, help="head.ply the program was planned on")
    v.add_argument("--plan-json", help="session-K.json (default: beside the program)")
    return ap


def _verify(args):
    import json
    from pathlib import Path

    from .errors import InputError
    from .proximity import SurfaceQuery
    from .scan import load_scan
    from .surface import make_head
    from .verify import verify_program

    prog = Path(args.program)
    js_path = Path(args.plan_json) if args.plan_json else prog.with_suffix(".json")
    js = None
    if js_path.exists():
        try:
            js = json.loads(js_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{js_path}: not valid JSON ({exc}); re-export the session") from None
    head = make_head(load_scan(args.head, units="mm"))
    rep = verify_program(prog, SurfaceQuery(head), session_json=js)
    print(rep.verdict())
    for v in rep.violations[:50]:
        print("  " + v)
    if len(rep.violations) > 50:
        print(f"  ... and {len(rep.violations) - 50} more")
    return 0 if rep.ok else 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    import warnings

    from .errors import Scalp3dError

    if not os.environ.get("SCALP3D_DEBUG"):
        warnings.simplefilter("ignore")  # library warnings mean nothing to a practitioner; errors are ours

    t0 = time.perf_counter()
    try:
        if args.command == "verify":
            return _verify(args)
        from .pipeline import run

        if args.command == "demo":
            print("scalp3d demo: planning a whole treatment on the embedded sample head (FreeSurfer fsaverage)")
            run(args.out, sample=True, plan_path=args.plan_path, seed=args.seed, overwrite=args.overwrite,
                render=args.render)
        else:
            run(args.out, scan_path=args.scan, plan_path=args.plan_path, units=args.units, scale=args.scale,
                seed=args.seed, landmarks_path=args.landmarks_path, overwrite=args.overwrite, render=args.render)
        print(f"done in {time.perf_counter() - t0:.1f} s")
        return 0
    except Scalp3dError as exc:
        print(f"scalp3d: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into a pager or head that closed early: the files are written
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("scalp3d: interrupted; no output was left half-written", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line, the traceback only on request
        if os.environ.get("SCALP3D_DEBUG"):
            raise
        print(f"scalp3d: internal error: {type(exc).__name__}: {exc} (set SCALP3D_DEBUG=1 for details; "
              "please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
