"""The one public entry point: photos in, colored meshes and cameras out.

    from core import reconstruct
    results = reconstruct(["chair.png"], model="chairs", steps=10, out_dir="out")

Stages per batch of images: load + crop (core.image_io), encoder (canonical map, mask, w), PnP
(core.pose), hybrid inversion (core.invert), marching cubes (core.mesh). Per-image problems never
raise: the result says ``ok=False`` and ``error`` is a one-line message naming the file. Problems of
the whole call (unknown model, bad option, unwritable output folder) raise ReconstructionError.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .camera import crop_to_original, original_to_crop, photo_focal
from .errors import Cancelled, EmptySurface, ReconstructionError
from .invert import InversionTarget, PoseParams, invert
from .model import ReconstructionModel, available_models, load_model  # noqa: F401  (re-exported)
from .result import CameraInfo, ReconstructionResult

FORMATS = ("glb", "ply", "obj")
# focal lengths tried by PnP, in units of the crop side: the crop is ~1.2x the object, so a 35-60 mm
# photo of an object filling half to all of the frame gives 0.8-2.8 crop sides; keep a margin
FOCAL_CANDIDATES = np.geomspace(0.6, 4.5, 10)
# the mesh is the level set sdf = MESH_LEVEL_BETAS * beta, not sdf = 0: with VolSDF density a thin
# part whose SDF stays a beta or two above zero is still opaque in the renders the inversion fits,
# and meshing at zero drops it (chairs v0.3, 20 held-out chairs, N=10, Chamfer-L1: 0.0383 at 0,
# 0.0323 at 2 beta, 0.0338 at 3 beta; silhouette IoU in Blender on the examples: see the model card)
MESH_LEVEL_BETAS = 2.0
# focal lengths the inversion may change: a stated one (EXIF, given) is the photo's own
FREE_FOCAL_SOURCES = ("default", "estimated")
Progress = Callable[[str, int, int, "float | None"], None]


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA, then MPS, then CPU; an explicit device that is not available is an error."""
    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ReconstructionError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ReconstructionError("device 'mps' was requested but Apple MPS is not available; use --device cpu or auto")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ReconstructionError(f"unknown device '{device}'; use auto, cpu, cuda or mps")
    return torch.device(device)


def _check_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ReconstructionError(f"output folder is not writable ({err.strerror or err}); choose another --out",
                                  str(out)) from None
    return out


def validate_options(steps, mesh_resolution, fmt, focal_mm=None) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ReconstructionError(f"steps must be a whole number >= 0 (0 = encoder only, 10 = fast), got {steps!r}")
    if steps > 1000:
        raise ReconstructionError(f"steps={steps} is far beyond what helps (10 fast, 30 slow); use at most 1000")
    if not isinstance(mesh_resolution, (int, np.integer)) or not 16 <= mesh_resolution <= 512:
        raise ReconstructionError(f"mesh resolution must be between 16 and 512, got {mesh_resolution!r}")
    if fmt not in FORMATS:
        raise ReconstructionError(f"unknown mesh format '{fmt}'; use one of {', '.join(FORMATS)}")
    if focal_mm is not None and (isinstance(focal_mm, bool) or not isinstance(focal_mm, (int, float, np.number))
                                 or not (focal_mm == 0 or 4 <= focal_mm <= 2000)):
        raise ReconstructionError(f"focal length must be a 35 mm-equivalent value in mm between 4 and 2000 (or 0 "
                                  f"to estimate it, or nothing for EXIF/50 mm), got {focal_mm!r}")


class Pipeline:
    """A loaded model on a device, ready to reconstruct batches of prepared images."""

    def __init__(self, model: ReconstructionModel, device: torch.device):
        self.model = model
        self.device = device
        self.cfg = model.cfg
        self.chunk = model.cfg.render.chunk

    @property
    def size(self) -> int:
        return self.cfg.inversion_size

    def prepare(self, path: str, mask: str | None):
        from .image_io import prepare_image

        return prepare_image(path, 2 * self.size, mask_path=mask, background=self.cfg.render.background)

    def encode(self, image_hi: torch.Tensor):
        lo = torch.nn.functional.avg_pool2d(image_hi.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        if lo.shape[1] != self.cfg.encoder.image_size:
            lo = torch.nn.functional.interpolate(lo.permute(0, 3, 1, 2), size=self.cfg.encoder.image_size,
                                                 mode="area").permute(0, 2, 3, 1)
        with torch.no_grad():
            return self.model.encoder(lo)

    def solve_pose(self, coords: torch.Tensor, mask_logits: torch.Tensor, input_mask: torch.Tensor,
                   path: str, focal: float | None, cx: float, cy: float):
        """Encoder maps of one image (S, S, ...) -> (cam2world (4, 4), focal) of the crop camera whose
        principal point is (cx, cy) in crop pixels; ``focal`` in crop pixels, or None to search it."""
        from .camera import pixel_grid
        from .pose import solve_pnp

        s = coords.shape[0]
        prob = torch.sigmoid(mask_logits).cpu().numpy().reshape(-1)
        inp = input_mask.cpu().numpy().reshape(-1)
        keep = (prob > 0.5) & (inp > 0.5)
        if keep.sum() < 12:
            keep = inp > 0.5
        pix = pixel_grid(s, s).numpy()
        res = solve_pnp(pix[keep], coords.reshape(-1, 3).cpu().numpy()[keep].astype(np.float64), s, s,
                        weights=(prob[keep] * inp[keep]).astype(np.float64) + 1e-3, cx=cx, cy=cy, path=path,
                        focal_candidates=FOCAL_CANDIDATES * s if focal is None else [focal])
        return torch.tensor(res.cam2world, dtype=torch.float32), float(res.focal)

    def mesh(self, ws: torch.Tensor, resolution: int, path: str, plane_offset: torch.Tensor | None = None):
        from .mesh import extract_mesh

        gen = self.model.generator
        with torch.no_grad():
            state = gen.decode(ws[None].to(self.device), plane_offset)

        level = MESH_LEVEL_BETAS * float(gen.beta)

        def query_sdf(p):
            return gen.query(state, p[None].to(self.device), with_color=False).sdf[0] - level

        def query_color(p):
            return gen.query(state, p[None].to(self.device)).rgb[0]

        return extract_mesh(query_sdf, query_color, resolution=resolution, bound=gen.cfg.bound,
                            device=self.device, path=path)


def reconstruct(images: Sequence[str | os.PathLike], *, masks: Sequence[str | None] | str | None = None,
                model: str = "chairs", steps: int = 10, device: str = "auto", mesh_resolution: int = 128,
                seed: int = 0, progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                out_dir: str | os.PathLike | None = None, fmt: str = "glb", batch_size: int = 4,
                model_dirs: Sequence[str] = (), loss: str = "l1+ssim", focal_mm: float | None = None,
                inversion: dict | None = None) -> list[ReconstructionResult]:
    """Reconstruct every image; see the module docstring. Results come back in input order.

    ``focal_mm`` is the photo's 35 mm-equivalent focal length (long side = 36 mm). None: the EXIF
    FocalLengthIn35mmFilm when the file has one, else DEFAULT_FOCAL_MM (core.camera); 0: estimate it
    from the image. A stated focal length (given or EXIF) is kept; the default one is refined.

    ``inversion`` passes expert settings to :func:`core.invert.invert` (lr, lr_end, w_gain, pose_gain,
    n_patches, mask_weight, mask_pyramid, plane_lr, plane_res, plane_start, plane_reg, momentum); ``loss`` is
    'l1+ssim' (default) or 'l1'.
    """
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    images = [str(p) for p in images]
    if masks is None or isinstance(masks, (str, os.PathLike)):
        masks = [None if masks is None else str(masks)] * len(images)
    if len(masks) != len(images):
        raise ReconstructionError(f"got {len(masks)} masks for {len(images)} images; give one mask per image or none")
    validate_options(steps, mesh_resolution, fmt, focal_mm)
    out = _check_out_dir(out_dir) if out_dir is not None else None
    dev = pick_device(device)
    t0 = time.perf_counter()
    net = load_model(model, dev, model_dirs)
    load_model_s = time.perf_counter() - t0
    pipe = Pipeline(net, dev)
    report = progress or (lambda *a: None)
    results: list[ReconstructionResult | None] = [None] * len(images)
    for start in range(0, len(images), max(1, batch_size)):
        idx = list(range(start, min(len(images), start + max(1, batch_size))))
        _run_batch(pipe, idx, images, masks, results, steps, mesh_resolution, seed, report, cancel, out, fmt,
                   load_model_s if start == 0 else 0.0, str(model), {"loss": loss, **(inversion or {})}, focal_mm)
    return results  # type: ignore[return-value]


def _fail(image: str, err: Exception, model: str, steps: int, dev) -> ReconstructionResult:
    if isinstance(err, ReconstructionError):
        msg = str(err) if err.path else f"{image}: {err}"
    else:
        msg = f"{image}: internal error ({type(err).__name__}: {err}); please report it"
    return ReconstructionResult(image=image, ok=False, error=msg.splitlines()[0], model=model, steps=steps,
                                device=str(dev))


def _run_batch(pipe: Pipeline, idx, images, masks, results, steps, mesh_resolution, seed, report, cancel, out,
               fmt, load_model_s, model_name, settings: dict, focal_mm: float | None = None) -> None:
    dev = pipe.device
    prepared, timings = {}, {}
    for i in idx:
        t = time.perf_counter()
        report("load", idx.index(i) + 1, len(idx), None)
        try:
            if cancel is not None and cancel():
                raise Cancelled(images[i])
            prepared[i] = pipe.prepare(images[i], masks[i])
        except (ReconstructionError, Exception) as err:  # noqa: BLE001 - every failure becomes a result
            results[i] = _fail(images[i], err, model_name, steps, dev)
        timings[i] = {"load": time.perf_counter() - t + load_model_s}
    live = [i for i in idx if i in prepared]
    if not live:
        return
    try:
        _reconstruct_prepared(pipe, live, prepared, timings, results, images, steps, mesh_resolution, seed, report,
                              cancel, out, fmt, model_name, settings, focal_mm)
    except torch.cuda.OutOfMemoryError:
        # retry one image at a time with smaller ray chunks before giving up
        torch.cuda.empty_cache()
        pipe.cfg.render.chunk = pipe.chunk = max(1024, pipe.chunk // 4)
        for i in live:
            try:
                _reconstruct_prepared(pipe, [i], prepared, timings, results, images, steps, mesh_resolution, seed,
                                      report, cancel, out, fmt, model_name, settings, focal_mm)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                results[i] = _fail(images[i], ReconstructionError(
                    "out of GPU memory even with small chunks; close other GPU programs or use --device cpu",
                    images[i]), model_name, steps, dev)


def _reconstruct_prepared(pipe, live, prepared, timings, results, images, steps, mesh_resolution, seed, report,
                          cancel, out, fmt, model_name, settings: dict, focal_mm: float | None = None) -> None:
    dev = pipe.device
    gen = pipe.model.generator
    s = pipe.size
    image_hi = torch.stack([torch.from_numpy(prepared[i].image).float() for i in live]).to(dev)
    mask_hi = torch.stack([torch.from_numpy(prepared[i].mask).float() for i in live]).to(dev)
    t = time.perf_counter()
    report("encoder", 1, 1, None)
    enc = pipe.encode(image_hi)
    t_enc = (time.perf_counter() - t) / len(live)
    # the input's mask at the encoder's resolution, for the pose solver
    mask_enc = torch.nn.functional.interpolate(mask_hi[:, None], size=enc.coords.shape[1], mode="area")[:, 0]
    poses, intrinsics, ok = {}, {}, []
    for k, i in enumerate(live):
        t = time.perf_counter()
        report("pose", k + 1, len(live), None)
        try:
            intrinsics[i] = _crop_intrinsics(prepared[i], focal_mm, enc.coords.shape[1])
            poses[i] = pipe.solve_pose(enc.coords[k], enc.mask_logits[k], mask_enc[k], images[i], *intrinsics[i][:3])
            ok.append(k)
        except Exception as err:  # noqa: BLE001
            results[i] = _fail(images[i], err, model_name, steps, dev)
        timings[i].update(encoder=t_enc, pose=time.perf_counter() - t)
    if not ok:
        return
    live = [live[k] for k in ok]
    cam2world = torch.stack([poses[i][0] for i in live]).to(dev)
    focal = torch.tensor([poses[i][1] for i in live], device=dev)
    # the encoder's pixels -> the inversion's (the same crop, s pixels a side)
    to_inv = s / enc.coords.shape[1]
    principal = torch.tensor([intrinsics[i][1:3] for i in live], device=dev, dtype=torch.float32) * to_inv
    pose = PoseParams.from_cam2world(cam2world, focal * to_inv, principal)
    focal_free = torch.tensor([intrinsics[i][3] in FREE_FOCAL_SOURCES for i in live])
    ws = enc.w[ok][:, None].expand(-1, gen.cfg.num_ws, -1).contiguous()
    t = time.perf_counter()
    try:
        inv = invert(gen, pipe.cfg.render, InversionTarget(image_hi[ok], mask_hi[ok]), ws, pose, steps, s,
                     pipe.cfg.patch_size, seed=seed, focal_free=focal_free, **settings,
                     progress=lambda n, total, value: report("inversion", n, total, value), cancel=cancel)
    except Cancelled:
        for i in live:
            results[i] = _fail(images[i], Cancelled(images[i]), model_name, steps, dev)
        return
    t_inv = (time.perf_counter() - t) / len(live)
    cams = inv.pose.camera(s)
    for k, i in enumerate(live):
        prep = prepared[i]
        timings[i]["inversion"] = t_inv
        try:
            if cancel is not None and cancel():
                raise Cancelled(images[i])
            t = time.perf_counter()
            report("mesh", k + 1, len(live), None)
            latent = inv.ws[k]
            offset = None if inv.plane_offset is None else inv.plane_offset[k:k + 1]
            try:
                mesh = pipe.mesh(latent, mesh_resolution, images[i], offset)
            except EmptySurface:
                if steps == 0:
                    raise
                latent, offset = ws[k], None  # the inversion pushed the field off the shape: the encoder's guess
                mesh = pipe.mesh(latent, mesh_resolution, images[i])
            timings[i]["mesh"] = time.perf_counter() - t
            # crop camera at 2S -> original photo
            scale = prep.crop.out_size / s
            f, cx, cy = crop_to_original(float(cams.focal[k]) * scale, float(cams.cx[k]) * scale,
                                         float(cams.cy[k]) * scale, prep.crop)
            camera = CameraInfo(cams.cam2world[k].detach().cpu().double().numpy(), f, prep.crop.orig_width,
                                prep.crop.orig_height, cx, cy)
            res = ReconstructionResult(image=images[i], ok=True, camera=camera, mesh=mesh, model=model_name,
                                       steps=steps, device=str(dev), losses=[step[k] for step in inv.losses],
                                       mask_source=prep.mask_source, focal_source=intrinsics[i][3],
                                       latent=latent.cpu().numpy(),
                                       plane_offset=None if offset is None else offset[0].cpu().numpy(),
                                       light=(float(inv.light.ambient[k]), float(inv.light.key[k])))
            timings[i]["total"] = sum(timings[i].values())
            res.timings = timings[i]
            if out is not None:
                _write_outputs(res, out, fmt)
            results[i] = res
        except Exception as err:  # noqa: BLE001
            results[i] = _fail(images[i], err, model_name, steps, dev)


def _crop_intrinsics(prep, focal_mm: float | None, size: int) -> tuple[float | None, float, float, str]:
    """(focal or None to search, cx, cy, source) of the photo's camera in pixels of the crop resampled to
    size x size: the principal point is the photo's centre (where a camera's optical axis meets it)."""
    crop = prep.crop
    focal, source = photo_focal(crop.orig_width, crop.orig_height, focal_mm, prep.loaded.focal_35mm)
    f, cx, cy = original_to_crop(focal or 0.0, crop.orig_width / 2, crop.orig_height / 2, crop)
    k = size / crop.out_size
    return (None if focal is None else f * k), cx * k, cy * k, source


def _write_outputs(res: ReconstructionResult, out: Path, fmt: str) -> None:
    from .mesh import export_mesh

    stem = Path(res.image).stem
    res.mesh_path = str(export_mesh(res.mesh, out / f"{stem}.{fmt}", fmt))
    res.json_path = str(out / f"{stem}.json")
    tmp = out / f".{stem}.json.tmp"
    tmp.write_text(json.dumps(res.to_json(), indent=2))
    os.replace(tmp, res.json_path)
