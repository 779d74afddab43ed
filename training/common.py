"""Small helpers shared by the training commands: progress bars and checkpoints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch


class Progress:
    """A tqdm bar on stderr that is told the absolute step and the current loss terms."""

    def __init__(self, total: int, start: int = 0, label: str = "", every_s: float = 2.0):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=start, desc=label, mininterval=every_s, file=sys.stderr,
                        dynamic_ncols=True)

    def update(self, n: int, **info) -> None:
        if info:
            self.bar.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in info.items()},
                                 refresh=False)
        self.bar.update(n - self.bar.n)
        if n >= self.bar.total:
            self.bar.close()


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic torch.save of plain tensors/numbers (loaded back with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


CANONICAL = {"place": False, "texture_size": 0}
"""reconstruct() options of the evaluations: mesh and camera stay in the model's canonical frame (the frame of
the field they re-render and of the true chairs they compare with), no texture (it changes no score here)."""
