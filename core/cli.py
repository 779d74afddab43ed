"""Command line: ``python -m core reconstruct IMAGE [IMAGE ...] --out DIR [options]``.

The contract (docs/CONVENTIONS.md): for every input ``DIR/<stem>.<format>`` and ``DIR/<stem>.json``;
a failed input gets one line on stderr naming the file and the reason, the other inputs are still
reconstructed, and the exit status is 0 only when every input succeeded.
"""

from __future__ import annotations

import argparse
import sys

from .errors import ReconstructionError


def add_reconstruct_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of ``reconstruct``."""
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
                    help="35 mm-equivalent focal length of the photos (as EXIF defines it: on the 43.3 mm "
                         "diagonal of a 36 x 24 mm frame); default: the EXIF value, else the model's default; "
                         "0: estimate it from the image")
    ap.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def run_reconstruct(args: argparse.Namespace) -> int:
    if args.mask and len(args.images) > 1:
        print("error: --mask applies to one image; run each image with its own mask", file=sys.stderr)
        return 2
    from .api import reconstruct
    from .progress import ProgressBar

    with ProgressBar(disable=args.quiet) as bar:
        try:
            results = reconstruct(args.images, masks=args.mask, model=args.model, steps=args.steps,
                                  device=args.device, mesh_resolution=args.mesh_resolution, seed=args.seed,
                                  progress=bar, out_dir=args.out, fmt=args.format, focal_mm=args.focal_mm)
        except ReconstructionError as err:
            bar.close()
            print(f"error: {err}", file=sys.stderr)
            return 1
    failed = 0
    for res in results:
        if res.ok:
            print(f"{res.image}: {res.mesh_path} ({len(res.mesh.vertices)} vertices, {res.timings['total']:.1f} s), "
                  f"{res.json_path}")
        else:
            failed += 1
            print(f"error: {res.error}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core",
                                 description="Shape, pose and appearance from a single image: photos in, "
                                             "colored meshes and cameras out.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rec = sub.add_parser("reconstruct", help="reconstruct a colored mesh and the camera from photos",
                         description="Reconstruct a colored mesh and the camera from photos.")
    add_reconstruct_arguments(rec)
    rec.set_defaults(run=run_reconstruct)
    return ap


def main(argv=None) -> int:
    return run_command(build_parser(), argv)


def run_command(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse ``argv`` (default: the process's) with ``parser`` and run the chosen subcommand's ``run``;
    a ReconstructionError becomes one line on stderr and exit status 1."""
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(args.run(args) or 0)
    except ReconstructionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
