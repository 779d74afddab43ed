"""Automatic segmentation of photos, measured: ``python -m training segment-evaluate --images 100``.

Procedural chairs (``--first-seed``, default the validation seeds 600000..) are ray-traced from the
photo distribution (elevation 0-45 deg, 35-60 mm, the chair filling 50-90% of the frame, off-centre),
given a material texture and composited over photo-like surroundings with their contact shadow
(training.photolike: room, HDRI window or plain backdrop). core.io.images.segment cuts each one out
without a mask, by colour alone (``auto``) and refined by the model's mask head (``net``); the table
gives the IoU against the true silhouette. ``--cases runs/real8/cases.json`` adds the photo-like
renders of the human-made validation chairs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

SIZE = 256


def make_photo(seed: int, hdris: list) -> tuple[np.ndarray, np.ndarray]:
    """Chair ``seed`` as a photo without alpha -> (rgb (S, S, 3) float32 in [0, 1], true alpha (S, S))."""
    from .data.chairs import sample_chair
    from .data.raytrace import fit_view, make_camera, render, sample_light, view_points
    from .photolike import material_texture, photo_backgrounds

    spec = sample_chair(seed)
    rng = np.random.default_rng([seed, 7])
    focal = rng.uniform(35, 60) / 36.0 * SIZE
    m = fit_view(view_points(spec), rng.uniform(0, 360), rng.uniform(0, 45), focal, SIZE, SIZE,
                 rng.uniform(0.5, 0.9), (rng.uniform(-1, 1), rng.uniform(-1, 1)))
    rgba = torch.from_numpy(render(spec, make_camera(m, focal, SIZE, SIZE), sample_light(rng)).astype(np.float32))
    g = torch.Generator().manual_seed(seed)
    alpha = rgba[None, ..., 3]
    rgb = rgba[None, ..., :3] * material_texture(1, SIZE, g)
    img = rgb + (1 - alpha[..., None]) * photo_backgrounds(alpha, g, hdris)
    img = img + 0.01 * torch.randn(img.shape, generator=g)
    return img[0].clamp(0, 1).numpy(), rgba[..., 3].numpy()


def _score(rgb: np.ndarray, alpha: np.ndarray, net) -> dict:
    """IoU of the colour segmentation ('auto') and of the refined one ('net') against ``alpha``."""
    from core.errors import ReconstructionError
    from core.io.images import segment

    from .evaluate import mask_iou

    row = {}
    for key, used in (("auto", None), ("net", net)) if net is not None else (("auto", None),):
        try:
            fg, source = segment(rgb, "", used)
            row[key] = mask_iou(fg > 0.5, alpha > 0.5)
        except ReconstructionError:
            row[key], source = 0.0, "failed"
    return {"net": row["auto"], **row, "source": source}


def _stats(values: list[float]) -> dict:
    v = np.array(values)
    return {"images": len(v), "mean": float(v.mean()), "median": float(np.median(v)),
            "below_0.8": float((v < 0.8).mean())}


def evaluate(model_name: str, images: int, first_seed: int, cases: Path | None) -> dict:
    from core.api import Pipeline
    from core.io.images import load_image
    from core.model import load_model

    from .photolike import load_hdris

    net = Pipeline(load_model(model_name, "cpu"), torch.device("cpu")).foreground_net()
    hdris = load_hdris()
    sets = {}
    if images > 0:
        sets["procedural"] = [{"seed": seed, **_score(*make_photo(seed, hdris), net)}
                              for seed in range(first_seed, first_seed + images)]
    if cases is not None:
        from .real.evaluate import load_cases

        sets["human-made photo-like"] = [{"name": case["name"], **_score(load_image(case["path"]).rgb, case["alpha"], net)}
                                         for case in load_cases(cases, "photo", outer=False)]
    return {"model": model_name, "sets": {name: {"auto": _stats([r["auto"] for r in rows]),
                                                 "net": _stats([r["net"] for r in rows]), "rows": rows}
                                          for name, rows in sets.items()}}


def markdown_table(report: dict) -> str:
    from .bench import markdown

    rows = [[name, method, str(s[method]["images"]), f"{s[method]['mean']:.3f}", f"{s[method]['median']:.3f}",
             f"{100 * s[method]['below_0.8']:.0f}%"]
            for name, s in report["sets"].items() for method in ("auto", "net")]
    return markdown(["set", "foreground", "images", "IoU mean", "IoU median", "IoU < 0.8"], rows)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training segment-evaluate --help``)."""
    ap.add_argument("--model", default="chairs", help="model whose mask head refines the segmentation")
    ap.add_argument("--images", type=int, default=100, help="procedural photos (0: only the --cases renders)")
    ap.add_argument("--first-seed", type=int, default=600_000, help="chairs from this seed on (validation seeds)")
    ap.add_argument("--cases", default=None, help="also the photo-like renders of this real validation set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the per-image rows here")


def run(args: argparse.Namespace) -> int:
    if args.images <= 0 and not args.cases:
        print("segment-evaluate: nothing to measure: give --images above 0 or --cases CASES.json")
        return 2
    torch.set_num_threads(args.threads)
    t = time.time()
    report = evaluate(args.model, args.images, args.first_seed, Path(args.cases) if args.cases else None)
    print(f"\nSegmentation without alpha or mask ({time.time() - t:.0f} s; IoU against the true silhouette):\n")
    print(markdown_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0
