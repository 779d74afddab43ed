"""Measured quality on held-out procedural chairs: ``python -m training evaluate --model chairs``.

For every evaluation seed (training.data.EVAL_SEEDS, disjoint from training) the data generator renders
an input view and a novel view (its own shading, not the model's). The input goes through the whole
public pipeline (``core.reconstruct``, from a PNG file); the metrics are:

- IoU: the model's silhouette rendered through the recovered camera vs the input's alpha;
- PSNR / SSIM: the reconstruction rendered from the camera obtained by applying the TRUE relative
  motion between input and novel view to the RECOVERED input camera, vs the true novel view
  (128 x 128, composited on white, SSIM with a Gaussian window, sigma 1.5);
- rotation error: angle between the recovered and true camera rotations (median, share < 15 deg);
- Chamfer-L1 between the reconstructed and the true mesh, both centred and scaled to unit
  bounding-box diagonal (10k surface samples each, mean of both directions);
- seconds per image (wall time of ``reconstruct`` divided by the images).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .common import CANONICAL

EVAL_SIZE = 256   # input photo side
VIEW_SIZE = 128   # metric resolution
OUTER_RESOLUTION = 160
"""voxels along a true mesh's longest side when its outer surface is found (:func:`outer_samples`)."""


def _rotation_error_deg(c2w_a: np.ndarray, c2w_b: np.ndarray) -> float:
    r = c2w_a[:3, :3].T @ c2w_b[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def _normalized_samples(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int) -> np.ndarray:
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    lo, hi = vertices.min(0), vertices.max(0)
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return (pts - (lo + hi) / 2) / np.linalg.norm(hi - lo)


def outer_samples(vertices: np.ndarray, faces: np.ndarray, n: int = 10000, seed: int = 1,
                  resolution: int = OUTER_RESOLUTION, normals: bool = False):
    """``n`` points (normalized as by :func:`chamfer_l1`) on the part of a mesh's surface that can be
    seen from outside: a catalogue model's overlapping parts (cushions in a frame, legs into a seat)
    leave faces inside the object that no photo shows and a reconstruction cannot have.

    The surface is voxelized (``resolution`` voxels along the longest side, closed by one voxel), the
    empty space connected to the grid's border is the outside, and a surface point is kept when it lies
    within two voxels of it. With ``normals``: (points, their unit face normals).
    """
    import trimesh
    from scipy import ndimage

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    lo, hi = vertices.min(0), vertices.max(0)
    pitch = float((hi - lo).max()) / resolution
    origin = lo - 3 * pitch
    shape = np.ceil((hi - lo) / pitch).astype(int) + 7
    cell = lambda p: tuple(np.floor((p - origin) / pitch).astype(int).T)  # noqa: E731
    wall = np.zeros(shape, bool)
    wall[cell(trimesh.sample.sample_surface(mesh, max(n, int(16 * mesh.area / pitch ** 2)), seed=seed + 1)[0])] = True
    cube = np.ones((3, 3, 3), bool)
    wall = ndimage.binary_dilation(wall, cube)
    labels, _ = ndimage.label(~wall)
    outside = (labels == labels[0, 0, 0]) & ~wall
    near = ndimage.binary_dilation(outside, cube, iterations=2)
    pts, face = np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    for attempt in range(4):  # draw until n points are kept (a model is mostly outer surface)
        drawn, idx = trimesh.sample.sample_surface(mesh, 4 * n * 2 ** attempt, seed=seed)
        keep = near[cell(drawn)]
        pts, face = drawn[keep], idx[keep]
        if len(pts) >= n:
            break
    pts = (pts[:n] - (lo + hi) / 2) / np.linalg.norm(hi - lo)
    if not normals:
        return pts
    from .shape_metrics import face_normals

    return pts, face_normals(np.asarray(vertices, dtype=np.float64), np.asarray(faces))[face[:n]]


def chamfer_l1(va, fa, vb, fb, n: int = 10000, seed: int = 0, b_samples: np.ndarray | None = None) -> float:
    """Symmetric Chamfer-L1 between meshes a and b, each centred on its box and scaled by its diagonal;
    ``b_samples``: b's points already drawn (:func:`outer_samples`)."""
    from scipy.spatial import cKDTree

    a = _normalized_samples(va, fa, n, seed)
    b = _normalized_samples(vb, fb, n, seed + 1) if b_samples is None else b_samples
    return float((cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(max(np.mean((a - b) ** 2), 1e-10)))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def make_case(seed: int, folder: Path, cache: Path | None = None) -> dict:
    """Render the input (saved as PNG into ``folder``) and the novel view of one evaluation chair.

    With ``cache``, the renders and the true mesh are kept there (``case_<seed>.pt``) and reused:
    they depend only on the seed and the data generator (delete the folder after changing core/data).
    """
    from core.geometry.camera import Camera

    from .data.chairs import chair_mesh, sample_chair
    from .data.raytrace import render, sample_light, sample_view

    path = folder / f"eval_{seed}.png"
    cached = cache / f"case_{seed}.pt" if cache else None
    if cached and cached.exists():
        d = torch.load(cached, map_location="cpu", weights_only=True)
        Image.fromarray(d["rgba"].numpy()).save(path)
        cams = {k: Camera(d[k + "_c2w"], d[k + "_focal"], d[k + "_cx"], d[k + "_cy"], int(d[k + "_size"][0]),
                          int(d[k + "_size"][1])) for k in ("cam_in", "cam_nv")}
        return {"seed": seed, "family": str(d["family"]), "path": str(path), **cams,
                "alpha_in": d["rgba"].numpy()[..., 3] / 255.0, "novel": d["novel"].numpy(),
                "mesh": (d["verts"].numpy(), d["faces"].numpy())}
    spec = sample_chair(seed)
    rng = np.random.default_rng(seed)
    cam_in = sample_view(rng, EVAL_SIZE, EVAL_SIZE, spec)
    cam_nv = sample_view(rng, VIEW_SIZE, VIEW_SIZE, spec)
    light = sample_light(rng)
    rgba8 = (np.clip(render(spec, cam_in, light), 0, 1) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(rgba8, "RGBA").save(path)
    novel = render(spec, cam_nv, light, background=np.ones(3))[..., :3]
    verts, faces = chair_mesh(spec, 128)
    if cached:
        cache.mkdir(parents=True, exist_ok=True)
        state = {"family": spec.family, "rgba": torch.from_numpy(rgba8),
                 "novel": torch.from_numpy(np.ascontiguousarray(novel)), "verts": torch.from_numpy(verts),
                 "faces": torch.from_numpy(faces)}
        for k, cam in (("cam_in", cam_in), ("cam_nv", cam_nv)):
            state.update({k + "_c2w": cam.cam2world, k + "_focal": cam.focal, k + "_cx": cam.cx, k + "_cy": cam.cy,
                          k + "_size": torch.tensor([cam.width, cam.height])})
        torch.save(state, cached)
    return {"seed": seed, "family": spec.family, "path": str(path), "cam_in": cam_in, "cam_nv": cam_nv,
            "alpha_in": rgba8[..., 3] / 255.0, "novel": novel, "mesh": (verts, faces)}


def _render_model(model, latent: np.ndarray, light, cam2world: np.ndarray, focal: float, cx: float, cy: float,
                  size: int, plane_offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    from core.field.shading import Light
    from core.fit.invert import render_shaded
    from core.geometry.camera import Camera

    gen = model.generator
    cam = Camera(torch.tensor(cam2world, dtype=torch.float32)[None], torch.tensor([focal], dtype=torch.float32),
                 torch.tensor([cx], dtype=torch.float32), torch.tensor([cy], dtype=torch.float32), size, size)
    lit = Light.default(1)
    lit.ambient[:], lit.key[:] = light[0], light[1]
    with torch.no_grad():
        offset = None if plane_offset is None else torch.tensor(plane_offset)[None]
        rgb, alpha = render_shaded(gen, gen.decode(torch.tensor(latent)[None], offset), cam, lit, model.cfg.render)
    return rgb[0].numpy(), alpha[0].numpy()


def evaluate(model_name: str, n_images: int, steps_list: list[int], batch: int, mesh_resolution: int,
             seed0: int | None = None, log=print, inversion: dict | None = None,
             cache: Path | None = None) -> dict:
    from core.api import reconstruct
    from core.config import replaced
    from core.model import load_model

    from .data import EVAL_SEEDS

    model = load_model(model_name, "cpu")
    settings = replaced(model.cfg.inversion, inversion or {})
    seeds = list(EVAL_SEEDS)[:n_images] if seed0 is None else list(range(seed0, seed0 + n_images))
    rows: dict[int, list[dict]] = {n: [] for n in steps_list}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        cases = [make_case(s, Path(tmp), cache) for s in seeds]
        log(f"rendered {len(cases)} evaluation cases in {time.time() - t0:.0f}s")
        for steps in steps_list:
            for start in range(0, len(cases), batch):
                chunk = cases[start:start + batch]
                t = time.time()
                results = reconstruct([c["path"] for c in chunk], model=model_name, steps=steps, device="cpu",
                                      mesh_resolution=mesh_resolution, batch_size=batch, inversion=settings,
                                      **CANONICAL)
                per_image = (time.time() - t) / len(chunk)
                for case, res in zip(chunk, results):
                    rows[steps].append(_score(model, case, res, per_image))
            summary = summarize(rows[steps])
            log(f"N={steps}: " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()))
    return {"images": len(seeds), "seeds": [seeds[0], seeds[-1]], "loss": settings.loss, "inversion": inversion or {},
            "mesh_resolution": mesh_resolution, "table": {n: summarize(r) for n, r in rows.items()},
            "per_image": {n: r for n, r in rows.items()}}


def _setting(text: str) -> tuple[str, object]:
    """'key=value' of ``--set``: value as JSON (numbers, true/false), else as a string."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (0 when both are empty)."""
    return float((a & b).sum() / max((a | b).sum(), 1))


def _score(model, case: dict, res, seconds: float) -> dict:
    if not res.ok:
        return {"seed": case["seed"], "ok": False, "error": res.error, "seconds": seconds}
    cam = res.camera
    s = VIEW_SIZE / EVAL_SIZE
    _, alpha = _render_model(model, res.latent, res.light, cam.cam2world, cam.focal_px * s, cam.cx * s, cam.cy * s,
                             VIEW_SIZE, res.plane_offset)
    gt_alpha = np.asarray(Image.fromarray((case["alpha_in"] * 255).astype(np.uint8)).resize(
        (VIEW_SIZE, VIEW_SIZE), Image.BOX)) / 255.0
    iou = mask_iou(alpha > 0.5, gt_alpha > 0.5)
    c_in = case["cam_in"].cam2world[0].numpy().astype(np.float64)
    c_nv = case["cam_nv"].cam2world[0].numpy().astype(np.float64)
    moved = cam.cam2world @ np.linalg.inv(c_in) @ c_nv  # true relative motion applied to the recovered camera
    nv = case["cam_nv"]
    rgb, _ = _render_model(model, res.latent, res.light, moved, float(nv.focal[0]), float(nv.cx[0]), float(nv.cy[0]),
                           VIEW_SIZE, res.plane_offset)
    rgb = np.clip(rgb, 0, 1)
    chamfer = chamfer_l1(res.mesh.vertices, res.mesh.faces, *case["mesh"])
    return {"seed": case["seed"], "family": case["family"], "ok": True, "iou": iou,
            "psnr": _psnr(rgb, case["novel"]), "ssim": _ssim(rgb, case["novel"]),
            "rot_err": _rotation_error_deg(cam.cam2world, c_in), "chamfer": chamfer, "seconds": seconds}


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["ok"]]
    if not ok:
        return {"failed": float(len(rows))}
    col = lambda k: np.array([r[k] for r in ok])  # noqa: E731
    rot = col("rot_err")
    return {"iou": float(col("iou").mean()), "psnr": float(col("psnr").mean()), "ssim": float(col("ssim").mean()),
            "rot_median": float(np.median(rot)), "rot_under_15": float((rot < 15).mean()),
            "chamfer_median": float(np.median(col("chamfer"))), "seconds": float(np.mean([r["seconds"] for r in rows])),
            "failed": float(len(rows) - len(ok))}


def markdown_table(report: dict) -> str:
    lines = ["| steps N | IoU (input view) | PSNR (novel) | SSIM (novel) | rot. err. median | rot. < 15 deg | "
             "Chamfer-L1 median | s / image | failed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, t in report["table"].items():
        if "iou" not in t:
            lines.append(f"| {n} | all failed |")
            continue
        lines.append(f"| {n} | {t['iou']:.3f} | {t['psnr']:.2f} | {t['ssim']:.3f} | {t['rot_median']:.1f} deg | "
                     f"{100 * t['rot_under_15']:.0f}% | {t['chamfer_median']:.4f} | {t['seconds']:.1f} | "
                     f"{int(t['failed'])} |")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training evaluate --help``)."""
    ap.add_argument("--model", default="chairs")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 10, 30])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--mesh-resolution", type=int, default=128)
    ap.add_argument("--loss", default=None, choices=["l1", "l1+ssim"], help="photometric loss (default: the model's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="runs/eval/cases",
                    help="folder that keeps the rendered evaluation cases between runs ('' to render every time)")
    ap.add_argument("--json", default=None, help="also write the full report (per image) here")
    ap.add_argument("--first-seed", type=int, default=None, help="evaluate seeds from here (default EVAL_SEEDS)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="inversion settings, e.g. w_gain=10 pose_gain=2 n_patches=8 (tuning)")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    settings = dict(_setting(kv) for kv in args.set)
    if args.loss is not None:
        settings["loss"] = args.loss
    report = evaluate(args.model, args.images, args.steps, args.batch, args.mesh_resolution, seed0=args.first_seed,
                      inversion=settings, cache=Path(args.cache) if args.cache else None)
    table = markdown_table(report)
    print(f"\n{report['images']} held-out procedural chairs (seeds {report['seeds'][0]}..{report['seeds'][1]}), "
          f"loss {report['loss']}, mesh {report['mesh_resolution']}^3:\n")
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0
