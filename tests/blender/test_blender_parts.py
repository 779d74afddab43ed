"""Recolorable parts in Blender: part attributes, the palette material, live swatches, Bake to Col.

A synthetic sphere has three color parts (top cap, bottom cap, a belt between them) built by the
extension's own core.parts from slot weights, exactly as a reconstruction gets them.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
import pytest
import sfi_helpers

TOP, BOTTOM, BELT = 0, 1, 2


@dataclass
class PartsMesh(sfi_helpers.FakeMesh):
    """A FakeMesh with core.parts.ColorParts."""

    parts: object = None


def _parts_result(image: str, scenario=sfi_helpers.DEFAULT_SCENARIO):
    sfi_helpers.import_extension()
    from shape_from_image.core.parts import merge_slots

    verts, faces = sfi_helpers.uv_sphere(scenario.radius, scenario.center)
    z = (verts[:, 2] - scenario.center[2]) / scenario.radius
    logits = np.stack([40 * (z - 0.25), 40 * (-0.25 - z), 12 - 40 * np.abs(z), np.full_like(z, -20.0)], 1)
    weights = np.exp(logits - logits.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    slot_values = np.array([[1.5, -0.5, -1.0], [-1.0, 0.2, 1.2], [0.3, 1.0, -0.2], [2.0, 2.0, 2.0]])
    parts = merge_slots(weights, slot_values, min_share=0.05)
    colors = parts.colors()
    return sfi_helpers.fake_result(image, scenario, mesh=PartsMesh(verts, faces, colors, parts)), weights


@pytest.fixture
def built(ext, photo):
    from shape_from_image.operators import scene as scene_mod

    result, _ = _parts_result(str(photo))
    built = scene_mod.build_result(bpy.context.scene, result)
    return result, built.mesh_object, scene_mod


def _part_of_vertices(result) -> np.ndarray:
    """(V,) the dominant part of every vertex."""
    return result.mesh.parts.weights.argmax(1)


def test_mesh_has_part_attributes_and_the_material_reproduces_col(built):
    result, obj, scene_mod = built
    parts = result.mesh.parts
    assert parts.count == 3
    order = [int(np.median((result.mesh.vertices[:, 2])[_part_of_vertices(result) == p]) * 10) for p in range(3)]
    assert order[TOP] > order[BELT] > order[BOTTOM]
    mesh = obj.data
    for p in range(parts.count):
        values = np.empty(len(mesh.vertices), np.float32)
        mesh.attributes[f"part_{p}"].data.foreach_get("value", values)
        assert np.allclose(values, parts.weights[:, p])
    assert "part_3" not in mesh.attributes and "part_residual" in mesh.attributes
    mat = mesh.materials[0]
    swatches = scene_mod.part_swatches(mat)
    assert [n.label for n in swatches] == ["Part 1", "Part 2", "Part 3"]
    mixed = scene_mod.part_mix_colors(mesh, mat)
    assert np.abs(mixed - result.mesh.colors).max() < 1e-4
    col = np.empty(4 * len(mesh.vertices), np.float32)
    mesh.color_attributes["Col"].data.foreach_get("color_srgb", col)
    assert np.abs(col.reshape(-1, 4)[:, :3] - mixed).max() <= 0.5 / 255 + 1e-4
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert bsdf.inputs["Base Color"].links[0].from_node.bl_idname == "ShaderNodeGroup"


def test_named_parts_label_their_swatches(ext, photo):
    """A model whose slots follow named groups (core.parts.merge_slots with group_names): 'Seat', 'Back', ..."""
    import dataclasses

    from shape_from_image.operators import scene as scene_mod

    result, _ = _parts_result(str(photo))
    parts = dataclasses.replace(result.mesh.parts, names=("seat", "back", "frame"))
    result = dataclasses.replace(result, mesh=PartsMesh(result.mesh.vertices, result.mesh.faces, result.mesh.colors,
                                                        parts))
    obj = scene_mod.build_result(bpy.context.scene, result).mesh_object
    assert [n.label for n in scene_mod.part_swatches(obj.data.materials[0])] == ["Seat", "Back", "Legs/Frame"]


def test_swatch_labels_tell_parts_of_one_group_apart_by_color(ext):
    from shape_from_image.operators import scene as scene_mod

    names = ("frame", "seat", "back", "frame 2", "back 2", "frame 3")
    colors = [(0.25, 0.15, 0.08), (0.9, 0.45, 0.1), (0.5, 0.5, 0.5), (0.85, 0.5, 0.15), (0.1, 0.1, 0.1),
              (0.95, 0.95, 0.93)]
    assert scene_mod.swatch_labels(names, colors) == [
        "Legs/Frame (dark brown)", "Seat", "Back (grey)", "Legs/Frame (orange)", "Back (black)", "Legs/Frame (white)"]
    assert scene_mod.swatch_labels(("seat", "seat 2"), [(0.9, 0.4, 0.1), (0.95, 0.5, 0.1)]) == [
        "Seat (orange)", "Seat (orange) 2"]  # the same color name twice: numbered
    assert scene_mod.swatch_labels((), colors[:2]) == ["Part 1", "Part 2"]
    assert [scene_mod.color_name(c) for c in ((0.1, 0.3, 0.9), (0.2, 0.7, 0.2), (0.8, 0.1, 0.1), (0.45, 0.1, 0.08))] == [
        "blue", "green", "red", "brown"]


def test_result_without_parts_keeps_the_plain_col_material(ext, photo):
    from shape_from_image.operators import scene as scene_mod

    built = scene_mod.build_result(bpy.context.scene, sfi_helpers.fake_result(str(photo)))
    mat = built.mesh_object.data.materials[0]
    assert scene_mod.part_swatches(mat) == []
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert bsdf.inputs["Base Color"].links[0].from_node.type == "VERTEX_COLOR"
    assert "part_0" not in built.mesh_object.data.attributes


def _visible_part_pixels(result, scenario=sfi_helpers.DEFAULT_SCENARIO) -> dict[int, np.ndarray]:
    """Pixel masks (H, W) of the camera-facing vertices that are almost all one part (weight > 0.99)."""
    verts = result.mesh.vertices.astype(np.float64)
    eye = scenario.cam2world[:3, 3]
    normals = verts - np.asarray(scenario.center)
    facing = np.einsum("ij,ij->i", normals, eye - verts) > 0.2 * np.linalg.norm(eye - verts, axis=1) * scenario.radius
    uv = sfi_helpers.pinhole(scenario.cam2world, scenario.focal, scenario.cx, scenario.cy, verts)
    masks = {}
    for p in range(result.mesh.parts.count):
        pick = facing & (result.mesh.parts.weights[:, p] > 0.99)
        mask = np.zeros((scenario.height, scenario.width), bool)
        cols, rows = np.floor(uv[pick]).astype(int).T
        ok = (rows >= 0) & (rows < scenario.height) & (cols >= 0) & (cols < scenario.width)
        mask[rows[ok], cols[ok]] = True
        masks[p] = mask
    return masks


def test_cycles_render_untouched_equals_col_and_a_swatch_recolors_only_its_part(built, tmp_path):
    from shape_from_image.operators import inputs

    result, obj, scene_mod = built
    render = sfi_helpers.load_renders()
    scene = bpy.context.scene
    render.use_cycles(scene, samples=4)
    render.white_world(scene)
    scene.cycles.seed = 0

    def shot(name):
        return inputs.read_rgba(render.render_still(scene, scene.camera, str(tmp_path / f"{name}.png")))

    mat = obj.data.materials[0]
    tree = mat.node_tree
    bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    mix_socket = bsdf.inputs["Base Color"].links[0].from_socket
    untouched = shot("mix")
    tree.links.new(tree.nodes["sfi_col"].outputs["Color"], bsdf.inputs["Base Color"])
    col = shot("col")
    tree.links.new(mix_socket, bsdf.inputs["Base Color"])
    inside = (untouched[..., 3] > 0.99) & (col[..., 3] > 0.99)
    assert inside.sum() > 2000
    diff = np.abs(untouched[..., :3] - col[..., :3]).max(-1)[inside]
    print(f"untouched mix vs Col render: mean {diff.mean():.4f}, p99 {np.quantile(diff, 0.99):.4f}")
    assert diff.mean() < 0.005 and np.quantile(diff, 0.99) < 0.02

    swatches = scene_mod.part_swatches(mat)
    swatches[TOP].outputs[0].default_value = (0.8, 0.02, 0.02, 1.0)
    red = shot("red")
    change = np.abs(red[..., :3] - untouched[..., :3]).max(-1)
    masks = _visible_part_pixels(result)
    top = masks[TOP] & inside
    others = (masks[BOTTOM] | masks[BELT]) & inside
    assert top.sum() > 200 and others.sum() > 200
    changed_top = (change[top] > 0.05).mean()
    changed_others = (change[others] > 0.02).mean()
    print(f"swatch change: {changed_top:.3f} of top pixels changed, {changed_others:.4f} of other parts' pixels")
    assert changed_top > 0.9 and changed_others < 0.02


def test_bake_to_col_writes_the_current_mix_with_undo(built):
    result, obj, scene_mod = built
    bpy.context.view_layer.objects.active = obj
    mesh, mat = obj.data, obj.data.materials[0]
    swatch = scene_mod.part_swatches(mat)[BOTTOM]
    swatch.outputs[0].default_value = (0.0, 0.3, 0.05, 1.0)
    expect = scene_mod.part_mix_colors(mesh, mat)
    assert bpy.ops.shape_from_image.bake_parts() == {"FINISHED"}
    col = np.empty(4 * len(mesh.vertices), np.float32)
    mesh.color_attributes["Col"].data.foreach_get("color_srgb", col)
    col = col.reshape(-1, 4)[:, :3]
    assert np.abs(col - expect).max() <= 0.5 / 255 + 1e-4
    bottom = _part_of_vertices(result) == BOTTOM
    assert np.abs(col[bottom] - result.mesh.colors[bottom]).max() > 0.2
    assert np.abs(col[~bottom] - result.mesh.colors[~bottom]).max(1).mean() < 0.05


def test_bake_is_refused_without_parts(ext, photo):
    from shape_from_image.operators import scene as scene_mod

    built = scene_mod.build_result(bpy.context.scene, sfi_helpers.fake_result(str(photo)))
    bpy.context.view_layer.objects.active = built.mesh_object
    assert not bpy.ops.shape_from_image.bake_parts.poll()


class _Layout:
    """Records what a panel draws."""

    def __init__(self, log):
        self.log = log

    def column(self, **kwargs):
        return self

    def prop(self, data, name, text=""):
        self.log.append(("prop", data, name, text))

    def operator(self, idname, **kwargs):
        self.log.append(("operator", idname))


def test_parts_panel_shows_the_swatches_and_the_bake_button(built):
    from types import SimpleNamespace

    from shape_from_image.operators.parts import SHAPE_FROM_IMAGE_OT_bake_parts
    from shape_from_image.panels import main

    _, obj, scene_mod = built
    bpy.context.view_layer.objects.active = obj
    assert main.VIEW3D_PT_shape_from_image_parts.poll(bpy.context)
    log: list = []
    main.VIEW3D_PT_shape_from_image_parts.draw(SimpleNamespace(layout=_Layout(log)), bpy.context)
    swatches = scene_mod.part_swatches(obj.data.materials[0])
    assert [e[3] for e in log if e[0] == "prop"] == ["Part 1", "Part 2", "Part 3"]
    assert [e[1] for e in log if e[0] == "prop"] == [n.outputs[0] for n in swatches]
    assert ("operator", "shape_from_image.bake_parts") in log
    assert "UNDO" in SHAPE_FROM_IMAGE_OT_bake_parts.bl_options
