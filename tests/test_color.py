"""The one sRGB <-> linear conversion (core.color)."""

import numpy as np

from core.color import linear_to_srgb, srgb_to_linear


def test_srgb_and_linear_known_values_and_round_trip():
    np.testing.assert_allclose(srgb_to_linear([0.0, 0.04045, 0.5, 1.0]), [0.0, 0.04045 / 12.92, 0.214041, 1.0],
                               atol=1e-6)
    np.testing.assert_allclose(linear_to_srgb([0.0, 0.0031308, 0.214041, 1.0]), [0.0, 0.0031308 * 12.92, 0.5, 1.0],
                               atol=1e-6)
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert srgb_to_linear([-0.2, 1.5]).tolist() == [0.0, 1.0]  # out of range is clipped
    assert srgb_to_linear(np.float32([0.5])).dtype == np.float64
