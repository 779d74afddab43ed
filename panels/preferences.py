"""Add-on preferences: compute device, models, dependency status and installation."""

from __future__ import annotations

import bpy

from ..operators import ADDON_ID, deps
from .properties import model_items

DEVICES = (("AUTO", "Auto", "CUDA or Apple MPS when available, else the CPU"),
           ("CPU", "CPU", "Always use the CPU"),
           ("CUDA", "CUDA", "NVIDIA GPU (needs the CUDA flavor of PyTorch)"),
           ("MPS", "Apple MPS", "Apple Silicon GPU"))


def draw_dependencies(layout, prefs=None) -> None:
    """Dependency status and the install button (preferences and the panel share it)."""
    status = deps.status()
    box = layout.box()
    box.label(text="Python packages", icon="SCRIPTPLUGINS")
    grid = box.grid_flow(columns=4, even_columns=True)
    for name, ok in status.items():
        grid.label(text=name, icon="CHECKMARK" if ok else "X")
    proc = deps.running_install()
    if proc is not None:
        box.label(text="Installing with pip... (see the status bar)", icon="TIME")
        return
    row = box.row(align=True)
    flavor = prefs.torch_flavor if prefs is not None else "CPU"
    op = row.operator("shape_from_image.install_dependencies", icon="IMPORT")
    op.flavor = flavor
    if prefs is not None:
        row.prop(prefs, "torch_flavor", text="")
    row.operator("shape_from_image.refresh_dependencies", text="", icon="FILE_REFRESH")
    col = box.column(align=True)
    col.scale_y = 0.8
    col.label(text=f"Installs into: {deps.deps_dir()}")
    if not bpy.app.online_access:
        col.label(text="Online access is off (Preferences > System > Network)", icon="ERROR")


class SHAPE_FROM_IMAGE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    device: bpy.props.EnumProperty(name="Compute Device", items=DEVICES, default="AUTO")
    default_model: bpy.props.EnumProperty(name="Default Model", items=model_items)
    models_dir: bpy.props.StringProperty(name="More Models", subtype="DIR_PATH",
                                         description="Folder with more *.safetensors models (with their .json)")
    torch_flavor: bpy.props.EnumProperty(
        name="PyTorch Flavor",
        items=(("CPU", "CPU", "PyTorch for the CPU (Apple MPS included on macOS)"),
               ("CUDA", "CUDA", "PyTorch with CUDA for NVIDIA GPUs")),
        default="CPU")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "device")
        layout.prop(self, "default_model")
        layout.prop(self, "models_dir")
        layout.use_property_split = False
        draw_dependencies(layout, self)


CLASSES = (SHAPE_FROM_IMAGE_AP_preferences,)
