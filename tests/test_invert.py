"""Hybrid inversion on an image the generator rendered itself, from a perturbed start."""

import numpy as np
import pytest
import torch

from core.geometry.camera import Camera, orbit_pose, project_depth
from core.config import tiny_config
import dataclasses

from core.fit.invert import InversionStart, InversionTarget, PoseParams, invert, render_shaded
from core.fit.losses import photometric, silhouette
from core.model import ReconstructionModel
from core.field.shading import Light


def _scene(seed=3):
    torch.manual_seed(seed)
    cfg = tiny_config()
    gen = ReconstructionModel(cfg).generator.requires_grad_(False)
    with torch.no_grad():  # a lumpy, asymmetric random shape instead of the initial sphere ...
        gen.decoder[2].weight[0].normal_(0.0, 0.1)
        for conv in [*gen.synthesis.blocks, *gen.synthesis.to_planes]:  # ... that depends strongly on w
            conv.affine.weight.normal_(0.0, 0.3)
    s = cfg.inversion.size
    z = torch.randn(1, cfg.generator.z_dim)
    ws_true = gen.mapping_ws(z)
    c2w = torch.tensor(orbit_pose(30.0, 20.0, 2.6), dtype=torch.float32)[None]
    pose_true = PoseParams.from_cam2world(c2w, torch.tensor([1.6 * s]))
    cam_hi = Camera(c2w, torch.tensor([3.2 * s]), torch.tensor([float(s)]), torch.tensor([float(s)]), 2 * s, 2 * s)
    with torch.no_grad():
        image, alpha = render_shaded(gen, gen.decode(ws_true), cam_hi, Light.default(1),
                                     cfg.render)
    assert 0.05 < float(alpha.mean()) < 0.8
    return cfg, gen, z, ws_true, pose_true, InversionTarget(image, alpha)


def _invert(gen, cfg, target, ws, pose, focal_free=None, **settings):
    """``invert`` with the tiny model's inversion settings changed by ``settings``."""
    return invert(gen, cfg.render, target, InversionStart(ws, pose, focal_free),
                  dataclasses.replace(cfg.inversion, **settings))


def _reprojection_px(pose: PoseParams, pose_true: PoseParams, size: int) -> float:
    """Mean pixel distance between the projections of points around the object (what the image constrains)."""
    pts = torch.tensor(np.random.default_rng(0).uniform(-0.5, 0.5, (1, 200, 3)), dtype=torch.float32)
    a, _ = project_depth(pose.camera(size), pts)
    b, _ = project_depth(pose_true.camera(size), pts)
    return float((a - b).norm(dim=-1).mean())


def _field_distance(gen, ws, ws_true) -> float:
    pts = torch.tensor(np.random.default_rng(1).uniform(-0.6, 0.6, (1, 4000, 3)), dtype=torch.float32)
    with torch.no_grad():
        a, b = gen.query(gen.decode(ws), pts), gen.query(gen.decode(ws_true), pts)
    near = b.sdf.abs() < 0.1
    return float((a.sdf - b.sdf).abs()[near].mean() + (a.rgb - b.rgb).abs().mean(-1)[near].mean())


def test_inversion_moves_pose_toward_truth():
    cfg, gen, z, ws_true, pose_true, target = _scene()
    s = cfg.inversion.size
    c2w0 = torch.tensor(orbit_pose(36.0, 25.0, 2.8), dtype=torch.float32)[None]
    pose0 = PoseParams.from_cam2world(c2w0, torch.tensor([1.5 * s]))
    pose0.shift = pose0.shift + torch.tensor([[0.03, -0.02]])
    # the toy scene's silhouette weight, not the shipped default (that one is tuned on the real model)
    res = _invert(gen, cfg, target, ws_true, pose0, steps=30, seed=0,
                 mask_weight=1.0)
    losses = [step[0] for step in res.losses]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:2]), losses
    before, after = _reprojection_px(pose0, pose_true, s), _reprojection_px(res.pose, pose_true, s)
    assert after < 0.75 * before, (before, after)


def test_inversion_moves_latent_toward_truth():
    cfg, gen, z, ws_true, pose_true, target = _scene()
    ws0 = gen.mapping_ws(z + 1.5 * torch.randn(1, cfg.generator.z_dim, generator=torch.Generator().manual_seed(1)))
    # the toy generator's step size and silhouette weight, not the shipped defaults (tuned on the real model)
    res = _invert(gen, cfg, target, ws0, pose_true, steps=30,
                 seed=0, lr=2e-3, mask_weight=1.0)
    losses = [step[0] for step in res.losses]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    # w has directions the image cannot see; compare what the latents produce around the object
    d0, d1 = _field_distance(gen, ws0, ws_true), _field_distance(gen, res.ws, ws_true)
    assert d1 < 0.8 * d0, (d0, d1)


def _noise_case():
    """An untrained tiny generator, a random target and mask, a random w and a fixed pose."""
    torch.manual_seed(0)
    cfg = tiny_config()
    gen = ReconstructionModel(cfg).generator.requires_grad_(False)
    s = cfg.inversion.size
    target = InversionTarget(torch.rand(1, 2 * s, 2 * s, 3), (torch.rand(1, 2 * s, 2 * s) > 0.5).float())
    ws = gen.mapping_ws(torch.randn(1, cfg.generator.z_dim))
    pose = PoseParams.from_cam2world(torch.tensor(orbit_pose(0, 10, 2.5), dtype=torch.float32)[None],
                                     torch.tensor([1.5 * s]))
    return cfg, gen, s, target, ws, pose


@pytest.mark.parametrize("n_patches", [0, 2])  # default full crop only; the paper's patches as an option
def test_inversion_is_deterministic_and_zero_steps_is_identity(n_patches):
    cfg, gen, s, target, ws, pose = _noise_case()
    a = _invert(gen, cfg, target, ws, pose, steps=3, seed=5, n_patches=n_patches)
    b = _invert(gen, cfg, target, ws, pose, steps=3, seed=5, n_patches=n_patches)
    assert torch.equal(a.ws, b.ws) and torch.equal(a.pose.quat, b.pose.quat)
    assert not torch.equal(a.ws, ws) and len(a.losses) == 3
    z = _invert(gen, cfg, target, ws, pose, steps=0)
    assert torch.allclose(z.ws, ws) and z.losses == []


def test_momentum_is_adams_first_moment_decay():
    """Adam's bias-corrected first step ignores beta1; from the second step on it differs."""
    cfg, gen, s, target, ws, pose = _noise_case()
    run = dict(steps=3, seed=5)
    short, long = (_invert(gen, cfg, target, ws, pose, momentum=m, **run).losses for m in (0.0, 0.9))
    assert short[:2] == long[:2]  # the start, and after the first update
    assert short[2] != long[2]


def test_a_stated_focal_length_stays_and_the_principal_point_is_kept():
    cfg, gen, z, ws_true, pose_true, target = _scene()
    s = cfg.inversion.size
    c2w = torch.tensor(np.stack([orbit_pose(40, 25, 2.4)] * 2), dtype=torch.float32)
    pose0 = PoseParams.from_cam2world(c2w, torch.tensor([1.3 * s, 1.3 * s]), torch.tensor([[30.0, 35.0]] * 2))
    both = InversionTarget(target.image.expand(2, -1, -1, -1), target.mask.expand(2, -1, -1))
    res = _invert(gen, cfg, both, ws_true.expand(2, -1, -1), pose0, steps=4,
                 focal_free=torch.tensor([False, True]))
    assert float(res.pose.log_focal[0]) == float(pose0.log_focal[0])  # stated: untouched
    assert float(res.pose.log_focal[1]) != float(pose0.log_focal[1])  # free: refined
    # one of focal length and depth fits the size: the stated focal's image moves its depth, the free one keeps it
    assert float(res.pose.log_depth[0]) != float(pose0.log_depth[0])
    assert float(res.pose.log_depth[1]) == float(pose0.log_depth[1])
    both_move = _invert(gen, cfg, both, ws_true.expand(2, -1, -1), pose0, steps=4, focal_free=torch.tensor([False, True]), hold_depth=False)
    assert float(both_move.pose.log_depth[1]) != float(pose0.log_depth[1])
    assert torch.equal(res.pose.principal, pose0.principal)
    assert float(res.pose.camera(s).cx[0]) == 30.0


def test_inversion_returns_the_best_parameters_seen():
    # starting at the truth with an absurd learning rate, every step makes things worse:
    # the result must be the starting point, not the wreck after the last step
    cfg, gen, z, ws_true, pose_true, target = _scene()
    res = _invert(gen, cfg, target, ws_true, pose_true, steps=4, seed=0, lr=0.5, plane_lr=5.0)
    assert res.best_step == [0]
    assert torch.allclose(res.ws, ws_true) and torch.allclose(res.pose.quat, pose_true.quat)
    assert float(res.plane_offset.abs().max()) == 0.0
    # with a sane learning rate from a wrong start, late steps win
    ws0 = gen.mapping_ws(z + 1.5 * torch.randn(1, cfg.generator.z_dim, generator=torch.Generator().manual_seed(1)))
    res = _invert(gen, cfg, target, ws0, pose_true, steps=30,
                 seed=0)
    assert res.best_step[0] > 15, res.best_step


def test_silhouette_pyramid_grows_with_the_distance_of_a_misplaced_thin_part():
    mask = torch.zeros(1, 32, 32)
    mask[:, :, 8] = 1  # a one-pixel leg
    losses = {}
    for levels in (0, 3):
        per_shift = []
        for shift in (2, 4, 8):
            alpha = torch.zeros(1, 32, 32)
            alpha[:, :, 8 + shift] = 1
            per_shift.append(float(silhouette(alpha, mask, levels)))
        losses[levels] = per_shift
    # plain L1 cannot tell a near miss from a far one; the pooled levels can, so they pull the leg over
    assert losses[0][0] == losses[0][1] == losses[0][2]
    assert losses[3][0] < losses[3][1] < losses[3][2]
    assert float(silhouette(mask, mask, 3)) == 0.0


def test_fitted_triplane_offset_reaches_detail_the_latent_cannot():
    # the photo is the generator's own render with a band cut out of the object: no w of this generator
    # draws that gap, so w alone cannot fit it; the fitted triplane offset can
    cfg, gen, z, ws_true, pose_true, target = _scene()
    s = cfg.inversion.size
    image, mask = target.image.clone(), target.mask.clone()
    mid = int(mask[0].sum(dim=1).nonzero().float().mean())
    mask[:, mid - 3: mid + 3] = 0.0
    image[:, mid - 3: mid + 3] = 1.0  # the white background
    gap = InversionTarget(image, mask)
    # w and the pose nearly held (lr 1e-4): what moves is the offset
    run = dict(steps=10, seed=0, mask_weight=1.0, lr=1e-4)
    plain = _invert(gen, cfg, gap, ws_true, pose_true, plane_lr=0.0, **run)
    fitted = _invert(gen, cfg, gap, ws_true, pose_true, plane_lr=0.3, plane_res=cfg.generator.plane_res, **run)
    assert plain.plane_offset is None
    assert fitted.plane_offset.shape == gen.decode(ws_true).planes.shape
    best = lambda res: min(step[0] for step in res.losses)  # noqa: E731
    assert best(fitted) < 0.8 * best(plain), (best(plain), best(fitted))
    # the offset is part of the result: re-rendered with it, the fit is better than without
    target_lo = torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    mask_lo = torch.nn.functional.avg_pool2d(mask[:, None], 2)[:, 0]

    def error(offset):
        with torch.no_grad():
            rgb, alpha = render_shaded(gen, gen.decode(fitted.ws, offset), fitted.pose.camera(s), fitted.light,
                                       cfg.render)
        return float(photometric(rgb, target_lo, "l1+ssim") + silhouette(alpha, mask_lo, 5))  # invert's loss

    assert error(fitted.plane_offset) < 0.8 * error(None), (error(None), error(fitted.plane_offset))


def test_inversion_adam_matches_torch_optim_adam_per_group():
    """The inversion's optimizer (functional Adam, no torch._dynamo import) takes torch.optim.Adam's
    steps exactly, with a learning rate per group that changes between steps."""
    from core.fit.invert import _Adam

    torch.manual_seed(0)
    a = [torch.randn(4, 3, requires_grad=True), torch.randn(2, requires_grad=True)]
    b = [t.detach().clone().requires_grad_(True) for t in a]
    ours = _Adam([{"params": [a[0]], "lr": 0.1}, {"params": [a[1]], "lr": 0.02}], betas=(0.5, 0.95))
    ref = torch.optim.Adam([{"params": [b[0]], "lr": 0.1}, {"params": [b[1]], "lr": 0.02}], betas=(0.5, 0.95))
    for step in range(4):
        for opt, params in ((ours, a), (ref, b)):
            opt.zero_grad()
            for group in opt.param_groups:
                group["lr"] *= 0.7
            ((params[0] ** 3).sum() + (params[1].sin() * step).sum()).backward()
            opt.step()
        assert all(torch.equal(x, y) for x, y in zip(a, b)), step
