"""The shipped model files: present, intact, loadable, small, and described by a model card."""

import json
from pathlib import Path

import pytest

from core.model import available_models, load_model, sha256_file
from core.registry import WEIGHTS_DIR

STEM = WEIGHTS_DIR / "chairs"


@pytest.fixture(scope="module")
def meta():
    return json.loads(STEM.with_suffix(".json").read_text())


def test_shipped_weights_are_intact_and_small(meta):
    weights = STEM.with_suffix(".safetensors")
    assert weights.stat().st_size < 50 * 2 ** 20
    assert sha256_file(weights) == meta["sha256"]
    assert "chairs" in available_models()
    card = Path(WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    assert meta["sha256"] in card  # the card names the exact file it describes


def test_shipped_model_loads_and_encodes(meta):
    import torch

    model = load_model("chairs", "cpu")
    s = model.cfg.encoder.image_size
    out = model.encoder(torch.ones(1, s, s, 3))
    assert out.coords.shape == (1, s, s, 3) and out.w.shape == (1, model.cfg.generator.w_dim)
    assert torch.isfinite(out.w).all()


def test_shipped_bars_hold_at_their_measured_values():
    import shipped_bars

    assert len(shipped_bars.ALL) >= 5
    for name, bar in shipped_bars.ALL.items():
        assert bar.holds(bar.measured), f"tests/shipped_bars.py: {name} measured {bar.measured} fails its bar {bar.bar}"
        assert bar.where.strip(), name
    assert shipped_bars.Bar(0.5, 0, True, "x").holds(0.5) and not shipped_bars.Bar(0.5, 0, False, "x").holds(0.6)
