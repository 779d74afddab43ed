"""Parity fixture for ``core.paper.encoder``: the reference encoder's outputs on fixed weights and input.

The reference ``BootstrapEncoder`` (google-research/nerf-from-image ``models/encoder.py`` on
``models/segformer.py``) is imported from a checkout with its constants patched down to a tiny width
(:data:`REDUCED`), given seeded random weights and run on a seeded random image. Written to ``--out``:

- ``encoder.pt``: a checkpoint laid out like the reference's ``coords_checkpoints/*.pth``:
  ``{'model_coord': state dict with DataParallel's 'module.' prefix, 'iteration': int, 'lr': float}``
  (tensors only, so ``torch.load(..., weights_only=True)`` reads it).
- ``encoder_expected.safetensors``: ``input`` (B, 3, S, S) in [-1, 1] and the reference outputs
  ``coords`` (B, S, S, 3), ``segmentation`` (B, S, S), ``w`` (B, 1, w_dim).
- ``encoder_config.json``: the ``PaperConfig`` fields of the reduced model (w_dim, encoder_*).
- ``encoder_full_shapes.json``: every state-dict key of the full MiT-B5 reference encoder
  (w_dim 512) with its shape, in order, so a test can check the default ``PaperConfig`` layout
  without the reference code.

``--full`` also runs the unpatched full-width reference and ours on one random 128 x 128 image and
prints the largest differences (about a minute on a CPU; nothing is written for it).

    python -m training.paper.fixture_encoder --reference /work/ref --out tests/fixtures/paper [--full]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from core.config import PaperConfig
from core.paper.encoder import PaperEncoder

from .reference import load_reference

REDUCED = PaperConfig(w_dim=64, encoder_image_size=64, encoder_dims=(8, 16, 24, 32), encoder_heads=(1, 2, 3, 4),
                      encoder_depths=(1, 1, 2, 1), encoder_sr_ratios=(8, 4, 2, 1), encoder_mlp_ratio=4,
                      encoder_decoder_dim=32, encoder_features=32)
"""the fixture's encoder: MiT-B5's structure at a tiny width (w_dim 64 like the generator fixture)."""

BATCH = 2
"""images in the fixture input."""

CHECKPOINT_ITERATION = 120000
"""the 'iteration' stored in the fixture checkpoint (the reference trains the encoder this long)."""
CHECKPOINT_LR = 6e-6
"""the 'lr' stored in the fixture checkpoint (the reference's final learning rate)."""


def _tuple_text(values) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def reduced_patches(cfg: PaperConfig = REDUCED) -> dict[str, list[tuple[str, str]]]:
    """Text patches turning the reference MiT-B5 encoder into ``cfg``'s widths (its default arguments
    and the 512-channel heads). Every old text must exist, so a changed reference fails loudly."""
    full = PaperConfig()
    f = str(cfg.encoder_features)
    return {
        "models/segformer.py": [
            (f"embed_dims={_tuple_text(full.encoder_dims)}", f"embed_dims={_tuple_text(cfg.encoder_dims)}"),
            (f"num_heads={_tuple_text(full.encoder_heads)}", f"num_heads={_tuple_text(cfg.encoder_heads)}"),
            (f"depths={_tuple_text(full.encoder_depths)}", f"depths={_tuple_text(cfg.encoder_depths)}"),
            (f"sr_ratios={_tuple_text(full.encoder_sr_ratios)}", f"sr_ratios={_tuple_text(cfg.encoder_sr_ratios)}"),
            ("mlp_ratios=[4, 4, 4, 4]", f"mlp_ratios={_tuple_text([cfg.encoder_mlp_ratio] * 4)}"),
            ("decoder_dim=768,", f"decoder_dim={cfg.encoder_decoder_dim},"),
        ],
        "models/encoder.py": [
            ("segformer.init_segformer(\n            512,", f"segformer.init_segformer(\n            {f},"),
            ("nn.Conv2d(512, 512,", f"nn.Conv2d({f}, {f},"),
            ("nn.Conv2d(512, 4,", f"nn.Conv2d({f}, 4,"),
            ("nn.Linear(512, 512)", f"nn.Linear({f}, {f})"),
            ("nn.Linear(512, latent_dim)", f"nn.Linear({f}, latent_dim)"),
        ],
    }


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Seeded random weights that keep activations O(1): convs and linears ~ N(0, 2 / fan_in) (fan_in
    per group for depthwise convs), biases ~ N(0, 0.1^2), LayerNorm weight 1 + N(0, 0.2^2) and bias
    N(0, 0.1^2), so no parameter is at its trivial value. Modules are visited in registration order."""
    def normal(t: Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(mean + std * torch.randn(t.shape, generator=generator))

    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            normal(module.weight, 0.2, mean=1.0)
            normal(module.bias, 0.1)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            fan_in = module.weight[0].numel()
            normal(module.weight, (2.0 / fan_in) ** 0.5)
            if module.bias is not None:
                normal(module.bias, 0.1)


def _reference_encoder(modules: dict, w_dim: int, seed: int) -> nn.Module:
    model = modules["models.encoder"].BootstrapEncoder(w_dim, pose_regressor=True, latent_regressor=True,
                                                      separate_backbones=False, pretrained=False)
    randomize(model, torch.Generator().manual_seed(seed))
    return model.eval()


def config_dict(cfg: PaperConfig) -> dict:
    """The encoder fields of ``cfg`` (w_dim, encoder_*) as JSON-ready values."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()
            if k == "w_dim" or k.startswith("encoder_")}


def config_from_dict(values: dict) -> PaperConfig:
    """The PaperConfig that :func:`config_dict` wrote (other fields at their defaults)."""
    return PaperConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def build(checkout: str | Path, seed: int = 0) -> dict:
    """Run the reduced reference encoder on a fixed random input.

    Returns ``checkpoint`` (the dict saved as encoder.pt), ``expected`` (input (B, 3, S, S), coords
    (B, S, S, 3), segmentation (B, S, S), w (B, 1, w_dim); contiguous float32 tensors) and ``config``
    (:func:`config_dict` of :data:`REDUCED`).
    """
    modules = load_reference(checkout, reduced_patches(REDUCED))
    model = _reference_encoder(modules, REDUCED.w_dim, seed)
    size = REDUCED.encoder_image_size
    image = torch.rand((BATCH, 3, size, size), generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1
    with torch.no_grad():
        coords, segmentation, w = model(image)
    checkpoint = {"model_coord": {f"module.{k}": v.clone() for k, v in model.state_dict().items()},
                  "iteration": CHECKPOINT_ITERATION, "lr": CHECKPOINT_LR}
    expected = {"input": image, "coords": coords, "segmentation": segmentation, "w": w}
    return {"checkpoint": checkpoint, "expected": {k: v.float().contiguous() for k, v in expected.items()},
            "config": config_dict(REDUCED)}


def full_width_shapes(checkout: str | Path) -> dict[str, list[int]]:
    """Every state-dict key of the unpatched reference encoder (MiT-B5, w_dim 512), in order, with its shape."""
    modules = load_reference(checkout)
    model = modules["models.encoder"].BootstrapEncoder(PaperConfig().w_dim, pretrained=False)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def write(built: dict, shapes: dict[str, list[int]], out: str | Path) -> list[Path]:
    """Write the four fixture files into ``out``; returns their paths."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "encoder.pt", out / "encoder_expected.safetensors", out / "encoder_config.json",
             out / "encoder_full_shapes.json"]
    torch.save(built["checkpoint"], paths[0])
    save_file(built["expected"], str(paths[1]))
    paths[2].write_text(json.dumps(built["config"], indent=1) + "\n")
    paths[3].write_text(json.dumps(shapes, indent=0) + "\n")
    return paths


def compare_full(checkout: str | Path, seed: int = 0) -> dict[str, float]:
    """Full MiT-B5 width: the reference and our encoder on the same random weights and 128 x 128 image.

    Returns the largest absolute differences of coords, segmentation and w, and the outputs' largest
    magnitudes (to judge the differences against).
    """
    modules = load_reference(checkout)
    cfg = PaperConfig()
    reference = _reference_encoder(modules, cfg.w_dim, seed)
    ours = PaperEncoder(cfg).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    size = cfg.encoder_image_size
    image = torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1
    result = {}
    with torch.no_grad():
        start = time.perf_counter()
        expected = reference(image)
        result["seconds_reference"] = time.perf_counter() - start
        start = time.perf_counter()
        got = ours.reference_forward(image)
        result["seconds_ours"] = time.perf_counter() - start
    for name, a, b in zip(("coords", "segmentation", "w"), expected, got):
        result[f"{name}_max_abs_diff"] = (a - b).abs().max().item()
        result[f"{name}_max_abs"] = a.abs().max().item()
    return result


def _check_reduced(built: dict) -> dict[str, float]:
    """Our encoder on the built fixture: largest absolute differences per output."""
    model = PaperEncoder(config_from_dict(built["config"]))
    state = {k.removeprefix("module."): v for k, v in built["checkpoint"]["model_coord"].items()}
    model.load_state_dict(state, strict=True)
    expected = built["expected"]
    with torch.no_grad():
        got = model.eval().reference_forward(expected["input"])
    return {name: (expected[name] - g).abs().max().item() for name, g in zip(("coords", "segmentation", "w"), got)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.paper.fixture_encoder", description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True, help="a nerf-from-image checkout (with models/ and lib/)")
    parser.add_argument("--out", default="tests/fixtures/paper", help="folder for the fixture files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also compare at full MiT-B5 width (slow, writes nothing)")
    args = parser.parse_args(argv)

    built = build(args.reference, args.seed)
    paths = write(built, full_width_shapes(args.reference), args.out)
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    expected = built["expected"]
    print("reference outputs: coords |max| {:.3f}, segmentation range [{:.3f}, {:.3f}], w |max| {:.3f}".format(
        expected["coords"].abs().max().item(), expected["segmentation"].min().item(),
        expected["segmentation"].max().item(), expected["w"].abs().max().item()))
    print("reduced width, ours vs reference, max abs diff:", _check_reduced(built))
    if args.full:
        print("full width (MiT-B5), ours vs reference:", compare_full(args.reference, args.seed))


if __name__ == "__main__":
    main()
