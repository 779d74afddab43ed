"""What every interface accepts: one set of rules and one message per refusal.

The command line (:mod:`core.cli`), the Python API (:func:`core.api.reconstruct`), the Blender
operator (``operators/reconstruct.py``) and the batch script (``scripts/batch_reconstruct.py``) check
their inputs with these functions, so they accept and refuse exactly the same values with the same
text. Every refusal is a :class:`~core.errors.ReconstructionError` whose message says what is
accepted; the ``check_*`` functions return the value normalized (NumPy integers become ``int``).

- **Options**: the rules each field of :class:`~core.config.ReconstructOptions` declares in its metadata:
  steps 0-1000, mesh resolution 16-512, a 35 mm-equivalent focal length of 4-2000 mm
  (0 or None: EXIF or the default; never NaN or infinite), seed 0 to 2**31 - 1 (what a
  Blender integer property holds), device ``auto|cpu|cuda|cuda:N|mps`` (a string; whether it exists
  is :func:`resolve_device`'s job), mesh format, inversion loss and settings.
- **Model files**: a JSON object with a configuration whose every size, count and weight lies in a
  sane range (:func:`check_model_config`) and the SHA-256 of its weights, which must be a regular file
  (:func:`check_model`); the message names the model file.
- **Input files**: only regular files are opened: a folder, a named pipe (FIFO), a device or a
  socket is refused from its ``stat`` without opening it, so nothing blocks (:func:`check_input_file`).
- **Output names**: every input of one call gets its own file stem (``chair``, ``chair_2``) that fits
  the file system's 255-byte name limit together with its suffix (:func:`output_stems`); an empty
  output folder name is refused (:func:`check_out_dir_name`).

No torch at import time: the command line checks its options before loading torch, and Blender
imports this module on its UI thread.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import numbers
import os
import re
import stat
import typing
from pathlib import Path

from .config import (  # noqa: F401  (the accepted ranges, re-exported: core.validate.FOCAL_MM ...)
    ARCHITECTURES,
    FACES,
    FOCAL_MM,
    FORMATS,
    HEIGHT_M,
    LOSSES,
    MESH_RESOLUTION,
    SEED_MAX,
    STEPS_MAX,
    TEXTURE_SIZE,
    InversionConfig,
    ModelConfig,
    ReconstructOptions,
    optional,
)
from .errors import ReconstructionError
from .io.memory import ImageArray
from .registry import resolve_model

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
"""file name endings of the photos a folder scan picks up (the formats the loader reads)."""
IMAGE_FORMATS = "PNG, JPEG, WebP, TIFF or BMP"
NAME_MAX = 255
"""bytes in one file name on common file systems (ext4, APFS, NTFS: 255)."""

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


# --------------------------------------------------------------------------------------------
# options


def _whole(value) -> bool:
    """A whole number: Python's int or a NumPy integer, not a bool."""
    return not isinstance(value, bool) and hasattr(value, "__index__")


def _real(value) -> bool:
    """A real number (int, float, NumPy scalar), not a bool."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _show(value) -> str:
    """A value as a message shows it: plain numbers, quoted strings, short reprs."""
    if _whole(value):
        return str(int(value))
    if _real(value):
        return repr(float(value))
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_steps(value) -> int:
    """Inversion steps: a whole number 0-1000."""
    if not _whole(value) or value < 0:
        raise ReconstructionError(f"steps must be a whole number >= 0 (0 = encoder only, 10 = fast), got {_show(value)}")
    if value > STEPS_MAX:
        raise ReconstructionError(f"steps={_show(value)} is far beyond what helps (10 fast, 30 slow); "
                                  f"use at most {STEPS_MAX}")
    return int(value)


def check_mesh_resolution(value) -> int:
    """Marching-cubes grid samples per side: a whole number 16-512."""
    lo, hi = MESH_RESOLUTION
    if not _whole(value) or not lo <= value <= hi:
        raise ReconstructionError(f"mesh resolution must be a whole number between {lo} and {hi}, got {_show(value)}")
    return int(value)


def check_focal_mm(value) -> float | None:
    """A 35 mm-equivalent focal length in mm (4-2000), or 0 or None: not given (EXIF, else the default) -> None."""
    if value is None or (_real(value) and value == 0):
        return None
    return _finite_in(value, FOCAL_MM, "focal length must be a 35 mm-equivalent value in mm",
                      "or 0 or nothing for EXIF or the default")


def check_height_m(value) -> float | None:
    """The object's height in metres (0.01-100) or None (the model's size prior)."""
    if value is None:
        return None
    return _finite_in(value, HEIGHT_M, "height must be the object's height in metres",
                      "or nothing for the model's typical size")


def _finite_in(value, bounds: tuple[float, float], what: str, otherwise: str) -> float:
    """``value`` as a float when it is a finite real number within ``bounds``; else the error
    "<what> between LO and HI (<otherwise>), got VALUE"."""
    lo, hi = bounds
    if not _real(value) or not math.isfinite(value) or not lo <= value <= hi:
        raise ReconstructionError(f"{what} between {lo:g} and {hi:g} ({otherwise}), got {_show(value)}")
    return float(value)


def check_texture_size(value) -> int:
    """Side of the baked texture in pixels: 64-4096, or 0 for vertex colours only."""
    lo, hi = TEXTURE_SIZE
    if not _whole(value) or not (value == 0 or lo <= value <= hi):
        raise ReconstructionError(f"texture size must be a whole number of pixels between {lo} and {hi} "
                                  f"(or 0 for vertex colours only), got {_show(value)}")
    return int(value)


def check_faces(value) -> int | None:
    """A face budget: a whole number 100-10,000,000, or None (keep every face)."""
    if value is None:
        return None
    lo, hi = FACES
    if not _whole(value) or not lo <= value <= hi:
        raise ReconstructionError(f"face budget must be a whole number between {lo} and {hi:,} "
                                  f"(or nothing to keep every face), got {_show(value)}")
    return int(value)


def check_seed(value) -> int:
    """Seed of the renderer's random samples: a whole number 0 to 2**31 - 1."""
    if not _whole(value) or not 0 <= value <= SEED_MAX:
        raise ReconstructionError(f"seed must be a whole number from 0 to {SEED_MAX}, got {_show(value)}")
    return int(value)


def check_device(value) -> str:
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' (any case) -> lower case; whether it exists is
    :func:`resolve_device`'s job."""
    if not isinstance(value, str):
        raise ReconstructionError(f"device must be one of {DEVICE_NAMES} (a string), got {_show(value)}")
    name = value.strip().lower()
    if not _DEVICE.fullmatch(name):
        raise ReconstructionError(f"unknown device {value!r}; use {DEVICE_NAMES}")
    return name


def resolve_device(value="auto"):
    """The torch device for a device name: 'auto' -> CUDA, then MPS, then CPU; a device that this machine
    does not have is refused (imports torch)."""
    import torch

    name = check_device(value)
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps else "cpu")
    kind, _, index = name.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ReconstructionError(f"device '{name}' was requested but no CUDA GPU is available; use the device cpu or auto")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ReconstructionError(f"device '{name}' was requested but this machine has {count} CUDA GPU"
                                  f"{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1}); use one of them")
    if kind == "mps" and not mps:
        raise ReconstructionError(f"device '{name}' was requested but Apple MPS is not available; use the device cpu or auto")
    return torch.device(name)


def check_format(value) -> str:
    """Mesh file format: glb, ply or obj."""
    if value not in FORMATS:
        raise ReconstructionError(f"unknown mesh format {_show(value)}; use one of {', '.join(FORMATS)}")
    return value


def check_loss(value) -> str:
    """Photometric loss of the inversion: 'l1+ssim' or 'l1'."""
    if value not in LOSSES:
        raise ReconstructionError(f"unknown inversion loss {_show(value)}; use one of {', '.join(LOSSES)}")
    return value


def check_out_dir_name(value) -> str:
    """An output folder's name (not yet created): a non-empty path."""
    if not isinstance(value, (str, os.PathLike)):
        raise ReconstructionError(f"output folder must be a path, got {_show(value)}")
    text = os.fspath(value)
    if isinstance(text, bytes) or not text.strip():
        raise ReconstructionError("the output folder name is empty; name an output folder")
    if "\0" in text:
        raise ReconstructionError("the output folder name holds a NUL character; name another output folder")
    return text


def check_out_dir(value) -> Path:
    """The output folder, created when missing and checked writable (a probe file is written and removed)."""
    out = Path(check_out_dir_name(value))
    _check_out_link(out)
    try:
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = ("a symbolic link loop" if err.errno == errno.ELOOP else
                  "the name is too long" if err.errno == errno.ENAMETOOLONG else err.strerror or str(err))
        raise ReconstructionError(f"output folder is not writable ({reason}); choose another output folder",
                                  str(out)) from None
    except ValueError:
        raise ReconstructionError("not a valid folder name; choose another output folder", str(out)) from None
    return out


def _check_out_link(out: Path) -> None:
    """Refuse an output folder that is (or lies below) a symbolic link to nothing or a loop of links, saying so."""
    for path in (out, *out.parents):
        try:
            if not os.path.islink(path) or os.path.exists(path):
                continue
            os.stat(path)
        except FileNotFoundError:
            raise ReconstructionError(f"output folder {'is' if path == out else 'lies below'} a link to "
                                      f"'{os.readlink(path)}', which does not exist; create that folder or choose "
                                      "another output folder", str(path)) from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise ReconstructionError(f"output folder {'is' if path == out else 'lies below'} a symbolic link "
                                          "loop (a link that leads back to itself); choose another output folder",
                                          str(path)) from None
        except ValueError:
            return


def check_options(options: ReconstructOptions) -> ReconstructOptions:
    """Every option of a call checked; returns a normalized copy (NumPy integers -> int, device lower case,
    a field's ``none`` value -> None). A field with its own words of refusal has its ``check_*`` function
    (:data:`OPTION_CHECKS`); every other field is checked by the rules its metadata declares
    (:func:`check_field`), so an option added to :class:`~core.config.ReconstructOptions` needs nothing here."""
    if not isinstance(options, ReconstructOptions):
        raise ReconstructionError(f"options must be a core.config.ReconstructOptions, got {type(options).__name__}")
    hints = typing.get_type_hints(type(options))
    changes = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if "none" in f.metadata and _real(value) and value == f.metadata["none"]:
            value = None
        if value is None and optional(hints[f.name]) and f.name not in _NONE_CHECKED:
            changes[f.name] = None
            continue
        check = OPTION_CHECKS.get(f.name)
        changes[f.name] = check(value) if check is not None else check_field(f, hints[f.name], value)
    return dataclasses.replace(options, **changes)


def _check_model_name(value) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ReconstructionError(f"model must be a model name or the path of its file, got {_show(value)}")
    return os.fspath(value)


def _check_model_dirs(value) -> tuple[str, ...]:
    dirs = (value,) if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(dirs, (list, tuple)) or not all(isinstance(d, (str, os.PathLike)) for d in dirs):
        raise ReconstructionError(f"model_dirs must be a list of folders, got {_show(value)}")
    return tuple(os.fspath(d) for d in dirs)


def _check_inversion_option(value) -> InversionConfig:
    if not isinstance(value, InversionConfig):
        raise ReconstructionError("inversion settings must be a core.config.InversionConfig, got "
                                  f"{type(value).__name__}")
    return check_inversion(value)


def _check_batch_size(value) -> int:
    if not _whole(value) or value < 1:
        raise ReconstructionError(f"batch size must be a whole number >= 1, got {_show(value)}")
    return int(value)


def check_field(f: dataclasses.Field, hint, value):
    """One option by the rules of its field's metadata: its type (bool, str, int, float), ``choices``,
    ``range`` (NaN and infinity refused) and ``also`` (values accepted outside the range)."""
    hint = optional(hint) or hint
    name = f.name.replace("_", " ")
    lo, hi = f.metadata.get("range", _ANY)
    also = tuple(f.metadata.get("also", ()))
    span = f" from {_show(lo)} to {_show(hi)}" if (lo, hi) != _ANY else ""
    span += f" (or {', '.join(_show(v) for v in also)})" if also else ""
    if hint is bool:
        if not isinstance(value, bool):
            raise ReconstructionError(f"{name} must be true or false, got {_show(value)}")
        return value
    if hint is str:
        choices = f.metadata.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            need = f"one of {', '.join(choices)}" if choices else "a string"
            raise ReconstructionError(f"{name} must be {need}, got {_show(value)}")
        return value
    if hint is int:
        if not _whole(value) or not (lo <= value <= hi or value in also):
            raise ReconstructionError(f"{name} must be a whole number{span}, got {_show(value)}")
        return int(value)
    if hint is float:
        if not _real(value) or not math.isfinite(value) or not (lo <= value <= hi or value in also):
            raise ReconstructionError(f"{name} must be a finite number{span}, got {_show(value)}")
        return float(value)
    return value


_NONE_CHECKED = ("model", "device", "fmt", "model_dirs")
"""options whose None is refused by their check (the others' None means: not given)."""
OPTION_CHECKS = {
    "model": _check_model_name, "steps": check_steps, "device": check_device, "mesh_resolution": check_mesh_resolution,
    "seed": check_seed, "out_dir": check_out_dir_name, "fmt": check_format, "focal_mm": check_focal_mm,
    "inversion": _check_inversion_option, "batch_size": _check_batch_size, "model_dirs": _check_model_dirs,
    "height_m": check_height_m, "texture_size": check_texture_size, "faces": check_faces,
}
"""the options whose refusal has its own words (a check_* function); the others: :func:`check_field`."""


def check_inputs(images, masks=None, progress=None, cancel=None) -> tuple[list, list[str | None]]:
    """A call's inputs: one path or a list of paths (or photos in memory, core.io.memory.ImageArray), masks as
    None, one path for all or one per image (None for none), and callables (or None) for ``progress`` and
    ``cancel``. Returns the lists (paths as strings).
    Whether each file can be read is decided per image when it loads (:func:`check_input_file`)."""
    def path(value, what):
        if isinstance(value, (str, os.PathLike)):
            text = os.fspath(value)
            if isinstance(text, str):
                return text
        raise ReconstructionError(f"{what} must be a file path, got {_show(value)}")

    def listed(value, what):
        if isinstance(value, (str, os.PathLike, bytes, dict)) or not hasattr(value, "__iter__"):
            raise ReconstructionError(f"{what}, got {_show(value)}")
        return list(value)

    if isinstance(images, (str, os.PathLike, ImageArray)):
        images = [images]
    images = [p if isinstance(p, ImageArray) else path(p, "an image")
              for p in listed(images, "images must be a path or a list of paths")]
    if masks is None or isinstance(masks, (str, os.PathLike)):
        masks = [None if masks is None else path(masks, "a mask")] * len(images)
    masks = listed(masks, "masks must be a path or a list with one path (or None) per image")
    if len(masks) != len(images):
        raise ReconstructionError(f"got {len(masks)} masks for {len(images)} images; give one mask per image or none")
    masks = [None if m is None else path(m, "a mask") for m in masks]
    for name, value in (("progress", progress), ("cancel", cancel)):
        if value is not None and not callable(value):
            raise ReconstructionError(f"{name} must be a function (or None), got {_show(value)}")
    return images, masks


# --------------------------------------------------------------------------------------------
# model configuration

_MODEL_TAIL = "the model file is damaged or was edited: use the JSON that came with the weights"
_ANY = (-math.inf, math.inf)
"""the range of a setting that declares none: any finite number."""


def _check_section(section, label: str, where: str | None, tail: str) -> None:
    """Types and ranges of the fields of one settings dataclass; ``label`` ('model setting generator.')
    names a field in the message up to the field's own name."""
    hints = typing.get_type_hints(type(section))
    noun, _, prefix = label.rpartition(" ")

    def refuse(name: str, need: str, value) -> None:
        raise ReconstructionError(f"{noun} '{prefix}{name}' must be {need}, got {_show(value)}{tail}", where)

    for f in dataclasses.fields(section):
        value, hint = getattr(section, f.name), hints[f.name]
        if hint is bool:
            if not isinstance(value, bool):
                refuse(f.name, "true or false", value)
            continue
        if hint is str:
            if not isinstance(value, str):
                refuse(f.name, "a string", value)
            continue
        if optional(hint):
            if value is None:
                continue
            hint = optional(hint)
        items = [value]
        if typing.get_origin(hint) is tuple:
            lo_n, hi_n = f.metadata.get("length", (0, 4096))
            if not isinstance(value, (tuple, list)) or not lo_n <= len(value) <= hi_n:
                count = f"{lo_n}" if lo_n == hi_n else f"{lo_n} to {hi_n}"
                refuse(f.name, f"a list of {count} values", value)
            items, hint = list(value), typing.get_args(hint)[0]
        lo, hi = f.metadata.get("range", _ANY)
        for item in items:
            span = f" from {_show(lo)} to {_show(hi)}" if (lo, hi) != _ANY else ""
            if hint is int and (not _whole(item) or not lo <= item <= hi):
                refuse(f.name, f"a whole number{span}", item)
            if hint is float and (not _real(item) or not math.isfinite(item) or not lo <= item <= hi):
                refuse(f.name, f"a finite number{span}", item)


def check_inversion(cfg: InversionConfig, where: str | None = None, label: str = "inversion setting ",
                    tail: str = "") -> InversionConfig:
    """Types and ranges of inversion settings (a caller's or a model's)."""
    if not isinstance(cfg, InversionConfig):
        raise ReconstructionError(f"inversion settings must be a core.config.InversionConfig, got {type(cfg).__name__}")
    _check_section(cfg, label, where, tail)
    if where is None:
        check_loss(cfg.loss)
    else:
        _model_loss(cfg.loss, where, tail)
    return cfg


def _model_loss(loss, where: str, tail: str) -> None:
    if loss not in LOSSES:
        raise ReconstructionError(f"model setting 'inversion.loss' must be one of {', '.join(LOSSES)}, "
                                  f"got {_show(loss)}{tail}", where)


def check_model_config(cfg: ModelConfig, where: str) -> ModelConfig:
    """Every setting of a model's JSON within range; ``where`` (the JSON file) is named in the message.

    Whether the sizes fit the tensors is checked against the weights file when the model loads.
    """
    tail = f"; {_MODEL_TAIL}"
    if cfg.architecture not in ARCHITECTURES:
        raise ReconstructionError(f"model setting 'architecture' must be one of {', '.join(ARCHITECTURES)}, got "
                                  f"{_show(cfg.architecture)}{tail}", where)
    for name in ("generator", "render", "encoder", "segmenter", "pose", "mesh", "size_prior"):
        _check_section(getattr(cfg, name), f"model setting {name}.", where, tail)
    if 0 < cfg.encoder.crop_margin < 1:
        raise ReconstructionError(f"model setting 'encoder.crop_margin' must be 0 (the whole photo) or at least 1, "
                                  f"got {cfg.encoder.crop_margin:g}{tail}", where)
    seg = cfg.segmenter
    if seg.image_size and seg.image_size >> (len(seg.channels) - 1) < 1:
        raise ReconstructionError(f"model setting 'segmenter.image_size' ({seg.image_size}) is too small for "
                                  f"{len(seg.channels)} segmenter levels{tail}", where)
    check_inversion(cfg.inversion, where, "model setting inversion.", tail)
    if cfg.architecture == "nerf_from_image":
        return _check_paper(cfg, where, tail)
    gen, pose, mesh = cfg.generator, cfg.pose, cfg.mesh
    if pose.focal_max < pose.focal_min:
        raise ReconstructionError(f"model setting 'pose.focal_max' ({pose.focal_max:g}) is below 'pose.focal_min' "
                                  f"({pose.focal_min:g}){tail}", where)
    if 0 < mesh.coarse < 4:
        raise ReconstructionError(f"model setting 'mesh.coarse' must be 0 (off) or at least 4, got {mesh.coarse}{tail}",
                                  where)
    if cfg.encoder.image_size >> (len(cfg.encoder.channels) - 1) < 1:
        raise ReconstructionError(f"model setting 'encoder.image_size' ({cfg.encoder.image_size}) is too small for "
                                  f"{len(cfg.encoder.channels)} encoder levels{tail}", where)
    if gen.plane_res != 4 * 2 ** len(gen.synthesis_channels):
        raise ReconstructionError(f"model setting 'generator.plane_res' ({gen.plane_res}) must be 4 * 2**(number of "
                                  f"synthesis_channels) = {4 * 2 ** len(gen.synthesis_channels)}{tail}", where)
    return cfg


def _check_paper(cfg: ModelConfig, where: str, tail: str) -> ModelConfig:
    """The settings of a model of the paper's architecture (core.paper)."""
    paper = cfg.paper
    _check_section(paper, "model setting paper.", where, tail)
    if paper.plane_res & (paper.plane_res - 1) or paper.plane_res < 4:
        raise ReconstructionError(f"model setting 'paper.plane_res' must be a power of two, got {paper.plane_res}{tail}",
                                  where)
    rows = [paper.frame[i:i + 3] for i in (0, 3, 6)]
    gram = [[sum(a * b for a, b in zip(r, q)) for q in rows] for r in rows]
    det = (rows[0][0] * (rows[1][1] * rows[2][2] - rows[1][2] * rows[2][1])
           - rows[0][1] * (rows[1][0] * rows[2][2] - rows[1][2] * rows[2][0])
           + rows[0][2] * (rows[1][0] * rows[2][1] - rows[1][1] * rows[2][0]))
    if any(abs(gram[i][j] - (i == j)) > 1e-4 for i in range(3) for j in range(3)) or det < 0:
        raise ReconstructionError(f"model setting 'paper.frame' must be a rotation (row-major 3x3){tail}", where)
    if paper.noise_mode != "const":
        raise ReconstructionError(f"model setting 'paper.noise_mode' must be 'const', got {_show(paper.noise_mode)}{tail}",
                                  where)
    if any(d % h for d, h in zip(paper.encoder_dims, paper.encoder_heads)):
        raise ReconstructionError(f"model setting 'paper.encoder_heads' must divide 'paper.encoder_dims'{tail}", where)
    if paper.w_dim != cfg.generator.w_dim or paper.latent_dim != cfg.generator.z_dim:
        raise ReconstructionError(f"model settings 'generator.w_dim' / 'z_dim' must equal 'paper.w_dim' / "
                                  f"'latent_dim'{tail}", where)
    return cfg


def check_model_description(json_path) -> tuple[dict, ModelConfig]:
    """A model's JSON and its configuration, checked: a readable regular file holding an object with a
    ``config`` in range (:func:`check_model_config`) and the ``sha256`` of its weights."""
    where = str(json_path)
    check_input_file(json_path, "model description")
    try:
        meta = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ReconstructionError(f"model description is unreadable ({err}); reinstall the model", where) from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise ReconstructionError("model description is not a model's JSON (an object with 'config', 'sha256' ...); "
                                  "give the JSON that came with the weights", where)
    cfg = check_model_config(ModelConfig.from_dict(meta["config"], where), where)
    checksum = meta.get("sha256")
    if not isinstance(checksum, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", checksum):
        raise ReconstructionError("model description has no SHA-256 checksum of its weights ('sha256'), so their "
                                  "integrity cannot be checked; use the JSON that came with the weights", where)
    return meta, cfg


def check_model(name_or_path, model_dirs=()) -> Path:
    """A model name or path -> its JSON file, after the checks that need no torch: the description
    (:func:`check_model_description`) and a weights file that is a regular file. Its checksum, tensor
    shapes and values are checked when it loads (core.model)."""
    json_path = resolve_model(name_or_path, model_dirs)
    check_model_description(json_path)
    weights = json_path.with_suffix(".safetensors")
    if not os.path.lexists(weights):
        raise ReconstructionError("weights file is missing; reinstall the extension or retrain the model", str(weights))
    check_input_file(weights, "weights")
    return json_path


# --------------------------------------------------------------------------------------------
# files

_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_input_file(path, what: str = "image") -> str:
    """``path`` names a readable regular file; decided from ``stat`` alone, so a named pipe or a device
    is refused without being opened (opening a FIFO blocks until something writes to it).

    ``what``: 'image', 'mask', 'weights' ... as the message names it. Returns ``path`` as a string.
    """
    path = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    formats = IMAGE_FORMATS if what in ("image", "mask") else ""
    noun = f"an {what}" if what[:1] in "aeiou" else f"a {what}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ReconstructionError(f"{what} file not found: it is a link to a file that does not exist "
                                      f"({os.readlink(path)}); check the path", path) from None
        raise ReconstructionError(f"{what} file not found; check the path", path) from None
    except NotADirectoryError:
        raise ReconstructionError(f"{what} file not found (a folder on its path is a file); check the path",
                                  path) from None
    except PermissionError:
        raise ReconstructionError(f"cannot read the {what} file (permission denied); check its permissions",
                                  path) from None
    except OSError as err:
        reason = ("a symbolic link loop" if err.errno == errno.ELOOP else
                  "the name is too long" if err.errno == errno.ENAMETOOLONG else err.strerror or str(err))
        raise ReconstructionError(f"cannot open the {what} file ({reason}); check the path", path) from None
    except ValueError:  # an embedded NUL character
        raise ReconstructionError(f"not a valid file name for {noun} file; check the path", path) from None
    give = f"; give the path of a {formats} file" if formats else "; give the path of a file"
    if stat.S_ISDIR(st.st_mode):
        raise ReconstructionError(f"is a folder (directory), not {noun} file{give}", path)
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "not a regular file")
        raise ReconstructionError(f"is {kind}, not a regular {what} file; only regular files are read{give}", path)
    if st.st_size == 0:
        raise ReconstructionError(f"the {what} file is empty (0 bytes); re-export it or choose another file", path)
    return path


def _realpath(path: str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def _name_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def output_stems(paths, suffixes=(".json",), out_dir=None, keep=()) -> list[str]:
    """One file stem per input path, unique within the call, in input order.

    The first input with a stem keeps it; a later one with the same stem (compared without case, for
    case-insensitive file systems) gets ``_2``, ``_3``... (the first suffix that is no other input's
    stem). A stem is shortened so that it plus its suffix and the longest of ``suffixes`` fits
    ``NAME_MAX`` bytes. With ``out_dir``, a stem whose output file would be one of the inputs or of
    ``keep`` (masks) is bumped the same way, so an output never overwrites what the call reads.
    """
    room = NAME_MAX - max(_name_bytes(s) for s in suffixes) - 5  # "_" + up to four digits

    def fit(stem: str) -> str:
        while _name_bytes(stem) > room:
            stem = stem[:-1]
        return stem

    paths = [os.fspath(p) if isinstance(p, os.PathLike) else str(p) for p in paths]
    natural = [fit(Path(p).stem or "image") for p in paths]
    reserved = {stem.casefold() for stem in natural}
    inputs = {_realpath(p) for p in (*paths, *keep) if p}

    def reads_input(stem: str) -> bool:
        return out_dir is not None and any(_realpath(os.path.join(out_dir, stem + s)) in inputs for s in suffixes)

    used: set[str] = set()
    stems = []
    for stem in natural:
        candidate, n = stem, 1
        while (candidate.casefold() in used or (n > 1 and candidate.casefold() in reserved)
               or reads_input(candidate)):
            n += 1
            candidate = f"{stem}_{n}"
        used.add(candidate.casefold())
        stems.append(candidate)
    return stems
