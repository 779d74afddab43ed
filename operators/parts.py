"""Bake to Col: write the part material's current mix (the swatches) into the "Col" attribute.

Runs on the main thread and is instant (NumPy over the mesh attributes, no model); the undo
system restores the previous colors (``UNDO`` in ``bl_options``).
"""

from __future__ import annotations

import bpy

from . import part_nodes, scene_data


def _parts_object(context):
    obj = getattr(context, "active_object", None)
    if obj is None or obj.type != "MESH" or not len(obj.data.materials):
        return None
    if not part_nodes.part_swatches(obj.data.materials[0]) or scene_data.RESIDUAL_ATTRIBUTE not in obj.data.attributes:
        return None
    return obj


class SHAPE_FROM_IMAGE_OT_bake_parts(bpy.types.Operator):
    """Write the recolored parts into the color attribute "Col" (what the mesh exporters write)"""

    bl_idname = "shape_from_image.bake_parts"
    bl_label = "Bake to Col"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context):
        if _parts_object(context) is None:
            cls.poll_message_set("The active object has no recolorable parts (reconstruct a photo first)")
            return False
        return context.mode == "OBJECT"

    def execute(self, context):
        obj = _parts_object(context)
        if obj is None or not part_nodes.bake_parts_to_col(obj):
            self.report({"ERROR"}, f"{getattr(obj, 'name', 'the object')}: its part attributes are missing; "
                                   "reconstruct the photo again")
            return {"CANCELLED"}
        self.report({"INFO"}, f"{obj.name}: parts baked into the color attribute '{scene_data.COLOR_ATTRIBUTE}'")
        return {"FINISHED"}


CLASSES = (SHAPE_FROM_IMAGE_OT_bake_parts,)
