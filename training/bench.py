"""Speed benchmark: ``python -m training bench [--model chairs] [--image examples/chair_dining.png]``.

Runs the whole public pipeline (``core.reconstruct``) on one image for N = 0, 10, 30 inversion steps
on the CPU (and on CUDA / MPS when present) and prints seconds per stage: model load (first call
only), image load + crop, encoder, PnP pose, inversion (and per step), mesh (marching cubes at the
chosen resolution with vertex colors), texture (UV atlas and the photo baked at ``--texture-size``), total. Each setting is run ``--repeat`` times after one
warm-up; the median is reported.

``--user-view`` measures instead what a user waits for, in wall seconds on the CPU: a cold
``python -m core reconstruct`` process per photo, the first and a warm call of ``core.reconstruct``
in one fresh process, and one call over a batch of 16 photos (photos per minute against 16 cold
processes), at N = 0 and 10, on the image resized to 256, its own size and 1024 pixels a side.

``--joint [PHOTO ...]`` times several photos of one object (default ``examples/two_views``): one warm
``core.joint.reconstruct_object`` call against one warm ``core.reconstruct`` call over the same photos
(each alone), per N.

``--paper [MODEL]`` times the paper's own architecture (core.paper, imported checkpoints) at its
settings: one encoder pass and one inversion step, on every device present.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

STAGES = ("load", "encoder", "pose", "inversion", "mesh", "texture", "total")


def devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def bench(model: str, image: str, steps_list: list[int], repeat: int, mesh_resolution: int, device: str,
          texture_size: int = 1024) -> list[dict]:
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
            (res,) = reconstruct([image], model=model, steps=steps, device=device, mesh_resolution=mesh_resolution,
                                 texture_size=texture_size)
            if not res.ok:
                raise SystemExit(f"error: {res.error}")
            runs.append(res.timings)
        med = {k: float(np.median([r.get(k, 0.0) for r in runs])) for k in STAGES}
        med["per_step"] = med["inversion"] / steps if steps else 0.0
        rows.append({"device": device, "steps": steps, "model_load": model_load, **med})
    return rows


ROOT = Path(__file__).resolve().parent.parent
_IN_PROCESS = """
import json, sys, time
t0 = time.perf_counter()
from core.api import reconstruct
imported = time.perf_counter() - t0
image, steps, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times = []
for _ in range(2):
    t = time.perf_counter()
    (res,) = reconstruct([image], steps=steps, device="cpu")
    times.append(time.perf_counter() - t)
t = time.perf_counter()
results = reconstruct(batch, steps=steps, device="cpu")
times.append(time.perf_counter() - t)
assert res.ok and all(r.ok for r in results), [r.error for r in results if not r.ok]
print(json.dumps({"import": imported, "first": times[0], "warm": times[1], "batch": times[2]}))
"""


def user_view(image: str, steps_list: list[int], sides: list[int], batch: int = 16) -> list[dict]:
    """Wall seconds a user waits for (see the module docstring); one row per image size and N."""
    from PIL import Image

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in sides:
            photo = Image.open(image)
            photo = photo.resize((side, side), Image.Resampling.LANCZOS) if side else photo
            paths = []
            for k in range(batch):
                paths.append(str(Path(tmp) / f"photo_{side}_{k}.png"))
                photo.save(paths[-1])
            for steps in steps_list:
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "core", "reconstruct", paths[0], "--out", str(Path(tmp) / "out"),
                                "--steps", str(steps), "--quiet", "--device", "cpu"], cwd=ROOT, check=True,
                               capture_output=True)
                cold = time.perf_counter() - t
                out = subprocess.run([sys.executable, "-c", _IN_PROCESS, paths[0], str(steps), *paths], cwd=ROOT,
                                     check=True, capture_output=True, text=True)
                calls = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append({"side": photo.size[0], "steps": steps, "cold_cli": cold, **calls,
                             "per_minute": 60 * batch / calls["batch"], "cold_per_minute": 60 / cold})
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table of ``header`` and the already formatted cells of ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def user_table(rows: list[dict]) -> str:
    return markdown(["photo", "N", "cold CLI", "import", "first call", "warm call", "batch of 16", "photos / min (batch)",
                     "photos / min (cold CLI)"],
                    [[f"{r['side']} px", str(r["steps"]), *(f"{r[k]:.2f}" for k in ("cold_cli", "import", "first", "warm")),
                      *(f"{r[k]:.1f}" for k in ("batch", "per_minute", "cold_per_minute"))] for r in rows])


def table(rows: list[dict]) -> str:
    return markdown(["device", "N", "image load", "encoder", "pose", "inversion", "per step", "mesh", "texture",
                     "total"],
                    [[r["device"], str(r["steps"]), *(f"{r[k]:.2f}" for k in ("load", "encoder", "pose", "inversion",
                                                                              "per_step", "mesh", "texture", "total"))]
                     for r in rows])


def joint_bench(model: str, photos: list[str], steps_list: list[int], repeat: int, mesh_resolution: int,
                device: str) -> list[dict]:
    """Warm seconds of one object from ``photos`` (core.joint) against the photos reconstructed one by one."""
    from core.api import reconstruct
    from core.joint import reconstruct_object

    reconstruct_object(photos, model=model, steps=1, device=device, mesh_resolution=32)  # warm-up
    rows = []
    for steps in steps_list:
        joint, single = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            obj = reconstruct_object(photos, model=model, steps=steps, device=device, mesh_resolution=mesh_resolution)
            joint.append(time.perf_counter() - t)
            t = time.perf_counter()
            results = reconstruct(photos, model=model, steps=steps, device=device, mesh_resolution=mesh_resolution)
            single.append(time.perf_counter() - t)
            if not obj.ok or not all(r.ok for r in results):
                raise SystemExit(f"error: {obj.error or [r.error for r in results if not r.ok]}")
        rows.append({"device": device, "photos": len(photos), "steps": steps, "joint": float(np.median(joint)),
                     "single": float(np.median(single))})
    return rows


def joint_table(rows: list[dict]) -> str:
    return markdown(["device", "photos", "N", "one object (joint)", "each photo alone (together)"],
                    [[r["device"], str(r["photos"]), str(r["steps"]), f"{r['joint']:.2f} s", f"{r['single']:.2f} s"]
                     for r in rows])


def paper_bench(device: str, repeat: int, model: str | None = None) -> dict:
    """Seconds of the paper's architecture (core.paper) at its own settings: one encoder pass on a 128 px crop
    and one inversion step (decode w, render 128^2 px with 64 + 64 samples per ray, backward). ``model``: an
    imported model; None: the paper's full widths with random weights (the cost does not depend on them)."""
    from core.config import PaperConfig
    from core.field.volume import render_image
    from core.geometry.camera import Camera, orbit_pose
    from core.model import ReconstructionModel, load_model
    from core.paper.convert import paper_model_config

    torch.manual_seed(0)
    net = load_model(model, device) if model else ReconstructionModel(
        paper_model_config("random", PaperConfig(), "object", True, True)).to(device).eval()
    gen, cfg = net.generator, net.cfg
    size = cfg.inversion.size
    cam = Camera(torch.tensor(orbit_pose(30.0, 20.0, 2.7), dtype=torch.float32)[None].to(device),
                 torch.tensor([1.8 * size], device=device), torch.tensor([size / 2], device=device),
                 torch.tensor([size / 2], device=device), size, size)
    crop = torch.rand(1, cfg.paper.encoder_image_size, cfg.paper.encoder_image_size, 3, device=device)
    ws = gen.mapping_ws(torch.randn(1, cfg.paper.latent_dim, device=device))

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def encoder():
        with torch.no_grad():
            net.encoder(crop)

    def step():
        u = ws.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = render_image(gen, gen.decode(u), cam, cfg.render)
            (out.albedo.mean() + out.alpha.mean()).backward()

    times = {}
    for name, fn in (("encoder", encoder), ("step", step)):
        fn()  # warm-up
        runs = []
        for _ in range(repeat):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            runs.append(time.perf_counter() - t)
        times[name] = float(np.median(runs))
    params = sum(p.numel() for p in net.parameters())
    return {"device": device, "model": model or "paper widths, random weights", "params_m": params / 1e6,
            "size": size, "samples": cfg.render.coarse_samples + cfg.render.fine_samples, **times}


def paper_table(rows: list[dict]) -> str:
    return markdown(["device", "model", "parameters", "encoder pass", "inversion step (render px, samples per ray)"],
                    [[r["device"], r["model"], f"{r['params_m']:.1f} M", f"{r['encoder']:.2f} s",
                      f"{r['step']:.2f} s ({r['size']}^2, {r['samples']})"] for r in rows])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training bench --help``)."""
    ap.add_argument("--model", default="chairs")
    ap.add_argument("--image", default=str(Path(__file__).resolve().parent.parent / "examples" / "chair_dining.png"))
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 10, 30])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mesh-resolution", type=int, default=128)
    ap.add_argument("--texture-size", type=int, default=1024, help="texture side (0: vertex colours only)")
    ap.add_argument("--device", nargs="+", default=None, help="default: cpu plus every GPU backend present")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--user-view", action="store_true",
                    help="wall seconds of a cold CLI process, a first and a warm call, a batch of 16 photos")
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 0, 1024],
                    help="with --user-view: image sizes in pixels a side (0: the image's own)")
    ap.add_argument("--joint", nargs="*", default=None, metavar="PHOTO",
                    help="several photos of one object (default: examples/two_views) against each photo alone")
    ap.add_argument("--paper", nargs="?", const="", default=None, metavar="MODEL",
                    help="the paper's architecture instead: encoder pass and inversion step at its settings, of an "
                         "imported MODEL or (no name) its full widths with random weights")


def run(args: argparse.Namespace) -> int:
    if args.user_view:
        steps = [s for s in args.steps if s in (0, 10)] or args.steps
        print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, wall seconds on the CPU\n")
        print(user_table(user_view(args.image, steps, args.sides)))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.paper is not None:
        rows = [paper_bench(dev, args.repeat, args.paper or None) for dev in args.device or devices()]
        print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
              f"torch {torch.__version__}, seconds (median of {args.repeat})\n")
        print(paper_table(rows))
        return 0
    if args.joint is not None:
        photos = args.joint or sorted(str(p) for p in (ROOT / "examples" / "two_views").glob("*.png"))
        rows = [row for dev in args.device or devices()
                for row in joint_bench(args.model, photos, args.steps, args.repeat, args.mesh_resolution, dev)]
        print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
              f"torch {torch.__version__}, mesh {args.mesh_resolution}^3, warm seconds (median of {args.repeat})\n")
        print(joint_table(rows))
        return 0
    rows = []
    for dev in args.device or devices():
        rows += bench(args.model, args.image, args.steps, args.repeat, args.mesh_resolution, dev, args.texture_size)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, mesh {args.mesh_resolution}^3, seconds (median of {args.repeat}); "
          f"model load once: {rows[0]['model_load']:.2f} s\n")
    print(table(rows))
    return 0
