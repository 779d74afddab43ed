"""The foreground segmenter: a photo's crop around the object -> the object's probability per pixel.

A small U-Net of the encoder's blocks at a finer resolution than the encoder reads (thin legs and
spindles stay a few pixels wide). core.io.images.segment runs it on the square around a first colour
segmentation and refines the result with GrabCut (mask source 'segmenter').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SegmenterConfig
from .encoder import _block


class Segmenter(nn.Module):
    """U-Net: (B, S, S, 3) crop in [0, 1] -> (B, S, S) foreground logits."""

    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.down = nn.ModuleList([_block(3 if i == 0 else ch[i - 1], c, 1 if i == 0 else 2)
                                   for i, c in enumerate(ch)])
        self.up = nn.ModuleList([_block(ch[i + 1] + ch[i], ch[i], 1) for i in reversed(range(len(ch) - 1))])
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, image: Tensor) -> Tensor:
        x = image.permute(0, 3, 1, 2) * 2 - 1
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)[:, 0]

