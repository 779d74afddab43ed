"""Command line of the chair generator.

    python -m training.data preview --seed 3 --out /tmp/x.png [--size 256] [--azimuth A --elevation E]
    python -m training.data examples --out examples
    python -m training.data two-views --out examples/two_views    # two photos of one chair
    python -m training.data sheet --seeds 0-15 --out /tmp/sheet.png     # contact sheet of many seeds
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import EXAMPLE_SEEDS
from .chairs import sample_chair
from .raytrace import Light, fit_view, make_camera, render, sample_light, sample_view, view_points

BACKDROP_TOP = np.array([0.93, 0.93, 0.92])
"""studio backdrop colour at the top of the image (sRGB)."""
BACKDROP_BOTTOM = np.array([0.78, 0.78, 0.77])
"""studio backdrop colour at the bottom of the image (sRGB)."""

# (file stem, seed, azimuth, elevation, focal mm, fill, opaque backdrop); seeds from EXAMPLE_SEEDS
EXAMPLES = [
    ("chair_dining", 900012, 30.0, 20.0, 50.0, 0.8, False),
    ("chair_office", 900037, -35.0, 18.0, 45.0, 0.8, False),
    ("chair_armchair", 900049, 25.0, 15.0, 50.0, 0.8, False),
    ("chair_shell", 900024, -20.0, 25.0, 40.0, 0.8, False),
    ("chair_backdrop", 900033, 40.0, 12.0, 50.0, 0.75, True),
]


def backdrop(width: int, height: int) -> np.ndarray:
    """(H, W, 3) vertical light-grey studio gradient."""
    t = np.linspace(0, 1, height)[:, None, None] ** 1.5
    return (BACKDROP_TOP * (1 - t) + BACKDROP_BOTTOM * t).repeat(width, 1).astype(np.float32)


def _save(img: np.ndarray, path: Path, alpha: bool) -> None:
    arr = (np.clip(img if alpha else img[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGBA" if alpha else "RGB").save(path, optimize=True)


def cmd_preview(args) -> int:
    spec = sample_chair(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    if args.azimuth is None:
        cam = sample_view(rng, args.size, args.size, spec)
        light = sample_light(rng)
    else:
        focal = args.mm / 36 * args.size
        m = fit_view(view_points(spec), args.azimuth, args.elevation, focal, args.size, args.size, 0.8)
        cam, light = make_camera(m, focal, args.size, args.size), Light()
    bg = backdrop(args.size, args.size) if args.backdrop else None
    img = render(spec, cam, light, args.supersample, bg)
    _save(img, Path(args.out), alpha=not args.backdrop)
    print(f"seed {args.seed}: {spec.family}/{spec.style}, {len(spec.parts)} parts, {time.time() - t0:.2f} s -> {args.out}")
    return 0


def cmd_sheet(args) -> int:
    a, b = (int(x) for x in args.seeds.split("-"))
    seeds = list(range(a, b + 1))
    cols = math.ceil(math.sqrt(len(seeds)))
    rows = math.ceil(len(seeds) / cols)
    s = args.size
    sheet = np.ones((rows * s, cols * s, 3), np.float32)
    for i, seed in enumerate(seeds):
        spec = sample_chair(seed)
        rng = np.random.default_rng(seed)
        if args.azimuth is None:
            cam, light = sample_view(rng, s, s, spec), sample_light(rng)
        else:
            focal = 50 / 36 * s
            cam = make_camera(fit_view(view_points(spec), args.azimuth, args.elevation, focal, s, s, 0.85), focal, s, s)
            light = Light()
        img = render(spec, cam, light, 2, np.ones(3))
        r, c = divmod(i, cols)
        sheet[r * s:(r + 1) * s, c * s:(c + 1) * s] = img[..., :3]
        print(seed, spec.family, spec.style, file=sys.stderr)
    _save(sheet, Path(args.out), alpha=False)
    return 0


def cmd_examples(args) -> int:
    out = Path(args.out)
    size = args.size
    lines = ["# Example renders of the procedural chair generator", "",
             "Written by `python -m training.data examples --out examples` (seeds from `EXAMPLE_SEEDS`,",
             f"{size}x{size}, supersample 2). Camera: orbit around the origin (azimuth 0 = front view,",
             "from -Y), focal length in mm on a 36 mm sensor, `fill` = fraction of the frame the chair spans.", "",
             "| file | seed | family/style | azimuth | elevation | focal | fill |", "|---|---|---|---|---|---|---|"]
    meta = []
    for stem, seed, az, el, mm, fill, opaque in EXAMPLES:
        assert seed in EXAMPLE_SEEDS
        spec = sample_chair(seed)
        focal = mm / 36 * size
        m = fit_view(view_points(spec), az, el, focal, size, size, fill)
        cam = make_camera(m, focal, size, size)
        bg = backdrop(size, size) if opaque else None
        img = render(spec, cam, Light(), 2, bg)
        name = stem + (".jpg" if opaque else ".png")
        if opaque:
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.clip(img[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)).save(out / name, quality=90)
        else:
            _save(img, out / name, alpha=True)
        lines.append(f"| `{name}` | {seed} | {spec.family}/{spec.style} | {az:g} | {el:g} | {mm:g} mm | {fill:g} |")
        meta.append({"file": name, "seed": seed, "family": spec.family, "style": spec.style,
                     "cam2world": m.tolist(), "focal_px": focal, "width": size, "height": size})
        print(name, seed, spec.family, spec.style)
    lines += ["", "PNG files are RGBA cut-outs (transparent background); the JPEG has an opaque studio backdrop.",
              "`cameras.json` holds each camera (Blender cam2world, focal in pixels, principal point at the centre).", ""]
    (out / "README.md").write_text("\n".join(lines))
    (out / "cameras.json").write_text(json.dumps(meta, indent=1))
    return 0


# (file stem, azimuth, elevation): two photos of one chair (TWO_VIEWS_SEED), 50 mm, fill 0.8
TWO_VIEWS_SEED = 900037
TWO_VIEWS = [("chair_a", -35.0, 18.0), ("chair_b", 55.0, 22.0)]


def cmd_two_views(args) -> int:
    """Two cut-out photos of one chair 90 degrees apart, and their true cameras (cameras.json)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size, mm = args.size, 50.0
    assert TWO_VIEWS_SEED in EXAMPLE_SEEDS
    spec = sample_chair(TWO_VIEWS_SEED)
    focal = mm / 36 * size
    meta = []
    for stem, az, el in TWO_VIEWS:
        m = fit_view(view_points(spec), az, el, focal, size, size, 0.8)
        _save(render(spec, make_camera(m, focal, size, size), Light(), 2, None), out / f"{stem}.png", alpha=True)
        meta.append({"file": f"{stem}.png", "seed": TWO_VIEWS_SEED, "azimuth": az, "elevation": el,
                     "cam2world": m.tolist(), "focal_px": focal, "width": size, "height": size})
        print(stem, TWO_VIEWS_SEED, spec.family, spec.style)
    (out / "cameras.json").write_text(json.dumps(meta, indent=1))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("preview", help="render one chair")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--supersample", type=int, default=2)
    p.add_argument("--azimuth", type=float, default=None, help="fixed view instead of a random one")
    p.add_argument("--elevation", type=float, default=20.0)
    p.add_argument("--mm", type=float, default=50.0)
    p.add_argument("--backdrop", action="store_true", help="opaque studio backdrop instead of alpha")
    p.set_defaults(fn=cmd_preview)
    p = sub.add_parser("sheet", help="contact sheet of random views of many seeds")
    p.add_argument("--seeds", default="0-15")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--azimuth", type=float, default=None, help="fixed view instead of random ones")
    p.add_argument("--elevation", type=float, default=20.0)
    p.set_defaults(fn=cmd_sheet)
    p = sub.add_parser("examples", help="write the example images")
    p.add_argument("--out", default="examples")
    p.add_argument("--size", type=int, default=512)
    p.set_defaults(fn=cmd_examples)
    p = sub.add_parser("two-views", help="write two photos of one chair (multi-photo example)")
    p.add_argument("--out", default="examples/two_views")
    p.add_argument("--size", type=int, default=384)
    p.set_defaults(fn=cmd_two_views)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
