"""Command line: ``python -m core <command>``.

    reconstruct IMAGE [IMAGE ...] --out DIR [--model NAME] [--steps N] [--device D] [--mask MASK]
                [--format glb|ply|obj] [--mesh-resolution R] [--seed S] [--focal-mm F]
    bench        seconds per stage for N = 0, 10, 30
    evaluate     quality on held-out procedural chairs
    train-generator / train-encoder   build the shipped model
    ceiling CKPT silhouette IoU of a generator checkpoint on its own training chairs
"""

from __future__ import annotations

import argparse
import sys

from .errors import ReconstructionError


def _reconstruct(argv) -> int:
    ap = argparse.ArgumentParser(prog="python -m core reconstruct",
                                 description="Reconstruct a colored mesh and the camera from photos.")
    ap.add_argument("images", nargs="+", help="input photos (PNG, JPEG, WebP, TIFF, BMP)")
    ap.add_argument("--out", required=True, help="output folder for <stem>.<format> and <stem>.json")
    ap.add_argument("--model", default="chairs", help="model name or path to a .safetensors file")
    ap.add_argument("--steps", type=int, default=10, help="inversion steps: 0 encoder only, 10 fast, 30 slow")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ap.add_argument("--mask", default=None, help="foreground mask (only with a single image)")
    ap.add_argument("--format", default="glb", choices=["glb", "ply", "obj"])
    ap.add_argument("--mesh-resolution", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--focal-mm", type=float, default=None,
                    help="35 mm-equivalent focal length of the photos (long side = 36 mm); default: the EXIF "
                         "value, else 50; 0: estimate it from the image")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    if args.mask and len(args.images) > 1:
        print("error: --mask applies to one image; run each image with its own mask", file=sys.stderr)
        return 2

    def progress(stage, step, total, loss):
        if not args.quiet:
            extra = f" loss {loss:.4f}" if loss is not None else ""
            sys.stderr.write(f"\r{stage} {step}/{total}{extra}        ")
            sys.stderr.flush()

    from .api import reconstruct

    try:
        results = reconstruct(args.images, masks=args.mask, model=args.model, steps=args.steps, device=args.device,
                              mesh_resolution=args.mesh_resolution, seed=args.seed, progress=progress,
                              out_dir=args.out, fmt=args.format, focal_mm=args.focal_mm)
    except ReconstructionError as err:
        if not args.quiet:
            sys.stderr.write("\n")
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not args.quiet:
        sys.stderr.write("\r" + " " * 40 + "\r")
    failed = 0
    for res in results:
        if res.ok:
            print(f"{res.image}: {res.mesh_path} ({len(res.mesh.vertices)} vertices, {res.timings['total']:.1f} s), "
                  f"{res.json_path}")
        else:
            failed += 1
            print(f"error: {res.error}", file=sys.stderr)
    return 1 if failed else 0


COMMANDS = {
    "reconstruct": ("core.cli", "_reconstruct"),
    "bench": ("core.bench", "main"),
    "evaluate": ("core.evaluate", "main"),
    "train-generator": ("core.train_generator", "main"),
    "train-encoder": ("core.train_encoder", "main"),
    "ceiling": ("core.ceiling", "main"),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command '{argv[0]}'", file=sys.stderr)
            return 2
        return 0 if argv else 2
    module, func = COMMANDS[argv[0]]
    import importlib

    mod = importlib.import_module("." + module.split(".", 1)[1], __package__) if module != "core.cli" else None
    fn = getattr(mod, func) if mod else globals()[func]
    try:
        return int(fn(argv[1:]) or 0)
    except ReconstructionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
