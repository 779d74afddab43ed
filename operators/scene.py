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
exactly as before. Plain functions: the tests call them directly.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bpy
from mathutils import Matrix

from ..core.geometry.lens import SENSOR_WIDTH_MM, blender_lens_mm
from . import LazyModule

if TYPE_CHECKING:
    from ..core.result import CameraInfo

np = LazyModule("numpy")  # not imported at registration: the extension loads before the dependencies are installed
_color = LazyModule(__package__.rpartition(".")[0] + ".core.color")  # NumPy too: imported on first use


def srgb_to_linear(c):
    """:func:`core.color.srgb_to_linear`."""
    return _color.srgb_to_linear(c)


def linear_to_srgb(c):
    """:func:`core.color.linear_to_srgb`."""
    return _color.linear_to_srgb(c)

TAG = "shape_from_image_source"
"""custom property holding the absolute image path on everything built for that image."""
PARENT_TAG = "shape_from_image_parent"
"""custom property marking the parent collection."""
PHOTO = "shape_from_image_photo"
"""custom property of the camera objects built here: the absolute path of their photo (as the core read it)."""
PHOTO_SIZE = "shape_from_image_photo_size"
"""custom property of the camera data built here: the (width, height) of its photo in pixels."""
PARENT_COLLECTION = "Shape from Image"
COLOR_ATTRIBUTE = "Col"
PART_ATTRIBUTE = "part_{}"
"""float POINT attributes: each vertex's weight on color part 0, 1, ... (core.parts)."""
RESIDUAL_ATTRIBUTE = "part_residual"
"""FLOAT_VECTOR POINT attribute: the pre-sigmoid remainder of each vertex's color mix."""
UV_MAP = "UVMap"
"""the UV layer of a textured mesh."""
PART_BASE_ATTRIBUTE = "part_base"
"""BYTE_COLOR POINT attribute of a textured mesh with parts: the parts' mix as built (the texture's own
colours shift by the swatches' change from it)."""
TEXTURE_NODE = "sfi_texture"
"""name of the Image Texture node of a textured material."""
SWATCH_NODE = "sfi_part_{}"
"""name of the RGB node holding part N's swatch color (scene linear) in the material."""
MAX_PARTS = 8
PART_EPS = 0.001
"""the generator's widened-sigmoid stretch (core.parts.EPS)."""


def _error(message: str, path: str | None):
    """The project's exception type, imported lazily (``core`` is never imported at add-on load)."""
    from ..core.errors import ReconstructionError

    return ReconstructionError(message, path)


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
class CheckedResult:
    """The parts of a ReconstructionResult that land in the scene, validated."""

    image: str
    """absolute image path."""
    vertices: np.ndarray
    """(V, 3) float32 world coordinates, Z up, front -Y."""
    faces: np.ndarray
    """(F, 3) int32 vertex indices, counter-clockwise seen from outside."""
    colors: np.ndarray | None
    """(V, 3) float32 sRGB display values in [0, 1], or None."""
    camera: CameraInfo | None
    """the recovered camera in the original photo (cam2world a float64 rotation + translation); None
    from :func:`check_mesh` alone."""
    dropped_faces: int = 0
    """degenerate faces (repeated vertex) removed by the check."""
    part_weights: np.ndarray | None = None
    """(V, P) float32 weights of the recolorable color parts (core.parts), or None."""
    part_colors: np.ndarray | None = None
    """(P, 3) float32 sRGB swatch color of each part, or None."""
    part_residual: np.ndarray | None = None
    """(V, 3) float32 pre-sigmoid remainder of each vertex's color mix, or None."""
    part_names: tuple[str, ...] = ()
    """a name per part ('seat', 'frame', ...) when the model names its parts; else empty."""
    uv: np.ndarray | None = None
    """(V, 2) float32 texture coordinates (origin bottom-left), or None."""
    texture: np.ndarray | None = None
    """(T, T, 3) uint8 sRGB colour texture baked from the photo (row 0 at the top), or None."""


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


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------

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


def default_name(image_path: str) -> str:
    """Object/collection name for an image: its file stem."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return stem or "Reconstruction"


def check_result(result, image_path: str) -> CheckedResult:
    """Validate a ReconstructionResult (duck-typed) before anything is created in Blender.

    Raises ReconstructionError naming the image when the data cannot make a valid mesh/camera.
    """
    if not getattr(result, "ok", False):
        raise _error(getattr(result, "error", None) or "reconstruction failed", image_path)
    mesh, cam = getattr(result, "mesh", None), getattr(result, "camera", None)
    if mesh is None or cam is None:
        raise _error("the result has no mesh or no camera; run the reconstruction again", image_path)
    checked = check_mesh(mesh, image_path)
    checked.camera = check_camera(cam, image_path)
    return checked


def check_mesh(mesh, image_path: str) -> CheckedResult:
    """Validate a core.mesh.Mesh (duck-typed); the CheckedResult's ``camera`` is left None.

    Raises ReconstructionError naming the image when the data cannot make a valid mesh.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.faces)
    colors = getattr(mesh, "colors", None)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3:
        raise _error(f"the mesh has invalid vertices {vertices.shape}; try a higher mesh resolution "
                     "or another photo", image_path)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise _error(f"the mesh has no faces {faces.shape}: nothing was reconstructed; check that the "
                     "object is visible and try another photo or a mask", image_path)
    if not np.issubdtype(faces.dtype, np.integer):
        raise _error(f"mesh faces must be integers, got {faces.dtype}", image_path)
    if not np.isfinite(vertices).all():
        raise _error("the mesh has non-finite vertices; run the reconstruction again", image_path)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise _error("the mesh faces index missing vertices; run the reconstruction again", image_path)
    faces = faces.astype(np.int32)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    dropped = int((~keep).sum())
    faces = np.ascontiguousarray(faces[keep])
    if len(faces) == 0:
        raise _error("every mesh face is degenerate; try a higher mesh resolution", image_path)
    if colors is not None:
        colors = np.asarray(colors, dtype=np.float32)
        if colors.shape != vertices.shape or not np.isfinite(colors).all():
            raise _error(f"mesh colors {colors.shape} do not match the vertices {vertices.shape}",
                         image_path)
        colors = np.clip(colors, 0.0, 1.0)
    weights, swatches, residual = _checked_parts(getattr(mesh, "parts", None), len(vertices), colors)
    uv, texture = _checked_texture(mesh, len(vertices))
    return CheckedResult(image=image_path, vertices=np.ascontiguousarray(vertices), faces=faces,
                         colors=None if colors is None else np.ascontiguousarray(colors), camera=None,
                         dropped_faces=dropped, part_weights=weights, part_colors=swatches,
                         part_residual=residual, part_names=_part_names(getattr(mesh, "parts", None), swatches),
                         uv=uv, texture=texture)


def _checked_texture(mesh, n_vertices: int) -> tuple:
    """(uv, texture) of a textured mesh, or (None, None) when it has none or they do not fit the mesh (it is
    then built with its vertex colours only)."""
    uv, texture = getattr(mesh, "uv", None), getattr(mesh, "texture", None)
    if uv is None or texture is None:
        return None, None
    uv, texture = np.asarray(uv, dtype=np.float32), np.asarray(texture)
    if (uv.shape != (n_vertices, 2) or not np.isfinite(uv).all() or texture.dtype != np.uint8
            or texture.ndim != 3 or texture.shape[2] != 3 or not 1 <= texture.shape[0] <= 16384
            or not 1 <= texture.shape[1] <= 16384):
        return None, None
    return np.ascontiguousarray(uv), np.ascontiguousarray(texture)


def check_camera(cam, image_path: str) -> CameraInfo:
    """Validate a CameraInfo (duck-typed): a rotation + translation pose and positive intrinsics.

    Raises ReconstructionError naming the image when the camera cannot be built.
    """
    cam2world = np.asarray(cam.cam2world, dtype=np.float64)
    if cam2world.shape != (4, 4) or not np.isfinite(cam2world).all():
        raise _error("the recovered camera pose is invalid; run the reconstruction again", image_path)
    rot = cam2world[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
        raise _error("the recovered camera pose is not a rotation; run the reconstruction again", image_path)
    width, height = int(cam.width), int(cam.height)
    focal, cx, cy = float(cam.focal_px), float(cam.cx), float(cam.cy)
    if width <= 0 or height <= 0 or not (math.isfinite(focal) and focal > 0):
        raise _error(f"invalid camera intrinsics (focal {focal} px, {width}x{height})", image_path)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise _error("invalid principal point", image_path)
    from ..core.result import CameraInfo

    return CameraInfo(cam2world, focal, width, height, cx, cy)


def _part_names(parts, swatches) -> tuple[str, ...]:
    """The parts' names when there is one short plain name per swatch; else none (labels 'Part N')."""
    names = getattr(parts, "names", ())
    if swatches is None or not names:
        return ()
    if (isinstance(names, (tuple, list)) and len(names) == len(swatches)
            and all(isinstance(n, str) and 0 < len(n) <= 32 and n.isprintable() for n in names)):
        return tuple(names)
    return ()


def _checked_parts(parts, n_vertices: int, colors) -> tuple:
    """(weights, swatch colors, residual) of a mesh's color parts, or three Nones when there are none
    or they do not fit the mesh (the mesh is then built with its colors only)."""
    if parts is None or colors is None:
        return None, None, None
    try:
        weights = np.ascontiguousarray(parts.weights, dtype=np.float32)
        swatches = np.ascontiguousarray(parts.part_colors(), dtype=np.float32)
        residual = np.ascontiguousarray(parts.residual, dtype=np.float32)
    except (AttributeError, TypeError, ValueError):
        return None, None, None
    count = len(swatches)
    if (weights.shape != (n_vertices, count) or residual.shape != (n_vertices, 3) or swatches.shape != (count, 3)
            or not 1 <= count <= MAX_PARTS
            or not (np.isfinite(weights).all() and np.isfinite(residual).all() and np.isfinite(swatches).all())):
        return None, None, None
    return weights, swatches, residual


# --------------------------------------------------------------------------------------------
# Datablock builders
# --------------------------------------------------------------------------------------------

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


def apply_camera_parameters(cam_data, params: CameraParameters) -> None:
    cam_data.type = "PERSP"
    cam_data.sensor_fit = params.sensor_fit
    cam_data.sensor_width = params.sensor_size
    cam_data.sensor_height = params.sensor_size
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


def _scene_collections(scene) -> list:
    return [scene.collection] + list(scene.collection.children_recursive)


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


def texture_image(mat):
    """The texture image of a material built here, or None."""
    node = mat.node_tree.nodes.get(TEXTURE_NODE) if mat is not None and mat.node_tree is not None else None
    return getattr(node, "image", None)


def _take_texture_name(name: str, mat) -> None:
    image = texture_image(mat)
    if image is not None:
        _take_names(f"{name} Texture", (image,))


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


def _solid_view_hint() -> tuple[str, ...]:
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


def _saved_settings(scene) -> dict:
    """What building may change in the scene's settings (restored when it fails)."""
    render = scene.render
    return {"camera": scene.camera, "res": (render.resolution_x, render.resolution_y, render.resolution_percentage,
                                            render.pixel_aspect_x, render.pixel_aspect_y)}


def _roll_back(scene, saved: dict, created: list, images_before: set) -> None:
    """Remove every datablock created since ``images_before`` was taken and restore the scene settings."""
    new_images = [im for im in bpy.data.images if im not in images_before]
    leftovers = [b for b in reversed(created + new_images) if b is not None]
    bpy.data.batch_remove(leftovers)
    scene.camera = saved["camera"]
    render = scene.render
    (render.resolution_x, render.resolution_y, render.resolution_percentage,
     render.pixel_aspect_x, render.pixel_aspect_y) = saved["res"]


def _add_mesh_object(name: str, checked: CheckedResult, tag: str, coll, created: list, result_json: str | None):
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


def _add_camera(name: str, camera: CameraInfo, tag: str, coll, created: list, photo: str,
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


def _new_collection(scene, name: str, tag: str, created: list):
    """A collection ``name`` tagged ``tag`` under *Shape from Image* (created blocks go into ``created``)."""
    parent = _ensure_parent_collection(scene, created)
    coll = bpy.data.collections.new(name)
    created.append(coll)
    coll[TAG] = tag
    parent.children.link(coll)
    return coll


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

    created: list = []
    saved = _saved_settings(scene)
    images_before = set(bpy.data.images)
    try:
        coll = _new_collection(scene, name, image_path, created)
        obj, mesh, mat = _add_mesh_object(name, checked, image_path, coll, created, _result_json(result))
        at = cursor_location(scene) if options.at_cursor else np.zeros(3)
        obj.location = at.tolist()

        cam_obj = None
        if options.add_camera:
            cam_obj = _add_camera(f"{name} Camera", moved(checked.camera, at), image_path, coll, created, image_path,
                                  options.camera_background, options.background_image)
        if cam_obj is not None and options.set_scene_camera:
            scene.camera = cam_obj
        if options.set_render_resolution:
            set_render_resolution(scene, checked.camera.width, checked.camera.height)
        _select_only(scene, obj, view_layer)

        removed = 0
        if options.replace_previous:  # last: nothing after this can fail halfway
            removed = remove_previous(scene, image_path, keep=coll)
            _take_names(name, (coll, obj, mesh, mat))
            _take_texture_name(name, mat)
            if cam_obj is not None:
                _take_names(f"{name} Camera", (cam_obj, cam_obj.data))
    except Exception:
        _roll_back(scene, saved, created, images_before)
        raise
    hints = _solid_view_hint()
    return BuiltResult(collection=coll, mesh_object=obj, camera_object=cam_obj, removed=removed, hints=hints)


# --------------------------------------------------------------------------------------------
# Several photos of one object
# --------------------------------------------------------------------------------------------

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
        raise _error(getattr(result, "error", None) or "reconstruction failed", first)
    if len(paths) != len(views) or not views:
        raise _error(f"the result has {len(views)} views for {len(paths)} photos; run the reconstruction again",
                     first)
    names = list(view_names) if view_names is not None else [default_name(p) for p in paths]
    backgrounds = list(background_images) if background_images is not None else [None] * len(views)
    placed, skipped = [], []
    for view, path, view_name, image in zip(views, paths, names, backgrounds):
        if getattr(view, "ok", False):
            if getattr(view, "camera", None) is None:
                raise _error("the view has no camera; run the reconstruction again", path)
            placed.append((path, view_name, image, check_camera(view.camera, path)))
        else:
            skipped.append(getattr(view, "error", None) or f"{path}: could not be placed")
    if not placed:
        raise _error(f"none of the {len(views)} photos could be placed: {'; '.join(skipped)}", first)
    if getattr(result, "mesh", None) is None:
        raise _error("the result has no mesh; run the reconstruction again", first)
    checked = check_mesh(result.mesh, first)
    tag = object_tag(paths)
    name = options.name or object_name(paths)

    created: list = []
    saved = _saved_settings(scene)
    images_before = set(bpy.data.images)
    try:
        coll = _new_collection(scene, name, tag, created)
        obj, mesh, mat = _add_mesh_object(name, checked, tag, coll, created, _result_json(result))
        at = cursor_location(scene) if options.at_cursor else np.zeros(3)
        obj.location = at.tolist()
        cameras = []
        if options.add_camera:
            for path, view_name, image, camera in placed:
                cameras.append(_add_camera(f"{view_name} Camera", moved(camera, at), tag, coll, created, path,
                                           options.camera_background, image))
        if cameras and options.set_scene_camera:
            scene.camera = cameras[0]
        if options.set_render_resolution:
            set_render_resolution(scene, placed[0][3].width, placed[0][3].height)
        _select_only(scene, obj, view_layer)

        removed = 0
        if options.replace_previous:  # last: nothing after this can fail halfway
            removed = remove_previous(scene, tag, keep=coll)
            _take_names(name, (coll, obj, mesh, mat))
            _take_texture_name(name, mat)
            for cam_obj, (_, view_name, _, _) in zip(cameras, placed):
                _take_names(f"{view_name} Camera", (cam_obj, cam_obj.data))
    except Exception:
        _roll_back(scene, saved, created, images_before)
        raise
    return BuiltObject(collection=coll, mesh_object=obj, camera_objects=cameras, skipped=skipped, removed=removed,
                       hints=_solid_view_hint())


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


def _take_names(name: str, blocks) -> None:
    """Rename to ``name`` (the earlier result that held it is gone)."""
    for block in blocks:
        if block.name != name:
            block.name = name


def _select_only(scene, obj, view_layer=None) -> None:
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


# --------------------------------------------------------------------------------------------
# Recolorable parts: the palette mix in shader nodes (the formula of core.parts)
# --------------------------------------------------------------------------------------------

SWATCH_GROUP = "SFI Swatch to Part Value"
"""node group: swatch color (scene linear) -> pre-sigmoid part value (inverse widened sigmoid of sRGB)."""
SIGMOID_GROUP = "SFI Part Mix to Color"
"""node group: pre-sigmoid mix -> scene-linear color (widened sigmoid, clamp, sRGB decoding)."""


class _Math:
    """Builds chains of scalar Math nodes in a node tree: each call returns the new node's output."""

    def __init__(self, tree):
        self.tree = tree

    def op(self, operation: str, a, b=None, clamp: bool = False):
        node = self.tree.nodes.new("ShaderNodeMath")
        node.operation = operation
        node.use_clamp = clamp
        for socket, value in ((node.inputs[0], a), (node.inputs[1], b)):
            if value is None:
                continue
            if isinstance(value, (int, float)):
                socket.default_value = float(value)
            else:
                self.tree.links.new(value, socket)
        return node.outputs[0]

    def select(self, condition, if_true, if_false):
        """``if_false + condition * (if_true - if_false)`` for a 0/1 ``condition``."""
        return self.op("ADD", if_false, self.op("MULTIPLY", condition, self.op("SUBTRACT", if_true, if_false)))


def _per_channel_group(name: str, in_type: str, out_type: str, channel) -> object:
    """A node group that applies ``channel(m, socket) -> socket`` to each of x/y/z (r/g/b)."""
    group = bpy.data.node_groups.get(name)
    if group is not None and group.bl_idname == "ShaderNodeTree":
        return group
    group = bpy.data.node_groups.new(name, "ShaderNodeTree")
    group.interface.new_socket("In", in_out="INPUT", socket_type=in_type)
    group.interface.new_socket("Out", in_out="OUTPUT", socket_type=out_type)
    nodes, links = group.nodes, group.links
    inp, out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    split = nodes.new("ShaderNodeSeparateXYZ")
    join = nodes.new("ShaderNodeCombineXYZ")
    links.new(inp.outputs[0], split.inputs[0])
    m = _Math(group)
    for i in range(3):
        links.new(channel(m, split.outputs[i]), join.inputs[i])
    links.new(join.outputs[0], out.inputs[0])
    return group


def _swatch_channel(m: _Math, x):
    """linear -> sRGB -> pre-sigmoid value ``log(q) - log(1 - q)``, ``q = (s + eps) / (1 + 2 eps)``."""
    x = m.op("MAXIMUM", x, 0.0)
    low = m.op("MULTIPLY", x, 12.92)
    high = m.op("SUBTRACT", m.op("MULTIPLY", m.op("POWER", x, 1 / 2.4), 1.055), 0.055)
    s = m.op("MINIMUM", m.select(m.op("GREATER_THAN", x, 0.0031308), high, low), 1.0)
    q = m.op("DIVIDE", m.op("ADD", s, PART_EPS), 1 + 2 * PART_EPS)
    return m.op("SUBTRACT", m.op("LOGARITHM", q, math.e), m.op("LOGARITHM", m.op("SUBTRACT", 1.0, q), math.e))


def _sigmoid_channel(m: _Math, z):
    """pre-sigmoid -> sRGB ``clamp(sigmoid(z) (1 + 2 eps) - eps)`` -> scene linear."""
    e = m.op("EXPONENT", m.op("MULTIPLY", z, -1.0))
    s = m.op("SUBTRACT", m.op("DIVIDE", 1 + 2 * PART_EPS, m.op("ADD", e, 1.0)), PART_EPS, clamp=True)
    low = m.op("DIVIDE", s, 12.92)
    high = m.op("POWER", m.op("DIVIDE", m.op("ADD", s, 0.055), 1.055), 2.4)
    return m.select(m.op("GREATER_THAN", s, 0.04045), high, low)


PART_LABELS = {"seat": "Seat", "back": "Back", "arms": "Arms", "frame": "Legs/Frame"}
"""what a part group is called on its swatch (the model's slot groups: ``generator.slot_groups``)."""


def color_name(srgb) -> str:
    """A plain name of an sRGB color in [0, 1]: 'black', 'grey', 'white', 'brown', 'orange', 'blue', ..."""
    import colorsys

    hue, sat, val = colorsys.rgb_to_hsv(*(min(1.0, max(0.0, float(c))) for c in srgb[:3]))
    if val < 0.18:
        return "black"
    if sat < 0.2:
        return "white" if val > 0.85 else "light grey" if val > 0.6 else "grey" if val > 0.35 else "dark grey"
    hue *= 360.0
    if (hue < 50.0 or hue >= 345.0) and val < 0.6:  # dark reds and oranges: the browns of wood and leather
        return "brown" if val > 0.3 else "dark brown"
    for limit, name in ((15, "red"), (40, "orange"), (65, "yellow"), (165, "green"), (195, "cyan"), (255, "blue"),
                        (290, "purple"), (340, "pink"), (361, "red")):
        if hue < limit:
            return name
    return "red"


def swatch_labels(part_names, part_colors) -> list[str]:
    """The swatches' labels: the part's name ('Seat', 'Legs/Frame'); where several parts share a name,
    each says its color ('Legs/Frame (orange)', 'Legs/Frame (black)') instead of a number. Without
    names: 'Part 1', 'Part 2', ..."""
    colors = list(np.asarray(part_colors, dtype=np.float64))
    if len(part_names) != len(colors):
        return [f"Part {p + 1}" for p in range(len(colors))]
    bases = []
    for name in part_names:
        head, _, tail = name.rpartition(" ")
        base = head if head and tail.isdigit() else name  # 'frame 2' (core.parts) -> 'frame'
        bases.append(PART_LABELS.get(base.lower(), base.capitalize()))
    labels = [f"{b} ({color_name(c)})" if bases.count(b) > 1 else b for b, c in zip(bases, colors)]
    return [f"{label} {labels[:p].count(label) + 1}" if label in labels[:p] else label
            for p, label in enumerate(labels)]


def add_part_mix(tree, part_colors: np.ndarray, location=(0.0, 0.0), part_names: tuple[str, ...] = ()):
    """Nodes computing the parts' mix in ``tree``; returns the scene-linear color output socket. Each swatch
    is labelled by :func:`swatch_labels` ('Seat', 'Legs/Frame (orange)'; 'Part N' without names).

    ``color = srgb_decode(clamp(widened_sigmoid(sum_p part_p * value(swatch_p) + part_residual)))``
    (core.parts): with the swatches as built it reproduces the "Col" attribute (up to its 8 bits).
    """
    nodes, links = tree.nodes, tree.links
    swatch_group = _per_channel_group(SWATCH_GROUP, "NodeSocketColor", "NodeSocketVector", _swatch_channel)
    sigmoid_group = _per_channel_group(SIGMOID_GROUP, "NodeSocketVector", "NodeSocketColor", _sigmoid_channel)
    x0, y0 = location
    residual = nodes.new("ShaderNodeAttribute")
    residual.attribute_type = "GEOMETRY"
    residual.attribute_name = RESIDUAL_ATTRIBUTE
    residual.location = (x0 - 900.0, y0 + 200.0)
    total = residual.outputs["Vector"]
    labels = swatch_labels(part_names, part_colors)
    for p, srgb in enumerate(np.asarray(part_colors, dtype=np.float64)):
        y = y0 - 200.0 * p
        rgb = nodes.new("ShaderNodeRGB")
        rgb.name = SWATCH_NODE.format(p)
        rgb.label = labels[p]
        rgb.location = (x0 - 1200.0, y)
        lin = srgb_to_linear(srgb)
        rgb.outputs[0].default_value = (float(lin[0]), float(lin[1]), float(lin[2]), 1.0)
        value = nodes.new("ShaderNodeGroup")
        value.node_tree = swatch_group
        value.location = (x0 - 1000.0, y)
        links.new(rgb.outputs[0], value.inputs[0])
        weight = nodes.new("ShaderNodeAttribute")
        weight.attribute_type = "GEOMETRY"
        weight.attribute_name = PART_ATTRIBUTE.format(p)
        weight.location = (x0 - 1000.0, y - 100.0)
        scaled = nodes.new("ShaderNodeVectorMath")
        scaled.operation = "SCALE"
        scaled.location = (x0 - 800.0, y)
        links.new(value.outputs[0], scaled.inputs[0])
        links.new(weight.outputs["Fac"], scaled.inputs["Scale"])
        add = nodes.new("ShaderNodeVectorMath")
        add.operation = "ADD"
        add.location = (x0 - 600.0, y)
        links.new(total, add.inputs[0])
        links.new(scaled.outputs[0], add.inputs[1])
        total = add.outputs[0]
    color = nodes.new("ShaderNodeGroup")
    color.node_tree = sigmoid_group
    color.location = (x0 - 400.0, y0)
    links.new(total, color.inputs[0])
    return color.outputs[0]


def part_swatches(mat) -> list:
    """The swatch RGB nodes of a part material, part 0 first (empty for other materials)."""
    if mat is None or mat.node_tree is None:
        return []
    out = []
    while (node := mat.node_tree.nodes.get(SWATCH_NODE.format(len(out)))) is not None:
        out.append(node)
    return out


def part_mix_colors(mesh, mat) -> np.ndarray | None:
    """(V, 3) sRGB colors of the part material's current mix on ``mesh`` (what the shader computes), or
    None when the mesh or material has no parts."""
    swatches = part_swatches(mat)
    if not swatches or RESIDUAL_ATTRIBUTE not in mesh.attributes:
        return None
    n = len(mesh.vertices)
    residual = np.empty(3 * n, dtype=np.float32)
    mesh.attributes[RESIDUAL_ATTRIBUTE].data.foreach_get("vector", residual)
    z = residual.reshape(n, 3).astype(np.float64)
    weight = np.empty(n, dtype=np.float32)
    for p, node in enumerate(swatches):
        attr = mesh.attributes.get(PART_ATTRIBUTE.format(p))
        if attr is None:
            return None
        attr.data.foreach_get("value", weight)
        s = (linear_to_srgb(np.asarray(node.outputs[0].default_value[:3])) + PART_EPS) / (1 + 2 * PART_EPS)
        z += weight[:, None].astype(np.float64) * (np.log(s) - np.log1p(-s))
    return np.clip(1.0 / (1.0 + np.exp(-z)) * (1 + 2 * PART_EPS) - PART_EPS, 0.0, 1.0).astype(np.float32)


def bake_parts_to_col(obj) -> bool:
    """Write the current part mix of ``obj``'s material into its "Col" attribute (for export); False
    when the object has no parts."""
    mesh = obj.data
    mat = mesh.materials[0] if len(mesh.materials) else None
    colors = part_mix_colors(mesh, mat)
    if colors is None:
        return False
    attr = mesh.color_attributes.get(COLOR_ATTRIBUTE)
    if attr is None:
        attr = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
    rgba = np.ones((len(colors), 4), dtype=np.float32)
    rgba[:, :3] = colors
    attr.data.foreach_set("color_srgb", rgba.ravel())
    mesh.update()
    return True
