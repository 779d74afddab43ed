"""What the scene builders share: the names they give Blender data (custom properties, attributes, nodes)
and the reconstruction result checked before anything is created (:func:`check_result`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

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


def build_error(message: str, path: str | None):
    """The project's exception type, imported lazily (``core`` is never imported at add-on load)."""
    from ..core.errors import ReconstructionError

    return ReconstructionError(message, path)


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


def check_result(result, image_path: str) -> CheckedResult:
    """Validate a ReconstructionResult (duck-typed) before anything is created in Blender.

    Raises ReconstructionError naming the image when the data cannot make a valid mesh/camera.
    """
    if not getattr(result, "ok", False):
        raise build_error(getattr(result, "error", None) or "reconstruction failed", image_path)
    mesh, cam = getattr(result, "mesh", None), getattr(result, "camera", None)
    if mesh is None or cam is None:
        raise build_error("the result has no mesh or no camera; run the reconstruction again", image_path)
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
        raise build_error(f"the mesh has invalid vertices {vertices.shape}; try a higher mesh resolution "
                          "or another photo", image_path)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise build_error(f"the mesh has no faces {faces.shape}: nothing was reconstructed; check that the "
                          "object is visible and try another photo or a mask", image_path)
    if not np.issubdtype(faces.dtype, np.integer):
        raise build_error(f"mesh faces must be integers, got {faces.dtype}", image_path)
    if not np.isfinite(vertices).all():
        raise build_error("the mesh has non-finite vertices; run the reconstruction again", image_path)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise build_error("the mesh faces index missing vertices; run the reconstruction again", image_path)
    faces = faces.astype(np.int32)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    dropped = int((~keep).sum())
    faces = np.ascontiguousarray(faces[keep])
    if len(faces) == 0:
        raise build_error("every mesh face is degenerate; try a higher mesh resolution", image_path)
    if colors is not None:
        colors = np.asarray(colors, dtype=np.float32)
        if colors.shape != vertices.shape or not np.isfinite(colors).all():
            raise build_error(f"mesh colors {colors.shape} do not match the vertices {vertices.shape}",
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
        raise build_error("the recovered camera pose is invalid; run the reconstruction again", image_path)
    rot = cam2world[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
        raise build_error("the recovered camera pose is not a rotation; run the reconstruction again", image_path)
    width, height = int(cam.width), int(cam.height)
    focal, cx, cy = float(cam.focal_px), float(cam.cx), float(cam.cy)
    if width <= 0 or height <= 0 or not (math.isfinite(focal) and focal > 0):
        raise build_error(f"invalid camera intrinsics (focal {focal} px, {width}x{height})", image_path)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise build_error("invalid principal point", image_path)
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
