"""Atomic file writing: nothing scalp3d writes is ever left half-written, stale or clobbered.

Every output goes to a temporary file in the destination folder, is flushed and fsynced, then renamed over the final
name (an atomic operation on POSIX and Windows). An interrupted run leaves either the old file or the new one. A whole
plan is written into a temporary folder beside its destination and swapped in at the end (:func:`staged_dir`), so a
re-plan leaves exactly the new plan's files and an error leaves nothing. Files and folders get the permissions the
user's umask gives (temporary files are created private, then opened up as a plain ``open`` would have made them).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

from .errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_up(path, mode) -> None:
    """Give ``path`` the permissions ``mode`` minus the umask (mkstemp/mkdtemp create them 0600/0700)."""
    with contextlib.suppress(OSError):
        os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def staged_dir(out_dir, keep_previous: bool):
    """Yield a new temporary folder beside ``out_dir``; when the block succeeds it becomes ``out_dir``.

    A folder already at ``out_dir`` is moved to ``DIR.previous-N`` (the smallest N free) when ``keep_previous``, else
    deleted once the new one is in place. When the block fails the temporary folder is removed and ``out_dir`` is left
    as it was. Yields a namespace: ``.path`` the temporary folder to write into; after the block, ``.previous`` is
    where the old folder was kept (None when there was none or it was deleted).
    """
    import shutil
    import types

    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="." + out_dir.name + ".partial-", dir=out_dir.parent))
    except OSError as exc:
        raise _unwritable(out_dir, out_dir.parent, exc, "--out folder") from None
    _open_up(tmp, 0o777)
    stage = types.SimpleNamespace(path=tmp, previous=None)
    try:
        yield stage
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _destination_full_or_closed(exc):
            raise InputError(f"{out_dir}: the plan could not be written ({exc.strerror}); nothing was written there: "
                             "free some space or choose another --out folder") from None
        raise
    old = None
    if out_dir.exists():
        if keep_previous:
            n = 1
            while out_dir.with_name(f"{out_dir.name}.previous-{n}").exists():
                n += 1
            old = out_dir.with_name(f"{out_dir.name}.previous-{n}")
        else:
            old = Path(tempfile.mkdtemp(prefix="." + out_dir.name + ".old-", dir=out_dir.parent))
            old.rmdir()
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None and not keep_previous:
        shutil.rmtree(old, ignore_errors=True)
    stage.previous = old if keep_previous else None


#: errors of a destination rather than of scalp3d: a full disk or quota, a read-only or forbidden folder
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _unwritable(target, where, exc, other) -> InputError:
    """The one-line error for a ``target`` that cannot be made in the folder ``where``; ``other``: what to choose."""
    return InputError(f"{target}: cannot write in {where} ({exc.strerror or exc}); choose another {other}")


def _destination_full_or_closed(exc) -> bool:
    """An error of the destination rather than of scalp3d: a full disk or quota, a read-only or forbidden folder."""
    return isinstance(exc, OSError) and exc.errno in _FULL_OR_READ_ONLY


def check_writable(out_dir) -> None:
    """Raise a one-line :class:`InputError` at once when a plan folder cannot be made at ``out_dir``: its nearest
    existing parent refuses a new folder (read-only, not one's own, a system folder such as /proc) or is a file.
    Checked before the work, so that the practitioner does not wait for a plan that cannot be written; a probe
    folder is made and removed, nothing else."""
    base = Path(out_dir).absolute().parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise InputError(f"{out_dir}: {base} is a file, not a folder; choose another --out folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".scalp3d-probe-", dir=base))
    except OSError as exc:
        raise _unwritable(out_dir, base, exc, "--out folder") from None


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds, delete it otherwise.

    Use for writers that want a file name (trimesh, pyvista screenshots).
    """
    path = Path(path)
    suffix = suffix if suffix is not None else path.suffix
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".part" + suffix, dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, path.parent, exc, "folder") from None
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _open_up(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _destination_full_or_closed(exc):
            raise InputError(f"{path}: could not be written ({exc.strerror}); the file there before is kept: free "
                             "some space or choose another folder") from None
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
    text = json.dumps(head, indent=1, allow_nan=False)[:-2] if head else "{"  # the head's keys without its "\n}"
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


def plan_folder(folder) -> Path:
    """``folder`` as a Path, checked to be a folder `scalp3d plan` wrote (head.ply, landmarks.json, plan.toml and
    dots.csv in it); raises InputError naming what is missing."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d}: not a folder; give the folder `scalp3d plan` wrote")
    for name in ("head.ply", "landmarks.json", "plan.toml", "dots.csv"):
        if not (d / name).is_file():
            raise InputError(f"{d}: has no {name}; give a folder `scalp3d plan` wrote (re-run the plan if a file "
                             "was removed)")
    return d
