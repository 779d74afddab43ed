"""The camera object: lens and shift of the photo's pinhole camera, the render resolution, the photo as
the camera's backdrop, and the cameras built with an object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bpy
from mathutils import Matrix

from ..core.geometry.lens import SENSOR_WIDTH_MM, blender_lens_mm
from . import LazyModule
from .scene_data import PHOTO, PHOTO_SIZE, TAG

if TYPE_CHECKING:
    from ..core.result import CameraInfo

np = LazyModule("numpy")  # not imported at registration: the extension loads before the dependencies are installed


@dataclass
class CameraParameters:
    """Blender camera settings reproducing a pinhole camera at the photo's resolution."""

    lens: float
    """focal length in mm."""
    sensor_fit: str
    """'HORIZONTAL' when width >= height else 'VERTICAL' (the larger side gets the sensor)."""
    sensor_size: float
    """sensor width and height in mm (only the fitted one matters)."""
    shift_x: float
    """horizontal lens shift in units of the larger image side."""
    shift_y: float
    """vertical lens shift in units of the larger image side."""


def camera_parameters(focal_px: float, cx: float, cy: float, width: int, height: int) -> CameraParameters:
    """Blender lens/shift for a pinhole camera (focal_px, cx, cy) on a width x height photo.

    Blender measures the sensor and the shift along the fitted (here: larger) side, so with
    ``s = max(W, H)``: ``lens = focal_px * SENSOR_WIDTH_MM / s``, ``shift_x = -(cx - W/2) / s`` (a principal
    point right of centre moves the frame left) and ``shift_y = (cy - H/2) / s`` (pixel rows grow
    downwards, Blender's shift_y upwards). The explicit fit keeps the projection right even if the
    render resolution is later changed to another aspect.
    """
    size = float(max(width, height))
    return CameraParameters(lens=blender_lens_mm(float(focal_px), width, height),
                            sensor_fit="HORIZONTAL" if width >= height else "VERTICAL",
                            sensor_size=SENSOR_WIDTH_MM,
                            shift_x=-(float(cx) - width / 2.0) / size,
                            shift_y=(float(cy) - height / 2.0) / size)


def apply_camera_parameters(cam_data, params: CameraParameters) -> None:
    """Set the camera datablock's lens, sensor and shift to ``params`` (a perspective camera)."""
    cam_data.type = "PERSP"
    cam_data.sensor_fit = params.sensor_fit
    cam_data.sensor_width = cam_data.sensor_height = params.sensor_size
    cam_data.lens = params.lens
    cam_data.shift_x = params.shift_x
    cam_data.shift_y = params.shift_y


def set_render_resolution(scene, width: int, height: int) -> None:
    """Render at the photo's resolution with square pixels."""
    scene.render.resolution_x = int(width)
    scene.render.resolution_y = int(height)
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = 1.0
    scene.render.pixel_aspect_y = 1.0


def _photo_image(path: str, width: int, height: int):
    """The photo as an image datablock the way the camera sees it, decoded once: Blender's loader ignores the
    EXIF orientation and cannot read every format the core reads, so a photo the EXIF turns, or whose size
    comes out otherwise, is made from the core's decoded pixels (``inputs.upright_image``)."""
    from .inputs import upright_image

    if photo_orientation(path) != 1:
        return upright_image(path)
    try:
        image = bpy.data.images.load(path, check_existing=True)
    except RuntimeError:  # a format only the core reads
        image = None
    if image is not None and tuple(image.size) == (width, height):
        return image
    if image is not None and image.users == 0:
        bpy.data.images.remove(image)
    return upright_image(path)


def photo_orientation(path: str) -> int:
    """The photo's EXIF orientation (1: upright) from its header, without decoding its pixels (1 when unknown)."""
    from ..core.io.images import exif_orientation

    try:
        return exif_orientation(path)
    except Exception:  # noqa: BLE001 (unreadable here: Blender's loader and the size check decide)
        return 1


def add_background_image(cam_data, image) -> None:
    """Show ``image`` behind the camera view (viewport only; renders composite it separately)."""
    bg = cam_data.background_images.new()
    bg.image = image
    bg.frame_method = "FIT"
    bg.display_depth = "BACK"
    bg.alpha = 0.6
    cam_data.show_background_images = True


def add_camera(name: str, camera: CameraInfo, tag: str, coll, created: list, photo: str,
               show_photo: bool = True, background_image=None):
    """A camera object at ``camera``'s pose with its lens and shift, linked to ``coll``; with ``show_photo``
    the photo (the datablock ``background_image``, else the file ``photo`` when it exists) as its background
    image. The object remembers its photo's path (``PHOTO``), the camera data the photo's size (``PHOTO_SIZE``)."""
    cam_data = bpy.data.cameras.new(name)
    created.append(cam_data)
    cam_data[TAG] = tag
    cam_data[PHOTO_SIZE] = (int(camera.width), int(camera.height))
    apply_camera_parameters(cam_data, camera_parameters(camera.focal_px, camera.cx, camera.cy, camera.width,
                                                        camera.height))
    distance = float(np.linalg.norm(camera.cam2world[:3, 3]))
    cam_data.clip_start = 0.01
    cam_data.clip_end = max(100.0, 10.0 * distance)
    cam_data.display_size = 0.3
    cam_obj = bpy.data.objects.new(name, cam_data)
    created.append(cam_obj)
    cam_obj[TAG] = tag
    cam_obj[PHOTO] = photo
    cam_obj.matrix_world = Matrix(camera.cam2world.tolist())
    coll.objects.link(cam_obj)
    if show_photo:
        image = background_image
        if image is None and os.path.isfile(photo):
            image = _photo_image(photo, camera.width, camera.height)
        if image is not None:
            add_background_image(cam_data, image)
    return cam_obj


def object_cameras(obj) -> list:
    """The cameras built together with ``obj`` (the same ``TAG``, in its collections), in collection order."""
    tag = obj.get(TAG) if obj is not None else None
    if tag is None:
        return []
    found: dict = {}
    for coll in obj.users_collection:
        for other in coll.objects:
            if other.type == "CAMERA" and other.get(TAG) == tag:
                found.setdefault(other.name, other)
    return list(found.values())


def photo_size(cam_obj) -> tuple[int, int] | None:
    """The (width, height) of the photo a camera built here was recovered from, or None."""
    data = getattr(cam_obj, "data", None)
    size = data.get(PHOTO_SIZE) if data is not None and getattr(cam_obj, "type", "") == "CAMERA" else None
    if size is None or len(size) != 2:
        return None
    width, height = int(size[0]), int(size[1])
    return (width, height) if width > 0 and height > 0 else None


def use_camera(scene, cam_obj) -> bool:
    """Make ``cam_obj`` the scene camera and, for a camera built here, render at its photo's resolution;
    True when the resolution was set."""
    scene.camera = cam_obj
    size = photo_size(cam_obj)
    if size is None:
        return False
    set_render_resolution(scene, *size)
    return True
