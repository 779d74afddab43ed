"""Command line: ``python -m training <command>`` (run from the repository root)."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import ReconstructionError

COMMANDS = {
    "train-generator": ("train_generator", "train the triplane SDF generator on procedural chairs"),
    "train-encoder": ("train_encoder", "train the encoder on renders of a trained generator"),
    "evaluate": ("evaluate", "quality on held-out procedural chairs"),
    "bench": ("bench", "seconds per stage of the public pipeline"),
    "ceiling": ("ceiling", "silhouette IoU of a generator checkpoint on its own training chairs"),
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f".{module_name}", __package__)
        parser = sub.add_parser(command, help=help_text, description=(module.__doc__ or help_text).split("\n\n")[0])
        module.add_arguments(parser)
        parser.set_defaults(run=module.run)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(args.run(args) or 0)
    except ReconstructionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
