"""Small helpers shared by the training commands: progress lines, checkpoints, seeding."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch


class Progress:
    """A one-line progress bar on stderr (no extra dependency)."""

    def __init__(self, total: int, start: int = 0, label: str = "", every_s: float = 2.0):
        self.total, self.n, self.label, self.every = total, start, label, every_s
        self.t0 = time.time()
        self.start = start
        self.last = 0.0

    def update(self, n: int, **info) -> None:
        self.n = n
        now = time.time()
        if now - self.last < self.every and n < self.total:
            return
        self.last = now
        rate = (n - self.start) / max(now - self.t0, 1e-6)
        eta = (self.total - n) / max(rate, 1e-6)
        bar = "#" * int(30 * n / max(self.total, 1))
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
        end = "\n" if n >= self.total or not sys.stderr.isatty() else "\r"
        sys.stderr.write(f"{self.label} [{bar:<30}] {n}/{self.total} {rate:.2f}it/s eta {eta / 60:.1f}min {text}{end}")
        sys.stderr.flush()


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
