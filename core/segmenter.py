"""The foreground segmenter: a photo's crop around the object -> the object's probability per pixel.

A small U-Net of the encoder's blocks at a finer resolution than the encoder reads (thin legs and
spindles stay a few pixels wide). core.io.images.segment runs it on the square around a first colour
segmentation and corrects that segmentation with it (mask source 'segmenter').
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import SegmenterConfig
from .encoder import unet_features, unet_levels


class Segmenter(nn.Module):
    """U-Net: (B, S, S, 3) crop in [0, 1] -> (B, S, S) foreground logits."""

    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        self.cfg = cfg
        self.down, self.up = unet_levels(cfg.channels)
        self.head = nn.Conv2d(cfg.channels[0], 1, 1)

    def forward(self, image: Tensor) -> Tensor:
        return self.head(unet_features(self.down, self.up, image)[0])[:, 0]
