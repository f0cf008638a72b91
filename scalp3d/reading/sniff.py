"""What a scan file is: format sniffing from the first bytes, and the one-line failures every reader shares.

Each extension names the content it must hold; :func:`_check_kind` refuses a file whose first bytes say otherwise
(naming what it looks like) before any reader runs. :func:`_fail` and :func:`_truncated` word a reader's refusal the
same way for every format. Nothing here reads a whole file or allocates by a header's counts.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError

MESH_FORMATS = {".ply", ".obj", ".stl", ".off", ".glb", ".gltf"}
CLOUD_FORMATS = {".pcd", ".xyz", ".pts", ".txt"}

#: headers (PLY, PCD) must end within this many bytes
HEADER_MAX_BYTES = 1 << 16
#: the fewest bytes one value takes in a text format: a digit and a separator
TEXT_MIN_BYTES_PER_VALUE = 2

#: what the content of each extension must look like (see :func:`_sniff`)
_EXPECTED = {".ply": "PLY", ".obj": "OBJ", ".stl": "STL", ".off": "OFF", ".glb": "GLB", ".gltf": "glTF",
             ".pcd": "PCD", ".xyz": "text", ".pts": "text", ".txt": "text"}
_EXT_OF = {"PLY": ".ply", "OBJ": ".obj", "STL": ".stl", "OFF": ".off", "GLB": ".glb", "glTF": ".gltf",
           "PCD": ".pcd", "text": ".xyz"}
_DESCRIBE = {"text": "text point cloud (x y z per line)"}


def _fail(path, fmt, reason, fix="re-export the scan"):
    fmt = _DESCRIBE.get(fmt, fmt)
    raise InputError(f"{path}: cannot be read as {_a(fmt)} {fmt} scan: {reason}; {fix}")


def _a(word: str) -> str:
    """The article for a format name: 'an OBJ', 'an OFF', 'an STL', 'a PLY'."""
    return "an" if word[:1] in "AEIOU" or word in ("STL", "XYZ") else "a"


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _truncated(path, name, count, got, fmt="PLY", unit="rows"):
    what = {"vertex": "vertices", "face": "faces"}.get(name, f"'{name}' elements")
    _fail(path, fmt, f"truncated: the header promises {count:,} {what} but the file holds {got:,} {unit} of them")


def _sniff(head: bytes, size: int):
    """What the first bytes of a file look like: 'PLY', 'GLB', 'PCD', 'STL', 'OFF', 'glTF', 'OBJ', 'text', a
    description of another known kind ('PNG image'...), 'binary data' or None."""
    if head.startswith(b"ply") and head[3:4] in (b"\n", b"\r"):
        return "PLY"
    if head.startswith(b"glTF"):
        return "GLB"
    for magic, kind in ((b"\x89PNG", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"PK\x03\x04", "ZIP archive"),
                        (b"%PDF", "PDF document")):
        if head.startswith(magic):
            return kind
    text = head[:4096].decode("latin-1")
    if re.search(r"^FIELDS\s", text, re.M) and re.search(r"^(POINTS|WIDTH|DATA)\s", text, re.M):
        return "PCD"
    if size >= 84 and 84 + 50 * int.from_bytes(head[80:84], "little") == size:
        return "STL"
    if "\x00" in text:
        return "binary data"
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "glTF"
    if re.match(r"[A-Z]*OFF\b", stripped):
        return "OFF"
    if stripped.lower().startswith("solid") and ("facet" in text or len(text) < 4096):
        return "STL"
    if re.search(r"^\s*(v|vt|vn|f|mtllib|usemtl|o|g)\s", text, re.M):
        return "OBJ"
    for line in stripped.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        try:
            [float(t) for t in line.replace(",", " ").split()]
            return "text"
        except ValueError:
            return None
    return None


def _check_kind(path: Path, ext: str, size: int) -> None:
    """Refuse a file whose content is not the format its extension names (one line, naming what it looks like)."""
    with open(path, "rb") as fh:
        head = fh.read(HEADER_MAX_BYTES)
    kind = _sniff(head, size)
    expected = _EXPECTED[ext]
    if kind == expected:
        return
    if head.startswith(b"\xef\xbb\xbf") and _sniff(head[3:], size - 3) == expected:
        raise InputError(f"{path}: starts with a byte-order mark (BOM) before its {ext[1:].upper()} content; save it "
                         "again as plain text (UTF-8 without BOM, or ASCII)")
    if expected == "STL" and kind in ("binary data", None):
        return  # a binary STL whose size does not match its triangle count: _check_stl says how
    name = ext[1:].upper()
    what = f"{_a(name)} {name} file" if expected != "text" else "a text point cloud (x y z per line)"
    if kind in _EXT_OF:
        raise InputError(f"{path}: is not {what}: its content looks like {_DESCRIBE.get(kind, kind + ' data')}; "
                         f"rename it to {_EXT_OF[kind]} or re-export the scan")
    if kind is not None:
        raise InputError(f"{path}: is not {what}: its content looks like {kind}; re-export the scan")
    raise InputError(f"{path}: is not {what}: it does not start like one; re-export the scan")
