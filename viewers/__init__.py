"""What a person looks at: off-screen pictures of a head and its planned dots.

Importing this package never imports pyvista or vtk; each function imports them when it is called and raises
:class:`scalp3d.errors.MissingDependencyError` naming ``pip install pyvista`` when they are missing.
Nothing here computes any part of a plan.
"""
from .preview import render_preview

__all__ = ["render_preview"]
