"""The patient's case file: one SQLite file per patient holding the scans, the reference head, the landmarks, every plan
revision with every dot, each session's state, each program written, notes and an audit trail (issue 14, points 1 and
5). The storage layer only: no command line, no registration, no placement.

Safety of the data
------------------
* Every change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) that also appends one audit row and bumps the
  ``changes`` counter of ``meta``: a kill at any point leaves the case as before or as after the change.
* Rollback journal (``journal_mode=DELETE``, ``synchronous=FULL``), not WAL: the case is one self-contained file
  after every commit (a patient's file is copied, backed up and mailed; with WAL, committed changes may sit in a
  ``-wal`` file beside it and a copy of the main file alone loses them, and WAL needs shared memory, which network
  folders do not give). A kill during a change leaves a hot journal (``CASE-journal``) that the next opening rolls back;
  never delete or separate it from the case while it exists.
* One writer: a process opening a case for writing holds an exclusive ``flock`` on ``CASE.lock`` beside it (released
  by the kernel when the process ends, even by SIGKILL; the empty lock file may stay and holds no data). A second
  writer is refused at once, in one line; a transaction of anything else holding SQLite's write lock is waited for
  ``config.CASE_BUSY_TIMEOUT_S`` at most, then refused in the same words.
* Nothing is overwritten: scans, the head, landmarks, revisions, dots, programs, notes and the audit rows are
  append-only (SQLite triggers refuse any UPDATE or DELETE); a new plan is a new revision; a revision must carry every
  done dot bit for bit (checked here with a message naming the dot, and again by a trigger when the revision is
  sealed); a done session cannot change state.
* Opening checks the file (SQLite header, application id, the ``meta`` table, the schema version, ``PRAGMA
  quick_check``): a damaged, truncated, foreign or newer file gets a one-line :class:`CaseError` naming the file and
  the fix. An older schema is migrated in one transaction (:data:`_MIGRATIONS`).

Dots are stored one row per dot and revision (19 columns; the float columns have no declared type, so SQLite keeps
every float64 bit for bit, -0.0 included: a REAL column would store -0.0 as 0); the head's arrays and the scans as
compressed blobs.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import sqlite3
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import config
from .errors import Scalp3dError

#: what ``meta.application`` holds, and the 32-bit ``PRAGMA application_id`` ("S3DC")
APPLICATION = "scalp3d.case"
APPLICATION_ID = 0x53334443
#: the states of a session
STATES = ("planned", "in_progress", "done", "abandoned")
BUSY = "the case is open for writing by another scalp3d process; try again when it finishes"
_SQLITE_HEADER = b"SQLite format 3\x00"


class CaseError(Scalp3dError):
    """A case file cannot be opened or changed as asked; the one-line message names the file and the fix."""

    exit_code = 2


class CaseBusy(CaseError):
    """Another process is writing the case."""


class DoneDotsError(CaseError):
    """A change would move, change or drop a dot already tattooed (a done dot)."""


# ---- records returned --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Revision:
    """A plan revision: number (1, 2, ...), when (ISO 8601 UTC), the comment, the plan text's sha256, the dot count,
    the number of sessions with dots."""

    number: int
    created: str
    comment: str
    plan_sha256: str
    dots: int
    sessions: int


@dataclass(frozen=True)
class SessionState:
    """A session's state: 'planned', 'in_progress' (done up to ``last_dot``), 'done' or 'abandoned'; ``done_dots`` the
    number of its dots on the skin; dates ISO 8601 UTC or None; ``revision`` the revision it was last marked from."""

    session: int
    state: str
    last_dot: int | None
    done_dots: int
    planned_at: str
    started_at: str | None
    done_at: str | None
    abandoned_at: str | None
    revision: int | None


@dataclass(frozen=True)
class ScanRecord:
    """A stored scan: id, file name, sha256 of its bytes, size (bytes), units and scale to mm, when added, role
    ('reference' or 'rescan'), comment."""

    id: int
    name: str
    sha256: str
    size: int
    units: str
    scale_to_mm: float
    added: str
    role: str
    comment: str


@dataclass(frozen=True)
class ProgramFile:
    """One program file written: its name, its checksum (as the command layer defines it), and its dot ids in plunge
    order ((k,) int64)."""

    name: str
    checksum: str
    dot_ids: np.ndarray


@dataclass(frozen=True)
class ProgramSet:
    """The programs of one writing of a session (e.g. ``session-2-part-1.ngc``, ``-part-2``): revision, session, when,
    the frame and registration (JSON-able dicts), the registration residual (mm RMS, or None), the scan used (id or
    None) and the files in order."""

    id: int
    revision: int
    session: int
    written: str
    frame: dict
    registration: dict | None
    residual_mm: float | None
    scan_id: int | None
    files: tuple

    def order(self) -> np.ndarray:
        """The session's dot ids in visit order: the files' ids one after the other."""
        parts = [f.dot_ids for f in self.files]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@dataclass(frozen=True)
class TouchUp:
    """A touch-up session (years after the course): its session number, the revision that added it, its mode
    ('rehit': the new dots re-hit done dots' positions; 'interleave': new dots at ``fraction`` of the density between
    all the old ones), the fraction (None for a re-hit), when, and for a re-hit the done dot each new dot re-hits
    ((k,) int64, in the order of the new dots' ids; empty for an interleave)."""

    session: int
    revision: int
    mode: str
    fraction: float | None
    created: str
    rehit_of: np.ndarray


@dataclass(frozen=True)
class Note:
    id: int
    at: str
    who: str
    text: str


@dataclass(frozen=True)
class AuditRow:
    """One change: id, when (ISO 8601 UTC), who (user@host), what (the action), detail (a dict), revision and session
    it concerns (or None)."""

    id: int
    at: str
    who: str
    action: str
    detail: dict
    revision: int | None
    session: int | None


# ---- the schema and its migrations ---------------------------------------------------------------------------------

_FLOATS = ("b0", "b1", "b2", "x", "y", "z", "nx", "ny", "nz", "depth_mm", "dot_size_mm")
_DOT_COLUMNS = ("revision", "id", "seq", "session", "face_id", "b0", "b1", "b2", "x", "y", "z", "nx", "ny", "nz",
                "zone", "depth_mm", "needle", "shade", "dot_size_mm")


def _frozen_table(name: str) -> list[str]:
    """Triggers refusing any UPDATE or DELETE of a table's rows."""
    return [(f"CREATE TRIGGER {name}_no_update BEFORE UPDATE ON {name} BEGIN "
            f"SELECT RAISE(ABORT, 'scalp3d: {name} rows are never changed'); END"),
            (f"CREATE TRIGGER {name}_no_delete BEFORE DELETE ON {name} BEGIN "
            f"SELECT RAISE(ABORT, 'scalp3d: {name} rows are never deleted'); END")]


def _differs(a: str, b: str) -> str:
    """SQL: dot row ``a`` differs from dot row ``b`` in anything but revision and seq (zone, needle and shade compared
    by name through their revisions ``ra``/``rb``)."""
    cols = ["session", "face_id", *_FLOATS]
    diff = [f"{a}.{c} IS NOT {b}.{c}" for c in cols]
    for c, names in (("zone", "zone_names"), ("needle", "needle_names"), ("shade", "shade_names")):
        diff.append(f"json_extract(r{a}.{names}, '$[' || {a}.{c} || ']') IS NOT "
                    f"json_extract(r{b}.{names}, '$[' || {b}.{c} || ']')")
    return "(" + " OR ".join(diff) + ")"


def _schema_1(con: sqlite3.Connection) -> None:
    """Schema 1, the first: every table, index and trigger."""
    real = " AND ".join(f"typeof({c}) = 'real'" for c in _FLOATS)
    statements = [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE scans (id INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
           codec TEXT NOT NULL, data BLOB NOT NULL, units TEXT NOT NULL, scale_to_mm REAL NOT NULL,
           added TEXT NOT NULL, role TEXT NOT NULL, comment TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 1), scan_id INTEGER NOT NULL REFERENCES scans(id),
           n_vertices INTEGER NOT NULL, n_faces INTEGER NOT NULL, vertices BLOB NOT NULL, faces BLOB NOT NULL,
           vertex_normals BLOB NOT NULL, colors BLOB, filled BLOB, source TEXT NOT NULL, checksum TEXT NOT NULL,
           added TEXT NOT NULL)""",
        """CREATE TABLE landmarks (id INTEGER PRIMARY KEY, scan_id INTEGER NOT NULL REFERENCES scans(id),
           data TEXT NOT NULL, added TEXT NOT NULL)""",
        """CREATE TABLE revisions (id INTEGER PRIMARY KEY, created TEXT NOT NULL, comment TEXT NOT NULL,
           plan_toml TEXT NOT NULL, plan_sha256 TEXT NOT NULL, n_dots INTEGER NOT NULL, zone_names TEXT NOT NULL,
           needle_names TEXT NOT NULL, shade_names TEXT NOT NULL, dots_sha256 TEXT NOT NULL,
           sealed INTEGER NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE dots (revision INTEGER NOT NULL, id INTEGER NOT NULL CHECK (id > 0), seq INTEGER NOT NULL,
           session INTEGER NOT NULL CHECK (session >= 1), face_id INTEGER NOT NULL, b0, b1, b2, x, y, z, nx, ny, nz,
           zone INTEGER NOT NULL, depth_mm, needle INTEGER NOT NULL, shade INTEGER NOT NULL, dot_size_mm,
           CHECK ({real}), PRIMARY KEY (revision, id)) WITHOUT ROWID""",
        """CREATE TABLE sessions (session INTEGER PRIMARY KEY CHECK (session >= 1),
           state TEXT NOT NULL CHECK (state IN ('planned', 'in_progress', 'done', 'abandoned')), last_dot INTEGER,
           revision INTEGER, planned_at TEXT NOT NULL, started_at TEXT, done_at TEXT, abandoned_at TEXT)""",
        """CREATE TABLE done_dots (id INTEGER PRIMARY KEY, session INTEGER NOT NULL, revision INTEGER NOT NULL,
           done_at TEXT NOT NULL)""",
        """CREATE TABLE program_sets (id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, session INTEGER NOT NULL,
           written TEXT NOT NULL, frame TEXT NOT NULL, registration TEXT, residual_mm REAL, scan_id INTEGER)""",
        """CREATE TABLE programs (set_id INTEGER NOT NULL REFERENCES program_sets(id), seq INTEGER NOT NULL,
           file_name TEXT NOT NULL, checksum TEXT NOT NULL, n_dots INTEGER NOT NULL, dot_ids BLOB NOT NULL,
           PRIMARY KEY (set_id, seq))""",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, text TEXT NOT NULL)",
        """CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL,
           action TEXT NOT NULL, detail TEXT NOT NULL, revision INTEGER, session INTEGER)""",
        # dots go into an unsealed revision only
        """CREATE TRIGGER dots_into_open_revision BEFORE INSERT ON dots
           WHEN (SELECT sealed FROM revisions WHERE id = NEW.revision) IS NOT 0 BEGIN
           SELECT RAISE(ABORT, 'scalp3d: dots are added with their revision only'); END""",
        # a revision: sealed once, and only when it carries every done dot unchanged
        """CREATE TRIGGER revisions_frozen BEFORE UPDATE OF id, created, comment, plan_toml, plan_sha256, n_dots,
           zone_names, needle_names, shade_names, dots_sha256 ON revisions BEGIN
           SELECT RAISE(ABORT, 'scalp3d: revisions are never changed; add a revision'); END""",
        """CREATE TRIGGER revisions_seal_once BEFORE UPDATE OF sealed ON revisions
           WHEN OLD.sealed <> 0 OR NEW.sealed <> 1 BEGIN
           SELECT RAISE(ABORT, 'scalp3d: a revision is sealed once'); END""",
        """CREATE TRIGGER revisions_seal_count BEFORE UPDATE OF sealed ON revisions
           WHEN (SELECT count(*) FROM dots WHERE revision = NEW.id) <> NEW.n_dots BEGIN
           SELECT RAISE(ABORT, 'scalp3d: a revision is sealed with all its dots'); END""",
        f"""CREATE TRIGGER revisions_keep_done_dots BEFORE UPDATE OF sealed ON revisions WHEN EXISTS (
           SELECT 1 FROM done_dots k JOIN dots o ON o.revision = k.revision AND o.id = k.id
           JOIN revisions ro ON ro.id = o.revision JOIN revisions rn ON rn.id = NEW.id
           LEFT JOIN dots n ON n.revision = NEW.id AND n.id = k.id
           WHERE n.id IS NULL OR {_differs('o', 'n')}) BEGIN
           SELECT RAISE(ABORT, 'scalp3d: a done dot would move, change or vanish'); END""",
        ("CREATE TRIGGER revisions_no_delete BEFORE DELETE ON revisions BEGIN "
        "SELECT RAISE(ABORT, 'scalp3d: revisions rows are never deleted'); END"),
        # a done dot exists in its revision; a done session stays done
        """CREATE TRIGGER done_dots_exist BEFORE INSERT ON done_dots WHEN NOT EXISTS (
           SELECT 1 FROM dots d JOIN revisions r ON r.id = d.revision
           WHERE d.revision = NEW.revision AND d.id = NEW.id AND d.session = NEW.session AND r.sealed = 1) BEGIN
           SELECT RAISE(ABORT, 'scalp3d: a done dot must be a dot of its session'); END""",
        """CREATE TRIGGER sessions_done_stays BEFORE UPDATE ON sessions WHEN OLD.state = 'done' BEGIN
           SELECT RAISE(ABORT, 'scalp3d: a done session is never changed'); END""",
        ("CREATE TRIGGER sessions_no_delete BEFORE DELETE ON sessions BEGIN "
        "SELECT RAISE(ABORT, 'scalp3d: sessions rows are never deleted'); END"),
        ("CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta BEGIN "
        "SELECT RAISE(ABORT, 'scalp3d: meta rows are never deleted'); END"),
    ]
    for table in ("scans", "head", "landmarks", "dots", "done_dots", "program_sets", "programs", "notes", "audit"):
        statements += _frozen_table(table)
    for s in statements:
        con.execute(s)


def _schema_2(con: sqlite3.Connection) -> None:
    """Schema 2: touch-ups, the sessions added years after a course (which session, the revision that added it, the
    mode, the fraction of the density, and for a re-hit the done dot each new dot re-hits)."""
    con.execute("""CREATE TABLE touch_ups (session INTEGER PRIMARY KEY CHECK (session >= 1),
       revision INTEGER NOT NULL REFERENCES revisions(id), mode TEXT NOT NULL CHECK (mode IN ('rehit', 'interleave')),
       fraction REAL, created TEXT NOT NULL, rehit_of BLOB NOT NULL)""")
    for statement in _frozen_table("touch_ups"):
        con.execute(statement)


#: ``_MIGRATIONS[k]`` takes a case from schema ``k`` to ``k + 1`` inside the caller's transaction (never commit in
#: one); the current schema is ``len(_MIGRATIONS)``. Schema 0 is a case with only its ``meta`` table. To change the
#: layout, append a function and never edit a published one.
_MIGRATIONS = [_schema_1, _schema_2]


def schema_version() -> int:
    """The case schema this scalp3d writes (older cases are migrated when opened)."""
    return len(_MIGRATIONS)


# ---- small helpers ---------------------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _who() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in the environment
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON")


def _dumps(obj) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=False, sort_keys=False)


def _pack(a: np.ndarray) -> bytes:
    """An array as compressed .npy bytes."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return zlib.compress(buf.getvalue(), config.CASE_ZLIB_LEVEL)


def _unpack(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def _compress(data: bytes, codec: str) -> bytes:
    if codec == "zlib":
        return zlib.compress(data, config.CASE_ZLIB_LEVEL)
    if codec == "lzma":
        import lzma

        return lzma.compress(data)
    raise CaseError(f"config.CASE_SCAN_CODEC = {codec!r} is not a codec; use 'zlib' or 'lzma'")


def _decompress(data: bytes, codec: str) -> bytes:
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "lzma":
        import lzma

        return lzma.decompress(data)
    raise ValueError(f"unknown codec {codec!r}")


def _plan_from_text(text: str, where: str):
    """A stored plan's text back as a :class:`scalp3d.types.Plan` (no file it names is read again: a mask PLY may be
    long gone)."""
    from . import design
    from .errors import parse_toml
    from .types import Plan

    data = parse_toml(text, where)
    zones = data.setdefault("zones", {})
    for z in design.ZONES:
        zones.setdefault(z, {})
    return Plan.from_dict(data)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _header_problem(path: Path) -> str | None:
    """What the file's first bytes say is wrong with it, or None when it starts as a whole SQLite database. Read only
    after SQLite failed on it (reading a database file with a foreign descriptor while this process holds SQLite locks
    on it would drop them)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "empty file"
    if not head.startswith(_SQLITE_HEADER):
        return "not a SQLite database"
    if len(head) < 100:
        return f"truncated: {size} bytes"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] == head[92:96] and pages and size < page * pages:
        return f"truncated: {size:,} of {page * pages:,} bytes"
    return None


# ---- the case ----------------------------------------------------------------------------------------------------

def _guard(method):
    """Any SQLite or decoding failure inside a method as a one-line CaseError naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Scalp3dError as exc:
            flat = _one_line(exc)
            if flat == str(exc):
                raise
            raise type(exc)(flat) from None
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from None
        except (zlib.error, ValueError, KeyError, TypeError, EOFError) as exc:
            raise CaseError(f"{self.path}: the case file is damaged ({_one_line(exc)}); "
                            "restore it from a backup copy") from None

    return wrapper


class Case:
    """A patient's case file, open for reading or for writing. Use :meth:`create` or :meth:`open`; close it (or use it
    as a context manager). Every method returning data reads one consistent state; every change is one transaction.

    Examples
    --------
    >>> with Case.open("patient.case") as case:            # doctest: +SKIP
    ...     dots = case.dots()                             # the latest revision's dots
    ...     print([s.state for s in case.sessions()])
    """

    def __init__(self, path: Path, con: sqlite3.Connection, lock, write: bool, who: str):
        self.path = path
        self._con = con
        self._lock = lock
        self.writable = write
        self.who = who

    # -- opening -------------------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path, *, scan_path, head, landmarks, plan, dots, scan_bytes: bytes | None = None,
               units: str = "mm", scale_to_mm: float = 1.0, comment: str = "", who: str | None = None) -> Case:
        """Make a new case file holding the first scan, the reference head, its landmarks and revision 1 of the plan
        with its dots; every session planned. Returns it open for writing.

        Parameters
        ----------
        path : the case file to make; refused if anything exists there (a case is never overwritten)
        scan_path : the scan's file (its name is kept; its bytes are read unless ``scan_bytes`` is given)
        head : :class:`scalp3d.types.Head`, the reference head (vertices (n,3) float64 mm, faces (m,3) int64)
        landmarks : :class:`scalp3d.types.Landmarks` on the head
        plan : :class:`scalp3d.types.Plan` (stored as its resolved TOML)
        dots : :class:`scalp3d.types.Dots` placed on ``head``
        scan_bytes : the scan's bytes, optional
        units, scale_to_mm : how the scan was read (its units and the factor to mm)
        comment : revision 1's comment
        who : the author written to the audit trail (default user@host)

        Raises
        ------
        CaseError
            the path exists, the folder cannot be written, or an input is malformed.
        """
        import tempfile

        path = Path(path)
        who = who or _who()
        if path.exists() or path.is_symlink():
            raise CaseError(f"{path}: already exists; a case is never overwritten: give a new file name")
        if not path.parent.is_dir():
            raise CaseError(f"{path}: the folder {path.parent} does not exist; make it first")
        if scan_bytes is None:
            scan_bytes = _read_scan(scan_path)
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".new-", dir=path.parent)
        except OSError as exc:
            raise CaseError(f"{path}: cannot write in {path.parent} ({exc.strerror or exc}); "
                            "choose a writable folder") from None
        os.close(fd)
        tmp = Path(tmp)
        try:
            con = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                con.execute("PRAGMA journal_mode = DELETE")
                con.execute("PRAGMA synchronous = FULL")
                stub = cls(path, con, None, True, who)
                with stub._change("create") as rec:
                    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    con.executemany("INSERT INTO meta VALUES (?, ?)",
                                    [("application", APPLICATION), ("schema", "0"), ("created", _now()),
                                     ("created_by", f"scalp3d {_version()}"), ("changes", "0"),
                                     ("case_id", uuid.uuid4().hex[:16])])
                    _migrate(con, 0)
                    scan_id = stub._insert_scan(Path(scan_path).name, scan_bytes, units, scale_to_mm, "reference", "")
                    checksum = stub._insert_head(head, scan_id)
                    con.execute("INSERT INTO landmarks (scan_id, data, added) VALUES (?, ?, ?)",
                                (scan_id, _dumps(_landmarks_dict(landmarks)), _now()))
                    n = stub._insert_revision(plan, dots, comment)
                    rec.update(revision=n, scan=Path(scan_path).name, head=checksum, dots=len(dots))
            finally:
                con.close()
            try:
                os.link(tmp, path)  # atomic, and never over an existing file
            except FileExistsError:
                raise CaseError(f"{path}: already exists; a case is never overwritten: give a new file name") \
                    from None
            except OSError:  # a file system without hard links
                if path.exists():
                    raise CaseError(f"{path}: already exists; a case is never overwritten: give a new file name") \
                        from None
                os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return cls.open(path, write=True, who=who)

    @classmethod
    def open(cls, path, write: bool = False, who: str | None = None) -> Case:
        """Open a case file; checks it (and migrates an older schema, in one transaction).

        Parameters
        ----------
        path : the case file
        write : open for changes; refused at once while another process has it open for writing
        who : the author written to the audit trail (default user@host)

        Raises
        ------
        CaseError
            one line naming the file and the fix: missing, damaged, truncated, not a case, newer schema.
        CaseBusy
            another process is writing it.
        """
        path = Path(path)
        if not path.exists():
            raise CaseError(f"{path}: no such case file; check the path (make one with `scalp3d case new`)")
        if path.is_dir():
            raise CaseError(f"{path}: is a folder, not a case file; give the case file")
        lock = _take_lock(path) if write else None
        con = case = None
        try:
            uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=rw"
            try:
                con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=config.CASE_BUSY_TIMEOUT_S)
            except sqlite3.Error as exc:
                raise CaseError(f"{path}: cannot be opened ({_one_line(exc)}); check the file's permissions") \
                    from None
            case = cls(path, con, lock, write, who or _who())
            case._check()
            return case
        except BaseException:
            if case is not None:  # the connection and the lock are closed here, once: the object's __del__ must not
                case._con = case._lock = None  # close a descriptor number the process has given to another file
            if con is not None:
                con.close()
            _release_lock(lock)
            raise

    @_guard
    def _check(self) -> None:
        """The opening checks; an older schema is migrated. (Guarded: a damaged page can fail inside SQLite's own
        reading of the schema with a text decoding error, not an SQLite one.)"""
        con, path = self._con, self.path
        try:
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA cell_size_check = ON")
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            version = con.execute("PRAGMA user_version").fetchone()[0]
            journal = con.execute("PRAGMA journal_mode").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from None
        foreign = CaseError(f"{path}: not a scalp3d case file (a SQLite database of another program); give the case "
                            "file `scalp3d case new` made")
        if not tables:
            empty = "empty file" if path.stat().st_size == 0 else "an empty SQLite database"
            raise CaseError(f"{path}: not a scalp3d case file ({empty}); give the case file `scalp3d case new` made")
        if app_id != APPLICATION_ID or "meta" not in tables:
            raise foreign
        try:
            meta = dict(con.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from None
        if meta.get("application") != APPLICATION:
            raise foreign
        current = schema_version()
        if version > current:
            raise CaseError(f"{path}: written by a newer scalp3d (case schema {version}; this one reads up to "
                            f"{current}); upgrade scalp3d to open it")
        try:
            bad = [r[0] for r in con.execute("PRAGMA quick_check(3)")]
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from None
        if bad != ["ok"]:
            raise self._damaged(bad[0] if bad else "no answer from the check")
        if journal.lower() == "wal":  # never written so; keep the file self-contained
            with contextlib.suppress(sqlite3.Error):
                con.execute("PRAGMA journal_mode = DELETE")
        if version < current:
            try:
                with self._change("migrate", force=True) as rec:
                    have = con.execute("PRAGMA user_version").fetchone()[0]
                    _migrate(con, have)
                    rec.update(schema_from=have, schema_to=current)
            except CaseError:
                raise
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise self._sqlite_error(exc) from None
                raise CaseError(f"{path}: cannot be upgraded from case schema {version} to {current} "
                                f"({_one_line(exc)}); it is unchanged: open it with the scalp3d that wrote it") \
                    from None
            except Exception as exc:  # noqa: BLE001 - a failed migration leaves the file as it was (rolled back)
                raise CaseError(f"{path}: cannot be upgraded from case schema {version} to {current} "
                                f"({_one_line(exc)}); it is unchanged: open it with the scalp3d that wrote it") \
                    from None
        if not self.writable:
            con.execute("PRAGMA query_only = ON")

    def close(self) -> None:
        """Close the file (and give up writing); idempotent."""
        if self._con is not None:
            self._con.close()
            self._con = None
        _release_lock(self._lock)
        self._lock = None

    def __enter__(self) -> Case:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # (no module globals here: at interpreter exit they may already be None)
        if getattr(self, "_con", None) is None and getattr(self, "_lock", None) is None:
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - a finaliser must not raise
            pass

    # -- errors --------------------------------------------------------------------------------------------------------

    def _damaged(self, reason: str) -> CaseError:
        why = _header_problem(self.path) or _one_line(reason).replace("*** in database main *** ", "")
        why = why if len(why) <= 100 else why[:97] + "..."
        if why in ("not a SQLite database", "empty file"):
            return CaseError(f"{self.path}: not a scalp3d case file ({why}); give the case file `scalp3d case new` "
                             "made")
        return CaseError(f"{self.path}: the case file is damaged ({why}); restore it from a backup copy")

    def _sqlite_error(self, exc: sqlite3.Error) -> CaseError:
        text = _one_line(exc)
        low = text.lower()
        if "locked" in low or "busy" in low:
            return CaseBusy(f"{self.path}: {BUSY}")
        if text.startswith("scalp3d:"):
            kind = DoneDotsError if "done dot" in text else CaseError
            return kind(f"{self.path}: refused by the case file: {text[9:]}")
        if "readonly" in low or "read-only" in low:
            return CaseError(f"{self.path}: the case file or its folder is read-only; copy it somewhere writable")
        if "disk is full" in low or "disk full" in low:
            return CaseError(f"{self.path}: the disk is full (the case is unchanged); free some space and retry")
        if isinstance(exc, sqlite3.OperationalError) and ("unable to open" in low or "disk i/o" in low):
            return CaseError(f"{self.path}: cannot be read or written ({text}); check the disk and the permissions")
        return self._damaged(text)

    # -- transactions --------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self, action: str, revision: int | None = None, session: int | None = None, force: bool = False):
        """One change as one transaction: yields a dict for the audit row's detail; on success appends the audit row,
        bumps ``meta.changes`` and commits; on any failure rolls back."""
        if self._con is None:
            raise CaseError(f"{self.path}: the case is closed; open it again")
        if not (self.writable or force):
            raise CaseError(f"{self.path}: opened for reading; open it with write=True to change it")
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._sqlite_error(exc) from None
        rec: dict = {}
        try:
            yield rec
            rev = rec.pop("_revision", revision)
            ses = rec.pop("_session", session)
            con.execute("INSERT INTO audit (at, who, action, detail, revision, session) VALUES (?, ?, ?, ?, ?, ?)",
                        (_now(), self.who, action, _dumps(rec), rev, ses))
            con.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'changes'")
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _read(self):
        """One consistent read (a read transaction)."""
        if self._con is None:
            raise CaseError(f"{self.path}: the case is closed; open it again")
        con = self._con
        if con.in_transaction:  # inside a change: already consistent
            yield con
            return
        con.execute("BEGIN")
        try:
            yield con
        finally:
            if con.in_transaction:
                con.execute("COMMIT")

    # -- writing pieces (inside a change) ------------------------------------------------------------------------------

    def _insert_scan(self, name, data: bytes, units, scale_to_mm, role, comment) -> int:
        data = bytes(data)
        codec = config.CASE_SCAN_CODEC
        if not isinstance(scale_to_mm, (int, float)) or not np.isfinite(scale_to_mm) or scale_to_mm <= 0:
            raise CaseError(f"{self.path}: scale_to_mm must be a positive number, not {scale_to_mm!r}")
        cur = self._con.execute(
            "INSERT INTO scans (name, sha256, size, codec, data, units, scale_to_mm, added, role, comment) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(name), hashlib.sha256(data).hexdigest(), len(data), codec, _compress(data, codec), str(units),
             float(scale_to_mm), _now(), role, str(comment)))
        return cur.lastrowid

    def _insert_head(self, head, scan_id) -> str:
        from .checksums import head_checksum

        v = np.asarray(head.vertices)
        f = np.asarray(head.faces)
        vn = np.asarray(head.vertex_normals)
        if (v.ndim != 2 or v.shape[1:] != (3,) or len(v) == 0 or f.ndim != 2 or f.shape[1:] != (3,) or len(f) == 0
                or not np.isfinite(v).all() or vn.shape != v.shape):
            raise CaseError(f"{self.path}: the head must have (n,3) finite vertices and normals and (m,3) faces")
        if f.min() < 0 or f.max() >= len(v):
            raise CaseError(f"{self.path}: the head's faces name vertices it does not have")
        checksum = head_checksum(v)
        colors = None if head.colors is None else _pack(np.asarray(head.colors))
        filled = None if head.filled is None else _pack(np.asarray(head.filled, dtype=bool))
        self._con.execute(
            "INSERT INTO head (id, scan_id, n_vertices, n_faces, vertices, faces, vertex_normals, colors, filled, "
            "source, checksum, added) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (scan_id, len(v), len(f), _pack(v.astype(np.float64)), _pack(f.astype(np.int64)),
             _pack(vn.astype(np.float64)), colors, filled, str(head.source), checksum, _now()))
        return checksum

    def _insert_revision(self, plan, dots, comment: str) -> int:
        """Revision rows, its dots, sealed (the trigger checks the done dots), and a session row for any new session."""
        from .design import plan_to_toml

        text = plan_to_toml(plan)
        try:
            same = _plan_from_text(text, "plan") == plan
        except Exception:  # noqa: BLE001 - any failure to read it back means it cannot be stored exactly
            same = False
        if not same:
            raise CaseError(f"{self.path}: this plan does not read back the same from its TOML; load it with "
                            "scalp3d.load_plan")
        cols = _dot_columns(dots, self.path)
        con = self._con
        cur = con.execute(
            "INSERT INTO revisions (created, comment, plan_toml, plan_sha256, n_dots, zone_names, needle_names, "
            "shade_names, dots_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_now(), str(comment), text, hashlib.sha256(text.encode("utf-8")).hexdigest(), len(dots),
             _dumps(list(dots.zone_names)), _dumps(list(dots.needle_names)), _dumps(list(dots.shade_names)),
             _dots_sha256(cols)))
        n = cur.lastrowid
        cols[0] = [n] * len(dots)
        con.executemany(f"INSERT INTO dots ({', '.join(_DOT_COLUMNS)}) VALUES ({', '.join('?' * len(_DOT_COLUMNS))})",
                        zip(*cols))
        con.execute("UPDATE revisions SET sealed = 1 WHERE id = ?", (n,))
        sessions = set(range(1, len(plan.sessions.fractions) + 1)) | {int(s) for s in np.unique(dots.session)}
        now = _now()
        con.executemany("INSERT OR IGNORE INTO sessions (session, state, planned_at) VALUES (?, 'planned', ?)",
                        [(s, now) for s in sorted(sessions)])
        return n

    # -- reading -------------------------------------------------------------------------------------------------------

    def _latest(self, con) -> int:
        n = con.execute("SELECT max(id) FROM revisions WHERE sealed = 1").fetchone()[0]
        if n is None:
            raise CaseError(f"{self.path}: the case holds no plan revision; it is damaged: restore it from a backup")
        return n

    def _revision_number(self, con, revision) -> int:
        if revision is None:
            return self._latest(con)
        row = con.execute("SELECT id FROM revisions WHERE id = ? AND sealed = 1", (int(revision),)).fetchone()
        if row is None:
            have = self._latest(con)
            raise CaseError(f"{self.path}: no plan revision {revision}; the case has revisions 1 to {have}")
        return row[0]

    @property
    def case_id(self) -> str:
        """The case's own id (16 hex digits, made when it was created): programs written from it name it."""
        with self._read() as con:
            row = con.execute("SELECT value FROM meta WHERE key = 'case_id'").fetchone()
        return row[0] if row else ""

    @_guard
    def revisions(self) -> list[Revision]:
        """Every plan revision, oldest first."""
        with self._read() as con:
            rows = con.execute("SELECT r.id, r.created, r.comment, r.plan_sha256, r.n_dots, "
                               "(SELECT count(DISTINCT session) FROM dots d WHERE d.revision = r.id) "
                               "FROM revisions r WHERE sealed = 1 ORDER BY id").fetchall()
        return [Revision(*r) for r in rows]

    @_guard
    def plan_text(self, revision: int | None = None) -> str:
        """A revision's plan as its resolved TOML text (the latest revision when None)."""
        with self._read() as con:
            n = self._revision_number(con, revision)
            text, sha = con.execute("SELECT plan_toml, plan_sha256 FROM revisions WHERE id = ?", (n,)).fetchone()
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != sha:
            raise self._damaged(f"revision {n}'s plan does not match its checksum")
        return text

    @_guard
    def plan(self, revision: int | None = None):
        """A revision's :class:`scalp3d.types.Plan` (the latest revision when None)."""
        text = self.plan_text(revision)
        return _plan_from_text(text, f"{self.path} (revision {revision or 'latest'})")

    @_guard
    def dots(self, revision: int | None = None):
        """A revision's :class:`scalp3d.types.Dots` (the latest when None), exactly as stored (same order, every bit).
        """
        with self._read() as con:
            n = self._revision_number(con, revision)
            dots = self._dots_of(con, n)
            want = con.execute("SELECT dots_sha256 FROM revisions WHERE id = ?", (n,)).fetchone()[0]
        if _dots_sha256(_dot_columns(dots, self.path)) != want:
            raise self._damaged(f"revision {n}'s dots do not match their checksum")
        return dots

    def _dots_of(self, con, n: int, where: str = "", args=()):
        from .types import Dots

        names = con.execute("SELECT zone_names, needle_names, shade_names FROM revisions WHERE id = ?",
                            (n,)).fetchone()
        rows = con.execute(f"SELECT {', '.join(_DOT_COLUMNS[1:])} FROM dots WHERE revision = ? {where}",
                           (n, *args)).fetchall()
        a = np.array(rows, dtype=np.float64).reshape(-1, len(_DOT_COLUMNS) - 1)
        a = a[np.argsort(a[:, 1], kind="stable")]
        col = {c: a[:, k] for k, c in enumerate(_DOT_COLUMNS[1:])}

        def ints(c):
            return col[c].astype(np.int64)

        def stack(*cs):
            return np.ascontiguousarray(np.column_stack([col[c] for c in cs]))

        zone_names, needle_names, shade_names = (tuple(json.loads(s)) for s in names)
        return Dots(positions=stack("x", "y", "z"), normals=stack("nx", "ny", "nz"), face_ids=ints("face_id"),
                    session=ints("session"), ids=ints("id"), bary=stack("b0", "b1", "b2"), zone=ints("zone"),
                    depth_mm=col["depth_mm"].copy(), needle=ints("needle"), shade=ints("shade"),
                    dot_size_mm=col["dot_size_mm"].copy(), zone_names=zone_names, needle_names=needle_names,
                    shade_names=shade_names)

    @_guard
    def done_ids(self) -> np.ndarray:
        """The ids of every dot on the skin (done), sorted, (k,) int64."""
        with self._read() as con:
            return np.array([r[0] for r in con.execute("SELECT id FROM done_dots ORDER BY id")], dtype=np.int64)

    @_guard
    def done_dots(self):
        """The dots on the skin as :class:`scalp3d.types.Dots` (taken from the latest revision, which carries every
        one of them unchanged): the fixed dots a revision or a touch-up places around."""
        with self._read() as con:
            n = self._latest(con)
            return self._dots_of(con, n, "AND id IN (SELECT id FROM done_dots)")

    @_guard
    def next_dot_id(self) -> int:
        """An id no dot of any revision has used: give new or moved dots ids from here, so that an id always names one
        place on the head."""
        with self._read() as con:
            return int(con.execute("SELECT coalesce(max(id), 0) + 1 FROM dots").fetchone()[0])

    @_guard
    def sessions(self) -> list[SessionState]:
        """Every session's state, by session number."""
        with self._read() as con:
            rows = con.execute("SELECT s.session, s.state, s.last_dot, "
                               "(SELECT count(*) FROM done_dots k WHERE k.session = s.session), s.planned_at, "
                               "s.started_at, s.done_at, s.abandoned_at, s.revision FROM sessions s "
                               "ORDER BY session").fetchall()
        return [SessionState(*r) for r in rows]

    @_guard
    def head(self):
        """The reference :class:`scalp3d.types.Head` (vertices, faces, normals, colours and filled marks as stored)."""
        from .checksums import head_checksum
        from .types import Head

        with self._read() as con:
            row = con.execute("SELECT vertices, faces, vertex_normals, colors, filled, source, checksum, n_vertices, "
                              "n_faces FROM head WHERE id = 1").fetchone()
        if row is None:
            raise self._damaged("no head")
        v, f, vn = _unpack(row[0]), _unpack(row[1]), _unpack(row[2])
        if v.shape != (row[7], 3) or f.shape != (row[8], 3) or head_checksum(v) != row[6]:
            raise self._damaged("the head does not match its checksum")
        return Head(vertices=v, faces=f, vertex_normals=vn, source=row[5],
                    colors=None if row[3] is None else _unpack(row[3]),
                    filled=None if row[4] is None else _unpack(row[4]))

    @_guard
    def head_checksum(self) -> str:
        """The reference head's checksum (:func:`scalp3d.checksums.head_checksum`)."""
        with self._read() as con:
            return con.execute("SELECT checksum FROM head WHERE id = 1").fetchone()[0]

    @_guard
    def landmarks(self, scan_id: int | None = None):
        """The :class:`scalp3d.types.Landmarks` of a scan (the reference scan's when None)."""
        from .types import Landmarks

        with self._read() as con:
            if scan_id is None:
                scan_id = con.execute("SELECT scan_id FROM head WHERE id = 1").fetchone()[0]
            row = con.execute("SELECT data FROM landmarks WHERE scan_id = ? ORDER BY id DESC LIMIT 1",
                              (int(scan_id),)).fetchone()
        if row is None:
            raise CaseError(f"{self.path}: no landmarks stored for scan {scan_id}")
        d = json.loads(row[0])
        arr = {k: (None if d.get(k) is None else np.array(d[k], dtype=np.float64))
               for k in ("nasion", "lpa", "rpa", "glabella", "vertex", "inion", "face_axes")}
        return Landmarks(**arr, sources=dict(d.get("sources", {})))

    @_guard
    def scans(self) -> list[ScanRecord]:
        """Every stored scan (without its bytes), oldest first."""
        with self._read() as con:
            rows = con.execute("SELECT id, name, sha256, size, units, scale_to_mm, added, role, comment FROM scans "
                               "ORDER BY id").fetchall()
        return [ScanRecord(*r) for r in rows]

    @_guard
    def scan_bytes(self, scan_id: int = 1) -> bytes:
        """A stored scan's original bytes (checked against their sha256)."""
        with self._read() as con:
            row = con.execute("SELECT data, codec, sha256, size FROM scans WHERE id = ?", (int(scan_id),)).fetchone()
        if row is None:
            raise CaseError(f"{self.path}: no scan {scan_id}; `scalp3d case show` lists the scans")
        data = _decompress(row[0], row[1])
        if len(data) != row[3] or hashlib.sha256(data).hexdigest() != row[2]:
            raise self._damaged(f"scan {scan_id} does not match its checksum")
        return data

    @_guard
    def program_sets(self, session: int | None = None) -> list[ProgramSet]:
        """The programs written, one :class:`ProgramSet` per writing, oldest first (of one session when given)."""
        with self._read() as con:
            q = "SELECT id, revision, session, written, frame, registration, residual_mm, scan_id FROM program_sets"
            sets = con.execute(q + (" WHERE session = ?" if session is not None else "") + " ORDER BY id",
                               (() if session is None else (int(session),))).fetchall()
            out = []
            for s in sets:
                files = tuple(ProgramFile(name, checksum, np.frombuffer(zlib.decompress(ids), dtype="<i8").copy())
                              for name, checksum, ids in con.execute(
                                  "SELECT file_name, checksum, dot_ids FROM programs WHERE set_id = ? ORDER BY seq",
                                  (s[0],)))
                out.append(ProgramSet(s[0], s[1], s[2], s[3], json.loads(s[4]),
                                      None if s[5] is None else json.loads(s[5]), s[6], s[7], files))
        return out

    @_guard
    def touch_ups(self) -> list[TouchUp]:
        """The touch-up sessions, oldest first."""
        with self._read() as con:
            rows = con.execute("SELECT session, revision, mode, fraction, created, rehit_of FROM touch_ups "
                               "ORDER BY session").fetchall()
        return [TouchUp(r[0], r[1], r[2], r[3], r[4], np.frombuffer(zlib.decompress(r[5]), dtype="<i8").copy())
                for r in rows]

    @_guard
    def notes(self) -> list[Note]:
        """Every note, oldest first."""
        with self._read() as con:
            return [Note(*r) for r in con.execute("SELECT id, at, who, text FROM notes ORDER BY id")]

    @_guard
    def history(self) -> list[AuditRow]:
        """The audit trail: one row per change, oldest first."""
        with self._read() as con:
            rows = con.execute("SELECT id, at, who, action, detail, revision, session FROM audit ORDER BY id").fetchall()
        return [AuditRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    @_guard
    def changes(self) -> int:
        """How many changes the case has had (its audit rows): a cheap way to see whether it changed since read."""
        with self._read() as con:
            return int(con.execute("SELECT value FROM meta WHERE key = 'changes'").fetchone()[0])

    # -- changing ------------------------------------------------------------------------------------------------------

    @_guard
    def add_revision(self, plan, dots, comment: str = "", touch_up: dict | None = None) -> int:
        """Store a new plan revision with its dots; returns its number. Every done dot must be in ``dots`` exactly as it
        was tattooed (same id, session, face, barycentric coordinates, position, normal and settings, bit for bit).
        ``touch_up`` (``session``, ``mode``, ``fraction``, ``rehit_of``; see :class:`TouchUp`) records the revision's
        new session as a touch-up, in the same transaction.

        Raises
        ------
        DoneDotsError
            a done dot is missing or differs (the message names it and what changed).
        """
        with self._change("revise") as rec:
            done = self._dots_of(self._con, self._latest(self._con), "AND id IN (SELECT id FROM done_dots)")
            _check_keeps(done, dots, self.path)
            n = self._insert_revision(plan, dots, comment)
            rec.update(_revision=n, dots=len(dots), comment=str(comment), kept_done=len(done))
            if touch_up is not None:
                rehit = np.asarray(touch_up.get("rehit_of", ()), dtype=np.int64)
                self._con.execute("INSERT INTO touch_ups (session, revision, mode, fraction, created, rehit_of) "
                                  "VALUES (?, ?, ?, ?, ?, ?)",
                                  (int(touch_up["session"]), n, str(touch_up["mode"]),
                                   None if touch_up.get("fraction") is None else float(touch_up["fraction"]), _now(),
                                   zlib.compress(rehit.astype("<i8").tobytes())))
                rec.update(touch_up={"session": int(touch_up["session"]), "mode": str(touch_up["mode"]),
                                     "fraction": touch_up.get("fraction")})
        return n

    @_guard
    def mark_done(self, session: int, until_dot: int | None = None, order=None) -> SessionState:
        """Mark a session done, or done up to a dot when it was interrupted.

        Parameters
        ----------
        session : the session number
        until_dot : the id of the last dot tattooed; None when the whole session was done
        order : the session's dot ids in the order they were tattooed ((k,) ints), when ``until_dot`` is given;
            default the visit order of the latest programs written for the session from the latest revision that hold
            ``until_dot`` (:meth:`record_programs`)

        The dots up to ``until_dot`` join those already done (a resumed session's program holds only the rest). When all
        the session's dots are done the session is done. Returns its new state.
        """
        session = int(session)
        with self._change("done", session=session) as rec:
            con = self._con
            row = con.execute("SELECT state, done_at, abandoned_at FROM sessions WHERE session = ?",
                              (session,)).fetchone()
            if row is None:
                have = [r[0] for r in con.execute("SELECT session FROM sessions ORDER BY session")]
                raise CaseError(f"{self.path}: no session {session}; the case has sessions {_ranges(have)}")
            if row[0] == "done":
                raise CaseError(f"{self.path}: session {session} is already done (marked {row[1]})")
            if row[0] == "abandoned":
                raise CaseError(f"{self.path}: session {session} was abandoned ({row[2]}); it cannot be marked done")
            n = self._latest(con)
            ids = np.array([r[0] for r in con.execute("SELECT id FROM dots WHERE revision = ? AND session = ?",
                                                      (n, session))], dtype=np.int64)
            if until_dot is None:
                now_done = ids
            else:
                until_dot = int(until_dot)
                if until_dot not in set(ids.tolist()):
                    raise CaseError(f"{self.path}: dot {until_dot} is not a dot of session {session} in revision {n}")
                if order is None:
                    order = self._order_from_programs(con, n, session, until_dot)
                order = np.asarray(order, dtype=np.int64).ravel()
                stray = np.setdiff1d(order, ids)
                if len(stray):
                    raise CaseError(f"{self.path}: the order names dot {int(stray[0])}, not a dot of session "
                                    f"{session} in revision {n}")
                hit = np.flatnonzero(order == until_dot)
                if len(hit) == 0:
                    raise CaseError(f"{self.path}: dot {until_dot} is not in the order given")
                now_done = order[:hit[0] + 1]
            stamp = _now()
            con.executemany("INSERT OR IGNORE INTO done_dots (id, session, revision, done_at) VALUES (?, ?, ?, ?)",
                            [(int(i), session, n, stamp) for i in now_done])
            left = con.execute("SELECT count(*) FROM dots WHERE revision = ? AND session = ? AND id NOT IN "
                               "(SELECT id FROM done_dots)", (n, session)).fetchone()[0]
            state = "done" if left == 0 else "in_progress"
            con.execute("UPDATE sessions SET state = ?, last_dot = ?, revision = ?, started_at = coalesce(started_at, ?),"
                        " done_at = ? WHERE session = ?",
                        (state, until_dot, n, stamp, stamp if state == "done" else None, session))
            rec.update(_revision=n, state=state, until_dot=until_dot, dots_marked=len(now_done), dots_left=left)
        return next(s for s in self.sessions() if s.session == session)

    def _order_from_programs(self, con, n, session, until_dot) -> np.ndarray:
        for (set_id,) in con.execute("SELECT id FROM program_sets WHERE revision = ? AND session = ? ORDER BY id DESC",
                                     (n, session)).fetchall():
            parts = [np.frombuffer(zlib.decompress(b), dtype="<i8") for (b,) in con.execute(
                "SELECT dot_ids FROM programs WHERE set_id = ? ORDER BY seq", (set_id,))]
            order = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            if (order == until_dot).any():
                return order
        raise CaseError(f"{self.path}: no program written for session {session} of revision {n} holds dot "
                        f"{until_dot}; write the session's programs first or give the order")

    @_guard
    def abandon(self, session: int, reason: str = "") -> None:
        """Mark a session abandoned (its dots already done stay done)."""
        session = int(session)
        with self._change("abandon", session=session) as rec:
            row = self._con.execute("SELECT state FROM sessions WHERE session = ?", (session,)).fetchone()
            if row is None:
                raise CaseError(f"{self.path}: no session {session}")
            if row[0] in ("done", "abandoned"):
                raise CaseError(f"{self.path}: session {session} is {row[0]} already")
            self._con.execute("UPDATE sessions SET state = 'abandoned', abandoned_at = ? WHERE session = ?",
                              (_now(), session))
            rec.update(reason=str(reason))

    @_guard
    def record_programs(self, session: int, files, *, frame: dict, registration: dict | None = None,
                        residual_mm: float | None = None, scan_id: int | None = None,
                        revision: int | None = None) -> int:
        """Record the programs of one writing of a session; returns the record's id.

        Parameters
        ----------
        session : the session number
        files : sequence of :class:`ProgramFile` (name, checksum, dot ids in plunge order), in the order they run
        frame : the axes the programs are written in (JSON-able: e.g. a 4x4 transform from the reference head, mm)
        registration : the registration report (JSON-able) when written for a re-scan, else None
        residual_mm : the registration's RMS residual (mm), or None
        scan_id : the scan the programs were registered to (:meth:`add_scan`), or None
        revision : the revision the programs were made from (the latest when None)
        """
        session = int(session)
        files = list(files)
        with self._change("programs", session=session) as rec:
            con = self._con
            n = self._revision_number(con, revision)
            ids = {r[0] for r in con.execute("SELECT id FROM dots WHERE revision = ? AND session = ?", (n, session))}
            if not ids:
                raise CaseError(f"{self.path}: revision {n} has no dots in session {session}")
            if scan_id is not None and con.execute("SELECT 1 FROM scans WHERE id = ?", (int(scan_id),)).fetchone() \
                    is None:
                raise CaseError(f"{self.path}: no scan {scan_id}")
            if residual_mm is not None and not np.isfinite(residual_mm):
                raise CaseError(f"{self.path}: the registration residual must be a finite number of mm")
            cur = con.execute("INSERT INTO program_sets (revision, session, written, frame, registration, residual_mm,"
                              " scan_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (n, session, _now(), _dumps(frame), None if registration is None else
                               _dumps(registration), None if residual_mm is None else float(residual_mm),
                               None if scan_id is None else int(scan_id)))
            set_id = cur.lastrowid
            for k, f in enumerate(files):
                d = np.asarray(f.dot_ids, dtype=np.int64).ravel()
                bad = [int(i) for i in d if int(i) not in ids]
                if bad:
                    raise CaseError(f"{self.path}: program {f.name} names dot {bad[0]}, not a dot of session {session}"
                                    f" in revision {n}")
                con.execute("INSERT INTO programs (set_id, seq, file_name, checksum, n_dots, dot_ids) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (set_id, k, str(f.name), str(f.checksum), len(d), zlib.compress(d.astype("<i8").tobytes())))
            rec.update(_revision=n, set=set_id, files=[str(f.name) for f in files], residual_mm=residual_mm)
        return set_id

    @_guard
    def add_scan(self, scan_path, scan_bytes: bytes | None = None, *, units: str = "mm", scale_to_mm: float = 1.0,
                 landmarks=None, comment: str = "") -> int:
        """Store a re-scan (compressed), with its landmarks when given; returns its id."""
        if scan_bytes is None:
            scan_bytes = _read_scan(scan_path)
        with self._change("scan") as rec:
            sid = self._insert_scan(Path(scan_path).name, scan_bytes, units, scale_to_mm, "rescan", comment)
            if landmarks is not None:
                self._con.execute("INSERT INTO landmarks (scan_id, data, added) VALUES (?, ?, ?)",
                                  (sid, _dumps(_landmarks_dict(landmarks)), _now()))
            rec.update(scan=sid, name=Path(scan_path).name, bytes=len(scan_bytes))
        return sid

    @_guard
    def add_note(self, text: str) -> int:
        """Append a note (notes are never edited: correct one with another); returns its id."""
        text = str(text)
        if not text.strip():
            raise CaseError(f"{self.path}: a note needs some text")
        with self._change("note") as rec:
            nid = self._con.execute("INSERT INTO notes (at, who, text) VALUES (?, ?, ?)",
                                    (_now(), self.who, text)).lastrowid
            rec.update(note=nid, text=text if len(text) <= 80 else text[:77] + "...")
        return nid


# ---- module helpers ----------------------------------------------------------------------------------------------

def _version() -> str:
    from . import __version__

    return __version__


def _ranges(values) -> str:
    return ", ".join(str(v) for v in values) or "none"


def _migrate(con: sqlite3.Connection, have: int) -> None:
    """Run the migrations from schema ``have`` to the current one inside the caller's transaction."""
    for k in range(have, schema_version()):
        _MIGRATIONS[k](con)
    con.execute(f"PRAGMA user_version = {schema_version()}")
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(schema_version()),))


def _landmarks_dict(landmarks) -> dict:
    if isinstance(landmarks, dict):
        return dict(landmarks)
    d = landmarks.to_dict()
    if getattr(landmarks, "face_axes", None) is not None:
        d["face_axes"] = np.asarray(landmarks.face_axes, dtype=np.float64).tolist()
    return d


def _dot_columns(dots, path) -> list:
    """The dot table's columns as lists (revision left None), after checking the arrays."""
    n = len(dots)
    try:
        pos = np.asarray(dots.positions, dtype=np.float64).reshape(n, 3)
        nor = np.asarray(dots.normals, dtype=np.float64).reshape(n, 3)
        bary = np.asarray(dots.bary, dtype=np.float64).reshape(n, 3)
        ints = {k: np.asarray(getattr(dots, k)).astype(np.int64, casting="safe").reshape(n)
                for k in ("ids", "session", "face_ids", "zone", "needle", "shade")}
        depth = np.asarray(dots.depth_mm, dtype=np.float64).reshape(n)
        size = np.asarray(dots.dot_size_mm, dtype=np.float64).reshape(n)
    except (ValueError, TypeError) as exc:
        raise CaseError(f"{path}: the dots' arrays do not fit together ({_one_line(exc)})") from None
    if not all(np.isfinite(a).all() for a in (pos, nor, bary, depth, size)):
        raise CaseError(f"{path}: the dots hold a value that is not a finite number")
    if n and (ints["ids"].min() < 1 or len(np.unique(ints["ids"])) != n):
        raise CaseError(f"{path}: the dots' ids must be positive and unique")
    if n and ints["session"].min() < 1:
        raise CaseError(f"{path}: the dots' sessions must be 1 or more")
    for k, names in (("zone", dots.zone_names), ("needle", dots.needle_names), ("shade", dots.shade_names)):
        if n and (ints[k].min() < 0 or ints[k].max() >= len(names)):
            raise CaseError(f"{path}: a dot's {k} is not an index into its {len(names)} names")
    return [None, ints["ids"].tolist(), list(range(n)), ints["session"].tolist(), ints["face_ids"].tolist(),
            *(bary[:, k].tolist() for k in range(3)), *(pos[:, k].tolist() for k in range(3)),
            *(nor[:, k].tolist() for k in range(3)), ints["zone"].tolist(), depth.tolist(), ints["needle"].tolist(),
            ints["shade"].tolist(), size.tolist()]


def _dots_sha256(cols) -> str:
    """sha256 of a revision's dot columns (as :func:`_dot_columns` gives them, in stored order; revision left out):
    integers as little-endian int64, floats as little-endian float64."""
    h = hashlib.sha256()
    for name, col in zip(_DOT_COLUMNS[1:], cols[1:]):
        h.update(np.asarray(col, dtype="<f8" if name in _FLOATS else "<i8").tobytes())
    return h.hexdigest()


def _check_keeps(done, dots, path) -> None:
    """Refuse ``dots`` unless it holds every done dot bit for bit (settings compared by name)."""
    if len(done) == 0:
        return
    new_ids = np.asarray(dots.ids, dtype=np.int64)
    order = np.argsort(new_ids, kind="stable")
    at = np.searchsorted(new_ids[order], done.ids)
    at = np.minimum(at, len(new_ids) - 1) if len(new_ids) else at
    found = (len(new_ids) > 0) & (new_ids[order][at] == done.ids) if len(new_ids) else np.zeros(len(done), bool)
    if not found.all():
        k = int(np.flatnonzero(~found)[0])
        raise DoneDotsError(f"{path}: dot {int(done.ids[k])} of session {int(done.session[k])} is done (on the skin) "
                            f"and the new dots drop it ({int((~found).sum())} done dots missing); a revision keeps "
                            "every done dot: place the new dots around case.done_dots()")
    j = order[at]

    def bits(a):
        return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)

    checks = [("session", done.session, np.asarray(dots.session)[j]),
              ("face", done.face_ids, np.asarray(dots.face_ids)[j]),
              ("position", bits(done.positions), bits(np.asarray(dots.positions)[j])),
              ("normal", bits(done.normals), bits(np.asarray(dots.normals)[j])),
              ("barycentric coordinates", bits(done.bary), bits(np.asarray(dots.bary)[j])),
              ("depth", bits(done.depth_mm), bits(np.asarray(dots.depth_mm)[j])),
              ("dot size", bits(done.dot_size_mm), bits(np.asarray(dots.dot_size_mm)[j])),
              ("zone", np.array(done.zone_names, dtype=object)[done.zone],
               np.array(dots.zone_names, dtype=object)[np.asarray(dots.zone)[j]]),
              ("needle", np.array(done.needle_names, dtype=object)[done.needle],
               np.array(dots.needle_names, dtype=object)[np.asarray(dots.needle)[j]]),
              ("shade", np.array(done.shade_names, dtype=object)[done.shade],
               np.array(dots.shade_names, dtype=object)[np.asarray(dots.shade)[j]])]
    for what, old, new in checks:
        diff = (old != new).reshape(len(done), -1).any(axis=1)
        if diff.any():
            k = int(np.flatnonzero(diff)[0])
            moved = ""
            if what == "position":
                d = float(np.linalg.norm(np.asarray(dots.positions)[j[k]] - done.positions[k]))
                moved = f" by {d:.3g} mm"
            raise DoneDotsError(f"{path}: dot {int(done.ids[k])} of session {int(done.session[k])} is done (on the "
                                f"skin) and the new dots change its {what}{moved} ({int(diff.sum())} done dots "
                                "differ); done dots never move: place the new dots around case.done_dots()")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_scan(scan_path) -> bytes:
    """A scan file's bytes, or one line saying it cannot be read."""
    try:
        return Path(scan_path).read_bytes()
    except OSError as exc:
        raise CaseError(f"{scan_path}: the scan cannot be read ({exc.strerror or exc}); check the path") from None


def _take_lock(path: Path):
    """An exclusive, non-blocking flock on ``CASE.lock`` (held until released or the process ends), or CaseBusy."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock: SQLite's own locks (a transaction at a time) only
        return None
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise CaseError(f"{path}: cannot open it for writing ({exc.strerror or exc} on {lock_path.name}); check that "
                        "the folder is writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise CaseBusy(f"{path}: {BUSY}") from None
    return fd


def _release_lock(fd) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
