"""The operator against the real core (torch): an untrained tiny model and the shipped one."""

from __future__ import annotations

import time

import bpy
import numpy as np
import pytest
import sfi_helpers


@pytest.fixture
def real_core(ext):
    """The extension registered with its real core (torch is a test requirement)."""


def test_real_core_unknown_model_is_reported(real_core, runner, photo):
    before = sfi_helpers.snapshot()
    with pytest.raises(RuntimeError, match="unknown model 'no_such_model'"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), model="no_such_model", steps=0)
    assert sfi_helpers.snapshot() == before
    assert runner.last_outcome().kind == "refused"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained tiny model saved like a shipped one: exercises the real pipeline end to end."""
    import torch

    sfi_helpers.import_extension()
    from shape_from_image.core.config import tiny_config
    from shape_from_image.core.model import ReconstructionModel, save_model

    with torch.random.fork_rng():  # leave the global RNG of other tests alone
        torch.manual_seed(0)
        model = ReconstructionModel(tiny_config())
    return save_model(model, tmp_path_factory.mktemp("models") / "tiny")


def test_real_pipeline_with_a_tiny_model_builds_the_scene(tiny_model, runner, photo):
    assert bpy.ops.shape_from_image.reconstruct(filepath=str(photo), model=str(tiny_model), steps=0,
                                                mesh_resolution=32, device="CPU") == {"FINISHED"}
    result = runner.last_outcome().result
    assert type(result.mesh).__module__ == "shape_from_image.core.mesh"
    assert (result.camera.width, result.camera.height) == (160, 120) and result.camera.focal_px > 0
    obj = bpy.data.objects["sphere_chair"]
    assert len(obj.data.vertices) == len(result.mesh.vertices) > 0
    assert 0 < len(obj.data.polygons) <= len(result.mesh.faces)
    assert obj.data.color_attributes.active_color_name == "Col"
    cam = bpy.context.scene.camera
    np.testing.assert_allclose(np.asarray(cam.matrix_world), result.camera.cam2world, atol=1e-5)
    assert (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y) == (160, 120)


@pytest.fixture(scope="module")
def paper_model(tmp_path_factory):
    """The committed reduced-width reference checkpoints (core.paper parity fixture), imported."""
    sfi_helpers.import_extension()
    from shape_from_image.core.paper.convert import ImportOptions, import_model

    fixtures = sfi_helpers.REPO / "tests" / "fixtures" / "paper"
    options = ImportOptions("p3d_car", encoder_heads=(1, 2, 3, 4), resolution=64, samples=500)
    return import_model(fixtures / "generator.pt", fixtures / "encoder.pt", "paper_tiny",
                        tmp_path_factory.mktemp("models"), options)


def test_real_pipeline_with_an_imported_paper_model_builds_the_scene(paper_model, runner, photo):
    """The paper's networks through the operator: a mesh with plain vertex colours and a placed camera."""
    assert bpy.ops.shape_from_image.reconstruct(filepath=str(photo), model=str(paper_model), steps=0,
                                                mesh_resolution=32, device="CPU") == {"FINISHED"}
    result = runner.last_outcome().result
    assert result.mesh.parts is None
    obj = bpy.data.objects["sphere_chair"]
    assert len(obj.data.vertices) == len(result.mesh.vertices) > 0
    assert obj.data.color_attributes.active_color_name == "Col"
    np.testing.assert_allclose(np.asarray(bpy.context.scene.camera.matrix_world), result.camera.cam2world,
                               atol=1e-5)


@pytest.mark.parametrize("where", ["process", "thread"])
def test_real_pipeline_cancel_in_the_worker(tiny_model, runner, photo, monkeypatch, where):
    monkeypatch.setattr(runner, "WORKER", where)
    job = runner.Job(runner.Request(image=str(photo), options=runner.ReconstructOptions(
        model=str(tiny_model), steps=50, device="cpu", mesh_resolution=32))).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job.poll()
        if job.latest is not None and job.latest.stage == "inversion":
            break
        assert job.outcome is None, job.outcome.message
        time.sleep(0.01)
    job.cancel()
    at_cancel = job.latest.step
    outcome = job.wait(timeout=60)
    assert outcome is not None and outcome.kind == "cancelled", outcome
    assert "cancelled" in outcome.message and job.latest.step <= at_cancel + 1 < 50


def test_batch_with_the_real_core_writes_the_cores_files(tiny_model, tmp_path, photo):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("batch_reconstruct",
                                                  sfi_helpers.REPO / "scripts" / "batch_reconstruct.py")
    batch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batch)
    out = tmp_path / "out"
    code = batch.main(["x", "--input", str(photo), "--out", str(out), "--model", str(tiny_model), "--steps", "0",
                       "--mesh-resolution", "32", "--device", "cpu"])
    assert code == 0
    data = json.loads((out / "sphere_chair.json").read_text())
    assert data["ok"] and data["mesh"]["path"] == "sphere_chair.glb" and data["camera"]["width"] == 160
    assert set(data["timings_s"]) >= {"load", "encoder", "pose", "mesh", "total"}
    assert (out / "sphere_chair.glb").read_bytes()[:4] == b"glTF" and (out / "sphere_chair.blend").is_file()


@pytest.mark.real_model
def test_real_model_cancel_stops_within_one_step(real_core, runner):
    photos = sorted((sfi_helpers.REPO / "examples").glob("*.png"))
    assert photos, "the example photos are part of the repository"
    job = runner.Job(runner.Request(image=str(photos[0]), options=runner.ReconstructOptions(
        steps=200, device="cpu", mesh_resolution=64))).start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job.poll()
        if job.latest is not None and job.latest.stage == "inversion" and job.latest.step >= 2:
            break
        assert job.outcome is None, job.outcome
        time.sleep(0.02)
    job.cancel()
    at_cancel = job.latest.step
    outcome = job.wait(timeout=120)
    assert outcome is not None and outcome.kind == "cancelled", outcome
    assert job.latest.step <= at_cancel + 1 < 200


def test_background_warm_up_loads_the_model_once_and_ignores_a_bad_one(tiny_model, runner, monkeypatch):
    """The thread fallback's warm-up, in this process (the worker process's: test_blender_worker_process)."""
    from shape_from_image.core.model import _load_cached

    monkeypatch.setattr(runner, "WORKER", "thread")
    _load_cached.cache_clear()
    assert runner.warm_up_in_background(str(tiny_model), "cpu")
    assert not runner.warm_up_in_background(str(tiny_model), "cpu")  # once per model and device
    thread = runner.warming_thread(str(tiny_model), "cpu")
    thread.join(120)
    assert not thread.is_alive() and _load_cached.cache_info().currsize == 1
    assert runner.warm_up_in_background("no_such_model", "cpu")  # a problem stays in the thread
    runner.warming_thread("no_such_model", "cpu").join(60)
