"""register()/unregister() round trips and the UI draw code (against a recording layout)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import bpy
import pytest
import sfi_helpers

CLASS_NAMES = ("SHAPE_FROM_IMAGE_OT_reconstruct", "SHAPE_FROM_IMAGE_OT_cancel",
               "SHAPE_FROM_IMAGE_OT_install_dependencies", "SHAPE_FROM_IMAGE_OT_refresh_dependencies",
               "SHAPE_FROM_IMAGE_OT_copy_text",
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

    user_deps = deps.deps_dir()  # on sys.path when it exists on this machine
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
    assert [p for p in sys.path if p not in (str(deps_dir), user_deps)] == [
        p for p in path_before if p not in (str(deps_dir), user_deps)]


def test_import_is_cheap():
    """Registering the add-on imports no torch and only the core's torch-free modules (model registry, lens, colour)."""
    code = ("import sys; sys.path.insert(0, %r); import sfi_helpers; sfi_helpers.import_extension(); "
            "import shape_from_image as m; m.register(); "
            "print(sorted(k for k in sys.modules if k == 'torch' or k.startswith('shape_from_image.core'))); "
            "sfi_helpers.exit_process()")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code % str(sfi_helpers.REPO / "tests" / "blender")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(eval(out.stdout.strip().splitlines()[-1]))  # a printed list of module names
    torch_free = {f"shape_from_image.core{m}" for m in ("", ".color", ".config", ".errors", ".registry", ".result",
                                                        ".geometry", ".geometry.lens")}
    assert "torch" not in loaded and loaded <= torch_free, loaded - torch_free


_NO_DEPS = """
import sys
sys.path.insert(0, %r)
import bpy, sfi_helpers  # the test helpers use NumPy; the extension must not
class Blocker:  # what a Blender without NumPy/PyTorch sees (Debian's blender on the system Python)
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("numpy", "torch"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
for name in [k for k in sys.modules if k.partition(".")[0] in ("numpy", "torch")]:
    del sys.modules[name]
sys.meta_path.insert(0, Blocker())
ext = sfi_helpers.import_extension()
ext.register()
from shape_from_image.operators import deps
from shape_from_image.panels import main
log = sfi_helpers.draw_panel(main.VIEW3D_PT_shape_from_image, bpy.context)
print([e[1] for e in log if e[0] == "operator"])
print(deps.missing())
print(sorted(k for k in sys.modules if k.partition(".")[0] in ("numpy", "torch")))
ext.unregister()
sfi_helpers.exit_process()
"""


def test_registers_without_numpy_and_torch_and_offers_install():
    """With numpy and torch unimportable, the extension registers and its panel offers Install Dependencies."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _NO_DEPS % str(sfi_helpers.REPO / "tests" / "blender")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ops, gone, loaded = (eval(line) for line in out.stdout.strip().splitlines()[-3:])  # printed lists
    assert "shape_from_image.install_dependencies" in ops and "shape_from_image.reconstruct" not in ops
    assert "numpy" in gone and "torch" in gone and loaded == []


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


def test_install_refuses_offline_and_prints_the_command(ext, monkeypatch, tmp_path, capsys):
    from shape_from_image.operators import deps

    monkeypatch.setattr(deps, "deps_dir", lambda create=False: str(tmp_path / "deps"))
    assert not bpy.app.online_access  # the bpy module starts offline
    with pytest.raises(RuntimeError, match=r"Online access is off \(Preferences > System > Network\)\. Allow it "
                                           r"and try again, or install by hand: Copy Install Commands"):
        bpy.ops.shape_from_image.install_dependencies(flavor="CPU")
    printed = capsys.readouterr().out
    assert re.search(r"-m pip install --upgrade .* --target \S*deps --index-url https://download.pytorch.org/whl/cpu "
                     r"torch==2\.13\.0 \|\| .* torch==2\.13\.0; \} && ", printed), printed


def _plan(codes: dict, **kwargs):
    """Drive an Installer with a fake runner: ``codes`` maps a word of a command to its exit status
    (a list: one per call; 0 for other commands); returns (installer, the commands it ran)."""
    from shape_from_image.operators import deps

    kwargs = {"flavor": "CPU", "target": "/t/deps", "python": "/usr/bin/python3.13", "wheels": [],
              "system": "Linux", "python_version": (3, 13), **kwargs}
    installer, ran = deps.Installer(**kwargs), []
    steps = installer.run()
    try:
        cmd = next(steps)
        while True:
            ran.append(cmd)
            code = next((code for word, code in codes.items() if word in " ".join(cmd)), 0)
            cmd = steps.send(code.pop(0) if isinstance(code, list) else code)
    except StopIteration:
        pass
    return installer, ran


def test_installer_uses_the_pytorch_index_and_wheels_for_blenders_python(ext):
    installer, ran = _plan({})
    assert installer.error is None and installer.notes == [] and len(ran) == 3
    assert ran[0] == ["/usr/bin/python3.13", "-m", "pip", "--version"]
    pip = ["/usr/bin/python3.13", "-m", "pip", "install", "--upgrade", "--no-input", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", "3.13", "--target", "/t/deps"]
    assert ran[1] == [*pip, "--index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"]
    assert ran[2][:len(pip)] == pip and "numpy>=1.26,<3" in ran[2] and "--index-url" not in ran[2]
    assert _plan({}, flavor="CUDA")[1][1][-2] == "https://download.pytorch.org/whl/cu128"


def test_installer_falls_back_to_pypi_and_says_how_large(ext):
    installer, ran = _plan({"--index-url": 1})
    assert installer.error is None and len(ran) == 4
    assert "--index-url" not in ran[2] and ran[2][-1] == "torch==2.13.0"
    assert installer.notes == ["PyTorch index unreachable: torch comes from PyPI (about 5 GB: the CUDA build "
                               "with its NVIDIA libraries)"]
    installer, ran = _plan({"torch==": 1})
    assert installer.error == "pip could not install PyTorch from the PyTorch index or PyPI" and len(ran) == 3


def test_installer_bootstraps_pip(ext):
    installer, ran = _plan({"pip --version": 1, "ensurepip": 1}, wheels=["/usr/share/python-wheels/pip-25.1-py3-none-any.whl"])
    assert ran[1] == ["/usr/bin/python3.13", "-m", "ensurepip", "--upgrade"] and installer.error is None
    assert ran[2][:3] == ["/usr/bin/python3.13", "/usr/share/python-wheels/pip-25.1-py3-none-any.whl/pip", "install"]
    installer, ran = _plan({"pip --version": 1, "ensurepip": 1})
    assert len(ran) == 2 and installer.error == ("Blender's Python (/usr/bin/python3.13) has no pip and ensurepip "
                                                 "failed; install pip for it (Debian/Ubuntu: apt install python3-pip) "
                                                 "and try again")
    installer, ran = _plan({"pip --version": [1, 0]})  # ensurepip installs pip: the normal commands follow
    assert [cmd[1:3] for cmd in ran] == [["-m", "pip"], ["-m", "ensurepip"], ["-m", "pip"], ["-m", "pip"], ["-m", "pip"]]
    assert installer.error is None


_FAKE_PIP = """#!%s
import sys
args = sys.argv[1:]
with open(%r, "a") as f:
    f.write(" ".join(args) + "\\n")
if "--index-url" in args:
    print("ERROR: No matching distribution found for torch==2.13.0")
    sys.exit(1)
print("Successfully installed " + args[-1])
"""


def test_install_falls_back_to_pypi_end_to_end(ext, monkeypatch, tmp_path):
    """The operator runs the plan in subprocesses: an unreachable PyTorch index, then PyPI; one short line."""
    from shape_from_image.operators import deps
    from shape_from_image.panels import preferences

    calls = tmp_path / "calls.txt"
    python = tmp_path / "python3"
    python.write_text(_FAKE_PIP % (sys.executable, str(calls)))
    python.chmod(0o755)
    monkeypatch.setattr(deps, "deps_dir", lambda create=False: str(tmp_path / "deps"))
    monkeypatch.setattr(deps, "blender_python", lambda: str(python))
    monkeypatch.setattr(deps, "online", lambda: True)
    assert bpy.ops.shape_from_image.install_dependencies(flavor="CPU") == {"FINISHED"}
    lines = calls.read_text().splitlines()
    assert len(lines) == 4 and "--index-url" in lines[1] and lines[2].endswith("--target %s torch==2.13.0" % (tmp_path / "deps"))
    ok, line = deps.last_result()
    assert ok and line == ("Dependencies installed (PyTorch index unreachable: torch comes from PyPI "
                           "(about 5 GB: the CUDA build with its NVIDIA libraries))")
    log = Path(deps.log_path()).read_text()
    last_package = list(deps.REQUIREMENTS.values())[-1]  # the plan's last command installs the other packages
    assert "No matching distribution found for torch==2.13.0" in log and f"Successfully installed {last_package}" in log
    drawn = _draw(preferences.SHAPE_FROM_IMAGE_AP_preferences, bpy.context, torch_flavor="CPU", device="AUTO",
                  default_model="chairs", models_dir="", bl_rna=preferences.SHAPE_FROM_IMAGE_AP_preferences.bl_rna)
    copies = [e[2].values for e in drawn if e[0] == "operator" and e[1] == "shape_from_image.copy_text"]
    assert {"text": deps.log_path(), "what": "The log's path"} in copies
    assert ("operator", "wm.path_open") in [e[:2] for e in drawn]
    assert all(len(e[1]) <= 38 for e in drawn if e[0] == "label")  # wrapped to the default sidebar


def test_install_failure_is_one_short_line(ext, monkeypatch, tmp_path):
    from shape_from_image.operators import deps

    monkeypatch.setattr(deps, "deps_dir", lambda create=False: str(tmp_path / "deps"))
    monkeypatch.setattr(deps, "blender_python", lambda: str(tmp_path / "no-python"))
    monkeypatch.setattr(deps, "online", lambda: True)
    monkeypatch.setattr(deps, "pip_wheels", lambda: [])
    with pytest.raises(RuntimeError, match=r"Install failed: Blender's Python \(.*no-python\) has no pip .*\. The "
                                           r"panel copies or opens the log$"):
        bpy.ops.shape_from_image.install_dependencies(flavor="CPU")
    assert "could not run" in Path(deps.log_path()).read_text()


def test_requirements_match_requirements_txt(ext):
    from shape_from_image.operators import deps

    lines = [line.split("#")[0].strip() for line in (sfi_helpers.REPO / "requirements.txt").read_text().splitlines()]
    wanted = {line for line in lines if line}
    assert wanted == set(deps.REQUIREMENTS.values()) | {f"torch=={deps.TORCH_VERSION}"}


def test_sidebar_text_wraps_and_keeps_the_file_name(ext):
    from shape_from_image.panels import text

    path = "/home/someone/Pictures/holiday 2025/chairs/very long folder name/chair_dining.png"
    short = text.shorten_path(path, 38)
    assert len(short) == 38 and short.endswith("/chair_dining.png") and short.startswith("/home/som") and "..." in short
    assert text.shorten_path("/a/b.png", 38) == "/a/b.png"
    lines = text.wrap(f"{path}: image file not found; check the path", 38)
    assert all(len(line) <= 38 for line in lines) and lines[0].endswith("chair_dining.png:")
    assert " ".join(lines[1:]) == "image file not found; check the path"
