"""All or nothing: the collections a result is built in, what an earlier result of the same photos left
(removed when it is replaced), and the roll-back that removes every datablock of a build that failed."""

from __future__ import annotations

from contextlib import contextmanager

import bpy

from .materials import texture_image
from .scene_data import PARENT_COLLECTION, PARENT_TAG, TAG


def find_previous(scene, image_path: str) -> list:
    """Per-image collections in ``scene`` that an earlier run created for ``image_path``."""
    return [c for c in scene.collection.children_recursive if c.get(TAG) == image_path]


def _collection_ids(coll) -> list:
    """The collection plus the tagged objects and object data/materials used only by them."""
    ids: list = [coll]
    objects = [o for o in coll.all_objects if o.get(TAG) is not None]
    ids += objects
    for obj in objects:
        data = obj.data
        if data is not None and data.get(TAG) is not None and data.users <= 1:
            ids.append(data)
            for mat in getattr(data, "materials", []):
                if mat is not None and mat.get(TAG) is not None and mat.users <= 1:
                    ids.append(mat)
                    image = texture_image(mat)
                    if image is not None and image.get(TAG) is not None and image.users <= 1:
                        ids.append(image)
    return ids


def take_texture_name(name: str, mat) -> None:
    """Rename the texture image of ``mat`` (a material built here) to "``name`` Texture"."""
    image = texture_image(mat)
    if image is not None:
        take_names(f"{name} Texture", (image,))


def remove_previous(scene, image_path: str, keep=None) -> int:
    """Remove earlier results of ``image_path`` from ``scene`` (except ``keep``); datablocks removed."""
    ids: list = []
    for coll in find_previous(scene, image_path):
        if keep is not None and coll == keep:
            continue
        for obj in coll.objects:  # keep what the user put there: move it up a level
            if obj.get(TAG) is None and len(obj.users_collection) == 1:
                scene.collection.objects.link(obj)
        ids += _collection_ids(coll)
    ids = list({id(x): x for x in ids}.values())
    if ids:
        bpy.data.batch_remove(ids)
    return len(ids)


def _ensure_parent_collection(scene, created: list):
    for coll in scene.collection.children:
        if coll.get(PARENT_TAG):
            return coll
    coll = bpy.data.collections.new(PARENT_COLLECTION)
    created.append(coll)
    coll[PARENT_TAG] = True
    scene.collection.children.link(coll)
    return coll


def solid_view_hint() -> tuple[str, ...]:
    """A hint when a 3D view in Solid mode would not show the vertex colors."""
    screen = getattr(bpy.context, "screen", None)
    if screen is None:
        return ()
    for area in screen.areas:
        if area.type != "VIEW_3D":
            continue
        shading = area.spaces.active.shading
        if shading.type == "SOLID" and shading.color_type != "VERTEX":
            hint = "Vertex colors: Viewport Shading > Color > Attribute (Solid view), or Material Preview"
            return (hint,)
    return ()


def saved_settings(scene) -> dict:
    """What building may change in the scene's settings (restored when it fails)."""
    render = scene.render
    return {"camera": scene.camera, "res": (render.resolution_x, render.resolution_y, render.resolution_percentage,
                                            render.pixel_aspect_x, render.pixel_aspect_y)}


def roll_back(scene, saved: dict, created: list, images_before: set) -> None:
    """Remove every datablock created since ``images_before`` was taken and restore the scene settings."""
    new_images = [im for im in bpy.data.images if im not in images_before]
    leftovers = [b for b in reversed(created + new_images) if b is not None]
    bpy.data.batch_remove(leftovers)
    scene.camera = saved["camera"]
    render = scene.render
    (render.resolution_x, render.resolution_y, render.resolution_percentage,
     render.pixel_aspect_x, render.pixel_aspect_y) = saved["res"]


def new_collection(scene, name: str, tag: str, created: list):
    """A collection ``name`` tagged ``tag`` under *Shape from Image* (created blocks go into ``created``)."""
    parent = _ensure_parent_collection(scene, created)
    coll = bpy.data.collections.new(name)
    created.append(coll)
    coll[TAG] = tag
    parent.children.link(coll)
    return coll


def take_names(name: str, blocks) -> None:
    """Rename to ``name`` (the earlier result that held it is gone)."""
    for block in blocks:
        if block.name != name:
            block.name = name


def select_only(scene, obj, view_layer=None) -> None:
    """Make ``obj`` the only selected and the active object of the view layer showing ``scene``."""
    layer = view_layer
    if layer is None and getattr(bpy.context, "scene", None) == scene:
        layer = bpy.context.view_layer
    if layer is None:
        return
    for other in layer.objects:  # objects removed since the view layer last synced show up as None
        if other is not None and other.select_get(view_layer=layer):
            other.select_set(False, view_layer=layer)
    obj.select_set(True, view_layer=layer)
    layer.objects.active = obj


@contextmanager
def all_or_nothing(scene):
    """One build in ``scene``: yields the list that every datablock it creates goes into. When the build
    raises, those datablocks and every image loaded since it began are removed, the scene camera and render
    resolution are restored (:func:`roll_back`) and the error is raised again."""
    created: list = []
    saved = saved_settings(scene)
    images_before = set(bpy.data.images)
    try:
        yield created
    except Exception:
        roll_back(scene, saved, created, images_before)
        raise
