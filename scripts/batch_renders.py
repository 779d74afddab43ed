"""Headless renders through the recovered camera: silhouettes, photo overlays, a side view.

Cycles on the CPU is the engine: it works in background mode with the ``bpy`` module and with no
GPU (Workbench and EEVEE need an OpenGL/EGL context and are 20-500x slower there).
Images are handled as numpy arrays (H, W, 4) float32 in [0, 1], top row first, straight alpha,
values as stored in the PNG (sRGB for colors); the extension's ``operators.inputs`` reads and writes them.
"""

from __future__ import annotations

import os

import bpy
import numpy as np
from mathutils import Vector


def use_cycles(scene, samples: int = 8, transparent: bool = True, pixel_filter: float | None = None) -> None:
    """Cycles CPU with few samples, no denoising, standard view transform (colors as stored)."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 2
    if pixel_filter is not None:
        scene.cycles.filter_width = pixel_filter
    scene.render.film_transparent = transparent
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"


def white_world(scene, strength: float = 1.0) -> None:
    """Uniform white environment light, so Principled base colors render close to themselves."""
    world = scene.world or bpy.data.worlds.new("Shape from Image Light")
    scene.world = world
    world.color = (1.0, 1.0, 1.0)
    tree = world.node_tree
    if tree is None and hasattr(world, "use_nodes"):
        world.use_nodes = True
        tree = world.node_tree
    if tree is not None:
        for node in tree.nodes:
            if node.type == "BACKGROUND":
                node.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
                node.inputs["Strength"].default_value = strength


def render_still(scene, camera, path: str) -> str:
    """Render ``scene`` through ``camera`` at the scene's resolution into the PNG ``path``."""
    previous = scene.camera
    scene.camera = camera
    scene.render.filepath = path
    try:
        bpy.ops.render.render(write_still=True, scene=scene.name)
    finally:
        scene.camera = previous
    if not os.path.isfile(path):
        raise RuntimeError(f"{path}: the render was not written")
    return path


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (H, W); 1.0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def composite_over(photo: np.ndarray, render: np.ndarray, opacity: float = 0.7) -> np.ndarray:
    """The render (H, W, 4) over the photo (H, W, 4, transparent parts shown on white)."""
    base = photo[..., :3] * photo[..., 3:4] + (1.0 - photo[..., 3:4])
    alpha = render[..., 3:4] * opacity
    out = np.ones_like(render)
    out[..., :3] = render[..., :3] * alpha + base * (1.0 - alpha)
    return out


def side_camera(scene, target_obj, camera_obj, angle_deg: float = 90.0):
    """A temporary camera orbiting ``camera_obj``'s position by ``angle_deg`` about the vertical axis
    through the centre of ``target_obj``'s bounding box, looking at that centre."""
    from mathutils import Matrix

    corners = [target_obj.matrix_world @ Vector(c) for c in target_obj.bound_box]
    center = sum(corners, Vector()) / 8.0
    offset = camera_obj.matrix_world.translation - center
    eye = center + Matrix.Rotation(np.radians(angle_deg), 3, "Z") @ offset
    data = camera_obj.data.copy()
    data.shift_x = data.shift_y = 0.0
    data.background_images.clear()
    cam = bpy.data.objects.new("Side View", data)
    scene.collection.objects.link(cam)
    cam.location = eye
    cam.rotation_euler = (center - eye).to_track_quat("-Z", "Y").to_euler()
    return cam


def remove_object(obj) -> None:
    """Remove a temporary object and its data."""
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        bpy.data.batch_remove([data])
