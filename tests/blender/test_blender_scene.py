"""Scene building from a (synthetic) reconstruction result: mesh, colors, material, camera."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
import sfi_helpers
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from sfi_helpers import Scenario, fake_result, look_at, pinhole


@pytest.fixture
def scene_mod(ext):
    from shape_from_image.operators import scene

    return scene


def _project_blender(scene, cam_obj, points: np.ndarray, width: int, height: int) -> np.ndarray:
    out = []
    for p in points:
        ndc = world_to_camera_view(scene, cam_obj, Vector(p.tolist()))
        out.append((ndc.x * width, (1.0 - ndc.y) * height))
    return np.asarray(out)


@pytest.mark.parametrize("width,height,cx,cy", [(640, 480, 350.5, 221.25),   # landscape, off-centre
                                                (480, 640, 200.0, 360.0),    # portrait: vertical fit
                                                (512, 512, 256.0, 256.0)])   # square, centred
def test_camera_projects_like_the_pinhole(scene_mod, tmp_path, width, height, cx, cy):
    scenario = Scenario(cam2world=look_at((1.7, -2.9, 1.3), target=(0.1, 0.0, 0.2)), focal=820.0,
                        cx=cx, cy=cy, width=width, height=height)
    scene = bpy.context.scene
    built = scene_mod.build_result(scene, fake_result(str(tmp_path / "p.png"), scenario))
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.8, 0.8, size=(50, 3))
    expected = pinhole(scenario.cam2world, scenario.focal, cx, cy, points)
    got = _project_blender(scene, built.camera_object, points, width, height)
    assert np.abs(got - expected).max() < 1e-3 * max(width, height)
    np.testing.assert_allclose(np.asarray(built.camera_object.matrix_world), scenario.cam2world, atol=1e-6)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (width, height)
    assert scene.camera == built.camera_object


def test_a_wrong_shift_sign_would_be_caught(scene_mod, tmp_path):
    """The projection test can fail: flipping the shift moves points by 2 * (cx - W/2) pixels."""
    scenario = Scenario(cam2world=look_at((1.7, -2.9, 1.3)), focal=820.0, cx=380.0, cy=200.0,
                        width=640, height=480)
    scene = bpy.context.scene
    cam = scene_mod.build_result(scene, fake_result(str(tmp_path / "p.png"), scenario)).camera_object
    cam.data.shift_x = -cam.data.shift_x
    points = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.5]])
    err = np.abs(_project_blender(scene, cam, points, 640, 480)
                 - pinhole(scenario.cam2world, 820.0, 380.0, 200.0, points))[:, 0]
    np.testing.assert_allclose(err, 2 * (380.0 - 320.0), atol=1e-2)


def test_mesh_colors_material_and_collections(scene_mod, tmp_path):
    image = str(sfi_helpers.write_photo(tmp_path / "chair_01.png"))
    result = fake_result(image)
    built = scene_mod.build_result(bpy.context.scene, result)
    obj, mesh = built.mesh_object, built.mesh_object.data
    assert obj.name == "chair_01" and built.collection.name == "chair_01"
    parent = [c for c in bpy.context.scene.collection.children if c.name == "Shape from Image"]
    assert len(parent) == 1 and built.collection.name in parent[0].children
    assert len(mesh.vertices) == len(result.mesh.vertices) and len(mesh.polygons) == len(result.mesh.faces)
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    np.testing.assert_allclose(co.reshape(-1, 3), result.mesh.vertices, atol=1e-6)
    loops = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    np.testing.assert_array_equal(loops.reshape(-1, 3), result.mesh.faces)
    assert all(p.use_smooth for p in mesh.polygons[:10])
    # outward normals: the face normals of a sphere point away from the centre
    normal, center = mesh.polygons[100].normal, mesh.polygons[100].center
    assert normal.dot(center) > 0

    attr = mesh.color_attributes["Col"]
    assert (attr.domain, attr.data_type) == ("POINT", "BYTE_COLOR")
    assert mesh.color_attributes.active_color_name == "Col"
    assert mesh.color_attributes.render_color_index == mesh.color_attributes.active_color_index
    srgb = np.array(attr.data[0].color_srgb)
    np.testing.assert_allclose(srgb[:3], (0.5, 0.2, 1.0), atol=1 / 255 + 1e-6)  # round trip, vertex 0
    linear = np.array(attr.data[0].color)
    np.testing.assert_allclose(linear[:3], scene_mod.srgb_to_linear(np.array([0.5, 0.2, 1.0])), atol=4e-3)
    all_srgb = np.empty(len(mesh.vertices) * 4, dtype=np.float32)
    attr.data.foreach_get("color_srgb", all_srgb)
    assert np.abs(all_srgb.reshape(-1, 4)[:, :3] - result.mesh.colors).max() <= 0.5 / 255 + 1e-6

    mat = mesh.materials[0]
    node = next(n for n in mat.node_tree.nodes if n.type == "VERTEX_COLOR")
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert node.layer_name == "Col"
    assert bsdf.inputs["Base Color"].links[0].from_node == node
    out = next(n for n in mat.node_tree.nodes if n.type == "OUTPUT_MATERIAL")
    assert out.inputs["Surface"].links[0].from_node == bsdf
    mean_lin = scene_mod.srgb_to_linear(result.mesh.colors.mean(axis=0))
    np.testing.assert_allclose(mat.diffuse_color[:3], mean_lin, atol=1e-5)

    cam = built.camera_object
    assert cam.data.show_background_images and cam.data.background_images[0].image.filepath == image
    assert obj[scene_mod.TAG] == image and cam[scene_mod.TAG] == image
    assert bpy.context.view_layer.objects.active == obj and obj.select_get()


def test_options_off_add_only_the_mesh(scene_mod, tmp_path):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 333, 222
    opts = scene_mod.BuildOptions(add_camera=False, set_scene_camera=False, set_render_resolution=False,
                                  camera_background=False)
    built = scene_mod.build_result(scene, fake_result(str(tmp_path / "a.png")), opts)
    assert built.camera_object is None and len(bpy.data.cameras) == 0 and len(bpy.data.images) == 0
    assert (scene.render.resolution_x, scene.render.resolution_y) == (333, 222)


def test_replace_previous_keeps_one_result_per_image(scene_mod, tmp_path):
    scene = bpy.context.scene
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    scene_mod.build_result(scene, fake_result(a))
    first_b = scene_mod.build_result(scene, fake_result(b))
    user_obj = bpy.data.objects.new("user empty", None)
    first_b.collection.objects.link(user_obj)   # something the user added to our collection
    scene_mod.build_result(scene, fake_result(b))  # replaces b
    snap = sfi_helpers.snapshot()
    assert snap["objects"] == sorted(["a", "a Camera", "b", "b Camera", "user empty"])
    assert snap["meshes"] == ["a", "b"] and snap["cameras"] == ["a Camera", "b Camera"]
    assert snap["collections"] == sorted(["Shape from Image", "a", "b"])
    assert snap["materials"] == ["a", "b"]
    assert user_obj.name in scene.collection.objects  # moved up, not lost
    scene_mod.build_result(scene, fake_result(b), scene_mod.BuildOptions(replace_previous=False))
    assert sorted(c.name for c in scene_mod.find_previous(scene, b)) == ["b", "b.001"]


@pytest.mark.parametrize("breakage,match", [
    ("faces_out_of_range", "index missing vertices"),
    ("nan_vertices", "non-finite"),
    ("bad_rotation", "not a rotation"),
    ("no_faces", "no faces"),
    ("zero_focal", "intrinsics"),
])
def test_invalid_results_are_refused_before_building(scene_mod, tmp_path, breakage, match):
    result = fake_result(str(tmp_path / "x.png"))
    if breakage == "faces_out_of_range":
        result.mesh.faces = result.mesh.faces.copy()
        result.mesh.faces[5, 1] = len(result.mesh.vertices)
    elif breakage == "nan_vertices":
        result.mesh.vertices = result.mesh.vertices.copy()
        result.mesh.vertices[3, 0] = np.nan
    elif breakage == "bad_rotation":
        result.camera.cam2world = result.camera.cam2world.copy()
        result.camera.cam2world[:3, 0] *= 2.0
    elif breakage == "no_faces":
        result.mesh.faces = np.zeros((0, 3), dtype=np.int32)
    elif breakage == "zero_focal":
        result.camera.focal_px = 0.0
    before = sfi_helpers.snapshot()
    with pytest.raises(Exception, match=match) as info:
        scene_mod.build_result(bpy.context.scene, result)
    assert type(info.value).__name__ == "ReconstructionError" and "x.png" in str(info.value)
    assert sfi_helpers.snapshot() == before


def test_failure_midway_removes_everything(scene_mod, tmp_path, monkeypatch, photo):
    from shape_from_image.operators import camera_object

    scene = bpy.context.scene
    scene_mod.build_result(scene, fake_result(str(photo)))  # an earlier result that must survive
    before = sfi_helpers.snapshot()

    def broken(cam_data, image):
        raise RuntimeError("simulated failure while adding the backdrop")

    monkeypatch.setattr(camera_object, "add_background_image", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        scene_mod.build_result(scene, fake_result(str(photo)))
    assert sfi_helpers.snapshot() == before


def test_degenerate_faces_are_dropped(scene_mod, tmp_path):
    result = fake_result(str(tmp_path / "d.png"))
    faces = result.mesh.faces.copy()
    faces[:4] = [[1, 1, 2], [3, 4, 3], [7, 8, 8], [9, 9, 9]]
    result.mesh.faces = faces
    built = scene_mod.build_result(bpy.context.scene, result)
    assert len(built.mesh_object.data.polygons) == len(faces) - 4


def test_camera_parameters_formula(scene_mod):
    p = scene_mod.camera_parameters(focal_px=1000.0, cx=700.0, cy=300.0, width=1200, height=800)
    assert p.sensor_fit == "HORIZONTAL" and p.lens == pytest.approx(1000.0 * 36.0 / 1200.0)
    assert p.shift_x == pytest.approx(-(700.0 - 600.0) / 1200.0)
    assert p.shift_y == pytest.approx((300.0 - 400.0) / 1200.0)
    assert scene_mod.camera_parameters(500.0, 100.0, 200.0, 300, 400).sensor_fit == "VERTICAL"
