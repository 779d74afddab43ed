"""Image losses of the inversion: photometric (L1, SSIM) and silhouette terms, per image."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def ssim(a: Tensor, b: Tensor, window: int = 7) -> Tensor:
    """Mean SSIM of images (B, H, W, 3) in [0, 1] with a box window."""
    a, b = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    pool = lambda x: F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    mu_a, mu_b = pool(a), pool(b)
    var_a = pool(a * a) - mu_a ** 2
    var_b = pool(b * b) - mu_b ** 2
    cov = pool(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def photometric(render: Tensor, target: Tensor, loss: str) -> Tensor:
    """Per-image photometric loss (B,) between (B, H, W, 3) images."""
    l1 = (render - target).abs().mean(dim=(1, 2, 3))
    if loss == "l1":
        return l1
    return l1 + 0.5 * (1 - ssim(render, target))


def silhouette(alpha: Tensor, mask: Tensor, levels: int = 0) -> Tensor:
    """Per-image L1 between rendered opacity and mask (B, H, W), plus the same on ``levels`` coarser
    copies (2x2 average pooling each): a part that misses its place by more than its width still
    overlaps it once both are blurred, so the coarse terms pull it over instead of only erasing it."""
    a, m = alpha[:, None], mask[:, None]
    total = (a - m).abs().mean(dim=(1, 2, 3))
    for _ in range(levels):
        if a.shape[-1] < 2:
            break
        a, m = F.avg_pool2d(a, 2), F.avg_pool2d(m, 2)
        total = total + (a - m).abs().mean(dim=(1, 2, 3))
    return total
