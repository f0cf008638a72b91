"""Atomic file writing: nothing scalp3d writes is ever left half-written.

Every output goes to a temporary file in the destination folder, is flushed and fsynced, then renamed over the final
name (an atomic operation on POSIX and Windows). An interrupted run leaves either the old file or the new one.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from .errors import InputError


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds, delete it otherwise.

    Use for writers that want a file name (trimesh, pyvista screenshots).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else path.suffix
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text(path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically, with Unix newlines."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj, rows_key=None) -> None:
    """Write ``obj`` as indented JSON (keys in insertion order, finite floats only) atomically.

    With ``rows_key``, that top-level list is written one compact row per line (fast and diff-friendly for the
    tens of thousands of dots of a session).
    """
    if rows_key is None or rows_key not in obj:
        write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")
        return
    head = {k: v for k, v in obj.items() if k != rows_key}
    text = json.dumps(head, indent=1, allow_nan=False)[:-2]
    rows = ",\n  ".join(json.dumps(r, allow_nan=False, separators=(", ", ": ")) for r in obj[rows_key])
    sep = ",\n" if head else "\n"
    write_text(path, f"{text}{sep} \"{rows_key}\": [\n  {rows}\n ]\n}}\n")


def read_json(path, what: str):
    """Read a JSON file the user gave; any failure becomes a one-line :class:`InputError`."""
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found; check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: {what} file is not valid JSON ({exc}); fix or re-export it") from None
