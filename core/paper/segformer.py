"""SegFormer (Xie et al. 2021): the Mix Transformer (MiT) backbone and its all-MLP decoder.

The paper's encoder runs on a MiT-B5 SegFormer. Parameter names follow the reference code
(google-research/nerf-from-image ``models/segformer.py``), so its checkpoints load as they are:

    patch_embed{k}.proj / .norm                       overlapping patch embedding of stage k (1..4)
    block{k}.{j}.norm1 / .attn.{q,kv,proj,sr,norm}    efficient self-attention of block j
    block{k}.{j}.norm2 / .mlp.{fc1,dwconv.dwconv,fc2} Mix-FFN (3x3 depthwise conv between the linears)
    norm{k}                                           stage output norm
    linear_c{k}.proj, linear_fuse, linear_pred        the decoder

Tokens are kept as (B, N, C) sequences with N = h * w in row-major order; every layer that needs the
2D layout receives ``(h, w)`` explicitly. Only the per-layer LayerNorm epsilons differ between the
places they occur (1e-5 in the patch embedding and key/value reduction, 1e-6 in the blocks and stage
outputs); they are kept as in the reference.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PaperConfig


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero a whole sample's residual branch with probability ``p`` (training only).

    x (B, ...) -> (B, ...), survivors scaled by 1 / (1 - p).
    """
    if p == 0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class SegDWConv(nn.Module):
    """3x3 depthwise convolution over a token sequence laid out as an (h, w) grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        """tokens (B, h*w, C) -> (B, h*w, C)."""
        grid = tokens.transpose(1, 2).unflatten(2, hw)  # (B, C, h, w)
        return self.dwconv(grid).flatten(2).transpose(1, 2)


class SegMLP(nn.Module):
    """Mix-FFN: linear, depthwise 3x3 conv (the positional cue), GELU, linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = SegDWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        """tokens (B, h*w, C) -> (B, h*w, C)."""
        return self.fc2(F.gelu(self.dwconv(self.fc1(tokens), hw)))


class SegAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a grid shrunk ``sr_ratio`` times
    per side by a strided convolution (the "efficient self-attention" of MiT)."""

    def __init__(self, dim: int, heads: int, sr_ratio: int):
        super().__init__()
        self.heads = heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        """output channels: all heads' keys, then all heads' values."""
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def _split_heads(self, x: Tensor) -> Tensor:
        """(B, N, heads * d) -> (B, heads, N, d)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        """tokens (B, h*w, C) -> (B, h*w, C)."""
        context = tokens
        if self.sr_ratio > 1:
            grid = tokens.transpose(1, 2).unflatten(2, hw)  # (B, C, h, w)
            context = self.norm(self.sr(grid).flatten(2).transpose(1, 2))  # (B, h*w / sr^2, C)
        keys, values = self.kv(context).chunk(2, dim=-1)
        # the default scale, 1 / sqrt(head width), is the reference's
        out = F.scaled_dot_product_attention(self._split_heads(self.q(tokens)), self._split_heads(keys),
                                             self._split_heads(values))
        return self.proj(out.transpose(1, 2).flatten(2))


class SegBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, sr_ratio: int, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SegAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SegMLP(dim, dim * mlp_ratio)

    def forward(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        """tokens (B, h*w, C) -> (B, h*w, C)."""
        tokens = tokens + drop_path(self.attn(self.norm1(tokens), hw), self.drop_path, self.training)
        return tokens + drop_path(self.mlp(self.norm2(tokens), hw), self.drop_path, self.training)


class SegOverlapPatchEmbed(nn.Module):
    """Strided convolution with overlapping windows (7x7 stride 4 for stage 1, 3x3 stride 2 after),
    then LayerNorm over channels."""

    def __init__(self, cin: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, kernel_size=kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, grid: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """grid (B, Cin, H, W) -> tokens (B, h*w, dim) and (h, w)."""
        x = self.proj(grid)
        return self.norm(x.flatten(2).transpose(1, 2)), (x.shape[2], x.shape[3])


class SegLinearMLP(nn.Module):
    """The decoder's per-stage linear projection, applied to every pixel of a feature map."""

    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(cin, dim)

    def forward(self, grid: Tensor) -> Tensor:
        """grid (B, Cin, h, w) -> (B, dim, h, w)."""
        return self.proj(grid.movedim(1, -1)).movedim(-1, 1)


class Segformer(nn.Module):
    """MiT backbone (four stages at 1/4, 1/8, 1/16, 1/32 of the input) and all-MLP decoder.

    Input (B, in_channels, H, W); output (B, cfg.encoder_features, ceil(H/4), ceil(W/4)) float32. The
    sizes are ``cfg``'s ``encoder_*`` fields (their defaults: MiT-B5 with the reference's 768-wide decoder).
    """

    def __init__(self, cfg: PaperConfig, in_channels: int = 3, drop_path_rate: float = 0.1):
        super().__init__()
        dims, heads, depths, sr_ratios = cfg.encoder_dims, cfg.encoder_heads, cfg.encoder_depths, cfg.encoder_sr_ratios
        mlp_ratio, decoder_dim, out_features = cfg.encoder_mlp_ratio, cfg.encoder_decoder_dim, cfg.encoder_features
        if not len(dims) == len(heads) == len(depths) == len(sr_ratios) == 4:
            raise ValueError("SegFormer has four stages: dims, heads, depths and sr_ratios need 4 entries each")
        # stochastic depth grows linearly over all blocks of all stages (training only)
        n = sum(depths)
        rates = iter([drop_path_rate * i / max(n - 1, 1) for i in range(n)])
        # registered in the reference's order, so even the state dict's key order matches
        for k in range(4):
            cin = in_channels if k == 0 else dims[k - 1]
            setattr(self, f"patch_embed{k + 1}",
                    SegOverlapPatchEmbed(cin, dims[k], kernel=7 if k == 0 else 3, stride=4 if k == 0 else 2))
        for k in range(4):
            setattr(self, f"block{k + 1}", nn.ModuleList(
                SegBlock(dims[k], heads[k], mlp_ratio, sr_ratios[k], next(rates)) for _ in range(depths[k])))
            setattr(self, f"norm{k + 1}", nn.LayerNorm(dims[k], eps=1e-6))
        for k in reversed(range(4)):
            setattr(self, f"linear_c{k + 1}", SegLinearMLP(dims[k], decoder_dim))
        self.linear_fuse = nn.Conv2d(4 * decoder_dim, decoder_dim, kernel_size=1)
        self.linear_pred = nn.Conv2d(decoder_dim, out_features, kernel_size=1)

    def stage(self, k: int) -> tuple[SegOverlapPatchEmbed, nn.ModuleList, nn.LayerNorm, SegLinearMLP]:
        """The modules of stage k (0..3): patch embedding, blocks, output norm, decoder projection."""
        return (getattr(self, f"patch_embed{k + 1}"), getattr(self, f"block{k + 1}"),
                getattr(self, f"norm{k + 1}"), getattr(self, f"linear_c{k + 1}"))

    def encode(self, image: Tensor) -> list[Tensor]:
        """image (B, Cin, H, W) -> the four stage outputs, (B, dims[k], H / 2^(k+2), W / 2^(k+2))."""
        features = []
        x = image
        for k in range(4):
            embed, blocks, norm, _ = self.stage(k)
            tokens, hw = embed(x)
            for block in blocks:
                tokens = block(tokens, hw)
            x = norm(tokens).transpose(1, 2).unflatten(2, hw).contiguous()
            features.append(x)
        return features

    def decode(self, features: list[Tensor]) -> Tensor:
        """The four stage outputs -> (B, out_features, h1, w1), at the resolution of the first stage.

        Each stage is projected to decoder_dim, bilinearly resized to stage 1, concatenated deepest
        first, fused by a 1x1 conv (no activation) and predicted by another 1x1 conv.
        """
        size = features[0].shape[2:]
        maps = []
        for k in reversed(range(4)):
            m = self.stage(k)[3](features[k])
            if k > 0:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            maps.append(m)
        return self.linear_pred(self.linear_fuse(torch.cat(maps, dim=1)))

    def forward(self, image: Tensor) -> Tensor:
        """image (B, Cin, H, W) -> features (B, out_features, h1, w1) float32, h1 = ceil(H / 4)."""
        return self.decode(self.encode(image)).float()
