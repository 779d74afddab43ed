"""Fixtures for tests that run the extension inside Blender (the ``bpy`` module).

The repository root is imported as the package ``shape_from_image`` (what Blender does with an
installed extension) and registered once per session; every test starts from an empty factory
scene. Tests that run the shipped model are marked ``real_model``: ``pytest tests/blender -m real_model``
runs only them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if os.environ.get("SFI_REQUIRE_BPY"):  # `make test`: this tier must run, on this bpy version; never skipped
    import bpy

    if bpy.app.version_string.split()[0] != os.environ["SFI_REQUIRE_BPY"]:
        raise RuntimeError(f"the Blender tests need bpy {os.environ['SFI_REQUIRE_BPY']}, this is "
                           f"{bpy.app.version_string}")
bpy = pytest.importorskip("bpy", reason="the bpy module (pip install bpy==5.0.1) is needed for Blender tests")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under --import-mode=importlib
import sfi_helpers


def pytest_configure(config):
    config.addinivalue_line("markers", "real_model: runs the shipped model (weights/chairs.safetensors)")


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config):
    """The bpy 4.2 module crashes while the process exits once the extension was registered (a Blender
    bug, not the extension's): end pytest with its own exit status before that happens."""
    if tuple(bpy.app.version) < (4, 3, 0) and _EXIT_STATUS in config.stash:
        sfi_helpers.exit_process(config.stash[_EXIT_STATUS])


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def ext():
    """The extension, imported as ``shape_from_image`` and registered once per session."""
    module = sfi_helpers.import_extension()
    module.register()
    yield module
    # a model warm-up the panel started must end before the interpreter does (torch aborts the process
    # when it exits under a running daemon thread)
    runner = sys.modules.get(f"{sfi_helpers.PACKAGE}.operators.runner")
    for thread in list(getattr(runner, "_WARMING", {}).values()):
        thread.join(timeout=600)
    module.unregister()


@pytest.fixture(autouse=True)
def fresh_scene():
    """Every test starts from an empty factory scene and leaves no running job behind."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield
    runner = sys.modules.get(f"{sfi_helpers.PACKAGE}.operators.runner")
    if runner is not None:
        runner.shutdown(stop_worker=False)  # the worker process (and its loaded model) serves the next test


@pytest.fixture
def runner(ext):
    from shape_from_image.operators import runner as module

    return module


@pytest.fixture
def fake_core(runner, monkeypatch):
    """Install a FakeCore in place of the real core; returns it for inspection."""
    core = sfi_helpers.FakeCore()
    monkeypatch.setattr(runner, "_call_core", core)
    return core


@pytest.fixture
def library_core(ext, runner, monkeypatch):
    """A FakeCore behind the core's public functions (``core.reconstruct``, ``core.joint.reconstruct_object``),
    which the batch script calls as a library user does; each call is recorded as a runner.Request."""
    import importlib

    core = sfi_helpers.FakeCore()
    never = lambda: False  # noqa: E731

    def reconstruct(images, options=None, masks=None, progress=None, cancel=None):
        return core(runner.Request(image=images[0], options=options), progress or (lambda *a: None), cancel or never)

    def reconstruct_object(images, options=None, masks=None, progress=None, cancel=None):
        request = runner.Request(image=images[0], images=tuple(images), joint=True, options=options)
        return core(request, progress or (lambda *a: None), cancel or never)[0]

    monkeypatch.setattr(importlib.import_module("shape_from_image.core"), "reconstruct", reconstruct)
    monkeypatch.setattr(importlib.import_module("shape_from_image.core.joint"), "reconstruct_object",
                        reconstruct_object)
    return core


@pytest.fixture
def photo(tmp_path):
    """A synthetic RGBA 'photo' of the default scenario's sphere."""
    return sfi_helpers.write_photo(tmp_path / "sphere_chair.png")


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory):
    """A tiny random model (one pose hypothesis, 16^3 mesh) saved by the extension's own core."""
    import torch

    sfi_helpers.import_extension()
    from shape_from_image.core.config import tiny_config
    from shape_from_image.core.model import ReconstructionModel, save_model

    cfg = tiny_config()
    cfg.pose.yaw_hypotheses = (0.0,)
    cfg.mesh.resolution = 16
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ReconstructionModel(cfg)
    return save_model(model, tmp_path_factory.mktemp("models") / "fast", half=False)
