"""Where the inputs come from: image datablocks as files, model names, dependency-free lookups."""

from __future__ import annotations

import os

import bpy

from ..core.registry import DEFAULT_MODEL, WEIGHTS_DIR as SHIPPED_WEIGHTS  # noqa: F401  (re-exported)
from . import ADDON_ID, LazyModule

np = LazyModule("numpy")  # imported on first use (see LazyModule)
_color = LazyModule(__package__.rpartition(".")[0] + ".core.color")  # NumPy: imported on first use


def get_preferences(context=None):
    """The add-on preferences, or None when the add-on was registered without addon_utils."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return None if addon is None else addon.preferences


def image_datablock_photo(image):
    """The photo an image datablock holds, for the core, never through a temporary file: the image's own
    file when it is on disk and unmodified, else a ``core.io.memory.ImageArray`` named after the image:
    packed bytes as they are (the core decodes them as the file, EXIF included), generated or edited pixels
    as an array. The user's datablock is left untouched."""
    from ..core.io.memory import ImageArray

    if image.source == "FILE" and image.packed_file is None and not image.is_dirty:
        path = os.path.normpath(bpy.path.abspath(image.filepath, library=image.library))
        if os.path.isfile(path):
            return path
    stem = bpy.path.clean_name(os.path.splitext(image.name)[0]) or "image"
    if image.packed_file is not None and not image.is_dirty:
        ext = os.path.splitext(image.filepath)[1].lower() or ".png"
        return ImageArray(bytes(image.packed_file.data), stem + ext)
    width, height = image.size[:]
    if width == 0 or height == 0:
        raise ValueError(f"image '{image.name}' has no pixels: open or generate it first")
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    if image.is_float and image.colorspace_settings.name in ("Linear Rec.709", "Linear", "Non-Color",
                                                              "Linear CIE-XYZ E"):
        pixels = pixels.reshape(-1, 4)
        pixels[:, :3] = _color.linear_to_srgb(pixels[:, :3])
    return ImageArray(np.ascontiguousarray(pixels.reshape(height, width, 4)[::-1]), stem + ".png")


def upright_image(path: str):
    """The photo as the core sees it (EXIF orientation applied; Blender's loader ignores the tag) as a new
    image datablock made from the core's decoded pixels, packed into the .blend (no file is written)."""
    from ..core.io.images import load_image

    loaded = load_image(path)
    height, width = loaded.rgb.shape[:2]
    alpha = np.ones((height, width), np.float32) if loaded.alpha is None else loaded.alpha
    name = os.path.basename(path)
    image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=False)
    image.pixels.foreach_set(np.ascontiguousarray(np.dstack([loaded.rgb, alpha])[::-1], dtype=np.float32).ravel())
    image.pack()
    return image


def read_rgba(path: str) -> np.ndarray:
    """(H, W, 4) float32 pixels of an image file, top row first."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        width, height = image.size[:]
        channels = image.channels
        pixels = np.empty(width * height * channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    pixels = pixels.reshape(height, width, channels)[::-1]
    if channels == 4:
        return np.ascontiguousarray(pixels)
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :min(3, channels)] = pixels[..., :3]
    if channels < 3:
        rgba[..., 1] = rgba[..., 2] = rgba[..., 0]
    return rgba


def write_rgba(path: str, rgba: np.ndarray) -> str:
    """Save (H, W, 4) float pixels in [0, 1] (stored values) as an 8-bit PNG."""
    height, width = rgba.shape[:2]
    image = bpy.data.images.new("shape_from_image_out", width, height, alpha=True, float_buffer=False)
    try:
        image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], dtype=np.float32).ravel())
        image.filepath_raw = path
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)
    return path


def list_models(extra_dir: str = "") -> list[tuple[str, str, str]]:
    """(name, JSON path, category) of every installed model: the shipped ones and those in ``extra_dir``."""
    from ..core.registry import list_models as registry_models

    extra = [bpy.path.abspath(extra_dir)] if extra_dir else []
    return [(entry.name, str(entry.json_path), entry.category) for entry in registry_models(extra)]


def resolve_model(model: str, extra_dir: str = "") -> str:
    """What to pass to the core: a model's name when it is shipped, else the path of its file in
    ``extra_dir`` or the (absolute) path given; unknown names pass through so that the core reports them."""
    model = (model or "").strip() or DEFAULT_MODEL
    if model.endswith((".safetensors", ".json")) or os.sep in model or "/" in model:
        return os.path.abspath(bpy.path.abspath(model))
    for name, path, _ in list_models(extra_dir):
        if name == model:
            return name if os.path.dirname(path) == str(SHIPPED_WEIGHTS) else path
    return model
