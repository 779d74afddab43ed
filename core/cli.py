"""Command line: ``python -m core reconstruct IMAGE [IMAGE ...] --out DIR [options]``.

The contract (docs/CONVENTIONS.md): for every input ``DIR/<stem>.<format>`` and ``DIR/<stem>.json``
(two inputs with the same stem get ``<stem>_2`` ...); a failed input gets one line on stderr naming
the file and the reason, the other inputs are still reconstructed, and the exit status is 0 only when
every input succeeded, 1 when any failed or the options were refused (:mod:`core.validate`, checked
before torch is loaded), 2 for a malformed command line, 130 when interrupted. No traceback reaches
the user: an unexpected error is one ``error: ... internal error`` line.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import ReconstructionError, display_path


def add_reconstruct_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of ``reconstruct``."""
    ap.add_argument("images", nargs="+", help="input photos (PNG, JPEG, WebP, TIFF, BMP)")
    ap.add_argument("--out", required=True, help="output folder for <stem>.<format> and <stem>.json")
    ap.add_argument("--model", default="chairs", help="model name or path to a .safetensors file")
    ap.add_argument("--steps", type=int, default=None,
                    help="inversion steps: 0 encoder only, 10 fast, 30 slow (default: the model's, 10 for chairs)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    ap.add_argument("--mask", default=None, help="foreground mask (only with a single image)")
    ap.add_argument("--format", default="glb", choices=["glb", "ply", "obj"])
    ap.add_argument("--mesh-resolution", type=int, default=None,
                    help="marching-cubes grid samples per side, 16-512 (default: the model's, 128 for chairs)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the renderer's random samples, 0 to 2147483647")
    ap.add_argument("--focal-mm", type=float, default=None,
                    help="35 mm-equivalent focal length of the photos (as EXIF defines it: on the 43.3 mm "
                         "diagonal of a 36 x 24 mm frame); default: the EXIF value, else the model's default; "
                         "0: estimate it from the image")
    ap.add_argument("--height-m", default=None, metavar="H",
                    help="the object's real height in metres, 0.01-100 (default: the model's typical size, "
                         "0.87 m for chairs); the mesh stands on z = 0, its camera moved with it")
    ap.add_argument("--texture-size", default="1024", metavar="T",
                    help="side in pixels of the colour texture baked from the photo, 64-4096; 0: vertex "
                         "colours only (default 1024)")
    ap.add_argument("--faces", default=None, metavar="N",
                    help="decimate the mesh to about N faces (100 to 10000000; default: keep them all)")
    ap.add_argument("--joint", action="store_true",
                    help="the photos show ONE object: one mesh <first stem>.<format> and one JSON with every "
                         "photo's camera (a photo that cannot be placed is reported and left out)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def run_reconstruct(args: argparse.Namespace) -> int:
    if args.mask and len(args.images) > 1:
        print("error: --mask applies to one image; run each image with its own mask", file=sys.stderr)
        return 2
    from .config import ReconstructOptions
    from .validate import check_model, check_options

    # options and model files are refused before torch is loaded: a bad one costs nothing
    options = check_options(ReconstructOptions(
        model=args.model, steps=args.steps, device=args.device, mesh_resolution=args.mesh_resolution,
        seed=args.seed, out_dir=args.out, fmt=args.format, focal_mm=args.focal_mm,
        height_m=_number(args.height_m, float), texture_size=_number(args.texture_size, int),
        faces=_number(args.faces, int)))
    check_model(options.model, options.model_dirs)
    if args.joint:
        return _run_joint(args, options)
    from .api import reconstruct

    results = _with_progress(reconstruct, args, options)
    if results is None:
        return 1
    failed = 0
    for res in results:
        if res.ok:
            print(f"{display_path(res.image)}: {display_path(res.mesh_path)} ({len(res.mesh.vertices)} vertices, "
                  f"{res.timings['total']:.1f} s), {display_path(res.json_path)}", flush=True)
        else:
            failed += 1
            print(f"error: {res.error}", file=sys.stderr)
    return 1 if failed else 0


def _number(text: str | None, kind):
    """``text`` as a ``kind`` number, or as it is (core.validate refuses it with one line naming the option)."""
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        return text


def _with_progress(run, args: argparse.Namespace, options):
    """``run(args.images, options, masks=args.mask, progress=...)`` with a progress bar on stderr (unless
    ``--quiet``); None, after one ``error:`` line, when it refuses the call (ReconstructionError)."""
    from .progress import ProgressBar

    with ProgressBar(disable=args.quiet) as bar:
        try:
            return run(args.images, options, masks=args.mask, progress=bar)
        except ReconstructionError as err:
            bar.close()
            print(f"error: {err}", file=sys.stderr)
            return None


def _run_joint(args: argparse.Namespace, options) -> int:
    """``--joint``: one object from all the photos; exit 1 when a photo was left out or nothing was made."""
    from .joint import reconstruct_object

    obj = _with_progress(reconstruct_object, args, options)
    if obj is None:
        return 1
    for view in obj.views:
        if not view.ok:
            print(f"error: {view.error}", file=sys.stderr)
    if not obj.ok:
        print(f"error: {obj.error}", file=sys.stderr)
        return 1
    print(f"{len(obj.placed)} of {len(obj.views)} photos placed: {display_path(obj.mesh_path)} "
          f"({len(obj.mesh.vertices)} vertices, {obj.timings['total']:.1f} s), {display_path(obj.json_path)}",
          flush=True)
    return 0 if len(obj.placed) == len(obj.views) else 1


def add_import_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of ``import-model``."""
    ap.add_argument("generator", help="the reference code's generator checkpoint (gan_checkpoints/NAME/checkpoint_*.pth)")
    ap.add_argument("encoder", nargs="?", default=None,
                    help="its encoder checkpoint (coords_checkpoints/...pth); without it the model cannot reconstruct")
    ap.add_argument("--name", required=True, help="model name for --model (letters, digits, _ - .)")
    ap.add_argument("--dataset", required=True,
                    help="the reference dataset it was trained on: p3d_car, cub, shapenet_chairs, shapenet_cars, "
                         "carla or imagenet_<class> (sets the scene box, category and background)")
    ap.add_argument("--out", default=None, help="folder for <name>.safetensors and <name>.json (default: the "
                    "user's model folder, $SHAPE_FROM_IMAGE_MODELS or ~/.local/share/shape_from_image/models, "
                    "where --model and Blender find it by name)")
    ap.add_argument("--up", default="+y", help="the reference frame's up axis (default +y)")
    ap.add_argument("--front", default="+z", help="the reference frame's axis the object's front faces (default +z)")
    ap.add_argument("--encoder-heads", type=int, nargs=4, default=(1, 2, 5, 8), metavar="H",
                    help="attention heads of the encoder's four stages (default 1 2 5 8, SegFormer MiT)")
    ap.add_argument("--resolution", type=int, default=128,
                    help="the reference's --resolution the model was trained at (default 128)")
    ap.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    ap.add_argument("--force", action="store_true", help="replace a model of the same name in the output folder")


def run_import(args: argparse.Namespace) -> int:
    from .paper.convert import ImportOptions, import_model
    from .registry import user_models_dir

    folder = args.out or user_models_dir()
    if folder is None:
        raise ReconstructionError("no user model folder: neither SHAPE_FROM_IMAGE_MODELS nor a home folder is set; "
                                  "name the folder with --out")
    options = ImportOptions(args.dataset, up=args.up, front=args.front, encoder_heads=tuple(args.encoder_heads),
                            resolution=args.resolution, half=args.half, overwrite=args.force)
    out = import_model(args.generator, args.encoder, args.name, folder, options)
    use = args.name if args.out is None else display_path(out)
    print(f"imported '{args.name}': {display_path(out)}; reconstruct with --model {use} (Blender: put the folder "
          "in the More Models preference)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core",
                                 description="Shape, pose and appearance from a single image: photos in, "
                                             "colored meshes and cameras out.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rec = sub.add_parser("reconstruct", help="reconstruct a colored mesh and the camera from photos",
                         description="Reconstruct a colored mesh and the camera from photos.")
    add_reconstruct_arguments(rec)
    rec.set_defaults(run=run_reconstruct)
    imp = sub.add_parser("import-model", help="import a checkpoint of the paper's reference code",
                         description="Turn google-research/nerf-from-image checkpoints (generator 'model_ema', "
                                     "encoder 'model_coord') into a model for --model; nothing in them is executed.")
    add_import_arguments(imp)
    imp.set_defaults(run=run_import)
    return ap


def main(argv=None) -> int:
    """``python -m core``: no traceback reaches the user (``SHAPE_FROM_IMAGE_DEBUG=1`` shows it)."""
    return run_command(build_parser(), argv, one_line=not os.environ.get("SHAPE_FROM_IMAGE_DEBUG"))


def run_command(parser: argparse.ArgumentParser, argv=None, one_line: bool = False) -> int:
    """Parse ``argv`` (default: the process's) with ``parser`` and run the chosen subcommand's ``run``;
    a ReconstructionError becomes one line on stderr and exit status 1, an interrupt status 130. With
    ``one_line``, an unexpected exception is also one ``error: ... internal error`` line (status 1)."""
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(args.run(args) or 0)
    except ReconstructionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`... | head`)
        return 1
    except Exception as err:
        if not one_line:
            raise
        text = (str(err).splitlines() or [""])[0]
        print(f"error: internal error ({type(err).__name__}: {text}); please report it (set "
              "SHAPE_FROM_IMAGE_DEBUG=1 to see where it happened)", file=sys.stderr)
        return 1
