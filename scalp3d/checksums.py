"""The checksums a needle program carries in its header, one definition for the writer and the verifier.

Each is the first 16 hex digits of a sha256. They name what a program was made from (the plan, the head) and what it
holds (its dot ids and plunge tips as written), so that ``scalp3d verify`` on a lone ``.ngc`` can tell a program that
was cut, padded, edited or made for another head or plan. Nothing here computes geometry.
"""
from __future__ import annotations

import hashlib

import numpy as np

#: hex digits kept of each sha256
DIGITS = 16


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGITS]


def head_checksum(vertices) -> str:
    """Checksum of a head's vertices (n,3) in mm, scan axes: sha256 of ``n`` and the vertices as little-endian float32.

    float32 because ``head.ply`` stores its vertices as float32: the float64 vertices the pipeline holds in memory
    and the ones :func:`scalp3d.surface.load_head` reads back from ``head.ply`` give the same checksum.

    >>> head_checksum(np.zeros((3, 3)))
    '41db1dc2ff0f27e5'
    """
    v = np.ascontiguousarray(np.asarray(vertices, dtype=np.float64).reshape(-1, 3), dtype="<f4")
    return _sha(f"{len(v)};".encode() + v.tobytes())


def ids_checksum(ids) -> str:
    """Checksum of a program's dot ids (k,) in plunge order: sha256 of ``"id;"`` for each."""
    return _sha("".join(f"{int(i)};" for i in ids).encode())


def tips_checksum(tip_words) -> str:
    """Checksum of a program's plunge tips exactly as written: ``tip_words`` is one ``(x, y, z)`` triple of the
    number strings of each ``G1`` line (machine units), in plunge order; sha256 of ``"x y z;"`` for each."""
    return _sha("".join(f"{x} {y} {z};" for x, y, z in tip_words).encode())


def plan_checksum(text) -> str:
    """Checksum of a plan: sha256 of the ``plan.toml`` text (str, encoded as UTF-8) or its bytes."""
    return _sha(text.encode("utf-8") if isinstance(text, str) else bytes(text))
