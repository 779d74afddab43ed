"""The stages of a reconstruction, shared by one photo per object (:func:`core.api.reconstruct`) and
several photos of one object (:func:`core.joint.reconstruct_object`).

A call runs, in order:

1. :func:`resolve_options`: the caller's options and keyword changes, checked.
2. :func:`start_call`: the output folder checked, the model loaded on its device -> a :class:`Call`.
3. :func:`load_images`: every :class:`Item` (one input photo) loaded and cropped (core.io.images).
4. :func:`encode_and_pose`: encoder (canonical map, mask, latent) and pose solver (core.geometry.pnp)
   -> :class:`Placed`.
5. the choice among the camera's turns about the up axis (core.fit.hypotheses) and the hybrid
   inversion (core.fit.invert): per photo in :func:`reconstruct_each`, all photos together in
   core.joint.
6. :func:`mesh_with_fallbacks`: marching cubes (core.mesh) of the fitted field.
7. :func:`deliver`: decimated, textured from the photos, placed on the floor; :func:`finish` writes one
   photo's result and files (core.io.export).

Per-image problems never raise: the image's result says ``ok=False`` and ``error`` is a one-line
message naming the file (:meth:`Call.fail`). The caller's ``progress`` and ``cancel`` callbacks follow
:func:`callers_errors_propagate`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .config import InversionConfig, ReconstructOptions, replaced
from .errors import Cancelled, EmptySurface, ReconstructionError, display_path, error_kind
from .fit.hypotheses import choose_pose
from .fit.invert import InversionStart, InversionTarget, PoseParams, invert
from .geometry.camera import crop_to_original, original_to_crop
from .geometry.lens import photo_focal
from .io.memory import ImageArray
from .model import ReconstructionModel, load_model
from .result import CameraInfo, ReconstructionResult
from .validate import check_inversion, check_options, check_out_dir, resolve_device

FREE_FOCAL_SOURCES = ("default", "estimated")
"""focal-length sources the inversion may change: a stated one (EXIF, given) is the photo's own."""
ProgressCallback = Callable[[str, int, int, "float | None"], None]
"""progress(stage, step, total, loss): stage is 'load', 'encoder', 'pose', 'inversion' or 'mesh'."""


@dataclass
class CropIntrinsics:
    """The photo's camera in pixels of the crop resampled for the encoder."""

    focal: float | None
    """focal length (None: the pose solver searches it)."""
    cx: float
    """principal point x: the photo's centre (where a camera's optical axis meets it)."""
    cy: float
    """principal point y."""
    source: str
    """'given', 'exif', 'default' or 'estimated'."""


class Pipeline:
    """A loaded model on a device, ready to reconstruct batches of prepared images.

    ``render_cfg`` is this pipeline's own copy of the model's renderer settings: a CUDA out-of-memory
    retry shrinks its chunk size without touching the cached model.
    """

    def __init__(self, model: ReconstructionModel, device: torch.device, size: int | None = None):
        if model.encoder is None:
            raise ReconstructionError(f"model '{getattr(model, 'name', model.cfg.name)}' has no encoder, so it cannot "
                                      "place a camera or start from a photo; import it again with its encoder "
                                      "checkpoint (python -m core import-model GENERATOR ENCODER ...)")
        self.model = model
        self.device = device
        self.cfg = model.cfg
        self.render_cfg = dataclasses.replace(model.cfg.render)
        self.size = int(size or model.cfg.inversion.size)
        """side of the inversion's renders (the call's inversion settings; the crop is loaded at twice it)."""

    def prepare(self, path: str, mask: str | None):
        from .io.images import prepare_image

        return prepare_image(path, 2 * self.size, mask_path=mask, background=self.cfg.render.background,
                             margin=self.cfg.encoder.crop_margin, net=self.foreground_net())

    def foreground_net(self):
        """The model's segmenter, else the encoder's mask head when the encoder was trained on photo-like
        backgrounds (``encoder.photo_masks``), as a core.io.images.ForegroundNet; else None."""
        from .io.images import ForegroundNet

        if self.model.segmenter is not None:
            logits, size, source = self.model.segmenter, self.cfg.segmenter.image_size, "segmenter"
        elif self.cfg.encoder.photo_masks:
            logits, size, source = (lambda x: self.model.encoder(x).mask_logits), self.cfg.encoder.image_size, "encoder"
        else:
            return None

        def predict(image: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None].to(self.device)
            with torch.no_grad():
                return torch.sigmoid(logits(x))[0].float().cpu().numpy()

        return ForegroundNet(size, predict, source)

    def encode(self, image_hi: torch.Tensor):
        lo = torch.nn.functional.avg_pool2d(image_hi.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        if lo.shape[1] != self.cfg.encoder.image_size:
            lo = torch.nn.functional.interpolate(lo.permute(0, 3, 1, 2), size=self.cfg.encoder.image_size,
                                                 mode="area").permute(0, 2, 3, 1)
        with torch.no_grad():
            return self.model.encoder(lo)

    def intrinsics(self, prep, focal_mm: float | None, size: int) -> CropIntrinsics:
        """The photo's camera in pixels of its crop resampled to size x size."""
        crop = prep.crop
        focal, source = photo_focal(crop.orig_width, crop.orig_height, focal_mm, prep.loaded.focal_35mm,
                                    self.cfg.pose.default_focal_mm)
        f, cx, cy = original_to_crop(focal or 0.0, crop.orig_width / 2, crop.orig_height / 2, crop)
        k = size / crop.out_size
        return CropIntrinsics(None if focal is None else f * k, cx * k, cy * k, source)

    def solve_pose(self, coords: torch.Tensor, mask_logits: torch.Tensor, input_mask: torch.Tensor,
                   intrinsics: CropIntrinsics, path: str) -> tuple[torch.Tensor, float]:
        """Encoder maps of one image (S, S, ...) -> (cam2world (4, 4), focal in crop pixels)."""
        from .geometry.camera import pixel_grid
        from .geometry.pnp import PnPCamera, solve_pnp

        s = coords.shape[0]
        prob = torch.sigmoid(mask_logits).cpu().numpy().reshape(-1)
        inp = input_mask.cpu().numpy().reshape(-1)
        keep = (prob > 0.5) & (inp > 0.5)
        if keep.sum() < 12:
            keep = inp > 0.5
        pose_cfg = self.cfg.pose
        focals = (np.geomspace(pose_cfg.focal_min, pose_cfg.focal_max, pose_cfg.focal_count) * s
                  if intrinsics.focal is None else [intrinsics.focal])
        pix = pixel_grid(s, s).numpy()
        res = solve_pnp(pix[keep], coords.reshape(-1, 3).cpu().numpy()[keep].astype(np.float64),
                        PnPCamera(s, s, (intrinsics.cx, intrinsics.cy), focals),
                        weights=(prob[keep] * inp[keep]).astype(np.float64) + 1e-3, path=path)
        return torch.tensor(res.cam2world, dtype=torch.float32), float(res.focal)

    def mesh(self, ws: torch.Tensor, resolution: int, path: str, plane_offset: torch.Tensor | None = None,
             cancel: Callable[[], bool] | None = None, photos: Sequence[tuple] = ()):
        """The colored mesh of one latent; ``cancel()`` is polled before every chunk of points queried.
        ``photos``: (PreparedImage, CameraInfo in its original pixels) of each photo of the object; with
        ``mesh.carve_px`` set, each photo's silhouette cuts the surface (core.mesh.silhouette_cone)."""
        from .mesh import extract_mesh, silhouette_cone

        gen = self.model.generator
        with torch.no_grad():
            state = gen.decode(ws[None].to(self.device), plane_offset)
        level = self.cfg.mesh.level_betas * float(gen.beta)
        margin = self.cfg.mesh.carve_px
        silhouettes = [] if margin is None else [(prep.full_mask > 0.5, prep.loaded.scale, cam) for prep, cam in photos]
        cones = [silhouette_cone(mask, cam.cam2world, cam.focal_px * k, cam.cx * k, cam.cy * k, margin)
                 for mask, k, cam in silhouettes if mask.any()]

        def query_sdf(p):
            if cancel is not None and cancel():
                raise Cancelled(path)
            sdf = gen.query(state, p[None].to(self.device), with_color=False).sdf[0] - level
            for cone in cones:
                sdf = torch.maximum(sdf, cone(p.to(self.device)))
            return sdf

        def query_slots(p):  # the color-slot weights; their mix of state.color_values is the vertex color
            if cancel is not None and cancel():
                raise Cancelled(path)
            return gen.query(state, p[None].to(self.device), with_color=False, with_weights=True).weights[0]

        def query_color(p):  # a generator whose slots mix after its sigmoid (the paper's): colours only
            if cancel is not None and cancel():
                raise Cancelled(path)
            return gen.query(state, p[None].to(self.device)).rgb[0]

        grid = dataclasses.replace(self.cfg.mesh, resolution=resolution)
        if not gen.recolorable:
            return extract_mesh(query_sdf, query_color, grid, bound=gen.cfg.bound, device=self.device, path=path)
        return extract_mesh(query_sdf, None, grid, bound=gen.cfg.bound, device=self.device, path=path,
                            slots=(query_slots, state.color_values[0].float().cpu().numpy(),
                                   tuple(self.cfg.generator.slot_groups)))


class _CallerError(BaseException):
    """An exception raised by the caller's ``progress`` or ``cancel``, on its way out of the call.

    A BaseException, so that no per-image ``except Exception`` turns the caller's bug into an image's
    failure; :func:`callers_errors_propagate` re-raises the caller's own exception at the call's edge.
    """

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


def _guarded(callback):
    """``callback`` (or None) whose exceptions leave as :class:`_CallerError` (wrapped once)."""
    if callback is None or getattr(callback, "_guarded", False):
        return callback

    @functools.wraps(callback)
    def call(*args):
        try:
            return callback(*args)
        except Exception as err:  # noqa: BLE001 - any error of the caller's code is the caller's
            raise _CallerError(err) from None

    call._guarded = True
    return call


def callers_errors_propagate(function):
    """THE rule for the caller's callbacks (docs/CONVENTIONS.md, "Callbacks"): an exception raised by
    ``progress`` or ``cancel``, in any stage, stops the call and leaves it unchanged (the same object,
    its own traceback); it is never reported as an image's failure. Files of images finished before it
    stay written; nothing half-written is left."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except _CallerError as wrapped:
            raise wrapped.error.with_traceback(wrapped.error.__traceback__) from None

    return call


@dataclass
class Call:
    """One call's resolved settings and callbacks, shared by all of its batches.

    ``report`` and ``cancel`` are the caller's callbacks, guarded: what they raise passes every stage's
    error handling and leaves the call (:func:`callers_errors_propagate`)."""

    pipe: Pipeline
    options: ReconstructOptions
    """the options with ``steps`` and ``mesh_resolution`` resolved."""
    inversion: InversionConfig
    """the model's (or the caller's) inversion settings with the call's steps and seed."""
    report: ProgressCallback
    cancel: Callable[[], bool] | None
    out: Path | None

    def __post_init__(self):
        self.report, self.cancel = _guarded(self.report), _guarded(self.cancel)

    def cancelled(self) -> bool:
        """Whether the caller asked to stop (its ``cancel()``)."""
        return self.cancel is not None and bool(self.cancel())

    def fail(self, image: str, err: Exception) -> ReconstructionResult:
        """The failed result of ``image``: one line naming the file (an error not of ours says 'internal error')."""
        if isinstance(err, ReconstructionError):
            msg = str(err) if err.path else f"{display_path(image)}: {err}"
        else:
            msg = f"{display_path(image)}: internal error ({type(err).__name__}: {err}); please report it"
        return ReconstructionResult(image=image, ok=False, error=msg.splitlines()[0], error_kind=error_kind(err),
                                    model=self.options.model, steps=self.inversion.steps, device=str(self.pipe.device))


@dataclass
class Item:
    """One input image on its way through the stages."""

    path: str
    """the image's file, or the name of a photo in memory (``source``), as messages and results name it."""
    mask: str | None
    stem: str = ""
    """the output files' name without suffix, unique within the call (core.validate.output_stems)."""
    source: ImageArray | None = None
    """the photo in memory, when it is no file."""
    prepared: object | None = None
    """core.io.images.PreparedImage once loaded."""
    intrinsics: CropIntrinsics | None = None
    timings: dict[str, float] = field(default_factory=dict)
    pose_candidates: list[dict] = field(default_factory=list)
    """the pose hypotheses scored for this image (yaw, loss, chosen)."""
    result: ReconstructionResult | None = None


def make_items(images: list, masks: list, stems: Sequence[str] | None = None) -> list[Item]:
    """One :class:`Item` per input (a path, or a photo in memory named by its ``name``)."""
    stems = list(stems) if stems is not None else [""] * len(images)
    return [Item(image.name, mask, stem, source=image) if isinstance(image, ImageArray) else Item(image, mask, stem)
            for image, mask, stem in zip(images, masks, stems)]


def _focal_mm(options: ReconstructOptions) -> float | None:
    """The focal length core.geometry.lens.photo_focal is asked for: the given one, 0 (search it) with
    ``estimate_focal``, else None (EXIF, else the model's default)."""
    if options.focal_mm is None and options.estimate_focal:
        return 0.0
    return options.focal_mm


def resolve_options(options: ReconstructOptions | None, changes: dict) -> tuple[ReconstructOptions, dict]:
    """The caller's options with keyword changes applied and checked, and the inversion settings to
    change on the model's own (an ``inversion`` dict)."""
    if options is not None and not isinstance(options, ReconstructOptions):
        raise ReconstructionError(f"options must be a core.config.ReconstructOptions, got {type(options).__name__}")
    names = {f.name for f in dataclasses.fields(options or ReconstructOptions)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ReconstructionError(f"unknown option '{unknown[0]}'; known: {', '.join(sorted(names))}")
    inversion_changes = changes.pop("inversion") if isinstance(changes.get("inversion"), dict) else {}
    options = check_options(dataclasses.replace(options or ReconstructOptions(), **changes))
    check_inversion(replaced(InversionConfig(), inversion_changes))
    return options, inversion_changes


def start_call(options: ReconstructOptions, inversion_changes: dict, progress: ProgressCallback | None,
               cancel: Callable[[], bool] | None) -> tuple[Call, float]:
    """Checked options (:func:`resolve_options`) -> (the :class:`Call`: the model loaded on its device, the
    output folder checked, ``steps``, ``mesh_resolution`` and the inversion's settings resolved; seconds the
    model's load took). Raises ReconstructionError for an unwritable output folder or a refused model."""
    dev = resolve_device(options.device)
    # the output folder before the model (seconds): a refusal costs nothing; a refused model leaves no new folder
    created = options.out_dir is not None and not os.path.lexists(options.out_dir)
    out = check_out_dir(options.out_dir) if options.out_dir is not None else None
    t0 = time.perf_counter()
    try:
        net = load_model(options.model, dev, options.model_dirs)
    except BaseException:
        if created:
            _remove_empty(out)
        raise
    load_model_s = time.perf_counter() - t0
    cfg = net.cfg
    inversion = replaced(options.inversion or cfg.inversion, inversion_changes, options.model)
    steps = inversion.steps if options.steps is None else int(options.steps)
    resolution = cfg.mesh.resolution if options.mesh_resolution is None else int(options.mesh_resolution)
    options = dataclasses.replace(options, steps=steps, mesh_resolution=resolution)
    inversion = dataclasses.replace(inversion, steps=steps, seed=int(options.seed))
    return Call(Pipeline(net, dev, inversion.size), options, inversion, progress or (lambda *a: None), cancel, out), load_model_s


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` (made by this call) again when it is still empty."""
    try:
        folder.rmdir()
    except OSError:
        pass


def load_images(call: Call, batch: list[Item], load_model_s: float) -> list[Item]:
    """Load and crop every image (``item.prepared``; a failure becomes its ``result``); returns those that
    loaded. ``load_model_s`` is counted in the first image's load time."""
    for n, item in enumerate(batch):
        t = time.perf_counter()
        call.report("load", n + 1, len(batch), None)
        try:
            if call.cancelled():
                raise Cancelled(item.path)
            item.prepared = call.pipe.prepare(item.path if item.source is None else item.source, item.mask)
        except Exception as err:  # noqa: BLE001 - every failure becomes a result
            item.result = call.fail(item.path, err)
        item.timings = {"load": time.perf_counter() - t + load_model_s}
        load_model_s = 0.0
    return [item for item in batch if item.result is None]


@dataclass
class Placed:
    """Encoded images with a first camera each (the pose solver's), ready for the inversion."""

    live: list[Item]
    """the images that got a camera (the others have a failed result)."""
    ws: torch.Tensor
    """(B, num_ws, w_dim) the encoder's latents."""
    target: InversionTarget
    """the crops the inversion compares with."""
    pose: PoseParams
    """(B) the solved crop cameras."""


def encode_and_pose(call: Call, live: list[Item]) -> Placed | None:
    """Encoder and pose solver for loaded images (``item.prepared``) -> :class:`Placed` (latents, crops and
    solved cameras of the images that got one; each item's ``intrinsics`` set); an image the solver cannot
    place gets its failed ``result``. None when no image got a camera (or on cancel)."""
    pipe, dev, s = call.pipe, call.pipe.device, call.pipe.size
    image_hi = torch.stack([torch.from_numpy(item.prepared.image).float() for item in live]).to(dev)
    mask_hi = torch.stack([torch.from_numpy(item.prepared.mask).float() for item in live]).to(dev)
    t = time.perf_counter()
    call.report("encoder", 1, 1, None)
    enc = pipe.encode(image_hi)
    t_enc = (time.perf_counter() - t) / len(live)
    # the input's mask at the encoder's resolution, for the pose solver
    enc_size = enc.coords.shape[1]
    mask_enc = torch.nn.functional.interpolate(mask_hi[:, None], size=enc_size, mode="area")[:, 0]
    if stopped(call, live):
        return None
    poses, ok = [], []
    for k, item in enumerate(live):
        t = time.perf_counter()
        call.report("pose", k + 1, len(live), None)
        try:
            item.intrinsics = pipe.intrinsics(item.prepared, _focal_mm(call.options), enc_size)
            poses.append(pipe.solve_pose(enc.coords[k], enc.mask_logits[k], mask_enc[k], item.intrinsics, item.path))
            ok.append(k)
        except Exception as err:  # noqa: BLE001
            item.result = call.fail(item.path, err)
        item.timings.update(encoder=t_enc, pose=time.perf_counter() - t)
    if not ok:
        return None
    live = [live[k] for k in ok]
    cam2world = torch.stack([c2w for c2w, _ in poses]).to(dev)
    # the encoder's pixels -> the inversion's (the same crop, s pixels a side)
    to_inv = s / enc_size
    focal = torch.tensor([f for _, f in poses], device=dev) * to_inv
    principal = torch.tensor([[item.intrinsics.cx, item.intrinsics.cy] for item in live], device=dev,
                             dtype=torch.float32) * to_inv
    ws = enc.w[ok][:, None].expand(-1, pipe.model.generator.cfg.num_ws, -1).contiguous()
    return Placed(live, ws, InversionTarget(image_hi[ok], mask_hi[ok]),
                   PoseParams.from_cam2world(cam2world, focal, principal))


def stopped(call: Call, live: list[Item]) -> bool:
    """True (and every image of ``live`` failed as cancelled) when the caller asked to stop."""
    if not call.cancelled():
        return False
    for item in live:
        item.result = call.fail(item.path, Cancelled(item.path))
    return True


def reconstruct_each(call: Call, live: list[Item]) -> None:
    """Loaded images, each its own object: encoder and pose (:func:`encode_and_pose`), the pose hypotheses,
    one batched inversion (each image its own latent), then :func:`finish` per image. Fills every item's
    ``result`` (a failure or a cancel becomes the result); returns nothing."""
    placed = encode_and_pose(call, live)
    if placed is None:
        return
    pipe, live, ws, target, pose = call.pipe, placed.live, placed.ws, placed.target, placed.pose
    yaws = tuple(pipe.cfg.pose.yaw_hypotheses)
    if len(yaws) > 1:
        t = time.perf_counter()
        choice = choose_pose(pipe.model.generator, pipe.render_cfg, target, ws, pose, pipe.cfg.pose, call.inversion)
        pose = choice.pose
        for k, item in enumerate(live):
            item.timings["pose"] += (time.perf_counter() - t) / len(live)
            item.pose_candidates = [{"yaw_deg": yaw, "loss": round(float(choice.losses[k, j]), 6),
                                     "chosen": j == int(choice.chosen[k])} for j, yaw in enumerate(yaws)]
    if stopped(call, live):
        return
    start = InversionStart(ws, pose, torch.tensor([item.intrinsics.source in FREE_FOCAL_SOURCES for item in live]))
    t = time.perf_counter()
    try:
        inv = invert(pipe.model.generator, pipe.render_cfg, target, start,
                     call.inversion, progress=lambda n, total, value: call.report("inversion", n, total, value),
                     cancel=call.cancel)
    except Cancelled:
        for item in live:
            item.result = call.fail(item.path, Cancelled(item.path))
        return
    t_inv = (time.perf_counter() - t) / len(live)
    for k, item in enumerate(live):
        item.timings["inversion"] = t_inv
        try:
            if call.cancelled():
                raise Cancelled(item.path)
            item.result = finish(call, item, inv, k, ws[k])
        except Exception as err:  # noqa: BLE001
            item.result = call.fail(item.path, err)


def mesh_with_fallbacks(call: Call, path: str, latent: torch.Tensor, offset: torch.Tensor | None,
                        guess: torch.Tensor, photos: list[tuple]):
    """(mesh, latent, offset) of the fitted field cut by the photos' silhouettes (Pipeline.mesh; not at
    N=0, where neither shape nor camera was fitted to them). When that leaves no surface: uncut, then the
    encoder's ``guess`` (the inversion pushed the field off the shape); EmptySurface when nothing is left."""
    fitted = bool(call.inversion.steps)  # the encoder's guess is not fitted to the silhouettes: they do not cut it
    cut = photos if fitted and call.pipe.cfg.mesh.carve_px is not None else []
    tries = [(latent, offset, cut)]
    if cut:
        tries.append((latent, offset, []))  # the photos' cut left nothing: a camera far off
    if fitted:
        tries.append((guess, None, []))
    for n, (ws, plane_offset, cut_by) in enumerate(tries):
        try:
            return (call.pipe.mesh(ws, call.options.mesh_resolution, path, plane_offset, call.cancel, cut_by),
                    ws, plane_offset)
        except EmptySurface:
            if n == len(tries) - 1:
                raise


def deliver(call: Call, mesh, photos: list[tuple]) -> tuple:
    """The delivered asset of a canonical ``mesh`` seen by ``photos`` ((PreparedImage, CameraInfo) each):
    decimated to ``faces``, textured from the photos (``texture_size``), then placed on the floor at its real
    size (core.place; ``place``). Returns (mesh, cameras, Placement or None, {stage: seconds})."""
    options, timings = call.options, {}
    cameras = [cam for _, cam in photos]
    if options.faces is not None:
        from .mesh import decimate

        t = time.perf_counter()
        mesh = decimate(mesh, options.faces)
        timings["decimate"] = time.perf_counter() - t
    if options.texture_size:
        from .texture import View, texture_mesh

        t = time.perf_counter()
        views = [View(cam, prep.loaded.rgb, prep.full_mask, prep.loaded.scale) for prep, cam in photos]
        mesh = texture_mesh(mesh, options.texture_size, views)
        timings["texture"] = time.perf_counter() - t
    placement = None
    if options.place:
        from .place import place

        mesh, cameras, placement = place(mesh, cameras, options.height_m, call.pipe.cfg.size_prior.height_m)
    return mesh, cameras, placement, timings


def photo_camera(cams, k: int, crop, s: int) -> CameraInfo:
    """Camera ``k`` of the crop cameras ``cams`` (rendered at ``s`` pixels) in its ORIGINAL photo."""
    scale = crop.out_size / s
    f, cx, cy = crop_to_original(float(cams.focal[k]) * scale, float(cams.cx[k]) * scale,
                                 float(cams.cy[k]) * scale, crop)
    return CameraInfo(cams.cam2world[k].detach().cpu().double().numpy(), f, crop.orig_width, crop.orig_height, cx, cy)


def finish(call: Call, item: Item, inv, k: int, guess: torch.Tensor) -> ReconstructionResult:
    """Image ``k`` of the inversion ``inv`` (``guess``: its encoder latent) -> its ok result: mesh
    (:func:`mesh_with_fallbacks`, :func:`deliver`), camera in the original photo, losses and timings; its files
    written when the call has an output folder. Raises Cancelled, EmptySurface or ReconstructionError."""
    pipe, prep, s = call.pipe, item.prepared, call.pipe.size
    t = time.perf_counter()
    call.report("mesh", k + 1, inv.ws.shape[0], None)
    latent = inv.ws[k]
    offset = None if inv.plane_offset is None else inv.plane_offset[k:k + 1]
    camera = photo_camera(inv.pose.camera(s), k, prep.crop, s)
    mesh, latent, offset = mesh_with_fallbacks(call, item.path, latent, offset, guess, [(prep, camera)])
    item.timings["mesh"] = time.perf_counter() - t
    mesh, (camera,), placement, extra = deliver(call, mesh, [(prep, camera)])
    item.timings.update(extra)
    res = ReconstructionResult(image=item.path, ok=True, camera=camera, mesh=mesh, model=call.options.model,
                               steps=call.inversion.steps, device=str(pipe.device),
                               losses=[step[k] for step in inv.losses], mask_source=prep.mask_source,
                               focal_source=item.intrinsics.source, latent=latent.cpu().numpy(),
                               plane_offset=None if offset is None else offset[0].cpu().numpy(),
                               light=(float(inv.light.ambient[k]), float(inv.light.key[k])),
                               pose_candidates=item.pose_candidates, placement=placement)
    item.timings["total"] = sum(item.timings.values())
    res.timings = item.timings
    if call.out is not None:
        from .io.export import write_result

        if call.cancelled():  # nothing is written for a call the user stopped
            raise Cancelled(item.path)
        write_result(res, call.out, call.options.fmt, item.stem)
    return res
