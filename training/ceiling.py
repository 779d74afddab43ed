"""Silhouette ceiling of a generator checkpoint: how well it draws its own training chairs.

    python -m training ceiling runs/gen3/generator_ckpt.pt [--chairs 24] [--beta B] [--threads 2]

Each of the first `--chairs` training chairs is rendered by the generator from its own learned latent
code, through a camera drawn from the data distribution with a seed the training never used
(1000 + chair seed; the training silhouettes use 7_000_000 + seed), at 128x128; the opacity (> 0.5) is
compared with the data renderer's exact alpha. The mean IoU bounds what inversion can reach on
unseen chairs with the same density model: if the generator cannot draw a training chair's outline,
fitting a new one will not do better. `--beta` renders the same fields with another VolSDF beta.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from core.config import ModelConfig
from core.field.generator import Generator
from core.field.shading import Light
from core.fit.invert import render_shaded

from .data.chairs import sample_chair
from .data.raytrace import render, sample_light, sample_view
from .evaluate import mask_iou
from .infinigen.convert import procedural_rows

SIZE = 128
CAMERA_SEED_OFFSET = 1000


def silhouette_ceiling(checkpoint: Path, chairs: int = 24, beta: float | None = None,
                       first_seed: int = 0) -> list[tuple[int, str, float]]:
    """(chair seed, family, IoU) for the first `chairs` procedural training chairs of a training checkpoint
    (its ``seeds``; a checkpoint without them: ``first_seed`` on)."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "codes" not in ckpt:
        raise ValueError(f"{checkpoint} has no training codes: pass a generator.pt or generator_ckpt.pt written by the current train-generator")
    cfg = ModelConfig.from_dict(ckpt["config"])
    gen = Generator(cfg.generator)
    gen.load_state_dict(ckpt["generator"])
    gen.eval()
    if beta is not None:
        with torch.no_grad():
            gen.log_beta.fill_(math.log(beta))
    codes = ckpt["codes"]
    seeds = ckpt["seeds"].tolist() if "seeds" in ckpt else list(range(first_seed, first_seed + len(codes)))
    rows = []
    for i in procedural_rows(seeds[:len(codes)])[:chairs]:  # an Infinigen chair has no truth to render here
        seed = seeds[i]
        spec = sample_chair(seed)
        rng = np.random.default_rng(CAMERA_SEED_OFFSET + seed)
        cam = sample_view(rng, SIZE, SIZE, spec)
        truth = render(spec, cam, sample_light(rng))[..., 3] > 0.5
        with torch.no_grad():
            planes = gen.decode(gen.mapping_ws(codes[i:i + 1]))
            _, alpha = render_shaded(gen, planes, cam, Light.default(1), cfg.render)
        rows.append((seed, spec.family, mask_iou(alpha[0].numpy() > 0.5, truth)))
    return rows


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training ceiling --help``)."""
    ap.add_argument("checkpoint", help="a train-generator checkpoint (generator_ckpt.pt)")
    ap.add_argument("--chairs", type=int, default=24, help="first N training chairs")
    ap.add_argument("--beta", type=float, default=None, help="render with this VolSDF beta instead of the trained one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="one line per chair")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    try:
        rows = silhouette_ceiling(Path(args.checkpoint), args.chairs, args.beta)
    except (OSError, ValueError, RuntimeError) as err:  # missing file, not a training checkpoint
        print(f"error: cannot read {args.checkpoint}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.verbose:
        for seed, family, iou in rows:
            print(f"chair {seed:4d} {family:10s} IoU {iou:.3f}")
    print(f"silhouette ceiling over {len(rows)} training chairs: mean IoU {np.mean([r[2] for r in rows]):.3f}")
    return 0
