"""Speed benchmark: ``python -m training bench [--model chairs] [--image examples/chair_dining.png]``.

Runs the whole public pipeline (``core.reconstruct``) on one image for N = 0, 10, 30 inversion steps
on the CPU (and on CUDA / MPS when present) and prints seconds per stage: model load (first call
only), image load + crop, encoder, PnP pose, inversion (and per step), mesh (marching cubes at the
chosen resolution with vertex colors), total. Each setting is run ``--repeat`` times after one
warm-up; the median is reported.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

STAGES = ("load", "encoder", "pose", "inversion", "mesh", "total")


def devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def bench(model: str, image: str, steps_list: list[int], repeat: int, mesh_resolution: int, device: str) -> list[dict]:
    from core.api import reconstruct
    from core.model import load_model

    t = time.perf_counter()
    load_model(model, device)  # cold load, measured once
    model_load = time.perf_counter() - t
    reconstruct([image], model=model, steps=1, device=device, mesh_resolution=32)  # warm-up
    rows = []
    for steps in steps_list:
        runs = []
        for _ in range(repeat):
            (res,) = reconstruct([image], model=model, steps=steps, device=device, mesh_resolution=mesh_resolution)
            if not res.ok:
                raise SystemExit(f"error: {res.error}")
            runs.append(res.timings)
        med = {k: float(np.median([r.get(k, 0.0) for r in runs])) for k in STAGES}
        med["per_step"] = med["inversion"] / steps if steps else 0.0
        rows.append({"device": device, "steps": steps, "model_load": model_load, **med})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| device | N | image load | encoder | pose | inversion | per step | mesh | total |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['device']} | {r['steps']} | {r['load']:.2f} | {r['encoder']:.2f} | {r['pose']:.2f} | "
                     f"{r['inversion']:.2f} | {r['per_step']:.2f} | {r['mesh']:.2f} | {r['total']:.2f} |")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training bench --help``)."""
    ap.add_argument("--model", default="chairs")
    ap.add_argument("--image", default=str(Path(__file__).resolve().parent.parent / "examples" / "chair_dining.png"))
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 10, 30])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mesh-resolution", type=int, default=128)
    ap.add_argument("--device", nargs="+", default=None, help="default: cpu plus every GPU backend present")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for dev in args.device or devices():
        rows += bench(args.model, args.image, args.steps, args.repeat, args.mesh_resolution, dev)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, mesh {args.mesh_resolution}^3, seconds (median of {args.repeat}); "
          f"model load once: {rows[0]['model_load']:.2f} s\n")
    print(table(rows))
    return 0
