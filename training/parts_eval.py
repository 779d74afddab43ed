"""Recoloring the seat on held-out procedural chairs: ``python -m training parts-evaluate``.

For every evaluation chair (training.data.EVAL_SEEDS) the input view goes through ``core.reconstruct``;
the data generator says which true part every pixel of the input view shows. The reconstructed mesh
is drawn through the recovered camera (dense surface samples, z-buffered, 128 x 128) and:

- the *seat* is the most visible true part named ``seat``, ``seat_cushion``, ``seat_shell_*`` or
  ``seat_sling``; seat pixels are where it is seen and the mesh covers the pixel;
- the *part that covers the seat* is the user-facing part (core.parts) with the largest mean weight
  on the seat pixels, the one a user would pick by its swatch;
- it is recolored (core.parts.recolor) to the fabric of ``FABRICS`` farthest from its swatch, and a
  pixel *changed* when one sRGB channel moved by more than ``CHANGED`` (26 / 255);
- *other* pixels are the covered pixels of true parts whose base color differs from the seat's
  (by more than ``SAME_COLOR`` in some channel). Parts painted like the seat are left out: no model
  can tell them apart by color, and recoloring them with the seat is what a user expects.
- *colors apart*: chairs whose reconstruction shows the other parts in a color unlike its seat
  (fewer than half of the other pixels within 0.1 of the seat's median reconstructed color). On
  the rest, the reconstruction itself painted the chair in one color and no part split can help.

Reported: the share of seat pixels changed and of other pixels changed, pooled over chairs and per
chair; the parts per chair and the share of a mesh's vertices whose largest part weight is at least
0.8 (``core.parts.dominance``), averaged over chairs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .common import CANONICAL

VIEW = 128
"""metric resolution (pixels)."""
CHANGED = 26 / 255
"""a pixel changed when one sRGB channel moved by more than this."""
SAME_COLOR = 0.08
"""true parts whose base colors differ by at most this per channel count as painted like the seat."""
FABRICS = np.array([[0.75, 0.12, 0.10], [0.12, 0.30, 0.70], [0.15, 0.55, 0.25], [0.90, 0.78, 0.20]])
"""recolor targets (sRGB): red, blue, green and ochre fabric."""
SAMPLES = 400_000
"""surface samples drawn per mesh for the z-buffer."""


def seat_part(names: list[str], visible_counts: np.ndarray) -> int | None:
    """Index of the most visible seat part (``visible_counts`` per true part), None when none is seen."""
    seat = [i for i, n in enumerate(names) if (n == "seat" or n.startswith(("seat_cushion", "seat_shell", "seat_sling")))
            and visible_counts[i] > 0]
    return max(seat, key=lambda i: visible_counts[i]) if seat else None


def draw_mesh(vertices: np.ndarray, faces: np.ndarray, attributes: np.ndarray, cam2world: np.ndarray, focal: float,
              cx: float, cy: float, size: int, samples: int = SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mesh attributes seen through a pinhole camera: (size, size, A) values and (size, size) coverage.

    ``attributes`` (V, A) are interpolated barycentrically at ``samples`` area-uniform surface points;
    each pixel keeps the nearest point that lands in it.
    """
    rng = np.random.default_rng(seed)
    tri = vertices[faces]  # (F, 3, 3)
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face = rng.choice(len(faces), samples, p=area / area.sum())
    r1, r2 = rng.random(samples), rng.random(samples)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)  # (S, 3)
    pts = np.einsum("sk,skj->sj", bary, tri[face])
    attr = np.einsum("sk,skj->sj", bary, attributes[faces[face]])
    w2c = np.linalg.inv(cam2world)
    local = pts @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -local[:, 2]
    front = depth > 1e-6
    u = np.floor(cx + focal * local[:, 0] / np.where(front, depth, 1)).astype(np.int64)
    v = np.floor(cy - focal * local[:, 1] / np.where(front, depth, 1)).astype(np.int64)
    inside = front & (u >= 0) & (u < size) & (v >= 0) & (v < size)
    pix, depth, attr = (v * size + u)[inside], depth[inside], attr[inside]
    order = np.lexsort((depth, pix))  # by pixel, nearest first
    pix, attr = pix[order], attr[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    out = np.zeros((size * size, attributes.shape[1]))
    covered = np.zeros(size * size, bool)
    out[pix[first]] = attr[first]
    covered[pix[first]] = True
    return out.reshape(size, size, -1), covered.reshape(size, size)


def true_parts(seed: int, camera) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(VIEW, VIEW) true part index per pixel (-1 = background), part names, (P, 3) base colors."""
    from .data.chairs import chair_query, sample_chair
    from .data.raytrace import render_depth_coords

    spec = sample_chair(seed)
    buf = render_depth_coords(spec, camera.resized(VIEW, VIEW))
    part = np.full(buf["mask"].shape, -1, np.int64)
    if buf["mask"].any():
        _, idx = chair_query(spec, torch.from_numpy(buf["coords"][buf["mask"]]).float())
        part[buf["mask"]] = idx.numpy()
    return part, spec.part_names, np.stack([p.mat.color for p in spec.parts])


def score(case: dict, result) -> dict:
    """Seat/other pixels changed by recoloring the part covering the seat, for one reconstructed chair."""
    from core.parts import recolor

    mesh, cam = result.mesh, result.camera
    part, names, base = true_parts(case["seed"], case["cam_in"])
    seat = seat_part(names, np.bincount(part[part >= 0], minlength=len(names)))
    if seat is None or mesh.parts is None:
        return {"seed": case["seed"], "family": case["family"], "seat_seen": False}
    s = VIEW / cam.width
    parts = mesh.parts
    attrs = np.concatenate([mesh.colors, parts.weights], axis=1).astype(np.float64)
    drawn, covered = draw_mesh(mesh.vertices, mesh.faces, attrs, cam.cam2world, cam.focal_px * s, cam.cx * s,
                               cam.cy * s, VIEW, seed=case["seed"])
    seat_px = (part == seat) & covered
    painted_like_seat = np.abs(base - base[seat]).max(axis=1) <= SAME_COLOR
    other_px = (part >= 0) & covered & ~painted_like_seat[np.maximum(part, 0)]
    if not seat_px.any():
        return {"seed": case["seed"], "family": case["family"], "seat_seen": False}
    chosen = int(np.argmax(drawn[..., 3:][seat_px].mean(axis=0)))
    swatch = parts.part_colors()[chosen]
    new_color = FABRICS[int(np.argmax(np.abs(FABRICS - swatch).max(axis=1)))]
    after_colors = recolor(mesh, {chosen: tuple(new_color)}).colors
    after, _ = draw_mesh(mesh.vertices, mesh.faces, after_colors.astype(np.float64), cam.cam2world, cam.focal_px * s,
                         cam.cx * s, cam.cy * s, VIEW, seed=case["seed"])
    changed = np.abs(after - drawn[..., :3]).max(axis=-1) > CHANGED
    seat_look = np.median(drawn[..., :3][seat_px], axis=0)
    like_seat = np.abs(drawn[..., :3] - seat_look).max(axis=-1) <= 0.1
    from core.parts import dominance

    return {"seed": case["seed"], "family": case["family"], "seat_seen": True, "parts": parts.count,
            "dominance": dominance(parts.weights), "chosen_part": chosen, "seat_pixels": int(seat_px.sum()), "other_pixels": int(other_px.sum()),
            "seat_changed": int((changed & seat_px).sum()), "other_changed": int((changed & other_px).sum()),
            "other_like_seat": float((like_seat & other_px).sum() / max(other_px.sum(), 1))}


def summarize(rows: list[dict]) -> dict:
    seen = [r for r in rows if r["seat_seen"]]
    if not seen:
        return {"chairs": len(rows), "seat_seen": 0}
    seat = np.array([r["seat_changed"] / r["seat_pixels"] for r in seen])
    with_other = [r for r in seen if r["other_pixels"] > 0]
    other = np.array([r["other_changed"] / r["other_pixels"] for r in with_other])
    apart = [r for r in with_other if r["other_like_seat"] < 0.5]
    return {"chairs": len(rows), "seat_seen": len(seen), "with_other_colors": len(with_other),
            "seat_changed_pooled": sum(r["seat_changed"] for r in seen) / sum(r["seat_pixels"] for r in seen),
            "other_changed_pooled": (sum(r["other_changed"] for r in with_other)
                                     / max(sum(r["other_pixels"] for r in with_other), 1)),
            "seat_changed_median": float(np.median(seat)),
            "other_changed_median": float(np.median(other)) if len(other) else 0.0,
            "chairs_seat_ge_80": float((seat >= 0.8).mean()),
            "chairs_other_le_10": float((other <= 0.1).mean()) if len(other) else 1.0,
            "colors_apart": len(apart),
            "other_changed_pooled_colors_apart": (sum(r["other_changed"] for r in apart)
                                                  / max(sum(r["other_pixels"] for r in apart), 1)),
            "parts_mean": float(np.mean([r["parts"] for r in seen])),
            "dominance_mean": float(np.mean([r.get("dominance", np.nan) for r in seen]))}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training parts-evaluate --help``)."""
    ap.add_argument("--model", default="chairs")
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="runs/eval/cases", help="folder that keeps the rendered evaluation cases")
    ap.add_argument("--json", default=None, help="also write the per-chair rows here")


def run(args: argparse.Namespace) -> int:
    from core.api import reconstruct

    from .data import EVAL_SEEDS
    from .evaluate import make_case

    torch.set_num_threads(args.threads)
    seeds = list(EVAL_SEEDS)[:args.images]
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cases = [make_case(s, Path(tmp), Path(args.cache) if args.cache else None) for s in seeds]
        for start in range(0, len(cases), args.batch):
            chunk = cases[start:start + args.batch]
            results = reconstruct([c["path"] for c in chunk], model=args.model, steps=args.steps, device="cpu",
                                  batch_size=args.batch, **CANONICAL)
            rows += [score(c, r) for c, r in zip(chunk, results) if r.ok]
    summary = summarize(rows)
    print(f"{len(seeds)} held-out procedural chairs, N={args.steps}, {time.time() - t0:.0f} s")
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0
