"""The one public entry point: photos in, colored meshes and cameras out.

    from core import reconstruct
    results = reconstruct(["chair.png"], model="chairs", steps=10, out_dir="out")

Stages per batch of images (core.pipeline): load + crop (core.io.images), encoder (canonical map, mask, w), PnP
(core.geometry.pnp) and the choice among its turns about the up axis (core.fit.hypotheses), hybrid inversion (core.fit.invert), marching cubes (core.mesh), files
(core.io.export). Per-image problems never raise: the result says ``ok=False`` and ``error`` is a
one-line message naming the file. Problems of the whole call (unknown model, bad option, unwritable
output folder) raise ReconstructionError.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Sequence

import torch

from .config import SIDE_FILES, ReconstructOptions
from .errors import EmptySurface, ReconstructionError
from .io.memory import ImageArray
from .fit.invert import InversionStart, InversionTarget, PoseParams, invert
from .model import ReconstructionModel, available_models, load_model  # noqa: F401  (re-exported)
from .pipeline import (FREE_FOCAL_SOURCES, Call, CropIntrinsics, Item, Pipeline,  # noqa: F401  (re-exported)
                       ProgressCallback, callers_errors_propagate, load_images, make_items, reconstruct_each,
                       resolve_options, start_call)
from .result import ReconstructionResult
from .validate import check_inputs, output_stems, resolve_device


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA, then MPS, then CPU; an explicit device that is not available is an error
    (:func:`core.validate.resolve_device`)."""
    return resolve_device(device)


@callers_errors_propagate
def reconstruct(images: Sequence[str | os.PathLike | ImageArray] | str | os.PathLike | ImageArray,
                options: ReconstructOptions | None = None,
                *, masks: Sequence[str | None] | str | None = None, progress: ProgressCallback | None = None,
                cancel: Callable[[], bool] | None = None, **changes) -> list[ReconstructionResult]:
    """Reconstruct every image; see the module docstring. Results come back in input order.

    An image is a file's path, or a photo in memory (:class:`core.io.memory.ImageArray`: pixels as an
    (H, W, 3|4) array, or a file's bytes, with the name messages and output files use).

    ``options`` (:class:`core.config.ReconstructOptions`) says what to do; keyword arguments named like
    its fields change single options (``reconstruct(paths, model="chairs", steps=0)``); ``inversion`` may
    also be a dict of :class:`core.config.InversionConfig` fields that change the model's own settings. ``masks``: one
    mask file per image, or None. ``progress(stage, step, total, loss)`` is called as the work goes
    on; ``cancel()`` returning True stops it at the next step (the images not finished come back with
    a 'cancelled' error). An exception raised by ``progress`` or ``cancel`` stops the call and is
    raised from it unchanged (:func:`callers_errors_propagate`).
    """
    options, inversion_changes = resolve_options(options, changes)
    images, masks = check_inputs(images, masks, progress, cancel)
    call, load_model_s = start_call(options, inversion_changes, progress, cancel)
    options = call.options
    dev = call.pipe.device
    names = [str(image) for image in images]  # a photo in memory: its name
    stems = output_stems(names, (f".{options.fmt}", ".json", *SIDE_FILES.get(options.fmt, ())), options.out_dir, masks)
    items = make_items(images, masks, stems)
    batch_size = options.batch_size or (1 if dev.type == "cpu" else 4)
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        _run_batch(call, batch, load_model_s if start == 0 else 0.0)
    return [item.result for item in items]


def warm_up(model: str = "chairs", device: str = "auto", model_dirs: Sequence[str] = ()) -> float:
    """Pay a process's one-time costs before its first photo; returns the seconds it took.

    Imports what a reconstruction imports late (marching cubes, the mesh writers), loads the model
    into the cache and runs its encoder, one inversion step at a tiny size and a 16^3 mesh (textured), so the
    first ``reconstruct`` call runs as fast as later ones. Needs no file; safe from a worker thread
    (the Blender panel calls it in the background when it first shows the model).
    """
    from .geometry.camera import orbit_pose
    from .io import export  # noqa: F401  (the mesh writers: trimesh)

    t0 = time.perf_counter()
    dev = pick_device(device)
    pipe = Pipeline(load_model(model, dev, tuple(model_dirs)), dev)
    gen, s = pipe.model.generator, pipe.size
    pipe.encode(torch.ones(1, 2 * s, 2 * s, 3, device=dev))
    cam = torch.tensor(orbit_pose(30.0, 20.0, 2.5), dtype=torch.float32, device=dev)[None]
    start = InversionStart(gen.w_avg.expand(1, gen.cfg.num_ws, -1).clone(),
                           PoseParams.from_cam2world(cam, torch.tensor([1.5 * s], device=dev)))
    target = InversionTarget(torch.ones(1, 16, 16, 3, device=dev), torch.zeros(1, 16, 16, device=dev))
    small = dataclasses.replace(pipe.cfg.inversion, steps=1, size=8, n_patches=0)
    inv = invert(gen, pipe.render_cfg, target, start, small)
    try:
        mesh = pipe.mesh(inv.ws[0], 16, "warm-up", inv.plane_offset)
        from .texture import texture_mesh

        texture_mesh(mesh, 64)  # the atlas and bake's imports (SciPy's graphs, OpenCV)
    except EmptySurface:
        pass
    return time.perf_counter() - t0


def _run_batch(call: Call, batch: list[Item], load_model_s: float) -> None:
    """Load and reconstruct one batch of images, each on its own; a CUDA out-of-memory error retries them one
    at a time with smaller ray chunks. Every item of ``batch`` ends with its result."""
    live = load_images(call, batch, load_model_s)
    if not live:
        return
    try:
        reconstruct_each(call, live)
    except torch.cuda.OutOfMemoryError:
        # retry one image at a time with smaller ray chunks (this call's copy of the settings)
        torch.cuda.empty_cache()
        call.pipe.render_cfg.chunk = max(1024, call.pipe.render_cfg.chunk // 4)
        for item in live:
            try:
                reconstruct_each(call, [item])
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                item.result = call.fail(item.path, ReconstructionError(
                    "out of GPU memory even with small chunks; close other GPU programs or use the CPU device",
                    item.path))
