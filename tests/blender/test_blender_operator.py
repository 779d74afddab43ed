"""The operator in background mode (synchronous), the worker thread, cancel, errors and undo."""

from __future__ import annotations

import threading
import time

import bpy
import numpy as np
import pytest
import sfi_helpers
from sfi_helpers import FakeCore, snapshot


def test_operator_builds_mesh_camera_and_reports(fake_core, runner, photo):
    result = bpy.ops.shape_from_image.reconstruct(filepath=str(photo), steps=3, model="chairs")
    assert result == {"FINISHED"}
    snap = snapshot()
    assert snap["objects"] == ["sphere_chair", "sphere_chair Camera"]
    assert snap["scene_camera"] == "sphere_chair Camera" and snap["resolution"] == (160, 120)
    obj = bpy.data.objects["sphere_chair"]
    assert obj.data.color_attributes.active_color_name == "Col"
    assert obj.data.materials[0].node_tree.nodes.get("Color Attribute") is not None
    request = fake_core.calls[0]
    assert (request.image, request.options.steps, request.options.model, request.options.device) == \
        (str(photo), 3, "chairs", "auto")
    status = runner.last_status()
    assert status.ok and "4514 vertices" in status.text
    assert runner.active_job() is None


def test_operator_options_reach_the_core_and_the_scene(fake_core, photo, tmp_path):
    mask = sfi_helpers.write_photo(tmp_path / "mask.png")
    bpy.ops.shape_from_image.reconstruct(filepath=str(photo), mask_path=str(mask), steps=0, device="CPU",
                                         mesh_resolution=64, seed=7, add_camera=False)
    request = fake_core.calls[0]
    assert (request.mask, request.options.steps, request.options.device, request.options.mesh_resolution,
            request.options.seed) == \
        (str(mask), 0, "cpu", 64, 7)
    assert request.options.focal_mm is None  # 0 in the UI: the photo's EXIF value, else the core's default
    assert len(bpy.data.cameras) == 0 and len(bpy.data.objects) == 1
    bpy.ops.shape_from_image.reconstruct(filepath=str(photo), steps=0, focal_mm=28.0)
    assert fake_core.calls[1].options.focal_mm == 28.0


def test_image_datablock_source(fake_core, photo):
    image = bpy.data.images.load(str(photo))
    image.pack()
    assert bpy.ops.shape_from_image.reconstruct(image_name=image.name) == {"FINISHED"}
    request = fake_core.calls[0]
    assert request.image != str(photo) and request.image.endswith("sphere_chair.png")
    packed = request.in_memory[0]  # the packed file's bytes, handed over in memory (no temporary file)
    assert packed.name == request.image and bytes(packed.pixels) == photo.read_bytes()
    cam = bpy.data.objects["sphere_chair Camera"]
    assert cam.data.background_images[0].image == image  # the user's datablock, not a copy
    generated = bpy.data.images.new("painted", 32, 16)
    assert bpy.ops.shape_from_image.reconstruct(image_name=generated.name) == {"FINISHED"}
    assert fake_core.calls[1].image.endswith("painted.png") and generated.source == "GENERATED"
    pixels = fake_core.calls[1].in_memory[0].pixels
    assert pixels.shape == (16, 32, 4) and pixels.dtype == np.float32 and abs(float(pixels[0, 0, 3]) - 1.0) < 1e-6
    assert "painted" in bpy.data.objects


def test_exif_rotated_photo_gets_an_upright_backdrop(fake_core, photo, tmp_path):
    """Blender's loader ignores the EXIF orientation; the backdrop must show the photo as the camera sees it."""
    from PIL import Image

    upright = Image.open(photo).convert("RGB")  # 160 x 120, as the (fake) core's camera
    rotated = tmp_path / "turned_chair.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter; viewers (and the core) turn it back clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    assert Image.open(rotated).size == (120, 160)
    assert bpy.ops.shape_from_image.reconstruct(filepath=str(rotated)) == {"FINISHED"}
    backdrop = bpy.data.objects["turned_chair Camera"].data.background_images[0].image
    assert tuple(backdrop.size) == (160, 120)
    assert backdrop.packed_file is not None and not backdrop.filepath  # the core's pixels, no copy on disk
    pixels = np.empty(160 * 120 * 4, np.float32)
    backdrop.pixels.foreach_get(pixels)
    shown = pixels.reshape(120, 160, 4)[::-1, :, :3]
    expected = np.asarray(upright, np.float32) / 255.0
    assert np.abs(shown - expected).mean() < 0.03
    # a format outside PNG, JPEG, WebP, TIFF and BMP is refused by its content, the scene unchanged
    icon = tmp_path / "icon_chair.ico"
    upright.resize((64, 48)).save(icon, sizes=[(64, 48)])
    before = snapshot()
    with pytest.raises(RuntimeError, match="icon_chair.ico: the file holds icon \\(ICO\\) data"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(icon))
    assert snapshot() == before


def test_missing_file_is_reported_and_nothing_changes(fake_core, tmp_path):
    before = snapshot()
    with pytest.raises(RuntimeError, match="file not found"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(tmp_path / "nope.png"))
    with pytest.raises(RuntimeError, match="No photo chosen"):
        bpy.ops.shape_from_image.reconstruct()
    assert snapshot() == before and fake_core.calls == []


def test_core_error_is_reported_and_nothing_changes(runner, monkeypatch, photo):
    message = f"{photo}: no chair found in the photo; use a photo with one chair or give a mask"
    monkeypatch.setattr(runner, "_call_core", FakeCore(result_fn=lambda r: sfi_helpers.failed_result(
        r.image, message, kind="refused")))
    before = snapshot()
    with pytest.raises(RuntimeError, match="no chair found"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo))
    assert snapshot() == before
    assert not runner.last_status().ok and runner.last_outcome().kind == "refused"


def test_outcome_kind_is_the_results_not_its_text(runner, monkeypatch, photo):
    """A result cancelled by the core says so by its kind; a failure whose text says 'cancelled' is a failure."""
    monkeypatch.setattr(runner, "_call_core", FakeCore(result_fn=lambda r: sfi_helpers.failed_result(
        r.image, f"{r.image}: stopped", kind="cancelled")))
    assert bpy.ops.shape_from_image.reconstruct(filepath=str(photo)) == {"CANCELLED"}
    assert runner.last_outcome().kind == "cancelled"
    monkeypatch.setattr(runner, "_call_core", FakeCore(result_fn=lambda r: sfi_helpers.failed_result(
        r.image, f"{r.image}: cancelled nothing", kind="failed")))
    with pytest.raises(RuntimeError, match="cancelled nothing"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo))
    assert runner.last_outcome().kind == "failed"


def test_core_exception_is_reported_not_raised(runner, monkeypatch, photo):
    def explode(request, progress, cancel):
        raise ValueError("boom inside the core")

    monkeypatch.setattr(runner, "_call_core", explode)
    before = snapshot()
    with pytest.raises(RuntimeError, match="unexpected ValueError: boom inside the core"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo))
    assert snapshot() == before and runner.active_job() is None


def test_invalid_result_is_reported_and_nothing_changes(runner, monkeypatch, photo):
    def corrupt(request):
        result = sfi_helpers.fake_result(request.image)
        result.mesh.faces = result.mesh.faces + 100000
        return result

    monkeypatch.setattr(runner, "_call_core", FakeCore(result_fn=corrupt))
    before = snapshot()
    with pytest.raises(RuntimeError, match="sphere_chair.png: the mesh faces index missing vertices"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo))
    assert snapshot() == before


def test_missing_torch_tells_to_install(fake_core, monkeypatch, photo):
    from shape_from_image.operators import deps

    monkeypatch.setattr(deps, "missing", lambda refresh=False: ["torch"])
    with pytest.raises(RuntimeError, match="press Install dependencies"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo))
    assert fake_core.calls == [] and len(bpy.data.objects) == 0


def test_missing_module_inside_the_core_is_reported(runner, monkeypatch, photo):
    """The real _call_core: importing core.api fails on torch -> 'press Install dependencies'."""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "shape_from_image.core.api":
                raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.delitem(sys.modules, "shape_from_image.core.api", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoTorch(), *sys.meta_path])
    before = snapshot()
    with pytest.raises(RuntimeError, match="press Install dependencies .*missing Python module 'torch'"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo))
    assert snapshot() == before


def test_cancel_during_the_run_leaves_the_scene_unchanged(runner, monkeypatch, photo):
    core = FakeCore(steps=10, on_step=lambda step: step == 2 and bpy.ops.shape_from_image.cancel())
    monkeypatch.setattr(runner, "_call_core", core)
    bpy.ops.shape_from_image.reconstruct(filepath=str(photo))  # an earlier result stays
    core.steps_run = 0
    before = snapshot()
    assert bpy.ops.shape_from_image.reconstruct(filepath=str(photo)) == {"CANCELLED"}
    assert core.steps_run == 2  # stopped at the next step
    assert snapshot() == before
    assert runner.last_outcome().kind == "cancelled" and "cancelled" in runner.last_status().text


def test_worker_thread_reports_progress_and_stops_within_one_step(runner, monkeypatch):
    core = FakeCore(steps=200, delay=0.02)
    monkeypatch.setattr(runner, "_call_core", core)
    job = runner.Job(runner.Request(image="/tmp/x.png")).start()
    assert job.thread is not None and job.thread is not threading.current_thread()
    deadline = time.monotonic() + 5
    while (job.latest is None or job.latest.step < 3) and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.01)
    assert job.latest.stage == "inversion" and "step" in job.describe()
    job.cancel()
    at_cancel = core.steps_run
    outcome = job.wait(timeout=5)
    assert outcome is not None and outcome.kind == "cancelled"
    assert core.steps_run <= at_cancel + 1 < 200
    assert not job.thread.is_alive()


def test_worker_thread_success(runner, monkeypatch):
    monkeypatch.setattr(runner, "_call_core", FakeCore(steps=5, delay=0.005))
    job = runner.Job(runner.Request(image="/tmp/y.png")).start()
    outcome = job.wait(timeout=5)
    assert outcome.kind == "ok" and outcome.result.mesh is not None and job.latest.step == 5


def test_one_job_at_a_time(fake_core, runner, photo):
    runner.set_active(runner.Job(runner.Request(image=str(photo))))
    try:
        assert not bpy.ops.shape_from_image.reconstruct.poll()
        assert bpy.ops.shape_from_image.cancel.poll()
    finally:
        runner.set_active(None)
    assert bpy.ops.shape_from_image.reconstruct.poll() and not bpy.ops.shape_from_image.cancel.poll()


def test_undo_removes_the_whole_result(fake_core, photo):
    bpy.ops.ed.undo_push(message="before reconstruct")  # background mode: creates the undo stack
    before = snapshot()
    # the 2nd positional argument makes a Python-called operator push its undo step (as the UI does)
    assert bpy.ops.shape_from_image.reconstruct("EXEC_DEFAULT", True, filepath=str(photo)) == {"FINISHED"}
    after = snapshot()
    assert after["objects"] == ["sphere_chair", "sphere_chair Camera"]
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert snapshot() == before  # one undo step removes mesh, camera, collections, material, image
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert snapshot() == after


# --- the command line's contract (core.validate) and the fuzz corpus ------------------------------------------


@pytest.mark.parametrize("name, value, check", [
    ("steps", -1, "check_steps"), ("steps", 5000, "check_steps"),
    ("mesh_resolution", 100000, "check_mesh_resolution"), ("mesh_resolution", 8, "check_mesh_resolution"),
    ("focal_mm", float("nan"), "check_focal_mm"), ("focal_mm", -5.0, "check_focal_mm"),
    ("focal_mm", 2.0, "check_focal_mm"), ("focal_mm", 1e6, "check_focal_mm"), ("seed", -1, "check_seed"),
    ("height_m", -1.0, "check_height_m"), ("height_m", 1e6, "check_height_m"), ("height_m", float("nan"), "check_height_m"),
    ("texture_size", 5000, "check_texture_size"), ("faces", 10, "check_faces"),
])
def test_operator_refuses_out_of_range_values_with_the_command_lines_text(fake_core, photo, name, value, check):
    """Never clamped: a script's value out of range is refused with the text of core.validate."""
    from shape_from_image.core import validate

    with pytest.raises(validate.ReconstructionError) as expected:
        getattr(validate, check)(value)
    before = snapshot()
    with pytest.raises(RuntimeError) as info:
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), **{name: value})
    assert str(expected.value) in str(info.value)
    assert snapshot() == before and fake_core.calls == []


def test_operator_refuses_an_infinite_focal_length(fake_core, photo):
    """Blender stores the property as a 32-bit float (inf becomes 3.4e38): refused all the same."""
    with pytest.raises(RuntimeError, match="focal length must be a 35 mm-equivalent value in mm between 4 and 2000"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), focal_mm=float("inf"))
    assert fake_core.calls == []


def test_operator_refuses_a_folder_or_a_pipe_without_opening_it(fake_core, photo, tmp_path):
    import os

    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    before = snapshot()
    with pytest.raises(RuntimeError, match="folder.png: is a folder \\(directory\\), not an image file"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(tmp_path / "folder.png"))
    with pytest.raises(RuntimeError, match="pipe.png: is a named pipe \\(FIFO\\)"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(tmp_path / "pipe.png"))
    with pytest.raises(RuntimeError, match="nope.png: mask file not found"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), mask_path=str(tmp_path / "nope.png"))
    with pytest.raises(RuntimeError, match="pipe.png: is a named pipe \\(FIFO\\), not a regular mask file"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), mask_path=str(tmp_path / "pipe.png"))
    assert snapshot() == before and fake_core.calls == []


def test_operator_fuzz_subset_with_the_real_core_leaves_the_scene_unchanged(ext, runner, fast_model, tmp_path):
    """Every bad input of the fuzz corpus that is not random noise, through the operator and the real core:
    an error naming the file with the reason the command line gives, and no change to the scene; then a
    good input of the corpus builds the scene."""
    fuzz = sfi_helpers.fuzz_module()
    corpus = fuzz.make_corpus(tmp_path / "corpus")
    cases = [c for c in corpus if c.expect == "bad" and "random_" not in c.path and "magic_" not in c.path]
    assert len(cases) >= 60
    before = snapshot()
    for case in cases:
        with pytest.raises(RuntimeError) as info:
            bpy.ops.shape_from_image.reconstruct(filepath=case.path, model=str(fast_model), steps=0,
                                                 mesh_resolution=16, device="CPU")
        message = str(info.value).strip().removeprefix("Error: ").strip()
        fuzz.check_error_line(case, f"error: {message}")
        assert snapshot() == before, case
    good = next(c for c in corpus if c.expect == "good")
    assert bpy.ops.shape_from_image.reconstruct(filepath=good.path, model=str(fast_model), steps=0,
                                                mesh_resolution=16, device="CPU") == {"FINISHED"}
    assert snapshot()["objects"] == ["good", "good Camera"]


def test_cancel_during_mesh_extraction_adds_nothing_and_writes_nothing(ext, runner, monkeypatch, fast_model,
                                                                       photo, tmp_path):
    """The user cancels while marching cubes runs: the core stops at its next chunk of points, the operator
    adds nothing and no file is written."""
    real_call, stages = runner._call_core, []

    def call_core(request, progress, cancel):
        def report(stage, step, total, loss=None):
            stages.append(stage)
            progress(stage, step, total, loss)
            if stage == "mesh":
                runner.cancel_active()  # as the Cancel button does, while the mesh is extracted

        return real_call(request, report, cancel)

    monkeypatch.setattr(runner, "_call_core", call_core)
    before = snapshot()
    status = bpy.ops.shape_from_image.reconstruct(filepath=str(photo), model=str(fast_model), steps=0,
                                                  mesh_resolution=64, device="CPU", out_dir=str(tmp_path / "out"))
    assert status == {"CANCELLED"} and stages[-1] == "mesh"
    outcome = runner.last_outcome()
    assert outcome.kind == "cancelled" and "cancelled by the user" in outcome.message
    assert outcome.result is None or outcome.result.mesh is None  # stopped inside the mesh stage
    assert snapshot() == before
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_the_height_texture_and_face_budget_reach_the_core(fake_core, photo):
    """The panel's Height, Texture Size and Face Budget: 0 means the model's size / every face."""
    settings = bpy.context.scene.shape_from_image
    assert settings.height_m == 0.0 and settings.texture_size == 1024 and settings.faces == 0
    assert bpy.ops.shape_from_image.reconstruct(filepath=str(photo), height_m=1.25, texture_size=512,
                                                faces=5000) == {"FINISHED"}
    assert bpy.ops.shape_from_image.reconstruct(filepath=str(photo)) == {"FINISHED"}
    given, default = fake_core.calls
    assert (given.options.height_m, given.options.texture_size, given.options.faces) == (1.25, 512, 5000)
    assert (default.options.height_m, default.options.texture_size, default.options.faces) == (None, 1024, None)
