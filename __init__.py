"""Shape from Image: one photo of a chair -> a colored mesh and the camera that took the photo.

This file only registers the add-on. Nothing heavy happens at import time: torch and ``core``
are imported lazily by the operators when a reconstruction starts.
"""

import bpy

from .operators import deps, parts, reconstruct, runner, views
from .panels import main, preferences, properties

CLASSES = (
    *properties.CLASSES,
    *preferences.CLASSES,
    *deps.CLASSES,
    *reconstruct.CLASSES,
    *views.CLASSES,
    *parts.CLASSES,
    *main.CLASSES,
)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def is_registered() -> bool:
    return reconstruct.SHAPE_FROM_IMAGE_OT_reconstruct.is_registered


def register():
    if is_registered():  # a second register() is a no-op, not a duplicate registration
        print(f"{__package__}: already registered")
        return
    _register_classes()
    bpy.types.Scene.shape_from_image = bpy.props.PointerProperty(type=properties.SHAPE_FROM_IMAGE_PG_settings)
    deps.add_to_sys_path()


def unregister():
    if not is_registered():
        return
    runner.shutdown()
    deps.stop_install()
    deps.remove_from_sys_path()
    del bpy.types.Scene.shape_from_image
    _unregister_classes()
