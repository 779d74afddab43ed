"""A tiny random model that reconstructs in well under a second (one pose hypothesis, 16^3 mesh, N=0),
for tests that feed many inputs through the whole pipeline (fuzz, hostile inputs)."""

from __future__ import annotations

from pathlib import Path


def save_fast_model(folder: Path, name: str) -> Path:
    """Save the tiny model as ``folder/<name>`` (seed 0, the caller's RNG state untouched); its JSON path."""
    import torch

    from core.config import tiny_config
    from core.model import ReconstructionModel, save_model

    cfg = tiny_config()
    cfg.name = name
    cfg.pose.yaw_hypotheses = (0.0,)
    cfg.mesh.resolution = 16
    cfg.inversion.steps = 0
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ReconstructionModel(cfg)
    return save_model(model, Path(folder) / name, {"note": "random test model"}, half=False)
