"""Which SDF level the mesh should be cut at: ``python -m training mesh-level --model M``.

The inversion fits volume renders, but users see the marching-cubes mesh, cut at
``sdf = mesh.level_betas * beta`` (core.config.MeshConfig). Cut too low, thin parts (spindles,
tubes) come out thinner than they render or break apart; too high, everything swells. This command
fits every validation image once (N steps, the public ``core.reconstruct``), cuts the fitted field at
several levels (and by the photo's silhouette when the model's ``mesh.carve_px`` is set), draws each mesh's silhouette through the recovered camera at the photo's own
resolution and scores it against the true mask: the same comparison as the Blender promise test
(tests/blender/test_blender_render.py), without Blender.

Validation images: procedural chairs from ``training.data`` seed 600000 on (neither trained on nor
evaluated on) and the cut-out renders of the real validation set (``--cases``). The example images
in ``examples/`` are never used: they are the promise test's own inputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .common import CANONICAL

VALIDATION_FIRST_SEED = 600_000
"""procedural validation chairs start here (outside TRAIN_SEEDS, EVAL_SEEDS and EXAMPLE_SEEDS)."""


def mesh_silhouette(vertices: np.ndarray, faces: np.ndarray, cam2world: np.ndarray, focal: float, cx: float,
                    cy: float, width: int, height: int, supersample: int = 4) -> np.ndarray:
    """(H, W) bool: pixels at least half covered by the mesh seen through the camera (Blender convention,
    as core.geometry.camera.project), as a renderer's anti-aliased alpha thresholded at 0.5.

    The triangles are filled at ``supersample`` times the resolution and box-filtered down (a filled
    polygon also colours the pixels its outline touches; at full resolution that would fatten every thin
    part by a pixel)."""
    from core.geometry.camera import Camera, project

    camera = Camera(torch.as_tensor(np.asarray(cam2world), dtype=torch.float32)[None], torch.tensor([float(focal)]),
                    torch.tensor([float(cx)]), torch.tensor([float(cy)]), width, height)
    k = supersample
    u, v = (k * project(camera, torch.from_numpy(np.asarray(vertices, np.float32))[None])[0].numpy() - 0.5).T
    img = Image.new("L", (k * width, k * height), 0)
    draw = ImageDraw.Draw(img)
    for a, b, c in faces:
        draw.polygon([(u[a], v[a]), (u[b], v[b]), (u[c], v[c])], fill=255)
    cover = np.asarray(img, dtype=np.float32).reshape(height, k, width, k).mean(axis=(1, 3)) / 255.0
    return cover >= 0.5


def level_scores(pipe, res, truth: np.ndarray, levels: list[float], resolution: int) -> dict[float, float]:
    """Mesh-silhouette IoU against ``truth`` (H, W bool) for the fitted field of ``res`` cut at each level."""
    from core.errors import ReconstructionError

    from .evaluate import mask_iou

    base = pipe.cfg
    cam = res.camera
    photos = [(pipe.prepare(res.image, None), cam)]  # the model's mesh.carve_px cuts by the photo's silhouette
    ws = torch.as_tensor(res.latent)
    offset = None if res.plane_offset is None else torch.as_tensor(res.plane_offset)[None]
    out = {}
    try:
        for level in levels:
            pipe.cfg = dataclasses.replace(base, mesh=dataclasses.replace(base.mesh, level_betas=level))
            try:
                mesh = pipe.mesh(ws, resolution, res.image, offset, photos=photos)
            except ReconstructionError:
                out[level] = 0.0
                continue
            sil = mesh_silhouette(mesh.vertices, mesh.faces, cam.cam2world, cam.focal_px, cam.cx, cam.cy,
                                  truth.shape[1], truth.shape[0])
            out[level] = mask_iou(sil, truth)
    finally:
        pipe.cfg = base
    return out


def procedural_images(n: int, folder: Path, cache: Path | None) -> list[tuple[str, str, np.ndarray]]:
    """(name, png path, true mask) of ``n`` procedural validation chairs (training.evaluate.make_case)."""
    from .evaluate import make_case

    cases = [make_case(s, folder, cache) for s in range(VALIDATION_FIRST_SEED, VALIDATION_FIRST_SEED + n)]
    return [(f"procedural_{c['seed']}", c["path"], c["alpha_in"] > 0.5) for c in cases]


def real_images(cases_json: Path, limit: int | None) -> list[tuple[str, str, np.ndarray]]:
    """(name, png path, true mask) of the real validation set's cut-out renders."""
    records = [r for r in json.loads(cases_json.read_text())["cases"] if r["condition"] == "cutout"]
    root = cases_json.parent
    return [(r["name"], str(root / r["image"]), np.asarray(Image.open(root / r["mask"]).convert("L")) > 127)
            for r in records[:limit]]


def sweep(model_name: str, images: list[tuple[str, str, np.ndarray]], levels: list[float], steps: int,
          resolution: int, log=print, inversion: dict | None = None) -> list[dict]:
    """One row per image: its name and the mesh-silhouette IoU at every level (``inversion``: settings that
    replace the model's for the fit)."""
    from core.api import Pipeline, reconstruct
    from core.config import replaced
    from core.model import load_model

    model = load_model(model_name, "cpu")
    settings = replaced(model.cfg.inversion, inversion or {})
    pipe = Pipeline(model, torch.device("cpu"))
    rows = []
    for name, path, truth in images:
        t = time.time()
        res = reconstruct([path], model=model_name, steps=steps, device="cpu", mesh_resolution=32,
                           inversion=settings, **CANONICAL)[0]
        if not res.ok:
            log(f"{name}: failed ({res.error})")
            rows.append({"name": name, "ok": False})
            continue
        scores = level_scores(pipe, res, truth, levels, resolution)
        rows.append({"name": name, "ok": True, "iou": {str(k): v for k, v in scores.items()}})
        log(f"{name}: " + " ".join(f"{k:g}:{v:.3f}" for k, v in scores.items()) + f" ({time.time() - t:.0f}s)")
    return rows


def summarize(rows: list[dict], levels: list[float]) -> dict[str, dict[str, float]]:
    """Per level: mean IoU, lowest IoU and share of images under the promise (0.85), over the rows that ran."""
    ok = [r for r in rows if r["ok"]]
    out = {}
    for level in levels:
        v = np.array([r["iou"][str(level)] for r in ok])
        out[f"{level:g}"] = {"mean": float(v.mean()), "min": float(v.min()), "under_0.85": float((v < 0.85).mean())}
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training mesh-level --help``)."""
    ap.add_argument("--model", default="chairs")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0],
                    help="mesh.level_betas values to cut at")
    ap.add_argument("--procedural", type=int, default=24, help="procedural validation chairs (seed 600000 on)")
    ap.add_argument("--cases", default="runs/real8/cases.json",
                    help="the real validation set's cases.json ('' for none); its cut-out renders are used")
    ap.add_argument("--real-limit", type=int, default=None, help="at most this many real cut-out renders")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--mesh-resolution", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="runs/eval/cases", help="folder that keeps rendered procedural chairs")
    ap.add_argument("--json", default=None, help="also write every image's scores here")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="inversion settings for the fit, e.g. plane_lr=0.06 (tuning)")


def run(args: argparse.Namespace) -> int:
    from .evaluate import _setting

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        images = procedural_images(args.procedural, Path(tmp), Path(args.cache) if args.cache else None)
        if args.cases:
            cases = Path(args.cases)
            if not cases.is_file():
                print(f"error: {cases} not found; build the real validation set with python -m training real-build, "
                      "or pass --cases ''")
                return 2
            images += real_images(cases, args.real_limit)
        rows = sweep(args.model, images, args.levels, args.steps, args.mesh_resolution,
                     inversion=dict(_setting(kv) for kv in args.set))
    groups = {"procedural": [r for r in rows if r["name"].startswith("procedural_")],
              "real cut-out": [r for r in rows if not r["name"].startswith("procedural_")], "all": rows}
    report = {"model": args.model, "steps": args.steps, "mesh_resolution": args.mesh_resolution, "inversion": args.set,
              "table": {g: summarize(r, args.levels) for g, r in groups.items() if any(x["ok"] for x in r)},
              "rows": rows}
    print("\n| images | " + " | ".join(f"level {v:g}" for v in args.levels) + " |")
    print("|---|" + "---|" * len(args.levels))
    for group, table in report["table"].items():
        print(f"| {group} | " + " | ".join(f"{t['mean']:.3f} (min {t['min']:.3f})" for t in table.values()) + " |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0
