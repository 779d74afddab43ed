"""StyleGAN2 building blocks in the form the paper's generator uses them (google-research/nerf-from-image).

Equalized-learning-rate linear layers, the z -> w mapping network, and the synthesis network that turns
per-layer styles into the triplane image: modulated 3x3 convolutions with weight demodulation, 2x
up-sampling through a transposed convolution followed by the [1, 3, 3, 1] resampling filter, constant
("frozen") per-pixel noise, and the skip architecture whose 1x1 output layers add up over resolutions.

Parameter and buffer names follow the reference modules exactly (``affine``, ``weight``, ``bias``,
``noise_const``, ``noise_strength``, ``resample_filter``, ``const``, ``torgb``, ``b4`` ... ``b256``,
``fc0`` ...), so a reference ``state_dict`` loads as is. The code itself is written from the math.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2
"""negative slope of every leaky ReLU of the network."""

LRELU_GAIN = math.sqrt(2.0)
"""gain that keeps the signal variance through a leaky ReLU (StyleGAN's ``act_gain``)."""


def resampling_filter() -> Tensor:
    """The separable binomial filter [1, 3, 3, 1] as a normalized 4x4 kernel (sums to 1): (4, 4)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = taps[:, None] * taps[None, :]
    return kernel / kernel.sum()


def _filter_channels(x: Tensor, kernel: Tensor, stride: int, transpose: bool) -> Tensor:
    """Apply one 2D kernel to every channel separately (padding 1).

    x (B, C, H, W), kernel (k, k) -> (B, C, H', W'); ``transpose`` runs a transposed convolution
    (up-sampling by ``stride``) instead of a correlation.
    """
    b, c, h, w = x.shape
    planes = x.reshape(b * c, 1, h, w)
    k = kernel[None, None].to(x.dtype)
    out = (F.conv_transpose2d if transpose else F.conv2d)(planes, k, stride=stride, padding=1)
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


def upsample_2x(x: Tensor, kernel: Tensor) -> Tensor:
    """2x up-sampling by zero insertion and the resampling filter (gain 4 keeps the mean): (B, C, H, W) ->
    (B, C, 2H, 2W)."""
    return _filter_channels(x, kernel * 4, stride=2, transpose=True)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, up: bool = False,
                     kernel: Tensor | None = None) -> Tensor:
    """StyleGAN2 modulated convolution, in the "non-fused" order (scale the input, convolve with the
    shared weight, scale the output).

    x (B, Cin, H, W); weight (Cout, Cin, k, k); styles (B, Cin). With ``demodulate`` every output channel
    is divided by the norm of its style-scaled kernel (plus 1e-8). ``up`` doubles the resolution: a
    stride-2 transposed convolution, then the resampling ``kernel`` (4, 4) with gain 4 (k must be 3).
    Returns (B, Cout, H', W'), H' = H or 2H.
    """
    b = x.shape[0]
    x = x * styles[:, :, None, None]
    if up:
        x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # (B, Cout, 2H + 1, 2W + 1)
        x = _filter_channels(x, kernel * 4, stride=1, transpose=False)  # -> (B, Cout, 2H, 2W)
    else:
        x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
    if demodulate:
        styled = weight[None] * styles[:, None, :, None, None]  # (B, Cout, Cin, k, k)
        scale = (styled.square().sum(dim=(2, 3, 4)) + 1e-8).rsqrt()  # (B, Cout)
        x = x * scale.reshape(b, -1, 1, 1)
    return x


class EqualizedLinear(nn.Module):
    """Linear layer with equalized learning rate: weights stored as N(0, 1) / lr_multiplier and scaled by
    lr_multiplier / sqrt(in_features) at run time; the bias is scaled by lr_multiplier.

    ``activate``: leaky ReLU with gain sqrt(2) after the layer. ``bias_init`` is the initial bias value
    (StyleGAN's affine layers start at 1 so that the styles start at 1).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activate: bool = False,
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activate = activate
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> (..., out_features)."""
        bias = None if self.bias is None else self.bias * self.bias_gain
        x = F.linear(x, self.weight * self.weight_gain, bias)
        if self.activate:
            x = F.leaky_relu(x * LRELU_GAIN, LRELU_SLOPE)
        return x


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> ws (B, num_ws, w_dim): z normalized to unit second moment, then ``num_layers``
    activated equalized layers with learning-rate multiplier 0.01 (named fc0, fc1, ...); the one w is
    repeated for every synthesis layer. (Unconditional only: no label embedding.)"""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 2, lr_multiplier: float = 0.01):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        for i in range(num_layers):
            self.add_module(f"fc{i}", EqualizedLinear(z_dim if i == 0 else w_dim, w_dim, activate=True,
                                                      lr_multiplier=lr_multiplier))

    def forward(self, z: Tensor) -> Tensor:
        """z (B, z_dim) -> ws (B, num_ws, w_dim)."""
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x[:, None].repeat(1, self.num_ws, 1)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up-sampling) + constant noise + bias + leaky ReLU.

    The noise is always the stored per-pixel map ``noise_const`` (R, R) times the learned
    ``noise_strength`` (the reference's noise_mode='const'), so the layer is deterministic.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.register_buffer("resample_filter", resampling_filter())
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """x (B, Cin, R or R/2, ...), w (B, w_dim) -> (B, Cout, R, R)."""
        # The weight needs no equalization gain: demodulation divides it out (up to the 1e-8).
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=True, up=self.up,
                             kernel=self.resample_filter)
        x = x + self.noise_const * self.noise_strength
        x = (x + self.bias[None, :, None, None]) * LRELU_GAIN
        return F.leaky_relu(x, LRELU_SLOPE)


class OutputLayer(nn.Module):
    """Modulated 1x1 convolution without demodulation (StyleGAN's "toRGB"; here it outputs plane features)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """x (B, Cin, R, R), w (B, w_dim) -> (B, Cout, R, R)."""
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return x + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network.

    The first block (4x4) starts from the learned ``const`` and has one convolution; every other block
    up-samples with ``conv0`` and refines with ``conv1``. Each block adds its ``torgb`` output to the
    up-sampled output of the blocks before it. It reads ``num_ws`` = convolutions + 1 style vectors.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, out_features: int):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", resampling_filter())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = OutputLayer(out_channels, out_features, w_dim)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, Cin, R/2, R/2) features or None (first block); img (B, F, R/2, R/2) accumulated output or
        None; ws (B, num_conv + 1, w_dim) -> features (B, Cout, R, R), output (B, F, R, R)."""
        if self.in_channels == 0:
            x = self.const[None].repeat(ws.shape[0], 1, 1, 1)
        else:
            x = self.conv0(x, ws[:, 0])
        x = self.conv1(x, ws[:, self.num_conv - 1])
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else upsample_2x(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Per-layer styles ws (B, num_ws, w_dim) -> image (B, out_features, R, R), StyleGAN2 skip architecture.

    One block per resolution 4, 8, ..., R (attributes b4 ... bR), min(channel_base // r, channel_max)
    channels at resolution r. Consecutive blocks share one style vector: the torgb style of a block is
    the conv0 style of the next. num_ws = 2 log2(R) - 2 (14 at 256).
    """

    def __init__(self, w_dim: int, resolution: int, out_features: int, channel_base: int = 32768,
                 channel_max: int = 512):
        super().__init__()
        self.resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        if self.resolutions[-1] != resolution:
            raise ValueError(f"synthesis resolution {resolution} must be a power of two >= 4")
        width = {r: min(channel_base // r, channel_max) for r in self.resolutions}
        for r in self.resolutions:
            self.add_module(f"b{r}", SynthesisBlock(width[r // 2] if r > 4 else 0, width[r], w_dim, r, out_features))
        self.num_ws = 2 * len(self.resolutions)

    def forward(self, ws: Tensor) -> Tensor:
        """ws (B, num_ws, w_dim) -> (B, out_features, R, R)."""
        x = img = None
        first = 0
        for r in self.resolutions:
            block = getattr(self, f"b{r}")
            x, img = block(x, img, ws[:, first:first + block.num_conv + 1])
            first += block.num_conv
        return img
