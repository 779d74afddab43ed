"""The generator: w -> triplanes -> (SDF, color) at any 3D point.

EG3D-style triplanes from a StyleGAN2-like synthesis network (modulated convolutions with weight
demodulation), a small softplus MLP decoding the mean plane feature to a signed distance plus K
color logits, and the paper's attention color mapping (a separate MLP maps the last style vector
to K RGB values; color = softmax(logits) @ values). VolSDF density lives here too so every
consumer (renderer, mesh extraction, training) goes through one :func:`Generator.query`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import GeneratorConfig


@dataclass
class FieldState:
    """A decoded latent: everything needed to query the field at points."""

    planes: Tensor
    """(B, 3, C, R, R) triplane features (XY, XZ, YZ)."""
    color_values: Tensor
    """(B, K, 3) the K attention color values (pre-sigmoid)."""


@dataclass
class FieldSample:
    """Field values at query points."""

    sdf: Tensor
    """(B, N) signed distance, negative inside."""
    rgb: Tensor
    """(B, N, 3) albedo in [0, 1]."""
    weights: Tensor | None = None
    """(B, N, K) attention weights over the K color slots (softmax, rows sum to 1); only when asked."""


@dataclass
class FieldSpec:
    """The sizes the pipeline reads from ``generator.cfg`` (as :class:`core.config.GeneratorConfig` offers)."""

    bound: float
    """half side of the canonical scene box [-bound, bound]^3."""
    num_ws: int
    """style vectors per latent (14, +1 with colour slots)."""
    w_dim: int
    """size of one style vector."""
    z_dim: int
    """size of the Gaussian latent z."""
    plane_res: int
    """triplane resolution."""
    plane_channels: int
    """feature channels per plane."""


@runtime_checkable
class RadianceField(Protocol):
    """What the pipeline (encoder start, inversion, rendering, meshing) needs from a generator: this
    project's :class:`Generator` and the paper's :class:`core.paper.generator.PaperGenerator`."""

    cfg: GeneratorConfig | FieldSpec
    """the sizes the pipeline reads (bound, num_ws, w_dim, z_dim, plane_res, plane_channels)."""
    lit: bool
    """its colours are albedo, shaded by a fitted light; else radiance shown unshaded."""
    recolorable: bool
    """its colours are ``widened_sigmoid(weights @ color_values)``: meshes get recolorable parts."""
    w_avg: Tensor
    """(w_dim,) mean style vector; the inversion fits w in units of ``w_std`` around it."""
    w_std: Tensor

    def mapping_ws(self, z: Tensor) -> Tensor:
        """z (B, z_dim) -> ws (B, num_ws, w_dim)."""
        ...

    def decode(self, ws: Tensor, plane_offset: Tensor | None = None) -> FieldState:
        """ws (B, num_ws, w_dim) or (B, w_dim) -> field state (plus a fitted triplane offset)."""
        ...

    def query(self, state: FieldState, points: Tensor, with_color: bool = True,
              with_weights: bool = False) -> FieldSample:
        """SDF and albedo at canonical points (B, N, 3); the slot weights when asked."""
        ...

    @property
    def beta(self) -> Tensor:
        """VolSDF beta in canonical units."""
        ...

    def density(self, sdf: Tensor, points: Tensor, beta: Tensor | float | None = None) -> Tensor:
        """VolSDF density per canonical unit length, zero outside the scene box."""
        ...


class MappingNetwork(nn.Module):
    """z (B, z_dim) ~ N(0, I) -> w (B, w_dim) (no normalization of z: the training prior is a unit Gaussian)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        layers = []
        dim = cfg.z_dim
        for _ in range(cfg.mapping_layers):
            layers += [nn.Linear(dim, cfg.w_dim), nn.LeakyReLU(0.2)]
            dim = cfg.w_dim
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ModulatedConv(nn.Module):
    """StyleGAN2 modulated 3x3 (or 1x1) convolution with weight demodulation."""

    def __init__(self, w_dim: int, in_ch: int, out_ch: int, kernel: int = 3, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel) / math.sqrt(in_ch * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = nn.Linear(w_dim, in_ch)
        nn.init.zeros_(self.affine.weight)
        nn.init.ones_(self.affine.bias)
        self.demodulate = demodulate
        self.padding = kernel // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """x (B, Cin, H, W), w (B, w_dim) -> (B, Cout, H, W)."""
        b, cin, h, wd = x.shape
        style = self.affine(w)  # (B, Cin)
        weight = self.weight[None] * style[:, None, :, None, None]  # (B, Cout, Cin, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        out = F.conv2d(x.reshape(1, b * cin, h, wd), weight.reshape(-1, cin, *weight.shape[3:]),
                       padding=self.padding, groups=b)
        return out.reshape(b, -1, h, wd) + self.bias[None, :, None, None]


class SynthesisNetwork(nn.Module):
    """Per-layer styles ws (B, num_ws, w_dim) -> triplanes (B, 3, C, R, R)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        ch = cfg.synthesis_channels
        if 4 * 2 ** len(ch) != cfg.plane_res:
            raise ValueError(f"plane_res {cfg.plane_res} must be 4 * 2**len(synthesis_channels)")
        self.const = nn.Parameter(torch.randn(1, ch[0], 4, 4))
        self.blocks = nn.ModuleList()
        self.to_planes = nn.ModuleList()
        self.skips = cfg.plane_skips
        prev = ch[0]
        for i, c in enumerate(ch):
            self.blocks.append(ModulatedConv(cfg.w_dim, prev, c))
            if self.skips or i == len(ch) - 1:
                self.to_planes.append(ModulatedConv(cfg.w_dim, c, 3 * cfg.plane_channels, kernel=1, demodulate=False))
            prev = c
        self.plane_channels = cfg.plane_channels
        self.basis = None
        if cfg.plane_basis:  # learned triplane dictionary mixed by w: fine detail that trains like free planes
            self.basis = nn.Parameter(torch.randn(cfg.plane_basis, 3 * cfg.plane_channels, cfg.plane_res,
                                                  cfg.plane_res) * 0.1)
            self.basis_coef = nn.Linear(cfg.w_dim, cfg.plane_basis)

    def forward(self, ws: Tensor) -> Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        planes = None
        for i, block in enumerate(self.blocks):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(block(x, ws[:, i]), 0.2) * math.sqrt(2)
            if self.skips:  # StyleGAN2 "skip" output: every resolution adds to the upsampled planes
                out = self.to_planes[i](x, ws[:, i + 1])
                planes = out if planes is None else out + F.interpolate(
                    planes, scale_factor=2, mode="bilinear", align_corners=False)
        if not self.skips:
            planes = self.to_planes[0](x, ws[:, len(self.blocks)])
        if self.basis is not None:
            coef = self.basis_coef(ws[:, len(self.blocks)])
            planes = planes + torch.einsum("bk,kchw->bchw", coef, self.basis)
        b, _, r, _ = planes.shape
        return planes.reshape(b, 3, self.plane_channels, r, r)


def sample_triplanes(planes: Tensor, points: Tensor, bound: float) -> Tensor:
    """Mean of the bilinear samples of the three planes.

    planes (B, 3, C, R, R); points (B, N, 3) in [-bound, bound] -> features (B, N, C).
    Plane 0 is indexed by (x, y), plane 1 by (x, z), plane 2 by (y, z): every axis pair is used
    (EG3D's XY/XZ/ZX setup never samples YZ; see eg3d issues #30, #67).
    """
    b, _, c, r, _ = planes.shape
    p = points / bound
    coords = torch.stack([p[..., [0, 1]], p[..., [0, 2]], p[..., [1, 2]]], dim=1)  # (B, 3, N, 2)
    feats = F.grid_sample(planes.reshape(b * 3, c, r, r), coords.reshape(b * 3, 1, -1, 2),
                          mode="bilinear", padding_mode="border", align_corners=False)  # (B*3, C, 1, N)
    return feats.reshape(b, 3, c, -1).mean(dim=1).permute(0, 2, 1)


def widened_sigmoid(x: Tensor, eps: float = 0.001) -> Tensor:
    """sigmoid stretched to (-eps, 1 + eps) so that 0 and 1 are reachable (EG3D/paper)."""
    return torch.sigmoid(x) * (1 + 2 * eps) - eps


class Generator(nn.Module):
    """Latent -> SDF radiance field."""

    lit = True
    """its colours are albedo: the inversion shades them with a fitted light (core.field.shading)."""
    recolorable = True
    """its colours are ``widened_sigmoid(weights @ color_values)``: meshes get recolorable parts (core.parts)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg)
        self.synthesis = SynthesisNetwork(cfg)
        h = cfg.decoder_hidden
        self.decoder = nn.ModuleList([nn.Linear(cfg.plane_channels, h), nn.Linear(h, h),
                                      nn.Linear(h, 1 + cfg.color_k)])
        self.color_mapping = nn.ModuleList([nn.Linear(cfg.w_dim, cfg.color_hidden),
                                            nn.Linear(cfg.color_hidden, 3 * cfg.color_k)])
        self.slot_decoder = None
        if cfg.slot_hidden:  # the slot logits from their own MLP (the decoder's logit outputs are then unused)
            hs = cfg.slot_hidden
            self.slot_decoder = nn.ModuleList([nn.Linear(cfg.plane_channels, hs), nn.Linear(hs, hs),
                                               nn.Linear(hs, cfg.color_k)])
        with torch.no_grad():  # start as the sphere: the decoder's SDF output begins near zero
            self.decoder[2].weight[0].mul_(0.01)
            self.decoder[2].bias.zero_()
        self.log_beta = nn.Parameter(torch.tensor(math.log(cfg.beta_init)))
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.register_buffer("w_std", torch.ones(cfg.w_dim))

    # -- latents ---------------------------------------------------------------------------------
    def mapping_ws(self, z: Tensor) -> Tensor:
        """z (B, z_dim) -> ws (B, num_ws, w_dim), the same w for every layer."""
        return self.mapping(z)[:, None].expand(-1, self.cfg.num_ws, -1)

    def decode(self, ws: Tensor, plane_offset: Tensor | None = None) -> FieldState:
        """ws (B, num_ws, w_dim) or (B, w_dim) -> field state; ``plane_offset`` (B, 3, C, R, R), fitted by
        the inversion, is added to the synthesized triplanes."""
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.cfg.num_ws, -1)
        planes = self.synthesis(ws)
        if plane_offset is not None:
            planes = planes + plane_offset
        h = F.leaky_relu(self.color_mapping[0](ws[:, -1]), 0.2)
        values = self.color_mapping[1](h).reshape(ws.shape[0], self.cfg.color_k, 3)
        return FieldState(planes, values)

    # -- the one query path ----------------------------------------------------------------------
    def query(self, state: FieldState, points: Tensor, with_color: bool = True,
              with_weights: bool = False) -> FieldSample:
        """SDF and albedo at points (B, N, 3); used by rendering, training and marching cubes.

        ``with_weights`` also returns the color-slot weights (B, N, K): the albedo is exactly
        ``widened_sigmoid(weights @ state.color_values)`` (core.parts builds recolorable parts on it).
        """
        feats = sample_triplanes(state.planes, points, self.cfg.bound)
        x = F.softplus(self.decoder[0](feats))
        x = F.softplus(self.decoder[1](x))
        x = self.decoder[2](x)
        sdf = x[..., 0] + points.norm(dim=-1) - self.cfg.sphere_radius
        rgb = attention = None
        if with_color or with_weights:
            logits = x[..., 1:]
            if self.slot_decoder is not None:
                h = F.softplus(self.slot_decoder[0](feats))
                logits = self.slot_decoder[2](F.softplus(self.slot_decoder[1](h)))
            attention = torch.softmax(logits, dim=-1)  # (B, N, K)
        if with_color:
            rgb = widened_sigmoid(torch.einsum("bnk,bkc->bnc", attention, state.color_values))
        return FieldSample(sdf, rgb, attention if with_weights else None)

    @property
    def beta(self) -> Tensor:
        return self.log_beta.exp().clamp(min=1e-4)

    def density(self, sdf: Tensor, points: Tensor, beta: Tensor | float | None = None) -> Tensor:
        """VolSDF density alpha * LaplaceCDF(-sdf; beta) with alpha = 1/beta; zero outside the box."""
        beta = self.beta if beta is None else beta
        s = -sdf / beta
        cdf = torch.where(s <= 0, 0.5 * torch.exp(s.clamp(max=0)), 1 - 0.5 * torch.exp(-s.clamp(min=0)))
        inside = (points.abs() <= self.cfg.bound).all(dim=-1)
        return torch.where(inside, cdf / beta, torch.zeros_like(cdf))
