"""The panel's settings, stored per scene as ``scene.shape_from_image``."""

from __future__ import annotations

import bpy

from ..operators import options as option_props
from ..operators.inputs import DEFAULT_MODEL, get_preferences, list_models

STEP_PRESETS = (("0", "Encoder Only", "No inversion: the encoder's guess, a few seconds"),
                ("10", "Fast (10)", "10 inversion steps: the default quality/speed trade-off"),
                ("30", "Slow (30)", "30 inversion steps: closer to the photo, about 3x slower"),
                ("CUSTOM", "Custom", "Choose the number of inversion steps"))

_model_items_cache: list = []  # Blender needs the enum item strings kept alive


def model_items(self, context):
    """Enum items: shipped models, then the preferences' extra models folder; 'chairs' always."""
    prefs = get_preferences(context)
    extra = prefs.models_dir if prefs is not None else ""
    models = [(name, category) for name, _, category in list_models(extra)]
    if DEFAULT_MODEL not in [name for name, _ in models]:
        models.insert(0, (DEFAULT_MODEL, ""))
    items = [(name, f"{name} ({category})" if category else name,
              f"Model '{name}'" + (f": reconstructs {category} objects" if category else "")) for name, category in models]
    _model_items_cache[:] = items
    return _model_items_cache


class SHAPE_FROM_IMAGE_PG_photo(bpy.types.PropertyGroup):
    """One photo of the object in the panel's list (One Object): a file, or an image open in Blender."""

    filepath: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH", description="Photo of the object")
    image: bpy.props.PointerProperty(name="Image", type=bpy.types.Image, description="Open image of the object")


class SHAPE_FROM_IMAGE_PG_settings(bpy.types.PropertyGroup):
    """What the Reconstruct panel sends to the operator."""

    source: bpy.props.EnumProperty(
        name="Source", items=(("FILE", "File", "A photo on disk"),
                              ("IMAGE", "Image", "An image already open in Blender")), default="FILE")
    filepath: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH",
                                       description="Photo of one chair (PNG with transparency works best)")
    image: bpy.props.PointerProperty(name="Image", type=bpy.types.Image,
                                     description="Image datablock to reconstruct from")
    joint: bpy.props.BoolProperty(name="One Object", default=False,
                                  description="Several photos of one object: one mesh, and one camera per photo")
    photos: bpy.props.CollectionProperty(type=SHAPE_FROM_IMAGE_PG_photo, name="Photos",
                                         description="The photos of the object (One Object)")
    mask_path: bpy.props.StringProperty(name="Mask", subtype="FILE_PATH",
                                        description="Optional foreground mask (white = object)")
    model: bpy.props.EnumProperty(name="Model", items=model_items, description="Trained model to use")
    steps_preset: bpy.props.EnumProperty(name="Quality", items=STEP_PRESETS, default="10")
    steps_custom: bpy.props.IntProperty(name="Steps", default=50, min=0, soft_max=200, max=1000,
                                        description="Inversion steps")
    # mesh_resolution, focal_mm, height_m, texture_size, faces ...: made from core.config.ReconstructOptions
    add_camera: bpy.props.BoolProperty(name="Add Camera", default=True,
                                       description="Add a camera at the recovered viewpoint")
    set_scene_camera: bpy.props.BoolProperty(name="Make Scene Camera", default=True,
                                             description="Make the new camera the scene camera")
    set_render_resolution: bpy.props.BoolProperty(name="Photo Resolution", default=True,
                                                  description="Set the render resolution to the photo's")
    camera_background: bpy.props.BoolProperty(name="Photo as Background", default=True,
                                              description="Show the photo behind the camera view")
    replace_previous: bpy.props.BoolProperty(name="Replace Previous", default=True,
                                             description="Remove an earlier result of the same photo")

    @property
    def steps(self) -> int:
        return self.steps_custom if self.steps_preset == "CUSTOM" else int(self.steps_preset)

    def chosen_photos(self) -> tuple[list[str], list[str]]:
        """(file paths, image names) of the listed photos of the current source (One Object); one is empty."""
        if self.source == "FILE":
            return [p.filepath for p in self.photos if p.filepath.strip()], []
        return [], [p.image.name for p in self.photos if p.image is not None]


option_props.add_properties(SHAPE_FROM_IMAGE_PG_settings, after="steps_custom", panel=True)
CLASSES = (SHAPE_FROM_IMAGE_PG_photo, SHAPE_FROM_IMAGE_PG_settings)
