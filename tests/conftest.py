import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(2)
# the tests see the shipped models and their own, not models the developer imported into the user's folder
os.environ["SHAPE_FROM_IMAGE_MODELS"] = str(ROOT / "tests" / "no-user-models")


@pytest.fixture
def tiny_model_dir(tmp_path_factory):
    """A folder holding a randomly initialised tiny model named 'tiny' (no training needed)."""
    from core.config import tiny_config
    from core.model import ReconstructionModel, save_model

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(ReconstructionModel(tiny_config()), d / "tiny", {"note": "random test model"}, half=False)
    return d
