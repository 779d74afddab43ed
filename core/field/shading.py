"""Simple shading so the model's renders look like photos: ambient plus one key light.

Normals come from the rendered canonical-coordinate map by screen-space differences (cheap and
differentiable, so the inversion loss can use it) or from the SDF gradient when rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Light:
    """Ambient + directional light; the direction is in the CAMERA frame (x right, y up, z toward the viewer)."""

    ambient: Tensor
    """(B,) ambient strength."""
    key: Tensor
    """(B,) key light strength."""
    direction: Tensor
    """(B, 3) unit direction towards the light, camera frame."""

    @staticmethod
    def default(batch: int = 1, device=None) -> "Light":
        d = torch.tensor([-0.4, 0.5, 0.77], device=device)
        return Light(torch.full((batch,), 0.55, device=device), torch.full((batch,), 0.5, device=device),
                     (d / d.norm()).expand(batch, 3).clone())

    @staticmethod
    def unlit(batch: int = 1, device=None) -> "Light":
        """No shading: the colours are shown as they are (a generator whose colours are radiance)."""
        d = torch.tensor([0.0, 0.0, 1.0], device=device)
        return Light(torch.ones(batch, device=device), torch.full((batch,), 1e-6, device=device),
                     d.expand(batch, 3).clone())

    @staticmethod
    def start(gen, batch: int = 1, device=None) -> "Light":
        """The light an inversion of ``gen`` starts from: the default one for albedo, none for a generator whose
        ``lit`` is False (the paper's: its colours already hold the light)."""
        return Light.default(batch, device) if gen.lit else Light.unlit(batch, device)


def screen_normals(coords: Tensor, alpha: Tensor, cam2world: Tensor) -> Tensor:
    """Normals in the camera frame from a premultiplied coordinate map.

    coords (B, H, W, 3) premultiplied canonical points, alpha (B, H, W), cam2world (B, 4, 4)
    -> (B, H, W, 3) unit normals facing the camera (z > 0).
    """
    p = coords / alpha[..., None].clamp(min=1e-3)
    p = p.permute(0, 3, 1, 2)
    pad = F.pad(p, (1, 1, 1, 1), mode="replicate")
    du = (pad[:, :, 1:-1, 2:] - pad[:, :, 1:-1, :-2]).permute(0, 2, 3, 1)
    dv = (pad[:, :, 2:, 1:-1] - pad[:, :, :-2, 1:-1]).permute(0, 2, 3, 1)
    n = torch.cross(dv, du, dim=-1)  # world frame
    n_cam = torch.einsum("bji,bhwj->bhwi", cam2world[:, :3, :3], n)  # R^T n
    n_cam = n_cam / n_cam.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    sign = torch.where(n_cam[..., 2:] < 0, -1.0, 1.0)
    return n_cam * sign


def shade(albedo: Tensor, alpha: Tensor, normals_cam: Tensor, light: Light, background) -> Tensor:
    """Shaded image composited on the background.

    albedo (B, H, W, 3) premultiplied, alpha (B, H, W), normals_cam (B, H, W, 3) -> rgb (B, H, W, 3).
    """
    lambert = (normals_cam * light.direction[:, None, None, :]).sum(dim=-1).clamp(min=0)
    factor = light.ambient[:, None, None] + light.key[:, None, None] * lambert
    bg = torch.as_tensor(background, dtype=albedo.dtype, device=albedo.device)
    return albedo * factor[..., None] + (1 - alpha[..., None]) * bg
