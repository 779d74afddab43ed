"""What keeps the fitted triplane offset from sculpting the side of the object the photo does not show:
mirror symmetry about x = 0, total variation, and the penalty on its change to the unseen field."""

import dataclasses

import torch

from core.field.generator import FieldState, sample_triplanes
from core.field.volume import render_image
from core.fit.invert import mirrored, offset_factor, schedule, total_variation, unseen_change
from core.fit.invert import InversionTarget
from core.geometry.camera import Camera

from test_invert import _invert, _scene


def _features_at_mirrored_points(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pts = (torch.rand(planes.shape[0], 500, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.9
    flipped = pts * torch.tensor([-1.0, 1.0, 1.0])
    return sample_triplanes(planes, pts, 1.0), sample_triplanes(planes, flipped, 1.0)


def test_a_mirrored_offset_adds_the_same_features_at_mirrored_points():
    offset = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    a, b = _features_at_mirrored_points(offset)
    assert float((a - b).abs().mean()) > 0.1  # a random offset is not symmetric
    a, b = _features_at_mirrored_points(mirrored(offset, 1.0))
    assert float((a - b).abs().max()) < 1e-5
    half = mirrored(offset, 0.5)  # half of the asymmetry removed
    assert torch.allclose(half - mirrored(half, 1.0), 0.5 * (offset - mirrored(offset, 1.0)), atol=1e-6)
    assert mirrored(offset, 0.0) is offset
    assert torch.equal(mirrored(offset, 1.0)[:, 2], offset[:, 2])  # the (y, z) plane holds no x


def test_total_variation_is_zero_for_a_constant_offset_and_grows_with_roughness():
    assert float(total_variation(torch.full((1, 3, 2, 8, 8), 0.7))) == 0.0
    smooth = torch.linspace(0, 1, 8).expand(1, 3, 2, 8, 8)
    rough = smooth + 0.3 * torch.randn(1, 3, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    assert 0 < float(total_variation(smooth)) < float(total_variation(rough))


def _gapped(target: InversionTarget) -> InversionTarget:
    """The photo with a band cut out of the object: only the offset can fit it (test_invert)."""
    image, mask = target.image.clone(), target.mask.clone()
    mid = int(mask[0].sum(dim=1).nonzero().float().mean())
    mask[:, mid - 3: mid + 3] = 0.0
    image[:, mid - 3: mid + 3] = 1.0
    return InversionTarget(image, mask)


def test_inversion_with_plane_mirror_returns_a_symmetric_offset():
    cfg, gen, z, ws_true, pose_true, target = _scene()
    target = _gapped(target)
    run = dict(steps=4, seed=0, plane_lr=0.3, plane_res=cfg.generator.plane_res)
    free = _invert(gen, cfg, target, ws_true, pose_true, **run)
    sym = _invert(gen, cfg, target, ws_true, pose_true, plane_mirror=1.0, **run)
    a, b = _features_at_mirrored_points(free.plane_offset)
    assert float((a - b).abs().mean()) > 1e-3
    a, b = _features_at_mirrored_points(sym.plane_offset)
    assert float((a - b).abs().max()) < 1e-5


def _hidden_view(s: int, surface_depth: float):
    """A camera on -Y looking at the origin that sees the whole box, its render a full opaque
    silhouette whose surface lies ``surface_depth`` from the camera."""
    c2w = torch.tensor([[[1.0, 0, 0, 0], [0, 0, -1, -4.0], [0, 1, 0, 0], [0, 0, 0, 1]]])
    cam = Camera(c2w, torch.tensor([s * 1.2]), torch.tensor([s / 2]), torch.tensor([s / 2]), s, s)
    ones = torch.ones(1, s, s)
    return cam, ones, ones * surface_depth


def test_unseen_change_counts_only_points_behind_the_surface_or_outside_the_frame():
    cfg, gen, z, ws_true, pose_true, target = _scene()
    base = gen.decode(ws_true)
    offset = 0.5 * torch.randn(base.planes.shape, generator=torch.Generator().manual_seed(3))
    moved = FieldState(base.planes + offset, base.color_values)
    s = 16
    cam, ones, depth = _hidden_view(s, 2.0)  # every point of the box lies behind the surface
    with torch.no_grad():
        hidden = float(unseen_change(gen, moved, base, cam, ones, depth, ones, torch.Generator().manual_seed(0)))
        nothing = float(unseen_change(gen, base, base, cam, ones, depth, ones, torch.Generator().manual_seed(0)))
        # the mask is empty: the photo sees every point in its frame (as empty space)
        seen = float(unseen_change(gen, moved, base, cam, ones, depth, 0 * ones, torch.Generator().manual_seed(0)))
    assert hidden > 1e-4 and nothing == 0.0
    assert seen < 0.1 * hidden  # only the few points outside the camera's frame count


def test_the_unseen_penalty_keeps_the_offset_from_changing_the_hidden_side():
    cfg, gen, z, ws_true, pose_true, target = _scene()
    target = _gapped(target)
    run = dict(steps=6, seed=0, plane_lr=0.3, plane_res=cfg.generator.plane_res)
    free = _invert(gen, cfg, target, ws_true, pose_true, **run)
    held = _invert(gen, cfg, target, ws_true, pose_true, plane_unseen=30.0, **run)

    def change(res):
        s = cfg.inversion.size
        cam = res.pose.camera(s)
        with torch.no_grad():
            state = gen.decode(res.ws, res.plane_offset)
            out = render_image(gen, state, cam, cfg.render)
            return float(unseen_change(gen, state, gen.decode(res.ws), cam, out.alpha, out.depth,
                                       target.halved().mask, torch.Generator().manual_seed(5)))

    assert change(held) < 0.7 * change(free), (change(free), change(held))


def test_plane_steps_moves_the_offset_only_in_the_first_steps_of_a_longer_fit():
    cfg, gen, z, ws_true, pose_true, target = _scene()
    target = _gapped(target)
    run = dict(seed=0, plane_lr=0.3, plane_res=cfg.generator.plane_res)
    capped = _invert(gen, cfg, target, ws_true, pose_true, steps=6, plane_steps=2, **run)
    free = _invert(gen, cfg, target, ws_true, pose_true, steps=6, **run)
    assert float(capped.plane_offset.abs().max()) > 0  # the first two steps moved it
    assert not torch.equal(capped.plane_offset, free.plane_offset)
    assert not torch.equal(capped.ws, free.ws)  # w and the pose went on moving
    # the offset's rate: a 2-step fit's schedule, then nothing; a fit of plane_steps steps or fewer: its own
    cfg6 = dataclasses.replace(cfg.inversion, steps=6, plane_steps=2, lr_end=0.5)
    assert [offset_factor(k, cfg6) for k in range(6)] == [1.0, schedule(1, 2, 0.5), 0.0, 0.0, 0.0, 0.0]
    assert schedule(1, 2, 0.5) == 0.75
    own = dataclasses.replace(cfg6, plane_steps=6)
    assert [offset_factor(k, own) for k in range(6)] == [schedule(k, 6, 0.5) for k in range(6)]
    late = dataclasses.replace(cfg6, plane_start=1)
    assert [offset_factor(k, late) for k in range(3)] == [0.0, 0.75, 0.0]
    short = _invert(gen, cfg, target, ws_true, pose_true, steps=6, plane_steps=6, **run)
    assert torch.equal(short.plane_offset, free.plane_offset)  # a fit of plane_steps steps or fewer: unchanged
