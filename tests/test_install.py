"""Install hygiene (issue 11.5): the wheel installs into a fresh virtualenv and plans; switching between a regular and
an editable install in either order leaves a working `scalp3d`; nothing is cached inside the installed package.

Slow (builds a wheel, makes a virtualenv, compiles the kernels for the installed copy): `pytest -m "not slow"` skips
it; the README's test command and CI run it. The virtualenv sees this interpreter's site-packages for the heavy
dependencies (numpy, numba, open3d, vtk: about 1.5 GB that a download would add nothing to), but scalp3d itself
is installed into it, and the test checks that the installed copy is the one that runs.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAN = ("# a small scar plan: a few hundred dots, quick to place\n"
        + "".join(f"[zones.{z}]\ndensity_per_cm2 = 0.0\n"
                  for z in ("hairline", "front", "mid", "crown", "sides", "back"))
        + "[[scars]]\npoints_mm = [[23.5, -21.1, 94.4]]\nwidth_mm = 20.0\ndensity_per_cm2 = 80.0\nmargin_mm = 2.0\n")


def _run(cmd, cwd, env=None):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=1200, env=env)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


@pytest.mark.slow
def test_wheel_and_editable_installs_in_a_fresh_virtualenv(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, ROOT], tmp_path)
    wheel = next(wheels.glob("scalp3d-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path)
    py, exe = venv / "bin" / "python", venv / "bin" / "scalp3d"
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # a user's own cache folder, empty: a first run
    plan = tmp_path / "small.toml"
    plan.write_text(PLAN)
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).stdout.strip()

    def plan_once(tag):
        where = _run([py, "-c", "import scalp3d; print(scalp3d.__file__)"], tmp_path, env).stdout.strip()
        assert _run([exe, "--version"], tmp_path, env).stdout.strip().startswith("scalp3d ")
        r = _run([exe, "demo", "--out", tmp_path / tag, "--plan", plan, "--no-preview"], tmp_path, env)
        assert "verified session-1.ngc: OK" in r.stdout and (tmp_path / tag / "session-3.ngc").exists()
        # nothing compiled into the installed package; the cache is in the user's folder
        assert not list(Path(site).glob("scalp3d/**/*.nbi")) and not list(Path(site).glob("scalp3d/**/*.nbc"))
        assert list((tmp_path / "cache" / "scalp3d" / "numba").rglob("*.nbi"))
        return where

    pip = [py, "-m", "pip", "install", "--no-deps", "--quiet"]
    _run([*pip, wheel], tmp_path, env)
    assert plan_once("wheel").startswith(site)
    _run([*pip, "-e", ROOT], tmp_path, env)  # regular -> editable
    assert plan_once("editable").startswith(str(ROOT))
    _run([*pip, "--force-reinstall", wheel], tmp_path, env)  # editable -> regular
    assert plan_once("wheel-again").startswith(site)
