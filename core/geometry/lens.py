"""Focal lengths in millimetres and in pixels: one convention for EXIF, ``--focal-mm`` and Blender.

A *35 mm-equivalent* focal length is defined the way EXIF's FocalLengthIn35mmFilm is: the lens that
gives the photo's field of view along the diagonal on a 36 x 24 mm frame. So a photo whose diagonal
spans D pixels has ``focal_px = focal_35mm * D / 43.27``, whatever its aspect ratio.

Blender describes the same camera with a ``SENSOR_WIDTH_MM`` sensor fitted to the photo's long side
(sensor fit HORIZONTAL or VERTICAL): ``lens = focal_px * SENSOR_WIDTH_MM / max(width, height)``.

Pure Python (no torch): the Blender side imports it at register time.
"""

from __future__ import annotations

import math

SENSOR_WIDTH_MM = 36.0
"""width of a full-frame (35 mm film) sensor; also Blender's default camera sensor width."""
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
"""diagonal of the 36 x 24 mm frame that 35 mm-equivalent focal lengths refer to (43.27 mm)."""


def focal_35mm_to_px(focal_35mm: float, width: int, height: int) -> float:
    """35 mm-equivalent focal length (EXIF definition) -> pixels of a width x height photo."""
    return focal_35mm * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM


def focal_px_to_35mm(focal_px: float, width: int, height: int) -> float:
    """Inverse of :func:`focal_35mm_to_px`."""
    return focal_px * FULL_FRAME_DIAGONAL_MM / math.hypot(width, height)


def blender_lens_mm(focal_px: float, width: int, height: int) -> float:
    """Blender's ``lens`` for a camera with sensor width ``SENSOR_WIDTH_MM`` fitted to the long side."""
    return focal_px * SENSOR_WIDTH_MM / max(width, height)


def photo_focal(width: int, height: int, focal_mm: float | None, exif_35mm: float | None,
                default_mm: float) -> tuple[float | None, str]:
    """Focal length in pixels of a width x height photo and where it came from.

    ``focal_mm`` > 0: the caller's ('given'). None: the photo's EXIF value ('exif') when it has one,
    else ``default_mm`` ('default'). 0: (None, 'estimated'), the pose solver searches it. All three
    are 35 mm-equivalent values in the EXIF definition.
    """
    if focal_mm is not None and focal_mm <= 0:
        return None, "estimated"
    if focal_mm is not None:
        return focal_35mm_to_px(focal_mm, width, height), "given"
    if exif_35mm is not None:
        return focal_35mm_to_px(exif_35mm, width, height), "exif"
    return focal_35mm_to_px(default_mm, width, height), "default"
