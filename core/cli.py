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
import dataclasses
import os
import sys

from .errors import ReconstructionError, display_path


def add_option_arguments(ap: argparse.ArgumentParser, cls=None) -> None:
    """One flag per field of ``cls`` (:class:`core.config.ReconstructOptions`) whose metadata has ``cli``:
    its name, help, type and default come from the field (the command line and the batch script share them)."""
    import typing

    from .config import ReconstructOptions

    cls = cls or ReconstructOptions
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        cli = f.metadata.get("cli")
        if cli is None:
            continue
        kwargs = {"dest": f.name, "help": f.metadata.get("help")}
        if hints[f.name] is bool:
            kwargs["action"] = "store_true"
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kwargs["default"] = cli.get("default", default)
            kwargs.update({k: cli[k] for k in ("type", "required") if k in cli})
            if "choices" in f.metadata:
                kwargs["choices"] = list(f.metadata["choices"])
            else:
                kwargs["metavar"] = cli.get("metavar", cli["flag"].lstrip("-").replace("-", "_").upper())
        ap.add_argument(cli["flag"], **kwargs)


def options_from_args(args: argparse.Namespace, cls=None):
    """The options the flags of :func:`add_option_arguments` hold, not yet checked: a number typed as text is
    converted here, and text that is no number is left for core.validate to refuse with its own line."""
    import typing

    from .config import ReconstructOptions, optional

    cls = cls or ReconstructOptions
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if "cli" in f.metadata:
            kind = optional(hints[f.name]) or hints[f.name]
            values[f.name] = _number(getattr(args, f.name), kind) if kind in (int, float) else getattr(args, f.name)
    return cls(**values)


def add_reconstruct_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of ``reconstruct``."""
    ap.add_argument("images", nargs="+", help="input photos (PNG, JPEG, WebP, TIFF, BMP)")
    ap.add_argument("--mask", default=None, help="foreground mask (only with a single image)")
    add_option_arguments(ap)
    ap.add_argument("--joint", action="store_true",
                    help="the photos show ONE object: one mesh <first stem>.<format> and one JSON with every "
                         "photo's camera (a photo that cannot be placed is reported and left out)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def run_reconstruct(args: argparse.Namespace) -> int:
    if args.mask and len(args.images) > 1:
        print("error: --mask applies to one image; run each image with its own mask", file=sys.stderr)
        return 2
    from .validate import check_model, check_options

    # options and model files are refused before torch is loaded: a bad one costs nothing
    options = check_options(options_from_args(args))
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


def _number(text, kind):
    """``text`` as a ``kind`` number, or as it is (core.validate refuses it with one line naming the option)."""
    if not isinstance(text, str):
        return text
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
