"""The encoder: image crop -> canonical-coordinate map, foreground mask and latent w.

A small U-Net. The canonical map and mask feed PnP (core.pose); the w head starts the inversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import EncoderConfig


@dataclass
class EncoderOutput:
    """What the encoder predicts for a batch of crops."""

    coords: Tensor
    """(B, S, S, 3) canonical coordinate of the visible surface at each pixel."""
    mask_logits: Tensor
    """(B, S, S) foreground logits."""
    w: Tensor
    """(B, w_dim) latent guess (in the generator's w space)."""


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    groups = max(1, min(8, cout // 8))
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(groups, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.GroupNorm(groups, cout), nn.SiLU())


def unet_levels(channels: tuple[int, ...]) -> tuple[nn.ModuleList, nn.ModuleList]:
    """The down and up blocks of a U-Net on RGB with these level channels (each level halves the
    resolution); shared by the encoder and core.segmenter (their state dicts name them down / up)."""
    ch = channels
    down = nn.ModuleList([_block(3 if i == 0 else ch[i - 1], c, 1 if i == 0 else 2) for i, c in enumerate(ch)])
    up = nn.ModuleList([_block(ch[i + 1] + ch[i], ch[i], 1) for i in reversed(range(len(ch) - 1))])
    return down, up


def unet_features(down: nn.ModuleList, up: nn.ModuleList, image: Tensor) -> tuple[Tensor, Tensor]:
    """image (B, S, S, 3) in [0, 1] -> (features at full resolution (B, C0, S, S), deepest features)."""
    x = image.permute(0, 3, 1, 2) * 2 - 1
    skips = []
    for block in down:
        x = block(x)
        skips.append(x)
    deepest = x
    for block, skip in zip(up, reversed(skips[:-1])):
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = block(torch.cat([x, skip], dim=1))
    return x, deepest


class Encoder(nn.Module):
    """U-Net with a global head for w."""

    def __init__(self, cfg: EncoderConfig, w_dim: int, bound: float):
        super().__init__()
        self.cfg = cfg
        self.bound = bound
        ch = cfg.channels
        self.down, self.up = unet_levels(ch)
        self.head = nn.Conv2d(ch[0], 4, 1)
        self.w_head = nn.Sequential(nn.Linear(ch[-1], 256), nn.SiLU(), nn.Linear(256, w_dim))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("w_std", torch.ones(w_dim))

    def forward(self, image: Tensor) -> EncoderOutput:
        """image (B, S, S, 3) in [0, 1], composited on the model's background."""
        x, deepest = unet_features(self.down, self.up, image)
        w = self.w_avg + self.w_std * self.w_head(deepest.mean(dim=(2, 3)))
        out = self.head(x)
        coords = torch.tanh(out[:, :3]).permute(0, 2, 3, 1) * self.bound
        return EncoderOutput(coords=coords, mask_logits=out[:, 3], w=w)
