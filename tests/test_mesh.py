"""Marching cubes accuracy, orientation, cleanup, colors, export formats and Blender import."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from core.errors import ReconstructionError
from core.config import MeshConfig
from core.io.export import export_mesh, srgb_to_linear
from core.mesh import Mesh, extract_mesh


def sphere_sdf(radius=0.5, centre=(0.0, 0.0, 0.0)):
    c = torch.tensor(centre)
    return lambda p: (p - c).norm(dim=-1) - radius


def box_sdf(half, centre):
    half, centre = torch.tensor(half), torch.tensor(centre)

    def sdf(p):
        q = (p - centre).abs() - half
        return q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)
    return sdf


def color_field(p):
    return ((p + 1) / 2).clamp(0, 1)


def signed_volume(mesh: Mesh) -> float:
    a, b, c = (mesh.vertices[mesh.faces[:, i]].astype(np.float64) for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


@pytest.mark.parametrize("resolution", [64, 128])
def test_sphere_accuracy_orientation_and_colors(resolution):
    mesh = extract_mesh(sphere_sdf(), color_field, MeshConfig(resolution=resolution))
    voxel = 2.0 / (resolution - 1)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    assert mesh.colors.dtype == np.float32 and mesh.colors.shape == mesh.vertices.shape
    dev = np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5)
    assert dev.mean() < voxel
    assert dev.max() < 1.5 * voxel
    # Outward (counter-clockwise) faces: positive volume close to the sphere's, every normal outward.
    assert abs(signed_volume(mesh) / (4 / 3 * np.pi * 0.125) - 1) < 0.01
    a, b, c = (mesh.vertices[mesh.faces[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    assert (np.einsum("ij,ij->i", normals, (a + b + c) / 3) > 0).all()
    # Watertight, one piece: every edge shared by exactly two faces, Euler characteristic 2.
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight and tm.euler_number == 2
    expected = color_field(torch.from_numpy(mesh.vertices)).numpy()
    np.testing.assert_allclose(mesh.colors, expected, atol=1e-5)


def test_floating_piece_is_removed():
    big, small = sphere_sdf(0.5), sphere_sdf(0.06, (0.75, 0.75, 0.75))

    def sdf(p):
        return torch.minimum(big(p), small(p))
    kept = extract_mesh(sdf, None, MeshConfig(resolution=64, min_component_ratio=0.0))
    far = np.linalg.norm(kept.vertices - 0.75, axis=1) < 0.2
    assert far.sum() > 20  # the small sphere is resolved at all
    cleaned = extract_mesh(sdf, None, MeshConfig(resolution=64))
    assert not (np.linalg.norm(cleaned.vertices - 0.75, axis=1) < 0.2).any()
    assert len(cleaned.vertices) == len(kept.vertices) - far.sum()
    assert cleaned.faces.max() == len(cleaned.vertices) - 1  # indices compacted
    np.testing.assert_allclose(cleaned.colors, 0.5)  # no color field: mid gray


def test_pieces_touching_at_a_vertex_stay_together():
    """Pieces are vertex-connected: a fan of triangles sharing only a vertex is one piece; a small
    separate triangle is dropped and the kept vertices keep their order and are reindexed."""
    from core.mesh import _remove_small_components

    verts = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    small = [0, 1, 2]                                     # first in the arrays, 1 face
    fan = [[3, 4, 5], [5, 6, 7], [3, 5, 7]]               # 3 faces; [3, 4, 5] and [5, 6, 7] share vertex 5
    faces = np.array([small, *fan], dtype=np.int64)
    kept_verts, kept_faces = _remove_small_components(verts, faces, 0.5)
    np.testing.assert_array_equal(kept_verts, verts[3:])
    np.testing.assert_array_equal(kept_faces, np.array(fan) - 3)
    assert kept_verts.dtype == np.float32
    touching = np.array([[3, 4, 5], [5, 6, 7]], dtype=np.int64)  # only a vertex in common: still one piece
    kept_verts, kept_faces = _remove_small_components(verts, np.vstack([[small], touching]), 0.6)
    np.testing.assert_array_equal(kept_faces, touching - 3)


def test_shape_touching_the_box_is_closed():
    mesh = extract_mesh(box_sdf((0.5, 0.5, 2.0), (0.0, 0.0, 0.0)), None, MeshConfig(resolution=32))
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight
    assert signed_volume(mesh) > 0
    assert mesh.vertices[:, 2].max() <= 1.0 + 1e-6 and mesh.vertices[:, 2].max() > 0.99


@pytest.mark.parametrize("value", [1.0, -1.0])
def test_no_surface_raises(value):
    with pytest.raises(ReconstructionError, match="no surface") as info:
        extract_mesh(lambda p: torch.full((len(p),), value), None, MeshConfig(resolution=32), path="img/chair.png")
    assert "img/chair.png" in str(info.value)


def test_grid_spans_the_bound_and_is_chunked():
    seen = []

    def sdf(p):
        seen.append(p.clone())
        return sphere_sdf(0.3)(p)
    mesh = extract_mesh(sdf, None, MeshConfig(resolution=21), bound=0.5, chunk=1000)
    points = torch.cat(seen)
    assert len(points) == 21 ** 3 and max(len(s) for s in seen) <= 1000
    assert points.min().item() == -0.5 and points.max().item() == 0.5
    assert len(torch.unique(points[:, 0])) == 21
    assert abs(np.linalg.norm(mesh.vertices, axis=1).mean() - 0.3) < 0.01


@pytest.fixture(scope="module")
def box_mesh() -> Mesh:
    """A box taller in Z than wide, offset toward -Y, colored by position."""
    return extract_mesh(box_sdf((0.2, 0.25, 0.6), (0.1, -0.4, 0.1)), color_field, MeshConfig(resolution=40))


@pytest.mark.parametrize("fmt", ["glb", "ply", "obj"])
def test_export_round_trip(box_mesh, tmp_path, fmt):
    path = export_mesh(box_mesh, tmp_path / f"chair.{fmt}")
    assert path == str(tmp_path / f"chair.{fmt}")
    assert os.listdir(tmp_path) == [f"chair.{fmt}"]  # no temporary files left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # readable like any new file, not mkstemp's 0600
    loaded = trimesh.load(path, force="mesh", process=False, skip_materials=True)
    assert len(loaded.vertices) == len(box_mesh.vertices)
    np.testing.assert_array_equal(loaded.faces, box_mesh.faces)
    v, w = np.asarray(loaded.vertices), box_mesh.vertices
    if fmt == "ply":  # Blender world coordinates as is
        np.testing.assert_allclose(v, w, atol=1e-6)
    else:  # Y-up: (x, y, z)_world -> (x, z, -y)
        np.testing.assert_allclose(v[:, 0], w[:, 0], atol=1e-5)
        np.testing.assert_allclose(v[:, 1], w[:, 2], atol=1e-5)
        np.testing.assert_allclose(v[:, 2], -w[:, 1], atol=1e-5)
    colors = loaded.visual.vertex_colors[:, :3] / 255.0
    expected = srgb_to_linear(box_mesh.colors) if fmt == "glb" else box_mesh.colors  # glTF is linear
    assert np.abs(colors - expected).max() <= 1 / 255 + 1e-6
    # Faces still point outward after the axis change.
    assert trimesh.Trimesh(v, loaded.faces, process=False).volume > 0


def _read_glb(path) -> tuple[dict, bytes]:
    data = Path(path).read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00" and 28 + json_len + bin_len == len(data)
    return json.loads(data[20:20 + json_len]), data[28 + json_len:]


def test_glb_structure_and_linear_float_colors(box_mesh, tmp_path):
    path = export_mesh(box_mesh, tmp_path / "chair.glb")
    gltf, blob = _read_glb(path)
    prim = gltf["meshes"][0]["primitives"][0]
    color_acc = gltf["accessors"][prim["attributes"]["COLOR_0"]]
    assert color_acc["componentType"] == 5126 and color_acc["type"] == "VEC3"  # float32 RGB
    view = gltf["bufferViews"][color_acc["bufferView"]]
    stored = np.frombuffer(blob, "<f4", count=3 * color_acc["count"], offset=view["byteOffset"]).reshape(-1, 3)
    np.testing.assert_allclose(stored, srgb_to_linear(box_mesh.colors), atol=1e-6)  # glTF colors are linear
    pos_acc = gltf["accessors"][prim["attributes"]["POSITION"]]
    y_up = np.stack([box_mesh.vertices[:, 0], box_mesh.vertices[:, 2], -box_mesh.vertices[:, 1]], 1)
    np.testing.assert_allclose(pos_acc["min"], y_up.min(0), atol=1e-6)
    np.testing.assert_allclose(pos_acc["max"], y_up.max(0), atol=1e-6)
    material = gltf["materials"][prim["material"]]["pbrMetallicRoughness"]
    assert material["metallicFactor"] == 0.0  # the glTF default (1.0) would render the chair as metal


def test_export_format_argument_and_overwrite(box_mesh, tmp_path):
    target = tmp_path / "nested" / "out.mesh"
    export_mesh(box_mesh, target, fmt="PLY")
    assert target.read_bytes().startswith(b"ply\n")
    export_mesh(box_mesh, target, fmt="ply")  # overwriting works
    assert sorted(os.listdir(target.parent)) == ["out.mesh"]
    with pytest.raises(ReconstructionError, match="unknown mesh format"):
        export_mesh(box_mesh, tmp_path / "out.stl")


def test_unwritable_folder_raises(box_mesh, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ReconstructionError, match="writable") as info:
        export_mesh(box_mesh, blocker / "chair.glb")
    assert str(blocker) in str(info.value)
    with pytest.raises(ReconstructionError, match="writable") as info:
        export_mesh(box_mesh, "/dev/null/chair.ply")
    assert "/dev/null" in str(info.value)


def test_blender_imports_upright_and_colored(tmp_path):
    """Blender's stock glTF, OBJ and PLY importers place the mesh exactly in the world frame."""
    bpy = pytest.importorskip("bpy")
    gray_blue = np.array([0.2, 0.4, 0.8], dtype=np.float32)
    mesh = extract_mesh(box_sdf((0.2, 0.25, 0.6), (0.1, -0.4, 0.1)),
                        lambda p: torch.from_numpy(gray_blue).expand(len(p), 3), MeshConfig(resolution=24))
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    assert hi[2] - lo[2] > hi[0] - lo[0] and (lo + hi)[1] / 2 < -0.3
    importers = {"glb": bpy.ops.import_scene.gltf, "obj": bpy.ops.wm.obj_import, "ply": bpy.ops.wm.ply_import}
    for fmt, importer in importers.items():
        path = export_mesh(mesh, tmp_path / f"chair.{fmt}")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        importer(filepath=path)
        objects = [o for o in bpy.context.scene.objects if o.type == "MESH"]
        assert len(objects) == 1, fmt
        obj = objects[0]
        co = np.empty(len(obj.data.vertices) * 3)
        obj.data.vertices.foreach_get("co", co)
        rot, shift = np.array(obj.matrix_world)[:3, :3], np.array(obj.matrix_world)[:3, 3]
        co = co.reshape(-1, 3) @ rot.T + shift
        np.testing.assert_allclose(co.min(0), lo, atol=1e-4, err_msg=fmt)
        np.testing.assert_allclose(co.max(0), hi, atol=1e-4, err_msg=fmt)
        assert len(obj.data.color_attributes) >= 1, fmt
        attr = obj.data.color_attributes[0]
        srgb = np.empty(len(attr.data) * 4)
        attr.data.foreach_get("color_srgb", srgb)
        np.testing.assert_allclose(srgb.reshape(-1, 4)[:, :3], np.broadcast_to(gray_blue, (len(attr.data), 3)),
                                   atol=2 / 255, err_msg=fmt)
        # Faces come in pointing outward (away from the box centre).
        centre = (lo + hi) / 2
        outward = [np.dot(rot @ np.array(p.normal), rot @ np.array(p.center) + shift - centre) > 0
                   for p in obj.data.polygons]
        assert np.mean(outward) == 1.0, fmt


def test_adaptive_grid_matches_dense_near_the_surface():
    """Coarse-to-fine sampling queries fewer points but keeps every sign and the near-surface values,
    also for a part much thinner than the coarse voxel (a 0.03 thick slab, like a chair's sling)."""
    from core.mesh import sample_grid, sample_grid_adaptive

    def field(p):
        slab = torch.maximum((p[:, 2] - 0.3).abs() - 0.015, (p[:, :2].abs() - 0.5).amax(dim=1))
        return torch.minimum((p.norm(dim=1) - 0.4), slab)

    calls = [0]

    def counted(p):
        calls[0] += len(p)
        return field(p)

    dense = sample_grid(field, 96, 1.0, 65536)
    adaptive = sample_grid_adaptive(counted, 96, 1.0, 65536, coarse=32)
    assert calls[0] < 0.35 * 96 ** 3
    assert (np.sign(dense) == np.sign(adaptive)).all()
    near = np.abs(dense) < 0.03
    assert np.abs(dense[near] - adaptive[near]).max() < 1e-5


def test_a_photos_silhouette_cuts_the_surface_to_its_cone():
    from core.geometry.camera import look_at
    from core.mesh import silhouette_cone

    size, focal = 96, 120.0
    cam2world = look_at(np.array([0.0, -3.0, 0.0]))
    # the photo shows only the sphere's left half (x < 0): its right half must go, its left half stay
    mask = np.zeros((size, size), bool)
    mask[:, : size // 2] = True
    cone = silhouette_cone(mask, cam2world, focal, size / 2, size / 2, margin_px=0.0)
    seen = torch.tensor([[-0.3, 0.0, 0.0], [0.3, 0.0, 0.0], [-0.3, -5.0, 0.0]])
    values = cone(seen)
    # left: inside by about 0.3; right: outside by about 0.3 (the cone's plane is x = 0); behind the camera: outside
    assert values[0] == pytest.approx(-0.3, abs=0.03) and values[1] == pytest.approx(0.3, abs=0.03)
    assert values[2] > 0
    sphere = sphere_sdf(0.5)
    mesh = extract_mesh(lambda p: torch.maximum(sphere(p), cone(p)), None, MeshConfig(resolution=64))
    assert mesh.vertices[:, 0].max() < 0.03 and mesh.vertices[:, 0].min() < -0.45  # cut at the plane, left kept
    whole = extract_mesh(sphere, None, MeshConfig(resolution=64))
    assert signed_volume(mesh) == pytest.approx(signed_volume(whole) / 2, rel=0.05)
    # a margin keeps that many pixels more: at depth 3 one pixel is 3 / 120 = 0.025 world units
    wider = silhouette_cone(mask, cam2world, focal, size / 2, size / 2, margin_px=4.0)
    assert float(wider(seen[1:2])) == pytest.approx(0.3 - 4 * 3.0 / focal, abs=0.03)
    # a large photo's mask is shrunk first: the same cone within a shrunk pixel
    shrunk = silhouette_cone(mask, cam2world, focal, size / 2, size / 2, margin_px=0.0, max_side=size // 2)
    assert torch.allclose(shrunk(seen[:2]), values[:2], atol=2 * 3.0 / focal)
    with pytest.raises(ValueError, match="empty"):
        silhouette_cone(np.zeros((4, 4), bool), cam2world, focal, 2, 2, 0.0)
