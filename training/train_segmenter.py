"""Train the foreground segmenter: ``python -m training train-segmenter --model chairs --out runs/seg --write STEM``.

A user's photo has no alpha channel; core.io.images.segment finds the object by colour and then asks
the model's segmenter (core.segmenter) about the square around it. The segmenter learns from the
data generator's own chairs, ray-traced with exact coverage (thin legs and spindles as they are, not
as the generator draws them), seen as the segmenter will see them: the object's box at 45-95% of the
crop, off-centre, lenses of 24-85 mm, elevation 0-45 deg. Each step composites the renders anew:
photo-like surroundings with the chair's contact shadow (training.photolike: floors, rooms, HDRI
windows, plain backdrops) for most, white backdrops for some, material textures on half of the
chairs, exposure, contrast and colour-cast jitter, sensor noise, blur and mirroring. Loss: binary
cross-entropy on the coverage plus a soft Dice term.

``--photos CASES.json ...`` adds photo-like renders of Infinigen training chairs with their true masks
(``training/infinigen/make_chairs.py --first-seed 2000000 --others 0``: real procedural materials,
floors and shadows rendered by Cycles): a share ``--photos-share`` of every batch is drawn from them,
cut as segment's crop is (a square of 1.1-2.2 times the chair's box, off-centre), with the same
camera effects. Chairs outside the Infinigen training seeds are refused. ``--init`` starts from
``--model``'s segmenter (a fine-tune) instead of new weights.

Files in ``--out``: ``renders.pt`` (the ray-traced chairs, reused while ``--images``, ``--size`` and
``--first-seed`` stay the same) and ``segmenter_ckpt.pt`` (every 250 steps; the same command resumes).
``--write STEM`` writes ``--model`` with the segmenter added (its other tensors unchanged).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.config import SegmenterConfig

CHANNELS = (16, 32, 48, 64, 96)
FILL = (0.45, 0.95)
"""the object's projected box as a share of the crop side (segment's crop is 1.5 times its first box)."""
LENS_MM = (24.0, 85.0)
WHITE_SHARE = 0.1
"""renders on a white or near-white backdrop (product photos)."""


def render_one(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Chair ``seed`` ray-traced at ``size`` px from a random view -> (rgb uint8 (S, S, 3), alpha uint8 (S, S))."""
    seed, size = args
    torch.set_num_threads(1)
    from .data.chairs import sample_chair
    from .data.raytrace import fit_view, make_camera, render, sample_light, view_points

    spec = sample_chair(seed)
    rng = np.random.default_rng([seed, 0x5E6])
    focal = rng.uniform(*LENS_MM) / 36.0 * size
    m = fit_view(view_points(spec), rng.uniform(0, 360), rng.uniform(0, 45), focal, size, size, rng.uniform(*FILL),
                 (rng.uniform(-1, 1), rng.uniform(-1, 1)))
    rgba = render(spec, make_camera(m, focal, size, size), sample_light(rng))
    to8 = lambda x: np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return to8(rgba[..., :3]), to8(rgba[..., 3])


def build_renders(seeds: list[int], size: int, threads: int) -> dict:
    from tqdm import tqdm

    jobs = [(s, size) for s in seeds]
    with get_context("spawn").Pool(max(1, threads)) as pool:
        out = list(tqdm(pool.imap(render_one, jobs, chunksize=8), total=len(jobs), desc="renders"))
    return {"rgb": torch.from_numpy(np.stack([o[0] for o in out])), "alpha": torch.from_numpy(np.stack([o[1] for o in out])),
            "seeds": torch.tensor(seeds), "size": size}


PHOTO_CONTEXT = 2.4
"""a training photo is kept as the square of this many times its chair's box, centred on it."""
PHOTO_SIDE = (1.1, 2.2)
"""the crop a training photo is seen through, in units of its chair's box side (segment's crop is
FOREGROUND_MARGIN = 1.5 times a first box that misses legs or takes in a shadow)."""
PHOTO_SHIFT = 0.15
"""largest shift of that crop's centre from the box's, in units of the box side."""


def load_photos(paths: list[str], size: int) -> dict:
    """The photo-like renders (condition 'photo') listed in the cases files ``paths`` (make_chairs.py) with
    their true masks, as squares of PHOTO_CONTEXT x the mask's box centred on it, at twice ``size``: rgb
    (N, 2S, 2S, 3) and alpha (N, 2S, 2S) uint8 (outside the image: its edge repeated, no object).
    Raises ValueError for a chair outside Infinigen's training seeds: validation and tuning chairs never
    train."""
    import cv2
    from PIL import Image

    from .infinigen.convert import TRAINING_SEEDS

    rgbs, alphas, names = [], [], []
    for path in paths:
        root = Path(path).parent
        for case in json.loads(Path(path).read_text())["cases"]:
            if case.get("condition") != "photo":
                continue
            if case.get("seed") not in TRAINING_SEEDS:
                raise ValueError(f"{path}: {case.get('name')} is not an Infinigen training chair (seeds "
                                 f"{TRAINING_SEEDS.start}..{TRAINING_SEEDS.stop - 1}); validation and tuning "
                                 "chairs never train")
            rgb = np.asarray(Image.open(root / case["image"]).convert("RGB"))
            alpha = np.asarray(Image.open(root / case["mask"]).convert("L"))
            ys, xs = np.nonzero(alpha > 127)
            if len(xs) == 0:
                continue
            side = int(np.ceil(PHOTO_CONTEXT * max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())))
            x0 = int(np.floor((xs.min() + xs.max() + 1 - side) / 2))
            y0 = int(np.floor((ys.min() + ys.max() + 1 - side) / 2))
            h, w = alpha.shape
            pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
            window = (slice(y0 + pad, y0 + pad + side), slice(x0 + pad, x0 + pad + side))
            out = (2 * size, 2 * size)  # area averaging: thin legs stay as thin as they are, not aliased
            rgbs.append(cv2.resize(cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)[window], out,
                                   interpolation=cv2.INTER_AREA))
            alphas.append(cv2.resize(cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)[window],
                                     out, interpolation=cv2.INTER_AREA))
            names.append(case["name"])
    if not rgbs:
        raise ValueError(f"no photo-like renders in {', '.join(paths)}")
    return {"rgb": torch.from_numpy(np.stack(rgbs)), "alpha": torch.from_numpy(np.stack(alphas)), "names": names}


def photo_batch(photos: dict, idx: torch.Tensor, g: torch.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training photos ``idx`` seen through random crops (PHOTO_SIDE, PHOTO_SHIFT) at ``size`` px, mirrored
    at random, with :func:`camera_effects` -> (images (B, S, S, 3), alpha (B, S, S)) in [0, 1]."""
    b = len(idx)
    rnd = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    rgb = photos["rgb"][idx].permute(0, 3, 1, 2).float() / 255
    alpha = photos["alpha"][idx][:, None].float() / 255
    half = (PHOTO_SIDE[0] + (PHOTO_SIDE[1] - PHOTO_SIDE[0]) * rnd(b)) / PHOTO_CONTEXT  # of the square's half side
    shift = (2 * rnd(b, 2) - 1) * 2 * PHOTO_SHIFT / PHOTO_CONTEXT
    flip = torch.where(rnd(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = half * flip, half
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    img = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="border", align_corners=False)
    cover = F.grid_sample(alpha, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return camera_effects(img.permute(0, 2, 3, 1), g), cover[:, 0].clamp(0, 1)


def camera_effects(img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Exposure, contrast and colour-cast jitter, sensor noise and soft focus on photos (B, S, S, 3)."""
    from .photolike import soft_focus

    b = img.shape[0]
    rnd = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    gain = 0.7 + 0.6 * rnd(b, 1, 1, 1)
    cast = 1 + 0.1 * (rnd(b, 1, 1, 3) - 0.5)
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 0.75 + 0.5 * rnd(b, 1, 1, 1)
    img = ((img - mean) * contrast + mean) * gain * cast
    img = img + (0.03 * rnd(b, 1, 1, 1)) * torch.randn(img.shape, generator=g)
    return soft_focus(img, g).clamp(0, 1)


def composite(rgb: torch.Tensor, alpha: torch.Tensor, g: torch.Generator, hdris: list) -> torch.Tensor:
    """(B, S, S, 3) and (B, S, S) in [0, 1] -> photos (B, S, S, 3): surroundings, materials, camera effects."""
    from .photolike import material_texture, photo_backgrounds

    b, s = alpha.shape[:2]
    rnd = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    textured = rnd(b) < 0.5
    if textured.any():
        rgb = rgb.clone()
        rgb[textured] = rgb[textured] * material_texture(int(textured.sum()), s, g)
    bg = photo_backgrounds(alpha, g, hdris)
    white = rnd(b) < WHITE_SHARE
    if white.any():
        bg[white] = (0.85 + 0.15 * rnd(int(white.sum()), 1, 1, 1)).expand(-1, s, s, 3)
    img = rgb * alpha[..., None] + bg * (1 - alpha[..., None])
    return camera_effects(img, g)


def batch(data: dict, idx: torch.Tensor, g: torch.Generator, hdris: list) -> tuple[torch.Tensor, torch.Tensor]:
    rgb = data["rgb"][idx].float() / 255
    alpha = data["alpha"][idx].float() / 255
    flip = torch.rand(len(idx), generator=g) < 0.5
    rgb[flip], alpha[flip] = rgb[flip].flip(2), alpha[flip].flip(2)
    return composite(rgb, alpha, g, hdris), alpha


def seg_loss(logits: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, alpha)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * alpha).sum(dim=(1, 2)) + 1) / (p.sum(dim=(1, 2)) + alpha.sum(dim=(1, 2)) + 1)
    return bce + 0.5 * dice.mean()


def validation_iou(net, data: dict, hdris: list, seed: int = 1) -> float:
    g = torch.Generator().manual_seed(seed)
    ious = []
    with torch.no_grad():
        for start in range(0, len(data["seeds"]), 32):
            idx = torch.arange(start, min(start + 32, len(data["seeds"])))
            img, alpha = batch(data, idx, g, hdris)
            pred = torch.sigmoid(net(img)) > 0.5
            true = alpha > 0.5
            ious += ((pred & true).sum(dim=(1, 2)) / (pred | true).sum(dim=(1, 2)).clamp(min=1)).tolist()
    return float(np.mean(ious))


def train(args: argparse.Namespace) -> dict:
    from core.model import ReconstructionModel, load_model, resolve_model, save_model
    from core.segmenter import Segmenter

    from .common import Progress, load_checkpoint, save_checkpoint
    from .data import EVAL_SEEDS
    from .photolike import load_hdris

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    hdris = load_hdris()
    cache = out / "renders.pt"
    seeds = list(range(args.first_seed, args.first_seed + args.images))
    data = torch.load(cache, weights_only=True) if cache.exists() else None
    if data is None or data["seeds"].tolist() != seeds or int(data["size"]) != args.size:
        t = time.time()
        data = build_renders(seeds, args.size, args.threads)
        torch.save(data, cache)
        print(f"{len(seeds)} renders at {args.size} px in {time.time() - t:.0f} s -> {cache}", flush=True)
    val_cache = out / "validation.pt"
    val_seeds = list(range(600_000, 600_000 + args.validation))
    assert not set(val_seeds) & set(seeds) and not set(val_seeds) & set(EVAL_SEEDS)
    val = torch.load(val_cache, weights_only=True) if val_cache.exists() else None
    if val is None or val["seeds"].tolist() != val_seeds or int(val["size"]) != args.size:
        val = build_renders(val_seeds, args.size, args.threads)
        torch.save(val, val_cache)
    photos = load_photos(args.photos, args.size) if args.photos else None
    if photos is not None:
        print(f"{len(photos['names'])} training photos from {', '.join(args.photos)}", flush=True)
    torch.set_num_threads(args.threads)
    cfg = SegmenterConfig(image_size=args.size, channels=CHANNELS)
    net = Segmenter(cfg)
    if args.init:
        base = load_model(args.model, "cpu")
        if base.segmenter is None or base.cfg.segmenter != cfg:
            raise ValueError(f"--init: model {args.model} has no segmenter of size {args.size} and channels {CHANNELS}")
        net.load_state_dict(base.segmenter.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(args.seed)
    start, elapsed = 0, 0.0
    ckpt_path = out / "segmenter_ckpt.pt"
    ckpt = load_checkpoint(ckpt_path)
    if ckpt is not None:
        net.load_state_dict(ckpt["net"])
        opt.load_state_dict(ckpt["opt"])
        g.set_state(ckpt["rng"])
        start, elapsed = int(ckpt["iteration"]), float(ckpt["elapsed_s"])
        print(f"resumed at step {start}", flush=True)
    progress = Progress(args.iters, start, label="segmenter")
    t0 = time.time() - elapsed
    n = len(seeds)
    for it in range(start, args.iters):
        lr = float(args.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * it / args.iters))))
        for group in opt.param_groups:
            group["lr"] = lr
        if photos is None or args.photos_share <= 0:
            idx = torch.randint(0, n, (args.batch,), generator=g)
            img, alpha = batch(data, idx, g, hdris)
        else:
            k = int((torch.rand(args.batch, generator=g) < args.photos_share).sum())
            idx = torch.randint(0, n, (args.batch - k,), generator=g)
            pick = torch.randint(0, len(photos["names"]), (k,), generator=g)
            parts = ([batch(data, idx, g, hdris)] if len(idx) else []) + \
                ([photo_batch(photos, pick, g, args.size)] if k else [])
            img, alpha = (torch.cat([part[j] for part in parts]) for j in (0, 1))
        loss = seg_loss(net(img), alpha)
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress.update(it + 1, loss=float(loss.detach()))
        if (it + 1) % 250 == 0 or it + 1 == args.iters:
            save_checkpoint(ckpt_path, {"net": net.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(),
                                        "iteration": it + 1, "elapsed_s": time.time() - t0})
    net.eval().requires_grad_(False)
    val_iou = validation_iou(net, val, hdris)
    elapsed = time.time() - t0
    print(f"validation IoU {val_iou:.3f} on {len(val_seeds)} composites ({elapsed / 60:.1f} min)", flush=True)
    card = {"images": args.images, "first_seed": args.first_seed, "size": args.size, "channels": list(CHANNELS),
            "iterations": args.iters, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "elapsed_s": round(elapsed, 1), "validation_iou": round(val_iou, 4)}
    if photos is not None:
        card.update(photos=len(photos["names"]), photos_share=args.photos_share)
    if args.init:
        card["init"] = str(args.model)
    if args.write:
        base = load_model(args.model, "cpu")  # the cached model stays as it is
        model = ReconstructionModel(dataclasses.replace(base.cfg, segmenter=cfg))
        model.load_state_dict({**base.state_dict(), **{f"segmenter.{k}": v for k, v in net.state_dict().items()}})
        card_in = json.loads(resolve_model(args.model).read_text()).get("card", {})
        save_model(model, Path(args.write), {**card_in, "segmenter": card})
        print(f"wrote {args.write}.safetensors / .json", flush=True)
    return card


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training train-segmenter --help``)."""
    ap.add_argument("--model", default="chairs", help="the model the segmenter joins (name or .json)")
    ap.add_argument("--out", default="runs/seg")
    ap.add_argument("--images", type=int, default=2400, help="ray-traced training chairs (one view each)")
    ap.add_argument("--first-seed", type=int, default=0, help="training chairs from this seed on")
    ap.add_argument("--validation", type=int, default=96, help="validation chairs (seeds 600000..)")
    ap.add_argument("--size", type=int, default=128, help="crop side in pixels")
    ap.add_argument("--iters", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", default=None, help="output model stem (the model with its segmenter)")
    ap.add_argument("--photos", nargs="*", default=[], metavar="CASES",
                    help="cases.json files of photo-like Infinigen training chairs (make_chairs.py --first-seed 2000000)")
    ap.add_argument("--photos-share", type=float, default=0.3, help="share of every batch drawn from --photos")
    ap.add_argument("--init", action="store_true", help="start from --model's segmenter instead of new weights")


def run(args: argparse.Namespace) -> int:
    train(args)
    return 0
