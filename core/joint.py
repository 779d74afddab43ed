"""Several photos of one object: one mesh, one camera per photo.

    from core.joint import reconstruct_object
    obj = reconstruct_object(["front.jpg", "side.jpg", "back.jpg"], steps=10, out_dir="out")
    obj.mesh, [view.camera for view in obj.placed]

The latent code (and the fitted triplane offset) is the object; the camera belongs to the photo. Every
photo is loaded, cropped and encoded as for :func:`core.api.reconstruct`, and the pose solver places
its camera in the object's canonical frame, so the photos' cameras are placed relative to each other
by the same frame. The first latent is the one that explains all the photos best (each photo's
encoding and their mean are scored against every photo at low resolution); each camera then gets the
pose hypotheses (turns about the up axis) scored with that shared latent, and one inversion fits one
latent and one offset to all photos, each with its own camera and light, the loss summed over them (the
offset at its own rate, the inversion's ``joint_plane_lr``).

A photo that cannot be placed (a different object, or a view the solver put far off) is dropped and
reported: when its loss after the fit stays above ``DROP_RATIO`` times the median of the other
photos', the fit is run again without it. Photos that fail to load are reported the same way.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Sequence

import numpy as np
import torch

from .config import SIDE_FILES
from .errors import Cancelled, ReconstructionError, display_path, error_kind
from .fit.hypotheses import choose_pose
from .fit.invert import InversionStart, InversionTarget, PoseParams, invert
from .pipeline import (FREE_FOCAL_SOURCES, Call, Placed, ProgressCallback, callers_errors_propagate, deliver,
                       encode_and_pose, load_images, make_items, mesh_with_fallbacks, photo_camera, resolve_options,
                       start_call, stopped)
from .result import ObjectResult, ReconstructionResult
from .validate import check_inputs, output_stems

DROP_RATIO = 2.5
"""a photo whose loss after the joint fit is above this many times the median of the others' is dropped."""
DROP_FLOOR = 0.05
"""...and above this absolute full-crop loss (a well-fitted view scores about 0.03-0.06)."""


@callers_errors_propagate
def reconstruct_object(images: Sequence[str | os.PathLike] | str | os.PathLike, options=None, *,
                       masks: Sequence[str | None] | str | None = None, progress: ProgressCallback | None = None,
                       cancel: Callable[[], bool] | None = None, **changes) -> ObjectResult:
    """One object from several photos; see the module docstring. Options and keywords as for
    :func:`core.api.reconstruct` (``batch_size`` does not apply: all photos are fitted together).

    Per-photo problems never raise: the photo's view says ``ok=False`` and why, the others still
    make the object; the result is not ok only when no photo could be placed. A bad option, an
    unknown model or an unwritable output folder raises :class:`ReconstructionError`. With
    ``out_dir``, ``<stem>.<fmt>`` (the mesh) and ``<stem>.json`` (every photo's camera) are written,
    ``<stem>`` the first photo's.
    """
    options, inversion_changes = resolve_options(options, changes)
    sources, masks = check_inputs(images, masks, progress, cancel)
    images = [str(image) for image in sources]  # a photo in memory: its name
    call, load_model_s = start_call(options, inversion_changes, progress, cancel)
    call = _joint_settings(call)
    t_start = time.perf_counter()
    keep = [*masks, *images[1:]]
    fmt = call.options.fmt
    stem = output_stems(images[:1], (f".{fmt}", ".json", *SIDE_FILES.get(fmt, ())), call.options.out_dir, keep)[0]
    items = make_items(sources, masks)
    live = load_images(call, items, load_model_s)
    placed = encode_and_pose(call, live) if live else None
    obj = ObjectResult(images=list(images), ok=False, model=call.options.model, steps=call.inversion.steps,
                       device=str(call.pipe.device))
    if placed is not None:
        try:
            _fit_object(call, placed, obj)
        except Exception as err:  # noqa: BLE001 - every failure becomes a result
            failure = Cancelled(images[0]) if isinstance(err, Cancelled) else err
            for item in placed.live:
                item.result = call.fail(item.path, Cancelled(item.path) if isinstance(err, Cancelled) else err)
            obj.ok, obj.mesh = False, None
            failed = call.fail(images[0], failure)
            obj.error, obj.error_kind = failed.error, failed.error_kind
    obj.views = [item.result for item in items]
    if obj.ok and call.out is not None:
        from .io.export import write_result

        if call.cancelled():
            obj.ok, obj.error, obj.error_kind = False, f"{display_path(images[0])}: cancelled", "cancelled"
        else:
            try:
                write_result(obj, call.out, call.options.fmt, stem)
            except Exception as err:  # noqa: BLE001
                obj.ok, obj.mesh = False, None
                obj.error = str(err).splitlines()[0] if isinstance(err, ReconstructionError) else \
                    f"{display_path(images[0])}: internal error ({type(err).__name__}: {err}); please report it"
                obj.error_kind = error_kind(err)
    if not obj.ok and obj.error is None:
        reasons = "; ".join(v.error for v in obj.views if v is not None and v.error)
        obj.error = f"no photo of the object could be placed ({reasons})" if reasons else "no photo could be placed"
        kinds = {v.error_kind for v in obj.views if v is not None}
        obj.error_kind = "cancelled" if "cancelled" in kinds else "refused" if kinds == {"refused"} else "failed"
    obj.timings["total"] = time.perf_counter() - t_start + load_model_s
    return obj


def _joint_settings(call: Call) -> Call:
    """``call`` with the inversion's ``joint_plane_lr`` (when set) as its ``plane_lr``: the offset fitted to
    several photos moves at its own rate."""
    inv = call.inversion
    if inv.joint_plane_lr is None:
        return call
    return dataclasses.replace(call, inversion=dataclasses.replace(inv, plane_lr=inv.joint_plane_lr))


def _fit_object(call: Call, placed: Placed, obj: ObjectResult) -> None:
    """Latent choice, pose hypotheses, joint inversion (dropping photos that cannot be placed), mesh and
    per-photo results; fills ``obj`` and every placed item's result."""
    pipe = call.pipe
    live, target, pose = placed.live, placed.target, placed.pose
    t = time.perf_counter()
    ws, own_turns = _first_latent_and_poses(call, placed)
    pose = own_turns
    dropped: dict[int, str] = {}
    checked_turns = False
    while True:
        views = [k for k in range(len(live)) if k not in dropped]
        sub = _subset(target, pose, views)
        if stopped(call, [live[k] for k in views]):
            raise Cancelled(live[0].path)
        start = InversionStart(ws, sub[1], torch.tensor([live[k].intrinsics.source in FREE_FOCAL_SOURCES
                                                         for k in views]), shared=True)
        inv = invert(pipe.model.generator, pipe.render_cfg, sub[0], start, call.inversion,
                     progress=lambda n, total, value: call.report("inversion", n, total, value), cancel=call.cancel)
        if not checked_turns and len(views) > 1 and inv.final_losses is not None:
            checked_turns = True
            turn = _turn_suspect(call, sub[0], sub[1], ws, inv, start.focal_free)
            if turn is not None:  # the other photos' object says a camera is turned: fit again from there
                j, yaw, new_pose = turn
                pose = _with_view(pose, views[j], new_pose)
                for candidate in live[views[j]].pose_candidates:
                    candidate["chosen"] = False
                live[views[j]].pose_candidates.append({"yaw_deg": yaw, "against": "other photos", "chosen": True})
                continue
        worst = _unplaceable(inv.final_losses) if len(views) > 1 else None
        if worst is None:
            break
        k = views[worst]
        loss = inv.final_losses[worst]
        others = np.median([v for j, v in enumerate(inv.final_losses) if j != worst])
        dropped[k] = (f"{display_path(live[k].path)}: could not be placed with the other photos of the object "
                      f"(loss {loss:.3f} against {others:.3f}); is it the same object?")
    obj.timings.update(pose=sum(item.timings.get("pose", 0.0) for item in live),
                       encoder=sum(item.timings.get("encoder", 0.0) for item in live),
                       load=sum(item.timings.get("load", 0.0) for item in live),
                       inversion=time.perf_counter() - t)
    t = time.perf_counter()
    call.report("mesh", 1, 1, None)
    cams = inv.pose.camera(pipe.size)
    photos = [(live[k].prepared, photo_camera(cams, j, live[k].prepared.crop, pipe.size)) for j, k in enumerate(views)]
    offset = None if inv.plane_offset is None else inv.plane_offset[:1]
    mesh, latent, offset = mesh_with_fallbacks(call, live[views[0]].path, inv.ws[0], offset, ws[0], photos)
    obj.timings["mesh"] = time.perf_counter() - t
    mesh, cameras, placement, extra = deliver(call, mesh, photos)
    obj.timings.update(extra)
    for j, k in enumerate(views):
        item = live[k]
        item.result = ReconstructionResult(
            image=item.path, ok=True, camera=cameras[j], mesh=mesh, placement=placement,
            model=call.options.model, steps=call.inversion.steps, device=str(pipe.device),
            losses=[step[j] for step in inv.losses], mask_source=item.prepared.mask_source,
            focal_source=item.intrinsics.source, latent=latent.cpu().numpy(),
            plane_offset=None if offset is None else offset[0].cpu().numpy(),
            light=(float(inv.light.ambient[j]), float(inv.light.key[j])), pose_candidates=item.pose_candidates,
            timings=dict(item.timings))
    for k, reason in dropped.items():
        live[k].result = ReconstructionResult(image=live[k].path, ok=False, error=reason, error_kind="failed",
                                              model=call.options.model, steps=call.inversion.steps,
                                              device=str(pipe.device))
    obj.ok, obj.mesh, obj.placement = True, mesh, placement
    obj.losses = [float(sum(step)) for step in inv.losses]
    obj.latent = latent.cpu().numpy()
    obj.plane_offset = None if offset is None else offset[0].cpu().numpy()


def _first_latent_and_poses(call: Call, placed: Placed) -> tuple[torch.Tensor, PoseParams]:
    """The latent (1, num_ws, w_dim) and cameras that explain all photos best.

    Candidates are each photo's encoding and their mean; with each candidate every camera gets its pose
    hypotheses (core.fit.hypotheses: turns about the up axis, the solved camera kept unless another
    turn is clearly better), and the candidate whose chosen cameras have the lowest summed loss wins.
    """
    pipe = call.pipe
    gen = pipe.model.generator
    n = len(placed.live)
    candidates = torch.cat([placed.ws, placed.ws.mean(dim=0, keepdim=True)]) if n > 1 else placed.ws[:1]
    yaws = tuple(pipe.cfg.pose.yaw_hypotheses)
    t = time.perf_counter()
    best = None
    for c in range(candidates.shape[0]):  # with one hypothesis, choose_pose just scores the solved cameras
        ws = candidates[c:c + 1]
        choice = choose_pose(gen, pipe.render_cfg, placed.target, ws.expand(n, -1, -1).contiguous(), placed.pose,
                             pipe.cfg.pose, call.inversion)
        total = float(choice.losses.gather(1, choice.chosen[:, None]).sum())
        if best is None or total < best[0]:
            best = (total, ws, choice)
    _, ws, choice = best
    if len(yaws) < 2:
        return ws, placed.pose
    for k, item in enumerate(placed.live):
        item.timings["pose"] = item.timings.get("pose", 0.0) + (time.perf_counter() - t) / n
        item.pose_candidates = [{"yaw_deg": yaw, "loss": round(float(choice.losses[k, j]), 6),
                                 "chosen": j == int(choice.chosen[k])} for j, yaw in enumerate(yaws)]
    return ws, choice.pose


SUSPECT_RATIO = 1.5
"""after the first joint fit, a photo whose loss is above this many times the median of the others' has its
turns about the up axis scored again, against the fitted object."""


def _turn_suspect(call: Call, target: InversionTarget, pose: PoseParams, ws: torch.Tensor, inv,
                  focal_free: torch.Tensor) -> tuple[int, float, PoseParams] | None:
    """The photo whose loss stands out most (``SUSPECT_RATIO``), when the object fitted to the OTHER
    photos clearly prefers one of its camera's turns about the up axis: (index, turn in degrees,
    turned camera); None otherwise. (The object fitted to all photos has adapted to the suspect's
    camera, so only the others can judge it.)"""
    losses = np.asarray(inv.final_losses)
    j = int(losses.argmax())
    if losses[j] <= SUSPECT_RATIO * np.median(np.delete(losses, j)) or len(call.pipe.cfg.pose.yaw_hypotheses) < 2:
        return None
    pipe = call.pipe
    others = [i for i in range(len(losses)) if i != j]
    sub_target = InversionTarget(target.image[others], target.mask[others])
    rest = invert(pipe.model.generator, pipe.render_cfg, sub_target,
                  InversionStart(ws, _subset_pose(pose, others), focal_free[others], shared=True), call.inversion,
                  cancel=call.cancel)
    fitted = _subset_pose(inv.pose, [j])
    choice = choose_pose(pipe.model.generator, pipe.render_cfg, InversionTarget(target.image[j:j + 1],
                         target.mask[j:j + 1]), rest.ws[:1].contiguous(), fitted, pipe.cfg.pose, call.inversion,
                         None if rest.plane_offset is None else rest.plane_offset[:1].contiguous())
    yaw = float(choice.yaws[int(choice.chosen[0])])
    return None if yaw == 0 else (j, yaw, choice.pose)


def _with_view(pose: PoseParams, k: int, new: PoseParams) -> PoseParams:
    """``pose`` with view k's camera replaced by the single camera ``new``."""
    out = [t.detach().clone() for t in pose.tensors()]
    for t, n in zip(out, new.tensors()):
        t[k] = n[0]
    return PoseParams(*out, pose.principal)


def _subset_pose(pose: PoseParams, views: list[int]) -> PoseParams:
    idx = torch.tensor(views, device=pose.quat.device)
    return PoseParams(pose.quat[idx], pose.shift[idx], pose.log_depth[idx], pose.log_focal[idx],
                      None if pose.principal is None else pose.principal[idx])


def _subset(target: InversionTarget, pose: PoseParams, views: list[int]) -> tuple[InversionTarget, PoseParams]:
    idx = torch.tensor(views, device=target.image.device)
    return InversionTarget(target.image[idx], target.mask[idx]), _subset_pose(pose, views)


def _unplaceable(final_losses: list[float] | None) -> int | None:
    """Index of the photo to drop (its loss above DROP_RATIO x the median of the others' and DROP_FLOOR),
    or None."""
    if not final_losses or len(final_losses) < 2:
        return None
    losses = np.asarray(final_losses)
    worst = int(losses.argmax())
    others = np.median(np.delete(losses, worst))
    return worst if losses[worst] > max(DROP_RATIO * others, DROP_FLOOR) else None
