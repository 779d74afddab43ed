"""The reference's volume renderer (run.py ``render()`` with nerf_utils), deterministic, in reference units.

What the paper's code does when it renders a latent for evaluation (``randomize=False``, fine sampling on):
rays of its pinhole camera; near and far where each ray enters and leaves the scene box; ``samples`` depths
spaced evenly from near (inclusive) to far (exclusive); importance depths drawn at evenly spaced quantiles
of the coarse weights smoothed as in EG3D (2-wide max pool, 2-wide average pool, + 0.01); both sets merged
in depth order and alpha-composited over a white background. Used to check :mod:`core.paper.generator`
against the reference end to end; the product renders with :mod:`core.field.volume`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .generator import PaperGenerator


@dataclass
class ReferenceRender:
    """A rendered image, reference conventions."""

    rgb: Tensor
    """(B, H, W, 3) colour in [-1, 1] over a white (+1) background."""
    alpha: Tensor
    """(B, H, W) accumulated opacity."""
    depth: Tensor
    """(B, H, W) expected depth along the (unit) ray, premultiplied by alpha."""


def reference_rays(size: int, focal: Tensor, cam2world: Tensor) -> tuple[Tensor, Tensor]:
    """Rays of the reference's perspective camera (``get_ray_bundle`` without bbox and centre).

    Pixel (row j, column i) looks along (i / W - 0.5, -(j / H - 0.5), -f) in camera axes (x right, y up,
    looking down -z; no half-pixel offset), ``focal`` f in units of the image side. size: H = W;
    focal (B,); cam2world (B, 4, 4) -> origins (B, H, W, 3), unit directions (B, H, W, 3).
    """
    steps = torch.arange(size, device=cam2world.device, dtype=cam2world.dtype) / size - 0.5
    jj, ii = torch.meshgrid(steps, steps, indexing="ij")  # (H, W): row offset, column offset
    f = focal[:, None, None]
    cam = torch.stack([ii / f, -jj / f, -torch.ones_like(ii / f)], dim=-1)  # (B, H, W, 3)
    rot = cam2world[:, None, None, :3, :3]
    directions = (cam[..., None, :] * rot).sum(dim=-1)  # R @ d, per pixel
    origins = cam2world[:, None, None, :3, 3].expand(directions.shape)
    return origins, F.normalize(directions, dim=-1)


def box_near_far(origins: Tensor, directions: Tensor, scene_range: float) -> tuple[Tensor, Tensor]:
    """Entry and exit depths of rays through the box [-scene_range, scene_range]^3 (slab method).

    origins, directions (..., 3) -> near, far (...). As the reference: a ray that misses the box gets the
    smallest near and the largest far of the rays that hit it (over the whole batch); both are clamped to
    at least 0.1 and far is at least near + 1e-3.
    """
    inv = 1 / directions
    neg = inv < 0
    enter = (torch.where(neg, scene_range, -scene_range) - origins) * inv
    leave = (torch.where(neg, -scene_range, scene_range) - origins) * inv
    near, far = enter.amax(dim=-1), leave.amin(dim=-1)
    hit = ~(near > far)
    if bool(hit.any()):
        near = torch.where(hit, near, near[hit].min())
        far = torch.where(hit, far, far[hit].max())
    near, far = near.clamp(min=0.1), far.clamp(min=0.1)
    far = torch.where(far - near < 1e-3, near + 1e-3, far)
    return near, far


def composite_weights(sigma: Tensor, depths: Tensor, dir_norm: Tensor) -> Tensor:
    """NeRF weights from densities sigma (..., S) at sorted depths (..., S) along rays whose directions
    have the lengths dir_norm (..., 1) (1 up to rounding); the last sample's interval has length 0.
    -> (..., S)."""
    deltas = torch.cat([depths[..., 1:] - depths[..., :-1], torch.zeros_like(depths[..., :1])], dim=-1)
    deltas = deltas * dir_norm
    alpha = 1 - torch.exp(-sigma * deltas)
    trans = torch.cumprod(1 - alpha[..., :-1] + 1e-10, dim=-1)
    return alpha * torch.cat([torch.ones_like(alpha[..., :1]), trans], dim=-1)


def importance_depths(depths: Tensor, weights: Tensor, count: int) -> Tensor:
    """``count`` depths per ray at the quantiles 0, 1/(count-1), ..., 1 of the smoothed coarse weights.

    depths (R, S) coarse depths, weights (R, S) their compositing weights -> (R, count). The weights are
    smoothed (max over neighbour pairs, mean over pairs, + 0.01); the inner S - 2 of them are the masses
    of the S - 2 intervals between the S - 1 midpoints of the coarse depths, each uniform on its interval.
    """
    smooth = F.max_pool1d(weights[:, None], 2, 1, padding=1)  # (R, 1, S + 1)
    smooth = F.avg_pool1d(smooth, 2, 1)[:, 0] + 0.01  # (R, S)
    edges = 0.5 * (depths[..., 1:] + depths[..., :-1])  # (R, S - 1)
    mass = smooth[..., 1:-1] + 1e-5
    cdf = torch.cumsum(mass / mass.sum(dim=-1, keepdim=True), dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], dim=-1)  # (R, S - 1)
    u = torch.linspace(0.0, 1.0, count, dtype=depths.dtype, device=depths.device).expand(cdf.shape[0], count)
    above = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True)
    below = (above - 1).clamp(min=0)
    above = above.clamp(max=cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(-1, below), cdf.gather(-1, above)
    e0, e1 = edges.gather(-1, below), edges.gather(-1, above)
    span = torch.where(c1 - c0 < 1e-5, torch.ones_like(c0), c1 - c0)
    return e0 + (u - c0) / span * (e1 - e0)


def render_reference(gen: PaperGenerator, ws: Tensor, cam2world: Tensor, focal: Tensor, size: int,
                     samples: int) -> ReferenceRender:
    """Render the latents ws (B, num_ws, w_dim) from cameras cam2world (B, 4, 4) (reference frame and units)
    with focal lengths focal (B,) in image sides, size x size pixels, ``samples`` coarse + ``samples``
    importance samples per ray."""
    b = ws.shape[0]
    planes, colors = gen.synthesize(ws), gen.slot_colors(ws)
    origins, dirs = reference_rays(size, focal, cam2world)  # (B, H, W, 3)
    near, far = box_near_far(origins, dirs, gen.scene_range)
    dir_norm = dirs.norm(dim=-1, keepdim=True)
    steps = torch.arange(samples, device=ws.device, dtype=ws.dtype) / samples
    coarse = torch.lerp(near[..., None], far[..., None], steps)  # (B, H, W, S)

    def field(depths: Tensor) -> tuple[Tensor, Tensor]:
        """depths (B, H, W, S) -> sigma (B, H, W, S), rgb (B, H, W, S, 3)."""
        pts = origins[..., None, :] + dirs[..., None, :] * depths[..., None]
        out = gen.sample_reference(planes, colors, pts.reshape(b, -1, 3))
        return out.sigma.reshape(depths.shape), out.rgb.reshape(*depths.shape, 3)

    sigma_c, rgb_c = field(coarse)
    with torch.no_grad():
        weights = composite_weights(sigma_c, coarse, dir_norm)
        fine = importance_depths(coarse.reshape(-1, samples), weights.reshape(-1, samples), samples)
        fine = fine.reshape(coarse.shape)
    sigma_f, rgb_f = field(fine)
    depths, order = torch.sort(torch.cat([coarse, fine], dim=-1), dim=-1)
    sigma = torch.cat([sigma_c, sigma_f], dim=-1).gather(-1, order)
    rgb = torch.cat([rgb_c, rgb_f], dim=-2).gather(-2, order[..., None].expand(*order.shape, 3))
    weights = composite_weights(sigma, depths, dir_norm)
    alpha = weights.sum(dim=-1)
    color = (weights[..., None] * rgb).sum(dim=-2) + (1 - alpha[..., None])
    return ReferenceRender(color, alpha, (weights * depths).sum(dim=-1))
