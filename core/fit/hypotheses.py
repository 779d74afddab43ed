"""Pose hypotheses: the pose solver's camera and its turns about the object's up axis, scored by
render-and-compare before the inversion starts.

A canonical-coordinate map can mistake an object's back for its front, or one side for the other; the
pose solved from it is then off by about 90 or 180 degrees about the up axis, and a few steps of
gradient descent never leave that basin. Each hypothesis orbits the camera about the canonical +Z axis
through the object's centre (its distance, focal length and the object's place in the photo stay), is
rendered once at low resolution (``PoseConfig.hypothesis_size``) with the encoder's latent, and is scored with the
inversion's own full-crop loss. The encoder's latent was predicted together with the encoder's pose,
so it favours that pose: another turn wins only when its loss is lower by a clear margin
(``PoseConfig.yaw_margin``), which catches a solver that flipped a view the latent describes well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import InversionConfig, PoseConfig, RenderConfig
from ..field.generator import FieldState, RadianceField
from ..field.shading import Light
from .invert import InversionTarget, PoseParams, crop_loss


@dataclass
class PoseChoice:
    """The scored hypotheses of a batch of images and the winner of each."""

    pose: PoseParams
    """(B) the winning crop cameras."""
    yaws: tuple[float, ...]
    """the K turns tried, in degrees about the canonical +Z axis (0: the pose solver's camera)."""
    losses: Tensor
    """(B, K) full-crop loss of every hypothesis."""
    chosen: Tensor
    """(B,) index of the winning turn."""


def turned(cam2world: Tensor, yaw_deg: float) -> Tensor:
    """Cameras (B, 4, 4) orbited by ``yaw_deg`` about the canonical +Z axis through the origin."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    rot = torch.eye(4, dtype=cam2world.dtype, device=cam2world.device)
    rot[0, 0], rot[0, 1], rot[1, 0], rot[1, 1] = c, -s, s, c
    return rot @ cam2world


@torch.no_grad()
def choose_pose(gen: RadianceField, render_cfg: RenderConfig, target: InversionTarget, ws: Tensor, pose: PoseParams,
                pose_cfg: PoseConfig, cfg: InversionConfig, plane_offset: Tensor | None = None) -> PoseChoice:
    """Score the turns ``pose_cfg.yaw_hypotheses`` of every image's camera ``pose`` (B) with latents ``ws``
    (B, num_ws, w_dim) against ``target`` (B crops at twice ``cfg.size``); the best turn wins when its loss
    is below ``1 - pose_cfg.yaw_margin`` times the solved camera's (the first turn, 0), else the solved
    camera stays. ``plane_offset`` (B, 3, C, R, R): a fitted triplane offset added to the decoded planes.
    Returns the scores and winners (see :class:`PoseChoice`)."""
    yaws = tuple(pose_cfg.yaw_hypotheses)
    b, k = ws.shape[0], len(yaws)
    camera = pose.camera(cfg.size)
    focal, principal = camera.focal, pose.principal
    candidates = [pose if yaw == 0 else PoseParams.from_cam2world(turned(camera.cam2world, yaw), focal, principal)
                  for yaw in yaws]
    # image-major order: the K hypotheses of image 0, then those of image 1, ...
    stacked = PoseParams(*[torch.stack([getattr(c, name) for c in candidates], dim=1).flatten(0, 1)
                           for name in ("quat", "shift", "log_depth", "log_focal")],
                         None if principal is None else principal.repeat_interleave(k, dim=0))
    state = gen.decode(ws, plane_offset)
    state = FieldState(state.planes.repeat_interleave(k, dim=0), state.color_values.repeat_interleave(k, dim=0))
    # rendered at pose_cfg.hypothesis_size: the crop's pixels (focal length, principal point) scale with it
    size = pose_cfg.hypothesis_size
    scale = size / cfg.size
    scored = PoseParams(stacked.quat, stacked.shift, stacked.log_depth, stacked.log_focal + math.log(scale),
                        None if stacked.principal is None else stacked.principal * scale)
    small = InversionTarget(_area(target.image.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1), _area(target.mask[:, None], size)[:, 0])
    small = InversionTarget(small.image.repeat_interleave(k, dim=0), small.mask.repeat_interleave(k, dim=0))
    g = torch.Generator().manual_seed(cfg.seed)
    losses = crop_loss(gen, state, scored.camera(size), Light.start(gen, b * k, ws.device), small, cfg,
                       render_cfg, g).reshape(b, k)
    chosen = losses.argmin(dim=1)
    own = torch.tensor([float(y) == 0.0 for y in yaws], device=losses.device)
    if bool(own.any()):  # the solved camera keeps its place unless another turn is clearly better
        first = int(own.nonzero()[0])
        keep = losses.gather(1, chosen[:, None])[:, 0] >= (1 - pose_cfg.yaw_margin) * losses[:, first]
        chosen = torch.where(keep, torch.full_like(chosen, first), chosen)
    rows = torch.arange(b, device=ws.device) * k + chosen
    winner = PoseParams(stacked.quat[rows], stacked.shift[rows], stacked.log_depth[rows], stacked.log_focal[rows],
                        principal)
    return PoseChoice(winner, tuple(yaws), losses.cpu(), chosen.cpu())


def _area(images: Tensor, size: int) -> Tensor:
    """(B, C, H, W) -> (B, C, size, size) by area averaging."""
    return F.interpolate(images, size=(size, size), mode="area")
