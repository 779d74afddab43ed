"""Which models are installed and where their files are; no torch (the Blender panel lists them).

A model is a pair ``<name>.json`` (configuration, model card, checksum) + ``<name>.safetensors``
(weights) in an extra folder the caller names, in the user's model folder (where
``python -m core import-model`` puts models by default) or in the shipped ``weights/`` folder. A
model is addressed by its name or by the path of either file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ReconstructionError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
"""the folder of the models that ship with the extension."""
DEFAULT_MODEL = "chairs"
"""the model used when none is named."""
MODELS_ENV = "SHAPE_FROM_IMAGE_MODELS"
"""environment variable naming the user's model folder (default: see :func:`user_models_dir`)."""


def user_models_dir() -> Path:
    """The user's model folder: ``$SHAPE_FROM_IMAGE_MODELS``, else ``%APPDATA%/shape_from_image/models`` on
    Windows and ``$XDG_DATA_HOME`` (``~/.local/share``) ``/shape_from_image/models`` elsewhere. Models
    there outlive reinstalls of the extension; Blender lists them too."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    if os.name == "nt" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "shape_from_image" / "models"


@dataclass
class ModelEntry:
    """One installed model."""

    name: str
    """what ``--model`` accepts."""
    json_path: Path
    """its configuration file (the weights lie beside it)."""
    category: str
    """the object category it reconstructs ('' when its file does not say)."""


def model_search_dirs(extra_dirs=()) -> list[Path]:
    """The extra folders first (a model there hides a shipped one of the same name), the user's model folder,
    then the shipped one."""
    return [Path(d) for d in extra_dirs if d] + [user_models_dir(), WEIGHTS_DIR]


def list_models(extra_dirs=()) -> list[ModelEntry]:
    """Every model with both files present, by name; the first folder that has a name wins."""
    found: dict[str, ModelEntry] = {}
    for folder in model_search_dirs(extra_dirs):
        if not folder.is_dir():
            continue
        for json_path in sorted(folder.glob("*.json")):
            if json_path.stem not in found and json_path.with_suffix(".safetensors").is_file():
                found[json_path.stem] = ModelEntry(json_path.stem, json_path, _category(json_path))
    return [found[name] for name in sorted(found)]


def available_models(extra_dirs=()) -> list[str]:
    """Names of the installed models."""
    return [entry.name for entry in list_models(extra_dirs)]


def resolve_model(name_or_path: str, extra_dirs=()) -> Path:
    """A model name or a path (to .safetensors, .json or the stem) -> path of its JSON file."""
    text = str(name_or_path).strip() or DEFAULT_MODEL
    path = Path(text)
    if path.suffix in (".safetensors", ".json") or os.sep in text or "/" in text:
        json_path = path.with_suffix(".json")
        if not json_path.is_file():
            raise ReconstructionError(
                f"model file not found (expected {json_path.name} beside {path.with_suffix('.safetensors').name})",
                str(path))
        return json_path
    for folder in model_search_dirs(extra_dirs):
        if (folder / f"{text}.json").is_file():  # its weights may be missing: loading says so
            return folder / f"{text}.json"
    names = ", ".join(available_models(extra_dirs)) or "none installed"
    raise ReconstructionError(f"unknown model '{text}'; available models: {names}")


def _category(json_path: Path) -> str:
    try:
        return str(json.loads(json_path.read_text()).get("config", {}).get("category", ""))
    except (OSError, ValueError, AttributeError):
        return ""
