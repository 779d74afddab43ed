"""Train the encoder by bootstrapping from the trained generator (the paper's recipe), then write
the shipped model (weights/<name>.safetensors + .json).

Training images are rendered by the generator itself from z ~ N(0, I) and random poses drawn from the
same distribution as the photos (training.data.raytrace.sample_view), cropped exactly like inference crops
(square around the silhouette with a jittered margin). Targets come free: the canonical-coordinate
map, the mask and w. Renders store albedo, opacity, coordinates and normals, so every epoch shades them
anew (random ambient/key light, specular highlights, color jitter, noise, blur): the encoder must hold
on photos and procedural renders whose shading differs from the generator's.

    python -m training train-encoder --generator runs/generator/generator.pt --out runs/encoder \
        --images 6000 --iters 4000 --seed 0 --write weights/chairs
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.config import EncoderConfig, ModelConfig, RenderConfig
from core.field.generator import Generator
from core.field.shading import screen_normals
from core.field.volume import render_image
from core.geometry.camera import Camera, project_depth
from core.model import ReconstructionModel, load_model, save_model

from .common import Progress, load_checkpoint, save_checkpoint
from .photolike import soft_focus


def _surface_points(gen: Generator, state, res: int = 32) -> list[torch.Tensor]:
    """Grid points near the zero level set of each latent in the batch: list of (M, 3)."""
    b = gen.cfg.bound
    lin = torch.linspace(-b, b, res)
    grid = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1).reshape(1, -1, 3)
    sdf = gen.query(state, grid.expand(state.planes.shape[0], -1, -1), with_color=False).sdf
    voxel = 2 * b / (res - 1)
    return [grid[0][sdf[i].abs() < voxel] for i in range(sdf.shape[0])]


def crop_camera(full: Camera, points: torch.Tensor, size: int, margin: float, jitter: np.ndarray) -> Camera | None:
    """The camera of the square crop around the projected points, as core.image_io crops photos."""
    uv, depth = project_depth(full, points[None])
    if len(points) < 10 or (depth <= 0).any():
        return None
    lo, hi = uv[0].amin(0), uv[0].amax(0)
    centre = (lo + hi) / 2
    side = float((hi - lo).max()) * margin
    centre = centre + torch.tensor(jitter, dtype=torch.float32) * side
    x0, y0 = float(centre[0]) - side / 2, float(centre[1]) - side / 2
    s = size / side
    return Camera(full.cam2world, full.focal * s, (full.cx - x0) * s, (full.cy - y0) * s, size, size)


BOOTSTRAP_RENDER = RenderConfig(coarse_samples=16, fine_samples=16)
"""fewer samples than at inference: these renders only need silhouettes and coordinates."""


CODE_NOISE = 0.3
"""std of the noise added to a training chair's z (folded space, where the codes have unit spread)."""


def sample_z(n: int, z_dim: int, g: torch.Generator, codes: torch.Tensor | None = None,
             code_share: float = 0.0) -> torch.Tensor:
    """z for the bootstrap renders: N(0, I) (the codes' fitted Gaussian), and with ``codes`` a share
    ``code_share`` drawn near the training chairs instead (a random code + CODE_NOISE * N(0, I)).

    The fitted Gaussian in 64 dimensions puts most samples between the 600 codes, where the field is a
    blurred mixture of chairs; renders near the codes look like the chairs photos show."""
    z = torch.randn(n, z_dim, generator=g)
    if codes is None or code_share <= 0:
        return z
    near = torch.rand(n, generator=g) < code_share
    pick = torch.randint(0, len(codes), (n,), generator=g)
    return torch.where(near[:, None], codes[pick].float() + CODE_NOISE * z, z)


LENS_MM = (24.0, 85.0)
"""lenses of the bootstrap cameras (36 mm-wide sensor): phone wide angle to portrait."""
WIDE_MARGIN = (1.1, 1.8)
WIDE_JITTER = 0.06
"""a ``wide_share`` of the crops is looser and off-centre (margin, centre jitter in crop sides), as the
first crop of a photo around an automatic segmentation is (core.io.images.refine_foreground)."""


def render_bootstrap_set(gen: Generator, cfg: ModelConfig, n_images: int, seed: int, batch: int = 8,
                         codes: torch.Tensor | None = None, code_share: float = 0.0, wide_share: float = 0.0) -> dict:
    """Render ``n_images`` generator views with their targets (float16 to keep memory small)."""
    from .data.raytrace import sample_view

    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    s = cfg.encoder.image_size
    keys = ("albedo", "alpha", "coords", "normals", "w")
    out = {k: [] for k in keys}
    progress = Progress(n_images, label="bootstrap renders")
    done = 0
    while done < n_images:
        z = sample_z(batch, cfg.generator.z_dim, g, codes, code_share)
        with torch.no_grad():
            w = gen.mapping(z)
            state = gen.decode(w)
            pts = _surface_points(gen, state)
            cams = []
            for i in range(batch):
                full = sample_view(rng, 256, 256, lens_mm=LENS_MM)
                wide = rng.random() < wide_share
                cam = crop_camera(full, pts[i], s, margin=float(rng.uniform(*(WIDE_MARGIN if wide else (1.1, 1.32)))),
                                  jitter=rng.normal(0, WIDE_JITTER if wide else 0.02, 2))
                cams.append(cam)
            keep = [i for i, c in enumerate(cams) if c is not None]
            if not keep:
                continue
            cam = Camera(torch.cat([cams[i].cam2world for i in keep]).float(),
                         torch.cat([cams[i].focal for i in keep]).float(), torch.cat([cams[i].cx for i in keep]).float(),
                         torch.cat([cams[i].cy for i in keep]).float(), s, s)
            sub = type(state)(state.planes[keep], state.color_values[keep])
            r = render_image(gen, sub, cam, BOOTSTRAP_RENDER)
            normals = screen_normals(r.coords, r.alpha, cam.cam2world)
        out["albedo"].append(r.albedo.half())
        out["alpha"].append(r.alpha.half())
        out["coords"].append(r.coords.half())
        out["normals"].append(normals.half())
        out["w"].append(w[keep])
        done += len(keep)
        progress.update(min(done, n_images))
    return {k: torch.cat(v)[:n_images] for k, v in out.items()}


def augment_shading(data: dict, idx: torch.Tensor, g: torch.Generator, background=(1.0, 1.0, 1.0),
                    photo_share: float = 0.0, hdris: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Shade stored renders with random lights and photographic jitter -> images (B, S, S, 3).

    A ``photo_share`` of the images gets a photo-like background (training.photolike: floor with the
    chair's contact shadow, HDRI window or plain colour) instead of the model's ``background``, and
    the same share a material texture on its albedo."""
    albedo = data["albedo"][idx].float()
    alpha = data["alpha"][idx].float()
    n = data["normals"][idx].float()
    b = len(idx)
    rnd = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    # key light from the camera's side/above, toward the viewer
    theta = rnd(b) * 2 * math.pi
    elev = rnd(b) * 0.9 + 0.2
    d = torch.stack([torch.cos(theta) * torch.cos(elev), torch.sin(theta).abs() * 0.5 * torch.cos(elev) + 0.3,
                     torch.sin(elev) + 0.3], dim=-1)
    d = d / d.norm(dim=-1, keepdim=True)
    ambient = 0.25 + 0.5 * rnd(b)
    key = 0.2 + 0.7 * rnd(b)
    lambert = (n * d[:, None, None]).sum(-1).clamp(min=0)
    sky = 0.85 + 0.15 * n[..., 1]  # brighter from above
    factor = ambient[:, None, None] * sky + key[:, None, None] * lambert
    half = d + torch.tensor([0.0, 0.0, 1.0])
    half = half / half.norm(dim=-1, keepdim=True)
    spec = (n * half[:, None, None]).sum(-1).clamp(min=0) ** (8 + 56 * rnd(b))[:, None, None]
    spec = spec * (0.4 * rnd(b) * (rnd(b) < 0.6))[:, None, None]
    # albedo jitter: gain per channel, saturation, fine noise (texture)
    gain = 1 + 0.15 * (rnd(b, 1, 1, 3) * 2 - 1)
    gray = albedo.mean(-1, keepdim=True)
    sat = 0.7 + 0.6 * rnd(b, 1, 1, 1)
    alb = (gray + (albedo - gray) * sat) * gain
    alb = alb * (1 + 0.08 * torch.randn(albedo.shape[:-1] + (1,), generator=g) * rnd(b, 1, 1, 1))
    textured = rnd(b) < photo_share
    if textured.any():
        from .photolike import material_texture

        alb[textured] = alb[textured] * material_texture(int(textured.sum()), alb.shape[1], g)
    rgb = alb * factor[..., None] + spec[..., None] * alpha[..., None]
    bg = torch.tensor(background, dtype=torch.float32).expand(b, *alpha.shape[1:], 3).clone()
    photo = rnd(b) < photo_share
    if photo.any():
        from .photolike import photo_backgrounds

        bg[photo] = photo_backgrounds(alpha[photo], g, hdris)
    img = rgb + (1 - alpha[..., None]) * bg
    img = img + 0.02 * rnd(b, 1, 1, 1) * torch.randn(img.shape, generator=g)
    return soft_focus(img, g).clamp(0, 1)


def encoder_losses(model: ReconstructionModel, data: dict, idx: torch.Tensor, g: torch.Generator,
                   photo_share: float = 0.0, hdris: list[torch.Tensor] | None = None) -> tuple:
    image = augment_shading(data, idx, g, model.cfg.render.background, photo_share, hdris)
    alpha = data["alpha"][idx].float()
    coords = data["coords"][idx].float() / alpha[..., None].clamp(min=1e-3)
    out = model.encoder(image)
    fg = (alpha > 0.5).float()
    l_coords = ((out.coords - coords).abs().sum(-1) * fg).sum() / fg.sum().clamp(min=1)
    l_mask = F.binary_cross_entropy_with_logits(out.mask_logits, alpha)
    w_std = model.generator.w_std
    l_w = (((out.w - data["w"][idx].float()) / w_std) ** 2).mean()
    loss = l_coords + 0.5 * l_mask + 0.05 * l_w
    return loss, {"coords": float(l_coords.detach()), "mask": float(l_mask.detach()), "w": float(l_w.detach())}


def train_encoder(generator_path: Path, out: Path, n_images: int, iters: int, batch_size: int, seed: int,
                  threads: int, write: Path | None, name: str = "chairs", init: str | None = None,
                  code_share: float = 0.0, photo_share: float = 0.0, wide_share: float = 0.0) -> ReconstructionModel:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    out = Path(out)
    gck = load_checkpoint(generator_path)
    if gck is None:
        raise FileNotFoundError(f"no generator at {generator_path}: run `python -m training train-generator` first")
    codes = gck.get("codes")
    if code_share > 0 and codes is None:
        raise ValueError(f"{generator_path} has no training codes: re-run its "
                         "train-generator command, which re-writes generator.pt from the finished checkpoint")
    cfg = ModelConfig.from_dict(gck["config"])
    cfg.name = name
    # encoder sizes come from this code, the generator's from its checkpoint
    cfg.encoder = EncoderConfig(photo_masks=photo_share > 0)
    model = ReconstructionModel(cfg)
    model.generator.load_state_dict(gck["generator"])
    model.generator.requires_grad_(False).eval()
    if init is not None:  # fine-tune a previous model's encoder on this generator's renders
        model.encoder.load_state_dict(load_model(init).encoder.state_dict())
    model.encoder.w_avg.copy_(model.generator.w_avg)
    model.encoder.w_std.copy_(model.generator.w_std)
    data_path = out / "bootstrap_set.pt"
    data = load_checkpoint(data_path)
    def stored(key: str) -> float:  # shares are stored as float32 tensors
        return float(data.get(key, 0.0))

    if (data is None or len(data["w"]) != n_images or abs(stored("code_share") - code_share) > 1e-6
            or abs(stored("wide_share") - wide_share) > 1e-6):
        t0 = time.time()
        data = render_bootstrap_set(model.generator, cfg, n_images, seed, codes=codes, code_share=code_share,
                                    wide_share=wide_share)
        data["code_share"] = torch.tensor(code_share)
        data["wide_share"] = torch.tensor(wide_share)
        save_checkpoint(data_path, data)
        print(f"rendered {n_images} bootstrap images in {time.time() - t0:.0f}s")
    hdris = None
    if photo_share > 0:
        from .photolike import load_hdris

        hdris = load_hdris()
        print(f"photo-like backgrounds on {100 * photo_share:.0f}% of the images ({len(hdris)} HDRIs)")
    n_val = min(max(16, n_images // 20), n_images // 2)
    opt = torch.optim.AdamW(model.encoder.parameters(), lr=1e-3, weight_decay=1e-4)
    ckpt_path = out / "encoder_ckpt.pt"
    ckpt = load_checkpoint(ckpt_path)
    start, elapsed = 0, 0.0
    if ckpt is not None:
        model.encoder.load_state_dict(ckpt["encoder"])
        opt.load_state_dict(ckpt["optimizer"])
        start, elapsed = int(ckpt["iteration"]), float(ckpt["elapsed_s"])
        print(f"resuming from iteration {start}")
    g = torch.Generator().manual_seed(seed * 7919 + start)
    progress = Progress(iters, start, label="encoder")
    t0 = time.time()
    model.encoder.train()
    for it in range(start, iters):
        lr = 1e-3 * (0.5 * (1 + math.cos(math.pi * it / iters)) * 0.97 + 0.03)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(n_val, n_images, (batch_size,), generator=g)
        loss, terms = encoder_losses(model, data, idx, g, photo_share, hdris)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        progress.update(it + 1, loss=float(loss.detach()), **terms)
        if (it + 1) % 250 == 0 or it + 1 == iters:
            save_checkpoint(ckpt_path, {"encoder": model.encoder.state_dict(), "optimizer": opt.state_dict(),
                                        "iteration": it + 1, "elapsed_s": elapsed + time.time() - t0})
    model.encoder.eval()
    with torch.no_grad():
        _, val = encoder_losses(model, data, torch.arange(n_val), torch.Generator().manual_seed(1))
        if photo_share > 0:
            _, val_photo = encoder_losses(model, data, torch.arange(n_val), torch.Generator().manual_seed(1), 1.0, hdris)
            val.update({f"{k}_photo": v for k, v in val_photo.items()})
    print("validation (held-out generator renders):", {k: round(v, 4) for k, v in val.items()})
    if write is not None:
        card = {"generator": {k: gck[k] for k in ("iterations", "elapsed_s", "seed", "shapes", "extra_shapes",
                                                        "infinigen_shapes")
                              if k in gck},
                "encoder": {"images": n_images, "iterations": iters, "batch": batch_size, "seed": seed, "init": init,
                            "code_share": code_share, "photo_share": photo_share, "wide_share": wide_share,
                            "elapsed_s": round(elapsed + time.time() - t0, 1),
                            "validation": {k: round(v, 4) for k, v in val.items()}}}
        path = save_model(model, Path(write), card)
        print(f"model written: {path}")
    return model


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training train-encoder --help``)."""
    ap.add_argument("--generator", default="runs/generator/generator.pt")
    ap.add_argument("--out", default="runs/encoder")
    ap.add_argument("--images", type=int, default=6000, help="bootstrap renders")
    ap.add_argument("--iters", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", default=None, help="write the finished model to this stem, e.g. weights/chairs")
    ap.add_argument("--name", default="chairs")
    ap.add_argument("--init", default=None, help="start from this model's encoder (name or .json), e.g. chairs")
    ap.add_argument("--code-share", type=float, default=0.0,
                    help="share of the renders drawn near the training chairs' codes instead of the fitted Gaussian")
    ap.add_argument("--photo-share", type=float, default=0.0,
                    help="share of the training images composited over a photo-like background (training.photolike)")
    ap.add_argument("--wide-share", type=float, default=0.0,
                    help="share of the bootstrap crops that are loose and off-centre (margin 1.1-1.8)")


def run(args: argparse.Namespace) -> int:
    for flag in ("code_share", "photo_share", "wide_share"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            print(f"error: --{flag.replace('_', '-')} must be between 0 and 1", file=sys.stderr)
            raise SystemExit(2)
    train_encoder(Path(args.generator), Path(args.out), args.images, args.iters, args.batch, args.seed,
                  args.threads, None if args.write is None else Path(args.write), args.name, args.init,
                  args.code_share, args.photo_share, args.wide_share)
    return 0
