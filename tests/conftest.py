import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):  # the package, and tests/shipped_bars.py for tests/blender too
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

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


# The Blender tier (tests/blender) skips as a whole without the bpy module. A run that asks for it
# (``pytest tests``, ``make test``, ``pytest tests/blender``; no -k/-m filter) fails unless one of its
# tests passed, so the tier cannot vanish unnoticed. SFI_SKIP_BLENDER=1 runs without it on purpose.
BLENDER_DIR = ROOT / "tests" / "blender"
_blender = {"required": False, "passed": 0}


def _asks_for_blender_tier(config) -> bool:
    option = config.option
    if option.keyword or option.markexpr or option.collectonly or os.environ.get("SFI_SKIP_BLENDER"):
        return False
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        path = (base / arg.split("::")[0]).resolve()
        if path.is_dir() and (path == BLENDER_DIR or path in BLENDER_DIR.parents):
            return True
    return False


def pytest_configure(config):
    _blender["required"] = _asks_for_blender_tier(config)
    _blender["passed"] = 0


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and BLENDER_DIR in Path(str(report.fspath)).resolve().parents:
        _blender["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    if _blender["required"] and _blender["passed"] == 0 and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _blender["required"] and _blender["passed"] == 0:
        terminalreporter.write_line("FAILED: the Blender tier (tests/blender) did not run: no test in it passed. "
                                    "Install the bpy module (pip install bpy==5.0.1) or set SFI_SKIP_BLENDER=1.",
                                    red=True)
