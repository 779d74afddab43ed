"""Read a reference checkpoint (a ``torch.save`` file of google-research/nerf-from-image) without running code.

Such a file is a pickle: loading it the ordinary way can execute anything its author put in it. Here it
is read by ``torch.load(weights_only=True)``, whose unpickler builds tensors, storages and plain
containers (dict, list, tuple, str, numbers) and nothing else, and before that every global the pickle
names is listed (without unpickling) and compared with that set plus NumPy's array and scalar
constructors (the reference stores its random-number states as NumPy arrays). A file naming anything
else is refused with a message naming it; nothing in it has run.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import ReconstructionError
from ..validate import check_input_file

_NUMPY_DATA = {
    "numpy.core.multiarray._reconstruct": np.core.multiarray._reconstruct,
    "numpy._core.multiarray._reconstruct": np.core.multiarray._reconstruct,
    "numpy.core.multiarray.scalar": np.core.multiarray.scalar,
    "numpy._core.multiarray.scalar": np.core.multiarray.scalar,
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
}
"""the NumPy globals allowed besides torch's own: they build arrays, dtypes and scalars from bytes."""


def _numpy_dtype_classes() -> dict:
    """NumPy >= 1.25 pickles a dtype with its class (numpy.dtypes.Float64DType ...): data types, no code."""
    dtypes = getattr(np, "dtypes", None)
    if dtypes is None:
        return {}
    return {f"numpy.dtypes.{name}": getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")}


def read_checkpoint(path: str | Path) -> dict:
    """The dictionary a reference ``torch.save`` file holds, tensors on the CPU.

    Raises :class:`ReconstructionError` naming the file for a missing, unreadable or damaged file, a
    file that is not a torch checkpoint, one that is not a dictionary, and one whose pickle names any
    global beyond tensors, plain containers and NumPy arrays (refused before anything is built).
    """
    where = str(path)
    check_input_file(path, "checkpoint")
    _check_kind(where)
    allowed = {**_NUMPY_DATA, **_numpy_dtype_classes()}
    if zipfile.is_zipfile(path):
        try:
            named = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except (RuntimeError, ValueError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
            raise ReconstructionError(f"checkpoint cannot be read ({_first_line(err)}); is it a complete "
                                      "torch.save file?", where) from None
        foreign = sorted(set(named) - set(allowed))
        if foreign:
            raise ReconstructionError(
                f"checkpoint refused: it contains a pickled object of type '{foreign[0]}', and only tensors, "
                "plain containers and NumPy arrays are accepted (nothing in it was run); "
                "use the reference code's own checkpoint files", where)
    try:
        with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()]):
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ReconstructionError(
            f"checkpoint refused: {_refusal(err)} (only tensors, plain containers and NumPy arrays are "
            "accepted; nothing in it was run); use the reference code's own checkpoint files", where) from None
    except (RuntimeError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ReconstructionError(f"checkpoint cannot be read ({_first_line(err)}); is it a complete "
                                  "torch.save file?", where) from None
    except Exception as err:  # noqa: BLE001 - a damaged pickle raises KeyError, IndexError, struct.error ...
        raise ReconstructionError(f"not a PyTorch checkpoint, or a damaged one ({type(err).__name__}: "
                                  f"{_first_line(err)}); give a checkpoint file of the reference code", where) from None
    if not isinstance(data, dict):
        raise ReconstructionError(f"checkpoint holds a {type(data).__name__}, not the reference code's dictionary "
                                  "('model_ema' for a generator, 'model_coord' for an encoder)", where)
    return data


_KINDS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x1f\x8b", "a gzip archive"), (b"BZh", "a bzip2 archive"), (b"\xfd7zXZ", "an xz archive"),
          (b"7z\xbc\xaf", "a 7-Zip archive"), (b"%PDF", "a PDF document"), (b"\x93NUMPY", "a NumPy .npy file"),
          (b"\x89HDF", "an HDF5 file"))
_TORCH_LEGACY = b"\x80"
"""a torch.save file is a ZIP archive (since torch 1.6) or a pickle, which starts with its PROTO opcode."""


def _check_kind(where: str) -> None:
    """Refuse a file that is neither a ZIP archive nor a pickle from its first bytes, naming what it is."""
    try:
        with open(where, "rb") as f:
            head = f.read(64)
    except OSError as err:
        raise ReconstructionError(f"checkpoint cannot be read ({err.strerror or err}); check the file", where) from None
    if head.startswith(b"PK\x03\x04") or head.startswith(_TORCH_LEGACY):
        return
    kind = next((name for magic, name in _KINDS if head.startswith(magic)), None)
    if kind is None:
        plain = head.replace(b"\t", b" ").replace(b"\r", b" ").replace(b"\n", b" ")
        kind = ("a text file" if plain.isascii() and plain.decode("ascii").isprintable() else
                "neither a ZIP archive nor a pickle, as torch.save writes")
    raise ReconstructionError(f"not a PyTorch checkpoint (it is {kind}); give a checkpoint file of the reference "
                              "code (torch.save, gan_checkpoints/.../checkpoint_*.pth or coords_checkpoints/...)", where)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _refusal(err: pickle.UnpicklingError) -> str:
    """torch's weights-only refusal in one line: the global or instruction it would not load."""
    for line in str(err).splitlines():
        line = line.strip()
        found = re.search(r"GLOBAL ([\w.]+)", line)
        if found:
            return f"it contains a pickled object of type '{found.group(1)}'"
        if line.startswith(("Unsupported", "Trying to load")):
            return f"it contains something other than data ({line.rstrip('.')})"
    return "it is not a weights-only torch checkpoint"
