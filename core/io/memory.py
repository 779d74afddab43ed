"""A photo already in memory (a Blender image, a frame from a camera), given to the core instead of a path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ImageArray:
    """A photo's pixels, or its encoded file, in memory; :func:`core.reconstruct` takes it where it takes a path.

    The core reads it as it reads a file (core.io.images.load_image): the same checks, messages naming
    ``name``, and ``name``'s stem names the output files."""

    pixels: object
    """(H, W, 3) or (H, W, 4) numpy array, top row first, sRGB display values: uint8 (0-255), uint16
    (0-65535) or float (0-1; clipped); a fourth channel is alpha (straight, not premultiplied). Or the bytes
    of a PNG, JPEG, WebP, TIFF or BMP file (decoded as that file would be, EXIF included)."""
    name: str
    """the file name messages and output files use (``chair.png``; a path's folder is ignored for names)."""
    focal_35mm: float | None = None
    """the photo's 35 mm-equivalent focal length (EXIF FocalLengthIn35mmFilm), if known (pixels only)."""

    def __str__(self) -> str:
        return self.name
