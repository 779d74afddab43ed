"""The mesh's material: vertex colours, the part mix (:mod:`.part_nodes`) and the texture baked from the photo."""

from __future__ import annotations

import bpy

from . import LazyModule
from .part_nodes import add_part_mix
from .scene_data import COLOR_ATTRIBUTE, PART_BASE_ATTRIBUTE, TEXTURE_NODE, UV_MAP, srgb_to_linear

np = LazyModule("numpy")  # not imported at registration: the extension loads before the dependencies are installed


def create_texture_image(name: str, texture: np.ndarray):
    """A packed image datablock (sRGB) holding ``texture`` (T, T, 3) uint8, row 0 at the top: it is saved
    inside the .blend."""
    height, width = texture.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=False)
    try:
        rgba = np.ones((height, width, 4), dtype=np.float32)
        rgba[..., :3] = texture[::-1].astype(np.float32) / 255.0  # Blender's row 0 is the bottom
        image.pixels.foreach_set(rgba.ravel())
        image.file_format = "PNG"
        image.pack()
    except Exception:
        bpy.data.images.remove(image)
        raise
    return image


def create_material(name: str, mean_srgb: np.ndarray | None, part_colors: np.ndarray | None = None,
                    part_names: tuple[str, ...] = (), image=None):
    """Color Attribute "Col" -> Principled BSDF base color; Solid view shows ``diffuse_color``.

    With ``part_colors`` (P, 3) sRGB the base color is instead the parts' mix (:func:`add_part_mix`):
    one RGB node per part holds its swatch, so editing a swatch recolors that part live.

    With ``image`` (the texture baked from the photo) the base colour is that texture (UV map ``UVMap``);
    with parts as well, it is the texture shifted by how far the parts' mix moved from the mix as built
    (attribute ``part_base``): untouched swatches show the texture, a recolored part keeps the photo's
    detail in its new colour.
    """
    mat = bpy.data.materials.new(name)
    try:
        if mat.node_tree is None:  # Blender < 5.0 creates materials without nodes
            mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
        if bsdf is None:
            bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        output = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None)
        if output is None:
            output = nodes.new("ShaderNodeOutputMaterial")
        if not bsdf.outputs[0].links:
            links.new(bsdf.outputs[0], output.inputs["Surface"])
        attr = nodes.new("ShaderNodeVertexColor")
        attr.layer_name = COLOR_ATTRIBUTE
        attr.location = (bsdf.location.x - 300.0, bsdf.location.y)
        links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
        if part_colors is not None:
            attr.name = "sfi_col"
            attr.location.y -= 300.0
            mix = add_part_mix(mat.node_tree, part_colors, (bsdf.location.x - 300.0, bsdf.location.y), part_names)
            links.new(mix, bsdf.inputs["Base Color"])
        if image is not None:
            _add_texture(mat.node_tree, image, bsdf, mix if part_colors is not None else None)
        bsdf.inputs["Roughness"].default_value = 0.8
        if mean_srgb is not None:
            lin = srgb_to_linear(mean_srgb)
            mat.diffuse_color = (float(lin[0]), float(lin[1]), float(lin[2]), 1.0)
    except Exception:
        bpy.data.materials.remove(mat)
        raise
    return mat


def _add_texture(tree, image, bsdf, part_mix=None) -> None:
    """Image Texture (UV map ``UVMap``) -> base colour; with the parts' mix socket ``part_mix``:
    texture + (mix - part_base), floored at 0."""
    nodes, links = tree.nodes, tree.links
    x, y = bsdf.location.x, bsdf.location.y
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = UV_MAP
    uv.location = (x - 900.0, y + 400.0)
    tex = nodes.new("ShaderNodeTexImage")
    tex.name = TEXTURE_NODE
    tex.image = image
    tex.interpolation = "Linear"
    tex.location = (x - 700.0, y + 400.0)
    links.new(uv.outputs["UV"], tex.inputs["Vector"])
    if part_mix is None:
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return
    base = nodes.new("ShaderNodeVertexColor")
    base.layer_name = PART_BASE_ATTRIBUTE
    base.location = (x - 700.0, y + 700.0)
    shift = nodes.new("ShaderNodeVectorMath")
    shift.operation = "SUBTRACT"
    shift.location = (x - 450.0, y + 600.0)
    links.new(part_mix, shift.inputs[0])
    links.new(base.outputs["Color"], shift.inputs[1])
    add = nodes.new("ShaderNodeVectorMath")
    add.operation = "ADD"
    add.location = (x - 300.0, y + 500.0)
    links.new(tex.outputs["Color"], add.inputs[0])
    links.new(shift.outputs[0], add.inputs[1])
    floor = nodes.new("ShaderNodeVectorMath")
    floor.operation = "MAXIMUM"
    floor.location = (x - 150.0, y + 500.0)
    floor.inputs[1].default_value = (0.0, 0.0, 0.0)
    links.new(add.outputs[0], floor.inputs[0])
    links.new(floor.outputs[0], bsdf.inputs["Base Color"])


def texture_image(mat):
    """The texture image of a material built here, or None."""
    node = mat.node_tree.nodes.get(TEXTURE_NODE) if mat is not None and mat.node_tree is not None else None
    return getattr(node, "image", None)
