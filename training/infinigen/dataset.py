"""Infinigen training chairs as generator supervision (the project's .venv; torch, no bpy, no Infinigen).

``make_training.py`` (Infinigen's environment) writes one ``<family>_<seed>.npz`` per chair with
exactly what ``training.train_generator`` takes from a procedural chair; this module lists a folder
of them and loads one chair as float32 tensors (``load_shape``, the keys of ``_make_shape``) or its
silhouettes (``load_silhouettes``, the keys of ``_make_silhouettes``). A chair is named by its factory
seed (``convert.TRAINING_SEEDS``), which no procedural seed reaches, so both sources share one cache.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .convert import TRAINING_SEEDS, training_seed

SHAPE_KEYS = ("points", "sdf", "albedo", "surface_points", "surface_albedo", "surface_normals")
VIEW_KEYS = ("cam2world", "focal", "alpha")
_NAME = re.compile(r"^([a-z]+)_(\d+)\.npz$")
MAKE = "runs/infinigen-venv/bin/python training/infinigen/make_training.py"


def is_infinigen(seed: int) -> bool:
    return int(seed) in TRAINING_SEEDS


def chair_files(folder: Path | str) -> dict[int, Path]:
    """Factory seed -> file of every training chair in ``folder``, in seed order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder of Infinigen training chairs (make them with {MAKE} --out {folder})")
    files = {}
    for path in folder.glob("*.npz"):
        m = _NAME.match(path.name)
        if m and is_infinigen(int(m.group(2))):
            files[int(m.group(2))] = path
    if not files:
        raise ValueError(f"{folder}: no Infinigen training chairs (<family>_<seed>.npz) in it; make them with {MAKE}")
    return dict(sorted(files.items()))


def list_seeds(folder: Path | str, count: int | None = None) -> list[int]:
    """The first ``count`` (all: None) factory seeds of the chairs in ``folder``."""
    seeds = list(chair_files(folder))
    if count is not None and count > len(seeds):
        raise ValueError(f"{folder}: {len(seeds)} Infinigen training chairs, fewer than the {count} asked for")
    return seeds if count is None else seeds[:count]


def _read(folder: Path | str, seed: int, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    family, _ = training_seed(int(seed) - TRAINING_SEEDS.start)
    path = Path(folder) / f"{family}_{seed}.npz"
    if not path.is_file():
        raise ValueError(f"{path}: no such Infinigen training chair (make it with {MAKE})")
    try:
        with np.load(path) as z:
            data = {k: z[k] for k in shapes}
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a training chair of make_training.py ({err}); delete it and rerun {MAKE}") from None
    for k, shape in shapes.items():
        if data[k].shape != shape or not np.isfinite(data[k].astype(np.float32)).all():
            raise ValueError(f"{path}: '{k}' has shape {data[k].shape} (expected {shape}) or non-finite values; "
                             f"delete it and rerun {MAKE}")
    return data


def load_shape(folder: Path | str, seed: int, points: int) -> dict[str, Tensor]:
    """The supervision of one chair, float32 tensors with the keys and shapes of ``_make_shape``."""
    m = points // 4
    shapes = {"points": (points, 3), "sdf": (points,), "albedo": (points, 3), "surface_points": (m, 3),
              "surface_albedo": (m, 3), "surface_normals": (m, 3)}
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in _read(folder, seed, shapes).items()}


def load_silhouettes(folder: Path | str, seed: int, views: int, size: int) -> dict[str, Tensor]:
    """Silhouettes of one chair with the keys, shapes and dtypes of ``_make_silhouettes``."""
    data = _read(folder, seed, {"cam2world": (views, 4, 4), "focal": (views,), "alpha": (views, size, size)})
    if data["alpha"].dtype != np.uint8:
        raise ValueError(f"{folder}: chair {seed}'s silhouettes are {data['alpha'].dtype}, not uint8; rerun {MAKE}")
    return {"cam2world": torch.from_numpy(data["cam2world"].astype(np.float32)),
            "focal": torch.from_numpy(data["focal"].astype(np.float32)), "alpha": torch.from_numpy(data["alpha"])}
