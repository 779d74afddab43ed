"""Quality on the real validation sets: ``python -m training real-evaluate --cases runs/real/cases.json``.

Every input render of ``cases.json`` (written by ``python -m training real-build``, or by
``training/infinigen/make_chairs.py`` for Infinigen's chairs) goes through the whole public
pipeline (``core.reconstruct`` from the PNG file: the cut-outs bring their alpha, the photo-like
renders are segmented automatically). Scored as in training.evaluate:

- IoU: the model's silhouette rendered through the recovered camera vs the true object mask, both at
  128 x 128 (training.evaluate.VIEW_SIZE);
- rotation error (``rot_err``, "raw"): angle between the recovered and the true camera rotations,
  where a turn about +Z counts as correct only when the true mesh maps onto itself under it
  (training.shape_metrics.self_turns: its Chamfer under the turn within 1.5 x the sampling floor,
  decided from the mesh, turns of 30-330 degrees every 5); median and the share above 30 degrees (a front/back or side flip).
  ``rot_err_plain`` forgives no turn; ``rot_err_sym`` forgives the catalogue set's listed turns
  (``symmetry_yaw_deg`` in cases.json);
- shape, both meshes centred and scaled to unit bounding-box diagonal, against the true mesh's outer
  surface (training.evaluate.outer_samples: parts overlap, and the faces they hide inside the object
  are no part of any photo): Chamfer-L1, F-score@0.01 and @0.02, normal consistency
  (training.shape_metrics); ``chamfer_all_faces`` measures against every face;
- novel-view IoU (cases with ``others``: more views of the same chair; a case without them, the
  catalogue set's, uses the same chair's other cut-out renders): the model's silhouette in each other
  view against that view's true mask, 128 x 128, the mean over the other views. ``novel_iou`` places
  the other camera about the object as it truly is about the true one (training.multiview.
  place_about_object): turned by the input view's rotation error, at the distance scaled by the two
  meshes' bounding-box diagonals, centred on the recovered mesh's box, the way a user orbits the asset
  and the way the 3D scores normalise both meshes. ``novel_iou_cameras`` places it relative to the
  recovered input camera as it truly is relative to the true input camera (training.multiview.
  place_held_back: rotation, scale and shift of the recovered to the true camera); the photo carries no
  focal length, so a lens guessed 1.4 times too long puts the input camera, and the other views with
  it, 1.4 times too far and shrinks the object in them;
- seconds per image (wall time of ``reconstruct`` divided by the images);
- for photo-like renders also the IoU of the automatic segmentation (the pipeline's own input mask)
  against the true mask, full resolution.

Reported per condition, steps N and chair family (``family`` in cases.json; the catalogue set is
``sweethome3d``) and overall. ``--rows FILE`` appends every scored image to a JSON-lines file and
skips the images already there, so an interrupted run resumes.
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


def case_records(path: Path, condition: str = "both", limit: int | None = None) -> list[dict]:
    """The records of ``cases.json`` for ``condition``, the first ``limit``, nothing loaded."""
    records = json.loads(path.read_text())["cases"]
    if condition != "both":
        records = [r for r in records if r["condition"] == condition]
    return records[:limit] if limit else records


def _view_mask(path: Path) -> np.ndarray:
    """A true mask (any size) box-filtered to VIEW_SIZE x VIEW_SIZE, in [0, 1]."""
    from ..evaluate import VIEW_SIZE

    return np.asarray(Image.open(path).convert("L").resize((VIEW_SIZE, VIEW_SIZE), Image.BOX)) / 255.0


def mesh_turns(root: Path, mesh_rel: str, verts_faces: tuple[np.ndarray, np.ndarray]) -> list[float]:
    """Turns about +Z that map the true mesh onto itself (training.shape_metrics.self_turns), kept
    next to the mesh (``<mesh>.turns.json``) once found."""
    from ..shape_metrics import self_turns

    cache = root / (mesh_rel + ".turns.json")
    if cache.is_file():
        return json.loads(cache.read_text())["turns_deg"]
    found = self_turns(*verts_faces)
    cache.write_text(json.dumps(found))
    return found["turns_deg"]


def other_cutouts(record: dict, cutouts: list[dict]) -> list[dict]:
    """The other views of a render without listed ``others`` (the catalogue set), as ``others`` entries:
    the same chair's cut-out renders from any camera but the render's own."""
    keys = ("cam2world", "focal_px", "cx", "cy", "width", "height", "image", "mask")
    return [{k: o[k] for k in keys} for o in cutouts
            if o["name"] != record["name"] and not np.allclose(o["cam2world"], record["cam2world"])]


def load_cases(path: Path, condition: str = "both", limit: int | None = None, outer: bool = True,
               exclude: set[str] | frozenset = frozenset()) -> list[dict]:
    """The records of ``cases.json`` for ``condition`` ('cutout', 'photo' or 'both'), with the
    true mask (H, W) in [0, 1], cam2world (4, 4), mesh (vertices, faces), the turns that map the mesh
    onto itself, the other views' masks (VIEW_SIZE) and, with ``outer``, points and normals on the
    mesh's outer surface (training.evaluate.outer_samples) loaded; the renders named in ``exclude``
    are left out (after ``limit``)."""
    root = path.parent
    cutouts: dict[str, list[dict]] = {}
    for r in case_records(path, "cutout"):
        cutouts.setdefault(r["mesh"], []).append(r)
    records = case_records(path, condition, limit)
    records = [r for r in records if r["name"] not in exclude]
    from ..evaluate import outer_samples

    meshes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    surfaces: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    turns: dict[str, list[float]] = {}
    cases = []
    for r in records:
        if r["mesh"] not in meshes:
            with np.load(root / r["mesh"]) as d:
                meshes[r["mesh"]] = (d["vertices"].astype(np.float64), d["faces"].astype(np.int64))
            surfaces[r["mesh"]] = outer_samples(*meshes[r["mesh"]], normals=True) if outer else None
            turns[r["mesh"]] = mesh_turns(root, r["mesh"], meshes[r["mesh"]])
        views = r.get("others") or other_cutouts(r, cutouts.get(r["mesh"], []))
        others = [{**o, "cam2world": np.asarray(o["cam2world"], dtype=np.float64), "alpha": _view_mask(root / o["mask"])}
                  for o in views]
        cases.append({**r, "path": str(root / r["image"]), "mask_path": str(root / r["mask"]), "cam2world": np.asarray(r["cam2world"], dtype=np.float64),
                      "alpha": np.asarray(Image.open(root / r["mask"]).convert("L")) / 255.0,
                      "family": r.get("family", "sweethome3d"), "others": others, "self_turns_deg": turns[r["mesh"]],
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


def _box(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and diagonal of the bounding box of (V, 3) ``vertices``."""
    lo, hi = vertices.min(0), vertices.max(0)
    return (lo + hi) / 2, float(np.linalg.norm(hi - lo))


def novel_ious(model, res, case: dict) -> tuple[list[float], list[float]]:
    """Silhouette IoU in each of the case's other views (see the module docstring): the camera placed about
    the object (training.multiview.place_about_object), and placed by the similarity of the recovered to
    the true input camera (training.multiview.place_held_back)."""
    from ..evaluate import VIEW_SIZE, _render_model, mask_iou
    from ..multiview import place_about_object, place_held_back

    c2w = np.asarray(res.camera.cam2world, dtype=np.float64)
    centre, diagonal = _box(np.asarray(res.mesh.vertices, dtype=np.float64))
    centre_true, diagonal_true = _box(case["verts_faces"][0])
    about, cameras = [], []
    for o in case["others"]:
        s = VIEW_SIZE / o["width"]
        for out, placed in ((about, place_about_object(c2w, case["cam2world"], o["cam2world"], diagonal / diagonal_true,
                                                       centre, centre_true)),
                            (cameras, place_held_back([c2w], [case["cam2world"]], o["cam2world"]))):
            _, alpha = _render_model(model, res.latent, res.light, placed, o["focal_px"] * s, o["cx"] * s,
                                     o["cy"] * s, VIEW_SIZE, res.plane_offset)
            out.append(mask_iou(alpha > 0.5, o["alpha"] > 0.5))
    return about, cameras


def score(model, case: dict, res, seconds: float, net=None) -> dict:
    """The metrics of one reconstruction (see the module docstring)."""
    from ..evaluate import VIEW_SIZE, _render_model, _rotation_error_deg, chamfer_l1, mask_iou
    from ..shape_metrics import compare, rotation_error_deg, samples_with_normals

    row = {"name": case["name"], "chair": case["chair"], "family": case["family"], "condition": case["condition"],
           "seconds": seconds, "azimuth_deg": case["azimuth_deg"], "elevation_deg": case["elevation_deg"],
           "lens_mm": case["lens_mm"]}
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
    true_surface = case["outer_samples"] or samples_with_normals(*case["verts_faces"], seed=1)
    shape = compare(samples_with_normals(res.mesh.vertices, res.mesh.faces, seed=0), true_surface)
    novel, novel_cameras = novel_ious(model, res, case)
    return {**row, "ok": True, "iou": mask_iou(alpha > 0.5, gt > 0.5),
            "rot_err": rotation_error_deg(c2w, case["cam2world"], case["self_turns_deg"]),
            "rot_err_plain": _rotation_error_deg(c2w, case["cam2world"]),
            "rot_err_sym": min(_rotation_error_deg(c2w, _rot_z(t) @ case["cam2world"]) for t in turns),
            **shape, "novel_iou": float(np.mean(novel)) if novel else None, "novel_ious": novel,
            "novel_iou_cameras": float(np.mean(novel_cameras)) if novel else None,
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
    out = {**out, "iou": float(col("iou").mean()), "rot_median": float(np.median(rot)),
           "rot_over_30": float((rot > FLIP_DEG).mean()),
           "rot_over_30_plain": float((col("rot_err_plain") > FLIP_DEG).mean()),
           "rot_over_30_sym": float((col("rot_err_sym") > FLIP_DEG).mean()),
           "chamfer_median": float(np.median(col("chamfer"))), "chamfer_mean": float(col("chamfer").mean()),
           "chamfer_all_faces_median": float(np.median(col("chamfer_all_faces"))),
           "fscore_0.01": float(col("fscore_0.01").mean()), "fscore_0.02": float(col("fscore_0.02").mean()),
           "normal_consistency": float(col("normal_consistency").mean())}
    for key in ("novel_iou", "novel_iou_cameras"):
        novel = [r[key] for r in ok if r.get(key) is not None]
        if novel:
            out[key] = float(np.mean(novel))
    return out


def _group_key(cond: str, n: int, family: str) -> str:
    return f"{cond} N={n} {family}"


def tables(rows: dict[int, list[dict]], conditions: list[str], families: list[str]) -> dict[str, dict]:
    """:func:`summarize` per condition, N and family (when there are several) and overall ('all')."""
    table = {}
    for cond in conditions:
        for n, of_n in rows.items():
            of_cond = [r for r in of_n if r["condition"] == cond]
            if len(families) > 1:
                table.update({_group_key(cond, n, f): summarize([r for r in of_cond if r.get("family") == f])
                              for f in families})
            table[_group_key(cond, n, "all")] = summarize(of_cond)
    return table


def _read_rows(path: Path | None) -> list[dict]:
    """The rows of a ``--rows`` file, the last one of each (render, N)."""
    if path is None or not path.is_file():
        return []
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[(r["name"], r.get("steps"))] = r
    return list(rows.values())


def evaluate(cases: list[dict], model_name: str, steps_list: list[int], batch: int, mesh_resolution: int,
             log=print, true_masks: bool = False, inversion: dict | None = None, rows_path: Path | None = None,
             names: set[str] | None = None) -> dict:
    """Reconstruct and score ``cases`` at every N of ``steps_list``; with ``rows_path``, the rows already
    there for the renders in ``names`` (default: the cases') are kept and not scored again."""
    from core.api import Pipeline, reconstruct
    from core.model import load_model

    model = load_model(model_name, "cpu")
    net = Pipeline(model, torch.device("cpu")).foreground_net()
    names = {c["name"] for c in cases} if names is None else names
    rows: dict[int, list[dict]] = {n: [] for n in steps_list}
    for r in _read_rows(rows_path):  # a resumed run: what is scored already
        if r.get("steps") in rows and r["name"] in names:
            rows[r["steps"]].append(r)
    known = cases + [r for n in steps_list for r in rows[n]]
    conditions = sorted({c["condition"] for c in known}, key=["cutout", "photo"].index)
    for steps in steps_list:
        done = {r["name"] for r in rows[steps]}
        for cond in conditions:
            todo = [c for c in cases if c["condition"] == cond and c["name"] not in done]
            for start in range(0, len(todo), batch):
                chunk = todo[start:start + batch]
                t = time.time()
                masks = [c["mask_path"] if true_masks and cond == "photo" else None
                         for c in chunk]
                results = reconstruct([c["path"] for c in chunk], model=model_name, steps=steps, device="cpu",
                                      mesh_resolution=mesh_resolution, batch_size=batch, masks=masks,
                                      inversion=dict(inversion or {}), **CANONICAL)
                per_image = (time.time() - t) / len(chunk)
                scored = [{**score(model, c, r, per_image, net), "steps": steps} for c, r in zip(chunk, results)]
                rows[steps] += scored
                if rows_path is not None:
                    with rows_path.open("a") as f:
                        f.writelines(json.dumps(r, default=float) + "\n" for r in scored)
            s = summarize([r for r in rows[steps] if r["condition"] == cond])
            log(f"N={steps} {cond}: " + ", ".join(f"{k} {v:.4g}" for k, v in s.items()))
    families = sorted({c.get("family", "sweethome3d") for c in known})
    return {"model": model_name, "mesh_resolution": mesh_resolution, "inversion": inversion or {},
            "conditions": conditions, "families": families, "table": tables(rows, conditions, families),
            "chairs": sorted({c["chair"] for c in known}),
            "per_image": {n: r for n, r in rows.items()}}


def markdown_table(report: dict) -> str:
    lines = ["| condition | N | family | images | IoU (input view) | rot. median | views off > 30 deg | "
             "> 30 deg, no turn forgiven | novel-view IoU | novel-view IoU, camera-scaled | Chamfer-L1 median | F-score@0.01 | F-score@0.02 | "
             "normal consistency | s / image | failed | segmentation IoU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, t in report["table"].items():
        cond, rest = key.split(" N=")
        n, family = rest.split(" ", 1)
        seg = f"{t['seg_iou']:.3f}" if "seg_iou" in t else "-"
        head = f"| {cond} | {n} | {family} | {int(t.get('images', 0))} |"
        if "iou" not in t:
            lines.append(f"{head} none scored | | | | | | | | | | {t.get('seconds', 0):.1f} | {int(t.get('failed', 0))} | {seg} |")
            continue
        novel = " | ".join(f"{t[k]:.3f}" if k in t else "-" for k in ("novel_iou", "novel_iou_cameras"))
        lines.append(f"{head} {t['iou']:.3f} | {t['rot_median']:.1f} deg | {100 * t['rot_over_30']:.0f}% | "
                     f"{100 * t['rot_over_30_plain']:.0f}% | {novel} | {t['chamfer_median']:.4f} | "
                     f"{t['fscore_0.01']:.2f} | {t['fscore_0.02']:.2f} | {t['normal_consistency']:.2f} | "
                     f"{t['seconds']:.1f} | {int(t['failed'])} | {seg} |")
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
    ap.add_argument("--rows", default=None,
                    help="JSON-lines file: every scored image is appended, images already there are skipped (resume)")
    ap.add_argument("--true-masks", action="store_true",
                    help="give the photo-like renders their true mask (what the automatic segmentation costs)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="inversion settings on top of the model's, e.g. plane_lr=0.02 (tuning)")


def run(args: argparse.Namespace) -> int:
    from ..evaluate import _setting

    torch.set_num_threads(args.threads)
    names = {r["name"] for r in case_records(Path(args.cases), args.condition, args.limit)}
    if not names:
        print(f"{args.cases}: no renders for condition '{args.condition}'")
        return 1
    rows = Path(args.rows) if args.rows else None
    done: set[str] = set()
    if rows is not None:
        rows.parent.mkdir(parents=True, exist_ok=True)
        scored = {(r["name"], r.get("steps")) for r in _read_rows(rows)}
        done = {n for n in names if all((n, s) in scored for s in args.steps)}
    cases = load_cases(Path(args.cases), args.condition, args.limit, exclude=done)
    t0 = time.time()
    report = evaluate(cases, args.model, args.steps, args.batch, args.mesh_resolution, true_masks=args.true_masks,
                      inversion=dict(_setting(kv) for kv in args.set), rows_path=rows, names=names)
    report["seconds_total"] = round(time.time() - t0, 1)
    print(f"\n{len(names)} renders of {len(report['chairs'])} chairs ({args.cases}), model "
          f"{args.model}{''.join(f', {k}={v}' for k, v in report['inversion'].items())}, mesh {args.mesh_resolution}^3, "
          f"{report['seconds_total']:.0f}s:\n")
    print(markdown_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0
