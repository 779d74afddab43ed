"""Regenerate the README's demo pictures from the shipped example and model at the shipped settings.

    .venv/bin/python scripts/demo_pictures.py [--input examples/chair_dining.png] [--docs docs] [--steps 10]

Runs ``scripts/batch_reconstruct.py --render`` (headless, the ``bpy`` module) into a temporary folder,
then writes ``docs/demo_input.png`` (the photo, 256 px), ``docs/demo_overlay.png`` (the mesh through the
recovered camera over the photo), ``docs/demo_side.png`` and ``docs/demo_back.png`` (the mesh from 90
and 180 deg around it), each at most ``--side`` px and reduced to a 256-colour palette (tens of KB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ("overlay", "side", "back")
"""the batch script's renders that become ``docs/demo_<view>.png``."""


def small_png(src: Path, dst: Path, side: int, palette: bool = True) -> None:
    """``src`` shrunk to at most ``side`` px a side, flattened on white, saved as ``dst`` (palette PNG)."""
    from PIL import Image

    image = Image.open(src).convert("RGBA")
    image.thumbnail((side, side), Image.LANCZOS)
    flat = Image.new("RGB", image.size, (255, 255, 255))
    flat.paste(image, mask=image.getchannel("A"))
    if palette:
        flat = flat.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    flat.save(dst, optimize=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", default=str(ROOT / "examples" / "chair_dining.png"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--side", type=int, default=384, help="largest side of the rendered views in px")
    args = ap.parse_args(argv)
    photo, docs = Path(args.input), Path(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "scripts" / "batch_reconstruct.py"), "--input", str(photo), "--out", tmp,
               "--steps", str(args.steps), "--render"]
        if subprocess.run(cmd).returncode != 0:
            print(f"error: {photo}: the reconstruction failed (see above); docs/ is unchanged", file=sys.stderr)
            return 1
        renders = {v: Path(tmp) / f"{photo.stem}_{v}.png" for v in VIEWS}
        missing = [str(p) for p in renders.values() if not p.exists()]
        if missing:
            print(f"error: {photo}: no {', '.join(missing)}; docs/ is unchanged", file=sys.stderr)
            return 1
        small_png(photo, docs / "demo_input.png", 256, palette=False)
        for view, path in renders.items():
            small_png(path, docs / f"demo_{view}.png", args.side)
    print(f"wrote {', '.join(str(docs / f'demo_{v}.png') for v in ('input', *VIEWS))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
