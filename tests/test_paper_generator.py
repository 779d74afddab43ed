"""Our implementation of the paper's generator against its reference code (google-research/nerf-from-image).

The fixture (``python -m training.paper.fixture_generator --reference <checkout>``) holds a reduced-width
reference checkpoint with fixed random weights and what the reference code computed from it: w, the
sampler's outputs at fixed points, and two deterministic renders. Everything here runs on it in float32.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from core.paper.checkpoint import read_checkpoint
from core.config import PaperConfig, RenderConfig, from_dict
from core.field.volume import render_image
from core.geometry.camera import Camera
from core.paper.generator import PaperGenerator, sample_planes
from core.paper.render import render_reference

FIXTURES = Path(__file__).parent / "fixtures" / "paper"
TOL = 1e-4

Z_UP_TO_Y_UP = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)
"""canonical (Z up, front -Y) -> a Y-up reference frame: x -> x, z -> y, y -> -z."""

QUARTER_TURN_Z = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
"""90 degrees about z."""


@pytest.fixture(scope="module")
def fixture():
    """(config, checkpoint, expected tensors, size, samples) of the parity fixture."""
    from safetensors import safe_open

    paths = [FIXTURES / n for n in ("generator.pt", "generator_expected.safetensors", "generator_config.json")]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        pytest.fail(f"{missing[0]} is missing: run python -m training.paper.fixture_generator --reference "
                    "<nerf-from-image checkout> --out tests/fixtures/paper")
    cfg = from_dict(PaperConfig, json.loads(paths[2].read_text()), str(paths[2]))
    checkpoint = read_checkpoint(paths[0])
    with safe_open(str(paths[1]), framework="pt") as f:
        expected = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    return cfg, checkpoint, expected, int(meta["size"]), int(meta["samples"])


def _generator(fixture, frame=None, bound: float = 1.0) -> PaperGenerator:
    cfg, checkpoint = fixture[:2]
    if frame is not None:
        cfg = dataclasses.replace(cfg, frame=frame)
    gen = PaperGenerator(cfg, bound=bound).eval().requires_grad_(False)
    gen.load_state_dict(checkpoint["model_ema"], strict=True)
    return gen


@pytest.fixture(scope="module")
def gen(fixture):
    return _generator(fixture)


@pytest.fixture(scope="module")
def decoded(gen, fixture):
    """ws (B, 15, w_dim), planes (B, 3, 32, 256, 256), slot colours (B, K, 3) of the fixture's z."""
    ws = gen.ws_from_z(fixture[2]["z"])
    return ws, gen.synthesize(ws), gen.slot_colors(ws)


def _maxdiff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def test_state_dict_keys_are_the_reference_keys(gen, fixture):
    reference = fixture[1]["model_ema"]
    own = gen.state_dict()
    assert set(own) == set(reference) | {"w_avg", "w_std"}
    assert all(own[k].shape == v.shape for k, v in reference.items())
    assert own["w_avg"].shape == own["w_std"].shape == (gen.cfg.w_dim,)
    assert gen.cfg.num_ws == 15 and gen.cfg.z_dim == fixture[0].latent_dim


def test_loading_keeps_latent_statistics_absent_from_a_checkpoint(fixture):
    gen = _generator(fixture)
    gen.w_avg.fill_(0.5)
    gen.load_state_dict(fixture[1]["model_ema"], strict=True)  # no w_avg / w_std in a reference checkpoint
    assert float(gen.w_avg.min()) == 0.5
    state = gen.state_dict()
    state["w_std"] = torch.full_like(state["w_std"], 2.0)
    gen.load_state_dict(state, strict=True)
    assert float(gen.w_std.max()) == 2.0


def test_latents_planes_and_slot_colours_match_reference(decoded, fixture):
    exp = fixture[2]
    ws, planes, colors = decoded
    assert _maxdiff(ws, exp["ws"]) < TOL
    assert _maxdiff(planes[..., ::32, ::32], exp["planes_strided"]) < TOL
    assert _maxdiff(colors, exp["slot_colors"]) < TOL


def test_field_matches_reference(gen, decoded, fixture):
    exp = fixture[2]
    _, planes, colors = decoded
    out = gen.sample_reference(planes, colors, exp["points"])
    assert _maxdiff(out.distance, exp["sdf"]) < TOL
    assert _maxdiff(out.sigma, exp["sigma"]) < TOL
    assert _maxdiff(out.rgb, exp["rgb"]) < TOL
    assert _maxdiff(out.semantics, exp["semantics"]) < TOL
    outside = (exp["points"].abs() > fixture[0].scene_range).any(dim=-1)
    assert outside.any() and (~outside).any()
    assert float(out.sigma[outside].abs().max()) == 0.0
    inside = ~outside
    assert float((out.distance[inside] < 0).float().mean()) > 0.05  # the fixture has surface to render


def test_render_matches_reference(gen, decoded, fixture):
    exp, size, samples = fixture[2], fixture[3], fixture[4]
    out = render_reference(gen, decoded[0], exp["cam2world"], exp["focal"], size, samples)
    assert _maxdiff(out.rgb, exp["render_rgb"]) < TOL
    assert _maxdiff(out.alpha, exp["render_alpha"]) < TOL
    assert 0.1 < float(exp["render_alpha"].mean()) < 0.9  # neither empty nor filled


def test_planes_are_indexed_by_their_own_axis_pairs():
    planes = torch.zeros(1, 3, 1, 8, 8)
    ramp = torch.linspace(0, 1, 8)
    planes[0, 2, 0] = ramp[None, :] + 10 * ramp[:, None]  # YZ plane: width along y, height along z
    p = torch.tensor([[[0.3, -0.5, 0.25], [-0.9, -0.5, 0.25], [0.3, 0.5, 0.25], [0.3, -0.5, -0.75]]])
    f = sample_planes(planes, p)[0, :, 0]
    assert f[0] == pytest.approx(f[1])  # x does not index the YZ plane
    assert float(f[2] - f[0]) == pytest.approx(0.5 / 3, abs=1e-6)  # y runs along the width
    assert float(f[0] - f[3]) == pytest.approx(5.0 / 3, abs=1e-5)  # z along the height


def test_query_in_our_frame_is_the_reference_field_at_mapped_points(fixture, decoded):
    bound = 0.5
    gen = _generator(fixture, Z_UP_TO_Y_UP, bound)
    s = fixture[0].scene_range / bound
    rot = torch.tensor(Z_UP_TO_Y_UP).reshape(3, 3)
    p = (torch.rand(2, 300, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 0.55
    state = gen.decode(decoded[0])
    sample = gen.query(state, p, with_weights=True)
    ref = gen.sample_reference(decoded[1], decoded[2], s * torch.einsum("ij,bnj->bni", rot, p))
    assert _maxdiff(sample.sdf * s, ref.distance) < TOL
    assert _maxdiff(sample.rgb * 2 - 1, ref.rgb) < TOL
    assert _maxdiff(sample.weights, ref.semantics) < TOL
    assert float(sample.rgb.min()) >= -0.001 and float(sample.rgb.max()) <= 1.001
    recolored = (torch.einsum("bnk,bkc->bnc", sample.weights, state.color_values) + 1) / 2
    assert _maxdiff(recolored, sample.rgb) < TOL
    assert float(gen.beta) == pytest.approx(float(gen.state_dict()["beta"]) / s)

    density = gen.density(sample.sdf, p)
    inside = (p.abs() <= bound).all(dim=-1)
    assert _maxdiff(density[inside], s * ref.sigma[inside]) < 1e-3 * s
    assert float(density[~inside].abs().max()) == 0.0 and (~inside).any()
    assert _maxdiff(gen.density(sample.sdf, p, beta=gen.beta), density) < 1e-3
    # a beta in our units: VolSDF density (1 / alpha) LaplaceCDF(-d; b) in reference units, times s
    alpha, beta_ref = float(gen.state_dict()["alpha"]), 4 * float(gen.state_dict()["beta"])
    x = -s * sample.sdf
    cdf = torch.where(x < 0, 0.5 * torch.exp(x / beta_ref), 1 - 0.5 * torch.exp(-x / beta_ref))
    wider = gen.density(sample.sdf, p, beta=4 * gen.beta)
    assert _maxdiff(wider, s * cdf / alpha * inside) < 1e-5 * s


def test_quarter_turn_frame_gives_the_same_field_at_turned_points(fixture, decoded):
    plain, turned = _generator(fixture), _generator(fixture, QUARTER_TURN_Z)
    rot = torch.tensor(QUARTER_TURN_Z).reshape(3, 3)
    p = (torch.rand(1, 400, 3, generator=torch.Generator().manual_seed(4)) * 2 - 1) * 1.1
    state = plain.decode(decoded[0][:1])
    a = turned.query(state, p, with_weights=True)
    b = plain.query(state, torch.einsum("ij,bnj->bni", rot, p), with_weights=True)
    assert _maxdiff(a.sdf, b.sdf) < TOL and _maxdiff(a.rgb, b.rgb) < TOL and _maxdiff(a.weights, b.weights) < TOL
    assert _maxdiff(turned.density(a.sdf, p), plain.density(b.sdf, p @ rot.T)) < TOL
    assert _maxdiff(a.sdf, plain.query(state, p).sdf) > 0.01  # the turn matters


def test_project_renderer_agrees_with_reference_render(fixture, decoded):
    """core.field.volume renders the imported field (our frame, our units) like the reference renders it."""
    exp, size = fixture[2], fixture[3]
    bound = 0.8
    gen = _generator(fixture, Z_UP_TO_Y_UP, bound)
    s = fixture[0].scene_range / bound
    rot = torch.tensor(Z_UP_TO_Y_UP).reshape(3, 3)
    cam = exp["cam2world"].clone()
    cam[:, :3, :3] = rot.T @ cam[:, :3, :3]
    cam[:, :3, 3] = cam[:, :3, 3] @ rot / s
    centre = torch.full((2,), size / 2 + 0.5)  # the reference's rays pass through pixel corners
    camera = Camera(cam, exp["focal"] * size, centre, centre, size, size)
    state = gen.decode(decoded[0])
    out = render_image(gen, state, camera, RenderConfig(coarse_samples=48, fine_samples=48, coarse_beta=0.04))
    reference = exp["render_alpha"]
    assert float((out.alpha - reference).abs().mean()) < 0.01  # measured 0.0035: the reference's own 16-sample error
    rgb = out.albedo + (1 - out.alpha[..., None])  # over white, as the reference
    assert float((rgb * 2 - 1 - exp["render_rgb"]).abs().mean()) < 0.02


def test_gradients_reach_the_latent(gen, fixture):
    """The inversion optimizes ws through decode, query and density."""
    ws = gen.ws_from_z(fixture[2]["z"][:1]).clone().requires_grad_(True)
    p = (torch.rand(1, 200, 3, generator=torch.Generator().manual_seed(5)) * 2 - 1) * 0.9
    sample = gen.query(gen.decode(ws), p)
    (gen.density(sample.sdf, p).sum() + sample.rgb.sum()).backward()
    grad = ws.grad
    assert torch.isfinite(grad).all() and float(grad[:, :14].abs().max()) > 0 and float(grad[:, 14].abs().max()) > 0


def test_direct_rgb_without_colour_slots(fixture):
    cfg = dataclasses.replace(fixture[0], attention_values=0)
    gen = PaperGenerator(cfg).eval().requires_grad_(False)
    assert gen.cfg.num_ws == 14 and not hasattr(gen, "texture_mapper")
    assert gen.state_dict()["decoder.net.2.weight"].shape[0] == 4  # distance + RGB
    state = gen.decode(gen.mapping_ws(torch.randn(2, cfg.latent_dim)))
    assert state.color_values.shape == (2, 1, 3) and float(state.color_values.abs().max()) == 0.0
    sample = gen.query(state, torch.rand(2, 50, 3) * 2 - 1, with_weights=True)
    assert sample.weights is None and sample.rgb.shape == (2, 50, 3)
    assert float(sample.rgb.min()) >= -0.001 and float(sample.rgb.max()) <= 1.001


def test_both_generators_are_one_radiance_field(gen):
    """The pipeline takes any RadianceField: ours and the paper's have its members with its signatures."""
    import inspect

    from core.config import tiny_config
    from core.field.generator import Generator, RadianceField

    ours = Generator(tiny_config().generator)
    members = [n for n in vars(RadianceField) if not n.startswith("_")] + list(RadianceField.__annotations__)
    assert {"decode", "query", "density", "beta", "mapping_ws", "cfg", "lit", "w_avg"} <= set(members)
    for field in (ours, gen):
        assert isinstance(field, RadianceField)
        for name in ("bound", "num_ws", "w_dim", "z_dim", "plane_res", "plane_channels"):
            assert isinstance(getattr(field.cfg, name), (int, float)), name
        assert isinstance(field.lit, bool) and isinstance(field.recolorable, bool)
        for name, member in vars(RadianceField).items():
            if inspect.isfunction(member) and not name.startswith("_"):
                want = list(inspect.signature(member).parameters)
                assert list(inspect.signature(getattr(type(field), name)).parameters) == want, (type(field), name)
    assert not isinstance(torch.nn.Linear(2, 2), RadianceField)
