"""Train the generator on procedural chairs with direct supervision (see weights/MODEL_CARD.md).

The paper trains adversarially from single views, out of reach on 2 CPU cores. Here the same
generator (mapping -> triplane synthesis -> SDF/attention-color decoder) is trained auto-decoder style
(DeepSDF): every training chair owns a latent code z, learned jointly with the generator under a
Gaussian prior; at the end the codes' fitted Gaussian is folded into the mapping so z ~ N(0, I) samples
like them, and the encoder can be bootstrapped exactly as in the paper. Losses: SDF L1 near the
surface and a sign hinge away from it, zero SDF and finite-difference normals on the surface, eikonal
term, surface albedo L1, prior.

    python -m training train-generator --out runs/generator --shapes 600 --iters 7000 --seed 0
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.config import ModelConfig
from core.field.generator import Generator

from .common import Progress, load_checkpoint, save_checkpoint

POINTS_PER_SHAPE = 32768


def _make_shape(seed: int) -> dict:
    from .data.chairs import sample_chair, training_samples

    g = torch.Generator().manual_seed(seed)
    spec = sample_chair(seed)
    s = training_samples(spec, POINTS_PER_SHAPE, g)
    out = {k: s[k].float() for k in ("points", "sdf", "albedo", "surface_points", "surface_albedo",
                                     "surface_normals")}
    out["surface_normals"] = torch.nan_to_num(out["surface_normals"], nan=0.0)  # no normal: no normal loss
    return out


def _build_cached(cache: Path, seeds: list[int], make, label: str, workers: int) -> dict[str, Tensor]:
    """``make(seed)`` for every seed in ``workers`` processes, stacked per key and cached in ``cache``
    (the entries of seeds the cache already holds are reused)."""
    old = torch.load(cache, map_location="cpu", weights_only=True) if cache.exists() else None
    if old is not None and old["seeds"].tolist() == list(seeds):
        return old
    have = {} if old is None else {int(s): i for i, s in enumerate(old["seeds"].tolist())}
    todo = [s for s in seeds if s not in have]
    import multiprocessing as mp

    t0 = time.time()
    built = {}
    if todo:
        progress = Progress(len(todo), label=label)
        with mp.get_context("spawn").Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for i, item in enumerate(pool.imap(make, todo, chunksize=4)):
                built[todo[i]] = item
                progress.update(i + 1)
    keys = next(iter(built.values())).keys() if built else [k for k in old if k != "seeds"]
    data = {k: torch.stack([built[s][k] if s in built else old[k][have[s]] for s in seeds]) for k in keys}
    data["seeds"] = torch.tensor(list(seeds))
    save_checkpoint(cache, data)
    print(f"built {label} of {len(todo)} chairs ({len(seeds) - len(todo)} reused) in {time.time() - t0:.0f}s -> {cache}")
    return data


def _make_mixed(infinigen: str, seed: int) -> dict:
    """``_make_shape(seed)``, or the Infinigen training chair of that factory seed from folder ``infinigen``."""
    from .infinigen.dataset import is_infinigen, load_shape

    return load_shape(infinigen, seed, POINTS_PER_SHAPE) if is_infinigen(seed) else _make_shape(seed)


def build_dataset(cache: Path, seeds: list[int], workers: int = 2, infinigen: Path | None = None) -> dict[str, Tensor]:
    """Sample (or load the cached) supervision for every training chair, stacked per key; the seeds of
    ``training.infinigen.convert.TRAINING_SEEDS`` are read from the folder ``infinigen``."""
    make = _make_shape if infinigen is None else functools.partial(_make_mixed, str(infinigen))
    return _build_cached(cache, seeds, make, "chairs", workers)


SILHOUETTE_VIEWS = 6
SILHOUETTE_SIZE = 48


def _make_silhouettes(seed: int) -> dict:
    """Exact silhouettes (pixel coverage, 2x2 supersampled sphere tracing) of one training chair seen
    from SILHOUETTE_VIEWS cameras of the data generator's pose distribution."""
    from core.geometry.camera import camera_rays

    from .data.chairs import sample_chair
    from .data.raytrace import sample_view, trace

    spec = sample_chair(seed)
    rng = np.random.default_rng(seed + 7_000_000)
    n, ss = SILHOUETTE_SIZE, 2
    c2w, focal, alpha = [], [], []
    for _ in range(SILHOUETTE_VIEWS):
        cam = sample_view(rng, n, n, spec)
        fine = cam.resized(n * ss, n * ss)
        rays = camera_rays(fine)
        _, hit = trace(spec, rays.origins[0], rays.directions[0], 1.0 / float(fine.focal[0]))
        cover = hit.float().reshape(n, ss, n, ss).mean(dim=(1, 3))
        c2w.append(cam.cam2world[0])
        focal.append(cam.focal[0])
        alpha.append((cover * 255).round().to(torch.uint8))
    return {"cam2world": torch.stack(c2w), "focal": torch.stack(focal), "alpha": torch.stack(alpha)}


def _silhouettes_mixed(infinigen: str, seed: int) -> dict:
    from .infinigen.dataset import is_infinigen, load_silhouettes

    if is_infinigen(seed):
        return load_silhouettes(infinigen, seed, SILHOUETTE_VIEWS, SILHOUETTE_SIZE)
    return _make_silhouettes(seed)


def build_silhouettes(cache: Path, seeds: list[int], workers: int = 2, infinigen: Path | None = None) -> dict[str, Tensor]:
    """Silhouettes of every training chair for the rendering loss (cached like build_dataset)."""
    make = _make_silhouettes if infinigen is None else functools.partial(_silhouettes_mixed, str(infinigen))
    return _build_cached(cache, seeds, make, "silhouettes", workers)


def draw_batch(rng: np.random.Generator, n: int, batch_size: int, first_infinigen: int | None = None,
               share: float | None = None) -> Tensor:
    """Indices of a batch of chairs out of ``n``. Without ``share``, uniform over all of them; with it, the
    chairs ``first_infinigen:`` (the Infinigen ones) fill a Binomial(batch, share) number of places."""
    if share is None or first_infinigen is None:
        return torch.as_tensor(rng.choice(n, batch_size, replace=False))
    n_inf = n - first_infinigen
    k = min(int(rng.binomial(batch_size, share)), n_inf)
    k = max(k, batch_size - first_infinigen)
    own = rng.choice(first_infinigen, batch_size - k, replace=False)
    return torch.as_tensor(np.concatenate([own, first_infinigen + rng.choice(n_inf, k, replace=False)]))


def silhouette_loss(gen: Generator, state, views: dict, render_cfg, rays: int, rng: np.random.Generator) -> Tensor:
    """L1 between the generator's volume-rendered opacity and the exact pixel coverage, on ``rays``
    random pixels of one random view per chair. The point losses never see a ray: a field whose SDF is
    right in sign but a beta or two small over a stretch of empty space renders as fog there."""
    from core.field.volume import render_rays
    from core.geometry.camera import Camera, camera_rays

    b, v, n = views["alpha"].shape[0], views["alpha"].shape[1], views["alpha"].shape[2]
    pick = torch.as_tensor(rng.integers(0, v, b))
    rows = torch.arange(b)
    half = torch.full((b,), n / 2.0)
    cam = Camera(views["cam2world"][rows, pick], views["focal"][rows, pick], half, half, n, n)
    # most rays near the chair (within 4 px of it), where fog and missing parts are; a tenth elsewhere
    alpha = views["alpha"][rows, pick].float() / 255.0  # (B, n, n)
    near = F.max_pool2d(alpha[:, None], 9, stride=1, padding=4)[:, 0].reshape(b, -1) > 0
    prob = (near.double() + 0.1 * (~near).double()).numpy()
    flat = torch.as_tensor(np.stack([rng.choice(n * n, rays, replace=False, p=prob[i] / prob[i].sum())
                                     for i in range(b)]))
    pix = torch.stack([flat % n, flat // n], dim=-1).float() + 0.5
    out = render_rays(gen, state, camera_rays(cam, pix), render_cfg)
    target = alpha.reshape(b, -1).gather(1, flat)
    return (out.alpha - target).abs().mean()


def fd_gradient(gen: Generator, state, points: Tensor, h: float = 0.004) -> Tensor:
    """Central-difference SDF gradient at points (B, N, 3) -> (B, N, 3) (first-order autograd only)."""
    offsets = torch.eye(3, device=points.device) * h
    p = torch.cat([points + o for o in offsets] + [points - o for o in offsets], dim=1)
    sdf = gen.query(state, p, with_color=False).sdf.reshape(points.shape[0], 6, -1)
    return ((sdf[:, :3] - sdf[:, 3:]) / (2 * h)).permute(0, 2, 1)


SDF_CLAMP = 0.1
"""distance beyond which the SDF is only asked to have the right sign and at least this magnitude."""


def sdf_loss(pred: Tensor, target: Tensor, clamp: float = SDF_CLAMP) -> Tensor:
    """L1 near the surface (weighted 5x), a hinge "at least ``clamp`` on the right side" farther away.

    Clamping the prediction as DeepSDF does would kill the gradient wherever the initial sphere is far
    off (|pred| > clamp while the point is inside a chair leg): those parts would never be learned.
    """
    near = target.abs() < clamp
    err = torch.where(near, (pred - target).abs(), F.relu(clamp - torch.sign(target) * pred))
    return (err * (1 + 4 * near.float())).mean()


def generator_losses(gen: Generator, z: Tensor, batch: dict, weights: dict,
                     silhouette: Callable | None = None) -> tuple[Tensor, dict]:
    """Losses of the latent codes z (B, z_dim) of the chairs in ``batch``; 'prior' is -log N(z; 0, I).
    ``silhouette(state)``, when given, adds the rendering term 'render' (weights['render'])."""
    state = gen.decode(gen.mapping_ws(z))
    pts, n_pts = batch["points"], batch["points"].shape[1]
    field = gen.query(state, torch.cat([pts, batch["surface_points"]], dim=1))
    sdf_p, sdf_s = field.sdf[:, :n_pts], field.sdf[:, n_pts:]
    target = batch["sdf"]
    near = (target.abs() < SDF_CLAMP).float()
    l_sdf = sdf_loss(sdf_p, target)
    l_surf = sdf_s.abs().mean()
    l_color = (field.rgb[:, n_pts:] - batch["surface_albedo"]).abs().mean()
    l_color_near = ((field.rgb[:, :n_pts] - batch["albedo"]).abs().mean(-1) * near).sum() / near.sum().clamp(min=1)
    n_fd = 256
    grad_s = fd_gradient(gen, state, batch["surface_points"][:, :n_fd])
    l_normal = (1 - F.cosine_similarity(grad_s, batch["surface_normals"][:, :n_fd], dim=-1)).mean()
    grad_p = fd_gradient(gen, state, pts[:, :n_fd])
    l_eik = (grad_p.norm(dim=-1) - 1).pow(2).mean()
    prior = 0.5 * z.pow(2).sum(-1).mean()
    terms = {"sdf": l_sdf, "surf": l_surf, "color": l_color, "color_near": l_color_near, "normal": l_normal,
             "eik": l_eik, "prior": prior}
    if silhouette is not None:
        terms["render"] = silhouette(state)
    loss = sum(weights[k] * v for k, v in terms.items())
    return loss, {k: float(v.detach()) for k, v in terms.items()}


LOSS_WEIGHTS = {"sdf": 10.0, "surf": 10.0, "color": 1.0, "color_near": 0.5, "normal": 0.1, "eik": 0.02,
                "prior": 2e-4}
PRIOR_WARMUP = 0.2
"""share of the iterations over which the weight of the Gaussian prior on the codes ramps up from 0."""
CODE_LR_GAIN = 10.0
"""learning-rate multiplier of the per-chair codes (each is in a batch only once per epoch)."""
BASIS_LR_GAIN = 10.0
"""learning-rate multiplier of the triplane dictionary (plain texels, like directly optimized planes)."""


def fold_code_distribution(gen: Generator, codes: Tensor) -> Tensor:
    """Make z ~ N(0, I) sample like the trained codes: fit N(mu, L L^T) to them and fold z -> mu + L z
    into the mapping's first layer (the bootstrapped encoder and anyone sampling z rely on it).
    Returns the codes in the folded z space, L^-1 (code - mu): the training chairs as z of the result."""
    mu = codes.mean(0)
    cov = torch.cov(codes.T) + 1e-4 * torch.eye(codes.shape[1])
    chol = torch.linalg.cholesky(cov)
    first = gen.mapping.net[0]
    first.bias.add_(first.weight @ mu)
    first.weight.copy_(first.weight @ chol)
    return torch.linalg.solve_triangular(chol, (codes - mu).T, upper=False).T


def point_batch(data: dict[str, Tensor], idx: Tensor, points: int, rng: np.random.Generator) -> dict[str, Tensor]:
    """Supervision of the chairs ``idx``: ``points`` random volume points and a quarter as many surface points."""
    n_surf = data["surface_points"].shape[1]
    pi = torch.as_tensor(rng.choice(POINTS_PER_SHAPE, points, replace=False))
    si = torch.as_tensor(rng.choice(n_surf, min(n_surf, points // 4), replace=False))
    return {"points": data["points"][idx][:, pi], "sdf": data["sdf"][idx][:, pi],
            "albedo": data["albedo"][idx][:, pi], "surface_points": data["surface_points"][idx][:, si],
            "surface_albedo": data["surface_albedo"][idx][:, si],
            "surface_normals": data["surface_normals"][idx][:, si]}


FIT_LR = 0.05
"""learning rate of the codes while they are fitted to a frozen generator (--init)."""


def fit_codes(gen: Generator, data: dict[str, Tensor], steps: int, batch_size: int, points: int,
              rng: np.random.Generator, lr: float = FIT_LR) -> tuple[Tensor, dict[str, float]]:
    """Codes of the training chairs for a trained generator that did not keep them: Adam on the codes alone
    (the generator frozen) with the point losses and the prior, from z = 0 (the mean chair of a folded
    generator), the rate on a cosine down to 5%. Returns the codes and the mean loss terms of the last
    tenth of the steps."""
    codes = nn.Parameter(torch.zeros(len(data["seeds"]), gen.cfg.z_dim))
    opt = torch.optim.Adam([codes], lr=lr, betas=(0.9, 0.99))
    frozen = [p for p in gen.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    tail: dict[str, list[float]] = {}
    progress = Progress(steps, 0, label="codes")
    try:
        for step in range(steps):
            opt.param_groups[0]["lr"] = lr * lr_factor(step, 0, steps)
            idx = torch.as_tensor(rng.choice(len(data["seeds"]), batch_size, replace=False))
            loss, terms = generator_losses(gen, codes[idx], point_batch(data, idx, points, rng), LOSS_WEIGHTS)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            progress.update(step + 1, loss=float(loss.detach()), sdf=terms["sdf"], color=terms["color"])
            if step >= steps - max(1, steps // 10):
                for k, v in terms.items():
                    tail.setdefault(k, []).append(float(v))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return codes.detach(), {k: sum(v) / len(v) for k, v in tail.items()}


def _grow_codes(opt: torch.optim.Optimizer, codes: nn.Parameter, held: int, fitted: Tensor) -> None:
    """Rows ``held:`` of ``codes`` become ``fitted``; their Adam moments start at zero."""
    with torch.no_grad():
        codes[held:] = fitted
    state = opt.state.get(codes, {})
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state and state[key].shape[0] == held:
            state[key] = torch.cat([state[key], torch.zeros_like(fitted)])


DEFAULT_LR = 1e-3


def lr_factor(it: int, start: int, end: int) -> float:
    """Cosine from 1 at `start` to 0.05 at `end`."""
    t = min(max((it - start) / max(end - start, 1), 0.0), 1.0)
    return 0.5 * (1 + math.cos(math.pi * t)) * 0.95 + 0.05


def train_generator(out: Path, shapes: int, iters: int, batch_size: int, points: int, seed: int,
                    threads: int, config: ModelConfig | None = None, first_seed: int = 0, lr: float | None = None,
                    render_weight: float = 0.0, render_rays: int = 384, schedule_from: int = 0,
                    init: str | None = None, fit_steps: int = 5000, extra_shapes: int = 0,
                    infinigen: Path | None = None, infinigen_shapes: int | None = None,
                    infinigen_share: float | None = None) -> Path:
    """Train (or resume) the generator. `lr` is the peak learning rate; None keeps the checkpoint's (1e-3 when
    starting fresh), a number replaces it on resume. The rate follows a cosine from `schedule_from` (the first
    iteration of this phase; 0 for a run from scratch) to `iters`, down to 5% of the peak.

    `init` (a model name or .json, used only when `out` has no checkpoint yet) starts from that model's
    generator at the iteration its card records: its training codes are not in the model file, so they are
    fitted first (`fit_steps` steps, generator frozen) and checkpointed; `iters` equal to that iteration
    only fits the codes and writes generator.pt (e.g. for `train-encoder --code-share`).

    `extra_shapes` adds that many chairs of the later families (training.data.EXTRA_SEEDS) after the
    `shapes` chairs. A checkpoint (or `init`) that holds codes for fewer chairs gets the missing ones
    fitted first (`fit_steps` steps, generator frozen), then training goes on with all of them.

    `infinigen` (a folder of ``training/infinigen/make_training.py``) adds its first `infinigen_shapes`
    chairs (all: None) after those, the same way; `infinigen_share` is their expected share of every
    batch (None: as their number says)."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    out = Path(out)
    ckpt_path = out / "generator_ckpt.pt"
    ckpt = load_checkpoint(ckpt_path)
    source = None
    if init is not None and ckpt is None:
        from core.model import load_model, resolve_model

        source = load_model(init)
        card = json.loads(resolve_model(init).read_text()).get("card", {}).get("generator", {})
        config = source.cfg
        if "iterations" not in card:
            raise ValueError(f"{init}: its card does not say how many steps its generator trained")
        if int(card.get("shapes", shapes)) != shapes:
            raise ValueError(f"{init}'s generator trained on {card['shapes']} chairs: pass --shapes {card['shapes']}")
        if iters < int(card["iterations"]):
            raise ValueError(f"--iters {iters} is below the {card['iterations']} steps {init}'s generator trained")
    if ckpt is not None and config is None and "config" in ckpt:
        config = ModelConfig.from_dict(ckpt["config"])  # a resumed run keeps its architecture
    cfg = config or ModelConfig()
    from .data import EXTRA_SEEDS

    seeds = list(range(first_seed, first_seed + shapes)) + list(EXTRA_SEEDS[:extra_shapes])
    first_infinigen = len(seeds)
    if infinigen is not None:
        from .infinigen.dataset import list_seeds

        seeds += list_seeds(infinigen, infinigen_shapes)
        if infinigen_share is not None and not 0.0 <= infinigen_share <= 1.0:
            raise ValueError(f"--infinigen-share {infinigen_share} is not a share between 0 and 1")
    n_infinigen = len(seeds) - first_infinigen
    data = build_dataset(out / "chairs_cache.pt", seeds, workers=threads, infinigen=infinigen)
    views = (build_silhouettes(out / "silhouettes.pt", seeds, workers=threads, infinigen=infinigen)
             if render_weight > 0 else None)
    gen = Generator(cfg.generator)
    codes = nn.Parameter(torch.randn(len(data["seeds"]), cfg.generator.z_dim))  # one z per chair, ~N(0, I)
    named = [(n, p) for n, p in gen.named_parameters() if n != "log_beta"]
    basis = [p for n, p in named if n == "synthesis.basis"]  # direct plane texels: learn like free planes
    params = [p for n, p in named if n != "synthesis.basis"]
    gains = (1.0, BASIS_LR_GAIN, CODE_LR_GAIN)
    peak = DEFAULT_LR if lr is None else lr
    opt = torch.optim.Adam([{"params": group, "lr": gain * peak, "base_lr": gain * peak}
                            for group, gain in zip((params, basis, [codes]), gains)], betas=(0.9, 0.99))
    start, elapsed = 0, 0.0

    def checkpoint(iteration: int, elapsed_s: float) -> None:
        save_checkpoint(ckpt_path, {"generator": gen.state_dict(), "codes": codes.detach().clone(),
                                    "optimizer": opt.state_dict(), "iteration": iteration, "elapsed_s": elapsed_s,
                                    "config": cfg.to_dict(), "seed": seed, "shapes": shapes,
                                    "extra_shapes": extra_shapes, "infinigen_shapes": n_infinigen,
                                    "seeds": torch.tensor(seeds)})

    if source is not None:
        gen.load_state_dict(source.generator.state_dict())
        start, elapsed = int(card["iterations"]), float(card.get("elapsed_s", 0.0))
        t_fit = time.time()
        fitted, terms = fit_codes(gen, data, fit_steps, batch_size, points, np.random.default_rng(seed))
        with torch.no_grad():
            codes.copy_(fitted)
        elapsed += time.time() - t_fit
        print(f"started from {init} at iteration {start}; codes fitted in {(time.time() - t_fit) / 60:.1f} min: "
              + ", ".join(f"{k} {v:.4f}" for k, v in terms.items()))
        checkpoint(start, elapsed)
    elif ckpt is not None:
        gen.load_state_dict(ckpt["generator"])
        if ckpt["codes"].shape[0] > len(seeds):
            raise ValueError(f"{ckpt_path} holds {ckpt['codes'].shape[0]} chairs' codes, more than --shapes, "
                             "--extra-shapes and --infinigen ask for")
        if "seeds" in ckpt and ckpt["seeds"].tolist() != seeds[:len(ckpt["seeds"])]:
            raise ValueError(f"{ckpt_path} trained on other chairs than these (or in another order): keep its "
                             "--shapes, --extra-shapes and --infinigen, and pass --infinigen-shapes N to fix their number")
        with torch.no_grad():
            codes[:ckpt["codes"].shape[0]].copy_(ckpt["codes"])
        opt.load_state_dict(ckpt["optimizer"])  # restores the checkpoint's peak rates
        if lr is not None:  # ... unless the command names one
            for group, gain in zip(opt.param_groups, gains):
                group["base_lr"] = gain * lr
        start, elapsed = int(ckpt["iteration"]), float(ckpt["elapsed_s"])
        print(f"resuming from iteration {start}")
        held = int(ckpt["codes"].shape[0])
        if held < len(seeds):
            t_fit = time.time()
            fitted, terms = fit_codes(gen, {k: v[held:] for k, v in data.items()}, fit_steps,
                                      min(batch_size, len(seeds) - held), points, np.random.default_rng(seed + held))
            _grow_codes(opt, codes, held, fitted)
            elapsed += time.time() - t_fit
            print(f"codes of {len(seeds) - held} added chairs fitted in {(time.time() - t_fit) / 60:.1f} min: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in terms.items()))
            checkpoint(start, elapsed)
    rng = np.random.default_rng(seed * 1000 + start)
    progress = Progress(iters, start, label="generator")
    t0 = time.time()
    for it in range(start, iters):
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(it, schedule_from, iters)
        # prior warm-up: the codes first spread out to tell the chairs apart, then the prior pulls them in
        weights = dict(LOSS_WEIGHTS, prior=LOSS_WEIGHTS["prior"] * min(1.0, it / (PRIOR_WARMUP * iters)),
                       render=render_weight)
        idx = draw_batch(rng, len(data["seeds"]), batch_size, first_infinigen if n_infinigen else None,
                         infinigen_share)
        batch = point_batch(data, idx, points, rng)
        sil = None
        if views is not None:
            chosen = {k: views[k][idx] for k in ("cam2world", "focal", "alpha")}
            sil = functools.partial(silhouette_loss, gen, views=chosen, render_cfg=cfg.render, rays=render_rays,
                                    rng=rng)
        loss, terms = generator_losses(gen, codes[idx], batch, weights, sil)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params + basis + [codes], 10.0)
        opt.step()
        progress.update(it + 1, loss=float(loss.detach()), sdf=terms["sdf"], color=terms["color"], prior=terms["prior"],
                        **({"render": terms["render"]} if "render" in terms else {}))
        if (it + 1) % 500 == 0 or it + 1 == iters:
            checkpoint(it + 1, elapsed + time.time() - t0)
    with torch.no_grad():
        codes_z = fold_code_distribution(gen, codes.detach())
        # w statistics for the encoder's output scaling and for sampling
        w = gen.mapping(torch.randn(20000, cfg.generator.z_dim, generator=torch.Generator().manual_seed(seed)))
        gen.w_avg.copy_(w.mean(0))
        gen.w_std.copy_(w.std(0).clamp(min=1e-3))
    final = out / "generator.pt"
    save_checkpoint(final, {"generator": gen.state_dict(), "config": cfg.to_dict(), "iterations": iters,
                            "elapsed_s": elapsed + time.time() - t0, "seed": seed, "shapes": shapes,
                            "extra_shapes": extra_shapes, "infinigen_shapes": n_infinigen, "codes": codes_z})
    print(f"generator trained: {final} ({(elapsed + time.time() - t0) / 60:.1f} min)")
    return final


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training train-generator --help``)."""
    ap.add_argument("--out", default="runs/generator", help="folder for cache, checkpoints and result")
    ap.add_argument("--shapes", type=int, default=1000, help="number of procedural training chairs")
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=6, help="chairs per step")
    ap.add_argument("--points", type=int, default=3072, help="supervision points per chair per step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=None,
                    help=f"peak learning rate (default: the checkpoint's when resuming, else {DEFAULT_LR:g})")
    ap.add_argument("--schedule-from", type=int, default=0, metavar="K",
                    help="start the cosine learning-rate schedule at iteration K (a new phase of a resumed run)")
    ap.add_argument("--render-weight", type=float, default=0.0,
                    help="weight of the silhouette rendering loss (0: point losses only)")
    ap.add_argument("--render-rays", type=int, default=384, help="rays per chair per step for that loss")
    ap.add_argument("--init", default=None, metavar="MODEL",
                    help="start from this model's generator (name or .json, e.g. chairs) when --out has no checkpoint: "
                    "its training codes are fitted first, then training goes on from the iteration its card records")
    ap.add_argument("--fit-steps", type=int, default=5000, help="steps that fit the codes for --init")
    ap.add_argument("--extra-shapes", type=int, default=0, metavar="N",
                    help="also train on N chairs of the later families (training.data.EXTRA_SEEDS); a checkpoint "
                    "without their codes gets them fitted first")
    ap.add_argument("--infinigen", default=None, metavar="DIR",
                    help="also train on the Infinigen chairs in DIR (training/infinigen/make_training.py); a "
                    "checkpoint without their codes gets them fitted first")
    ap.add_argument("--infinigen-shapes", type=int, default=None, metavar="N", help="only the first N of them")
    ap.add_argument("--infinigen-share", type=float, default=None, metavar="P",
                    help="expected share of Infinigen chairs in every batch (default: as their number says)")
    ap.add_argument("--tiny", action="store_true", help="tiny model (smoke test)")


def run(args: argparse.Namespace) -> int:
    from core.config import tiny_config

    try:
        train_generator(Path(args.out), args.shapes, args.iters, args.batch, args.points, args.seed, args.threads,
                        tiny_config() if args.tiny else None, lr=args.lr, render_weight=args.render_weight,
                        render_rays=args.render_rays, schedule_from=args.schedule_from, init=args.init,
                        fit_steps=args.fit_steps, extra_shapes=args.extra_shapes,
                        infinigen=None if args.infinigen is None else Path(args.infinigen),
                        infinigen_shapes=args.infinigen_shapes, infinigen_share=args.infinigen_share)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return 0
