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


@pytest.fixture(scope="session")
def lee_path():
    if not LEE_OBJ.exists():
        pytest.fail(f"the real head {LEE_OBJ} is missing: the tests need ../shared/data/heads beside the project")
    return LEE_OBJ
