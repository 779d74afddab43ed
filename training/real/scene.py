"""Blender (the ``bpy`` module) side of the real validation set: import, canonicalize, render.

Importable without torch (training.infinigen.make_chairs runs it in Infinigen's own Blender).

Canonical frame (docs/CONVENTIONS.md, training.data.chairs): +Z up, the chair's front toward -Y,
the bounding box centred at the origin with its largest side :data:`training.data.chairs.EXTENT`.

Two render conditions, both Cycles on the CPU, colours as stored (``Standard`` view transform):

- ``cutout``: transparent film (RGBA with alpha), a soft environment (a uniform grey or one of
  Blender's bundled studio-light HDRIs, dimmed) plus a soft sun as the key light;
- ``photo``: no alpha; the chair stands on a textured floor (wood planks, tiles or plain) that
  catches its contact shadow, in front of a painted wall or under an HDRI sky; the object mask is
  rendered separately (floor and wall hidden, transparent film).
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from core.color import srgb_to_linear

SH3D_TO_BLENDER = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
"""Sweet Home 3D model frame (+Y up, front +Z) -> Blender (+Z up, front -Y); what Blender's OBJ
importer does with forward -Z, up +Y."""
SMOOTH_ANGLE_DEG = 45.0
"""models without normals are shaded smooth below this crease angle (as Sweet Home 3D does)."""


@dataclass
class Canonical:
    """A chair converted into the canonical frame."""

    obj: object
    """the Blender object (one mesh, its transform applied: matrix_world is the identity)."""
    vertices: np.ndarray
    """(V, 3) float32, canonical frame."""
    faces: np.ndarray
    """(F, 3) int32 triangles."""
    transform: np.ndarray
    """(4, 4) imported OBJ (Blender axes) -> canonical."""


def reset() -> None:
    """An empty scene."""
    bpy.ops.wm.read_factory_settings(use_empty=True)


def _rot_z(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])


def import_canonical(obj_path: Path, size_cm: tuple[float, float, float], model_rotation=None,
                     yaw_deg: float = 0.0) -> Canonical:
    """Import a catalogue OBJ and move it into the canonical frame.

    The model is rotated by the entry's ``model_rotation`` (Sweet Home 3D frame), stretched so that
    its bounding box is ``size_cm`` = (width x, depth y, height z) as the catalogue places it, turned
    by ``yaw_deg`` about +Z (a per-model override when a catalogue front is not +Z), then centred
    and scaled uniformly so that the largest side is EXTENT. Material colours (``Kd``, display
    values in Sweet Home 3D) are converted to linear base colours.
    """
    from ..data.chairs import EXTENT

    before = set(bpy.data.objects)
    bpy.ops.wm.obj_import(filepath=str(obj_path), forward_axis="NEGATIVE_Z", up_axis="Y")
    parts = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    if not parts:
        raise ValueError(f"{obj_path}: no mesh imported")
    obj = _join(parts)
    mesh = obj.data
    has_normals = mesh.has_custom_normals
    mesh.transform(obj.matrix_world)
    obj.matrix_world = Matrix.Identity(4)

    rot = np.eye(3) if model_rotation is None else SH3D_TO_BLENDER @ np.asarray(model_rotation) @ SH3D_TO_BLENDER.T
    co = _coords(mesh) @ rot.T
    lo, hi = co.min(0), co.max(0)
    stretch = np.diag(np.asarray(size_cm, dtype=np.float64) / np.maximum(hi - lo, 1e-9))
    lin = _rot_z(yaw_deg) @ stretch @ rot
    co = _coords(mesh) @ lin.T
    lo, hi = co.min(0), co.max(0)
    s = EXTENT / float((hi - lo).max())
    m = np.eye(4)
    m[:3, :3] = s * lin
    m[:3, 3] = -s * (lo + hi) / 2
    mesh.transform(Matrix(m.tolist()))
    mesh.update()
    if not has_normals:
        mesh.shade_smooth()
        mesh.set_sharp_from_angle(angle=math.radians(SMOOTH_ANGLE_DEG))
    for mat in mesh.materials:
        bsdf = _principled(mat)
        if bsdf is not None and not bsdf.inputs["Base Color"].is_linked:
            c = list(bsdf.inputs["Base Color"].default_value)
            bsdf.inputs["Base Color"].default_value = (*srgb_to_linear(c[:3]), c[3])
    mesh.calc_loop_triangles()
    faces = np.zeros(len(mesh.loop_triangles) * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("vertices", faces)
    return Canonical(obj, _coords(mesh).astype(np.float32), faces.reshape(-1, 3), m)


def _coords(mesh) -> np.ndarray:
    co = np.zeros(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def _join(parts: list):
    if len(parts) == 1:
        return parts[0]
    with bpy.context.temp_override(active_object=parts[0], selected_editable_objects=parts,
                                   selected_objects=parts):
        bpy.ops.object.join()
    return parts[0]


def _principled(mat):
    if mat is None or mat.node_tree is None:
        return None
    return next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)


# --------------------------------------------------------------------------------------------
# render settings, cameras, lights


def setup_render(size: int, samples: int, denoise: bool, transparent: bool, threads: int = 0) -> None:
    """Cycles CPU at ``size`` x ``size``, 8-bit PNG, Standard view transform."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.use_denoising = denoise
    if denoise:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.cycles.max_bounces = 4
    scene.render.film_transparent = transparent
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        scene.render.threads = threads
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA" if transparent else "RGB"
    scene.render.image_settings.color_depth = "8"


def set_camera(cam2world: np.ndarray, lens_mm: float, sensor_mm: float = 36.0):
    """The scene camera (created once) at ``cam2world`` with a ``lens_mm`` lens on a ``sensor_mm``
    wide sensor, principal point at the image centre."""
    scene = bpy.context.scene
    cam = scene.camera
    if cam is None:
        cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        scene.collection.objects.link(cam)
        scene.camera = cam
    cam.data.lens = lens_mm
    cam.data.sensor_width = sensor_mm
    cam.data.sensor_fit = "HORIZONTAL"
    cam.data.shift_x = cam.data.shift_y = 0.0
    cam.data.clip_start, cam.data.clip_end = 0.01, 200.0
    cam.matrix_world = Matrix(np.asarray(cam2world, dtype=np.float64).tolist())
    return cam


def studio_lights() -> list[str]:
    """The HDRIs bundled with Blender (``datafiles/studiolights/world/*.exr``)."""
    folder = bpy.utils.system_resource("DATAFILES", path="studiolights/world")
    return sorted(glob.glob(os.path.join(folder, "*.exr")))


def set_world(color=(1.0, 1.0, 1.0), strength: float = 1.0, hdri: str | None = None, yaw_deg: float = 0.0,
              background_strength: float | None = None) -> None:
    """Environment light: a uniform colour, or an HDRI turned by ``yaw_deg``; the camera sees it at
    ``background_strength`` (default: the lighting strength)."""
    scene = bpy.context.scene
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    nt = world.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputWorld")
    light = nt.nodes.new("ShaderNodeBackground")
    light.inputs["Strength"].default_value = strength
    if hdri:
        tex = nt.nodes.new("ShaderNodeTexEnvironment")
        tex.image = bpy.data.images.load(hdri, check_existing=True)
        mapping = nt.nodes.new("ShaderNodeMapping")
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(yaw_deg))
        coord = nt.nodes.new("ShaderNodeTexCoord")
        nt.links.new(coord.outputs["Generated"], mapping.inputs["Vector"])
        nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        nt.links.new(tex.outputs["Color"], light.inputs["Color"])
    else:
        light.inputs["Color"].default_value = (*color, 1.0)
    if background_strength is None or background_strength == strength:
        nt.links.new(light.outputs["Background"], out.inputs["Surface"])
        return
    seen = nt.nodes.new("ShaderNodeBackground")
    seen.inputs["Strength"].default_value = background_strength
    if light.inputs["Color"].is_linked:
        nt.links.new(light.inputs["Color"].links[0].from_socket, seen.inputs["Color"])
    else:
        seen.inputs["Color"].default_value = light.inputs["Color"].default_value
    path = nt.nodes.new("ShaderNodeLightPath")
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    nt.links.new(light.outputs["Background"], mix.inputs[1])
    nt.links.new(seen.outputs["Background"], mix.inputs[2])
    nt.links.new(mix.outputs["Shader"], out.inputs["Surface"])


def set_key_light(azimuth_deg: float, elevation_deg: float, strength: float, angle_deg: float = 12.0,
                  color=(1.0, 1.0, 1.0)) -> None:
    """One sun (created once) shining from (azimuth, elevation) (the same angles as the cameras:
    azimuth 0 is -Y, 90 is +X), with a soft angular size."""
    obj = bpy.data.objects.get("Key")
    if obj is None:
        obj = bpy.data.objects.new("Key", bpy.data.lights.new("Key", "SUN"))
        bpy.context.scene.collection.objects.link(obj)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    towards = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
    obj.data.energy = strength
    obj.data.angle = math.radians(angle_deg)
    obj.data.color = color
    obj.rotation_euler = Vector(towards.tolist()).to_track_quat("Z", "Y").to_euler()


# --------------------------------------------------------------------------------------------
# the photo-like set: floor and wall


def _material(name: str):
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
    nt.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    return mat, nt, bsdf


def _floor_material(rng: np.random.Generator):
    """Wood planks, tiles or a plain (concrete / carpet) floor, random colours and scale."""
    mat, nt, bsdf = _material("Floor")
    kind = rng.choice(["planks", "tiles", "plain"], p=[0.45, 0.3, 0.25])
    coord = nt.nodes.new("ShaderNodeTexCoord")
    noise = nt.nodes.new("ShaderNodeTexNoise")
    nt.links.new(coord.outputs["Object"], noise.inputs["Vector"])
    if kind == "plain":
        base = srgb_to_linear(np.clip(rng.uniform(0.25, 0.75) * np.array([1.0, 0.97, 0.92])
                                       + rng.normal(0, 0.03, 3), 0, 1))
        ramp = nt.nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = (*(base * 0.8), 1.0)
        ramp.color_ramp.elements[1].color = (*(base * 1.1), 1.0)
        noise.inputs["Scale"].default_value = rng.uniform(4, 30)
        nt.links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
        nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = rng.uniform(0.6, 0.95)
        return mat, kind
    brick = nt.nodes.new("ShaderNodeTexBrick")
    mapping = nt.nodes.new("ShaderNodeMapping")
    nt.links.new(coord.outputs["Object"], mapping.inputs["Vector"])
    nt.links.new(mapping.outputs["Vector"], brick.inputs["Vector"])
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, float(rng.uniform(0, math.pi)))
    if kind == "planks":
        wood = np.array([[0.80, 0.62, 0.42], [0.62, 0.42, 0.24], [0.40, 0.25, 0.14], [0.25, 0.16, 0.10]])
        c = wood[rng.integers(len(wood))] * rng.uniform(0.9, 1.1)
        c1, c2 = srgb_to_linear(np.clip(c, 0, 1)), srgb_to_linear(np.clip(c * 0.85, 0, 1))
        brick.inputs["Scale"].default_value = rng.uniform(0.6, 1.2)
        brick.inputs["Brick Width"].default_value = rng.uniform(1.5, 3.0)
        brick.inputs["Row Height"].default_value = rng.uniform(0.15, 0.3)
        brick.inputs["Mortar Size"].default_value = 0.004
        brick.offset = float(rng.uniform(0.3, 0.7))
        mortar = c2 * 0.5
        bsdf.inputs["Roughness"].default_value = rng.uniform(0.35, 0.7)
    else:
        tone = rng.uniform(0.3, 0.9)
        hue = np.clip(np.array([1.0, 0.96, 0.9]) * tone + rng.normal(0, 0.05, 3), 0, 1)
        c1, c2 = srgb_to_linear(hue), srgb_to_linear(hue * rng.uniform(0.8, 1.0))
        brick.inputs["Scale"].default_value = rng.uniform(0.8, 2.0)
        brick.inputs["Brick Width"].default_value = 1.0
        brick.inputs["Row Height"].default_value = 1.0
        brick.inputs["Mortar Size"].default_value = 0.01
        brick.offset = 0.0 if rng.random() < 0.7 else 0.5
        mortar = srgb_to_linear(np.full(3, rng.uniform(0.3, 0.8)))
        bsdf.inputs["Roughness"].default_value = rng.uniform(0.2, 0.5)
    brick.inputs["Color1"].default_value = (*c1, 1.0)
    brick.inputs["Color2"].default_value = (*c2, 1.0)
    brick.inputs["Mortar"].default_value = (*mortar, 1.0)
    noise.inputs["Scale"].default_value = rng.uniform(10, 40)
    mix = nt.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    mix.inputs["Factor"].default_value = 0.25
    nt.links.new(brick.outputs["Color"], mix.inputs["A"])
    nt.links.new(noise.outputs["Color"], mix.inputs["B"])
    nt.links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])
    return mat, str(kind)


def _plane(name: str, size: float, matrix: np.ndarray, material):
    obj = bpy.data.objects.get(name)
    if obj is None:
        mesh = bpy.data.meshes.new(name)
        h = size / 2
        mesh.from_pydata([(-h, -h, 0), (h, -h, 0), (h, h, 0), (-h, h, 0)], [], [(0, 1, 2, 3)])
        obj = bpy.data.objects.new(name, mesh)
        bpy.context.scene.collection.objects.link(obj)
    obj.matrix_world = Matrix(np.asarray(matrix, dtype=np.float64).tolist())
    obj.data.materials.clear()
    obj.data.materials.append(material)
    obj.hide_render = False
    return obj


def build_room(rng: np.random.Generator, floor_z: float, camera_azimuth_deg: float, wall: bool) -> dict:
    """Floor at ``floor_z`` and (when ``wall``) a painted wall behind the chair as seen from the
    camera's azimuth; returns what was chosen."""
    floor_mat, kind = _floor_material(rng)
    m = np.eye(4)
    m[2, 3] = floor_z
    _plane("Floor", 60.0, m, floor_mat)
    info = {"floor": kind, "wall": None}
    old = bpy.data.objects.get("Wall")
    if old is not None:
        old.hide_render = True
    if wall:
        mat, _, bsdf = _material("Wall")
        hsv_v = rng.uniform(0.45, 0.95)
        col = np.clip(hsv_v * (1 - rng.uniform(0, 0.25) * rng.random(3)), 0, 1)
        bsdf.inputs["Base Color"].default_value = (*srgb_to_linear(col), 1.0)
        bsdf.inputs["Roughness"].default_value = 0.9
        az = math.radians(camera_azimuth_deg)
        toward_cam = np.array([math.sin(az), -math.cos(az), 0.0])
        dist = rng.uniform(1.2, 3.0)
        w = np.eye(4)
        w[:3, 0] = np.cross([0, 0, 1.0], toward_cam)
        w[:3, 1] = [0, 0, 1.0]
        w[:3, 2] = toward_cam
        w[:3, 3] = -toward_cam * dist + np.array([0, 0, floor_z + 15.0])
        _plane("Wall", 30.0, w, mat)
        info["wall"] = {"color": col.round(3).tolist(), "distance": round(float(dist), 3)}
    return info


def hide_room() -> None:
    for name in ("Floor", "Wall"):
        obj = bpy.data.objects.get(name)
        if obj is not None:
            obj.hide_render = True


def render(path: Path) -> Path:
    """Render the scene camera into the PNG ``path``."""
    scene = bpy.context.scene
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    if not Path(path).is_file():
        raise RuntimeError(f"{path}: the render was not written")
    return Path(path)
