"""The public API (issue 12): every name listed in scalp3d.__all__ resolves, `import scalp3d` stays light, and the
README's "Using scalp3d from Python" example runs as written."""
import re
import subprocess
import sys
from pathlib import Path

import scalp3d

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_public_name_resolves_and_is_documented():
    for name in scalp3d.__all__:
        obj = getattr(scalp3d, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__ and len(obj.__doc__.strip()) > 20, name


def test_import_is_light():
    heavy = "('numba', 'open3d', 'pyvista', 'trimesh')"
    code = f"import sys, scalp3d; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Using scalp3d from Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"[\d,]+ dots, all dots rho 0\.\d\d$", out[0])
    assert "session-1.ngc: OK" in out[1]
    assert (tmp_path / "my-plan" / "session-3.ngc").exists()
