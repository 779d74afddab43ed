"""Image input: load a photo, find the object, cut a square crop around it.

The pipeline is ``load_image`` -> foreground mask (alpha channel, a mask file, or automatic
GrabCut segmentation) -> ``mask_bbox`` -> ``square_crop`` -> ``crop_and_resize``; ``prepare_image``
runs all of it. ``square_crop`` and ``crop_and_resize`` are pure, fast functions of
``(rgb, alpha)`` so that training can apply exactly the same crop to rendered RGBA images.

Coordinates: pixel ``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)`` from the top-left corner
(as in ``camera.py``). The loaded image may be downscaled: a point at ``x`` original pixels lies at
``x * scale`` loaded pixels, exactly (no rounding of the scale per axis). A :class:`~.camera.Crop`
is always expressed in ORIGINAL-image pixels, so the final camera refers to the user's file.

Large images. Nothing is decoded before the size is known (``Image.open`` is lazy). Images above
``MAX_PIXELS`` (179 megapixels, twice Pillow's default decompression-bomb warning level; Pillow
itself refuses larger ones at open) are refused with a clear message. Smaller images that exceed
``max_side`` are reduced while decoding where the format allows it (JPEG DCT scaling through
``Image.draft``), then by an integer box filter (``Image.reduce``, premultiplied for alpha), and
finally resampled with area averaging to the exact scale ``max_side / longest side``. Peak memory
is about two decoded 8-bit copies of the file for formats without reduced decoding (~1.4 GB for a
179 MP RGBA PNG), far less for JPEG.

Foreground, in ``prepare_image``: an explicit mask file wins, then a real alpha channel (one that is
not fully opaque), then automatic segmentation (:func:`segment_foreground`, GrabCut seeded from
the image border, no downloaded weights).

Colour: values are the file's display values (sRGB assumed, embedded ICC profiles are ignored),
scaled by the bit depth: 8-bit / 255, 16-bit / 65535 (16-bit RGB(A) PNG and TIFF are read at full
precision through OpenCV when no integer pre-reduction is needed, Pillow only keeps 8 bits of
them), 32-bit float images are clipped to [0, 1].
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin

from ..errors import ReconstructionError
from ..geometry.camera import Crop
from ..validate import IMAGE_FORMATS, check_input_file
from .memory import ImageArray

MIN_SIDE = 16
"""Images with a side shorter than this (after EXIF orientation) are refused as too small."""
MIN_OBJECT_SIDE = 16
"""An object (the foreground's bounding box) must span at least this many loaded pixels on its longer side."""
MAX_PIXELS = 178_956_970
"""Largest accepted image in pixels (Pillow's default decompression-bomb error level)."""
MAX_SIDE_LIMIT = 16384
"""Largest accepted ``max_side`` (OpenCV's remap works on images below 32767 pixels a side)."""
SEGMENT_SIDE = 256
"""Automatic segmentation runs on a copy whose longest side is at most this."""

_FORMATS = IMAGE_FORMATS
PILLOW_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
"""the only Pillow readers ever tried: the file's content decides, not its name, so no other reader (EPS,
which runs Ghostscript; GIF, ICO ...) sees a file. Pillow's JPEG reader also opens MPO files (a JPEG
with extra pictures, as many cameras write); their format is "MPO"."""
_MAGIC = ((b"GIF8", "GIF"), (b"%!PS", "PostScript (EPS)"), (b"\xc5\xd0\xd3\xc6", "PostScript (EPS)"),
          (b"%PDF", "PDF"), (b"8BPS", "Photoshop (PSD)"), (b"qoif", "QOI"), (b"DDS ", "DDS"),
          (b"\0\0\1\0", "icon (ICO)"), (b"icns", "icon (ICNS)"),
          (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"\x76\x2f\x31\x01", "OpenEXR"),
          (b"#?RADIANCE", "Radiance HDR"), (b"#?RGBE", "Radiance HDR"), (b"SIMPLE  =", "FITS"),
          (b"\x0a\x05\x01", "PCX"), (b"\x01\xda", "SGI"), (b"\x59\xa6\x6a\x95", "Sun raster"),
          (b"<svg", "SVG"), (b"<?xml", "XML (SVG?)"), (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip archive"))
_ORIENTATION_TAG = 0x0112
_EXIF_IFD, _FOCAL_35MM_TAG = 0x8769, 0xA405  # Exif sub-IFD, FocalLengthIn35mmFilm
_BAND_BYTES = 32 << 20  # intermediate buffer budget of the resampler


# --------------------------------------------------------------------------------------------
# data


@dataclass
class LoadedImage:
    """A decoded image, possibly downscaled on load."""

    path: str
    """the file it was read from."""
    rgb: np.ndarray
    """(H, W, 3) float32 in [0, 1], sRGB display values (not premultiplied; where alpha is 0 it
    may be 0 instead of the stored colour after downscaling)."""
    alpha: np.ndarray | None
    """(H, W) float32 in [0, 1] if the file carries a real alpha channel, else None."""
    orig_width: int
    """width of the file as stored, after EXIF orientation."""
    orig_height: int
    """height of the file as stored, after EXIF orientation."""
    scale: float
    """loaded pixels per original pixel (1.0 unless downscaled on load)."""
    orientation: int = 1
    """the EXIF orientation (1-8) that was applied."""
    focal_35mm: float | None = None
    """the EXIF 35 mm-equivalent focal length in mm (FocalLengthIn35mmFilm), if the file states one."""


@dataclass
class PreparedImage:
    """The model's view of one photo: a square crop around the object on a plain background."""

    path: str
    """the image file."""
    image: np.ndarray
    """(S, S, 3) float32 in [0, 1], composited on the background colour."""
    mask: np.ndarray
    """(S, S) float32 in [0, 1] foreground mask of the crop."""
    crop: Crop
    """where the crop lies in the original image."""
    mask_source: str
    """'alpha' (the file's alpha channel), 'mask' (a mask file), 'auto' (colour segmentation),
    'segmenter' (refined by the model's segmenter) or 'encoder' (refined by the encoder's mask head)."""
    full_mask: np.ndarray
    """(H, W) float32 foreground mask at the loaded resolution."""
    loaded: LoadedImage
    """the decoded image."""


# --------------------------------------------------------------------------------------------
# opening and decoding


def _fail(path, message: str):
    raise ReconstructionError(message, path)


def _open(path: str, what: str, data: bytes | None = None) -> Image.Image:
    """Open lazily (header only) and check the size; every failure is a ReconstructionError.

    Only a regular file is opened (:func:`core.validate.check_input_file`): a folder, a named pipe or a
    device is refused from its ``stat``, so nothing here can block. ``data``: the file's bytes in memory
    (``path`` only names it).
    """
    noun = "an image" if what == "image" else "a mask"
    if data is None:
        check_input_file(path, what)
    elif not data:
        _fail(path, f"the {what} holds no data (0 bytes); open it again or choose another {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd metadata; the pixels decide
            im = Image.open(path if data is None else io.BytesIO(data), formats=PILLOW_FORMATS)
    except Image.DecompressionBombError as err:
        numbers = [int(n) for n in re.findall(r"(\d+) pixels", str(err))]  # size, then Pillow's limit
        size = f"{_megapixels(numbers[0])} megapixels" if numbers else "too many pixels"
        limit = numbers[1] if len(numbers) > 1 else MAX_PIXELS
        _fail(path, f"{what} is too large ({size}; at most {_megapixels(limit)} megapixels are accepted); "
                    "downscale it and try again")
    except Image.UnidentifiedImageError:
        float_tiff = _float_tiff(path) if data is None else None
        if float_tiff:
            _fail(path, f"{float_tiff} colour TIFF files cannot be read; save the {what} as an 8- or 16-bit TIFF "
                        "or PNG")
        kind = _sniff(path, None if data is None else data[:32])
        if kind == "text":
            _fail(path, f"not {noun} file: it holds text data (the content decides, not the file name); convert "
                        f"the {what} to PNG or JPEG")
        if kind:
            _fail(path, f"the file holds {kind} data, not a {_FORMATS} image (the content decides, not the file "
                        f"name); convert the {what} to PNG or JPEG")
        _fail(path, f"not {noun} file that can be read (not {_FORMATS} data); convert the {what} to PNG or JPEG")
    except ValueError as err:
        if _BOMB in str(err):
            _fail(path, _BOMB_MESSAGE)
        _fail(path, f"cannot open the {what} file ({err}); check that it is a {_FORMATS} file")
    except PermissionError:
        _fail(path, f"cannot read the {what} file (permission denied); check its permissions")
    except OSError as err:  # a header Pillow recognizes, but broken or cut short
        _fail(path, f"cannot open the {what} file, it is truncated or corrupt ({err}); re-export it as a "
                    f"{_FORMATS} file")
    except Exception as err:  # noqa: BLE001 - Pillow's format plugins raise many types for broken headers
        _fail(path, f"cannot open the {what} file ({type(err).__name__}: {err}); check that it is a {_FORMATS} file")
    if im.format not in (*PILLOW_FORMATS, "MPO"):  # defensive: Image.open tried no other reader
        im.close()
        _fail(path, f"the file holds {im.format} data, not a {_FORMATS} image; convert the {what} to PNG or JPEG")
    width, height = im.size
    if width * height > MAX_PIXELS:
        im.close()
        _fail(path, f"{what} is too large ({width}x{height} = {_megapixels(width * height)} megapixels; at "
                    f"most {_megapixels(MAX_PIXELS)} megapixels are accepted); downscale it and try again")
    if min(width, height) < MIN_SIDE:
        im.close()
        _fail(path, f"{what} is too small ({width}x{height} pixels; at least {MIN_SIDE} pixels a side "
                    "are needed); use a larger photo")
    im.in_memory = data
    return im


def _megapixels(pixels: int) -> str:
    """Pixels as megapixels, with two decimals unless they are zeros (400; 179.02, not 179: a size just above
    the limit reads as above it)."""
    text = f"{pixels / 1e6:.2f}"
    return text[:-3] if text.endswith(".00") else text


_BOMB = "Decompressed data too large"
_BOMB_MESSAGE = ("a metadata chunk of the file decompresses to far more data than an image holds (a decompression "
                 "bomb); re-export the image without its text metadata")


def _sniff(path: str, head: bytes | None = None) -> str | None:
    """The kind of a file that is not an accepted image, from its first bytes ('GIF', 'PostScript (EPS)',
    'AVIF' ...; ``head``: those bytes when the file is in memory), for the message; None when unknown.
    Nothing but these bytes is read."""
    try:
        if head is None:
            with open(path, "rb") as f:
                head = f.read(32)
    except OSError:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp":  # ISO media: AVIF, HEIC, MP4 ...
        brand = head[8:12].decode("ascii", "replace").strip()
        return {"avif": "AVIF", "avis": "AVIF", "heic": "HEIC", "heix": "HEIC", "mif1": "HEIF"}.get(brand,
                                                                                                    f"ISO media ({brand})")
    if re.match(rb"P[1-7]\s", head):
        return "Netpbm (PBM/PGM/PPM)"
    if len(head) >= 18 and head[1] in (0, 1) and head[2] in (1, 2, 3, 9, 10, 11) and head[16] in (8, 15, 16, 24, 32):
        return "TGA"
    plain = head.replace(b"\t", b" ").replace(b"\r", b" ").replace(b"\n", b" ")
    if plain.isascii() and plain.decode("ascii").isprintable():
        return "text"
    return None


def _float_tiff(path: str) -> str | None:
    """'32-bit floating-point' (16-, 64-bit) when ``path`` is a TIFF whose first image stores floating-point
    samples (Pillow reads only one-channel ones), 'high-dynamic-range (LogLuv)' for SGI LogLuv encoded
    ones, else None. Reads the first directory of the file's header."""
    tags = {}
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            order = {b"II*\0": "<", b"MM\0*": ">"}.get(head[:4])
            if order is None:
                return None
            f.seek(struct.unpack(order + "I", head[4:8])[0])
            count = min(struct.unpack(order + "H", f.read(2))[0], 1024)
            entries = f.read(12 * count)
            for k in range(len(entries) // 12):
                tag, kind, count, value = struct.unpack(order + "HHI4s", entries[12 * k:12 * k + 12])
                if kind != 3 or tag not in (258, 259, 339):  # SHORT BitsPerSample, Compression, SampleFormat
                    continue
                if count > 2:  # the values do not fit the entry: it holds their offset
                    f.seek(struct.unpack(order + "I", value)[0])
                    value = f.read(2)
                tags[tag] = struct.unpack(order + "H", value[:2])[0]
    except (OSError, ValueError, struct.error):
        return None
    if tags.get(259) in (34676, 34677):  # SGILog, SGILog24
        return "high-dynamic-range (LogLuv)"
    if tags.get(339) != 3:  # SampleFormat 3: IEEE floating point
        return None
    return f"{tags.get(258, 32)}-bit floating-point"


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent or unreadable), as PIL.ImageOps.exif_transpose reads it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - broken EXIF raises many types; the orientation is then unknown
        return 1
    return value if 1 <= value <= 8 else 1


def exif_orientation(path) -> int:
    """The EXIF orientation (1-8; 1 when absent) stated in the header of the image file ``path``, read without
    decoding its pixels (a PNG that keeps its EXIF after the pixels reads as 1)."""
    with _open(str(path), "image") as im:
        return _orientation(im)


def _focal_35mm(im: Image.Image) -> float | None:
    """The EXIF FocalLengthIn35mmFilm in mm; None when absent, unreadable or implausible."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(im.getexif().get_ifd(_EXIF_IFD).get(_FOCAL_35MM_TAG, 0))
    except Exception:  # noqa: BLE001 - broken EXIF raises many types; the focal length is then unknown
        return None
    return value if 8.0 <= value <= 1200.0 else None


def _orient_array(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, ...) array (the transposes of PIL.ImageOps.exif_transpose)."""
    if orientation >= 5:
        a = a.swapaxes(0, 1)
    if orientation in (2, 3, 6, 7):
        a = a[:, ::-1]
    if orientation in (3, 4, 7, 8):
        a = a[::-1]
    return a


def _orient_point(x: float, y: float, width: int, height: int, orientation: int) -> tuple[float, float]:
    """A point of the stored image (width x height) in the oriented image, continuous coordinates."""
    if orientation >= 5:
        x, y, width, height = y, x, height, width
    if orientation in (2, 3, 6, 7):
        x = width - x
    if orientation in (3, 4, 7, 8):
        y = height - y
    return x, y


def _normalize_mode(im: Image.Image, path: str, what: str) -> Image.Image:
    """Convert to one of L, LA, RGB, RGBA, I, F; drop an alpha channel that is fully opaque."""
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA" if mode == "RGB" else "LA")
    elif mode.startswith("I;16") or mode == "I":
        im = im.convert("I") if mode != "I" else im
    elif mode in ("RGBa", "La"):
        im = im.convert(mode.upper())
    elif mode not in ("L", "LA", "RGB", "RGBA", "F"):
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, RGBX, LAB, HSV, ...
        except ValueError:
            _fail(path, f"unsupported colour mode {mode} in the {what} file; save it as 8-bit RGB")
    if im.mode in ("LA", "RGBA") and im.getchannel("A").getextrema()[0] == 255:
        im = im.convert("L" if im.mode == "LA" else "RGB")
    return im


def _to_float(a: np.ndarray) -> np.ndarray:
    """Pixel values of any decoded dtype -> float32 in [0, 1]."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    if a.dtype.kind in "ui":  # 16-bit files (Pillow "I" after "I;16", or OpenCV uint16)
        return np.clip(a.astype(np.float32) * np.float32(1 / 65535), 0.0, 1.0)
    return np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)


def _premultiplied(a: np.ndarray, has_alpha: bool) -> np.ndarray:
    """(h, w[, C]) decoded pixels -> (h, w, C) float32 with the colour multiplied by alpha."""
    f = _to_float(a)
    if f.ndim == 2:
        f = f[:, :, None]
    if has_alpha:
        f[..., :-1] *= f[..., -1:]
    return f


def _unpremultiply(f: np.ndarray) -> np.ndarray:
    alpha = f[..., -1:]
    color = np.divide(f[..., :-1], alpha, out=np.zeros_like(f[..., :-1]), where=alpha > 1e-6)
    return np.concatenate([np.clip(color, 0.0, 1.0), np.clip(alpha, 0.0, 1.0)], axis=-1)


def _sixteen_bit_rgb(path: str, im: Image.Image) -> np.ndarray | None:
    """Full-precision (H, W, 3|4) uint16 RGB(A) of a 16-bit RGB(A) file through OpenCV, else None."""
    try:
        data = getattr(im, "in_memory", None)  # the bytes of a file in memory (_open)
        raw = np.fromfile(path, np.uint8) if data is None else np.frombuffer(data, np.uint8)
        a = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)  # ignores EXIF orientation
    except (cv2.error, OSError, ValueError):
        return None
    width, height = im.size
    if a is None or a.dtype != np.uint16 or a.ndim != 3 or a.shape[:2] != (height, width):
        return None
    if a.shape[2] == 4:
        a = a[..., [2, 1, 0, 3]]
        if a[..., 3].min() == 65535:
            a = a[..., :3]
    elif a.shape[2] == 3:
        a = a[..., ::-1]
    else:
        return None
    return np.ascontiguousarray(a)


def _decode(path: str, im: Image.Image, what: str, max_side: int | None = None, scale: float | None = None,
            mask: bool = False, expect: tuple[int, int, str] | None = None
            ) -> tuple[np.ndarray, float, int, int, int]:
    """Decode an opened image to float32 at ``scale`` (or the scale that fits ``max_side``).

    Returns ``pixels (h, w, C)`` straight (not premultiplied) float32, C = 1 (gray), 2 (gray,
    alpha), 3 (RGB) or 4 (RGBA), or C = 1 when ``mask`` (alpha if any, else luminance), and the
    scale, oriented width and height, and orientation. ``expect`` = (width, height, name of the
    image) refuses a mask of another size.
    """
    stored_w, stored_h = im.size
    if scale is None:
        scale = min(1.0, max_side / max(stored_w, stored_h))
    if min(round(stored_w * scale), round(stored_h * scale)) < MIN_SIDE:
        _fail(path, f"{what} is {stored_w}x{stored_h} pixels, too narrow to be downscaled by {scale:.3g}; "
                    "crop it to a less extreme aspect ratio")
    factor = max(1, math.floor(1.0 / scale + 1e-9))  # integer pre-reduction
    draft = 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, odd metadata: the pixels decide
            if factor >= 2 and isinstance(im, JpegImagePlugin.JpegImageFile):
                result = im.draft(im.mode, (max(1, stored_w // factor), max(1, stored_h // factor)))
                if result is not None:
                    draft = max(1, round(stored_w / result[1][2]))
            wide = im.mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in im.tile)
            im.load()  # raises on truncated files (LOAD_TRUNCATED_IMAGES stays off)
            orientation = _orientation(im)  # after load(): PNG may keep EXIF after the pixels
            width, height = (stored_h, stored_w) if orientation >= 5 else (stored_w, stored_h)
            if expect is not None and (width, height) != expect[:2]:
                _fail(path, f"the mask is {width}x{height} pixels but the image {expect[2]} is "
                            f"{expect[0]}x{expect[1]}; give a mask of the same size as the image")
            sixteen = _sixteen_bit_rgb(path, im) if wide and factor == 1 and not mask else None
            im = _normalize_mode(im, path, what)
            if mask:
                im = _mask_channel(im)
            full_w, full_h = stored_w // draft, stored_h // draft  # drop partial DCT blocks
            rest = max(1, factor // draft)
            box = (0, 0, full_w // rest * rest, full_h // rest * rest)
            if rest >= 2:
                im = im.reduce(rest, box)
            elif box[2:] != im.size:
                im = im.crop(box)
            pixels = sixteen if sixteen is not None else np.asarray(im)
    except ReconstructionError:
        raise
    except MemoryError:
        _fail(path, f"not enough memory to decode the {what}; downscale it and try again")
    except ValueError as err:
        if _BOMB in str(err):
            _fail(path, _BOMB_MESSAGE)
        _fail(path, f"cannot decode the {what} file, it is truncated or corrupt (ValueError: {err}); re-export it")
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise many types for broken files
        _fail(path, f"cannot decode the {what} file, it is truncated or corrupt ({type(err).__name__}: "
                    f"{err}); re-export it")
    has_alpha = pixels.ndim == 3 and pixels.shape[2] in (2, 4)
    pixels = _orient_array(pixels, orientation)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    reduced = draft * rest
    if scale == 1.0 and reduced == 1:
        out = _to_float(pixels)
        return (out if out.ndim == 3 else out[:, :, None]), 1.0, width, height, orientation
    # the decoded pixels cover [0, reduced * box) of the stored image; find that box after orientation
    corners = [_orient_point(x, y, stored_w, stored_h, orientation)
               for x, y in ((0, 0), (box[2] * draft, box[3] * draft))]
    off_x, off_y = min(c[0] for c in corners), min(c[1] for c in corners)
    ratio = scale * reduced  # output pixels per decoded pixel
    src_h, src_w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]

    def fetch(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if pixels.dtype == np.uint8 and not has_alpha:
            return pixels[y0:y1, x0:x1]  # resampled as 8-bit: 5x faster, error <= 1/255
        return _premultiplied(pixels[y0:y1, x0:x1], has_alpha)

    out = _resample(fetch, src_w, src_h, channels, _Grid(-off_x / reduced, -off_y / reduced, 1.0 / ratio, out_w, out_h),
                    replicate=True)
    out = _to_float(out) if out.dtype == np.uint8 else out
    if has_alpha:
        out = _unpremultiply(out)
    return out, scale, width, height, orientation


def _mask_channel(im: Image.Image) -> Image.Image:
    """A normalized-mode image -> one channel: its alpha if it has one, else its luminance.

    Integer masks whose values are only 0 and 1 are stretched to full range.
    """
    if im.mode in ("LA", "RGBA"):
        im = im.getchannel("A")
    elif im.mode == "RGB":
        im = im.convert("L")
    if im.mode in ("L", "I") and im.getextrema()[1] == 1:
        full = 255 if im.mode == "L" else 65535
        im = im.point(lambda v: v * full)
    return im


# --------------------------------------------------------------------------------------------
# resampling


@dataclass
class _Grid:
    """An output pixel grid laid over a source image: pixel (u, v) covers the source square from
    ``(x0 + u * step, y0 + v * step)`` to one ``step`` further along each axis."""

    x0: float
    y0: float
    step: float
    width: int
    height: int


def _resample(fetch: Callable[[int, int, int, int], np.ndarray], src_w: int, src_h: int, channels: int,
              grid: _Grid, replicate: bool) -> np.ndarray:
    """Area-averaging resampler with an exact affine mapping.

    Output pixel ``(u, v)`` covers the source square ``[x0 + u*step, x0 + (u+1)*step) x [y0 + v*step,
    ...)`` (source pixel ``i`` spans ``[i, i+1)``); so its centre maps exactly to ``x0 + (u+0.5)*step``.
    It is computed as ``k x k`` bilinear samples (``k = ceil(step)``, sample spacing <= 1 source
    pixel) averaged by a box filter. ``fetch(y0, y1, x0, x1)`` returns source rows/columns as
    (h, w, channels) float32 (or uint8, then the result is uint8). Outside the source: zeros
    (``replicate=False``) or the edge pixels. Returns ``(out_h, out_w, channels)``; processes
    horizontal bands to bound memory.
    """
    x0, y0, step, out_w, out_h = grid.x0, grid.y0, grid.step, grid.width, grid.height
    k = max(1, math.ceil(step - 1e-9))
    t = step / k
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    out = None

    def window(first: float, last: float, size: int) -> tuple[int, int]:
        return min(max(0, math.floor(first) - 1), size), min(max(0, math.floor(last) + 3), size)

    # source index coordinate (OpenCV: pixel centres at integers) of intermediate sample i
    xa, xb = window(x0 + 0.5 * t - 0.5, x0 + (out_w * k - 0.5) * t - 0.5, src_w)
    if xb <= xa and not replicate:
        return np.zeros((out_h, out_w, channels), np.float32)
    rows = max(1, _BAND_BYTES // max(1, out_w * k * k * channels * 4))
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        ya, yb = window(y0 + (r0 * k + 0.5) * t - 0.5, y0 + (r1 * k - 0.5) * t - 0.5, src_h)
        if replicate:  # the source may lie entirely off to one side of a band: keep one edge pixel
            xa, xb = min(xa, src_w - 1), max(xb, xa + 1)
            ya, yb = min(ya, src_h - 1), max(yb, ya + 1)
        elif yb <= ya:
            continue
        src = fetch(ya, yb, xa, xb)
        matrix = np.array([[t, 0.0, x0 + 0.5 * t - 0.5 - xa],
                           [0.0, t, y0 + (r0 * k + 0.5) * t - 0.5 - ya]])
        fine = cv2.warpAffine(src, matrix, (out_w * k, (r1 - r0) * k),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border,
                              borderValue=0)
        if k > 1:
            fine = cv2.resize(fine, (out_w, r1 - r0), interpolation=cv2.INTER_AREA)  # exact k x k box
        if out is None:
            out = np.zeros((out_h, out_w, channels), fine.dtype)
        out[r0:r1] = fine.reshape(r1 - r0, out_w, channels)
    return np.zeros((out_h, out_w, channels), np.float32) if out is None else out


# --------------------------------------------------------------------------------------------
# public API


def load_image(path, max_side: int = 4096) -> LoadedImage:
    """Decode an image file (EXIF orientation applied), downscaled so its longest side <= ``max_side``.
    ``path`` may also be a photo in memory (:class:`core.io.memory.ImageArray`): pixels or a file's bytes."""
    if not 16 <= max_side <= MAX_SIDE_LIMIT:
        raise ValueError(f"max_side must be in [16, {MAX_SIDE_LIMIT}], got {max_side}")
    data = None
    if isinstance(path, ImageArray):
        if not isinstance(path.pixels, (bytes, bytearray, memoryview)):
            return _array_image(path, max_side)
        path, data = path.name, bytes(path.pixels)
    path = str(path)
    im = _open(path, "image", data)
    with im:
        pixels, scale, width, height, orientation = _decode(path, im, "image", max_side=max_side)
        focal_35mm = _focal_35mm(im)
    channels = pixels.shape[2]
    color = pixels[..., :3] if channels >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    alpha = pixels[..., -1] if channels in (2, 4) else None
    return LoadedImage(path, np.ascontiguousarray(color), None if alpha is None else np.ascontiguousarray(alpha),
                       width, height, scale, orientation, focal_35mm)


def _array_image(photo: ImageArray, max_side: int) -> LoadedImage:
    """A photo's pixels in memory -> LoadedImage, with a file's checks (size, at most ``max_side`` a side)."""
    name, a = str(photo.name), photo.pixels
    if not isinstance(a, np.ndarray) or a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype.kind not in "uif":
        shape = getattr(a, "shape", None)
        _fail(name, f"image pixels must be an (H, W, 3) or (H, W, 4) array of uint8, uint16 or float values, got "
                    f"{type(a).__name__}{'' if shape is None else f' of shape {tuple(shape)}, {a.dtype}'}; pass "
                    "the image's RGB or RGBA pixels")
    height, width = a.shape[:2]
    if width * height > MAX_PIXELS:
        _fail(name, f"image is too large ({width}x{height} = {_megapixels(width * height)} megapixels; at "
                    f"most {_megapixels(MAX_PIXELS)} megapixels are accepted); downscale it and try again")
    if min(width, height) < MIN_SIDE:
        _fail(name, f"image is too small ({width}x{height} pixels; at least {MIN_SIDE} pixels a side are "
                    "needed); use a larger photo")
    pixels = _to_float(a)
    has_alpha = a.shape[2] == 4 and float(pixels[..., 3].min()) < 1.0  # a fully opaque alpha is no alpha
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(_premultiplied(pixels if has_alpha else pixels[..., :3], has_alpha), size,
                           interpolation=cv2.INTER_AREA)
        pixels = _unpremultiply(small) if has_alpha else small
    alpha = np.ascontiguousarray(pixels[..., 3]) if has_alpha else None
    focal = photo.focal_35mm if photo.focal_35mm is None or photo.focal_35mm > 0 else None
    return LoadedImage(name, np.ascontiguousarray(pixels[..., :3]), alpha, width, height, scale, 1, focal)


def load_mask(path, image: LoadedImage) -> np.ndarray:
    """A foreground mask file for ``image`` -> (H, W) float32 in [0, 1] at the loaded size.

    Any mode: grayscale (white = object), binary (0/1 or 0/255), RGB (luminance), or an image whose
    alpha channel is the mask. It must have the image's size (after EXIF orientation of both).
    """
    path = str(path)
    im = _open(path, "mask")
    with im:
        expect = (image.orig_width, image.orig_height, os.path.basename(image.path))
        pixels, *_ = _decode(path, im, "mask", scale=image.scale, mask=True, expect=expect)
    mask = np.ascontiguousarray(pixels[..., 0])
    if mask.shape != image.rgb.shape[:2]:  # cannot happen: same size, same scale
        raise AssertionError(f"mask decoded to {mask.shape}, image to {image.rgb.shape[:2]}")
    return mask


@dataclass
class ForegroundNet:
    """A learned foreground estimate for :func:`segment`: ``predict`` maps a square crop (S, S, 3)
    float32 in [0, 1] with ``S = size`` to the object's probability (S, S): the model's segmenter
    (``source`` 'segmenter') or the encoder's mask head ('encoder'; core.api.Pipeline.foreground_net)."""

    size: int
    predict: Callable[[np.ndarray], np.ndarray]
    source: str = "encoder"


FOREGROUND_MARGIN = 1.5
"""the crop the foreground net sees: this many times the first segmentation's box, so that an object
the colour segmentation cut short still lies inside it."""


def segment_foreground(rgb: np.ndarray, path: str = "") -> np.ndarray:
    """Automatic foreground mask without learned weights (:func:`segment` without a net)."""
    return segment(rgb, path)[0]


def segment(rgb: np.ndarray, path: str = "", net: ForegroundNet | None = None) -> tuple[np.ndarray, str]:
    """Automatic foreground mask: GrabCut seeded from the image border, refined by ``net`` when given.

    ``rgb`` (H, W, 3) float32 in [0, 1] -> ((H, W) float32 mask in [0, 1], source). Runs at most at
    ``SEGMENT_SIDE`` pixels. The colours of a border strip (3% of the side) are modelled twice: as
    k-means clusters (a minority of distinct colours on the border is taken for an object touching
    the frame, not background) and as a robustly fitted quadratic colour ramp (gradients,
    vignetting). Pixels far from both models (Otsu threshold, at least 5 Lab units and 2.5x the
    border's own spread) seed GrabCut as probable foreground, the rest as probable background, the
    background-coloured border as certain background. Then the largest connected component(s) are
    kept and small holes filled: source ``'auto'``.

    With ``net``, the square around that first mask (FOREGROUND_MARGIN) goes through the net (the
    model's segmenter, or the encoder's coarser mask head; a segmenter's square grows while it sees
    the object reach past the box, :func:`_net_probability`), and a second GrabCut is seeded from both
    (:func:`_net_seeds`): the first mask, except where the net is sure it is wrong (a contact shadow or
    a patch of floor taken for object, white legs on a light floor taken for floor). Source: the
    net's (``'segmenter'`` or ``'encoder'``). The first mask is kept when the net calls the edge of
    its crop object (NET_EDGE_MAX) or the second GrabCut finds nothing.

    The mask is upsampled bilinearly (its edge is soft). Raises ReconstructionError when no object is
    found (uniform image, a region below 0.5% of the image, or one covering more than 75% of the
    image border).
    """
    where = path or None
    height, width = rgb.shape[:2]
    factor = min(1.0, SEGMENT_SIDE / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = rgb if factor == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small8 = np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)
    seeds = _grabcut_seeds(small8)
    if np.count_nonzero(seeds == cv2.GC_PR_FGD) < max(4, 0.001 * seeds.size):
        _fail(where, "no object found: nothing in the image differs from its border (is it uniform?); "
                     "use a photo of the object or give a mask file")
    fg = _clean_mask(_grabcut(small8, seeds, where))
    _check_found(fg, where)
    source = "auto"
    if net is not None:
        refined = _refine(small8, fg, *_net_probability(rgb, fg, factor, net))
        if refined is not None:
            fg, source = refined, net.source
    mask = fg.astype(np.float32)
    if factor != 1.0:
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0), source


def _grabcut(small8: np.ndarray, seeds: np.ndarray, where: str | None, iterations: int = 4) -> np.ndarray:
    """GrabCut from the label map ``seeds`` -> (h, w) uint8 {0, 1} foreground."""
    bgd_model, fgd_model = np.zeros((1, 65)), np.zeros((1, 65))
    seeds = seeds.copy()
    try:
        cv2.grabCut(small8, seeds, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error as err:
        _fail(where, f"automatic segmentation failed ({str(err).strip().splitlines()[-1]}); give a mask file")
    return ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.uint8)


NET_DROP, NET_ADD = 0.1, 0.6
"""the net overrules the colour segmentation where its probability is below NET_DROP (not object) or
above NET_ADD (object)."""
NET_EDGE_MAX = 0.3
"""the net is not trusted when its mean probability on the outer tenth of its crop, where the
background is, exceeds this (it took the floor or the room for object)."""


def _refine(small8: np.ndarray, fg: np.ndarray, prob: np.ndarray, edge: float) -> np.ndarray | None:
    """The second GrabCut of :func:`segment` (h, w) {0, 1}, or None when the net is not trusted
    (``edge``: its mean probability on its crop's outer ring) or the second GrabCut finds no object."""
    if edge > NET_EDGE_MAX:
        return None
    seeds = _net_seeds(fg, prob)
    if np.count_nonzero((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)) < max(4, 0.001 * seeds.size):
        return None
    try:
        refined = _clean_mask(_grabcut(small8, seeds, None))
        _check_found(refined, None)
    except ReconstructionError:
        return None
    return refined


GROW_ROUNDS = 3
"""a segmenter whose object reaches past the box it was shown is asked again about the grown box, at
most this many times (legs the colour segmentation missed lie outside its first box)."""


def _net_probability(rgb: np.ndarray, fg: np.ndarray, factor: float, net: ForegroundNet) -> tuple[np.ndarray, float]:
    """The net's object probability on the segmentation grid (h, w), and its mean on the outer tenth
    of its crop: it sees the square of side FOREGROUND_MARGIN x the box of ``fg`` (h, w), cut from
    the loaded image ``rgb``; 0 outside it. A segmenter's crop grows to the union of that box and the
    box of what it calls object, while that grows (GROW_ROUNDS)."""
    box = tuple(v / factor for v in mask_bbox(fg.astype(np.float32)))
    h, w = fg.shape
    rounds = GROW_ROUNDS if net.source == "segmenter" else 1
    for _ in range(rounds):
        crop, image = _context_crop(rgb, box, net.size)
        prob = np.asarray(net.predict(image), np.float32)
        # segmentation pixel (x, y) -> crop pixel ((x + 0.5) / factor - crop.x0) * S / side - 0.5
        k = net.size / crop.size / factor
        shift_x = (0.5 / factor - crop.x0) * net.size / crop.size - 0.5
        shift_y = (0.5 / factor - crop.y0) * net.size / crop.size - 0.5
        warp = np.array([[k, 0, shift_x], [0, k, shift_y]], np.float64)
        on_grid = cv2.warpAffine(prob, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        if not (on_grid > 0.5).any():
            break
        seen = tuple(v / factor for v in mask_bbox(on_grid))
        grown = (min(box[0], seen[0]), min(box[1], seen[1]), max(box[2], seen[2]), max(box[3], seen[3]))
        side = max(box[2] - box[0], box[3] - box[1], 1.0)
        if max(abs(a - b) for a, b in zip(grown, box)) < 0.02 * side:
            break
        box = grown
    ring = max(1, net.size // 10)
    inner = np.zeros(prob.shape, bool)
    inner[ring:-ring, ring:-ring] = True
    return on_grid, float(prob[~inner].mean())


def _context_crop(rgb: np.ndarray, bbox, size: int) -> tuple[Crop, np.ndarray]:
    """The square of side FOREGROUND_MARGIN x the box ``bbox`` (loaded pixels), moved and shrunk to
    stay inside the image where it can (the net must see the room around the object, not a plain
    frame of padding that would look like a cut-out's backdrop); what still lies outside repeats the
    image's edge. -> (Crop in loaded pixels, (size, size, 3) image)."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = bbox
    side = max(x1 - x0, y1 - y0, 1.0)
    side = max(side, min(FOREGROUND_MARGIN * side, width, height))
    cx = float(np.clip((x0 + x1) / 2, side / 2, width - side / 2)) if side <= width else width / 2
    cy = float(np.clip((y0 + y1) / 2, side / 2, height - side / 2)) if side <= height else height / 2
    left, top = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
    n = int(np.ceil(side)) + 1
    pad = max(0, -left, -top, left + n - width, top + n - height)
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else rgb
    window = padded[top + pad:top + pad + n, left + pad:left + pad + n]
    image = cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA)
    return Crop(float(left), float(top), float(n), size, width, height), np.clip(image, 0.0, 1.0)


def _net_seeds(fg: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """GrabCut labels from the colour segmentation ``fg`` (h, w) {0, 1} and the net's probability:
    the colour segmentation stands (it has the detail: openings between slats, thin legs) except
    where the net is sure it is wrong: its object below NET_DROP (a contact shadow, a patch of floor)
    becomes probable background, and the net's object above NET_ADD that the colours missed (white
    legs on a light floor) probable foreground. Far from anything either sees: certain background."""
    seeds = np.where(fg > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    seeds[(fg > 0) & (prob < NET_DROP)] = cv2.GC_PR_BGD
    seeds[(fg == 0) & (prob > NET_ADD)] = cv2.GC_PR_FGD
    near = cv2.dilate(((prob > NET_DROP) | (fg > 0)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    seeds[~near] = cv2.GC_BGD
    return seeds


def _check_found(fg: np.ndarray, where: str | None) -> None:
    """Refuse a segmentation (h, w) {0, 1} that is tiny (< 0.5%) or covers > 75% of the image border."""
    area = fg.mean()
    if area < 0.005:
        _fail(where, f"no object found: the segmented region is only {100 * area:.2f}% of the image; "
                     "use a photo where the object is larger, or give a mask file")
    border = np.concatenate([fg[0], fg[-1], fg[1:-1, 0], fg[1:-1, -1]]).mean()
    if border > 0.75:
        _fail(where, f"no object found: the segmented region covers {100 * border:.0f}% of the image border "
                     "(it is probably the background); use a photo with a plain background around the "
                     "object, or give a mask file")


def _grabcut_seeds(img: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> initial GrabCut label map (h, w) uint8 (GC_BGD / GC_PR_BGD / GC_PR_FGD)."""
    h, w = img.shape[:2]
    lab = cv2.cvtColor(img.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    b = max(2, round(0.03 * max(h, w)))
    ring = np.zeros((h, w), bool)
    ring[:b], ring[-b:], ring[:, :b], ring[:, -b:] = True, True, True, True
    samples = lab[ring]

    # 1. border colour clusters. The background is the clusters holding >= 20% of the border (or
    #    the largest one), grown through clusters of similar colour (a gradient); what is left is a
    #    minority of distinct colours: an object touching the border, not background
    k = 8
    cv2.setRNGSeed(0)  # deterministic k-means++ seeding
    _, labels, centers = cv2.kmeans(samples, k, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5),
                                    1, cv2.KMEANS_PP_CENTERS)
    share = np.bincount(labels.ravel(), minlength=k) / len(labels)
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    group = _link(dist < 12, np.eye(k, dtype=bool))  # clusters that are noise of one colour
    group_share = group.astype(float) @ share
    keep = group[group_share >= 0.2].any(axis=0) | group[np.argmax(share)]
    keep = _link(dist < 20, keep)  # grow the background through similar colours
    d_cluster = np.min(np.linalg.norm(lab[:, :, None, :] - centers[keep][None, None], axis=-1), axis=-1)

    # 2. a quadratic colour ramp fitted robustly to the border (gradients, vignetting)
    ys, xs = np.nonzero(ring)
    basis = _quadratic_basis((xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1)
    inlier = np.ones(len(xs), bool)
    for _ in range(6):
        coef, *_ = np.linalg.lstsq(basis[inlier], samples[inlier], rcond=None)
        residual = np.linalg.norm(basis @ coef - samples, axis=1)
        inlier = residual < max(6.0, 2.5 * float(np.median(residual)))
    gy, gx = np.mgrid[0:h, 0:w]
    ramp = _quadratic_basis((gx + 0.5) / w * 2 - 1, (gy + 0.5) / h * 2 - 1) @ coef
    d_ramp = np.linalg.norm(lab - ramp.astype(np.float32), axis=-1)

    distance = np.minimum(d_cluster, d_ramp)
    otsu, _ = cv2.threshold(np.clip(distance * 2, 0, 255).astype(np.uint8), 0, 255,
                            cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # at least a visible difference (5 Lab units) and well above the background's own noise
    noise = float(np.median(distance[ring]))
    tau = max(otsu / 2, 5.0, 2.5 * noise)
    seeds = np.where(distance > tau, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    seeds[ring & (d_cluster < tau / 2)] = cv2.GC_BGD
    return seeds


def _link(adjacent: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Grow the boolean selection(s) ``start`` (..., n) through the adjacency matrix (n, n)."""
    reach = start.copy()
    for _ in range(len(adjacent)):
        reach = reach | (reach.astype(np.uint8) @ adjacent.astype(np.uint8) > 0)
    return reach


def _quadratic_basis(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).astype(np.float64)


def _clean_mask(fg: np.ndarray) -> np.ndarray:
    """Keep the largest 8-connected component(s) (>= 20% of the largest) and fill small enclosed holes.

    Holes (background regions not touching the border) smaller than 3% of the object are filled;
    larger ones are kept: they are usually real openings (between chair slats or legs).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count <= 1:
        return np.zeros_like(fg)
    areas = stats[1:, cv2.CC_STAT_AREA]
    kept = np.flatnonzero(areas >= 0.2 * areas.max()) + 1
    fg = np.isin(labels, kept).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - fg, connectivity=4)
    h, w = fg.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    touches = (x == 0) | (y == 0) | (x + stats[:, cv2.CC_STAT_WIDTH] == w) | (y + stats[:, cv2.CC_STAT_HEIGHT] == h)
    holes = np.flatnonzero(~touches & (stats[:, cv2.CC_STAT_AREA] < 0.03 * fg.sum()))
    holes = holes[holes > 0]  # label 0 is the object itself
    fill = np.isin(labels, holes) & (fg == 0)
    return (fg | fill).astype(np.uint8)


def mask_bbox(mask: np.ndarray, threshold: float = 0.5) -> tuple[float, float, float, float]:
    """Sub-pixel bounding box ``(x0, y0, x1, y1)`` of ``mask >= threshold`` in pixels (exclusive max).

    ``mask`` (H, W). For a binary mask it is the box of the pixel squares (x1 = last column + 1).
    Soft masks are read as pixel-area coverage: a sharp edge (it goes from ~0 to ~1 within two
    pixels, e.g. an antialiased alpha) sits where the coverage mass puts it, ``c + 1 - (m[c-1] +
    m[c])``; a wider ramp (a blurred or upsampled mask) where the mask, interpolated linearly between
    pixel centres, crosses ``threshold``. Either is exact for its kind of edge, so the box hardly
    depends on the sampling grid (a downscaled image gives the same box in original pixels).
    """
    mask = np.asarray(mask, np.float32)
    on = mask >= threshold
    if not on.any():
        raise ReconstructionError(f"the foreground mask is empty (no pixel >= {threshold})")
    x0, x1 = _extent(mask, on, threshold)
    y0, y1 = _extent(mask.T, on.T, threshold)
    return x0, y0, x1, y1


def _extent(mask: np.ndarray, on: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sub-pixel (first, last + 1) extent along axis 1 over all rows of ``mask`` (H, W)."""
    rows = np.flatnonzero(on.any(axis=1))
    values, hits, width = mask[rows], on[rows], mask.shape[1]
    lo = _leading_edge(values, hits.argmax(axis=1), threshold)
    hi = width - _leading_edge(values[:, ::-1], hits[:, ::-1].argmax(axis=1), threshold)
    return float(lo.min()), float(hi.max())


def _leading_edge(values: np.ndarray, first: np.ndarray, threshold: float) -> np.ndarray:
    """Edge position in each row of ``values`` (R, W) whose first pixel >= threshold is ``first`` (R,)."""
    idx, width = np.arange(len(first)), values.shape[1]

    def at(j: np.ndarray, outside: float) -> np.ndarray:
        return np.where((j >= 0) & (j < width), values[idx, np.clip(j, 0, width - 1)], outside)

    cur, prev, prev2, nxt = at(first, 0.0), at(first - 1, 0.0), at(first - 2, 0.0), at(first + 1, 1.0)
    mass = first + 1.0 - (prev + cur)
    crossing = first - 0.5 + np.clip((threshold - prev) / np.maximum(cur - prev, 1e-6), 0.0, 1.0)
    sharp = (prev2 <= 0.02) & (nxt >= 0.98)
    edge = np.where(sharp, np.clip(mass, first - 1.0, first + 1.0), crossing)
    return np.where(first == 0, 0.0, edge)


def square_crop(bbox, out_size: int, margin: float = 1.2, orig_width: int | None = None,
                orig_height: int | None = None, scale: float = 1.0) -> Crop:
    """A square window centred on ``bbox`` with side ``margin * max(bbox width, height)``.

    ``bbox`` (x0, y0, x1, y1) in LOADED pixels (``scale`` loaded pixels per original pixel); the
    returned Crop is in ORIGINAL pixels and may extend past the image (padded with background).
    """
    if orig_width is None or orig_height is None:
        raise TypeError("square_crop() needs orig_width and orig_height (the original image size)")
    x0, y0, x1, y1 = (float(v) / scale for v in bbox)
    side = margin * max(x1 - x0, y1 - y0)
    if not side > 0:
        raise ReconstructionError(f"the object's bounding box {tuple(bbox)} is empty")
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Crop(cx - side / 2, cy - side / 2, side, int(out_size), int(orig_width), int(orig_height))


def crop_and_resize(rgb: np.ndarray, alpha: np.ndarray | None, crop: Crop, scale: float = 1.0,
                    background=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Resample the ``crop`` window of ``rgb`` (H, W, 3) with ``alpha`` (H, W) to (S, S).

    ``rgb``/``alpha`` are at ``scale`` loaded pixels per original pixel (the Crop is in original
    pixels). Area averaging (premultiplied by alpha) when shrinking, bilinear when enlarging; crop
    pixel centre ``(u + 0.5, v + 0.5)`` maps exactly to original ``crop.x0 + (u + 0.5) / crop.scale``.
    Outside the image is transparent. Returns ``image (S, S, 3)`` composited over ``background``
    and ``mask (S, S)`` (alpha; with ``alpha=None`` the coverage of the image itself).
    """
    rgb = np.asarray(rgb, np.float32)
    height, width = rgb.shape[:2]
    alpha = np.ones((height, width), np.float32) if alpha is None else np.asarray(alpha, np.float32)
    size = crop.out_size

    def fetch(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        a = alpha[y0:y1, x0:x1, None]
        return np.concatenate([rgb[y0:y1, x0:x1] * a, a], axis=-1)

    out = _resample(fetch, width, height, 4, _Grid(crop.x0 * scale, crop.y0 * scale, crop.size * scale / size, size, size),
                    replicate=False)
    mask = np.clip(out[..., 3], 0.0, 1.0)
    image = out[..., :3] + (1.0 - mask)[..., None] * np.asarray(background, np.float32)
    return np.clip(image, 0.0, 1.0), mask


def _brightest(mask: np.ndarray, word: str = "opaque") -> str:
    """', the most opaque is 49.8%' for a mask with some but no half-on pixels, else ''."""
    top = float(mask.max())
    return f", the most {word} is {100 * top:.1f}%" if top > 0 else ""


def _check_object_size(bbox, loaded: LoadedImage, source: str, blame: str) -> None:
    """Refuse an object whose bounding box (loaded pixels) spans fewer than MIN_OBJECT_SIDE pixels on
    its longer side: a speck cropped and enlarged to the model's input says nothing about a shape.
    ``blame``: the file the message names (the mask file for a mask)."""
    x0, y0, x1, y1 = bbox
    if max(x1 - x0, y1 - y0) >= MIN_OBJECT_SIDE:
        return
    width, height = (max(1, round((b - a) / loaded.scale)) for a, b in ((x0, x1), (y0, y1)))
    need = math.ceil(MIN_OBJECT_SIDE / loaded.scale)
    where = {"alpha": "the opaque part of the alpha channel", "mask": "the mask's white part",
             "auto": "the segmented object"}.get(source, "the object")
    _fail(blame, f"the object is too small: {where} is only {width}x{height} pixels; it must be at least {need} "
                 "pixels across (its longer side) in this photo: use a photo where the object is larger, or a mask "
                 "that covers the whole object")


def prepare_image(path, out_size: int, mask_path=None, background=(1.0, 1.0, 1.0), margin: float = 1.2,
                  max_side: int = 4096, net: ForegroundNet | None = None) -> PreparedImage:
    """Load ``path``, find the object and return the square model input around it.

    Foreground, in order: ``mask_path`` when given (an explicit user choice wins), else the file's
    alpha channel when it has a real one, else :func:`segment` (refined by ``net`` when given). The crop
    is ``margin`` times the object's box (:func:`square_crop`); ``margin`` 0: the whole photo.
    """
    loaded = load_image(path, max_side=max_side)
    path = loaded.path
    if mask_path is not None:
        full_mask, source = load_mask(mask_path, loaded), "mask"
        if not (full_mask >= 0.5).any():
            _fail(str(mask_path), f"the mask is empty (no pixel reaches 50%{_brightest(full_mask, 'white')}); white (or opaque) "
                                  "marks the object: check the mask")
    elif loaded.alpha is not None:
        full_mask, source = loaded.alpha, "alpha"
        if not full_mask.any():
            _fail(path, "no object: the alpha channel is empty (the image is fully transparent); export "
                        "it with the object visible")
        if not (full_mask >= 0.5).any():
            _fail(path, f"no object: no pixel of the alpha channel is at least half opaque{_brightest(full_mask)}; "
                        "the object's pixels need alpha >= 50% (128 of 255): export it with the object opaque")
    else:
        full_mask, source = segment(loaded.rgb, path, net)
    bbox = mask_bbox(full_mask)
    _check_object_size(bbox, loaded, source, str(mask_path) if source == "mask" else path)
    if margin == 0:  # the whole photo, padded to a square about its centre (a model trained on whole renders)
        height, width = full_mask.shape
        bbox, margin = (0.0, 0.0, float(width), float(height)), 1.0
    crop = square_crop(bbox, out_size, margin, loaded.orig_width, loaded.orig_height, loaded.scale)
    image, mask = crop_and_resize(loaded.rgb, full_mask, crop, loaded.scale, background)
    return PreparedImage(path, image, mask, crop, source, full_mask, loaded)
