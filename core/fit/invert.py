"""Hybrid inversion: refine the latent and the pose by gradient descent through the renderer.

Adam on the per-layer styles w (with a learning-rate gain), the rotation (quaternion, renormalized
after each step), the image-plane translation, the distance and the focal length, plus the two light
strengths. The loss (core.fit.losses) compares the shaded render with the input on the full crop
and, with ``n_patches`` > 0, on random patches rendered at twice the resolution and cropped
identically from render and target (the paper's way to lower gradient variance); a silhouette term
ties the rendered opacity to the input mask, at full resolution and on a pyramid of 2x2-pooled
copies, so thin parts that miss their place are pulled over rather than erased.

Beyond the paper, the inversion can also fit an offset to the decoded triplanes (``plane_lr`` > 0):
the generator cannot draw every object's thin parts from any w, and an offset, in units of each
plane channel's spread, lets the fit put back the legs, slats and gaps that the photo shows. It rides
on the same backward pass as w (no extra render) and comes back with the result, so the mesh and
every re-render use it. Every setting is a field of :class:`core.config.InversionConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import InversionConfig, RenderConfig
from ..errors import Cancelled
from ..field.generator import FieldState, RadianceField
from ..field.shading import Light, screen_normals, shade
from ..field.volume import patch_pixels, render_image, render_rays
from ..geometry.camera import Camera, camera_rays, project_depth
from ..geometry.pnp import matrix_to_quaternion, quaternion_to_matrix
from .losses import photometric, silhouette

FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


@dataclass
class PoseParams:
    """Optimizable camera of a square crop (OpenCV extrinsics, world = canonical frame)."""

    quat: Tensor
    """(B, 4) rotation world -> OpenCV camera, (w, x, y, z)."""
    shift: Tensor
    """(B, 2) object origin's image-plane offset, t_xy / t_z."""
    log_depth: Tensor
    """(B,) log t_z, the object origin's depth."""
    log_focal: Tensor
    """(B,) log focal length in crop pixels."""
    principal: Tensor | None = None
    """(B, 2) principal point (cx, cy) in crop pixels, like the focal length; None: the crop centre.
    Not optimized: it is where the photo's own centre falls in the crop."""

    def tensors(self) -> list[Tensor]:
        """The optimizable parameters."""
        return [self.quat, self.shift, self.log_depth, self.log_focal]

    @staticmethod
    def from_cam2world(cam2world: Tensor, focal: Tensor, principal: Tensor | None = None) -> "PoseParams":
        """Blender cam2world (B, 4, 4), focal (B,) -> parameters (``principal`` as in the field)."""
        world2cam = torch.linalg.inv(cam2world)
        rot = FLIP.to(cam2world) @ world2cam[:, :3, :3]
        t = FLIP.to(cam2world) @ world2cam[:, :3, 3:]
        t = t[..., 0]
        return PoseParams(matrix_to_quaternion(rot), t[:, :2] / t[:, 2:], t[:, 2].log(), focal.log(), principal)

    def camera(self, size: int) -> Camera:
        """The crop camera for a size x size render."""
        rot = quaternion_to_matrix(self.quat)  # (B, 3, 3)
        depth = self.log_depth.exp()
        t = torch.cat([self.shift * depth[:, None], depth[:, None]], dim=-1)
        rot_c2w = rot.transpose(1, 2)
        centre = -(rot_c2w @ t[..., None])[..., 0]
        cam2world = torch.zeros(rot.shape[0], 4, 4, dtype=rot.dtype, device=rot.device)
        cam2world[:, :3, :3] = rot_c2w @ FLIP.to(rot)
        cam2world[:, :3, 3] = centre
        cam2world[:, 3, 3] = 1
        if self.principal is None:
            cx = cy = torch.full_like(depth, size / 2)
        else:
            cx, cy = self.principal[:, 0], self.principal[:, 1]
        return Camera(cam2world, self.log_focal.exp(), cx, cy, size, size)


def render_shaded(gen: RadianceField, state, camera: Camera, light: Light, render_cfg: RenderConfig,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Shaded RGB (B, H, W, 3) on the model's background and alpha (B, H, W) of the full image."""
    rgb, out = _shaded(gen, state, camera, light, render_cfg, generator)
    return rgb, out.alpha


def _shaded(gen: RadianceField, state, camera: Camera, light: Light, render_cfg: RenderConfig,
            generator: torch.Generator | None = None):
    """Shaded RGB (B, H, W, 3) and the render's outputs (alpha, depth, ...)."""
    out = render_image(gen, state, camera, render_cfg, generator)
    normals = screen_normals(out.coords, out.alpha, camera.cam2world)
    return shade(out.albedo, out.alpha, normals, light, render_cfg.background), out


@dataclass
class InversionTarget:
    """Inputs of the inversion for a batch of crops."""

    image: Tensor
    """(B, 2S, 2S, 3) crop at twice the inversion size, composited on the background."""
    mask: Tensor
    """(B, 2S, 2S) foreground mask of that crop."""

    def halved(self) -> "InversionTarget":
        """The same crops at the inversion size S (2x2 averages), what the full-crop render is compared with."""
        return InversionTarget(F.avg_pool2d(self.image.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1),
                               F.avg_pool2d(self.mask[:, None], 2)[:, 0])


def crop_loss(gen: RadianceField, state, camera: Camera, light: Light, target: InversionTarget, cfg: InversionConfig,
              render_cfg: RenderConfig, g: torch.Generator | None = None) -> Tensor:
    """The inversion's full-crop loss (B,): photometric on the shaded render plus the weighted silhouette
    pyramid, against ``target`` at the render's size."""
    return _crop_loss(gen, state, camera, light, target, cfg, render_cfg, g)[0]


def _crop_loss(gen: RadianceField, state, camera: Camera, light: Light, target: InversionTarget, cfg: InversionConfig,
               render_cfg: RenderConfig, g: torch.Generator | None = None):
    """:func:`crop_loss` and the render it compared (alpha, expected depth)."""
    rgb, out = _shaded(gen, state, camera, light, render_cfg, g)
    loss = photometric(rgb, target.image, cfg.loss) + cfg.mask_weight * silhouette(out.alpha, target.mask,
                                                                                    cfg.mask_pyramid)
    return loss, out


@dataclass
class InversionStart:
    """Where the inversion starts: the encoder's guess and the pose solver's camera."""

    ws: Tensor
    """(B, num_ws, w_dim) per-layer styles."""
    pose: PoseParams
    """crop camera."""
    focal_free: Tensor | None = None
    """(B,) bool: whose focal length may change (None: everyone's); a focal length the photo states
    (EXIF, or given) stays as it is."""
    shared: bool = False
    """True: the B crops are photos of ONE object: ``ws`` is (1, num_ws, w_dim), one latent and one
    triplane offset are fitted to all crops (the loss summed over them), each crop keeps its pose and
    light."""


@dataclass
class InversionResult:
    """Refined latent and pose."""

    ws: Tensor
    """(B, num_ws, w_dim) per-layer styles."""
    pose: PoseParams
    """refined crop camera."""
    light: Light
    """fitted light."""
    losses: list[list[float]]
    """per step, the loss of every image."""
    best_step: list[int]
    """per image, the step whose parameters are returned (lowest full-crop loss)."""
    plane_offset: Tensor | None = None
    """(B, 3, C, R, R) fitted offset added to the decoded triplanes (None: planes not fitted)."""
    final_losses: list[float] | None = None
    """per image, the full-crop loss of the returned parameters (None when no step ran)."""


def invert(gen: RadianceField, render_cfg: RenderConfig, target: InversionTarget, start: InversionStart,
           cfg: InversionConfig, progress: Callable[[int, int, float], None] | None = None,
           cancel: Callable[[], bool] | None = None) -> InversionResult:
    """Run ``cfg.steps`` Adam steps on the styles and the pose from ``start``; returns detached results.

    Per image, the parameters with the lowest full-crop loss seen are returned (the random patches
    are left out of that choice: they differ from step to step), so a step that throws the shape
    away cannot spoil the result. The learning rate follows half a cosine from ``cfg.lr`` down to
    ``cfg.lr_end`` times it at the last step. One of focal length and depth fits the object's size in
    the photo: with ``cfg.hold_depth``, an image whose focal length is free keeps the pose solver's
    depth (moving both is a dolly zoom the photo hardly constrains). ``progress(step, steps, loss)``
    is called after every step; ``cancel()`` returning True raises :class:`Cancelled`."""
    ws, pose, focal_free = start.ws, start.pose, start.focal_free
    b = pose.quat.shape[0]
    device = ws.device
    light = Light.start(gen, b, device)
    if cfg.steps == 0:
        return InversionResult(ws.detach().expand(b, -1, -1), PoseParams(*[t.detach() for t in pose.tensors()],
                               pose.principal), light, [], [0] * b, None)
    # w is optimized in units of its natural spread (w_std) so that one learning rate fits all dims
    u = ((ws - gen.w_avg) / gen.w_std).detach().clone().requires_grad_(True)
    pose = PoseParams(*[t.detach().clone().requires_grad_(True) for t in pose.tensors()], pose.principal)
    free = torch.ones(b, dtype=torch.bool) if focal_free is None else focal_free.bool()
    free = free.to(device=device)
    # a zero gradient from the first step on keeps Adam's update at zero
    pose.log_focal.register_hook(lambda grad: grad * free)
    if cfg.hold_depth:
        pose.log_depth.register_hook(lambda grad: grad * ~free)
    light_params = torch.stack([light.ambient.log(), light.key.log()], dim=-1).requires_grad_(True)
    groups = [{"params": [u], "lr": cfg.lr * cfg.w_gain},
              {"params": pose.tensors(), "lr": cfg.lr * cfg.pose_gain},
              {"params": [light_params], "lr": cfg.lr * 10 if gen.lit else 0.0}]
    gen_cfg = gen.cfg
    offset = None
    if cfg.plane_lr > 0:
        with torch.no_grad():
            plane_std = gen.decode(ws).planes.std(dim=(3, 4), keepdim=True)
        res = gen_cfg.plane_res if cfg.plane_res <= 0 else min(cfg.plane_res, gen_cfg.plane_res)
        offset = torch.zeros(ws.shape[0], 3, gen_cfg.plane_channels, res, res, device=device, requires_grad=True)
        groups.append({"params": [offset], "lr": cfg.plane_lr})
    base_lrs = [group["lr"] for group in groups]
    opt = _Adam(groups, betas=(cfg.momentum, 0.95))
    g = torch.Generator().manual_seed(cfg.seed)
    small = target.halved()
    losses: list[list[float]] = []
    best = _Best(u, pose, light_params, offset, start.shared)

    def full_crop():
        """Decode and render the current parameters: state, camera, light, full-crop loss (B,) and the
        offset's regularisers (B,)."""
        fitted = None if offset is None else _upsampled(mirrored(offset, cfg.plane_mirror), gen_cfg.plane_res) * plane_std
        state = gen.decode(gen.w_avg + gen.w_std * u, fitted)
        if start.shared:  # one object seen by every camera
            state = FieldState(state.planes.expand(b, -1, -1, -1, -1), state.color_values.expand(b, -1, -1))
        cam = pose.camera(cfg.size)
        lit = Light(light_params[:, 0].exp(), light_params[:, 1].exp(), light.direction)
        loss, out = _crop_loss(gen, state, cam, lit, small, cfg, render_cfg, g)
        reg = torch.zeros_like(loss)
        if offset is not None and cfg.plane_tv > 0:
            reg = reg + cfg.plane_tv * total_variation(offset).expand(b)
        if offset is not None and cfg.plane_unseen > 0:
            base = FieldState(state.planes - fitted, state.color_values)
            reg = reg + cfg.plane_unseen * unseen_change(gen, state, base, cam, out.alpha, out.depth, small.mask, g)
        return state, cam, lit, loss, reg

    for step in range(cfg.steps):
        if cancel is not None and cancel():
            raise Cancelled()
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * schedule(step, cfg.steps, cfg.lr_end)
        if offset is not None:
            opt.param_groups[-1]["lr"] = base_lrs[-1] * offset_factor(step, cfg)
        opt.zero_grad()
        state, cam, lit, per_image, offset_reg = full_crop()
        best.update(step, per_image.detach(), u, pose, light_params, offset)
        if cfg.n_patches > 0:
            per_image = per_image + _patch_loss(gen, state, cam, lit, target, cfg, render_cfg, g)
        reg = 1e-3 * (u - u.detach().mean(dim=1, keepdim=True)).pow(2).mean(dim=(1, 2))
        if offset is not None and cfg.plane_reg > 0:
            reg = reg + cfg.plane_reg * offset.pow(2).mean(dim=(1, 2, 3, 4))
        total = (per_image + reg + offset_reg).sum()
        total.backward()
        opt.step()
        with torch.no_grad():
            pose.quat /= pose.quat.norm(dim=-1, keepdim=True)
        losses.append([float(v) for v in per_image.detach()])
        if progress is not None:
            progress(step + 1, cfg.steps, float(per_image.detach().mean()))
    if cfg.steps > 0:  # the last update has not been scored yet
        with torch.no_grad():
            final = full_crop()[3]
        best.update(cfg.steps, final, u, pose, light_params, offset)
    lit = Light(best.light[:, 0].exp(), best.light[:, 1].exp(), light.direction)
    fitted = None if offset is None else _upsampled(mirrored(best.offset, cfg.plane_mirror), gen_cfg.plane_res) * plane_std
    out_ws = gen.w_avg + gen.w_std * best.u
    if start.shared:
        out_ws = out_ws.expand(b, -1, -1)
        fitted = None if fitted is None else fitted.expand(b, -1, -1, -1, -1)
    return InversionResult(out_ws, PoseParams(*best.pose, pose.principal), lit, losses, best.step.tolist(), fitted,
                           best.loss.tolist())


class _Adam:
    """torch.optim.Adam's update through its public functional form (``torch.optim.adam.adam``, in the
    module's ``__all__``; single-tensor path: the same numbers) without the class, whose first use
    imports torch._dynamo: 0.9-2.5 s of every cold process."""

    def __init__(self, groups: list[dict], betas: tuple[float, float], eps: float = 1e-8):
        self.param_groups = groups
        self.betas, self.eps = betas, eps
        self.state = [[(torch.zeros_like(p), torch.zeros_like(p)) for p in g["params"]] for g in groups]
        self.count = torch.tensor(0.0)

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        from torch.optim.adam import adam

        with torch.no_grad():
            for group, state in zip(self.param_groups, self.state):
                live = [(p, s) for p, s in zip(group["params"], state) if p.grad is not None]
                if not live:
                    continue
                adam([p for p, _ in live], [p.grad for p, _ in live], [s[0] for _, s in live],
                     [s[1] for _, s in live], [], [self.count.clone() for _ in live], foreach=False,
                     amsgrad=False, beta1=self.betas[0], beta2=self.betas[1], lr=group["lr"],
                     weight_decay=0.0, eps=self.eps, maximize=False)
            self.count += 1


def _patch_loss(gen: RadianceField, state, cam: Camera, lit: Light, target: InversionTarget, cfg: InversionConfig,
                render_cfg: RenderConfig, g: torch.Generator) -> Tensor:
    """Per-image loss (B,) on ``cfg.n_patches`` random square patches, rendered at twice the inversion's
    resolution and cropped identically from the target (the paper's way to lower gradient variance)."""
    b, n, side, device = cam.batch, cfg.n_patches, cfg.patch_size, state.planes.device
    hi = 2 * cfg.size
    x0 = torch.randint(0, hi - side + 1, (b, n), generator=g).to(device)
    y0 = torch.randint(0, hi - side + 1, (b, n), generator=g).to(device)
    pix = patch_pixels(x0.reshape(-1).float(), y0.reshape(-1).float(), side, 2.0).reshape(b, n * side * side, 2)
    out = render_rays(gen, state, camera_rays(cam, pix), render_cfg, g)
    bp = b * n
    coords = out.coords.reshape(bp, side, side, 3)
    alpha = out.alpha.reshape(bp, side, side)
    normals = screen_normals(coords, alpha, cam.cam2world.repeat_interleave(n, dim=0))
    lit_p = Light(lit.ambient.repeat_interleave(n), lit.key.repeat_interleave(n),
                  lit.direction.repeat_interleave(n, dim=0))
    rgb = shade(out.albedo.reshape(bp, side, side, 3), alpha, normals, lit_p, render_cfg.background)
    iy = (y0.reshape(-1, 1) + torch.arange(side, device=device)).reshape(bp, side, 1)
    ix = (x0.reshape(-1, 1) + torch.arange(side, device=device)).reshape(bp, 1, side)
    bi = torch.arange(b, device=device).repeat_interleave(n)[:, None, None]
    loss = (rgb - target.image[bi, iy, ix]).abs().mean(dim=(1, 2, 3)) + cfg.mask_weight * silhouette(
        alpha, target.mask[bi, iy, ix])
    return loss.reshape(b, n).mean(dim=1)


def schedule(step: int, steps: int, lr_end: float) -> float:
    """The learning rate's factor at ``step`` of a fit of ``steps`` steps: half a cosine from 1 down to
    ``lr_end`` (large first steps, settle at the end)."""
    decay = 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
    return lr_end + (1 - lr_end) * decay


def offset_factor(step: int, cfg: InversionConfig) -> float:
    """The offset's learning-rate factor at ``step``: 0 before ``plane_start``; in a fit of more than
    ``plane_steps`` steps, the schedule of a ``plane_steps``-step fit and 0 after it (the offset moves as
    in the shorter fit; the further steps refine the latent, the pose and the light on it); otherwise
    the fit's own schedule."""
    if step < cfg.plane_start:
        return 0.0
    if 0 < cfg.plane_steps < cfg.steps:
        return schedule(step, cfg.plane_steps, cfg.lr_end) if step < cfg.plane_steps else 0.0
    return schedule(step, cfg.steps, cfg.lr_end)


def mirrored(offset: Tensor, amount: float) -> Tensor:
    """The triplane offset (B, 3, C, R, R) with ``amount`` of its left-right asymmetry removed (1: mirror
    symmetric about x = 0, the canonical frame's left-right plane; chairs are symmetric about it).

    Planes 0 (x, y) and 1 (x, z) index x along their last axis (core.field.generator.sample_triplanes:
    texel centres symmetric about the middle), so mirroring x flips that axis; plane 2 (y, z) holds
    no x. Every feature the offset adds at (x, y, z) is then added at (-x, y, z) too."""
    if amount <= 0:
        return offset
    flipped = torch.cat([offset[:, :2].flip(-1), offset[:, 2:]], dim=1)
    return offset + 0.5 * amount * (flipped - offset)


def total_variation(offset: Tensor) -> Tensor:
    """Mean absolute difference between neighbouring texels of the offset (B, 3, C, R, R) -> (B,)."""
    dx = (offset[..., 1:] - offset[..., :-1]).abs().mean(dim=(1, 2, 3, 4))
    dy = (offset[..., 1:, :] - offset[..., :-1, :]).abs().mean(dim=(1, 2, 3, 4))
    return dx + dy


UNSEEN_POINTS = 2048
"""random points per image at which :func:`unseen_change` compares the field with and without the offset."""
UNSEEN_CLAMP = 0.1
"""SDF values are clamped to +-this before comparing (far from any surface, a change changes nothing)."""


def unseen_change(gen: RadianceField, state: FieldState, base: FieldState, cam: Camera, alpha: Tensor,
                  depth: Tensor, mask: Tensor, g: torch.Generator | None = None) -> Tensor:
    """Mean change (B,) of the clamped SDF that the offset makes at random points of the scene box that the
    photo does not see: outside the camera's frame, or behind the rendered surface inside the photo's
    mask. ``state`` has the offset, ``base`` the same planes without it; ``alpha``, ``depth`` (B, S, S)
    are the render of ``state`` through ``cam`` and ``mask`` (B, S, S) the photo's silhouette."""
    b, s, device = alpha.shape[0], alpha.shape[-1], alpha.device
    bound = gen.cfg.bound
    pts = (torch.rand(b, UNSEEN_POINTS, 3, generator=g).to(device) * 2 - 1) * bound
    with torch.no_grad():
        uv, z = project_depth(Camera(cam.cam2world.detach(), cam.focal.detach(), cam.cx, cam.cy, s, s), pts)
        inside = (uv >= 0).all(-1) & (uv[..., 0] < s) & (uv[..., 1] < s) & (z > 0)
        ix = uv[..., 0].clamp(0, s - 1).long()
        iy = uv[..., 1].clamp(0, s - 1).long()
        bi = torch.arange(b, device=device)[:, None]
        a = alpha.detach()[bi, iy, ix]
        surface = depth.detach()[bi, iy, ix] / a.clamp(min=1e-3)
        dist = (pts - cam.cam2world.detach()[:, None, :3, 3]).norm(dim=-1)
        hidden = (mask[bi, iy, ix] > 0.5) & (a > 0.5) & (dist > surface + 2 * float(gen.beta))
        unseen = (~inside | hidden).float()
    sdf = gen.query(state, pts, with_color=False).sdf.clamp(-UNSEEN_CLAMP, UNSEEN_CLAMP)
    sdf0 = gen.query(base, pts, with_color=False).sdf.clamp(-UNSEEN_CLAMP, UNSEEN_CLAMP)
    return ((sdf - sdf0).abs() * unseen).sum(dim=1) / unseen.sum(dim=1).clamp(min=1) / UNSEEN_CLAMP


def _upsampled(offset: Tensor, res: int) -> Tensor:
    """(B, 3, C, r, r) -> (B, 3, C, res, res), bilinear."""
    b, n, c, r, _ = offset.shape
    if r == res:
        return offset
    up = F.interpolate(offset.reshape(b, n * c, r, r), size=(res, res), mode="bilinear", align_corners=False)
    return up.reshape(b, n, c, res, res)


class _Best:
    """Per image, a copy of the parameters with the lowest loss so far (``shared``: one object seen by
    every image; the lowest loss summed over the images)."""

    def __init__(self, u: Tensor, pose: PoseParams, light_params: Tensor, offset: Tensor | None = None,
                 shared: bool = False):
        b = pose.quat.shape[0]
        self.shared = shared
        self.loss = torch.full((b,), math.inf, device=u.device)
        self.step = torch.zeros(b, dtype=torch.long)
        self.u = u.detach().clone()
        self.pose = [t.detach().clone() for t in pose.tensors()]
        self.light = light_params.detach().clone()
        self.offset = None if offset is None else offset.detach().clone()

    @torch.no_grad()
    def update(self, step: int, loss: Tensor, u: Tensor, pose: PoseParams, light_params: Tensor,
               offset: Tensor | None = None) -> None:
        better = loss < self.loss  # (B,)
        if self.shared:
            better = (loss.sum() < self.loss.sum()).expand_as(better)
        if not bool(better.any()):
            return
        self.loss = torch.where(better, loss, self.loss)
        self.step[better.cpu()] = step
        latent = better[:1] if self.shared else better
        self.u[latent] = u.detach()[latent]
        for kept, now in zip(self.pose, pose.tensors()):
            kept[better] = now.detach()[better]
        self.light[better] = light_params.detach()[better]
        if offset is not None:
            self.offset[latent] = offset.detach()[latent]
