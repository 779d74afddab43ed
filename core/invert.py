"""Hybrid inversion: refine the latent and the pose by gradient descent through the renderer.

Adam (betas 0.5/0.95, see ``momentum``) on the per-layer styles w (with a learning-rate gain), the rotation
(quaternion, renormalized after each step), the image-plane translation, the distance and the focal
length, plus the two light strengths. The loss compares the shaded render with the input on the full
crop and, with ``n_patches`` > 0, on random patches rendered at twice the resolution, cropped
identically from render and target (the paper's trick to lower gradient variance; off by default:
with this generator it cost a third of a step and bought nothing, see the model card); a silhouette
term ties the rendered opacity to the input mask, at full resolution and on a pyramid of 2x2-pooled
copies (thin parts that miss their place are pulled over rather than erased). VGG/LPIPS cannot be
shipped here, so the photometric term is L1 + (1 - SSIM): see the model card for the measurements
behind that choice.

Beyond the paper, the inversion can also fit an offset to the decoded triplanes (``plane_lr`` > 0,
the shipped setting): this generator cannot draw every chair's thin parts from any w (its own
training chairs come out with silhouette IoU 0.80), and an offset, in units of each plane channel's
spread, lets the fit put back the legs, slats and gaps that the photo shows. The offset rides on the
same backward pass as w (no extra render) and is returned with the result, so the mesh and every
re-render use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .camera import Camera, camera_rays
from .errors import Cancelled
from .generator import Generator
from .pose import matrix_to_quaternion, quaternion_to_matrix
from .render import patch_pixels, render_image, render_rays
from .shading import Light, screen_normals, shade

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


def render_shaded(gen: Generator, state, camera: Camera, light: Light, background,
                  render_cfg, generator: torch.Generator | None = None, pixels: Tensor | None = None,
                  patch: int = 0) -> tuple[Tensor, Tensor]:
    """Shaded RGB (B, H, W, 3) and alpha (B, H, W): the full image, or square patches when ``pixels``
    (B, patch*patch, 2) is given (then B counts image x patch)."""
    if pixels is None:
        out = render_image(gen, state, camera, render_cfg, generator)
    else:
        out = render_rays(gen, state, camera_rays(camera, pixels), render_cfg, generator).reshape(patch, patch)
    normals = screen_normals(out.coords, out.alpha, camera.cam2world)
    return shade(out.albedo, out.alpha, normals, light, background), out.alpha


@dataclass
class InversionTarget:
    """Inputs of the inversion for a batch of crops."""

    image: Tensor
    """(B, 2S, 2S, 3) crop at twice the inversion size, composited on the background."""
    mask: Tensor
    """(B, 2S, 2S) foreground mask of that crop."""


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


def invert(gen: Generator, render_cfg, target: InversionTarget, ws: Tensor, pose: PoseParams, steps: int,
           size: int, patch: int, n_patches: int = 0, seed: int = 0, loss: str = "l1+ssim",
           lr: float = 3e-3, w_gain: float = 15.0, pose_gain: float = 2.0, mask_weight: float = 0.35,
           mask_pyramid: int = 5, lr_end: float = 0.5, hold_depth: bool = True, focal_free: Tensor | None = None,
           plane_lr: float = 0.04, plane_res: int = 0, plane_reg: float = 0.0, plane_start: int = 0,
           momentum: float = 0.5,
           progress: Callable[[int, int, float], None] | None = None,
           cancel: Callable[[], bool] | None = None) -> InversionResult:
    """Run ``steps`` Adam steps on ws (B, num_ws, w_dim) and the pose; returns detached results.

    Per image, the parameters with the lowest full-crop loss seen are returned (the random patches
    are left out of that choice: they differ from step to step), so a step that throws the shape
    away cannot spoil the result. The learning rate follows half a cosine from ``lr`` down to
    ``lr_end`` times it at the last step (0.5: with 10 steps the late ones still move; measured in
    the model card). ``focal_free`` (B,) bool says whose focal length may change (None: everyone's);
    a focal length the photo states (EXIF, or given) stays as it is. One of focal length and depth
    fits the object's size in the photo: with ``hold_depth``, an image whose focal length is free keeps
    the pose solver's depth (moving both is a dolly zoom the photo hardly constrains; changing the
    depth moves the camera and with it every other view: measured in the model card).

    ``plane_lr`` > 0 also fits an offset to the triplanes (Adam, this learning rate in units of each plane
    channel's spread, on the same cosine), at ``plane_res`` texels a side (0: the planes' own), from step
    ``plane_start`` on, with an optional L2 pull ``plane_reg`` toward zero; it comes back as
    ``plane_offset`` (None when not fitted).

    ``momentum`` is Adam's first-moment decay (beta1) for every parameter: with ten steps, 0.9 carries
    the first steps' direction through the whole run; a shorter memory lets the late steps turn
    (measured in the model card)."""
    b = ws.shape[0]
    device = ws.device
    light = Light.default(b, device)
    # w is optimized in units of its natural spread (w_std) so that one learning rate fits all dims
    u = ((ws - gen.w_avg) / gen.w_std).detach().clone().requires_grad_(True)
    pose = PoseParams(*[t.detach().clone().requires_grad_(True) for t in pose.tensors()], pose.principal)
    free = torch.ones(b, dtype=torch.bool) if focal_free is None else focal_free.bool()
    free = free.to(device=device)
    # a zero gradient from the first step on keeps Adam's update at zero
    pose.log_focal.register_hook(lambda grad: grad * free)
    if hold_depth:
        pose.log_depth.register_hook(lambda grad: grad * ~free)
    light_params = torch.stack([light.ambient.log(), light.key.log()], dim=-1).requires_grad_(True)
    groups = [{"params": [u], "lr": lr * w_gain}, {"params": pose.tensors(), "lr": lr * pose_gain},
              {"params": [light_params], "lr": lr * 10}]
    cfg = gen.cfg
    offset = None
    if plane_lr > 0:
        with torch.no_grad():
            plane_std = gen.decode(ws).planes.std(dim=(3, 4), keepdim=True)
        res = cfg.plane_res if plane_res <= 0 else min(plane_res, cfg.plane_res)
        offset = torch.zeros(b, 3, cfg.plane_channels, res, res, device=device, requires_grad=True)
        groups.append({"params": [offset], "lr": plane_lr})
    base_lrs = [group["lr"] for group in groups]
    opt = torch.optim.Adam(groups, betas=(momentum, 0.95))
    g = torch.Generator().manual_seed(seed)
    target_lo = F.avg_pool2d(target.image.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    mask_lo = F.avg_pool2d(target.mask[:, None], 2)[:, 0]
    hi = 2 * size
    losses: list[list[float]] = []
    best = _Best(u, pose, light_params, offset)

    def full_crop():
        """Decode and render the current parameters: state, camera, light and full-crop loss (B,)."""
        fitted = None if offset is None else _upsampled(offset, cfg.plane_res) * plane_std
        state = gen.decode(gen.w_avg + gen.w_std * u, fitted)
        cam = pose.camera(size)
        lit = Light(light_params[:, 0].exp(), light_params[:, 1].exp(), light.direction)
        rgb, alpha = render_shaded(gen, state, cam, lit, render_cfg.background, render_cfg, g)
        return state, cam, lit, photometric(rgb, target_lo, loss) + mask_weight * silhouette(alpha, mask_lo, mask_pyramid)

    for step in range(steps):
        if cancel is not None and cancel():
            raise Cancelled()
        decay = 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))  # large first steps, settle at the end
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * (lr_end + (1 - lr_end) * decay)
        if offset is not None and step < plane_start:
            opt.param_groups[-1]["lr"] = 0.0
        opt.zero_grad(set_to_none=True)
        state, cam, lit, per_image = full_crop()
        best.update(step, per_image.detach(), u, pose, light_params, offset)
        if n_patches > 0:
            # identical random crops of render and target, rendered at twice the resolution
            x0 = torch.randint(0, hi - patch + 1, (b, n_patches), generator=g).to(device)
            y0 = torch.randint(0, hi - patch + 1, (b, n_patches), generator=g).to(device)
            pix = patch_pixels(x0.reshape(-1).float(), y0.reshape(-1).float(), patch, 2.0)
            pix = pix.reshape(b, n_patches * patch * patch, 2)
            out = render_rays(gen, state, camera_rays(cam, pix), render_cfg, g)
            bp = b * n_patches
            coords = out.coords.reshape(bp, patch, patch, 3)
            alpha_p = out.alpha.reshape(bp, patch, patch)
            cam2world = cam.cam2world.repeat_interleave(n_patches, dim=0)
            normals = screen_normals(coords, alpha_p, cam2world)
            lit_p = Light(lit.ambient.repeat_interleave(n_patches), lit.key.repeat_interleave(n_patches),
                          lit.direction.repeat_interleave(n_patches, dim=0))
            rgb_p = shade(out.albedo.reshape(bp, patch, patch, 3), alpha_p, normals, lit_p, render_cfg.background)
            iy = (y0.reshape(-1, 1) + torch.arange(patch, device=device)).reshape(bp, patch, 1)
            ix = (x0.reshape(-1, 1) + torch.arange(patch, device=device)).reshape(bp, 1, patch)
            bi = torch.arange(b, device=device).repeat_interleave(n_patches)[:, None, None]
            tgt = target.image[bi, iy, ix]
            tgt_m = target.mask[bi, iy, ix]
            patch_loss = (rgb_p - tgt).abs().mean(dim=(1, 2, 3)) + mask_weight * silhouette(alpha_p, tgt_m)
            per_image = per_image + patch_loss.reshape(b, n_patches).mean(dim=1)
        reg = 1e-3 * (u - u.detach().mean(dim=1, keepdim=True)).pow(2).mean(dim=(1, 2))
        if offset is not None and plane_reg > 0:
            reg = reg + plane_reg * offset.pow(2).mean(dim=(1, 2, 3, 4))
        total = (per_image + reg).sum()
        total.backward()
        opt.step()
        with torch.no_grad():
            pose.quat /= pose.quat.norm(dim=-1, keepdim=True)
        losses.append([float(v) for v in per_image.detach()])
        if progress is not None:
            progress(step + 1, steps, float(per_image.detach().mean()))
    if steps > 0:  # the last update has not been scored yet
        with torch.no_grad():
            final = full_crop()[3]
        best.update(steps, final, u, pose, light_params, offset)
    lit = Light(best.light[:, 0].exp(), best.light[:, 1].exp(), light.direction)
    fitted = None if offset is None else _upsampled(best.offset, cfg.plane_res) * plane_std
    return InversionResult(gen.w_avg + gen.w_std * best.u, PoseParams(*best.pose, pose.principal), lit, losses,
                           best.step.tolist(), fitted)


def _upsampled(offset: Tensor, res: int) -> Tensor:
    """(B, 3, C, r, r) -> (B, 3, C, res, res), bilinear."""
    b, n, c, r, _ = offset.shape
    if r == res:
        return offset
    up = F.interpolate(offset.reshape(b, n * c, r, r), size=(res, res), mode="bilinear", align_corners=False)
    return up.reshape(b, n, c, res, res)


class _Best:
    """Per image, a copy of the parameters with the lowest loss so far."""

    def __init__(self, u: Tensor, pose: PoseParams, light_params: Tensor, offset: Tensor | None = None):
        self.loss = torch.full((u.shape[0],), math.inf, device=u.device)
        self.step = torch.zeros(u.shape[0], dtype=torch.long)
        self.u = u.detach().clone()
        self.pose = [t.detach().clone() for t in pose.tensors()]
        self.light = light_params.detach().clone()
        self.offset = None if offset is None else offset.detach().clone()

    @torch.no_grad()
    def update(self, step: int, loss: Tensor, u: Tensor, pose: PoseParams, light_params: Tensor,
               offset: Tensor | None = None) -> None:
        better = loss < self.loss  # (B,)
        if not bool(better.any()):
            return
        self.loss = torch.where(better, loss, self.loss)
        self.step[better.cpu()] = step
        self.u[better] = u.detach()[better]
        for kept, now in zip(self.pose, pose.tensors()):
            kept[better] = now.detach()[better]
        self.light[better] = light_params.detach()[better]
        if offset is not None:
            self.offset[better] = offset.detach()[better]
