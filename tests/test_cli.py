"""The command line: one-line errors with a non-zero exit, never a traceback."""
import re
import subprocess
import sys

import pytest



def scalp3d(*args):
    return subprocess.run([sys.executable, "-m", "scalp3d.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("content", [b"", b"ply\nformat ascii 1.0\nelement vertex 5\nend_header\n1 2 3\n",
                                     b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 1 2\n"])
def test_bad_scans(tmp_path, content):
    p = tmp_path / ("bad.stl" if content.startswith(b"solid") else "bad.ply")
    p.write_bytes(content)
    r = scalp3d("plan", p, "--out", tmp_path / "out")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalp3d: error:") and "bad." in lines[0]
    assert not (tmp_path / "out" / "summary.json").exists()


def test_units_error_asks_for_units(tmp_path, lee_path):
    r = scalp3d("plan", lee_path, "--out", tmp_path / "out")
    assert r.returncode == 2
    assert "--units" in r.stderr and "--scale" in r.stderr and "lee-perry-smith.obj" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_plan(tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text("[needle]\ndepth_mm = 5\n")
    r = scalp3d("demo", "--out", tmp_path / "out", "--plan", plan, "--no-preview")
    assert r.returncode == 2 and "needle.depth_mm" in r.stderr and "Traceback" not in r.stderr


def test_verify_command(tmp_path):
    out = tmp_path / "out"
    r = scalp3d("demo", "--out", out, "--no-preview")
    assert r.returncode == 0, r.stderr
    ok = scalp3d("verify", out / "session-1.ngc", "--head", out / "head.ply")
    assert ok.returncode == 0 and "OK" in ok.stdout
    text = (out / "session-2.ngc").read_text().replace("M2\n", "G0 X0 Y0 Z0\nM2\n")
    (out / "session-2.ngc").write_text(text)
    bad = scalp3d("verify", out / "session-2.ngc", "--head", out / "head.ply")
    assert bad.returncode == 1 and "REFUSED" in bad.stdout and "travel move" in bad.stdout
    # the .ngc alone (as copied to the controller) against the real pipeline's head.ply and plan.toml
    (out / "session-1.json").unlink()
    alone = scalp3d("verify", out / "session-1.ngc", "--head", out / "head.ply")
    assert alone.returncode == 0 and "OK" in alone.stdout, alone.stdout[-300:]
    (out / "plan.toml").write_text((out / "plan.toml").read_text() + "\n")  # re-planned: session-1.ngc is stale
    stale = scalp3d("verify", out / "session-1.ngc", "--head", out / "head.ply")
    assert stale.returncode == 1 and len(stale.stdout.strip().splitlines()) == 1
    assert "the plan.toml beside it is" in stale.stdout


def test_export_chunks_and_resume(tmp_path):
    import json

    out = tmp_path / "out"
    r = scalp3d("demo", "--out", out, "--no-preview", "--machine", "generic-3axis")
    assert r.returncode == 0, r.stderr
    js = json.loads((out / "session-3.json").read_text())
    from_id = js["dots"][1000]["id"]
    r = scalp3d("export", out, "--session", "3", "--resume-from", from_id, "--chunk-dots", "5000", "--machine",
                "generic-3axis")
    assert r.returncode == 0, r.stderr
    folder = out / f"session-3-from-{from_id}"
    parts = sorted(folder.glob("session-3-part-*.ngc"))
    assert len(parts) == -(-(js["count"] - 1000) // 5000)
    ids = []
    for p in parts:
        ids += [int(x) for x in re.findall(r"^\(dot (\d+) ", p.read_text(), flags=re.M)]
    assert ids == [d["id"] for d in js["dots"][1000:]]
    # a profile other than the one planned for is refused
    bad = scalp3d("export", out, "--session", "3", "--resume-from", from_id, "--machine", tmp_path / "nope.toml")
    assert bad.returncode == 2 and "machine profile not found" in bad.stderr
