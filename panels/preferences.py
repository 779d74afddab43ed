"""Add-on preferences: compute device, models, dependency status and installation."""

from __future__ import annotations

import os

import bpy

from ..operators import ADDON_ID, deps
from . import text
from .properties import model_items

DEVICES = (("AUTO", "Auto", "CUDA or Apple MPS when available, else the CPU"),
           ("CPU", "CPU", "Always use the CPU"),
           ("CUDA", "CUDA", "NVIDIA GPU (needs the CUDA flavor of PyTorch)"),
           ("MPS", "Apple MPS", "Apple Silicon GPU"))


def draw_dependencies(layout, prefs=None, context=None) -> None:
    """Dependency status and the install button (preferences and the panel share it): while pip
    runs, what it does; after an install, how it ended and the log's path to copy or open."""
    context = context or bpy.context
    status = deps.status()
    box = layout.box()
    box.label(text="Python packages", icon="SCRIPTPLUGINS")
    grid = box.grid_flow(columns=2, even_columns=True)  # "safetensors" fits a default-width sidebar
    for name, ok in status.items():
        grid.label(text=name, icon="CHECKMARK" if ok else "X")
    if deps.install_in_progress():
        text.label(box, context, f"Installing {deps.progress_text()}", icon="TIME")
        return
    col = box.column(align=True)
    row = col.row(align=True)
    flavor = prefs.torch_flavor if prefs is not None else "CPU"
    op = row.operator("shape_from_image.install_dependencies", icon="IMPORT")
    op.flavor = flavor
    row.operator("shape_from_image.refresh_dependencies", text="", icon="FILE_REFRESH")
    if prefs is not None:
        col.prop(prefs, "torch_flavor", text="PyTorch")
    last = deps.last_result()
    if last is not None:
        text.label(box, context, last[1], icon="CHECKMARK" if last[0] else "ERROR")
    if last is not None and not last[0] or os.path.isfile(deps.log_path()):
        row = box.row(align=True)
        op = row.operator("shape_from_image.copy_text", text="Copy Log Path", icon="COPYDOWN")
        op.text, op.what = deps.log_path(), "The log's path"
        row.operator("wm.path_open", text="Open Log", icon="TEXT").filepath = deps.log_path()
    op = box.operator("shape_from_image.copy_text", text="Copy Install Commands", icon="CONSOLE")
    op.text, op.what = deps.Installer(flavor).manual_text(), "The install commands"
    text.label(box, context, f"Installs into {deps.deps_dir()}")
    if not bpy.app.online_access:
        text.label(box, context, "Online access is off: Preferences > System > Network", icon="ERROR")


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
