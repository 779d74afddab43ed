"""Volume rendering of the SDF radiance field.

Rays are clipped to the scene box, sampled in two passes (stratified, then importance samples drawn
from a wider-beta estimate of the coarse weights so thin parts are found), and composited the NeRF
way with VolSDF density. Rendering is chunked over rays so memory stays bounded at any resolution.
Outputs are premultiplied by alpha; :mod:`core.shading` turns albedo into a shaded image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import RenderConfig
from ..geometry.camera import Camera, RayBundle, camera_rays, pixel_grid
from .generator import FieldState, RadianceField


@dataclass
class RayRender:
    """Per-ray outputs (premultiplied by alpha)."""

    albedo: Tensor
    """(B, R, 3) composited albedo, premultiplied (no background)."""
    alpha: Tensor
    """(B, R) accumulated opacity."""
    depth: Tensor
    """(B, R) expected distance along the ray, premultiplied."""
    coords: Tensor
    """(B, R, 3) expected canonical surface point, premultiplied."""
    normals: Tensor | None = None
    """(B, R, 3) composited SDF-gradient normals (world frame), only when asked for."""

    def reshape(self, *shape: int) -> "RayRender":
        """Reshape the ray axis, e.g. to (H, W)."""
        b = self.alpha.shape[0]
        return RayRender(self.albedo.reshape(b, *shape, 3), self.alpha.reshape(b, *shape),
                         self.depth.reshape(b, *shape), self.coords.reshape(b, *shape, 3),
                         None if self.normals is None else self.normals.reshape(b, *shape, 3))


def ray_box(rays: RayBundle, bound: float) -> tuple[Tensor, Tensor, Tensor]:
    """Entry and exit distances of rays through [-bound, bound]^3: near, far (B, R), hit mask (B, R)."""
    d = torch.where(rays.directions.abs() < 1e-9, torch.full_like(rays.directions, 1e-9), rays.directions)
    t0 = (-bound - rays.origins) / d
    t1 = (bound - rays.origins) / d
    near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=1e-4)
    far = torch.maximum(t0, t1).amin(dim=-1)
    hit = far > near
    far = torch.where(hit, far, near + 1e-3)
    return near, far, hit


def stratified(near: Tensor, far: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """n samples per ray in equal bins, jittered when a generator is given, else bin midpoints: (B, R, n)."""
    u = torch.arange(n, device=near.device, dtype=near.dtype)
    if generator is None:
        u = (u + 0.5).expand(*near.shape, n)
    else:
        u = u + torch.rand(*near.shape, n, generator=generator, device="cpu").to(near.device)
    return near[..., None] + (far - near)[..., None] * u / n


def sample_pdf(bins: Tensor, weights: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """Inverse-CDF samples from piecewise-constant weights.

    bins (B, R, S+1) edges, weights (B, R, S) -> samples (B, R, n).
    """
    pdf = weights + 1e-5
    pdf = pdf / pdf.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), pdf.cumsum(dim=-1)], dim=-1).clamp(max=1.0)
    if generator is None:
        u = ((torch.arange(n, device=bins.device, dtype=bins.dtype) + 0.5) / n).expand(*cdf.shape[:-1], n)
    else:
        u = torch.rand(*cdf.shape[:-1], n, generator=generator, device="cpu").to(bins.device)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.contiguous(), u, right=True).clamp(1, cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(-1, idx - 1), cdf.gather(-1, idx)
    b0, b1 = bins.gather(-1, idx - 1), bins.gather(-1, idx)
    frac = ((u - c0) / (c1 - c0).clamp(min=1e-8)).clamp(0, 1)
    return b0 + frac * (b1 - b0)


def composite_weights(sigma: Tensor, t: Tensor, far: Tensor) -> Tensor:
    """NeRF compositing weights from densities sigma (B, R, S) at sorted distances t (B, R, S)."""
    delta = torch.cat([t[..., 1:] - t[..., :-1], (far[..., None] - t[..., -1:]).clamp(min=1e-4)], dim=-1)
    alpha = 1 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + 1e-10], dim=-1), dim=-1)
    return alpha * trans[..., :-1]


def _near_surface(sdf_c: Tensor, t_c: Tensor, hit: Tensor, margin: float) -> Tensor:
    """(B, R) rays that may see the surface: some coarse sample lies within half the sample spacing
    plus ``margin`` of it (an SDF bounds the distance to the surface). The others pass at least
    ``margin`` away, where the density is below exp(-margin / beta) of its peak."""
    if margin < 0:
        return hit
    spacing = (t_c[..., -1] - t_c[..., 0]) / max(t_c.shape[-1] - 1, 1)
    return hit & (sdf_c.amin(dim=-1) <= 0.5 * spacing + margin)


def _gather_rays(x: Tensor, idx: Tensor) -> Tensor:
    """x (B, R, ...) -> the rays idx (B, K) of every batch item: (B, K, ...)."""
    return x.gather(1, idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(*idx.shape, *x.shape[2:]))


def _scatter_rays(values: Tensor, idx: Tensor, r: int) -> Tensor:
    """values (B, K, ...) at rays idx (B, K) -> (B, R, ...) with zeros elsewhere (differentiable)."""
    full = values.new_zeros(values.shape[0], r, *values.shape[2:])
    return full.scatter(1, idx.reshape(*idx.shape, *([1] * (values.dim() - 2))).expand_as(values), values)


def _render_chunk(gen: RadianceField, state: FieldState, rays: RayBundle, cfg: RenderConfig,
                  generator: torch.Generator | None, normals: bool) -> RayRender:
    bound = gen.cfg.bound
    near, far, hit = ray_box(rays, bound)
    o, d = rays.origins, rays.directions
    b, r = near.shape
    with torch.no_grad():
        t_c = stratified(near, far, cfg.coarse_samples, generator)
        pts = o[..., None, :] + d[..., None, :] * t_c[..., None]
        sdf_c = gen.query(state, pts.reshape(b, -1, 3), with_color=False).sdf.reshape(b, r, -1)
        w_c = composite_weights(gen.density(sdf_c, pts, beta=cfg.coarse_beta), t_c, far)
        mid = 0.5 * (t_c[..., 1:] + t_c[..., :-1])
        edges = torch.cat([near[..., None], mid, far[..., None]], dim=-1)
        t_f = sample_pdf(edges, w_c, cfg.fine_samples, generator)
        t_all, _ = torch.sort(torch.cat([t_c, t_f], dim=-1), dim=-1)
        keep = _near_surface(sdf_c, t_c, hit, cfg.empty_margin)
        k = int(keep.sum(dim=1).max())
    if k == 0:
        zeros = o.new_zeros(b, r)
        return RayRender(o.new_zeros(b, r, 3), zeros, zeros, o.new_zeros(b, r, 3),
                         o.new_zeros(b, r, 3) if normals else None)
    idx = None
    if k < r:  # the fine pass only on rays that may see the surface (the others stay transparent)
        idx = torch.argsort(keep.to(torch.int8), dim=1, descending=True, stable=True)[:, :k]
        o, d, t_all, far, hit = (_gather_rays(x, idx) for x in (o.expand_as(d), d, t_all, far, hit))
    out = _fine_pass(gen, state, o, d, t_all, far, hit, normals)
    if idx is None:
        return out
    return RayRender(*(None if x is None else _scatter_rays(x, idx, r)
                       for x in (out.albedo, out.alpha, out.depth, out.coords, out.normals)))


def _fine_pass(gen: RadianceField, state: FieldState, o: Tensor, d: Tensor, t_all: Tensor, far: Tensor, hit: Tensor,
               normals: bool) -> RayRender:
    """Composite the field at the sorted distances ``t_all`` (B, R, S) along rays o, d (B, R, 3)."""
    b, r = t_all.shape[:2]
    pts = o[..., None, :] + d[..., None, :] * t_all[..., None]  # (B, R, S, 3)
    flat = pts.reshape(b, -1, 3)
    if normals:
        flat = flat.detach().requires_grad_(True)
        with torch.enable_grad():
            sample = gen.query(state, flat)
            grad = torch.autograd.grad(sample.sdf.sum(), flat, create_graph=torch.is_grad_enabled())[0]
        grad = grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    else:
        sample = gen.query(state, flat)
    sdf = sample.sdf.reshape(b, r, -1)
    w = composite_weights(gen.density(sdf, pts), t_all, far) * hit[..., None]
    out = RayRender(albedo=(w[..., None] * sample.rgb.reshape(b, r, -1, 3)).sum(dim=2),
                    alpha=w.sum(dim=-1), depth=(w * t_all).sum(dim=-1),
                    coords=(w[..., None] * pts).sum(dim=2))
    if normals:
        out.normals = (w[..., None] * grad.reshape(b, r, -1, 3)).sum(dim=2)
    return out


def render_rays(gen: RadianceField, state: FieldState, rays: RayBundle, cfg: RenderConfig,
                generator: torch.Generator | None = None, normals: bool = False,
                chunk: int | None = None) -> RayRender:
    """Render rays (B, R) in chunks of ``chunk`` rays (default ``cfg.chunk``)."""
    chunk = chunk or cfg.chunk
    r = rays.origins.shape[1]
    parts = [_render_chunk(gen, state, RayBundle(rays.origins[:, i:i + chunk], rays.directions[:, i:i + chunk]),
                           cfg, generator, normals) for i in range(0, r, chunk)]
    if len(parts) == 1:
        return parts[0]
    cat = lambda name: torch.cat([getattr(p, name) for p in parts], dim=1)  # noqa: E731
    return RayRender(cat("albedo"), cat("alpha"), cat("depth"), cat("coords"),
                     cat("normals") if normals else None)


def render_image(gen: RadianceField, state: FieldState, camera: Camera, cfg: RenderConfig,
                 generator: torch.Generator | None = None, normals: bool = False,
                 chunk: int | None = None) -> RayRender:
    """Render every pixel of ``camera``: outputs shaped (B, H, W, ...)."""
    rays = camera_rays(camera, pixel_grid(camera.width, camera.height, camera.cam2world.device))
    out = render_rays(gen, state, rays, cfg, generator, normals, chunk)
    return out.reshape(camera.height, camera.width)


def patch_pixels(x0: Tensor, y0: Tensor, size: int, scale: float) -> Tensor:
    """Pixel centres of square patches: top-left corners x0, y0 (B,) in pixels of an image ``scale``
    times finer than the camera's -> (B, size*size, 2) in the camera's pixel units."""
    grid = pixel_grid(size, size, x0.device)  # (size*size, 2), centres at +0.5
    return (grid[None] + torch.stack([x0, y0], dim=-1)[:, None]) / scale
