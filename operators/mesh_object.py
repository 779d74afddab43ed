"""The mesh object: the mesh datablock with its colour, part and UV attributes, its material and texture."""

from __future__ import annotations

import bpy

from . import LazyModule
from .materials import create_material, create_texture_image
from .scene_data import (COLOR_ATTRIBUTE, PART_ATTRIBUTE, PART_BASE_ATTRIBUTE, RESIDUAL_ATTRIBUTE, TAG, UV_MAP,
                         CheckedResult)

np = LazyModule("numpy")  # not imported at registration: the extension loads before the dependencies are installed


def create_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None,
                part_weights: np.ndarray | None = None, part_residual: np.ndarray | None = None,
                uv: np.ndarray | None = None):
    """A smooth-shaded triangle mesh; ``colors`` (V, 3) sRGB become the POINT attribute "Col".

    ``part_weights`` (V, P) and ``part_residual`` (V, 3) (core.parts) become the float POINT
    attributes ``part_0`` ... and the vector attribute ``part_residual`` that the part material mixes.

    The attribute is BYTE_COLOR written through ``color_srgb``: Blender stores byte colors as
    sRGB and converts them to linear for shading, so the photo's colors come back unchanged.
    """
    mesh = bpy.data.meshes.new(name)
    try:
        n_v, n_f = len(vertices), len(faces)
        mesh.vertices.add(n_v)
        mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
        mesh.loops.add(3 * n_f)
        mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(faces, dtype=np.int32).ravel())
        mesh.polygons.add(n_f)
        mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * n_f, 3, dtype=np.int32))
        mesh.update(calc_edges=True)
        mesh.validate(clean_customdata=False)
        if colors is not None and len(mesh.vertices) == n_v:
            attr = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
            rgba = np.ones((n_v, 4), dtype=np.float32)
            rgba[:, :3] = colors
            attr.data.foreach_set("color_srgb", rgba.ravel())
            mesh.color_attributes.active_color = attr
            mesh.color_attributes.render_color_index = mesh.color_attributes.active_color_index
        if part_weights is not None and part_residual is not None and len(mesh.vertices) == n_v:
            for p in range(part_weights.shape[1]):
                attr = mesh.attributes.new(PART_ATTRIBUTE.format(p), "FLOAT", "POINT")
                attr.data.foreach_set("value", np.ascontiguousarray(part_weights[:, p], dtype=np.float32))
            attr = mesh.attributes.new(RESIDUAL_ATTRIBUTE, "FLOAT_VECTOR", "POINT")
            attr.data.foreach_set("vector", np.ascontiguousarray(part_residual, dtype=np.float32).ravel())
        if uv is not None and len(mesh.vertices) == n_v and len(mesh.loops) == 3 * n_f:
            layer = mesh.uv_layers.new(name=UV_MAP)
            corner = np.empty(len(mesh.loops), dtype=np.int32)
            mesh.loops.foreach_get("vertex_index", corner)
            layer.data.foreach_set("uv", np.ascontiguousarray(uv[corner], dtype=np.float32).ravel())
        if part_weights is not None and colors is not None and uv is not None:
            base = mesh.color_attributes.new(PART_BASE_ATTRIBUTE, "BYTE_COLOR", "POINT")
            rgba = np.ones((n_v, 4), dtype=np.float32)
            rgba[:, :3] = colors
            base.data.foreach_set("color_srgb", rgba.ravel())
        mesh.shade_smooth()
    except Exception:
        bpy.data.meshes.remove(mesh)
        raise
    return mesh


def add_mesh_object(name: str, checked: CheckedResult, tag: str, coll, created: list, result_json: str | None):
    """The colored mesh, its material and the object holding them, linked to ``coll``; (object, mesh, material)."""
    mesh = create_mesh(name, checked.vertices, checked.faces, checked.colors, checked.part_weights,
                       checked.part_residual, checked.uv)
    created.append(mesh)
    mesh[TAG] = tag
    image = None
    if checked.texture is not None:
        image = create_texture_image(f"{name} Texture", checked.texture)
        created.append(image)
        image[TAG] = tag
    mean = None if checked.colors is None else checked.colors.mean(axis=0)
    mat = create_material(name, mean, checked.part_colors, checked.part_names, image)
    created.append(mat)
    mat[TAG] = tag
    mesh.materials.append(mat)
    obj = bpy.data.objects.new(name, mesh)
    created.append(obj)
    obj[TAG] = tag
    if result_json is not None:
        obj["shape_from_image_result"] = result_json
    coll.objects.link(obj)
    return obj, mesh, mat
