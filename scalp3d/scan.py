"""Compatibility module: the scan reader now lives in :mod:`scalp3d.reading` (sniffing, one module per family of
formats, units). The names other modules and scripts import from here are re-exported unchanged; new code imports
from :mod:`scalp3d.reading`. Nothing may be defined here.
"""
from __future__ import annotations

from .reading import (CLOUD_FORMATS, MAX_COORDINATE, MAX_NONFINITE_FRACTION, MESH_FORMATS, PLANE_THICKNESS_RATIO,
                      check_head_width, decide_units, head_width, load_scan, suggested_scale)
from .reading.ply import _ply_check_sizes, _ply_header
from .reading.sniff import HEADER_MAX_BYTES, TEXT_MIN_BYTES_PER_VALUE

__all__ = ["load_scan", "head_width", "decide_units", "check_head_width", "suggested_scale", "MESH_FORMATS",
           "CLOUD_FORMATS", "MAX_NONFINITE_FRACTION", "PLANE_THICKNESS_RATIO", "MAX_COORDINATE", "HEADER_MAX_BYTES",
           "TEXT_MIN_BYTES_PER_VALUE", "_ply_header", "_ply_check_sizes"]
