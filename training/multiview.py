"""Several photos of one object, measured: ``python -m training multiview-evaluate --views 2 3``.

For every evaluation chair (training.data.EVAL_SEEDS) the data generator renders K input views
(256 px, elevation 0-45 deg, azimuths at least ``MIN_APART`` degrees apart, one light and one lens
of 35-60 mm on a 36 mm-wide sensor, as a phone would take them) and one held-back view (128 px) at
another azimuth. Each input view goes through ``core.reconstruct`` alone and all K together through
``core.joint.reconstruct_object``, both at N steps and with the lens given (``focal_mm``, EXIF
convention), so that the novel view measures the shape and not the focal-length guess. Metrics:

- Chamfer-L1 between the reconstructed and the true mesh (training.evaluate.chamfer_l1);
- novel-view IoU: the reconstruction's silhouette through the held-back camera placed relative to
  the recovered cameras as it truly is relative to the input cameras, against the true silhouette of
  the held-back view. Photos fix a scene only up to its size (the object twice as large, every camera
  twice as far, gives the same photos), so the held-back camera is placed by the similarity from the
  true to the recovered frame, as pose-free multi-view work aligns recovered cameras before scoring
  (BARF):
  rotation the chordal mean of the placed views' rotations from true to recovered, scale the ratio of
  the cameras' summed distances from the object's centre, translation the mean of each view's
  remainder after its own rotation and that scale (a view placed a few degrees round the object then
  shifts nothing); a single-view result has one view. ``novel_iou_rigid`` keeps the size as
  reconstructed (the rigid motion averaged over the views: rotations by their chordal mean,
  translations by their mean); ``novel_iou_mesh`` draws the delivered mesh (cut by the photos'
  silhouettes) instead of the field's volume render;
- aligned novel-view IoU (``novel_iou_aligned``): the same view after the held-back camera alone is
  fitted to its silhouette, field frozen (:func:`align_held_back`), the test-time pose alignment of
  pose-free radiance-field evaluation (NeRF--, BARF). Several recovered cameras place the held-back one
  only as well as they agree with each other, while one camera places it exactly from itself; aligned,
  both are scored on the shape alone;
- relative rotation error: the angle between the recovered and the true relative rotation of the
  cameras of views 1 and 2 (joint result).

Reported per K: medians and means, and on how many chairs the joint result beats the BEST single
view of the same chair (lower Chamfer, higher novel IoU).
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

EVAL_SIZE = 256
VIEW_SIZE = 128
MIN_APART = 45.0
"""the input views' azimuths differ by at least this (degrees)."""


def _azimuths(rng: np.random.Generator, k: int) -> list[float]:
    """k + 1 azimuths (the last one held back), every pair at least MIN_APART apart around the circle."""
    while True:
        az = rng.uniform(0, 360, k + 1)
        gaps = np.abs((az[:, None] - az[None, :] + 180) % 360 - 180)
        if (gaps[np.triu_indices(k + 1, 1)] >= MIN_APART).all():
            return [float(a) for a in az]


def make_views(seed: int, k: int, folder: Path) -> dict:
    """Render chair ``seed``'s K inputs (PNG files in ``folder``) and its held-back view."""
    from training.data.chairs import chair_mesh, sample_chair
    from training.data.raytrace import fit_view, make_camera, render, sample_light, view_points

    spec = sample_chair(seed)
    rng = np.random.default_rng([seed, k])
    light = sample_light(rng)
    pts = view_points(spec)
    cams, paths = [], []
    mm = rng.uniform(35, 60)
    for j, az in enumerate(_azimuths(rng, k)):
        size = EVAL_SIZE if j < k else VIEW_SIZE
        focal = mm / 36.0 * size
        m = fit_view(pts, az, rng.uniform(0, 45), focal, size, size, rng.uniform(0.5, 0.9),
                     (rng.uniform(-1, 1), rng.uniform(-1, 1)))
        cam = make_camera(m, focal, size, size)
        cams.append(cam)
        rgba = render(spec, cam, light)
        if j < k:
            path = folder / f"chair_{seed}_{k}_{j}.png"
            Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA").save(path)
            paths.append(str(path))
        else:
            novel_alpha = rgba[..., 3]
    return {"seed": seed, "family": spec.family, "paths": paths, "cams": cams, "novel_alpha": novel_alpha,
            "focal_mm": mm * 43.27 / (36.0 * 2 ** 0.5),  # 35 mm-equivalent on the diagonal of a square photo
            "mesh": chair_mesh(spec, 128)}


def _c2w(cam) -> np.ndarray:
    return cam.cam2world[0].numpy().astype(np.float64)


def true_to_recovered(recovered: list[np.ndarray], true: list[np.ndarray]) -> np.ndarray:
    """(4, 4) rigid motion taking the true cameras onto the recovered ones, averaged over the views."""
    motions = [r @ np.linalg.inv(t) for r, t in zip(recovered, true)]
    u, _, vt = np.linalg.svd(sum(m[:3, :3] for m in motions))
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot, np.mean([m[:3, 3] for m in motions], axis=0)
    return out


def place_held_back(recovered: list[np.ndarray], true: list[np.ndarray], held: np.ndarray,
                    scale: bool = True) -> np.ndarray:
    """(4, 4) camera-to-world of the held-back camera ``held`` (true frame) in the recovered frame: by the
    similarity from the true to the recovered cameras (``scale``), else by :func:`true_to_recovered`."""
    if not scale:
        return true_to_recovered(recovered, true) @ held
    turns = [r[:3, :3] @ t[:3, :3].T for r, t in zip(recovered, true)]
    u, _, vt = np.linalg.svd(sum(turns))
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    size = sum(np.linalg.norm(r[:3, 3]) for r in recovered) / sum(np.linalg.norm(t[:3, 3]) for t in true)
    # each view's own turn in its shift: a camera placed a few degrees round the object moves by no shift
    shift = np.mean([r[:3, 3] - size * q @ t[:3, 3] for r, t, q in zip(recovered, true, turns)], axis=0)
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot @ held[:3, :3], size * rot @ held[:3, 3] + shift
    return out


def place_about_object(recovered: np.ndarray, true: np.ndarray, held: np.ndarray, size: float,
                       centre_recovered: np.ndarray, centre_true: np.ndarray) -> np.ndarray:
    """(4, 4) camera-to-world of the held-back camera ``held`` (true frame) in the recovered frame, placed
    about the object: turned with the object by the recovered view's rotation error (``recovered`` and
    ``true``: the input view's cameras), its offset from the true object's centre scaled by ``size`` (the
    recovered object's size over the true one's) and laid off from the recovered object's centre. Unlike
    :func:`place_held_back` it keeps no trace of the input camera's distance, which an unknown focal
    length sets: a lens guessed 1.4 times too long puts that camera 1.4 times farther from the same
    object."""
    rot = recovered[:3, :3] @ true[:3, :3].T
    out = np.eye(4)
    out[:3, :3] = rot @ held[:3, :3]
    out[:3, 3] = size * rot @ (held[:3, 3] - centre_true) + centre_recovered
    return out


def novel_iou(model, result_like, recovered: list[np.ndarray], true: list[np.ndarray], case: dict,
              scale: bool = True, mesh=None, align: bool = False) -> float:
    """Silhouette IoU in the held-back view through the recovered cameras' frame (see the module docstring):
    of the fitted field's volume render, or of ``mesh`` (the delivered mesh) when given."""
    from .evaluate import _render_model, mask_iou
    from .mesh_level import mesh_silhouette

    nv = case["cams"][-1]
    moved = place_held_back(recovered, true, _c2w(nv), scale)
    if align:
        moved = align_held_back(model, result_like, moved, case)
    if mesh is not None:
        sil = mesh_silhouette(mesh.vertices, mesh.faces, moved, float(nv.focal[0]), float(nv.cx[0]), float(nv.cy[0]),
                              VIEW_SIZE, VIEW_SIZE)
        return mask_iou(sil, case["novel_alpha"] > 0.5)
    _, alpha = _render_model(model, result_like.latent, result_like.light or (0.5, 0.5), moved, float(nv.focal[0]),
                             float(nv.cx[0]), float(nv.cy[0]), VIEW_SIZE, result_like.plane_offset)
    return mask_iou(alpha > 0.5, case["novel_alpha"] > 0.5)


def novel_scores(model, result_like, recovered: list[np.ndarray], true: list[np.ndarray], case: dict,
                 mesh) -> dict[str, float]:
    """The held-back view's IoUs of one result (see the module docstring): ``novel_iou`` (size matched),
    ``novel_iou_rigid``, ``novel_iou_mesh`` (``mesh``, size matched) and ``novel_iou_aligned``."""
    return {"novel_iou": novel_iou(model, result_like, recovered, true, case),
            "novel_iou_rigid": novel_iou(model, result_like, recovered, true, case, scale=False),
            "novel_iou_mesh": novel_iou(model, result_like, recovered, true, case, mesh=mesh),
            "novel_iou_aligned": novel_iou(model, result_like, recovered, true, case, align=True)}


ALIGN_STEPS = 30
"""Adam steps of the held-back camera's alignment (``novel_iou_aligned``)."""


def align_held_back(model, result_like, c2w: np.ndarray, case: dict, steps: int = ALIGN_STEPS) -> np.ndarray:
    """The held-back camera ``c2w`` moved so that the fitted field's silhouette best covers the held-back
    view's (the field and the lens frozen; rotation, image-plane offset and depth fitted by Adam on the
    inversion's silhouette pyramid at half the view's size): the test-time pose alignment of pose-free
    radiance-field evaluation (NeRF--, BARF)."""
    import torch.nn.functional as F

    from core.fit.invert import PoseParams, render_shaded
    from core.fit.losses import silhouette
    from core.field.shading import Light

    nv = case["cams"][-1]
    gen, size = model.generator, VIEW_SIZE // 2
    target = F.avg_pool2d(torch.tensor(case["novel_alpha"], dtype=torch.float32)[None, None], 2)[:, 0]
    principal = torch.tensor([[float(nv.cx[0]), float(nv.cy[0])]]) / 2
    pose = PoseParams.from_cam2world(torch.tensor(c2w, dtype=torch.float32)[None], nv.focal[:1].float() / 2,
                                     principal)
    params = [t.detach().clone().requires_grad_(True) for t in pose.tensors()[:3]]
    opt = torch.optim.Adam(params, lr=6e-3)
    light = Light.default(1)
    with torch.no_grad():
        offset = None if result_like.plane_offset is None else torch.tensor(result_like.plane_offset)[None]
        state = gen.decode(torch.tensor(result_like.latent)[None], offset)
    best = (float("inf"), c2w)
    for step in range(steps + 1):
        cam = PoseParams(params[0], params[1], params[2], pose.log_focal, principal).camera(size)
        _, alpha = render_shaded(gen, state, cam, light, model.cfg.render)
        loss = silhouette(alpha, target, 3)[0]
        if float(loss.detach()) < best[0]:
            best = (float(loss.detach()), cam.cam2world[0].detach().double().numpy())
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            params[0] /= params[0].norm(dim=-1, keepdim=True)
    return best[1]


def relative_rotation_error(rec_a: np.ndarray, rec_b: np.ndarray, true_a: np.ndarray, true_b: np.ndarray) -> float:
    """Angle (deg) between the recovered and the true rotation from camera a to camera b."""
    from .evaluate import _rotation_error_deg

    rec = np.linalg.inv(rec_a[:3, :3]) @ rec_b[:3, :3]
    true = np.linalg.inv(true_a[:3, :3]) @ true_b[:3, :3]
    m_rec, m_true = np.eye(4), np.eye(4)
    m_rec[:3, :3], m_true[:3, :3] = rec, true
    return _rotation_error_deg(m_rec, m_true)


def score_chair(model, case: dict, steps: int, joint_settings: dict | None = None, name: str = "chairs") -> dict:
    """Single-view results of every input and the joint result of all (``joint_settings``: inversion
    settings for the joint fit only), scored; ``model`` is loaded model ``name``. Rows keep the true and
    recovered camera-to-world matrices (``true_c2w``, ``singles[].c2w``, ``joint_c2w``)."""
    from core.api import reconstruct
    from core.joint import reconstruct_object

    from .evaluate import chamfer_l1

    verts, faces = case["mesh"]
    singles = []
    t = time.perf_counter()
    results = reconstruct(case["paths"], model=name, steps=steps, device="cpu", focal_mm=case["focal_mm"],
                          **CANONICAL)
    single_s = time.perf_counter() - t
    for j, res in enumerate(results):
        if res.ok:
            singles.append({"view": j, "chamfer": chamfer_l1(res.mesh.vertices, res.mesh.faces, verts, faces),
                            **novel_scores(model, res, [res.camera.cam2world], [_c2w(case["cams"][j])], case,
                                           res.mesh),
                            "c2w": np.asarray(res.camera.cam2world).round(5).tolist()})
    t = time.perf_counter()
    joint_settings = dict(joint_settings or {})
    obj = reconstruct_object(case["paths"], model=name, steps=joint_settings.pop("steps", steps), device="cpu",
                             focal_mm=case["focal_mm"], inversion=joint_settings, **CANONICAL)
    joint_s = time.perf_counter() - t
    row = {"seed": case["seed"], "family": case["family"], "singles": singles, "single_s": single_s,
           "joint_s": joint_s, "joint_ok": obj.ok,
           "true_c2w": [_c2w(cam).round(5).tolist() for cam in case["cams"]]}
    if not obj.ok:
        return row
    placed = [j for j, v in enumerate(obj.views) if v.ok]
    row.update(chamfer=chamfer_l1(obj.mesh.vertices, obj.mesh.faces, verts, faces),
               **novel_scores(model, obj.views[placed[0]], [obj.views[j].camera.cam2world for j in placed],
                              [_c2w(case["cams"][j]) for j in placed], case, obj.mesh),
               novel_iou_first=novel_iou(model, obj.views[placed[0]], [obj.views[placed[0]].camera.cam2world],
                                         [_c2w(case["cams"][placed[0]])], case),
               dropped=[j for j, v in enumerate(obj.views) if not v.ok],
               joint_c2w=[np.asarray(v.camera.cam2world).round(5).tolist() if v.ok else None for v in obj.views])
    if obj.views[0].ok and obj.views[1].ok:
        row["rel_rot"] = relative_rotation_error(obj.views[0].camera.cam2world, obj.views[1].camera.cam2world,
                                                 _c2w(case["cams"][0]), _c2w(case["cams"][1]))
    return row


HEADROOM = 0.9
"""``summarize`` also gives the joint's gain on the chairs whose single photos score below this on average."""


def _against_singles(both: list[dict], key: str) -> dict[str, float]:
    """Score ``key`` of the joint result against the same chair's single photos: means of the joint, of the
    singles and of the best single, the share of chairs where the joint is above the best single, the
    standard error of the mean gain over the single photos' mean, and that gain on the chairs whose single
    photos score below ``HEADROOM`` (an IoU near 1 leaves a second photo little to add)."""
    joint = np.array([r[key] for r in both])
    single = np.array([np.mean([s[key] for s in r["singles"]]) for r in both])
    best = np.array([max(s[key] for s in r["singles"]) for r in both])
    gain, room = joint - single, single < HEADROOM
    return {f"joint_{key}_mean": float(joint.mean()), f"single_{key}_mean": float(single.mean()),
            f"best_single_{key}_mean": float(best.mean()), f"chairs_{key}_better": float((joint > best).mean()),
            f"gain_{key}_se": float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("nan"),
            f"chairs_{key}_with_headroom": int(room.sum()),
            f"gain_{key}_with_headroom": float(gain[room].mean()) if room.any() else float("nan")}


def summarize(rows: list[dict]) -> dict:
    both = [r for r in rows if r.get("joint_ok") and r["singles"]]
    if not both:
        return {"chairs": len(rows), "scored": 0}
    best_ch = np.array([min(s["chamfer"] for s in r["singles"]) for r in both])
    ch = np.array([r["chamfer"] for r in both])
    rot = np.array([r["rel_rot"] for r in both if "rel_rot" in r])
    out = {"chairs": len(rows), "scored": len(both),
           "joint_chamfer_median": float(np.median(ch)), "best_single_chamfer_median": float(np.median(best_ch)),
           "chairs_chamfer_better": float((ch < best_ch).mean()),
           "joint_novel_iou_first_view_mean": float(np.mean([r["novel_iou_first"] for r in both]))}
    for key in ("novel_iou", "novel_iou_rigid", "novel_iou_mesh", "novel_iou_aligned"):
        out.update(_against_singles(both, key))
    return {**out, "rel_rot_median": float(np.median(rot)) if len(rot) else float("nan"),
            "dropped_views": int(sum(len(r.get("dropped", [])) for r in both)),
            "joint_s_mean": float(np.mean([r["joint_s"] for r in both])),
            "single_s_mean": float(np.mean([r["single_s"] / max(len(r["singles"]), 1) for r in both]))}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training multiview-evaluate --help``)."""
    ap.add_argument("--model", default="chairs", help="model name or .json path")
    ap.add_argument("--images", type=int, default=100, help="evaluation chairs")
    ap.add_argument("--views", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the per-chair rows here")
    ap.add_argument("--first-seed", type=int, default=None,
                    help="chairs from this seed on (default EVAL_SEEDS; 600000 for the validation chairs)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="inversion settings of the joint fit only, e.g. joint_plane_lr=0.04 (tuning)")


def run(args: argparse.Namespace) -> int:
    from core.model import load_model

    from .data import EVAL_SEEDS
    from .evaluate import _setting

    torch.set_num_threads(args.threads)
    joint_settings = dict(_setting(kv) for kv in args.set)
    first = EVAL_SEEDS[0] if args.first_seed is None else args.first_seed
    model = load_model(args.model, "cpu")
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.views:
            t = time.time()
            rows = [score_chair(model, make_views(seed, k, Path(tmp)), args.steps, joint_settings, args.model)
                    for seed in range(first, first + args.images)]
            report[k] = {"summary": summarize(rows), "rows": rows}
            print(f"K={k} views, N={args.steps}, {len(rows)} chairs, {time.time() - t:.0f} s")
            print(json.dumps(report[k]["summary"], indent=1), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0
