"""scalp3d.fileio: atomic writes (an exception leaves the old file and no temporary), staged plan folders, and the
row-per-line JSON that must still be plain JSON."""
import json

import pytest

import scalp3d.fileio as fileio
from scalp3d.errors import InputError
from scalp3d.fileio import atomic_path, read_json, staged_dir, write_bytes, write_json, write_text


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_text_replaces_and_leaves_nothing_else(tmp_path):
    p = tmp_path / "a.txt"
    write_text(p, "old\n")
    write_text(p, "new\r\nline ü\n")
    assert p.read_bytes() == "new\r\nline ü\n".encode("utf-8")
    assert _names(tmp_path) == ["a.txt"]
    write_text(tmp_path / "sub" / "b.txt", "x")  # the folder is made
    assert (tmp_path / "sub" / "b.txt").read_text() == "x"


def test_exception_inside_atomic_path_keeps_the_old_file(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(p) as tmp:
            assert tmp.parent == tmp_path and tmp != p
            tmp.write_text("half of the new")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old"
    assert _names(tmp_path) == ["plan.json"]


def test_failure_after_the_data_is_written_keeps_the_old_file(tmp_path, monkeypatch):
    """The data is in the temporary file when the flush to disk fails: the old file stays, the temporary goes, and
    the practitioner reads one line saying so."""
    p = tmp_path / "session-1.ngc"
    p.write_bytes(b"old program")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", broken_fsync)
    with pytest.raises(InputError, match="No space left on device.*file there before is kept"):
        write_bytes(p, b"new program" * 1000)
    assert p.read_bytes() == b"old program"
    assert _names(tmp_path) == ["session-1.ngc"]


def test_write_json_refuses_nan_and_keeps_the_old_file(tmp_path):
    p = tmp_path / "summary.json"
    write_json(p, {"ok": 1})
    for obj, rows in (({"x": float("nan")}, None), ({"n": 1, "dots": [{"x": float("inf")}]}, "dots")):
        with pytest.raises(ValueError):
            write_json(p, obj, rows_key=rows)
        assert json.loads(p.read_text()) == {"ok": 1}
    assert _names(tmp_path) == ["summary.json"]


@pytest.mark.parametrize("obj", [
    {"schema": "scalp3d.session", "count": 3, "origin": [0.0, -1.5, 2.25],
     "dots": [{"id": 1, "x": 1.5, "zone": "crown"}, {"id": 2, "x": -0.25, "zone": "hairline, \"front\""},
              {"id": 7, "x": 1e-7, "zone": "ü"}]},
    {"dots": [[1, 2.5], [3, 4.0]]},                   # no key but the rows (its opening brace was lost)
    {"schema": "s", "dots": []},                      # no rows
    {"schema": "s", "dots": [{"nested": {"a": [1, {"b": None}]}}], "after": True},  # rows not last
])
def test_write_json_rows_round_trip(tmp_path, obj):
    p = tmp_path / "s.json"
    write_json(p, obj, rows_key="dots")
    text = p.read_text()
    back = json.loads(text)
    assert back == obj
    assert list(back) == [k for k in obj if k != "dots"] + ["dots"]  # the rows are written last
    lines = text.splitlines()
    for r in obj["dots"]:  # one compact row per line
        assert sum(1 for line in lines if line.strip().rstrip(",") == json.dumps(r, separators=(", ", ": "))) == 1


def test_write_json_without_the_rows_key_is_indented_json(tmp_path):
    p = tmp_path / "a.json"
    obj = {"a": [1, 2], "b": {"c": "d"}}
    write_json(p, obj, rows_key="dots")  # no such key: plain indented JSON
    assert p.read_text() == json.dumps(obj, indent=1) + "\n"


def test_read_json_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="landmarks file not found"):
        read_json(tmp_path / "nope.json", "landmarks")
    bad = tmp_path / "bad.json"
    bad.write_text("{\"a\": ")
    with pytest.raises(InputError, match="landmarks file is not valid JSON") as e:
        read_json(bad, "landmarks")
    assert "\n" not in str(e.value)
    good = tmp_path / "good.json"
    good.write_text('{"nasion": [1, 2, 3]}')
    assert read_json(good, "landmarks") == {"nasion": [1, 2, 3]}


def test_staged_dir_new_folder(tmp_path):
    out = tmp_path / "plan"
    with staged_dir(out, keep_previous=True) as stage:
        assert stage.path.parent == tmp_path and stage.path != out and not out.exists()
        (stage.path / "summary.json").write_text("new")
    assert _names(out) == ["summary.json"] and stage.previous is None
    assert _names(tmp_path) == ["plan"]  # no temporary folder left


def test_staged_dir_keeps_or_deletes_the_old_plan(tmp_path):
    out = tmp_path / "plan"
    out.mkdir()
    (out / "summary.json").write_text("first")
    with staged_dir(out, keep_previous=True) as stage:
        (stage.path / "summary.json").write_text("second")
    assert (out / "summary.json").read_text() == "second"
    assert stage.previous == tmp_path / "plan.previous-1"
    assert (stage.previous / "summary.json").read_text() == "first"
    with staged_dir(out, keep_previous=True) as stage:  # the next free number
        (stage.path / "summary.json").write_text("third")
    assert stage.previous == tmp_path / "plan.previous-2"
    assert (stage.previous / "summary.json").read_text() == "second"
    with staged_dir(out, keep_previous=False) as stage:
        (stage.path / "other.txt").write_text("fourth")
    assert stage.previous is None
    assert _names(out) == ["other.txt"]  # exactly the new folder's files: the old summary.json is gone
    assert _names(tmp_path) == ["plan", "plan.previous-1", "plan.previous-2"]


def test_staged_dir_failure_leaves_the_old_plan(tmp_path):
    out = tmp_path / "plan"
    out.mkdir()
    (out / "summary.json").write_text("old")
    with pytest.raises(KeyError):
        with staged_dir(out, keep_previous=False) as stage:
            (stage.path / "summary.json").write_text("half")
            raise KeyError("boom")
    assert _names(out) == ["summary.json"] and (out / "summary.json").read_text() == "old"
    assert _names(tmp_path) == ["plan"]


def test_a_folder_that_cannot_be_written_is_refused_at_once_in_one_line(tmp_path, monkeypatch):
    """An --out where no folder can be made (a system folder, under a file) is refused before any work, in one line
    naming it; it was found only when the plan was written, after the whole run, as an "internal error"."""
    import errno
    import os

    from scalp3d.fileio import check_writable

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out, words in ((blocker / "plan", "is a file, not a folder"), (blocker / "deeper" / "plan", "is a file")):
        with pytest.raises(InputError, match=words) as e:
            check_writable(out)
        assert str(e.value).count("\n") == 0 and str(out) in str(e.value)
    check_writable(tmp_path / "new" / "deeper" / "plan")  # missing folders on the way are fine: they are made
    assert _names(tmp_path) == ["a-file"]  # and the probe leaves nothing

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio.tempfile, "mkdtemp", refuse)
    for check in (lambda: check_writable(tmp_path / "plan"),
                  lambda: staged_dir(tmp_path / "plan", keep_previous=False).__enter__()):
        with pytest.raises(InputError, match="cannot write in .*Permission denied.*choose another --out") as e:
            check()
        assert str(e.value).count("\n") == 0
    monkeypatch.undo()
    # a disk that fills up while the plan is written: one line, and nothing left behind (the old plan kept)
    out = tmp_path / "plan"
    out.mkdir()
    (out / "summary.json").write_text("old")
    with pytest.raises(InputError, match="could not be written .*No space left.*nothing was written"):
        with staged_dir(out, keep_previous=False) as stage:
            (stage.path / "dots.csv").write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert _names(out) == ["summary.json"] and (out / "summary.json").read_text() == "old"
    assert _names(tmp_path) == ["a-file", "plan"]
    # and a single file (a picture, a case's record): the same, the file there before kept
    with pytest.raises(InputError, match="could not be written .*No space left.*file there before is kept"):
        with atomic_path(out / "summary.json") as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert _names(out) == ["summary.json"] and (out / "summary.json").read_text() == "old"
    with pytest.raises(InputError, match="cannot write in .*a-file") as e:
        write_text(blocker / "x.txt", "x")
    assert str(e.value).count("\n") == 0
