"""Turn a reconstruction result into Blender data: colored mesh, material, camera, photo backdrop.

Layout in the scene: ``Scene Collection > "Shape from Image" > <image stem>``. The parent
collection "Shape from Image" is created once per scene; each reconstructed image gets its own
child collection, named after the image stem, that holds the mesh object (named after the stem)
and its camera ("<stem> Camera"). The child collection, its objects, the mesh, camera and
material datablocks carry the custom property ``TAG`` = the absolute image path, which is how
"replace previous result" finds what an earlier run of the same image created.

Several photos of one object (:func:`build_object`) make one child collection "<first stem> (N photos)"
holding one mesh object of that name and one camera per placed photo ("<photo stem> Camera", each with
its own lens, shift and photo backdrop); their ``TAG`` holds every photo's absolute path, one per line.

Everything is built from checked data (:func:`check_result`); if building still fails midway,
every datablock created so far is removed and the scene settings are restored, so the scene is
exactly as before (:func:`all_or_nothing`). Plain functions: the tests call them directly.

This module puts the result together; each part is built by its own module, whose public names it also
offers: :mod:`.scene_data` (the names given to Blender data, the checked result), :mod:`.mesh_object`
(mesh and its attributes), :mod:`.materials` (material and texture), :mod:`.part_nodes` (the part
material's shader nodes), :mod:`.camera_object` (camera, render resolution, photo backdrop) and
:mod:`.scene_transaction` (collections, replacing an earlier result, all or nothing).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import LazyModule
from .camera_object import (CameraParameters, add_background_image, add_camera,  # noqa: F401  (re-exported)
                            apply_camera_parameters, camera_parameters, object_cameras, photo_size,
                            set_render_resolution, use_camera)
from .materials import create_material, create_texture_image, texture_image  # noqa: F401  (re-exported)
from .mesh_object import add_mesh_object, create_mesh  # noqa: F401  (re-exported)
from .part_nodes import (PART_LABELS, add_part_mix, bake_parts_to_col, color_name,  # noqa: F401  (re-exported)
                         part_mix_colors, part_swatches, swatch_labels)
from .scene_data import (COLOR_ATTRIBUTE, MAX_PARTS, PARENT_COLLECTION, PART_ATTRIBUTE,  # noqa: F401  (re-exported)
                         PART_BASE_ATTRIBUTE, PART_EPS, PARENT_TAG, PHOTO, PHOTO_SIZE, RESIDUAL_ATTRIBUTE,
                         SWATCH_NODE, TAG, TEXTURE_NODE, UV_MAP, CheckedResult, build_error, check_camera,
                         check_mesh, check_result, linear_to_srgb, srgb_to_linear)
from .scene_transaction import (all_or_nothing, find_previous, new_collection,  # noqa: F401  (re-exported)
                                remove_previous, select_only, solid_view_hint, take_names, take_texture_name)

if TYPE_CHECKING:
    from ..core.result import CameraInfo

np = LazyModule("numpy")  # not imported at registration: the extension loads before the dependencies are installed


@dataclass
class BuildOptions:
    """What :func:`build_result` adds to the scene besides the mesh."""

    add_camera: bool = True
    """create a camera at the recovered pose."""
    set_scene_camera: bool = True
    """make that camera the scene camera."""
    set_render_resolution: bool = True
    """set the render resolution to the photo's (pixel aspect 1, 100 %)."""
    camera_background: bool = True
    """show the photo as the camera's background image."""
    replace_previous: bool = True
    """remove what an earlier run created for the same image path."""
    name: str | None = None
    """object/collection name; default: the image file's stem."""
    background_image: object | None = None
    """a bpy.types.Image to use as the backdrop instead of loading the file (panel image source)."""
    at_cursor: bool = True
    """put the object (its origin, the centre of its base) at the scene's 3D cursor, its cameras moved with it."""


def cursor_location(scene) -> np.ndarray:
    """(3,) the scene's 3D cursor location (Blender's place for new objects)."""
    return np.asarray(scene.cursor.location, dtype=np.float64)


def moved(camera: CameraInfo, offset: np.ndarray) -> CameraInfo:
    """``camera`` translated by ``offset`` (3,) (it keeps seeing its object moved by the same offset)."""
    if not np.any(offset):
        return camera
    from ..core.result import CameraInfo

    c2w = np.array(camera.cam2world, dtype=np.float64)
    c2w[:3, 3] += offset
    return CameraInfo(c2w, camera.focal_px, camera.width, camera.height, camera.cx, camera.cy)


@dataclass
class BuiltResult:
    """What :func:`build_result` created."""

    collection: object
    """the per-image bpy.types.Collection."""
    mesh_object: object
    """the mesh bpy.types.Object."""
    camera_object: object | None
    """the camera bpy.types.Object, when add_camera."""
    removed: int = 0
    """datablocks of earlier results removed (replace_previous)."""
    hints: tuple[str, ...] = ()
    """extra information for the user (e.g. how to see vertex colors in Solid view)."""


@dataclass
class BuiltObject:
    """What :func:`build_object` created for several photos of one object."""

    collection: object
    """the object's bpy.types.Collection."""
    mesh_object: object
    """the one mesh bpy.types.Object."""
    camera_objects: list
    """one camera bpy.types.Object per placed photo, in the photos' order (empty without add_camera)."""
    skipped: list
    """one message per photo that was not placed (and got no camera), naming the photo."""
    removed: int = 0
    """datablocks of earlier results removed (replace_previous)."""
    hints: tuple[str, ...] = ()
    """extra information for the user (e.g. how to see vertex colors in Solid view)."""


def default_name(image_path: str) -> str:
    """Object/collection name for an image: its file stem."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return stem or "Reconstruction"


def _result_json(result) -> str | None:
    to_json = getattr(result, "to_json", None)
    return json.dumps(to_json()) if callable(to_json) else None


def build_result(scene, result, options: BuildOptions | None = None, image_path: str | None = None,
                 view_layer=None) -> BuiltResult:
    """Create the mesh (and camera, backdrop, render settings) for one successful result.

    ``image_path`` defaults to ``result.image``. All or nothing: on any failure everything created
    here is removed, the scene settings are restored and the error is re-raised.
    """
    options = options or BuildOptions()
    image_path = os.path.abspath(image_path or result.image)
    checked = check_result(result, image_path)
    name = options.name or default_name(image_path)
    views = [(f"{name} Camera", checked.camera, image_path, options.background_image)]
    coll, obj, cameras, removed = _build(scene, result, checked, image_path, name, views, options, view_layer)
    return BuiltResult(collection=coll, mesh_object=obj, camera_object=cameras[0] if cameras else None,
                       removed=removed, hints=solid_view_hint())


def _build(scene, result, checked: CheckedResult, tag: str, name: str, views: list, options: BuildOptions,
           view_layer) -> tuple:
    """The collection ``name`` with the mesh object of ``checked`` at the 3D cursor (``options.at_cursor``) and,
    with ``options.add_camera``, a camera per view ((camera name, CameraInfo, photo path, backdrop image or
    None) each, the first one the scene camera and render resolution as the options say), everything tagged
    ``tag``; an earlier result of ``tag`` replaced last. All or nothing (:func:`all_or_nothing`).
    Returns (collection, mesh object, camera objects, datablocks removed)."""
    with all_or_nothing(scene) as created:
        coll = new_collection(scene, name, tag, created)
        obj, mesh, mat = add_mesh_object(name, checked, tag, coll, created, _result_json(result))
        at = cursor_location(scene) if options.at_cursor else np.zeros(3)
        obj.location = at.tolist()
        cameras = []
        if options.add_camera:
            for camera_name, camera, photo, image in views:
                cameras.append(add_camera(camera_name, moved(camera, at), tag, coll, created, photo,
                                          options.camera_background, image))
        if cameras and options.set_scene_camera:
            scene.camera = cameras[0]
        if options.set_render_resolution:
            set_render_resolution(scene, views[0][1].width, views[0][1].height)
        select_only(scene, obj, view_layer)

        removed = 0
        if options.replace_previous:  # last: nothing after this can fail halfway
            removed = remove_previous(scene, tag, keep=coll)
            take_names(name, (coll, obj, mesh, mat))
            take_texture_name(name, mat)
            for cam_obj, (camera_name, _, _, _) in zip(cameras, views):
                take_names(camera_name, (cam_obj, cam_obj.data))
    return coll, obj, cameras, removed


def object_tag(image_paths) -> str:
    """``TAG`` of what :func:`build_object` creates: the absolute paths of every photo, one per line (a
    later run with the same photos replaces it; a one-photo result of one of them stays)."""
    return "\n".join(os.path.abspath(p) for p in image_paths)


def object_name(image_paths) -> str:
    """Collection and mesh name of an object seen in several photos: the first photo's stem and the count."""
    paths = list(image_paths)
    first = default_name(paths[0]) if paths else "Reconstruction"
    return f"{first} ({len(paths)} photos)" if len(paths) > 1 else first


def build_object(scene, result, options: BuildOptions | None = None, image_paths=None, view_names=None,
                 background_images=None, view_layer=None) -> BuiltObject:
    """Create the mesh of an ObjectResult and one camera per placed photo.

    One collection and one mesh object named :func:`object_name` (or ``options.name``), and per placed view
    a camera "<photo stem> Camera" (``view_names`` aligned with ``result.views`` replace the stems) with its
    own lens, shift and its photo as background image (``background_images``: datablocks aligned with the
    views, None entries load the file). The first placed photo's camera becomes the scene camera and sets the
    render resolution, as the options say. Views that are not placed are not built; ``BuiltObject.skipped``
    carries their messages. ``image_paths`` (aligned with the views, default: each view's ``image``) are
    the photos as the core read them.

    All or nothing, like :func:`build_result`: on any failure everything created here is removed, the
    scene settings are restored and the error is re-raised.
    """
    options = options or BuildOptions()
    views = list(getattr(result, "views", None) or [])
    paths = [os.path.abspath(p) for p in (image_paths or [getattr(v, "image", "") for v in views])]
    first = paths[0] if paths else os.path.abspath(getattr(result, "image", "object"))
    if not getattr(result, "ok", False):
        raise build_error(getattr(result, "error", None) or "reconstruction failed", first)
    if len(paths) != len(views) or not views:
        raise build_error(f"the result has {len(views)} views for {len(paths)} photos; run the reconstruction again",
                          first)
    names = list(view_names) if view_names is not None else [default_name(p) for p in paths]
    backgrounds = list(background_images) if background_images is not None else [None] * len(views)
    placed, skipped = [], []
    for view, path, view_name, image in zip(views, paths, names, backgrounds):
        if getattr(view, "ok", False):
            if getattr(view, "camera", None) is None:
                raise build_error("the view has no camera; run the reconstruction again", path)
            placed.append((path, view_name, image, check_camera(view.camera, path)))
        else:
            skipped.append(getattr(view, "error", None) or f"{path}: could not be placed")
    if not placed:
        raise build_error(f"none of the {len(views)} photos could be placed: {'; '.join(skipped)}", first)
    if getattr(result, "mesh", None) is None:
        raise build_error("the result has no mesh; run the reconstruction again", first)
    checked = check_mesh(result.mesh, first)
    tag = object_tag(paths)
    name = options.name or object_name(paths)

    cameras = [(f"{view_name} Camera", camera, path, image) for path, view_name, image, camera in placed]
    coll, obj, cameras, removed = _build(scene, result, checked, tag, name, cameras, options, view_layer)
    return BuiltObject(collection=coll, mesh_object=obj, camera_objects=cameras, skipped=skipped, removed=removed,
                       hints=solid_view_hint())
