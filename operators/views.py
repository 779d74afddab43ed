"""Several photos of one object: the panel's photo list, and looking through each photo's camera.

The list lives in the scene's settings (``scene.shape_from_image.photos``); these operators only edit
it, on the main thread and instantly, so each is one undo step. Reconstructing the listed photos is the
Reconstruct operator's job (``joint``).
"""

from __future__ import annotations

import os

import bpy

from . import camera_object

_SKIP = {"SKIP_SAVE"}
_HIDDEN = {"SKIP_SAVE", "HIDDEN"}


def _settings(context):
    return getattr(context.scene, "shape_from_image", None) if context.scene is not None else None


def listed_paths(settings) -> set[str]:
    """Absolute paths of the photo files already in the list."""
    return {os.path.abspath(bpy.path.abspath(p.filepath)) for p in settings.photos if p.filepath.strip()}


class SHAPE_FROM_IMAGE_OT_add_photos(bpy.types.Operator):
    """Add photos of the object to the list (pick several with Shift or Ctrl)"""

    bl_idname = "shape_from_image.add_photos"
    bl_label = "Add Photos"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options=_HIDDEN)
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options=_HIDDEN)
    filter_image: bpy.props.BoolProperty(default=True, options=_HIDDEN)
    filter_folder: bpy.props.BoolProperty(default=True, options=_HIDDEN)

    @classmethod
    def poll(cls, context):
        return _settings(context) is not None

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        settings = _settings(context)
        folder = bpy.path.abspath(self.directory) if self.directory else ""
        names = [f.name for f in self.files if f.name.strip()]
        if not names:
            self.report({"WARNING"}, "No photo chosen: select one or more photo files, then Add Photos")
            return {"CANCELLED"}
        known = listed_paths(settings)
        added = 0
        for name in names:
            path = os.path.abspath(bpy.path.abspath(os.path.join(folder, name)))
            if path in known:
                continue
            known.add(path)
            settings.photos.add().filepath = path
            added += 1
        self.report({"INFO"}, f"{added} photo{'s' if added != 1 else ''} added, {len(settings.photos)} in the list")
        return {"FINISHED"}


class SHAPE_FROM_IMAGE_OT_edit_photos(bpy.types.Operator):
    """Add an open image to the photo list, remove one photo, or clear the list"""

    bl_idname = "shape_from_image.edit_photos"
    bl_label = "Edit Photo List"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    action: bpy.props.EnumProperty(items=(("ADD_IMAGE", "Add Image", "Add an entry for an open image"),
                                          ("REMOVE", "Remove", "Remove the photo at Index"),
                                          ("CLEAR", "Clear", "Remove every photo from the list")),
                                   default="ADD_IMAGE", options=_SKIP)
    index: bpy.props.IntProperty(default=0, min=0, options=_SKIP)

    @classmethod
    def description(cls, context, properties):
        return {"ADD_IMAGE": "Add an open image of the object to the list",
                "REMOVE": "Remove this photo from the list",
                "CLEAR": "Remove every photo from the list"}.get(properties.action, "")

    @classmethod
    def poll(cls, context):
        return _settings(context) is not None

    def execute(self, context):
        photos = _settings(context).photos
        if self.action == "CLEAR":
            photos.clear()
        elif self.action == "REMOVE":
            if self.index >= len(photos):
                self.report({"WARNING"}, f"No photo {self.index + 1} in the list of {len(photos)}")
                return {"CANCELLED"}
            photos.remove(self.index)
        else:
            listed = {p.image for p in photos if p.image is not None}
            entry = photos.add()
            entry.image = next((im for im in bpy.data.images if im not in listed and im.type == "IMAGE"), None)
        return {"FINISHED"}


class SHAPE_FROM_IMAGE_OT_use_camera(bpy.types.Operator):
    """Look through this photo's camera: make it the scene camera, render at its photo's resolution"""

    bl_idname = "shape_from_image.use_camera"
    bl_label = "Use Camera"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    camera: bpy.props.StringProperty(name="Camera", options=_SKIP, description="Name of the camera object")

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def execute(self, context):
        obj = bpy.data.objects.get(self.camera)
        if obj is None or obj.type != "CAMERA":
            self.report({"ERROR"}, f"Camera '{self.camera}' is not in this file: reconstruct the photos again")
            return {"CANCELLED"}
        resized = camera_object.use_camera(context.scene, obj)
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "VIEW_3D" and space.region_3d is not None:
            space.region_3d.view_perspective = "CAMERA"
        size = camera_object.photo_size(obj) if resized else None
        text = f"{obj.name} is the scene camera" + (f", rendering at {size[0]} x {size[1]}" if size else "")
        self.report({"INFO"}, text)
        return {"FINISHED"}


CLASSES = (SHAPE_FROM_IMAGE_OT_add_photos, SHAPE_FROM_IMAGE_OT_edit_photos, SHAPE_FROM_IMAGE_OT_use_camera)
