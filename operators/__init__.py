"""Blender-aware code: operators, the worker that calls ``core``, and scene building.

Nothing here imports torch or ``core`` at import time; the core is imported lazily inside the
functions that need it (``runner._call_core``) so that enabling the add-on stays instant and works
before the dependencies are installed.
"""

ADDON_ID = __package__.rpartition(".")[0] or "shape_from_image"
"""The add-on's module name: ``bl_ext.<repo>.shape_from_image`` when installed as an extension,
``shape_from_image`` when imported by the tests or the batch script."""


class LazyModule:
    """A module imported on first attribute access: ``np = LazyModule("numpy")`` at the top of a
    module that registration imports keeps the extension loadable where NumPy is not installed yet
    (Blender builds without a bundled NumPy); the Install Dependencies panel is then shown."""

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        if self._module is None:
            import importlib

            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


def tag_sidebar_redraw(screen, area_types=("VIEW_3D",), region_types=("UI",)) -> int:
    """Tag for redraw only the regions that show progress (the 3D View's sidebar by default), never
    the viewport itself: with a software-drawn viewport a full redraw costs as much as the work.
    Returns how many regions were tagged."""
    tagged = 0
    for area in screen.areas if screen is not None else ():
        if area.type in area_types:
            for region in area.regions:
                if region.type in region_types:
                    region.tag_redraw()
                    tagged += 1
    return tagged
