"""Our implementation of the paper's encoder against the reference code's outputs.

The fixture (``python -m training.paper.fixture_encoder``) holds a reduced-width reference
``BootstrapEncoder`` checkpoint, a random input and what the reference computed from it.
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from core.paper.checkpoint import read_checkpoint
from core.config import PaperConfig
from core.encoder import EncoderOutput
from core.paper.encoder import PaperEncoder, reference_background

FIXTURES = Path(__file__).parent / "fixtures" / "paper"
ROT_Z_90 = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
"""a quarter turn about Z: R^T q = (q_y, -q_x, q_z)."""


@pytest.fixture(scope="module")
def fixture():
    values = json.loads((FIXTURES / "encoder_config.json").read_text())
    cfg = PaperConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    checkpoint = read_checkpoint(FIXTURES / "encoder.pt")
    state = {k.removeprefix("module."): v for k, v in checkpoint["model_coord"].items()}
    return cfg, checkpoint, state, load_file(str(FIXTURES / "encoder_expected.safetensors"))


def _encoder(cfg, state, bound=1.0):
    model = PaperEncoder(cfg, bound=bound)
    model.load_state_dict(state, strict=True)
    return model.eval()


def test_checkpoint_layout(fixture):
    _, checkpoint, _, _ = fixture
    assert all(k.startswith("module.") for k in checkpoint["model_coord"])
    assert isinstance(checkpoint["iteration"], int) and isinstance(checkpoint["lr"], float)


def test_reference_forward_matches_reference(fixture):
    cfg, _, state, expected = fixture
    with torch.no_grad():
        coords, segmentation, w = _encoder(cfg, state).reference_forward(expected["input"])
    b, _, s, _ = expected["input"].shape
    assert coords.shape == (b, s, s, 3) and segmentation.shape == (b, s, s) and w.shape == (b, 1, cfg.w_dim)
    assert (coords - expected["coords"]).abs().max() < 1e-4
    assert (segmentation - expected["segmentation"]).abs().max() < 1e-4
    assert (w - expected["w"]).abs().max() < 1e-4
    # the fixture is not degenerate: the mask is neither all 0 nor all 1
    assert expected["segmentation"].min() < 0.2 and expected["segmentation"].max() > 0.8


def test_forward_converts_range_and_frame(fixture):
    cfg, _, state, expected = fixture
    cfg = replace(cfg, frame=ROT_Z_90, scene_range=0.55)
    bound = 0.8
    image = (expected["input"].permute(0, 2, 3, 1) + 1) / 2  # the same pixels in [0, 1]
    with torch.no_grad():
        out = _encoder(cfg, state, bound=bound)(image)
    assert isinstance(out, EncoderOutput)
    q = expected["coords"]  # reference scene points
    k = bound / cfg.scene_range
    assert torch.allclose(out.coords[..., 0], k * q[..., 1], atol=1e-4)
    assert torch.allclose(out.coords[..., 1], -k * q[..., 0], atol=1e-4)
    assert torch.allclose(out.coords[..., 2], k * q[..., 2], atol=1e-4)
    assert torch.allclose(torch.sigmoid(out.mask_logits), expected["segmentation"], atol=1e-4)
    assert torch.allclose(out.w, expected["w"][:, 0], atol=1e-4)


@pytest.mark.parametrize("side", [48, 96])
def test_forward_other_sizes(fixture, side):
    cfg, _, state, expected = fixture
    image = torch.rand(2, side, side, 3, generator=torch.Generator().manual_seed(side))
    image[0] = 0.0  # saturated inputs must still give finite logits
    with torch.no_grad():
        out = _encoder(cfg, state)(image)
    assert out.coords.shape == (2, side, side, 3)
    assert out.mask_logits.shape == (2, side, side)
    assert out.w.shape == (2, cfg.w_dim)
    assert torch.isfinite(out.mask_logits).all() and torch.isfinite(out.coords).all()


def test_forward_shrinks_with_area_filter(fixture):
    """A 2x nearest enlargement shrinks back exactly, so w equals the reference's on the original."""
    cfg, _, state, expected = fixture
    image = (expected["input"] + 1) / 2
    big = F.interpolate(image, scale_factor=2, mode="nearest").permute(0, 2, 3, 1)
    with torch.no_grad():
        out = _encoder(cfg, state)(big)
    assert torch.allclose(out.w, expected["w"][:, 0], atol=1e-4)
    mask = F.avg_pool2d(torch.sigmoid(out.mask_logits).unsqueeze(1), 2).squeeze(1)
    assert (mask - expected["segmentation"]).abs().mean() < 0.05


def test_default_config_is_the_reference_mit_b5_layout():
    shapes = json.loads((FIXTURES / "encoder_full_shapes.json").read_text())
    with torch.device("meta"):
        model = PaperEncoder(PaperConfig())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == shapes
    assert list(model.state_dict()) == list(shapes)


def test_non_square_input_is_refused(fixture):
    cfg, _, state, _ = fixture
    with pytest.raises(ValueError, match="square"):
        _encoder(cfg, state)(torch.zeros(1, 32, 48, 3))


def test_reference_backgrounds():
    assert reference_background("shapenet_chairs") == 1.0
    assert reference_background("p3d_car") == 0.5
    assert reference_background("cub") == 0.5
    with pytest.raises(ValueError):
        reference_background("unknown")
