"""Parity fixture of the paper's generator: the reference code's outputs for fixed weights and inputs.

Builds the reference ``Generator`` (google-research/nerf-from-image, imported from a local checkout by
:func:`training.paper.reference.load_reference`) at reduced width, gives every parameter fixed random
values, and records with the reference code: w from fixed z, the sampler's distance, density, colour and
slot weights at fixed points (a third of them outside the scene box), and two 32x32 renders chained from
the reference's ``nerf_utils`` as run.py's ``render()`` chains them (deterministic, fine sampling).
``tests/test_paper_generator.py`` checks :mod:`core.paper.generator` and :mod:`core.paper.render`
against these files::

    python -m training.paper.fixture_generator --reference /path/to/nerf-from-image --out tests/fixtures/paper

writes ``generator.pt`` (a checkpoint shaped like the reference's: ``model_ema`` state and plain values),
``generator_expected.safetensors`` (inputs and expected outputs) and ``generator_config.json`` (the
PaperConfig of the reduced model). ``--full`` instead builds the full-width reference with random
weights, runs both implementations and prints their largest differences (nothing is written).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from core.config import PaperConfig

from .reference import load_reference

REDUCED = PaperConfig(latent_dim=64, w_dim=64, mapping_layers=2, plane_res=256, plane_channels=32, channel_base=1024,
                      channel_max=16, decoder_hidden=64, attention_values=8, attention_hidden=32, scene_range=1.4)
"""the fixture's model: the reference's structure (256^2 planes of 32 channels, 15 ws, 8 colour slots) at
small widths, so that the checkpoint stays small."""

FULL = PaperConfig(attention_values=8, scene_range=1.4)
"""the paper's widths (``--full``)."""

GENERATOR_FIELDS = ("latent_dim", "w_dim", "mapping_layers", "plane_res", "plane_channels", "channel_base",
                    "channel_max", "decoder_hidden", "attention_values", "attention_hidden", "scene_range", "frame")
"""the PaperConfig fields of a generator (what ``generator_config.json`` holds; the others keep defaults)."""

POINTS = 1000
"""query points per batch item."""

IMAGE_SIZE = 32
"""side of the rendered images in pixels."""

RAY_SAMPLES = 16
"""coarse samples per ray (as many importance samples again)."""

INSIDE_SHARE = 0.12
"""share of the points in the box that the calibrated SDF puts inside the surface."""


def reference_patches(cfg: PaperConfig) -> dict[str, list[tuple[str, str]]]:
    """Text patches that give the reference's hard-coded widths the values of ``cfg`` (none at full width)."""
    full = PaperConfig()
    patches = []
    if cfg.w_dim != full.w_dim:
        patches.append(("w_dim = 512", f"w_dim = {cfg.w_dim}"))
    if cfg.attention_hidden != full.attention_hidden:
        patches.append(("self.hidden_size = 512", f"self.hidden_size = {cfg.attention_hidden}"))
    if (cfg.channel_base, cfg.channel_max) != (full.channel_base, full.channel_max):
        patches.append(("img_channels=96)", f"img_channels=96, channel_base={cfg.channel_base}, "
                                            f"channel_max={cfg.channel_max})"))
    fixed = [("mapping_layers", "num_layers=2"), ("plane_res", "img_resolution=256"),
             ("plane_channels", "TriplanarDecoder(32,"), ("decoder_hidden", "hidden_dim = 64")]
    for name, _text in fixed:
        if getattr(cfg, name) != getattr(full, name):
            raise SystemExit(f"{name}={getattr(cfg, name)}: the fixture keeps the reference's value "
                             f"{getattr(full, name)}")
    return {"models/generator.py": patches} if patches else {}


def build_reference(checkout: str | Path, cfg: PaperConfig) -> tuple[dict, torch.nn.Module]:
    """The reference modules and an SDF ``Generator`` of the widths of ``cfg`` (reference init, eval mode)."""
    modules = load_reference(checkout, reference_patches(cfg))
    model = modules["models.generator"].Generator(cfg.latent_dim, cfg.scene_range,
                                                  attention_values=cfg.attention_values, use_sdf=True)
    return modules, model.eval().requires_grad_(False)


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Fixed random values for every parameter and noise map, of trained-like magnitudes.

    Weights N(0, 1) in their equalized units (mapping weights / its 0.01 learning-rate multiplier), biases
    0.1 N(0, 1) in effect (style affines 1 + 0.1 N(0, 1)), noise strengths 0.05-0.15, beta 0.05,
    alpha 0.9. The planes of a block at resolution r > 16 are damped by 16 / r so that the field is smooth
    at the scale of the render.
    """
    g = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        owner_name, _, leaf = name.rpartition(".")
        owner = modules[owner_name]
        randn = torch.randn(tensor.shape, generator=g)
        if leaf == "resample_filter":
            continue
        if name == "beta":
            value = torch.full_like(tensor, 0.05)
        elif name == "alpha":
            value = torch.full_like(tensor, 0.9)
        elif leaf == "noise_strength":
            value = 0.05 + 0.1 * torch.rand(tensor.shape, generator=g)
        elif leaf == "bias" and hasattr(owner, "bias_gain"):  # equalized linear
            value = (1.0 + 0.1 * randn if owner_name.endswith("affine") else 0.1 * randn) / owner.bias_gain
        elif leaf == "bias":
            value = 0.1 * randn
        elif leaf == "weight" and hasattr(owner, "bias_gain"):
            value = randn / owner.bias_gain  # bias_gain is the learning-rate multiplier
        else:  # conv weights, constants, noise maps
            value = randn
        if owner_name.endswith("torgb") and leaf == "weight":
            res = int(owner_name.split(".")[-2][1:])
            value = value * min(1.0, 16 / res)
        tensor.data.copy_(value.to(tensor.dtype))


def sampler_of(model: torch.nn.Module, ws: torch.Tensor):
    """The reference's point sampler for the latents ws (frozen noise, as in evaluation)."""
    return model(None, ws, ["sampler"], {"freeze_noise": True})["sampler"]


def calibrate_sdf(model: torch.nn.Module, ws: torch.Tensor, points: torch.Tensor, inside_share: float) -> None:
    """Rescale the decoder's distance output to a spread of 0.4 (reference units) and shift it so that
    ``inside_share`` of the points in the box are inside the surface."""
    head = model.decoder.net[2]
    inside = (points.abs() <= model.scene_range).all(dim=-1)
    d = sampler_of(model, ws)(points, ["sdf_distance"])["sdf_distance"][..., 0][inside]
    raw = d - head.bias[0] * head.bias_gain
    k = 0.4 / float(raw.std())
    head.weight.data[0] *= k
    head.bias.data[0] = -float(torch.quantile(k * raw, inside_share)) / head.bias_gain


def look_at(eyes: torch.Tensor) -> torch.Tensor:
    """Camera-to-world matrices (B, 4, 4) of cameras at eyes (B, 3) looking at the origin, +y up, in the
    reference's camera convention (x right, y up, looking down -z)."""
    back = F.normalize(eyes, dim=-1)
    right = F.normalize(torch.cross(torch.tensor([0.0, 1.0, 0.0]).expand_as(back), back, dim=-1), dim=-1)
    up = torch.cross(back, right, dim=-1)
    m = torch.eye(4).repeat(eyes.shape[0], 1, 1)
    m[:, :3, :3] = torch.stack([right, up, back], dim=-1)
    m[:, :3, 3] = eyes
    return m


def reference_render(nerf_utils, sampler, cam2world: torch.Tensor, focal: torch.Tensor, size: int,
                     samples: int, scene_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """run.py's ``render()`` (randomize=False, fine sampling, white background, no bbox / centre), chained
    from the reference's own nerf_utils functions. -> rgb (B, H, W, 3), alpha (B, H, W)."""
    origins, dirs = nerf_utils.get_ray_bundle(size, size, focal, cam2world, None, None)
    dirs = F.normalize(dirs, dim=-1)
    near, far = nerf_utils.compute_near_far_planes(origins, dirs, scene_range)
    points, z_vals = nerf_utils.compute_query_points_from_rays(origins, dirs, near, far, samples, randomize=False)
    out = sampler(points, ["sigma", "rgb"])
    sigma = out["sigma"].view(*points.shape[:-1], -1)
    rgb = out["rgb"].view(*points.shape[:-1], -1)
    weights = nerf_utils.render_volume_density_weights_only(sigma.squeeze(-1), origins, dirs, z_vals).flatten(0, 2)
    weights = F.max_pool1d(weights.unsqueeze(1).float(), 2, 1, padding=1)
    weights = F.avg_pool1d(weights, 2, 1).squeeze() + 0.01
    z_mid = 0.5 * (z_vals[..., 1:] + z_vals[..., :-1])
    z_fine = nerf_utils.sample_pdf(z_mid.flatten(0, 2), weights[..., 1:-1], samples, deterministic=True)
    z_fine = z_fine.view(*z_vals.shape[:3], z_fine.shape[-1])
    z_all, order = torch.sort(torch.cat((z_vals, z_fine), dim=-1), dim=-1)
    fine = sampler(origins[..., None, :] + dirs[..., None, :] * z_fine[..., :, None], ["sigma", "rgb"])
    sigma = torch.cat((sigma, fine["sigma"].view(*z_fine.shape, -1)), dim=-2)
    rgb = torch.cat((rgb, fine["rgb"].view(*z_fine.shape, -1)), dim=-2)
    sigma = sigma.gather(-2, order[..., None])
    rgb = rgb.gather(-2, order[..., None].expand(-1, -1, -1, -1, 3))
    image, _, alpha, _, _ = nerf_utils.render_volume_density(sigma.squeeze(-1), rgb, origins, dirs, z_all,
                                                             None, None, white_background=True)
    return image, alpha


def fixed_inputs(cfg: PaperConfig, seed: int) -> dict[str, torch.Tensor]:
    """z (2, latent_dim), points (2, POINTS, 3) uniform in 8/7 of the scene box, and two cameras at
    distance 3 (reference units) looking at the origin with focal length 1.5 image sides."""
    g = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(2, cfg.latent_dim, generator=g)
    points = (torch.rand(2, POINTS, 3, generator=g) * 2 - 1) * (cfg.scene_range * 8 / 7)
    eyes = 3.0 * F.normalize(torch.tensor([[1.0, 0.6, 2.0], [-1.5, 1.0, -1.0]]), dim=-1)
    return {"z": z, "points": points, "cam2world": look_at(eyes), "focal": torch.tensor([1.5, 1.3])}


def build(checkout: str | Path, seed: int = 0, cfg: PaperConfig = REDUCED) -> dict:
    """The reference model of ``cfg`` with fixed random weights and its outputs on fixed inputs.

    -> {'checkpoint': reference-style checkpoint dict, 'expected': {name: tensor} (inputs and outputs),
    'config': the PaperConfig, 'modules': the reference modules, 'model': the reference Generator}.
    """
    torch.manual_seed(seed)
    modules, model = build_reference(checkout, cfg)
    randomize(model, seed)
    x = fixed_inputs(cfg, seed)
    with torch.no_grad():
        ws = model.mapping_network(x["z"])
        calibrate_sdf(model, ws, x["points"], INSIDE_SHARE)
        sampler = sampler_of(model, ws)
        wanted = ["sdf_distance", "sigma", "rgb"] + (["semantics"] if cfg.attention_values > 0 else [])
        out = sampler(x["points"], wanted)
        planes = model.synthesis_network(ws[:, :14], noise_mode="const")
        planes = planes.view(ws.shape[0], 3, cfg.plane_channels, cfg.plane_res, cfg.plane_res)
        image, alpha = reference_render(modules["lib.nerf_utils"], sampler, x["cam2world"], x["focal"],
                                        IMAGE_SIZE, RAY_SAMPLES, cfg.scene_range)
    expected = dict(x, ws=ws, planes_strided=planes[..., ::32, ::32], sdf=out["sdf_distance"][..., 0],
                    sigma=out["sigma"], rgb=out["rgb"], render_rgb=image, render_alpha=alpha)
    if cfg.attention_values > 0:
        expected["semantics"] = out["semantics"]
        expected["slot_colors"] = model.texture_mapper(ws[:, 14])
    checkpoint = {"model_ema": model.state_dict(), "iteration": 0, "lr_g": 0.0025, "lr_d": 0.002,
                  "fid_untrunc": 0.0, "best_fid": 0.0}
    return {"checkpoint": checkpoint, "expected": {k: v.contiguous().float() for k, v in expected.items()},
            "config": cfg, "modules": modules, "model": model}


def write(result: dict, out: Path) -> list[Path]:
    """Write the fixture files of :func:`build`'s result into ``out``; returns their paths."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "generator.pt", out / "generator_expected.safetensors", out / "generator_config.json"]
    torch.save(result["checkpoint"], paths[0])
    save_file(result["expected"], str(paths[1]), metadata={"size": str(IMAGE_SIZE), "samples": str(RAY_SAMPLES)})
    fields = {k: v for k, v in dataclasses.asdict(result["config"]).items() if k in GENERATOR_FIELDS}
    paths[2].write_text(json.dumps(fields) + "\n")
    return paths


def compare(result: dict) -> dict[str, float]:
    """Largest absolute differences between our implementation and the reference outputs of ``result``."""
    from core.paper.generator import PaperGenerator
    from core.paper.render import render_reference

    exp = result["expected"]
    gen = PaperGenerator(result["config"]).eval()
    gen.load_state_dict(result["checkpoint"]["model_ema"], strict=True)
    with torch.no_grad():
        ws = gen.ws_from_z(exp["z"])
        planes, colors = gen.synthesize(ws), gen.slot_colors(ws)
        ref = gen.sample_reference(planes, colors, exp["points"])
        image = render_reference(gen, ws, exp["cam2world"], exp["focal"], IMAGE_SIZE, RAY_SAMPLES)
    diff = lambda a, b: float((a - b).abs().max())  # noqa: E731
    out = {"ws": diff(ws, exp["ws"]), "sdf": diff(ref.distance, exp["sdf"]), "sigma": diff(ref.sigma, exp["sigma"]),
           "rgb": diff(ref.rgb, exp["rgb"]), "render_rgb": diff(image.rgb, exp["render_rgb"]),
           "render_alpha": diff(image.alpha, exp["render_alpha"])}
    if ref.semantics is not None:
        out["semantics"] = diff(ref.semantics, exp["semantics"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="nerf-from-image checkout (holding models/ and lib/)")
    parser.add_argument("--out", default="tests/fixtures/paper", help="folder for the fixture files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true",
                        help="compare both implementations at the paper's widths; write nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    result = build(args.reference, args.seed, FULL if args.full else REDUCED)
    exp = result["expected"]
    inside = (exp["points"].abs() <= result["config"].scene_range).all(dim=-1)
    print(f"sdf inside box: min {float(exp['sdf'][inside].min()):.3f} max {float(exp['sdf'][inside].max()):.3f} "
          f"negative {float((exp['sdf'][inside] < 0).float().mean()):.2f}; render alpha mean "
          f"{float(exp['render_alpha'].mean()):.2f}, share > 0.5 {float((exp['render_alpha'] > 0.5).float().mean()):.2f}")
    for name, value in compare(result).items():
        print(f"max |ours - reference| {name:13s} {value:.3g}")
    if not args.full:
        for path in write(result, Path(args.out)):
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
