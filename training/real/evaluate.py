"""Quality on the real validation set: ``python -m training real-evaluate --cases runs/real/cases.json``.

Every render of ``cases.json`` (written by ``python -m training real-build``) goes through the whole
public pipeline (``core.reconstruct`` from the PNG file: the cut-outs bring their alpha, the
photo-like renders are segmented automatically). Scored as in training.evaluate:

- IoU: the model's silhouette rendered through the recovered camera vs the true object mask, both at
  128 x 128 (training.evaluate.VIEW_SIZE);
- rotation error: angle between the recovered and the true camera rotations (median, and the share
  above 30 degrees: a front/back or side flip); also modulo the chair's own symmetry (a turn about
  +Z that maps it onto itself, e.g. a four-legged round stool: ``symmetry_yaw_deg`` in cases.json);
- Chamfer-L1 between the reconstructed and the true mesh, both centred and scaled to unit
  bounding-box diagonal, on the true mesh's outer surface (training.evaluate.outer_samples: the
  catalogue models' parts overlap, and the faces they hide inside the object are no part of any
  photo); ``chamfer_all_faces`` measures against every face;
- seconds per image (wall time of ``reconstruct`` divided by the images);
- for photo-like renders also the IoU of the automatic segmentation (the pipeline's own input mask)
  against the true mask, full resolution.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..common import CANONICAL

FLIP_DEG = 30.0
"""a rotation error above this counts as a wrong pose (flip)."""


def load_cases(path: Path, condition: str = "both", limit: int | None = None, outer: bool = True) -> list[dict]:
    """The records of ``cases.json`` for ``condition`` ('cutout', 'photo' or 'both'), with the
    true mask (H, W) in [0, 1], cam2world (4, 4), mesh (vertices, faces) and, with ``outer``, points
    on the mesh's outer surface (training.evaluate.outer_samples) loaded."""
    root = path.parent
    records = json.loads(path.read_text())["cases"]
    if condition != "both":
        records = [r for r in records if r["condition"] == condition]
    records = records[:limit] if limit else records
    from ..evaluate import outer_samples

    meshes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    surfaces: dict[str, np.ndarray | None] = {}
    cases = []
    for r in records:
        if r["mesh"] not in meshes:
            with np.load(root / r["mesh"]) as d:
                meshes[r["mesh"]] = (d["vertices"].astype(np.float64), d["faces"].astype(np.int64))
            surfaces[r["mesh"]] = outer_samples(*meshes[r["mesh"]]) if outer else None
        cases.append({**r, "path": str(root / r["image"]), "mask_path": str(root / r["mask"]), "cam2world": np.asarray(r["cam2world"], dtype=np.float64),
                      "alpha": np.asarray(Image.open(root / r["mask"]).convert("L")) / 255.0,
                      "verts_faces": meshes[r["mesh"]], "outer_samples": surfaces[r["mesh"]]})
    return cases


def _segmentation_iou(case: dict, net=None) -> float | None:
    """IoU of the pipeline's automatic segmentation of the photo (with the model's foreground ``net``,
    core.api.Pipeline.foreground_net) vs the true mask (None: failed)."""
    from core.errors import ReconstructionError
    from core.io.images import load_image, segment

    from ..evaluate import mask_iou

    try:
        fg, _ = segment(load_image(case["path"]).rgb, case["path"], net)
    except ReconstructionError:
        return None
    return mask_iou(fg > 0.5, case["alpha"] > 0.5)


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return m


def score(model, case: dict, res, seconds: float, net=None) -> dict:
    """The metrics of one reconstruction (see the module docstring)."""
    from ..evaluate import VIEW_SIZE, _render_model, _rotation_error_deg, chamfer_l1, mask_iou

    row = {"name": case["name"], "chair": case["chair"], "condition": case["condition"], "seconds": seconds,
           "azimuth_deg": case["azimuth_deg"], "elevation_deg": case["elevation_deg"], "lens_mm": case["lens_mm"]}
    if case["condition"] == "photo":
        row["seg_iou"] = _segmentation_iou(case, net)
    if not res.ok:
        return {**row, "ok": False, "error": res.error}
    cam = res.camera
    s = VIEW_SIZE / case["width"]
    _, alpha = _render_model(model, res.latent, res.light, cam.cam2world, cam.focal_px * s, cam.cx * s, cam.cy * s,
                             VIEW_SIZE, res.plane_offset)
    gt = np.asarray(Image.fromarray((case["alpha"] * 255).astype(np.uint8)).resize(
        (VIEW_SIZE, VIEW_SIZE), Image.BOX)) / 255.0
    c2w = np.asarray(cam.cam2world, dtype=np.float64)
    turns = [0.0, *case.get("symmetry_yaw_deg", [])]
    return {**row, "ok": True, "iou": mask_iou(alpha > 0.5, gt > 0.5),
            "rot_err": _rotation_error_deg(c2w, case["cam2world"]),
            "rot_err_sym": min(_rotation_error_deg(c2w, _rot_z(t) @ case["cam2world"]) for t in turns),
            "chamfer": chamfer_l1(res.mesh.vertices, res.mesh.faces, *case["verts_faces"], b_samples=case["outer_samples"]),
            "chamfer_all_faces": chamfer_l1(res.mesh.vertices, res.mesh.faces, *case["verts_faces"]),
            "focal_ratio": float(cam.focal_px / case["focal_px"]), "mask_source": res.mask_source,
            "cam2world_est": c2w.tolist(), "focal_px_est": float(cam.focal_px)}


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["ok"]]
    out = {"images": float(len(rows)), "failed": float(len(rows) - len(ok)),
           "seconds": float(np.mean([r["seconds"] for r in rows])) if rows else 0.0}
    seg = [r["seg_iou"] for r in rows if r.get("seg_iou") is not None]
    if seg:
        out["seg_iou"] = float(np.mean(seg))
    if not ok:
        return out
    col = lambda k: np.array([r[k] for r in ok])  # noqa: E731
    rot = col("rot_err")
    return {**out, "iou": float(col("iou").mean()), "rot_median": float(np.median(rot)),
            "rot_over_30": float((rot > FLIP_DEG).mean()),
            "rot_over_30_sym": float((col("rot_err_sym") > FLIP_DEG).mean()),
            "chamfer_median": float(np.median(col("chamfer"))),
            "chamfer_all_faces_median": float(np.median(col("chamfer_all_faces")))}


def evaluate(cases: list[dict], model_name: str, steps_list: list[int], batch: int, mesh_resolution: int,
             log=print, true_masks: bool = False, inversion: dict | None = None) -> dict:
    from core.api import Pipeline, reconstruct
    from core.model import load_model

    model = load_model(model_name, "cpu")
    net = Pipeline(model, torch.device("cpu")).foreground_net()
    conditions = sorted({c["condition"] for c in cases}, key=["cutout", "photo"].index)
    rows: dict[int, list[dict]] = {n: [] for n in steps_list}
    for steps in steps_list:
        for cond in conditions:
            todo = [c for c in cases if c["condition"] == cond]
            for start in range(0, len(todo), batch):
                chunk = todo[start:start + batch]
                t = time.time()
                masks = [c["mask_path"] if true_masks and cond == "photo" else None
                         for c in chunk]
                results = reconstruct([c["path"] for c in chunk], model=model_name, steps=steps, device="cpu",
                                      mesh_resolution=mesh_resolution, batch_size=batch, masks=masks,
                                      inversion=dict(inversion or {}), **CANONICAL)
                per_image = (time.time() - t) / len(chunk)
                rows[steps] += [score(model, c, r, per_image, net) for c, r in zip(chunk, results)]
            s = summarize([r for r in rows[steps] if r["condition"] == cond])
            log(f"N={steps} {cond}: " + ", ".join(f"{k} {v:.4g}" for k, v in s.items()))
    table = {f"{cond} N={n}": summarize([r for r in rows[n] if r["condition"] == cond])
             for cond in conditions for n in steps_list}
    return {"model": model_name, "mesh_resolution": mesh_resolution, "inversion": inversion or {},
            "conditions": conditions,
            "chairs": sorted({c["chair"] for c in cases}), "table": table,
            "per_image": {n: r for n, r in rows.items()}}


def markdown_table(report: dict) -> str:
    lines = ["| condition | steps N | images | IoU (input view) | rot. err. median | rot. > 30 deg | "
             "rot. > 30 deg mod symmetry | Chamfer-L1 median | Chamfer-L1 median, all faces | s / image | failed | "
             "segmentation IoU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, t in report["table"].items():
        cond, n = key.split(" N=")
        seg = f"{t['seg_iou']:.3f}" if "seg_iou" in t else "-"
        if "iou" not in t:
            lines.append(f"| {cond} | {n} | {int(t['images'])} | all failed | | | | | | {t['seconds']:.1f} | "
                         f"{int(t['failed'])} | {seg} |")
            continue
        lines.append(f"| {cond} | {n} | {int(t['images'])} | {t['iou']:.3f} | {t['rot_median']:.1f} deg | "
                     f"{100 * t['rot_over_30']:.0f}% | {100 * t['rot_over_30_sym']:.0f}% | "
                     f"{t['chamfer_median']:.4f} | {t['chamfer_all_faces_median']:.4f} | {t['seconds']:.1f} | "
                     f"{int(t['failed'])} | {seg} |")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training real-evaluate --help``)."""
    ap.add_argument("--cases", default="runs/real/cases.json", help="written by python -m training real-build")
    ap.add_argument("--model", default="chairs")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 10])
    ap.add_argument("--condition", default="both", choices=["cutout", "photo", "both"])
    ap.add_argument("--limit", type=int, default=None, help="only the first N renders (after the condition filter)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--mesh-resolution", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the full report (per image) here")
    ap.add_argument("--true-masks", action="store_true",
                    help="give the photo-like renders their true mask (what the automatic segmentation costs)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="inversion settings on top of the model's, e.g. plane_lr=0.02 (tuning)")


def run(args: argparse.Namespace) -> int:
    from ..evaluate import _setting

    torch.set_num_threads(args.threads)
    cases = load_cases(Path(args.cases), args.condition, args.limit)
    if not cases:
        print(f"{args.cases}: no renders for condition '{args.condition}'")
        return 1
    t0 = time.time()
    report = evaluate(cases, args.model, args.steps, args.batch, args.mesh_resolution, true_masks=args.true_masks,
                      inversion=dict(_setting(kv) for kv in args.set))
    report["seconds_total"] = round(time.time() - t0, 1)
    print(f"\n{len(cases)} renders of {len(report['chairs'])} Sweet Home 3D chairs ({args.cases}), model "
          f"{args.model}{''.join(f', {k}={v}' for k, v in report['inversion'].items())}, mesh {args.mesh_resolution}^3, "
          f"{report['seconds_total']:.0f}s:\n")
    print(markdown_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0
