"""Shape, pose and appearance from a single image (Pavllo et al., CVPR 2023), as a plain library.

Importing this package is cheap; torch is imported on first use.

    from core import reconstruct
    results = reconstruct(["photo.png"], model="chairs", steps=10, out_dir="out")
"""

from __future__ import annotations

from .errors import Cancelled, ReconstructionError

__all__ = ["reconstruct", "warm_up", "available_models", "ReconstructionError", "Cancelled"]


def reconstruct(*args, **kwargs):
    """See :func:`core.api.reconstruct`."""
    from .api import reconstruct as _reconstruct

    return _reconstruct(*args, **kwargs)


def warm_up(*args, **kwargs):
    """See :func:`core.api.warm_up`."""
    from .api import warm_up as _warm_up

    return _warm_up(*args, **kwargs)


def available_models(extra_dirs=()):
    """Names of the installed models (see :func:`core.model.available_models`)."""
    from .model import available_models as _available

    return _available(extra_dirs)
