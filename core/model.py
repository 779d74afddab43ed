"""A complete model (generator + encoder + config) and its files: <name>.safetensors + <name>.json.

The JSON holds the configuration, the model card facts and the SHA-256 of the tensors file, so a
truncated or swapped file is caught before it is used. Only safetensors is ever read: nothing a
user hands in is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig
from .encoder import Encoder
from .errors import ReconstructionError
from .field.generator import Generator
from .registry import available_models, resolve_model  # noqa: F401  (available_models re-exported)


class ReconstructionModel(nn.Module):
    """Generator and encoder of one object category."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = Generator(cfg.generator)
        self.encoder = Encoder(cfg.encoder, cfg.generator.w_dim, cfg.generator.bound)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(model: ReconstructionModel, stem: Path, card: dict | None = None, half: bool = True) -> Path:
    """Write ``stem.safetensors`` (float16 unless ``half`` is False) and ``stem.json``."""
    from safetensors.torch import save_file

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.state_dict().items()}
    tmp = stem.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, stem.with_suffix(".safetensors"))
    meta = {"format": "shape_from_image/1", "config": model.cfg.to_dict(), "card": card or {},
            "weights": stem.with_suffix(".safetensors").name,
            "sha256": sha256_file(stem.with_suffix(".safetensors"))}
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return stem.with_suffix(".safetensors")


def load_model(name_or_path: str = "chairs", device: str | torch.device = "cpu", extra_dirs=()) -> ReconstructionModel:
    """Load (and cache) a model by name or path; every problem becomes a ReconstructionError."""
    json_path = resolve_model(name_or_path, extra_dirs)
    weights = json_path.with_suffix(".safetensors")
    stat = weights.stat() if weights.exists() else None
    return _load_cached(str(json_path), None if stat is None else (stat.st_size, stat.st_mtime_ns), str(device))


@lru_cache(maxsize=4)
def _load_cached(json_path: str, stamp, device: str) -> ReconstructionModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    json_path = Path(json_path)
    weights = json_path.with_suffix(".safetensors")
    if stamp is None:
        raise ReconstructionError("weights file is missing; reinstall the extension or retrain the model",
                                  str(weights))
    try:
        meta = json.loads(json_path.read_text())
        cfg = ModelConfig.from_dict(meta["config"], str(json_path))
    except ReconstructionError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReconstructionError(f"model description is unreadable ({err}); reinstall the model",
                                  str(json_path)) from None
    expected = meta.get("sha256")
    if expected and sha256_file(weights) != expected:
        raise ReconstructionError("weights file is damaged or does not belong to its JSON (checksum mismatch); "
                                  "reinstall the extension or copy the model again", str(weights))
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise ReconstructionError(f"weights file cannot be read ({err}); reinstall the model", str(weights)) from None
    model = ReconstructionModel(cfg)
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ReconstructionError(f"weights do not match the model configuration ({first}); "
                                  "use the JSON that came with these weights", str(weights)) from None
    model.card = meta.get("card", {})
    model.name = json_path.stem
    return model.eval().requires_grad_(False).to(device)
