"""sRGB <-> linear values (IEC 61966-2-1), NumPy only: the one conversion every module uses (mesh
colours are sRGB; glTF vertex colours, Blender's colour attributes and shader inputs are linear)."""

from __future__ import annotations

import numpy as np


def srgb_to_linear(c) -> np.ndarray:
    """sRGB display values, clipped to [0, 1] -> linear values (float64)."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c) -> np.ndarray:
    """Linear values, clipped to [0, 1] -> sRGB display values (float64)."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
