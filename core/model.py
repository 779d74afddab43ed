"""A complete model (generator + encoder + config) and its files: <name>.safetensors + <name>.json.

The JSON holds the configuration, the model card facts and the SHA-256 of the tensors file, so a
truncated or swapped file is caught before it is used. Only safetensors is ever read: nothing a
user hands in is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig
from .encoder import Encoder
from .errors import ReconstructionError
from .field.generator import Generator, RadianceField
from .segmenter import Segmenter
from .registry import available_models, resolve_model  # noqa: F401  (available_models re-exported)
from .validate import check_input_file, check_model_description


class ReconstructionModel(nn.Module):
    """Generator and encoder of one object category: this project's networks, or the paper's
    (``architecture`` 'nerf_from_image', core.paper: imported reference checkpoints; an imported
    generator may come without its encoder, ``encoder`` is then None); and the foreground
    ``segmenter`` for photos without alpha (None when the model has none)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.generator: RadianceField
        if cfg.architecture == "nerf_from_image":
            from .paper.encoder import PaperEncoder
            from .paper.generator import PaperGenerator

            self.generator = PaperGenerator(cfg.paper, cfg.generator.bound)
            self.encoder = PaperEncoder(cfg.paper, cfg.generator.bound) if cfg.paper.with_encoder else None
        else:
            self.generator = Generator(cfg.generator)
            self.encoder = Encoder(cfg.encoder, cfg.generator.w_dim, cfg.generator.bound)
        self.segmenter = Segmenter(cfg.segmenter) if cfg.segmenter.image_size else None


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
    with _LOAD_LOCK:  # a warm-up thread and a reconstruction may ask at once: load once
        return _load_cached(str(json_path), None if stat is None else (stat.st_size, stat.st_mtime_ns), str(device))


_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load_cached(json_path: str, stamp, device: str) -> ReconstructionModel:
    """Checks, in order: the JSON (readable, an object, a configuration in range, a checksum), the
    weights file (a regular file with that checksum, tensors of exactly the shapes the configuration
    needs, compared before anything is allocated, all finite); then the model is built."""
    from safetensors.torch import load_file

    json_path = Path(json_path)
    weights = json_path.with_suffix(".safetensors")
    if stamp is None:
        raise ReconstructionError("weights file is missing; reinstall the extension or retrain the model",
                                  str(weights))
    meta, cfg = check_model_description(json_path)
    check_input_file(weights, "weights")
    if sha256_file(weights) != meta["sha256"]:
        raise ReconstructionError("weights file is damaged or does not belong to its JSON (checksum mismatch); "
                                  "reinstall the extension or copy the model again", str(weights))
    # a configuration of ordinary size is built right away (cheap); a huge one first on the meta device, so
    # that a file whose configuration was edited to absurd sizes allocates nothing before it is refused
    model = None if _huge(cfg) else ReconstructionModel(cfg)
    _check_shapes(cfg, weights, model)
    try:
        tensors = load_file(str(weights))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own and OS errors
        raise ReconstructionError(f"weights file cannot be read ({err}); reinstall the model", str(weights)) from None
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ReconstructionError(f"the weights file contains NaN or infinite values (in '{key}'); the model is "
                                      "broken: retrain it or reinstall the extension", str(weights))
    model = model or ReconstructionModel(cfg)
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ReconstructionError(f"weights do not match the model configuration ({first}); "
                                  "use the JSON that came with these weights", str(weights)) from None
    model.card = meta.get("card", {})
    model.name = json_path.stem
    return model.eval().requires_grad_(False).to(device)


def _huge(cfg: ModelConfig) -> bool:
    """Sizes far beyond any model this code trains (more than 1024 channels or a 512^2 plane)."""
    g, e, p = cfg.generator, cfg.encoder, cfg.paper
    if cfg.architecture == "nerf_from_image":  # the paper's full widths: 512 wide, 256^2 planes, MiT-B5
        widths = (p.latent_dim, p.w_dim, p.channel_max, p.decoder_hidden, p.attention_hidden, *p.encoder_dims,
                  p.encoder_decoder_dim, p.encoder_features)
        return (max(widths) > 1024 or p.plane_res > 512 or p.plane_channels > 256 or p.encoder_image_size > 512
                or sum(p.encoder_depths) > 128 or p.mapping_layers > 16)
    widths = (*g.synthesis_channels, g.plane_channels, g.plane_basis, g.decoder_hidden, g.color_hidden, g.slot_hidden,
              g.w_dim, g.z_dim, *e.channels)
    s = cfg.segmenter
    return max(*widths, *s.channels) > 1024 or g.plane_res > 512 or e.image_size > 512 or s.image_size > 1024


def _check_shapes(cfg: ModelConfig, weights: Path, model: ReconstructionModel | None) -> None:
    """The tensors the configuration needs against those in the file's header, before any tensor is read;
    without a built ``model`` one is built on the meta device (nothing allocated)."""
    from safetensors import safe_open

    try:
        if model is None:
            with torch.device("meta"):
                model = ReconstructionModel(cfg)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except (ValueError, RuntimeError, TypeError) as err:
        raise ReconstructionError(f"model configuration cannot be built ({str(err).splitlines()[0]}); "
                                  "use the JSON that came with the weights", str(weights.with_suffix(".json"))) from None
    try:
        with safe_open(str(weights), "pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own and OS errors
        raise ReconstructionError(f"weights file cannot be read ({err}); reinstall the model", str(weights)) from None
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    differ = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    if missing or extra or differ:
        detail = (f"'{differ[0]}' is {list(stored[differ[0]])} in the file, {list(expected[differ[0]])} by the "
                  "configuration" if differ else f"missing '{missing[0]}'" if missing else f"unexpected '{extra[0]}'")
        raise ReconstructionError(f"weights do not match the model configuration ({detail}); "
                                  "use the JSON that came with these weights", str(weights))
