"""Renderer and field: a sphere SDF through an off-center camera; triplane axes."""

import math

import numpy as np
import torch

from core.geometry.camera import Camera, camera_rays, orbit_pose
from core.config import GeneratorConfig, RenderConfig
from core.field.generator import FieldSample, FieldState, Generator, sample_triplanes
from core.field.volume import render_image, render_rays


class SphereField(Generator):
    """An analytic sphere standing in for the network: sdf = |p| - r, albedo = (p + 1) / 2."""

    def __init__(self, radius: float):
        """An analytic field with the Generator's density; no trainable state matters here."""
        super().__init__(GeneratorConfig(z_dim=4, w_dim=8, mapping_layers=1, plane_res=8, plane_channels=2,
                                         synthesis_channels=(4,), decoder_hidden=4, color_k=2, color_hidden=4,
                                         beta_init=0.002))
        self.radius = radius
        self.requires_grad_(False)

    def query(self, state, points, with_color=True):
        return FieldSample(points.norm(dim=-1) - self.radius, (points + 1) / 2 if with_color else None)


def _camera(width=80, height=60, focal=70.0, cx=30.0, cy=35.0, distance=3.0):
    c2w = torch.tensor(orbit_pose(35.0, 20.0, distance), dtype=torch.float32)[None]
    return Camera(c2w, torch.tensor([focal]), torch.tensor([cx]), torch.tensor([cy]), width, height)


def test_sphere_renders_disk_of_predicted_radius_off_center():
    r, d = 0.5, 3.0
    field = SphereField(r)
    cam = _camera(distance=d)
    cfg = RenderConfig(coarse_samples=64, fine_samples=64, coarse_beta=0.02)
    out = render_image(field, FieldState(None, None), cam, cfg)
    alpha = out.alpha[0].numpy()
    predicted = 70.0 * r / math.sqrt(d * d - r * r)  # silhouette radius of a sphere in pixels
    area = (alpha > 0.5).sum()
    measured = math.sqrt(area / math.pi)
    assert abs(measured - predicted) < 0.5, (measured, predicted)
    v, u = np.nonzero(alpha > 0.5)
    # the sphere's centre lies on the optical axis: its disk is centred on the principal point
    assert abs(u.mean() + 0.5 - 30.0) < 0.3 and abs(v.mean() + 0.5 - 35.0) < 0.3
    assert alpha.max() > 0.99 and alpha[0, -1] < 1e-3


def test_rendered_coordinates_are_surface_points():
    r = 0.5
    field = SphereField(r)
    cam = _camera()
    out = render_image(field, FieldState(None, None), cam, RenderConfig(coarse_samples=64, fine_samples=64))
    alpha = out.alpha[0]
    rays = camera_rays(cam)
    o_all = rays.origins[0].reshape(60, 80, 3)
    d_all = rays.directions[0].reshape(60, 80, 3)
    b_all = (o_all * d_all).sum(-1)
    disc = b_all * b_all - (o_all * o_all).sum(-1) + r * r
    # rays that clearly hit (grazing rays pick up VolSDF density without touching the sphere)
    inside = (alpha > 0.999) & (disc > 0.01)
    pts = out.coords[0][inside] / alpha[inside][:, None]
    o, dvec, b = o_all[inside], d_all[inside], b_all[inside]
    t = -b - torch.sqrt(disc[inside])
    exact = o + t[:, None] * dvec
    err = (pts - exact).norm(dim=-1)
    assert inside.sum() > 300
    assert err.median() < 0.01 and err.max() < 0.05, (err.median(), err.max())
    depth = out.depth[0][inside] / alpha[inside]
    assert (depth - t).abs().max() < 0.05


def test_rays_outside_box_are_empty_and_chunking_is_exact():
    field = SphereField(0.5)
    cam = _camera()
    rays = camera_rays(cam)
    cfg = RenderConfig(coarse_samples=16, fine_samples=16)
    whole = render_rays(field, FieldState(None, None), rays, cfg, chunk=100000)
    parts = render_rays(field, FieldState(None, None), rays, cfg, chunk=333)
    assert torch.allclose(whole.alpha, parts.alpha, atol=1e-6)
    assert torch.allclose(whole.coords, parts.coords, atol=1e-6)


def test_three_plane_projections_differ():
    """Each plane is indexed by a different axis pair (the EG3D XY/XZ/ZX trap never samples YZ)."""
    r = 8
    planes = torch.zeros(1, 3, 1, r, r)
    ramp = torch.linspace(-1, 1, r)
    planes[0, 2, 0] = ramp[:, None]  # plane 2 varies along its second index -> the z axis of (y, z)
    pts = torch.tensor([[[0.0, 0.0, -0.8], [0.0, 0.0, 0.8], [0.0, -0.8, 0.0], [0.0, 0.8, 0.0],
                         [-0.8, 0.0, 0.0], [0.8, 0.0, 0.0]]])
    f = sample_triplanes(planes, pts, 1.0)[0, :, 0]
    assert f[1] - f[0] > 0.3  # z changes the YZ plane's sample
    assert abs(f[3] - f[2]) < 1e-6 and abs(f[5] - f[4]) < 1e-6
    # and the three planes see three different coordinate pairs
    coords = []
    for k in range(3):
        pl = torch.zeros(1, 3, 1, r, r)
        pl[0, k, 0] = torch.arange(r * r, dtype=torch.float32).reshape(r, r)
        coords.append(sample_triplanes(pl, torch.rand(1, 50, 3) * 2 - 1, 1.0))
    assert not torch.allclose(coords[0], coords[1]) and not torch.allclose(coords[1], coords[2])


def test_generator_query_shapes_and_density():
    from core.config import tiny_config

    cfg = tiny_config().generator
    gen = Generator(cfg)
    state = gen.decode(gen.mapping_ws(torch.randn(2, cfg.z_dim)))
    assert state.planes.shape == (2, 3, cfg.plane_channels, cfg.plane_res, cfg.plane_res)
    s = gen.query(state, torch.rand(2, 10, 3) * 2 - 1)
    assert s.sdf.shape == (2, 10) and s.rgb.shape == (2, 10, 3)
    assert float(s.rgb.detach().min()) >= -0.001 and float(s.rgb.detach().max()) <= 1.001
    sdf = torch.tensor([[-1.0, 0.0, 1.0]])
    dens = gen.density(sdf, torch.zeros(1, 3, 3), beta=0.1)
    assert torch.allclose(dens, torch.tensor([[10 * (1 - 0.5 * math.exp(-10)), 5.0, 10 * 0.5 * math.exp(-10)]]))
    assert float(gen.density(sdf, torch.full((1, 3, 3), 2.0), beta=0.1).abs().max()) == 0.0


def test_rays_far_from_the_surface_skip_the_fine_pass_without_changing_the_image():
    """Culling rays that pass farther than the margin from the SDF's surface: same image and
    gradients (to float noise), the fine pass sees fewer points, batches with different counts work."""
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(z_dim=8, w_dim=16, mapping_layers=1, plane_res=16, plane_channels=4,
                                    synthesis_channels=(16, 8), decoder_hidden=16, color_k=4, color_hidden=16))
    ws = gen.mapping_ws(torch.randn(2, 8)).detach().requires_grad_(True)
    cam = _camera(width=32, height=24, focal=30.0, cx=16.0, cy=12.0)
    cam = Camera(cam.cam2world.expand(2, -1, -1), cam.focal.expand(2), torch.tensor([16.0, 4.0]),
                 cam.cy.expand(2), 32, 24)  # the second camera sees the sphere off to one side
    points = []
    original_query = gen.query

    def counting_query(state, pts, **kw):
        points.append(pts.shape[1])
        return original_query(state, pts, **kw)

    gen.query = counting_query
    outs, grads = [], []
    for margin in (-1.0, 0.1):
        points.clear()
        cfg = RenderConfig(coarse_samples=16, fine_samples=16, empty_margin=margin)
        out = render_image(gen, gen.decode(ws), cam, cfg, generator=torch.Generator().manual_seed(3))
        (grad,) = torch.autograd.grad(out.alpha.sum() + out.albedo.sum(), ws)
        outs.append(out)
        grads.append(grad)
        fine = points[1]
    print("fine-pass points with culling:", fine, "of", 24 * 32 * 32)
    assert fine < 0.8 * 24 * 32 * 32  # some rays were culled (the batch shares the larger count)
    assert 0.05 < float(outs[0].alpha.detach().mean()) < 0.95
    for name in ("albedo", "alpha", "depth", "coords"):
        assert torch.allclose(getattr(outs[0], name), getattr(outs[1], name), atol=1e-5), name
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-6)
