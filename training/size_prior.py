"""The chair model's size prior: the training chairs' overall height in metres.

    python -m training size-prior [--shapes 600] [--extra-shapes 150] [--write weights/chairs.json]

The procedural chairs (training.data.chairs) are built in metres and then normalized (largest side 1.6);
each ``ChairSpec.scale`` says how many normalized units one metre of the chair as built became, so a
chair's height in metres is its box height divided by that scale. The median over the chairs the model
was trained on (``--shapes`` training seeds from 0 and ``--extra-shapes`` of ``training.data.EXTRA_SEEDS``,
the recipe's 600 + 150) is the height a reconstruction is scaled to when the user gives none
(core.place). ``--write`` stores it as ``config.size_prior`` of a model JSON (the weights are untouched:
their SHA-256 covers only the .safetensors file).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from .data import EXTRA_SEEDS, TRAIN_SEEDS
from .data.chairs import sample_chair


def chair_heights(seeds) -> np.ndarray:
    """(N,) overall height in metres of the chair of every seed."""
    out = []
    for seed in seeds:
        spec = sample_chair(seed)
        out.append(float(spec.bbox_max[2] - spec.bbox_min[2]) / spec.scale)
    return np.asarray(out)


def measure(shapes: int = 600, extra_shapes: int = 150) -> dict:
    """The size prior of the chairs the model was trained on, as stored in a model JSON."""
    seeds = [*TRAIN_SEEDS[:shapes], *EXTRA_SEEDS[:extra_shapes]]
    heights = chair_heights(seeds)
    p5, p95 = np.percentile(heights, [5, 95])
    return {"height_m": round(float(np.median(heights)), 3),
            "source": f"median overall height of the {len(seeds)} procedural training chairs ({shapes} training "
                      f"seeds + {extra_shapes} later families), measured by python -m training size-prior; "
                      f"5-95%: {p5:.2f}-{p95:.2f} m, mean {heights.mean():.3f} m",
            "n": len(seeds)}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--shapes", type=int, default=600, help="training chairs (seeds 0..N-1; the recipe's 600)")
    ap.add_argument("--extra-shapes", type=int, default=150,
                    help="chairs of the later families (EXTRA_SEEDS; the recipe's 150)")
    ap.add_argument("--write", type=Path, default=None, help="model JSON whose config.size_prior to set")


def run(args: argparse.Namespace) -> int:
    prior = measure(args.shapes, args.extra_shapes)
    print(json.dumps(prior, indent=2))
    if args.write is not None:
        data = json.loads(args.write.read_text())
        data["config"]["size_prior"] = prior
        tmp = args.write.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, args.write)
        print(f"wrote config.size_prior into {args.write}")
    return 0
