"""Average the encoders of models that share a generator: ``python -m training average-encoders
A.json B.json [...] --write STEM``.

Uniform weight averaging of fine-tunes that start one from another (a "model soup"): the written
model is the last one's generator and configuration with the mean of the encoders' weights (the
buffers ``w_avg`` and ``w_std`` come from the last model, as the generator sets them). The card
records the sources.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from core.model import ReconstructionModel, load_model, save_model


def average_encoders(models: list[str], write: Path) -> ReconstructionModel:
    """The last of ``models`` (names or .json paths) with the mean encoder of all; written to ``write``."""
    loaded = [load_model(m, "cpu") for m in models]
    last = loaded[-1]
    for path, model in zip(models, loaded):
        if model.cfg.to_dict() | {"encoder": None} != last.cfg.to_dict() | {"encoder": None}:
            raise ValueError(f"{path}: its configuration differs from {models[-1]}'s (another generator?)")
        for key, value in model.generator.state_dict().items():
            if not torch.equal(value.float(), last.generator.state_dict()[key].float()):
                raise ValueError(f"{path}: its generator differs from {models[-1]}'s ({key})")
    states = [m.encoder.state_dict() for m in loaded]
    mean = {k: (sum(s[k].float() for s in states) / len(states)) if v.is_floating_point() and k not in ("w_avg", "w_std")
            else v for k, v in states[-1].items()}
    last.encoder.load_state_dict(mean)
    card = {"encoder_average": [str(m) for m in models],
            "cards": [json.loads(Path(m).read_text()).get("card", {}) if m.endswith(".json") else {} for m in models]}
    save_model(last, Path(write), card)
    return last


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training average-encoders --help``)."""
    ap.add_argument("models", nargs="+", help="model names or .json paths, the last one gives generator and config")
    ap.add_argument("--write", required=True, help="stem of the written model, e.g. runs/model/chairs")


def run(args: argparse.Namespace) -> int:
    if len(args.models) < 2:
        print("error: give at least two models to average", file=sys.stderr)
        return 2
    average_encoders(args.models, Path(args.write))
    print(f"model written: {args.write}.safetensors")
    return 0
