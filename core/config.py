"""Model configuration dataclasses, stored as JSON beside the weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class GeneratorConfig:
    """Sizes of the triplane SDF radiance field (paper: 3 x 32 channels at 256^2; smaller here for CPU)."""

    z_dim: int = 64
    """size of the Gaussian latent code z."""
    w_dim: int = 128
    """size of one style vector w (the encoder predicts one, inversion optimizes one per layer)."""
    mapping_layers: int = 3
    """layers of the z -> w mapping MLP."""
    plane_res: int = 64
    """triplane resolution (pixels per side)."""
    plane_channels: int = 16
    """feature channels per plane."""
    synthesis_channels: tuple[int, ...] = (128, 96, 64, 32)
    """channels of the synthesis blocks at 8, 16, 32, 64 ... pixels (one block per entry, x2 upsampling each)."""
    plane_skips: bool = True
    """StyleGAN2 skip outputs: every synthesis resolution adds its own planes (coarse shape learns fast)."""
    plane_basis: int = 64
    """size of a learned triplane dictionary added to the synthesis output with coefficients from w (0: none)."""
    decoder_hidden: int = 64
    """hidden width of the point decoder MLP (softplus)."""
    color_k: int = 16
    """number of attention color slots K."""
    color_hidden: int = 128
    """hidden width of the w -> K colors mapping."""
    bound: float = 1.0
    """half side of the scene box [-bound, bound]^3."""
    beta_init: float = 0.01
    """initial VolSDF Laplace scale beta (scene units)."""
    sphere_radius: float = 0.5
    """the SDF is |p| - sphere_radius plus the network's output, so an untrained field is a sphere (paper)."""

    @property
    def num_ws(self) -> int:
        """number of per-layer style vectors: one per synthesis block, one for the planes, one for color."""
        return len(self.synthesis_channels) + 2


@dataclass
class RenderConfig:
    """Volume-rendering settings."""

    coarse_samples: int = 16
    """stratified samples per ray."""
    fine_samples: int = 16
    """importance samples per ray, drawn from the coarse weights."""
    coarse_beta: float = 0.04
    """wider Laplace scale used only to place the importance samples (finds thin parts)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """background color the model composites on (and inputs are composited on)."""
    chunk: int = 8192
    """rays per chunk; memory stays bounded at any resolution."""


@dataclass
class EncoderConfig:
    """Image -> canonical map, mask and w."""

    image_size: int = 64
    """input crop side in pixels (the canonical map comes out at the same size)."""
    channels: tuple[int, ...] = (16, 32, 64, 128, 192)
    """channels of the U-Net levels (each level halves the resolution)."""


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model from its safetensors file."""

    name: str = "chairs"
    """model name (what --model accepts)."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """generator sizes."""
    render: RenderConfig = field(default_factory=RenderConfig)
    """renderer settings."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """encoder sizes."""
    inversion_size: int = 64
    """side of the full-image render compared with the input during inversion."""
    patch_size: int = 16
    """side of the random patches (rendered at 2x inversion_size) in the inversion loss."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        def build(kind, values):
            names = {f.name: f for f in dataclasses.fields(kind)}
            kwargs = {}
            for key, value in values.items():
                if key not in names:
                    continue
                if isinstance(value, list):
                    value = tuple(value)
                kwargs[key] = value
            return kind(**kwargs)

        # models written before these options existed were built without them
        generator = {"plane_skips": False, "plane_basis": 0, **d.get("generator", {})}
        return cls(name=d.get("name", "chairs"),
                   generator=build(GeneratorConfig, generator),
                   render=build(RenderConfig, d.get("render", {})),
                   encoder=build(EncoderConfig, d.get("encoder", {})),
                   inversion_size=d.get("inversion_size", 64), patch_size=d.get("patch_size", 16))


def tiny_config() -> ModelConfig:
    """A very small model for fast tests."""
    return ModelConfig(name="tiny",
                       generator=GeneratorConfig(z_dim=16, w_dim=32, mapping_layers=2, plane_res=16,
                                                 plane_channels=8, synthesis_channels=(32, 16), plane_basis=4,
                                                 decoder_hidden=32, color_k=4, color_hidden=32),
                       render=RenderConfig(coarse_samples=12, fine_samples=12),
                       encoder=EncoderConfig(image_size=32, channels=(8, 16, 32)),
                       inversion_size=32, patch_size=8)
