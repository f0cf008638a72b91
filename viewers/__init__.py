"""What a person looks at: pictures of a head and its planned dots, a 3D view, a file to take home.

Importing this package never imports pyvista or vtk; each function imports them when it is called and raises
:class:`scalp3d.errors.MissingDependencyError` naming ``pip install pyvista`` when they are missing.
Nothing here computes any part of a plan: a :class:`~scalp3d.viewers.scene.Scene` shows one that exists.
"""
from .preview import render_preview, render_view

__all__ = ["render_preview", "render_view"]
