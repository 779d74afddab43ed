"""README pictures made in real Blender (the ``bpy`` wheel): ``python -m training figure-recolor``.

``figure-recolor``: one example photo is reconstructed, built into a Blender scene by the extension
(operators.scene.build_result: mesh, camera, the part material), rendered in Cycles through the
recovered camera as reconstructed, then with the swatch of the part that covers the seat set to each
fabric of ``FABRICS``; the photo and the renders are put side by side into one PNG.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "shape_from_image"
FABRICS = {"red wool": (0.62, 0.08, 0.07), "navy linen": (0.10, 0.16, 0.36), "ochre velvet": (0.80, 0.55, 0.12)}
"""swatch colors (sRGB) of the three variants."""


def _load(name: str, path: Path, search: list[str] | None = None):
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=search)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def seat_part(mesh) -> int:
    """The part whose vertices sit highest among the upward-facing middle band: the seat's part.

    The seat is the largest horizontal surface between 30% and 60% of the chair's height; its
    vertices' dominant part is returned.
    """
    v = mesh.vertices
    z = (v[:, 2] - v[:, 2].min()) / max(np.ptp(v[:, 2]), 1e-9)
    band = (z > 0.3) & (z < 0.6)
    dominant = mesh.parts.weights.argmax(axis=1)
    return int(np.bincount(dominant[band] if band.any() else dominant, minlength=mesh.parts.count).argmax())


def recolor_figure(photo: Path, out: Path, steps: int, size: int, samples: int) -> Path:
    import bpy
    from PIL import Image

    if PACKAGE not in sys.modules:
        _load(PACKAGE, REPO / "__init__.py", [str(REPO)])
    from shape_from_image.core.api import reconstruct
    from shape_from_image.operators import scene as scene_mod

    renders = _load("shape_from_image_batch_renders", REPO / "scripts" / "batch_renders.py")
    result = reconstruct([str(photo)], steps=steps)[0]
    if not result.ok:
        raise SystemExit(f"{photo}: {result.error}")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    built = scene_mod.build_result(scene, result)
    renders.use_cycles(scene, samples=samples)
    renders.white_world(scene, strength=0.7)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.7, 0.2, 0.6)
    scene.collection.objects.link(sun)
    scene.render.resolution_percentage = int(100 * size / max(result.camera.width, result.camera.height))
    swatches = scene_mod.part_swatches(built.mesh_object.data.materials[0])
    part = seat_part(result.mesh)
    tiles = [Image.open(photo).convert("RGBA")]
    with tempfile.TemporaryDirectory() as tmp:
        for i, rgb in enumerate([None, *FABRICS.values()]):
            if rgb is not None:
                swatches[part].outputs[0].default_value = (*scene_mod.srgb_to_linear(np.array(rgb)), 1.0)
            path = renders.render_still(scene, scene.camera, str(Path(tmp) / f"{i}.png"))
            tiles.append(Image.open(path).convert("RGBA"))
        h = tiles[1].height
        tiles = [t.resize((round(t.width * h / t.height), h), Image.LANCZOS) for t in tiles]
        sheet = Image.new("RGB", (sum(t.width for t in tiles), h), (255, 255, 255))
        x = 0
        for t in tiles:
            sheet.paste(t, (x, 0), t)
            x += t.width
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training figure-recolor --help``)."""
    ap.add_argument("--photo", default=str(REPO / "examples" / "chair_office.png"))
    ap.add_argument("--out", default=str(REPO / "docs" / "recolor.png"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=256, help="render side in pixels")
    ap.add_argument("--samples", type=int, default=32, help="Cycles samples per pixel")


def run(args: argparse.Namespace) -> int:
    out = recolor_figure(Path(args.photo), Path(args.out), args.steps, args.size, args.samples)
    print(f"wrote {out}")
    return 0
