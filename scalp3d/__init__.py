"""scalp3d: plans scalp micropigmentation on a 3D head scan.

A scan in real units becomes a head surface, the practitioner's plan a density field on it, the field blue-noise dots
split into sessions, and each session a needle program (G-code, JSON, CSV) checked against the head, with previews.
``import scalp3d`` needs neither a GPU nor a display; heavy libraries load where they are used.
"""
__version__ = "0.1.0"


def place_dots(*args, **kwargs):
    """See :func:`scalp3d.placement.place_dots`."""
    from .placement import place_dots as _place

    return _place(*args, **kwargs)


__all__ = ["place_dots", "__version__"]
