"""Blender-aware code: operators, the worker that calls ``core``, and scene building.

Nothing here imports torch or ``core`` at import time; the core is imported lazily inside the
functions that need it (``runner._call_core``) so that enabling the add-on stays instant and works
before the dependencies are installed.
"""

ADDON_ID = __package__.rpartition(".")[0] or "shape_from_image"
"""The add-on's module name: ``bl_ext.<repo>.shape_from_image`` when installed as an extension,
``shape_from_image`` when imported by the tests or the batch script."""
