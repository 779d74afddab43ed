"""Command line: ``python -m training <command>`` (run from the repository root)."""

from __future__ import annotations

import argparse
import importlib

from core.cli import run_command

COMMANDS = {
    "train-generator": ("train_generator", "train the triplane SDF generator on procedural chairs"),
    "train-encoder": ("train_encoder", "train the encoder on renders of a trained generator"),
    "train-slots": ("train_slots", "teach the colour slots the chair's parts (seat, back, arms, frame)"),
    "train-segmenter": ("train_segmenter", "train the foreground segmenter for photos without alpha"),
    "graft": ("graft", "give a model another model's segmenter and inference settings"),
    "average-encoders": ("average", "average the encoders of fine-tunes of one generator (model soup)"),
    "evaluate": ("evaluate", "quality on held-out procedural chairs"),
    "parts-evaluate": ("parts_eval", "recoloring the seat part on held-out procedural chairs"),
    "figure-recolor": ("figures", "README picture: one chair, three fabrics (real Blender)"),
    "multiview-evaluate": ("multiview", "several photos of one chair: joint against single-view reconstructions"),
    "segment-evaluate": ("segment_eval", "automatic segmentation of photos without alpha, against true masks"),
    "mesh-level": ("mesh_level", "the SDF level the mesh is cut at, scored by mesh silhouettes on validation images"),
    "bench": ("bench", "seconds per stage of the public pipeline"),
    "size-prior": ("size_prior", "the training chairs' overall height in metres (the model's size prior)"),
    "texture-bench": ("texture_bench", "the examples through their cameras: baked texture against vertex colours"),
    "ceiling": ("ceiling", "silhouette IoU of a generator checkpoint on its own training chairs"),
    "real-build": ("real.build", "render the real validation set (Sweet Home 3D catalogue chairs)"),
    "real-evaluate": ("real.evaluate", "quality on the real validation set"),
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
    return run_command(build_parser(), argv)
