"""Shared test setup.

The CUDA kernels run under numba's CUDA simulator: the flag must be in the environment before numba is imported.
The real head lives in ../shared/data/heads beside the project (never copied into it).
"""
import os
from pathlib import Path

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_HEADS = ROOT.parent / "shared" / "data" / "heads"
LEE_OBJ = SHARED_HEADS / "lee-perry-smith.obj"
#: the Lee Perry-Smith scan has no unit; its skull is about 3.2 units wide, so about 48 mm per unit
LEE_SCALE_MM = 48.0


def need_shared(path=LEE_OBJ):
    """Skip (one line) when ../shared/data/heads is absent, except under CI (``CI`` set), which has it: there its
    absence fails the run."""
    if not path.exists():
        msg = f"the real head {path} is absent (../shared/data/heads beside the project)"
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def lee_path():
    return need_shared()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds and installs the wheel in a fresh virtualenv (minutes); CI runs "
                            "it, `pytest -m 'not slow'` skips it")


def pytest_sessionstart(session):
    """With a cold kernel cache (a fresh CI machine), the first run's second compiling process (scalp3d.warmup)
    compiles beside the first tests, as it does beside a first ``scalp3d`` command; the tests' runs share the
    compiling with it by stages. Nothing when the cache is warm or ``SCALP3D_NO_WARMUP`` is set."""
    from scalp3d import warmup

    warmup.start()
