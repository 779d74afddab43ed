"""3D View > Sidebar > Reconstruct: inputs, options, the big button, progress and status."""

from __future__ import annotations

import bpy

from ..operators import deps, runner, scene
from ..operators import options as option_props
from . import text
from .preferences import draw_dependencies
from .properties import get_preferences


def draw_status(layout, context=None) -> None:
    """The last run's result and time, wrapped to the sidebar's width (a path keeps its file name)."""
    status = runner.last_status()
    if status is not None:
        text.label(layout, context or bpy.context, status.text, icon="CHECKMARK" if status.ok else "ERROR")


def _warm_up(settings, prefs) -> None:
    """Load and warm the chosen model in the background the first time the panel shows it."""
    from ..operators import inputs

    try:
        model = inputs.resolve_model(settings.model or (prefs.default_model if prefs is not None else ""),
                                     prefs.models_dir if prefs is not None else "")
        runner.warm_up_in_background(model, (prefs.device if prefs is not None else "AUTO").lower())
    except Exception:  # noqa: BLE001 (drawing must not fail; Reconstruct reports model problems)
        pass


def draw_photo_list(layout, settings) -> None:
    """The photos of the object (One Object): files, or open images, each removable; add and clear."""
    box = layout.box()
    is_file = settings.source == "FILE"
    files, images = settings.chosen_photos()
    count = len(files) + len(images)
    box.label(text=f"{count} photo{'s' if count != 1 else ''} of one object" if count
              else "Add two or more photos of the object", icon="IMAGE_DATA")
    for index, entry in enumerate(settings.photos):
        row = box.row(align=True)
        row.prop(entry, "filepath" if is_file else "image", text="")
        op = row.operator("shape_from_image.edit_photos", text="", icon="X")
        op.action, op.index = "REMOVE", index
    row = box.row(align=True)
    if is_file:
        row.operator("shape_from_image.add_photos", text="Add Photos...", icon="FILEBROWSER")
    else:
        row.operator("shape_from_image.edit_photos", text="Add Image", icon="ADD").action = "ADD_IMAGE"
    row.operator("shape_from_image.edit_photos", text="", icon="TRASH").action = "CLEAR"


class VIEW3D_PT_shape_from_image(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Reconstruct"
    bl_label = "Shape from Image"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.shape_from_image
        prefs = get_preferences(context)

        if deps.missing():
            layout.label(text="Install the dependencies first:", icon="ERROR")
            draw_dependencies(layout, prefs, context)
            draw_status(layout, context)
            return

        _warm_up(settings, prefs)
        col = layout.column()
        col.row().prop(settings, "source", expand=True)
        col.prop(settings, "joint")
        if settings.joint:
            draw_photo_list(col, settings)
        elif settings.source == "FILE":
            col.prop(settings, "filepath", text="")
        else:
            col.template_ID(settings, "image", open="image.open")
        row = col.row()
        row.enabled = not settings.joint  # a mask belongs to one photo
        row.prop(settings, "mask_path")
        col.separator()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(settings, "model")
        col.prop(settings, "steps_preset")
        if settings.steps_preset == "CUSTOM":
            col.prop(settings, "steps_custom")
        col.prop(settings, "mesh_resolution", text="Resolution")  # the split's label column cuts longer names
        col.prop(settings, "focal_mm")
        col.prop(settings, "height_m")
        col.prop(settings, "texture_size")
        col.prop(settings, "faces")

        job = runner.active_job()
        if job is None:
            row = layout.row()
            row.scale_y = 1.8
            files, images = settings.chosen_photos() if settings.joint else ([], [])
            if settings.joint:
                ready = files or images
            else:
                ready = settings.filepath.strip() if settings.source == "FILE" else settings.image is not None
            row.enabled = bool(ready)
            text = "Reconstruct One Object" if settings.joint else "Reconstruct from Image"
            op = row.operator("shape_from_image.reconstruct", text=text, icon="MESH_ICOSPHERE")
            if settings.joint:
                op.joint = True
                for path in files:  # absolute or blend-relative paths: no folder
                    op.files.add().name = path
                for name in images:
                    op.image_names.add().name = name
            elif settings.source == "FILE":
                op.filepath = settings.filepath
            else:
                op.image_name = settings.image.name if settings.image is not None else ""
            op.mask_path = settings.mask_path
            op.model = settings.model
            option_props.copy_to_operator(settings, op)  # steps, mesh_resolution, focal_mm ... (ReconstructOptions)
            op.device = prefs.device if prefs is not None else "AUTO"
            for name in ("add_camera", "set_scene_camera", "set_render_resolution", "camera_background",
                         "replace_previous"):
                setattr(op, name, getattr(settings, name))
        else:
            box = layout.box()
            latest = job.latest
            if latest is not None and latest.total and hasattr(box, "progress"):
                box.progress(factor=min(1.0, latest.step / latest.total), type="BAR", text=job.describe())
            else:
                box.label(text=job.describe(), icon="TIME")
            box.operator("shape_from_image.cancel", icon="CANCEL")
        draw_status(layout, context)


class _SubPanel:
    """Where the Reconstruct panel's sub-panels live: the 3D View's sidebar, under the main panel."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Reconstruct"
    bl_parent_id = "VIEW3D_PT_shape_from_image"


class VIEW3D_PT_shape_from_image_options(_SubPanel, bpy.types.Panel):
    bl_label = "Options"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender reads a set)

    def draw(self, context):
        settings = context.scene.shape_from_image
        col = self.layout.column(align=True)
        col.prop(settings, "add_camera")
        sub = col.column(align=True)
        sub.enabled = settings.add_camera
        sub.prop(settings, "set_scene_camera")
        sub.prop(settings, "camera_background")
        col.prop(settings, "set_render_resolution")
        col.prop(settings, "replace_previous")


class VIEW3D_PT_shape_from_image_cameras(_SubPanel, bpy.types.Panel):
    """The active object's cameras, one per photo (One Object): look through one, render at its photo's size."""

    bl_label = "Cameras"

    @classmethod
    def poll(cls, context):
        return len(scene.object_cameras(getattr(context, "active_object", None))) > 1

    def draw(self, context):
        col = self.layout.column(align=True)
        current = context.scene.camera
        for cam in scene.object_cameras(context.active_object):
            row = col.row(align=True)
            row.label(text=cam.name, icon="CHECKMARK" if cam == current else "OUTLINER_OB_CAMERA")
            row.operator("shape_from_image.use_camera", text="", icon="VIEW_CAMERA").camera = cam.name


class VIEW3D_PT_shape_from_image_parts(_SubPanel, bpy.types.Panel):
    """The active reconstruction's color parts as swatches: editing one recolors that part live."""

    bl_label = "Parts"

    @classmethod
    def poll(cls, context):
        obj = getattr(context, "active_object", None)
        return (obj is not None and obj.type == "MESH" and len(obj.data.materials) > 0
                and bool(scene.part_swatches(obj.data.materials[0])))

    def draw(self, context):
        obj = context.active_object
        col = self.layout.column(align=True)
        for node in scene.part_swatches(obj.data.materials[0]):
            col.prop(node.outputs[0], "default_value", text=node.label)
        self.layout.operator("shape_from_image.bake_parts", icon="BRUSH_DATA")


CLASSES = (VIEW3D_PT_shape_from_image, VIEW3D_PT_shape_from_image_options, VIEW3D_PT_shape_from_image_cameras,
           VIEW3D_PT_shape_from_image_parts)
