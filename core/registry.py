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


MODEL_NAME_MAX = 1024
"""longest model name or path accepted (longer ones are refused with a message, not handed to the OS)."""


def user_models_dir() -> Path | None:
    """The user's model folder: ``$SHAPE_FROM_IMAGE_MODELS``, else ``%APPDATA%/shape_from_image/models`` on
    Windows and ``$XDG_DATA_HOME`` (``~/.local/share``) ``/shape_from_image/models`` elsewhere. Models
    there outlive reinstalls of the extension; Blender lists them too. None when no home folder is known."""
    try:
        if os.environ.get(MODELS_ENV):
            return Path(os.environ[MODELS_ENV]).expanduser()
        if os.name == "nt" and os.environ.get("APPDATA"):
            base = Path(os.environ["APPDATA"])
        else:
            base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    except (RuntimeError, OSError, KeyError):  # no HOME and no password entry
        return None
    return base / "shape_from_image" / "models"


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False instead of an error for a folder that cannot be read, a name that is too
    long or a NUL character: a folder on the search path that cannot be read is skipped."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _json_files(folder: Path) -> list[Path]:
    """The ``*.json`` files of a folder; none when it is missing or cannot be read."""
    try:
        return sorted(folder.glob("*.json")) if folder.is_dir() else []
    except (OSError, ValueError):
        return []


def _unreadable(folders) -> list[Path]:
    """The folders of ``folders`` that exist but cannot be listed (permissions)."""
    bad = []
    for folder in folders:
        try:
            if folder.is_dir():
                os.listdir(folder)
        except PermissionError:
            bad.append(folder)
        except (OSError, ValueError):
            pass
    return bad


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
    user = user_models_dir()
    return [Path(d) for d in extra_dirs if d] + ([user] if user is not None else []) + [WEIGHTS_DIR]


def list_models(extra_dirs=()) -> list[ModelEntry]:
    """Every model with both files present, by name; the first folder that has a name wins."""
    found: dict[str, ModelEntry] = {}
    for folder in model_search_dirs(extra_dirs):
        for json_path in _json_files(folder):
            if json_path.stem not in found and _is_file(json_path.with_suffix(".safetensors")):
                found[json_path.stem] = ModelEntry(json_path.stem, json_path, _category(json_path))
    return [found[name] for name in sorted(found)]


def available_models(extra_dirs=()) -> list[str]:
    """Names of the installed models."""
    return [entry.name for entry in list_models(extra_dirs)]


def resolve_model(name_or_path: str, extra_dirs=()) -> Path:
    """A model name or a path (to .safetensors, .json or the stem) -> path of its JSON file."""
    text = str(name_or_path).strip() or DEFAULT_MODEL
    if len(text) > MODEL_NAME_MAX or "\0" in text:
        shown = text if len(text) <= 60 else text[:40] + f"... ({len(text)} characters)"
        raise ReconstructionError(f"not a model name or model file path: {shown!r}; give a model's name (such as "
                                  f"'{DEFAULT_MODEL}') or the path of its .json or .safetensors file")
    path = Path(text)
    if path.suffix in (".safetensors", ".json") or os.sep in text or "/" in text:
        if not path.name or path.name in (".", ".."):
            raise ReconstructionError("is a folder, not a model file; give the path of a model's .json or "
                                      ".safetensors file, or a model's name", text)
        json_path = path.with_suffix(".json")
        try:
            found = json_path.is_file()
        except (OSError, ValueError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise ReconstructionError(f"cannot read the model file ({reason}); check the path and its permissions",
                                      str(path)) from None
        if not found:
            expected = (f" (expected {json_path.name} beside {path.with_suffix('.safetensors').name})"
                        if len(json_path.name) <= 80 else "")
            raise ReconstructionError(f"model file not found{expected}; check the path", str(path))
        return json_path
    folders = model_search_dirs(extra_dirs)
    for folder in folders:
        if _is_file(folder / f"{text}.json"):  # its weights may be missing: loading says so
            return folder / f"{text}.json"
    names = ", ".join(available_models(extra_dirs)) or "none installed"
    skipped = _unreadable(folders)
    shown = [str(f) if len(str(f)) <= 80 else str(f)[:60] + "..." for f in skipped]
    note = f" (skipped, permission denied: {', '.join(shown)})" if skipped else ""
    raise ReconstructionError(f"unknown model '{text}'; available models: {names}{note}")


def _category(json_path: Path) -> str:
    try:
        return str(json.loads(json_path.read_text()).get("config", {}).get("category", ""))
    except (OSError, ValueError, AttributeError):
        return ""
