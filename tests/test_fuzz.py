"""Fuzzing (issue 11, point 10): seeded generators of broken and random inputs, run in CI as ordinary tests.

Every case ends in success or in ONE line ``scalp3d: error: ...`` with exit 2 (bad input) or 3 (a refused needle move
or plan). A traceback, a ``scalp3d: internal error`` (exit 1), a hang past the per-case time limit, or a small file
that runs out of memory is a failure: fix the code that raised. Failing inputs are kept under pytest's tmp folder and
named in the failure message.

* scan files of every format the readers take (PLY ascii / binary LE / BE, mesh and cloud; OBJ; STL ascii and binary;
  OFF and COFF; GLB; glTF; PCD ascii, binary, binary_compressed; XYZ; PTS), made from a head-sized ellipsoid and
  broken: NaN/inf/huge/tiny coordinates, flat, a line, few points, bad face indices; then random bytes, truncated,
  flipped bytes, headers claiming huge or negative counts, garbage tails, doubled files, CRLF, a BOM, the wrong
  extension. They run in a worker process under RLIMIT_AS with a per-case alarm (SIGALRM's default action ends the
  worker on a hang; the case is then reported and the worker restarted after it);
* plans drawn from the plan schema (valid, extreme but valid, wrong types, out of range, unknown keys, broken TOML,
  mask PLYs and polyline files good and bad); the valid ones also build their design field on the sample head;
* machine profiles (valid ones are then used by ``scalp3d export``), landmark files (valid ones are resolved on the
  sample head), session JSON for ``scalp3d export`` (with --resume-from, chunks, a damaged head.ply), command lines;
* a handful of random valid plans run the whole pipeline on the sample head, and the written dots.csv is checked
  independently against the spacing floor (scipy cKDTree).

Seeded: the same cases every run; ``SCALP3D_FUZZ_SEED`` picks another set and ``SCALP3D_FUZZ_FACTOR`` multiplies the
counts, for a longer local run. The number of cases a CI run tries is :data:`FUZZ_CASES`, printed by each test.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

SEED = int(os.environ.get("SCALP3D_FUZZ_SEED", "20240611"))
FACTOR = float(os.environ.get("SCALP3D_FUZZ_FACTOR", "1"))

N_SCAN = int(600 * FACTOR)              # scan files, read in a worker under RLIMIT_AS
N_PLAN = int(400 * FACTOR)              # plan files through load_plan; the CLI for the refused ones
N_FIELD = int(30 * FACTOR)              # of the valid plans: the design field built on the sample head
N_MACHINE = int(200 * FACTOR)           # machine profiles
N_MACHINE_EXPORT = int(12 * FACTOR)     # of the valid profiles: `scalp3d export` with them
N_LANDMARK = int(200 * FACTOR)          # landmark files; the valid ones resolved on the sample head
N_SESSION = int(80 * FACTOR)            # session JSON (and head.ply) for `scalp3d export`
N_DOTS_CSV = int(100 * FACTOR)          # dots CSV files (`scalp3d sample --fixed`)
N_ARGV = int(300 * FACTOR)              # command lines through the parser
N_PIPELINE = 5                          # random valid plans through the whole pipeline + the spacing floor check
FUZZ_CASES = (N_SCAN + N_PLAN + N_FIELD + N_MACHINE + N_MACHINE_EXPORT + N_LANDMARK + N_SESSION + N_DOTS_CSV
              + N_ARGV + N_PIPELINE)

#: a case that runs longer than this is a hang (small files: every reader answers in well under a second)
CASE_TIME_LIMIT_S = int(os.environ.get("SCALP3D_FUZZ_CASE_SECONDS", "30"))
#: the scan worker may allocate this much beyond what it holds after its imports
WORKER_MEMORY_HEADROOM_BYTES = 2 << 30

HERE = Path(__file__).resolve()


def banner(what, n):
    print(f"\nfuzz: {n} {what} cases (seed {SEED}); {FUZZ_CASES} cases in all per run")


# ---------------------------------------------------------------------------------------------------------------------
# the contract
# ---------------------------------------------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the alarm of :func:`time_limit` (a BaseException, so no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds=CASE_TIME_LIMIT_S):
    def handler(signum, frame):
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def contract_broken(rc, err):
    """None when (exit code, stderr) keep the contract, else what is wrong."""
    lines = (err or "").strip().splitlines()
    if rc == 0:
        return None
    if rc == "hang":
        return f"no answer within {CASE_TIME_LIMIT_S} s"
    if rc not in (2, 3) or len(lines) != 1 or not lines[0].startswith("scalp3d: error: "):
        return f"exit {rc}: " + " | ".join(lines[-6:])[:1500]
    if "memory available" in lines[0]:
        return "a small file ran out of memory: its header's counts were not checked against its size: " + lines[0]
    return None


def as_cli(fn, *args, **kwargs):
    """Call ``fn`` the way ``scalp3d.cli.main`` handles errors: (exit code, stderr text, return value)."""
    from scalp3d.errors import Scalp3dError

    try:
        with time_limit():
            value = fn(*args, **kwargs)
        return 0, "", value
    except Scalp3dError as exc:
        return exc.exit_code, f"scalp3d: error: {exc}\n", None
    except CaseTimeout:
        return "hang", "", None
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzzing looks for
        return 1, f"scalp3d: internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}", None


def run_cli(capsys, argv):
    """``scalp3d ARGV`` in this process: (exit code, stdout, stderr)."""
    from scalp3d.cli import main

    capsys.readouterr()
    try:
        with time_limit():
            rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    except CaseTimeout:
        rc = "hang"
    out, err = capsys.readouterr()
    return rc, out, err


class Failures:
    """Collects the cases that broke the contract; the failing inputs are kept in ``keep``."""

    def __init__(self, keep: Path, n: int, what: str):
        self.keep, self.n, self.what, self.items = keep, n, what, []
        self.outcomes = {}

    def check(self, name, rc, err, files=()):
        self.outcomes[rc if rc in (0, 2, 3) else "broken"] = self.outcomes.get(rc if rc in (0, 2, 3) else
                                                                               "broken", 0) + 1
        problem = contract_broken(rc, err)
        if problem is None:
            return True
        self.fail(name, problem, files)
        return False

    def fail(self, name, problem, files=()):
        kept = []
        for f in files:
            f = Path(f)
            if f.exists():
                dest = self.keep / f"{len(self.items):03d}-{f.name}"
                self.keep.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if f.is_dir() else shutil.copy)(f, dest)
                kept.append(str(dest))
        self.items.append(f"{name}: {problem}" + (f" [input kept: {', '.join(kept)}]" if kept else ""))

    def finish(self):
        print(f"fuzz {self.what}: outcomes {dict(sorted(self.outcomes.items(), key=str))}")
        assert not self.items, (f"{len(self.items)} of {self.n} {self.what} cases broke the contract (seed {SEED}):\n"
                                + "\n".join(self.items[:30]))


# ---------------------------------------------------------------------------------------------------------------------
# random values
# ---------------------------------------------------------------------------------------------------------------------

_TEXT_CHARS = list("abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789-_.,;:/\\\"'#[]{}=()\t\n\r\x00\x7f") + \
    ["\u00e9", "\u2028", "\u00a0", "\U0001f600"]


def random_text(rng, n_max=12):
    return "".join(rng.choice(_TEXT_CHARS) for _ in range(int(rng.integers(0, n_max + 1))))


def junk_value(rng, depth=0):
    """A value of any type, mostly the wrong one for wherever it goes."""
    pool = [math.nan, math.inf, -math.inf, -1, 0, 1, 1e308, -1e308, 10**30, -(10**30), 2**63, True, False, "", "80",
            "x\ny", "(a)", 3.5, -0.0, 1e-320, [], [1, 2], [[1, 2, 3]], {"a": 1}, [[[]]], "\u2028", [None]]
    if depth < 2 and rng.random() < 0.2:
        return [junk_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    if depth < 2 and rng.random() < 0.1:
        return {random_text(rng, 5) or "k": junk_value(rng, depth + 1)}
    if rng.random() < 0.15:
        return random_text(rng)
    v = pool[int(rng.integers(len(pool)))]
    return None if v == [None] else v


def typo(rng, key):
    """A near miss of ``key``: a character dropped, doubled or changed."""
    if not key:
        return "x"
    i = int(rng.integers(len(key)))
    op = int(rng.integers(3))
    if op == 0:
        return key[:i] + key[i + 1:] or "x"
    if op == 1:
        return key[:i] + key[i] + key[i:]
    return key[:i] + rng.choice(list("abcxyz_")) + key[i + 1:]


def toml_str(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 32 or o == 127:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v):
    if v is None:
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_str(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_doc(d):
    return "".join(f"{toml_str(str(k))} = {toml_value(v)}\n" for k, v in d.items())


def break_text(rng, data: bytes) -> bytes:
    """A broken version of a text file (TOML, JSON): cut, random bytes, bad UTF-8, deep nesting, ..."""
    k = int(rng.integers(8))
    if k == 0:
        return data[:int(rng.integers(0, len(data) + 1))]
    if k == 1:
        return rng.bytes(int(rng.integers(0, 400)))
    if k == 2:
        return data + b"\xff\xfe\x80 = 1\n"
    if k == 3:
        return b"a = " + b"[" * 50_000 + b"\n"
    if k == 4:
        return b"[" * 50_000
    if k == 5:
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            if b:
                b[int(rng.integers(len(b)))] = int(rng.integers(256))
        return bytes(b)
    if k == 6:
        return data + data  # every key twice
    return b"\x00" * int(rng.integers(1, 50)) + data


# ---------------------------------------------------------------------------------------------------------------------
# shared fixtures
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def head1():
    """The sample head refined once (8,126 vertices) and its landmarks: quick enough for many design fields."""
    from scalp3d.landmarks import resolve_landmarks
    from scalp3d.sample import load_sample_head

    _, head, fid = load_sample_head(1)
    return head, resolve_landmarks(head, fid, "fiducials")


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory):
    from test_errors import make_small_plan_dir

    return make_small_plan_dir(tmp_path_factory.mktemp("fuzz-plan") / "plan")


# ---------------------------------------------------------------------------------------------------------------------
# scans
# ---------------------------------------------------------------------------------------------------------------------

SCAN_FORMATS = ["ply-ascii", "ply-le", "ply-be", "ply-cloud-ascii", "ply-cloud-le", "obj", "stl-ascii", "stl-bin",
                "off", "coff", "glb", "gltf", "pcd-ascii", "pcd-bin", "pcd-compressed", "xyz", "pts"]
SCAN_EXT = {"ply-ascii": ".ply", "ply-le": ".ply", "ply-be": ".ply", "ply-cloud-ascii": ".ply",
            "ply-cloud-le": ".ply", "obj": ".obj", "stl-ascii": ".stl", "stl-bin": ".stl", "off": ".off",
            "coff": ".off", "glb": ".glb", "gltf": ".gltf", "pcd-ascii": ".pcd", "pcd-bin": ".pcd",
            "pcd-compressed": ".pcd", "xyz": ".xyz", "pts": ".pts"}
GEOMETRY_BREAKS = ["none"] * 6 + ["nan_one", "nan_many", "inf", "all_nan", "huge", "tiny", "flat", "line", "few",
                                  "same", "bad_index", "negative_index", "degenerate", "no_faces"]
BYTE_BREAKS = ["none"] * 5 + ["truncate", "truncate", "flip", "random", "magic_random", "huge_count", "huge_count",
                              "negative_count", "garbage_tail", "double", "empty", "wrong_ext", "long_line", "crlf",
                              "bom", "header_only"]


def base_head():
    """A head-sized ellipsoid (semi-axes 80, 95, 110 mm), 642 vertices, and a gentle colour."""
    import trimesh

    m = trimesh.creation.icosphere(3)
    m.apply_scale([80.0, 95.0, 110.0])
    v = np.asarray(m.vertices, dtype=np.float64)
    c = np.clip(128 + v / 2, 0, 255).astype(np.uint8)
    return v, np.asarray(m.faces, dtype=np.int64), c


def _ply(v, f, c, fmt, with_normals=False):
    props = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    cols = [v[:, 0], v[:, 1], v[:, 2]]
    if with_normals:
        n = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
        props += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
        cols += [n[:, 0], n[:, 1], n[:, 2]]
    if c is not None:
        props += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        cols += [c[:, 0], c[:, 1], c[:, 2]]
    names = {"f4": "float", "u1": "uchar"}
    header = ["ply", f"format {fmt} 1.0", "comment fuzz", f"element vertex {len(v)}"]
    header += [f"property {names[t]} {p}" for p, t in props]
    if f is not None:
        header += [f"element face {len(f)}", "property list uchar int vertex_indices"]
    header.append("end_header")
    out = ("\n".join(header) + "\n").encode()
    if fmt == "ascii":
        rows = [" ".join(repr(float(x)) if t == "f4" else str(int(x)) for x, (_, t) in zip(row, props))
                for row in zip(*cols)]
        if f is not None:
            rows += [f"{len(fc)} " + " ".join(map(str, fc)) for fc in f]
        return out + ("\n".join(rows) + "\n").encode()
    bo = "<" if fmt == "binary_little_endian" else ">"
    rec = np.empty(len(v), np.dtype([(p, bo + t) for p, t in props]))
    with np.errstate(over="ignore", invalid="ignore"):
        for (p, _), col in zip(props, cols):
            rec[p] = col
    out += rec.tobytes()
    if f is not None:
        fr = np.empty(len(f), np.dtype([("n", "u1"), ("i", bo + "i4", (3,))]))
        fr["n"], fr["i"] = 3, f
        out += fr.tobytes()
    return out


def _pcd(v, c, mode, tmp):
    if mode == "binary_compressed":
        import open3d as o3d

        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(v))
        p = tmp / "_o3d.pcd"
        o3d.io.write_point_cloud(str(p), pc, compressed=True)
        data = p.read_bytes()
        p.unlink()
        return data
    n = len(v)
    head = (f"# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\n"
            f"TYPE F F F U\nCOUNT 1 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {mode}\n")
    rgb = (c[:, 0].astype(np.uint32) << 16) | (c[:, 1].astype(np.uint32) << 8) | c[:, 2].astype(np.uint32)
    if mode == "ascii":
        return (head + "".join(f"{x!r} {y!r} {z!r} {int(k)}\n" for (x, y, z), k in zip(v.tolist(), rgb))).encode()
    rec = np.empty(n, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")]))
    with np.errstate(over="ignore", invalid="ignore"):
        rec["x"], rec["y"], rec["z"] = v[:, 0], v[:, 1], v[:, 2]
    rec["rgb"] = rgb
    return head.encode() + rec.tobytes()


def encode_scan(fmt, v, f, c, tmp):
    """The bytes of a scan file of format ``fmt`` holding vertices ``v``, faces ``f`` (or None), colours ``c``."""
    import trimesh

    if fmt in ("ply-ascii", "ply-le", "ply-be"):
        return _ply(v, f, c, {"ply-ascii": "ascii", "ply-le": "binary_little_endian",
                              "ply-be": "binary_big_endian"}[fmt])
    if fmt in ("ply-cloud-ascii", "ply-cloud-le"):
        return _ply(v, None, c, "ascii" if fmt == "ply-cloud-ascii" else "binary_little_endian", with_normals=True)
    if fmt == "obj":
        lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in v.tolist()]
        if f is not None:
            lines += [f"f {a + 1} {b + 1} {d + 1}" for a, b, d in f.tolist()]
        return ("# fuzz\no head\n" + "\n".join(lines) + "\n").encode()
    if fmt in ("off", "coff"):
        ff = f if f is not None else np.zeros((0, 3), np.int64)
        if fmt == "off":
            rows = [f"{x!r} {y!r} {z!r}" for x, y, z in v.tolist()]
        else:
            rows = [f"{x!r} {y!r} {z!r} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(v.tolist(), c.tolist())]
        rows += [f"3 {a} {b} {d}" for a, b, d in ff.tolist()]
        return (f"{fmt.upper()}\n{len(v)} {len(ff)} 0\n" + "\n".join(rows) + "\n").encode()
    if fmt in ("pcd-ascii", "pcd-bin", "pcd-compressed"):
        return _pcd(v, c, {"pcd-ascii": "ascii", "pcd-bin": "binary", "pcd-compressed": "binary_compressed"}[fmt],
                    tmp)
    if fmt == "xyz":
        return "".join(f"{x!r} {y!r} {z!r} {r} {g} {b}\n" for (x, y, z), (r, g, b) in
                       zip(v.tolist(), c.tolist())).encode()
    if fmt == "pts":
        return (f"{len(v)}\n" + "".join(f"{x!r} {y!r} {z!r} 0 {r} {g} {b}\n" for (x, y, z), (r, g, b) in
                                        zip(v.tolist(), c.tolist()))).encode()
    # trimesh writes the rest: STL, GLB, glTF (faces needed; indices must be valid)
    ff = f if f is not None and len(f) and f.min() >= 0 and f.max() < len(v) else None
    if ff is None:
        v0, f0, _ = base_head()
        v, ff = v0, f0
    m = trimesh.Trimesh(v, ff, process=False)
    if fmt == "stl-ascii":
        return trimesh.exchange.stl.export_stl_ascii(m).encode()
    if fmt == "stl-bin":
        return trimesh.exchange.stl.export_stl(m)
    if fmt == "glb":
        return m.export(file_type="glb")
    return trimesh.exchange.gltf.export_gltf(m, embed_buffers=True)["model.gltf"]


def break_geometry(rng, kind, v, f, c):
    v, f, c = v.copy(), (None if f is None else f.copy()), c.copy()
    n = len(v)
    if kind == "nan_one":
        v[int(rng.integers(n))] = np.nan
    elif kind == "nan_many":
        v[rng.random(n) < 0.1, int(rng.integers(3))] = np.nan
    elif kind == "inf":
        v[int(rng.integers(n)), int(rng.integers(3))] = np.inf * rng.choice([-1, 1])
    elif kind == "all_nan":
        v[:] = np.nan
    elif kind == "huge":
        v *= 1e300
    elif kind == "tiny":
        v *= 1e-30
    elif kind == "flat":
        v[:, 2] = 0.0
    elif kind == "line":
        v[:, 1:] = 0.0
    elif kind == "few":
        v, c = v[:5], c[:5]
        f = f[(f < 5).all(axis=1)] if f is not None else None
    elif kind == "same":
        v[:] = v[0]
    elif kind == "bad_index" and f is not None:
        f[int(rng.integers(len(f))), int(rng.integers(3))] = n + int(rng.integers(1, 10**6))
    elif kind == "negative_index" and f is not None:
        f[int(rng.integers(len(f))), int(rng.integers(3))] = -int(rng.integers(1, 5))
    elif kind == "degenerate" and f is not None:
        f[:, 2] = f[:, 1]
    elif kind == "no_faces":
        f = None
    return v, f, c


def inflate_header(rng, fmt, data: bytes, value: int) -> bytes:
    """The header's counts replaced by ``value`` (huge or negative), where the format has them."""
    if fmt.startswith("ply"):
        which = rng.choice([b"vertex", b"face"])
        return re.sub(rb"element " + which + rb" \d+", b"element " + which + b" %d" % value, data, count=1)
    if fmt in ("off", "coff"):
        return re.sub(rb"\n\d+ \d+ 0\n", b"\n%d %d 0\n" % (value, abs(value) % 7), data, count=1)
    if fmt.startswith("pcd"):
        key = rng.choice([b"POINTS", b"WIDTH"])
        return re.sub(key + rb" \d+", key + b" %d" % value, data, count=1)
    if fmt == "pts":
        return re.sub(rb"^\d+", b"%d" % value, data, count=1)
    if fmt == "stl-bin" and len(data) >= 84:
        return data[:80] + (value % 2**32).to_bytes(4, "little") + data[84:]
    if fmt == "glb" and len(data) >= 20:
        at = int(rng.choice([8, 12]))
        return data[:at] + (value % 2**32).to_bytes(4, "little") + data[at + 4:]
    if fmt == "gltf":
        return re.sub(rb'"count":\d+', b'"count":%d' % value, data, count=1)
    if fmt == "obj":
        return data + b"f 1 2 %d\n" % value
    if fmt == "stl-ascii":
        return data.replace(b"vertex", b"vertex %d" % value, 1)
    return data + b"%d %d %d\n" % (value, value, value)


def break_bytes(rng, kind, fmt, data: bytes) -> tuple[bytes, str]:
    ext = SCAN_EXT[fmt]
    if kind == "truncate":
        return data[:int(rng.integers(0, len(data)))], ext
    if kind == "flip":
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))
        return bytes(b), ext
    if kind == "random":
        return rng.bytes(int(rng.integers(1, 4000))), ext
    if kind == "magic_random":
        magic = [b"ply\nformat ascii 1.0\n", b"ply\nformat binary_little_endian 1.0\nelement vertex 9\n", b"solid x\n",
                 b"OFF\n", b"glTF\x02\x00\x00\x00", b"# .PCD v0.7\nFIELDS x y z\n", b"{\"asset\":", b"v 1 2 3\n",
                 b"3\n"][int(rng.integers(9))]
        return magic + rng.bytes(int(rng.integers(0, 3000))), ext
    if kind == "huge_count":
        return inflate_header(rng, fmt, data, int(rng.choice([10**12, 2**31 - 1, 2**32 + 5, 10**30, 4_000_000]))), ext
    if kind == "negative_count":
        return inflate_header(rng, fmt, data, -int(rng.integers(1, 10**6))), ext
    if kind == "garbage_tail":
        return data + rng.bytes(int(rng.integers(1, 500))), ext
    if kind == "double":
        return data + data, ext
    if kind == "empty":
        return b"", ext
    if kind == "wrong_ext":
        others = sorted(set(SCAN_EXT.values()) - {ext}) + [".txt", ".png", ".ply.gz"]
        return data, others[int(rng.integers(len(others)))]
    if kind == "long_line":
        return (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n" if ext == ".ply" else b"") + \
            b"1 " * 300_000, ext
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n"), ext
    if kind == "bom":
        return b"\xef\xbb\xbf" + data, ext
    if kind == "header_only":
        end = data.find(b"end_header\n") if fmt.startswith("ply") else data.find(b"DATA")
        return (data[:end + 11] if end >= 0 else data[:84]), ext
    return data, ext


def make_scan_cases(tmp: Path, n: int, seed: int):
    rng = np.random.default_rng(seed)
    v0, f0, c0 = base_head()
    encoded = {}
    cases = []
    for i in range(n):
        fmt = SCAN_FORMATS[i % len(SCAN_FORMATS)] if i < 2 * len(SCAN_FORMATS) else \
            SCAN_FORMATS[int(rng.integers(len(SCAN_FORMATS)))]
        g = "none" if i < len(SCAN_FORMATS) else GEOMETRY_BREAKS[int(rng.integers(len(GEOMETRY_BREAKS)))]
        b = "none" if i < len(SCAN_FORMATS) else BYTE_BREAKS[int(rng.integers(len(BYTE_BREAKS)))]
        if g == "none":
            if fmt not in encoded:
                encoded[fmt] = encode_scan(fmt, v0, f0, c0, tmp)
            data = encoded[fmt]
        else:
            v, f, c = break_geometry(rng, g, v0, f0, c0)
            try:
                with np.errstate(all="ignore"):
                    data = encode_scan(fmt, v, f, c, tmp)
            except Exception:  # noqa: BLE001 - a writer that cannot hold the broken geometry: break the bytes only
                g = "none"
                data = encoded.setdefault(fmt, encode_scan(fmt, v0, f0, c0, tmp))
        data, ext = break_bytes(rng, b, fmt, data)
        r = rng.random()
        units, scale = (None, None) if r < 0.7 or i < len(SCAN_FORMATS) else \
            ("mm", None) if r < 0.8 else ("cm", None) if r < 0.87 else \
            (None, float(10 ** rng.uniform(-3, 3))) if r < 0.97 else (None, float(rng.choice([-1.0, 0.0, math.inf])))
        path = tmp / f"scan-{i:04d}-{fmt}-{g}-{b}{ext}"
        path.write_bytes(data)
        expect_ok = g == "none" and b == "none" and units in (None, "mm") and scale is None
        cases.append({"i": i, "path": str(path), "units": units, "scale": scale, "expect_ok": expect_ok,
                      "name": f"scan {i} ({fmt}, geometry {g}, bytes {b}, units {units}, scale {scale})"})
    return cases


def _scan_worker(cases_path, results_path):
    """Run in a subprocess: read each case's scan under RLIMIT_AS and a per-case SIGALRM (default action: the
    process ends, so a hang inside C code ends too); one JSON line per case."""
    import resource

    import open3d  # noqa: F401 - imported before the memory limit: its libraries are large mappings
    import trimesh  # noqa: F401

    from scalp3d.errors import Scalp3dError
    from scalp3d.scan import load_scan

    cases = json.loads(Path(cases_path).read_text())
    warm = next((c for c in cases if c["expect_ok"]), None)
    if warm is not None:
        load_scan(warm["path"])  # compile what the first read compiles before the limits apply
    with open("/proc/self/status") as fh:
        vm = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize"))
    limit = vm + WORKER_MEMORY_HEADROOM_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    with open(results_path, "a") as out:
        for c in cases:
            signal.alarm(CASE_TIME_LIMIT_S)
            res = {"i": c["i"]}
            try:
                s = load_scan(c["path"], units=c["units"], scale=c["scale"])
                res["rc"] = 0
                v = s.vertices
                bad = None
                if v.ndim != 2 or v.shape[1] != 3 or len(v) < 100 or not np.isfinite(v).all():
                    bad = f"read {v.shape} vertices, some not finite or too few"
                elif s.faces is not None and len(s.faces) and (s.faces.min() < 0 or s.faces.max() >= len(v)):
                    bad = "faces index missing vertices"
                if bad:
                    res["rc"], res["err"] = "bad", bad
            except Scalp3dError as exc:
                res["rc"], res["err"] = exc.exit_code, f"scalp3d: error: {exc}\n"
            except BaseException as exc:  # noqa: BLE001
                res["rc"] = 1
                res["err"] = f"scalp3d: internal error: {type(exc).__name__}: {exc}\n" + traceback.format_exc()
            signal.alarm(0)
            out.write(json.dumps(res) + "\n")
            out.flush()


def run_scan_worker(cases, tmp: Path):
    """Results of every case; a worker that dies (hang, memory, crash) is restarted after the case it died on."""
    results = {}
    pending = list(cases)
    restarts = 0
    while pending:
        cpath = tmp / f"_cases-{restarts}.json"
        rpath = tmp / f"_results-{restarts}.jsonl"
        cpath.write_text(json.dumps(pending))
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        proc = subprocess.run([sys.executable, str(HERE), "--scan-worker", str(cpath), str(rpath)],
                              capture_output=True, text=True, env=env,
                              timeout=CASE_TIME_LIMIT_S * (len(pending) + 2) + 120)
        done = {}
        if rpath.exists():
            for ln in rpath.read_text().splitlines():
                r = json.loads(ln)
                done[r["i"]] = r
        results.update(done)
        rest = [c for c in pending if c["i"] not in done]
        if not rest:
            break
        dead = rest[0]
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        why = {signal.SIGALRM: f"a hang: no answer within {CASE_TIME_LIMIT_S} s",
               signal.SIGKILL: "killed (out of memory?)", signal.SIGABRT: "aborted (a C++ exception: memory?)",
               signal.SIGSEGV: "a segmentation fault"}.get(-proc.returncode, how)
        results[dead["i"]] = {"i": dead["i"], "rc": "dead",
                              "err": f"the worker died on this case: {why}; {proc.stderr.strip()[-300:]}"}
        pending = rest[1:]
        restarts += 1
    return results


def test_fuzz_scans(tmp_path):
    banner("scan", N_SCAN)
    cases = make_scan_cases(tmp_path, N_SCAN, SEED)
    results = run_scan_worker(cases, tmp_path)
    fails = Failures(tmp_path / "failing", N_SCAN, "scan")
    for c in cases:
        r = results[c["i"]]
        if r["rc"] == "bad":
            fails.fail(c["name"], "read without error but " + r["err"], [c["path"]])
        elif r["rc"] == "dead":
            fails.fail(c["name"], r["err"], [c["path"]])
        elif fails.check(c["name"], r["rc"], r.get("err", ""), [c["path"]]) and c["expect_ok"] and r["rc"] != 0:
            fails.fail(c["name"], "a valid file was refused: " + r.get("err", "").strip(), [c["path"]])
    fails.finish()


# ---------------------------------------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _sample_vertices():
    from scalp3d.sample import load_sample_head

    return load_sample_head(0)[0].vertices


def _head_points(rng, k, where=None):
    """``k`` vertices of the sample head (mm, on its skin), among those ``where(v)`` selects."""
    v = _sample_vertices()
    sel = v if where is None else v[where(v)]
    return [[round(float(x), 2) for x in p] for p in sel[rng.integers(0, len(sel), k)]]


def plan_helper_files(d: Path):
    """Files a plan may name: good and broken mask PLYs and hairline polylines."""
    from scalp3d.sample import load_sample_head

    d.mkdir(parents=True, exist_ok=True)
    scan, _, _ = load_sample_head(0)
    v, f = scan.vertices, scan.faces
    mask = (v[:, 2] > np.percentile(v[:, 2], 95)).astype(np.uint8)
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(v)}\nproperty float x\nproperty float y\n"
              f"property float z\nproperty uchar mask\nelement face {len(f)}\nproperty list uchar int vertex_indices\n"
              "end_header\n").encode()
    rec = np.empty(len(v), np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("mask", "u1")]))
    rec["x"], rec["y"], rec["z"], rec["mask"] = v[:, 0], v[:, 1], v[:, 2], mask
    fr = np.empty(len(f), np.dtype([("n", "u1"), ("i", "<i4", (3,))]))
    fr["n"], fr["i"] = 3, f
    good = header + rec.tobytes() + fr.tobytes()
    files = {"mask-good.ply": good, "mask-huge.ply": good.replace(b"element vertex 2033", b"element vertex 10000000000"),
             "mask-cut.ply": good[:len(good) // 2], "mask-junk.ply": bytes(range(256)) * 8,
             "mask-none.ply": header.replace(b"uchar mask", b"uchar other") + rec.tobytes() + fr.tobytes(),
             "line-good.csv": b"x,y,z\n-40,60,70\n0,75,75\n40,60,70\n",
             "line-json.json": b"[[-40, 60, 70], [0, 75, 75], [40, 60, 70]]",
             "line-bad.json": b"[[1, 2], {\"a\": 1}, [[[]]]]", "line-deep.json": b"[" * 50_000,
             "line-nan.csv": b"nan 1 2\n1 2 3\n4 5 6\n", "line-junk.csv": b"\xff\xfe\x00junk\n1 2\n",
             "line-two.csv": b"1 2 3\n4 5 6\n"}
    for name, data in files.items():
        (d / name).write_bytes(data)
    (d / "a-folder").mkdir(exist_ok=True)
    return sorted(files) + ["a-folder", "missing.ply", "missing.csv", "bad\x00name.ply"]


def _schema_value(rng, key, spec, n_sessions, helpers):
    """A valid (often extreme) value for a plan key."""
    from scalp3d import config
    from scalp3d.design import ZONES

    typ, default, rng_, _ = spec
    if typ is float:
        lo, hi = rng_
        r = rng.random()
        v = lo if r < 0.2 else hi if r < 0.4 else float(rng.uniform(lo, hi))
        return int(v) if rng.random() < 0.1 and v == int(v) else v
    if typ is int:
        lo, hi = rng_
        return int(rng.choice([lo, hi, int(rng.integers(lo, min(hi, 10**6)))]))
    if typ is bool:
        return bool(rng.random() < 0.5)
    if key == "mode":
        return str(rng.choice(["bald", "whole-scalp", "density"]))
    if key in ("name", "needle"):
        return str(rng.choice(list(config.NEEDLE_DIAMETER_MM)))
    if key == "polyline_file":
        return str(rng.choice([h for h in helpers if h.startswith("line")]))
    if key == "mask_ply":
        return str(rng.choice([h for h in helpers if h.startswith("mask")]))
    if key == "mask_property":
        return str(rng.choice(["mask", "red", "other"]))
    if key == "comment":
        return random_text(rng).replace("\n", " ").replace("(", "").replace(")", "")
    if key == "fractions":
        return sorted(set(round(float(x), 4) for x in rng.uniform(0.01, 0.99, n_sessions - 1))) + [1.0]
    if key == "shades":
        return [str(rng.choice(["light", "medium", "dark", "ash-grey", "Noir 3"])) for _ in range(n_sessions)]
    if key == "zone_order":
        return [str(z) for z in rng.permutation(list(ZONES))[:int(rng.integers(0, len(ZONES) + 1))]]
    if key in ("polyline_mm", "points_mm"):
        return _head_points(rng, int(rng.integers(3, 8)), lambda v: v[:, 2] > 40)
    if key == "center_mm":
        return _head_points(rng, 1)[0]
    return default


def _bad_value(rng, key, spec):
    typ, _, rng_, _ = spec
    r = rng.random()
    if rng_ is not None and r < 0.35:
        lo, hi = rng_
        return float(rng.choice([lo - abs(lo) * 0.01 - 0.01, hi * 1.01 + 0.01, math.nan, math.inf, -math.inf]))
    if key in ("polyline_mm", "points_mm") and r < 0.6:
        return [[1, 2], [1, 2, 3]] if rng.random() < 0.3 else [[1e300, 0, 0]] * 3 if rng.random() < 0.5 else \
            [["a", "b", "c"]] * 3
    if key in ("fractions", "shades", "zone_order") and r < 0.6:
        return [junk_value(rng) for _ in range(int(rng.integers(0, 10)))]
    return junk_value(rng)


def random_plan(rng, helpers):
    from scalp3d.design import LIST_SCHEMA, SCHEMA

    n_sessions = int(rng.integers(1, 9))
    p_bad = float(rng.choice([0.0, 0.0, 0.03, 0.15]))

    def fill(schema, p_key):
        out = {}
        for key, spec in schema.items():
            if rng.random() > p_key:
                continue
            if isinstance(spec, dict):
                sub = fill(spec, 0.4)
                if sub or rng.random() < 0.3:
                    out[key] = sub if rng.random() > p_bad else junk_value(rng)
                continue
            out[key] = _bad_value(rng, key, spec) if rng.random() < p_bad else \
                _schema_value(rng, key, spec, n_sessions, helpers)
        if rng.random() < p_bad:
            real = list(schema)
            out[typo(rng, real[int(rng.integers(len(real)))]) if rng.random() < 0.7 else random_text(rng, 8)] = \
                junk_value(rng)
        return out

    plan = fill(SCHEMA, 0.35)
    if "sessions" in plan and isinstance(plan["sessions"], dict) and rng.random() < 0.8:
        sess = SCHEMA["sessions"]
        plan["sessions"]["fractions"] = _schema_value(rng, "fractions", sess["fractions"], n_sessions, helpers)
        plan["sessions"]["shades"] = _schema_value(rng, "shades", sess["shades"], n_sessions, helpers)
    for key, sub in LIST_SCHEMA.items():
        if rng.random() < 0.25:
            items = []
            for _ in range(int(rng.integers(0, 4))):
                item = fill(sub, 0.5)
                choose = ["polyline_mm", "points_mm", "mask_ply"] if key == "scars" else ["center_mm", "mask_ply"]
                k = str(rng.choice(choose))
                item.setdefault(k, _schema_value(rng, k, sub[k], n_sessions, helpers))
                if key == "reserved" and k == "center_mm":
                    item.setdefault("radius_mm", float(rng.uniform(0.5, 20)))
                items.append(item)
            plan[key] = items if rng.random() > p_bad else junk_value(rng)
    return plan


def test_fuzz_plans(tmp_path, capsys, head1):
    from scalp3d.design import build_field, load_plan

    banner("plan", N_PLAN + N_FIELD)
    helpers = plan_helper_files(tmp_path)
    rng = np.random.default_rng(SEED + 1)
    fails = Failures(tmp_path / "failing", N_PLAN + N_FIELD, "plan")
    fields = 0
    head, lm = head1
    for i in range(N_PLAN):
        path = tmp_path / f"plan-{i:04d}.toml"
        text = toml_doc(random_plan(rng, helpers)).encode("utf-8")
        raw = rng.random() < 0.12
        path.write_bytes(break_text(rng, text) if raw else text)
        name = f"plan {i}{' (broken text)' if raw else ''}"
        rc, err, plan = as_cli(load_plan, path)
        if not fails.check(name, rc, err, [path]):
            continue
        if rc != 0:  # the command line says the same on one line
            rc2, _, err2 = run_cli(capsys, ["demo", "--plan", path, "--out", tmp_path / "never", "--no-preview"])
            if fails.check(name + " via `scalp3d demo`", rc2, err2, [path]) and (rc2, err2) != (rc, err):
                fails.fail(name, f"load_plan said {err.strip()!r}, the CLI {err2.strip()!r}", [path])
            continue
        if fields < N_FIELD:  # a valid plan: its design field on the sample head (the pipeline's next stage)
            fields += 1
            rc, err, _ = as_cli(build_field, head, lm, plan)
            fails.check(name + " (design field)", rc, err, [path])
    assert not (tmp_path / "never").exists()
    fails.n = N_PLAN + fields
    print(f"fuzz plans: {fields} valid plans built their design field")
    fails.finish()


def test_shipped_plans_and_cli_overrides_validate():
    """The shipped example plans load; --seed's range is the plan's."""
    from importlib import resources

    from scalp3d.design import load_plan

    for p in resources.files("scalp3d.plans").iterdir():
        if p.name.endswith(".toml"):
            load_plan(Path(str(p)))
    for seed in (-1, 2**31, 2**80):
        rc, err, _ = as_cli(load_plan, None, {"seed": seed})
        assert rc == 2 and contract_broken(rc, err) is None


# ---------------------------------------------------------------------------------------------------------------------
# machine profiles
# ---------------------------------------------------------------------------------------------------------------------

def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def random_machine(rng):
    """A machine profile dict; mostly valid, with wrong pieces at a random rate."""
    p_bad = float(rng.choice([0.0, 0.0, 0.1, 0.3]))

    def pick(good, bad_key=None):
        return junk_value(rng) if rng.random() < p_bad else good

    def pair(lo, hi):
        a = float(rng.uniform(lo, hi))
        b = float(rng.uniform(a, hi)) if rng.random() < 0.9 else a
        return [a, b]

    prof = {}
    if rng.random() < 0.7:
        prof["name"] = pick(str(rng.choice(["robot", "my-robot 2", "bench \u00e9"])))
    if rng.random() < 0.7:
        prof["axes"] = pick(str(rng.choice(["xyzab", "xyz"])))
    if rng.random() < 0.5:
        prof["units"] = pick(str(rng.choice(["mm", "in"])))
    if rng.random() < 0.6:
        lo = rng.uniform(-2000, 0, 3)
        hi = lo + rng.uniform(1, 3000, 3)
        prof["workspace"] = pick({"min_mm": pick(lo.tolist()), "max_mm": pick(hi.tolist())})
    if rng.random() < 0.6:
        lim = {}
        if rng.random() < 0.7:
            lim["depth_mm"] = pick(pair(0.0, 5.0))
        if rng.random() < 0.7:
            lim["tilt_limit_deg"] = pick(float(rng.uniform(0.1, 45)))
        if rng.random() < 0.5:
            lim["a_range_deg"] = pick(pair(-360, 360))
        if rng.random() < 0.5:
            lim["b_range_deg"] = pick(pair(-360, 360))
        prof["limits"] = pick(lim)
    if rng.random() < 0.5:
        prof["feeds"] = pick({"range_mm_per_min": pick(pair(0.0, 1e6)),
                              "rapid_mm_per_min": pick(float(rng.uniform(1, 1e5)))})
    if rng.random() < 0.3:
        k = int(rng.integers(2, 7))
        s = rng.uniform(-100, 100, (k, 3))
        R, t = _rotation(rng), rng.uniform(-500, 500, 3)
        d = s @ R.T + t + rng.normal(0, float(rng.choice([0.01, 0.5, 5.0])), (k, 3))
        prof["registration"] = pick({"scan_mm": pick(s.tolist()), "machine_mm": pick(d.tolist())})
    if rng.random() < 0.4:
        prof["cartridges"] = pick({str(rng.choice(["0603-1RL", "0803-1RL", "X(1)", ""])): pick(
            float(rng.uniform(0.05, 0.5))) for _ in range(int(rng.integers(0, 4)))})
    if rng.random() < p_bad:
        prof[typo(rng, str(rng.choice(["name", "axes", "limits", "feeds"])))] = junk_value(rng)
    if rng.random() < p_bad and isinstance(prof.get("limits"), dict):
        prof["limits"][typo(rng, "tilt_limit_deg")] = 5.0
    return prof


def test_fuzz_machine_profiles(tmp_path, capsys, small_plan):
    from scalp3d.machine import load_machine

    banner("machine profile", N_MACHINE + N_MACHINE_EXPORT)
    rng = np.random.default_rng(SEED + 2)
    fails = Failures(tmp_path / "failing", N_MACHINE + N_MACHINE_EXPORT, "machine profile")
    exported = 0
    for i in range(N_MACHINE):
        path = tmp_path / f"machine-{i:04d}.toml"
        text = toml_doc(random_machine(rng)).encode("utf-8")
        raw = rng.random() < 0.1
        path.write_bytes(break_text(rng, text) if raw else text)
        name = f"machine profile {i}{' (broken text)' if raw else ''}"
        rc, err, machine = as_cli(load_machine, str(path))
        if not fails.check(name, rc, err, [path]) or rc != 0 or exported >= N_MACHINE_EXPORT:
            continue
        exported += 1  # a valid profile: export a session with it (the programs' checks use every limit)
        argv = ["export", small_plan, "--session", "1", "--machine", path]
        rc, _, err = run_cli(capsys, argv)
        fails.check(name + " via `scalp3d export`", rc, err, [path])
    for spec in ("generic-5axis", "generic-3axis", "nope", "../etc", tmp_path, tmp_path / "missing.toml"):
        rc, err, _ = as_cli(load_machine, str(spec))
        fails.check(f"machine profile {spec}", rc, err)
    fails.finish()


# ---------------------------------------------------------------------------------------------------------------------
# landmark files
# ---------------------------------------------------------------------------------------------------------------------

def random_landmarks(rng, head_v):
    from scalp3d.landmarks import LANDMARK_KEYS

    p_bad = float(rng.choice([0.0, 0.0, 0.1, 0.3]))
    d = {}
    for key in LANDMARK_KEYS:
        if rng.random() < 0.6:
            p = head_v[int(rng.integers(len(head_v)))] + rng.normal(0, float(rng.choice([0.5, 5, 50])), 3)
            d[key] = junk_value(rng) if rng.random() < p_bad else [float(x) for x in p]
    if rng.random() < 0.3:
        d["units"] = str(rng.choice(["mm", "scan"])) if rng.random() > p_bad else junk_value(rng)
    if rng.random() < 0.2:
        d["comment"] = junk_value(rng)
    if rng.random() < 0.1:
        d["scale_mm_per_unit"] = junk_value(rng)
    if rng.random() < p_bad:
        d[typo(rng, str(rng.choice(list(LANDMARK_KEYS))))] = [0.0, 0.0, 0.0]
    if rng.random() < 0.05:
        return [d]
    return d


def test_fuzz_landmark_files(tmp_path, head1):
    from scalp3d.landmarks import load_landmarks, resolve_landmarks

    banner("landmark file", N_LANDMARK)
    head, _ = head1
    rng = np.random.default_rng(SEED + 3)
    fails = Failures(tmp_path / "failing", N_LANDMARK, "landmark file")
    resolved = 0
    for i in range(N_LANDMARK):
        path = tmp_path / f"landmarks-{i:04d}.json"
        text = json.dumps(random_landmarks(rng, head.vertices)).encode()
        raw = rng.random() < 0.12
        path.write_bytes(break_text(rng, text) if raw else text)
        name = f"landmarks {i}{' (broken text)' if raw else ''}"
        scale = float(rng.choice([1.0, 48.0, 1e-3]))
        rc, err, given = as_cli(load_landmarks, path, scale)
        if fails.check(name, rc, err, [path]) and rc == 0 and all(k in given for k in ("nasion", "lpa", "rpa")):
            resolved += 1  # the pipeline's next step: snapped to this head, or refused on one line
            rc, err, _ = as_cli(resolve_landmarks, head, given, "file")
            fails.check(name + " (resolved on the sample head)", rc, err, [path])
    for path in (tmp_path, tmp_path / "missing.json"):
        rc, err, _ = as_cli(load_landmarks, path)
        fails.check(f"landmarks {path}", rc, err)
    print(f"fuzz landmarks: {resolved} files resolved on the sample head")
    fails.finish()


# ---------------------------------------------------------------------------------------------------------------------
# session JSON for `scalp3d export`
# ---------------------------------------------------------------------------------------------------------------------

def break_session(rng, js):
    js = json.loads(json.dumps(js))
    dots = js["dots"]
    k = int(rng.integers(16))
    d = dots[int(rng.integers(len(dots)))]
    if k == 0:
        js.pop(str(rng.choice(list(js))))
    elif k == 1:
        js[str(rng.choice(list(js)))] = junk_value(rng)
    elif k == 2:
        d.pop(str(rng.choice(list(d))))
    elif k == 3:
        d[str(rng.choice(list(d)))] = junk_value(rng)
    elif k == 4:
        js["dots"] = junk_value(rng) if rng.random() < 0.5 else []
    elif k == 5:
        dots.append(dict(d))  # a dot twice
    elif k == 6:
        d[str(rng.choice(["skin_mm", "normal"]))][int(rng.integers(3))] = float(rng.choice([math.nan, math.inf]))
    elif k == 7:
        d["normal"] = [0.0, 0.0, 0.0]
    elif k == 8:
        d["skin_mm"] = [c + float(rng.normal(0, 3)) for c in d["skin_mm"]]  # off the skin: a refused move
    elif k == 9:
        d["depth_mm"] = float(rng.choice([-1.0, 0.0, 5.0, 1e9, 0.3]))
    elif k == 10:
        js["settings"][str(rng.choice(list(js["settings"])))] = junk_value(rng)
    elif k == 11:
        d[str(rng.choice(["zone", "needle", "shade"]))] = str(rng.choice(["a)\nG0 Z-50\n(", "", "x" * 500,
                                                                          "0803-9RL", "dark"]))
    elif k == 12:
        js["session"], js["sessions"] = junk_value(rng), junk_value(rng)
    elif k == 13:
        js["schema_version"] = junk_value(rng)
    elif k == 14:
        js["machine"] = junk_value(rng) if rng.random() < 0.5 else {"scan_to_machine": junk_value(rng)}
    else:
        d["id"] = junk_value(rng) if rng.random() < 0.5 else 2**70
    return js


def test_fuzz_export_sessions(tmp_path, capsys, small_plan):
    banner("session JSON / export", N_SESSION)
    rng = np.random.default_rng(SEED + 4)
    fails = Failures(tmp_path / "failing", N_SESSION, "export")
    d = tmp_path / "plan"
    shutil.copytree(small_plan, d)
    js_path, head_path = d / "session-1.json", d / "head.ply"
    js_bytes, head_bytes = js_path.read_bytes(), head_path.read_bytes()
    base = json.loads(js_bytes)
    ids = [x["id"] for x in base["dots"]]
    for i in range(N_SESSION):
        what = []
        r = rng.random()
        if r < 0.1:
            js_path.write_bytes(break_text(rng, js_bytes))
            what.append("broken text")
        elif r < 0.85:
            js_path.write_text(json.dumps(break_session(rng, base)))
            what.append("edited")
        if rng.random() < 0.08:
            head_path.write_bytes(head_bytes[:int(rng.integers(0, len(head_bytes)))] if rng.random() < 0.7 else
                                  head_bytes.replace(b"element vertex", b"element vertex 1", 1))
            what.append("damaged head.ply")
        argv = ["export", d, "--session", "1"]
        if rng.random() < 0.4:
            argv += ["--resume-from", int(rng.choice(ids)) if rng.random() < 0.6 else int(rng.integers(0, 10**7))]
        if rng.random() < 0.3:
            argv += ["--chunk-dots", int(rng.integers(1, 30))] if rng.random() < 0.5 else \
                ["--chunk-minutes", float(rng.uniform(0.001, 2))]
        if rng.random() < 0.15:
            argv += ["--machine", "generic-3axis"]
        rc, _, err = run_cli(capsys, argv)
        fails.check(f"export {i} ({', '.join(what) or 'as written'}; {' '.join(map(str, argv[4:]))})", rc, err,
                    [js_path, head_path])
        js_path.write_bytes(js_bytes)
        head_path.write_bytes(head_bytes)
    fails.finish()


# ---------------------------------------------------------------------------------------------------------------------
# dots CSV (`scalp3d sample --fixed`)
# ---------------------------------------------------------------------------------------------------------------------

def random_dots_csv(rng) -> bytes:
    from scalp3d.export import CSV_COLUMNS

    n = int(rng.integers(0, 30))
    rows = [",".join(CSV_COLUMNS if rng.random() < 0.8 else ["id", "x", "y", "z", "session"])]
    for k in range(n):
        p = rng.normal(0, 80, 3)
        rows.append(f"{k + 1},{p[0]:.4f},{p[1]:.4f},{p[2]:.4f},0,0,1,{int(rng.integers(1, 4))},crown,0.600,0603-1RL,"
                    f"dark,0.200")
    k = int(rng.integers(10))
    if n and k == 0:
        i = int(rng.integers(1, n + 1))
        cells = rows[i].split(",")
        cells[int(rng.integers(len(cells)))] = str(rng.choice(["nan", "inf", "abc", "", "1e400", "1.5", "-0", "\"\"",
                                                               "99999999999999999999999"]))
        rows[i] = ",".join(cells)
    elif n and k == 1:
        i = int(rng.integers(1, n + 1))
        rows[i] = rows[i].rsplit(",", int(rng.integers(1, 5)))[0] if rng.random() < 0.5 else rows[i] + ",extra"
    elif k == 2:
        rows[0] = ",".join(rng.permutation(rows[0].split(",")))
    elif k == 3:
        rows.insert(1, "")
        rows.append('"unclosed,1,2')
    data = ("\n".join(rows) + "\n").encode()
    return break_text(rng, data) if k == 4 else (b"\xef\xbb\xbf" + data if k == 5 else data)


def test_fuzz_dots_csv(tmp_path):
    from scalp3d.export import read_dots_csv

    banner("dots CSV", N_DOTS_CSV)
    rng = np.random.default_rng(SEED + 6)
    fails = Failures(tmp_path / "failing", N_DOTS_CSV, "dots CSV")
    for i in range(N_DOTS_CSV):
        path = tmp_path / f"dots-{i:04d}.csv"
        path.write_bytes(random_dots_csv(rng))
        rc, err, cols = as_cli(read_dots_csv, path)
        if fails.check(f"dots CSV {i}", rc, err, [path]) and rc == 0:
            n = {len(v) for v in cols.values()}
            xyz = np.column_stack([cols["x"], cols["y"], cols["z"]])
            if len(n) != 1 or not np.isfinite(xyz).all():
                fails.fail(f"dots CSV {i}", "read without error but columns differ in length or are not finite",
                           [path])
    for path in (tmp_path, tmp_path / "missing.csv"):
        rc, err, _ = as_cli(read_dots_csv, path)
        fails.check(f"dots CSV {path}", rc, err)
    fails.finish()


# ---------------------------------------------------------------------------------------------------------------------
# command lines
# ---------------------------------------------------------------------------------------------------------------------

def random_argv(rng):
    values = ["abc", "-1", "0", "1", "3", "1e9", "nan", "inf", "-inf", "", "3.5", "99999999999999999999", "-0",
              "1_000", " 7 ", "0x10", "x.ply", "--", "\u00e9"]
    cmd = str(rng.choice(["demo", "plan", "mesh", "sample", "export", "verify", "bogus", "--version", "-h"]))
    opts = ["--out", "--plan", "--seed", "--overwrite", "--no-preview", "--machine", "--chunk-dots", "--chunk-minutes",
            "--units", "--scale", "--landmarks", "--edge-mm", "--count", "--density-per-cm2", "--sessions", "--fixed",
            "--session", "--resume-from", "--head", "--plan-json", "--bogus"]
    argv = [cmd]
    if cmd in ("plan", "mesh", "sample", "export", "verify") and rng.random() < 0.8:
        argv.append("x.ply")
    for _ in range(int(rng.integers(0, 6))):
        o = str(rng.choice(opts))
        argv.append(o)
        if o not in ("--overwrite", "--no-preview") and rng.random() < 0.9:
            argv.append(str(rng.choice(values)))
    return argv


def test_fuzz_command_lines(capsys):
    from scalp3d.cli import build_parser

    banner("command line", N_ARGV)
    rng = np.random.default_rng(SEED + 5)
    fails = Failures(Path("."), N_ARGV, "command line")
    parsed = 0
    for i in range(N_ARGV):
        argv = random_argv(rng)
        capsys.readouterr()
        try:
            build_parser().parse_args(argv)
            parsed += 1
            rc = 0
        except SystemExit as exc:
            rc = exc.code
        out, err = capsys.readouterr()
        if rc == 0 and err.strip():
            fails.fail(f"argv {argv}", f"parsed, yet wrote to stderr: {err.strip()[:200]}")
        fails.check(f"argv {argv}", rc, err)
    print(f"fuzz command lines: {parsed} parsed (not run), the rest refused")
    fails.finish()


# ---------------------------------------------------------------------------------------------------------------------
# random valid plans through the whole pipeline: the spacing floor, checked independently
# ---------------------------------------------------------------------------------------------------------------------

def pipeline_plan(seed):
    """A random valid plan of one of the kinds where dots crowd: a FUT strip (thin, tips, bends, margin feathered to
    zero), an FUE punch cluster, reserved regions inside the transition band, a small patch of a few dozen dots, steps
    between zones. Small treated areas, so that each runs in seconds."""
    from scalp3d.design import ZONES

    rng = np.random.default_rng(SEED * 1000 + seed)
    kind = ("fut", "fue", "reserved", "patch", "steps")[seed % 5]
    zeros = {z: {"density_per_cm2": 0.0} for z in ZONES if z != "scar"}
    plan = {"seed": int(rng.integers(0, 2**31 - 1))}
    if kind == "fut":
        v = _sample_vertices()
        band = v[(np.abs(v[:, 2] - rng.uniform(-15, 25)) < 4.0) & (v[:, 1] < -60)]
        x0 = float(rng.uniform(band[:, 0].min(), band[:, 0].max() - 25))
        x1 = float(rng.uniform(x0 + 20, band[:, 0].max()))
        # points along the skin, at most about 12 mm apart (a straight chord between them stays near the skin)
        pts = [[round(float(c), 2) for c in band[np.argmin(np.abs(band[:, 0] - x))]]
               for x in np.linspace(x0, x1, max(3, int((x1 - x0) / 12) + 2))]
        plan.update(zones=zeros, scars=[{"polyline_mm": pts, "width_mm": float(rng.choice([0.1, 0.5, 2.0, 4.0])),
                                         "density_per_cm2": float(rng.uniform(40, 160)),
                                         "margin_mm": float(rng.choice([0.0, 1.0, 6.0, 15.0]))}])
    elif kind == "fue":
        centre = np.array(_head_points(rng, 1, lambda v: (v[:, 1] < -40) & (v[:, 2] > 20))[0])
        near = lambda v: np.linalg.norm(v - centre, axis=1) < 25  # noqa: E731
        plan.update(zones=zeros, scars=[{"points_mm": _head_points(rng, int(rng.integers(5, 30)), near),
                                         "width_mm": float(rng.uniform(0.5, 1.5)),
                                         "density_per_cm2": float(rng.uniform(60, 160)),
                                         "margin_mm": float(rng.choice([0.0, 0.5, 3.0]))}])
    elif kind == "reserved":
        zones = dict(zeros)
        zones.pop("hairline")
        zones.pop("front")
        core = float(rng.uniform(40, 160))
        plan.update(zones=zones, density={"core_per_cm2": core, "hairline_per_cm2": float(rng.uniform(1, core))},
                    hairline={"transition_mm": float(rng.choice([0.0, 5.0, 25.0, 60.0]))},
                    reserved=[{"center_mm": c, "radius_mm": float(rng.uniform(0.5, 12))}
                              for c in _head_points(rng, int(rng.integers(1, 5)), lambda v: (v[:, 1] > 40) &
                                                    (v[:, 2] > 30))])
    elif kind == "patch":
        zones = dict(zeros)
        zones["crown"] = {"density_per_cm2": float(rng.uniform(0.5, 4.0))}
        plan.update(zones=zones, sessions={"fractions": [0.5, 1.0], "shades": ["light", "dark"]})
    else:
        zones = {z: {"density_per_cm2": float(rng.choice([0.0, 5.0, 160.0]))} for z in ("front", "mid", "crown")}
        zones.update({z: {"density_per_cm2": 0.0} for z in ("hairline", "sides", "back")})
        plan.update(zones=zones, density={"core_per_cm2": 160.0, "hairline_per_cm2": 40.0})
    return kind, plan


def plan_max_density(plan):
    """The largest density a plan sets anywhere: the smallest spacing, so the most lenient floor."""
    from scalp3d import config

    dens = [plan.get("density", {}).get("core_per_cm2", config.CORE_DENSITY_PER_CM2)]
    dens += [z["density_per_cm2"] for z in plan.get("zones", {}).values() if "density_per_cm2" in z]
    dens += [s.get("density_per_cm2", 80.0) for s in plan.get("scars", [])]
    return max(dens)


@pytest.mark.parametrize("seed", range(N_PIPELINE))
def test_random_valid_plans_keep_the_spacing_floor(tmp_path, seed):
    from scipy.spatial import cKDTree

    from scalp3d import config
    from scalp3d.errors import Scalp3dError
    from scalp3d.export import read_dots_csv
    from scalp3d.pipeline import run
    from scalp3d.placement import spacing_for_density

    if seed == 0:
        banner("pipeline plan", N_PIPELINE)
    kind, plan = pipeline_plan(seed)
    path = tmp_path / f"{kind}.toml"
    path.write_text(toml_doc(plan))
    try:
        run(tmp_path / "out", sample=True, plan_path=path, render=False, log=lambda *a: None)
    except Scalp3dError as exc:
        pytest.fail(f"{kind} plan {path} (seed {seed}) was refused, exit {exc.exit_code}: {exc}\n{path.read_text()}")
    cols = read_dots_csv(tmp_path / "out" / "dots.csv")
    pos = np.column_stack([cols["x"], cols["y"], cols["z"]])
    d_max = float(spacing_for_density(plan_max_density(plan)))
    floor = max(config.SPACING_FLOOR_FRACTION * d_max, config.SPACING_FLOOR_MIN_MM)
    pairs = np.array(sorted(cKDTree(pos).query_pairs(floor)), dtype=np.int64).reshape(-1, 2)
    dist = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1) if len(pairs) else np.zeros(0)
    print(f"{kind} plan (seed {seed}): {len(pos)} dots, floor {floor:.3f} mm, closest pair "
          f"{cKDTree(pos).query(pos, 2)[0][:, 1].min():.3f} mm" if len(pos) > 1 else f"{kind}: {len(pos)} dots")
    worst = np.argsort(dist)[:5]
    assert len(pairs) == 0, (
        f"{kind} plan (seed {seed}): {len(pairs)} pairs of dots closer than the floor {floor:.3f} mm; closest: "
        + ", ".join(f"ids {cols['id'][pairs[k, 0]]}/{cols['id'][pairs[k, 1]]} {dist[k]:.3f} mm" for k in worst)
        + f"\nplan:\n{path.read_text()}")


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--scan-worker":
    _scan_worker(sys.argv[2], sys.argv[3])
