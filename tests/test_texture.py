"""The UV atlas, the texture baked from the photo, the files that carry it, and the face budget."""

import json
import struct

import numpy as np
import trimesh

from core.geometry.camera import look_at
from core.io.export import export_mesh
from core.mesh import Mesh, decimate
from core.result import CameraInfo
from core.texture import View, atlas, bake, rasterize, texture_mesh


def _sphere(radius: float = 0.6, rings: int = 40, segments: int = 80) -> Mesh:
    m = trimesh.creation.uv_sphere(radius=radius, count=(rings, segments))
    v = np.asarray(m.vertices, np.float32)
    colors = np.clip(0.5 + 0.5 * v / radius, 0, 1).astype(np.float32)
    return Mesh(v, np.asarray(m.faces, np.int32), colors)


SIZE = (160, 120)
CAMERA = CameraInfo(look_at(np.array([1.2, -2.6, 1.0])), 150.0, SIZE[0], SIZE[1], 80.0, 60.0)


def _photo() -> tuple[np.ndarray, np.ndarray]:
    """A 'photo' of the sphere through CAMERA: a checkerboard of 6 px cells inside its silhouette."""
    w, h = SIZE
    v, u = np.mgrid[0:h, 0:w] + 0.5
    local = np.stack([(u - CAMERA.cx) / CAMERA.focal_px, -(v - CAMERA.cy) / CAMERA.focal_px, -np.ones_like(u)], -1)
    dirs = local @ CAMERA.cam2world[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    oc = -CAMERA.cam2world[:3, 3]
    along = dirs @ oc
    mask = ((oc @ oc) - along ** 2 <= 0.6 ** 2 * 0.995) & (along > 0)
    check = ((u // 6 + v // 6) % 2).astype(np.float32)
    photo = np.stack([0.2 + 0.6 * check, 0.7 - 0.5 * check, np.full_like(check, 0.3)], -1)
    return photo.astype(np.float32), mask.astype(np.float32)


def test_rasterize_covers_the_pixel_centres_inside_a_triangle():
    tri = np.array([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]])
    pix, face, bary = rasterize(tri, 12, 12)
    x, y = pix % 12 + 0.5, pix // 12 + 0.5
    assert len(pix) == 55 and (x + y <= 10).all() and (face == 0).all()  # 10 + 9 + ... + 1 centres
    assert np.allclose(bary.sum(1), 1) and np.allclose(bary @ tri[0], np.stack([x, y], 1))
    # clockwise triangles are covered too; pixels outside the image are not
    assert len(rasterize(tri[:, ::-1] + 1.0, 12, 12)[0]) == 55
    pix2, _, _ = rasterize(tri + 6.0, 12, 12)
    assert len(pix2) == 35 and pix2.max() < 144 and (pix2 % 12 >= 6).all()


def test_atlas_charts_do_not_overlap_and_keep_the_surface():
    mesh = _sphere()
    vmap, faces, uv = atlas(mesh.vertices, mesh.faces, 512)
    assert uv.min() >= 0 and uv.max() <= 1 and len(faces) == len(mesh.faces)
    assert np.array_equal(mesh.vertices[vmap][faces], mesh.vertices[mesh.faces])  # the same triangles
    assert len(vmap) < 1.3 * len(mesh.vertices)  # seams repeat only the charts' border vertices
    xy = np.stack([uv[:, 0] * 512, (1 - uv[:, 1]) * 512], 1)[faces]
    pix, _, _ = rasterize(xy, 512, 512)
    counts = np.bincount(pix, minlength=512 * 512)
    assert counts.max() == 1 or (counts > 1).sum() < 1e-3 * (counts > 0).sum()  # no texel shared by two charts
    assert (counts > 0).mean() > 0.35  # and the charts use the atlas


def test_the_baked_texture_is_the_photo_where_the_camera_sees_and_the_vertex_colours_elsewhere():
    mesh = _sphere()
    photo, mask = _photo()
    textured = texture_mesh(mesh, 512, [View(CAMERA, photo, mask)])
    tex, weight = bake(textured.vertices, textured.faces, textured.uv, textured.colors, 512,
                       [View(CAMERA, photo, mask)])
    assert np.array_equal(tex, textured.texture) and tex.dtype == np.uint8 and tex.shape == (512, 512, 3)
    # the side the camera sees takes the photo, the rest the vertex colours
    texels = tex.reshape(-1, 3).any(1)
    assert 0.12 < (weight > 0.99).sum() / texels.sum() < 0.45  # the cap a camera 3 radii away sees
    # drawn through the camera, the texture reproduces the checkerboard; vertex colours cannot
    from training.texture_bench import draw, psnr

    drawn, plain, covered = draw(textured, CAMERA, *SIZE)
    inside = covered & (mask > 0.5)
    gain = psnr(drawn[inside], photo[inside]) - psnr(plain[inside], photo[inside])
    print(f"texture {psnr(drawn[inside], photo[inside]):.2f} dB, vertex colours {psnr(plain[inside], photo[inside]):.2f} dB")
    assert psnr(drawn[inside], photo[inside]) > 18 and gain > 8
    import cv2

    interior = covered & (cv2.erode((mask > 0.5).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
    assert psnr(drawn[interior], photo[interior]) > 28  # off the silhouette's grazing rim: the photo itself
    # without a view the texture is the vertex colours' own
    alone, w0 = bake(textured.vertices, textured.faces, textured.uv, textured.colors, 512)
    assert w0.max() == 0
    drawn_alone = draw(Mesh(textured.vertices, textured.faces, textured.colors, uv=textured.uv, texture=alone),
                       CAMERA, *SIZE)[0]
    assert psnr(drawn_alone[inside], plain[inside]) > 30


def test_a_point_hidden_behind_another_surface_takes_nothing_of_the_photo():
    front, back = _sphere(0.3), _sphere(0.3)
    eye = CAMERA.cam2world[:3, 3]
    ahead = eye / np.linalg.norm(eye)
    front.vertices = (front.vertices + 1.0 * ahead).astype(np.float32)  # between the camera and the back sphere
    both = Mesh(np.concatenate([front.vertices, back.vertices]),
                np.concatenate([front.faces, back.faces + len(front.vertices)]),
                np.concatenate([front.colors, back.colors]))
    photo, mask = np.ones((SIZE[1], SIZE[0], 3), np.float32), np.ones((SIZE[1], SIZE[0]), np.float32)
    tm = texture_mesh(both, 256)
    _, weight = bake(tm.vertices, tm.faces, tm.uv, tm.colors, 256, [View(CAMERA, photo, mask)])
    behind = tm.vertices[:, :3] @ ahead < 0.5  # the back sphere's vertices
    xy = np.stack([tm.uv[:, 0] * 256, (1 - tm.uv[:, 1]) * 256], 1)
    back_texels = weight[np.clip(xy[behind, 1].astype(int), 0, 255), np.clip(xy[behind, 0].astype(int), 0, 255)]
    front_texels = weight[np.clip(xy[~behind, 1].astype(int), 0, 255), np.clip(xy[~behind, 0].astype(int), 0, 255)]
    assert back_texels.max() < 0.05 and front_texels.max() > 0.9


def _glb_json(path) -> dict:
    data = open(path, "rb").read()
    n = struct.unpack("<I", data[12:16])[0]
    return json.loads(data[20:20 + n])


def test_glb_obj_and_ply_carry_the_texture_and_keep_the_vertex_colours(tmp_path):
    photo, mask = _photo()
    mesh = texture_mesh(_sphere(), 256, [View(CAMERA, photo, mask)])
    glb = export_mesh(mesh, tmp_path / "s.glb")
    tree = _glb_json(glb)
    attributes = tree["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "TEXCOORD_0", "_VERTEX_COLOR"} <= set(attributes) and "COLOR_0" not in attributes
    assert "baseColorTexture" in tree["materials"][0]["pbrMetallicRoughness"]
    scene = trimesh.load(glb)
    loaded = next(iter(scene.geometry.values()))
    assert loaded.visual.material.baseColorTexture.size == (256, 256)
    assert np.allclose(loaded.visual.uv, mesh.uv, atol=1e-6)
    kept = loaded.vertex_attributes["_VERTEX_COLOR"]  # the vertex colours: 8-bit sRGB RGBA, as in PLY
    assert kept.dtype == np.uint8 and np.abs(kept[:, :3] / 255.0 - mesh.colors).max() < 1 / 255 + 1e-6
    obj = export_mesh(mesh, tmp_path / "s.obj")
    assert (tmp_path / "s.mtl").exists() and (tmp_path / "s_texture.png").exists()
    assert "map_Kd s_texture.png" in (tmp_path / "s.mtl").read_text()
    loaded = trimesh.load(obj, process=False)
    assert np.asarray(loaded.visual.material.image).shape == (256, 256, 3)
    first_v = next(line for line in open(obj).read().splitlines() if line.startswith("v "))
    assert len(first_v.split()) == 7  # x y z r g b: the vertex colours stay
    ply = trimesh.load(export_mesh(mesh, tmp_path / "s.ply"), process=False)
    assert np.abs(ply.visual.vertex_colors[:, :3] / 255.0 - mesh.colors).max() < 1 / 255 + 1e-6
    # an untextured mesh writes exactly as before: COLOR_0, no texture, no side files
    plain = export_mesh(_sphere(), tmp_path / "p.glb")
    assert "COLOR_0" in _glb_json(plain)["meshes"][0]["primitives"][0]["attributes"]
    export_mesh(_sphere(), tmp_path / "p.obj")
    assert not (tmp_path / "p.mtl").exists()


def test_decimate_keeps_the_shape_colours_and_parts_within_the_budget():
    from core.parts import merge_slots

    mesh = _sphere(rings=60, segments=120)
    z = mesh.vertices[:, 2] / 0.6
    logits = np.stack([8 * z, -8 * z], 1)
    weights = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mesh.parts = merge_slots(weights, np.array([[1.0, -1.0, 0.0], [-1.0, 0.0, 1.0]]), min_share=0.0)
    mesh.colors = mesh.parts.colors()
    small = decimate(mesh, 2000)
    assert 1800 <= len(small.faces) <= 2000 and len(small.vertices) < len(mesh.vertices) / 5
    r = np.linalg.norm(small.vertices, axis=1)
    assert np.abs(r - 0.6).max() < 0.02  # still the sphere
    assert small.parts.weights.shape == (len(small.vertices), mesh.parts.count)
    assert np.abs(small.parts.colors() - small.colors).max() < 1e-6
    top = small.vertices[:, 2] > 0.3
    assert np.abs(small.colors[top].mean(0) - mesh.colors[mesh.vertices[:, 2] > 0.3].mean(0)).max() < 0.05
    assert decimate(mesh, 10 ** 6) is mesh


def test_reconstruct_with_a_face_budget_and_a_texture(tiny_model_dir, tmp_path):
    from PIL import Image

    from core.api import reconstruct

    h, w = 90, 120
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (((xx - 60) / 25.0) ** 2 + ((yy - 45) / 35.0) ** 2 < 1).astype(np.uint8) * 255
    rgb = np.dstack([np.full((h, w), 170, np.uint8), (60 + 3 * (xx % 20)).astype(np.uint8),
                     np.full((h, w), 50, np.uint8)])
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "p.png")
    (full,) = reconstruct([tmp_path / "p.png"], model="tiny", model_dirs=[tiny_model_dir], steps=0,
                          mesh_resolution=48, texture_size=0)
    budget = max(100, len(full.mesh.faces) // 4)
    (res,) = reconstruct([tmp_path / "p.png"], model="tiny", model_dirs=[tiny_model_dir], steps=0,
                         mesh_resolution=48, faces=budget, texture_size=128, out_dir=tmp_path / "o", fmt="obj")
    assert res.ok, res.error
    assert len(res.mesh.faces) <= budget and res.mesh.texture.shape == (128, 128, 3)
    assert {"decimate", "texture"} <= set(res.timings)
    data = json.loads((tmp_path / "o" / "p.json").read_text())
    assert data["mesh"]["faces"] == len(res.mesh.faces) and data["mesh"]["texture"] == 128
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p.json", "p.mtl", "p.obj", "p_texture.png"]
