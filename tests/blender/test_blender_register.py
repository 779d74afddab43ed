"""register()/unregister() round trips and the UI draw code (against a recording layout)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import bpy
import pytest
import sfi_helpers

CLASS_NAMES = ("SHAPE_FROM_IMAGE_OT_reconstruct", "SHAPE_FROM_IMAGE_OT_cancel",
               "SHAPE_FROM_IMAGE_OT_install_dependencies", "SHAPE_FROM_IMAGE_OT_refresh_dependencies",
               "SHAPE_FROM_IMAGE_PG_settings", "SHAPE_FROM_IMAGE_AP_preferences",
               "VIEW3D_PT_shape_from_image", "VIEW3D_PT_shape_from_image_options",
               "SHAPE_FROM_IMAGE_OT_bake_parts", "VIEW3D_PT_shape_from_image_parts",
               "SHAPE_FROM_IMAGE_PG_photo", "SHAPE_FROM_IMAGE_OT_add_photos", "SHAPE_FROM_IMAGE_OT_edit_photos",
               "SHAPE_FROM_IMAGE_OT_use_camera", "VIEW3D_PT_shape_from_image_cameras")


def _handler_counts() -> dict:
    return {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
            if isinstance(getattr(bpy.app.handlers, name), list)}


def _registered() -> list[str]:
    ext = sfi_helpers.import_extension()
    return sorted(cls.__name__ for cls in ext.CLASSES if cls.is_registered)


def test_register_unregister_twice_leaves_nothing(ext, tmp_path, monkeypatch):
    from shape_from_image.operators import deps

    deps_dir = tmp_path / "deps"
    deps_dir.mkdir()
    monkeypatch.setattr(deps, "deps_dir", lambda create=False: str(deps_dir))
    path_before = list(sys.path)
    handlers_before = _handler_counts()
    ext.unregister()
    assert _registered() == [] and not hasattr(bpy.types.Scene, "shape_from_image")
    assert not any(getattr(bpy.types, name, None) for name in CLASS_NAMES)
    with pytest.raises(KeyError):
        bpy.ops.shape_from_image.reconstruct.get_rna_type()
    ext.unregister()  # second unregister: nothing left to remove, no error
    path_clean = list(sys.path)

    for _ in range(2):
        ext.register()
        ext.register()  # registering twice is a no-op
        assert _registered() == sorted(CLASS_NAMES)
        assert isinstance(bpy.context.scene.shape_from_image.steps, int)
        assert sys.path.count(str(deps_dir)) == 1  # the deps folder is importable
        ext.unregister()
        assert _registered() == [] and not hasattr(bpy.types.Scene, "shape_from_image")
        assert sys.path == path_clean and _handler_counts() == handlers_before
    ext.register()  # leave it registered for the other tests
    assert [p for p in sys.path if p != str(deps_dir)] == [p for p in path_before if p != str(deps_dir)]


def test_import_is_cheap():
    """Registering the add-on imports no torch and only the core's torch-free modules (model registry, lens, colour)."""
    code = ("import sys; sys.path.insert(0, %r); import sfi_helpers; sfi_helpers.import_extension(); "
            "import shape_from_image as m; m.register(); "
            "print(sorted(k for k in sys.modules if k == 'torch' or k.startswith('shape_from_image.core')))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code % str(sfi_helpers.REPO / "tests" / "blender")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(eval(out.stdout.strip().splitlines()[-1]))  # a printed list of module names
    torch_free = {f"shape_from_image.core{m}" for m in ("", ".color", ".errors", ".registry", ".result", ".geometry", ".geometry.lens")}
    assert "torch" not in loaded and loaded <= torch_free, loaded - torch_free


def test_unregister_cancels_a_running_job(ext, runner, monkeypatch):
    core = sfi_helpers.FakeCore(steps=500, delay=0.01)
    monkeypatch.setattr(runner, "_call_core", core)
    job = runner.Job(runner.Request(image="/tmp/z.png")).start()
    runner.set_active(job)
    ext.unregister()
    try:
        assert job.cancelling and not job.thread.is_alive() and core.steps_run < 500
        assert runner.active_job() is None
    finally:
        ext.register()


# --- draw code against a recording layout ------------------------------------------------------

_draw = sfi_helpers.draw_panel


def test_panel_draws_button_with_every_setting(ext, runner, photo):
    from shape_from_image.panels import main

    settings = bpy.context.scene.shape_from_image
    settings.filepath = str(photo)
    settings.steps_preset = "CUSTOM"
    settings.steps_custom = 42
    settings.add_camera = False
    log = _draw(main.VIEW3D_PT_shape_from_image, bpy.context)
    ops = [entry for entry in log if entry[0] == "operator"]
    assert len(ops) == 1 and ops[0][1] == "shape_from_image.reconstruct"
    values = ops[0][2].values
    assert values["filepath"] == str(photo) and values["steps"] == 42 and values["add_camera"] is False
    assert values["model"] == "chairs" and values["device"] == "AUTO"
    assert ("prop", "steps_custom") in log
    options = _draw(main.VIEW3D_PT_shape_from_image_options, bpy.context)
    assert [e[1] for e in options if e[0] == "prop"] == ["add_camera", "set_scene_camera", "camera_background",
                                                          "set_render_resolution", "replace_previous"]
    settings.source = "IMAGE"
    settings.image = bpy.data.images.load(str(photo))
    ops = [e for e in _draw(main.VIEW3D_PT_shape_from_image, bpy.context) if e[0] == "operator"]
    assert ops[0][2].values["image_name"] == "sphere_chair.png"


def test_panel_shows_progress_and_cancel_while_running(ext, runner, photo):
    from shape_from_image.panels import main

    job = runner.Job(runner.Request(image=str(photo)))
    job._post_progress("inversion", 4, 10, 0.25)
    job.poll()
    runner.set_active(job)
    try:
        log = _draw(main.VIEW3D_PT_shape_from_image, bpy.context)
    finally:
        runner.set_active(None)
    assert ("progress", job.describe()) in log and "step 4/10" in job.describe()
    assert [e[1] for e in log if e[0] == "operator"] == ["shape_from_image.cancel"]


def test_panel_offers_install_when_torch_is_missing(ext, monkeypatch):
    from shape_from_image.operators import deps
    from shape_from_image.panels import main, preferences

    monkeypatch.setattr(deps, "status", lambda refresh=False: {**{m: True for m in deps.MODULES}, "torch": False})
    log = _draw(main.VIEW3D_PT_shape_from_image, bpy.context)
    ops = [e[1] for e in log if e[0] == "operator"]
    assert "shape_from_image.install_dependencies" in ops and "shape_from_image.reconstruct" not in ops
    prefs = types.SimpleNamespace(device="AUTO", default_model="chairs", models_dir="", torch_flavor="CUDA",
                                  bl_rna=preferences.SHAPE_FROM_IMAGE_AP_preferences.bl_rna)
    log = _draw(preferences.SHAPE_FROM_IMAGE_AP_preferences, bpy.context, **vars(prefs))
    install = [e for e in log if e[0] == "operator" and e[1] == "shape_from_image.install_dependencies"]
    assert install and install[0][2].values["flavor"] == "CUDA"
    assert ("label", "torch") in log


def test_install_refuses_offline_and_prints_the_command(ext, monkeypatch, tmp_path):
    from shape_from_image.operators import deps

    monkeypatch.setattr(deps, "deps_dir", lambda create=False: str(tmp_path / "deps"))
    assert not bpy.app.online_access  # the bpy module starts offline
    with pytest.raises(RuntimeError, match=r"Online access is disabled.*-m pip install --upgrade --no-input "
                                           r"--target .*deps --index-url https://download.pytorch.org/whl/cpu "
                                           r"torch==2\.13\.0"):
        bpy.ops.shape_from_image.install_dependencies(flavor="CPU")


def test_install_runs_pip_commands_and_reports_failure(ext, monkeypatch, tmp_path):
    """The synchronous install path runs each command, logs it, and on failure says what to run."""
    from shape_from_image.operators import deps

    monkeypatch.setattr(deps, "deps_dir", lambda create=False: str(tmp_path / "deps"))
    monkeypatch.setattr(deps, "install_commands", lambda flavor, target=None, python=None: [
        [sys.executable, "-c", "print('step one ran')"], [sys.executable, "-c", "import sys; sys.exit(3)"]])
    op = deps.SHAPE_FROM_IMAGE_OT_install_dependencies
    reports: list = []
    fake = types.SimpleNamespace(flavor="CPU", report=lambda kind, msg: reports.append((kind, msg)),
                                 _refuse_offline=lambda commands: False)
    fake._fail = lambda message: op._fail(fake, message)
    fake._succeed = lambda: op._succeed(fake)
    assert op.execute(fake, bpy.context) == {"CANCELLED"}
    kind, message = reports[0]
    assert kind == {"ERROR"} and "pip exited with status 3" in message and "Install by hand with:" in message
    assert "step one ran" in Path(deps.log_path()).read_text()


def test_requirements_match_requirements_txt(ext):
    from shape_from_image.operators import deps

    lines = [line.split("#")[0].strip() for line in (sfi_helpers.REPO / "requirements.txt").read_text().splitlines()]
    wanted = {line for line in lines if line}
    assert wanted == set(deps.REQUIREMENTS.values()) | {f"torch=={deps.TORCH_VERSION}"}
