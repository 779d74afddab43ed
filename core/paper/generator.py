"""The paper's generator (google-research/nerf-from-image, ``models/generator.py``), written anew.

z -> w (mapping network) -> triplanes (StyleGAN2 synthesis network, 3 x 32 channels at 256^2) -> at a point:
the mean of its bilinear samples on the XY, XZ and YZ planes -> a softplus MLP -> a signed distance and
K colour logits. The colour is the softmax of the logits over K slot colours that a separate network
(the "attention mapper") derives from the last style vector; with K = 0 the MLP outputs RGB directly.
Density is VolSDF's: (1 / alpha) * LaplaceCDF(-distance; beta), zero outside the scene box.

Two faces:

- the reference frame (``ws_from_z``, ``synthesize``, ``slot_colors``, ``sample_reference``): scene
  units and axes of the reference code, RGB in [-1, 1]; the parity tests compare these with it;
- the pipeline (``cfg``, ``mapping_ws``, ``decode``, ``query``, ``beta``, ``density``): the interface of
  :class:`core.field.generator.Generator` in this project's canonical frame, where the scene box is
  [-bound, bound]^3 and a canonical point p is the reference point q = s R p (s = scene_range / bound,
  R = ``PaperConfig.frame``), so the renderer, the inversion and the mesh extraction run unchanged.

``state_dict()`` has exactly the reference ``Generator(..., use_sdf=True)`` keys plus ``w_avg`` and
``w_std``; a reference ``model_ema`` without those two loads strictly (they keep their values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PaperConfig
from ..errors import ReconstructionError
from ..field.generator import FieldSample, FieldSpec, FieldState
from .layers import LRELU_SLOPE, EqualizedLinear, MappingNetwork, SynthesisNetwork

SYNTHESIS_WS = 14
"""style vectors the 256^2 synthesis network reads; with colour slots one more drives the slot colours."""

_RENAMED = {"beta": "laplace_beta", "alpha": "laplace_alpha"}
"""reference parameter name -> attribute here (``beta`` is taken by the pipeline's beta in our units)."""

_OWN_BUFFERS = ("w_avg", "w_std")
"""buffers of ours that a reference checkpoint does not have."""


@dataclass
class ReferenceSample:
    """Field values at points given in the reference frame (reference units, RGB in [-1, 1])."""

    distance: Tensor
    """(B, N) signed distance, negative inside."""
    sigma: Tensor
    """(B, N) VolSDF density per reference unit length, zero outside the scene box."""
    rgb: Tensor
    """(B, N, 3) colour in [-1, 1]."""
    semantics: Tensor | None
    """(B, N, K) softmax weights over the K colour slots; None when K = 0."""


def wide_sigmoid(x: Tensor) -> Tensor:
    """MipNeRF's widened sigmoid rescaled to [-1.002, 1.002]: elementwise."""
    return torch.sigmoid(x) * 2.004 - 1.002


def laplace_cdf(x: Tensor, beta: Tensor | float) -> Tensor:
    """CDF of a zero-mean Laplace distribution of scale ``beta``: elementwise."""
    return 0.5 + 0.5 * torch.sign(x) * (1 - torch.exp(-x.abs() / beta))


class ConditionalLayerNorm(nn.Module):
    """LayerNorm without affine parameters, then a scale (1 + gamma) and shift beta predicted from w."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.channels = channels
        self.fc_gamma = EqualizedLinear(w_dim, channels)
        self.fc_beta = EqualizedLinear(w_dim, channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """x (B, C), w (B, w_dim) -> (B, C)."""
        x = F.layer_norm(x, (self.channels,))
        return self.fc_beta(w) + (1 + self.fc_gamma(w)) * x


class AttentionMapper(nn.Module):
    """w (B, w_dim) -> K slot colours (B, K, 3) in [-1, 1].

    A learned constant goes through two residual pairs of bias-free layers with w-conditioned layer norms
    (fc1-fc4, norm1-norm4), one more layer (fc5), and a linear head (fc_values) squashed by the wide sigmoid.
    """

    def __init__(self, w_dim: int, num_values: int, hidden: int = 512):
        super().__init__()
        self.num_values = num_values
        self.const = nn.Parameter(torch.randn(1, hidden))
        for i in range(1, 5):
            self.add_module(f"fc{i}", EqualizedLinear(hidden, hidden, bias=False))
            self.add_module(f"norm{i}", ConditionalLayerNorm(hidden, w_dim))
        self.fc5 = EqualizedLinear(hidden, hidden)
        self.fc_values = EqualizedLinear(hidden, 3 * num_values)

    def forward(self, w: Tensor) -> Tensor:
        """w (B, w_dim) -> (B, K, 3)."""
        x = self.const.expand(w.shape[0], -1)
        for first in (1, 3):
            shortcut = x
            for i in (first, first + 1):
                x = getattr(self, f"norm{i}")(getattr(self, f"fc{i}")(x), w)
                x = F.leaky_relu(x, LRELU_SLOPE)
            x = (x + shortcut) * (math.sqrt(2) / 2)
        x = F.leaky_relu(self.fc5(x), LRELU_SLOPE)
        return wide_sigmoid(self.fc_values(x).reshape(-1, self.num_values, 3))


class TriplanarDecoder(nn.Module):
    """Mean triplane feature (B, N, C) -> (B, N, 1 + F): distance (or density) first, then F colour features.

    ``net`` is equalized linear, softplus, equalized linear (the reference's ``decoder.net.0`` / ``.2``).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(EqualizedLinear(in_features, hidden), nn.Softplus(),
                                 EqualizedLinear(hidden, 1 + out_features))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


def sample_planes(planes: Tensor, coords: Tensor) -> Tensor:
    """Mean of the bilinear samples of the three planes at normalized coordinates.

    planes (B, 3, C, R, R) in the order XY, XZ, YZ; coords (B, N, 3) in [-1, 1] (reference axes, divided
    by the scene range) -> (B, N, C). Plane p is indexed by the coordinate pair (0, 1), (0, 2), (1, 2):
    the first of the pair runs along the plane's width, the second along its height; corners are texel
    centres (align_corners=True) and points beyond the border take the border value.
    """
    b, _, c, r, _ = planes.shape
    grid = torch.stack([coords[..., [0, 1]], coords[..., [0, 2]], coords[..., [1, 2]]], dim=1)  # (B, 3, N, 2)
    feats = F.grid_sample(planes.reshape(b * 3, c, r, r), grid.reshape(b * 3, 1, -1, 2), mode="bilinear",
                          padding_mode="border", align_corners=True)  # (B*3, C, 1, N)
    feats = feats.reshape(b, 3, c, -1)
    return ((feats[:, 0] + feats[:, 1] + feats[:, 2]) / 3).transpose(1, 2)


class PaperGenerator(nn.Module):
    """The paper's triplane SDF generator; see the module docstring for its two faces."""

    lit = False
    """its colours are radiance with the light baked in: the inversion shows them unshaded."""
    recolorable = False
    """its slots mix after the sigmoid, not as core.parts models them: meshes get plain vertex colours."""

    def __init__(self, cfg: PaperConfig, bound: float = 1.0):
        super().__init__()
        frame = torch.tensor(cfg.frame, dtype=torch.float64).reshape(3, 3)
        if not torch.allclose(frame @ frame.T, torch.eye(3, dtype=torch.float64), atol=1e-5):
            raise ReconstructionError(f"setting 'paper.frame' {tuple(cfg.frame)} is not a rotation: its rows must be "
                                      "orthonormal (re-import the model with valid up / front axes)")
        self.paper = cfg
        k = cfg.attention_values
        num_ws = SYNTHESIS_WS + (1 if k > 0 else 0)
        self.cfg = FieldSpec(bound=float(bound), num_ws=num_ws, w_dim=cfg.w_dim, z_dim=cfg.latent_dim,
                             plane_res=cfg.plane_res, plane_channels=cfg.plane_channels)
        self.scene_range = float(cfg.scene_range)
        self.scale = self.scene_range / float(bound)
        """s: reference units per canonical unit."""
        # the reference wraps its mapping network in a module holding it as ``backbone``
        self.mapping_network = nn.ModuleDict({"backbone": MappingNetwork(cfg.latent_dim, cfg.w_dim, num_ws,
                                                                         cfg.mapping_layers)})
        self.synthesis_network = SynthesisNetwork(cfg.w_dim, cfg.plane_res, 3 * cfg.plane_channels,
                                                  cfg.channel_base, cfg.channel_max)
        if self.synthesis_network.num_ws != SYNTHESIS_WS:
            raise ReconstructionError(f"setting 'paper.plane_res' is {cfg.plane_res}: the paper's generator has "
                                      f"{SYNTHESIS_WS} synthesis style vectors, i.e. 256^2 planes")
        self.decoder = TriplanarDecoder(cfg.plane_channels, k if k > 0 else 3, cfg.decoder_hidden)
        self.laplace_beta = nn.Parameter(torch.tensor([0.1]))
        """VolSDF Laplace scale beta (1,), reference units (checkpoint key 'beta')."""
        self.laplace_alpha = nn.Parameter(torch.tensor([1.0]))
        """VolSDF density is LaplaceCDF / alpha (1,) (checkpoint key 'alpha')."""
        if k > 0:
            self.texture_mapper = AttentionMapper(cfg.w_dim, k, cfg.attention_hidden)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.register_buffer("w_std", torch.ones(cfg.w_dim))
        self.register_buffer("frame", frame.float(), persistent=False)
        """R (3, 3): reference axes of the canonical axes, q = s R p."""
        self.register_state_dict_post_hook(_reference_names)
        self.register_load_state_dict_pre_hook(_own_names)

    # -- reference frame ---------------------------------------------------------------------------
    def ws_from_z(self, z: Tensor) -> Tensor:
        """z (B, latent_dim) -> ws (B, num_ws, w_dim) (the same w repeated)."""
        return self.mapping_network["backbone"](z)

    def synthesize(self, ws: Tensor) -> Tensor:
        """ws (B, num_ws, w_dim) -> planes (B, 3, plane_channels, R, R) in the order XY, XZ, YZ."""
        img = self.synthesis_network(ws[:, :SYNTHESIS_WS])
        b, _, r, _ = img.shape
        return img.reshape(b, 3, self.cfg.plane_channels, r, r)

    def slot_colors(self, ws: Tensor) -> Tensor | None:
        """ws (B, num_ws, w_dim) -> the K slot colours (B, K, 3) in [-1, 1] (from the last w); None when K = 0."""
        if self.paper.attention_values == 0:
            return None
        return self.texture_mapper(ws[:, SYNTHESIS_WS])

    def sample_reference(self, planes: Tensor, slot_colors: Tensor | None, x: Tensor) -> ReferenceSample:
        """The field at points x (B, N, 3) in reference units and axes; planes (B, 3, C, R, R),
        slot_colors (B, K, 3) or None (K = 0)."""
        coords = x / self.scene_range
        inside = (coords.abs() <= 1).all(dim=-1)
        out = self.decoder(sample_planes(planes, coords))  # (B, N, 1 + F)
        distance = out[..., 0]
        sigma = (1 / self.laplace_alpha) * (laplace_cdf(-distance, self.laplace_beta) * inside)
        if self.paper.attention_values == 0:
            return ReferenceSample(distance, sigma, wide_sigmoid(out[..., 1:]), None)
        semantics = torch.softmax(out[..., 1:], dim=-1)
        return ReferenceSample(distance, sigma, semantics @ slot_colors, semantics)

    # -- pipeline (canonical frame) ----------------------------------------------------------------
    def to_reference(self, points: Tensor) -> Tensor:
        """Canonical points (..., 3) -> reference points q = s R p (..., 3)."""
        return self.scale * (points @ self.frame.T.to(points.dtype))

    def mapping_ws(self, z: Tensor) -> Tensor:
        """z (B, z_dim) -> ws (B, num_ws, w_dim), the same w for every layer."""
        return self.ws_from_z(z)

    def decode(self, ws: Tensor, plane_offset: Tensor | None = None) -> FieldState:
        """ws (B, num_ws, w_dim) or (B, w_dim) -> field state: planes (B, 3, C, R, R) (plus ``plane_offset``
        of the same shape) and the slot colours (B, K, 3) in [-1, 1] ((B, 1, 3) zeros when K = 0)."""
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.cfg.num_ws, -1)
        planes = self.synthesize(ws)
        if plane_offset is not None:
            planes = planes + plane_offset
        colors = self.slot_colors(ws)
        if colors is None:
            colors = planes.new_zeros(ws.shape[0], 1, 3)
        return FieldState(planes, colors)

    def query(self, state: FieldState, points: Tensor, with_color: bool = True,
              with_weights: bool = False) -> FieldSample:
        """SDF (canonical units) and albedo in [0, 1] at canonical points (B, N, 3).

        ``with_weights`` adds the slot weights (B, N, K), with albedo = (weights @ state.color_values + 1) / 2
        (None when K = 0, where there are no slots).
        """
        colors = state.color_values if self.paper.attention_values > 0 else None
        ref = self.sample_reference(state.planes, colors, self.to_reference(points))
        rgb = (ref.rgb + 1) / 2 if with_color else None
        return FieldSample(ref.distance / self.scale, rgb, ref.semantics if with_weights else None)

    @property
    def beta(self) -> Tensor:
        """VolSDF beta in canonical units: 0-dim."""
        return self.laplace_beta.reshape(()) / self.scale

    def density(self, sdf: Tensor, points: Tensor, beta: Tensor | float | None = None) -> Tensor:
        """Density per canonical unit length: s (1 / alpha) LaplaceCDF(-s sdf; s beta), zero outside the scene
        box. sdf (...), points (..., 3) canonical; ``beta`` in canonical units (None: the model's)."""
        beta_ref = self.laplace_beta if beta is None else beta * self.scale
        inside = (points.abs() <= self.cfg.bound).all(dim=-1) & (self.to_reference(points).abs()
                                                                 <= self.scene_range).all(dim=-1)
        sigma = (1 / self.laplace_alpha) * (laplace_cdf(-sdf * self.scale, beta_ref) * inside)
        return self.scale * sigma


def _reference_names(module: nn.Module, state: dict, prefix: str, local_metadata: dict) -> None:
    """state_dict hook: our attribute names -> the reference's (``laplace_beta`` -> ``beta``, ...)."""
    for ref, own in _RENAMED.items():
        if prefix + own in state:
            state[prefix + ref] = state.pop(prefix + own)


def _own_names(module: nn.Module, state: dict, prefix: str, local_metadata: dict, strict: bool,
               missing: list, unexpected: list, errors: list) -> None:
    """load_state_dict pre-hook: the reference's names -> ours; w_avg / w_std absent: keep the current ones."""
    for ref, own in _RENAMED.items():
        if prefix + ref in state:
            state[prefix + own] = state.pop(prefix + ref)
    for name in _OWN_BUFFERS:
        state.setdefault(prefix + name, getattr(module, name))
