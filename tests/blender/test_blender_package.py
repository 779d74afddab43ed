"""The packaged extension: file list, Blender's manifest validation, install into a fresh Blender."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import bpy
import pytest
import sfi_helpers

REPO = sfi_helpers.REPO
BLENDER_EXT = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def _package_module():
    spec = importlib.util.spec_from_file_location("package_extension", REPO / "scripts" / "package_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    pkg = _package_module()
    out = tmp_path_factory.mktemp("dist")
    return pkg.build_zip(out, include_weights=False)


def test_zip_contents(built_zip):
    pkg = _package_module()
    names = zipfile.ZipFile(built_zip).namelist()
    assert built_zip.name == "shape_from_image-0.3.1.zip"
    assert "blender_manifest.toml" in names and "__init__.py" in names and "core/api.py" in names
    assert "scripts/batch_reconstruct.py" in names and "scripts/package_extension.py" not in names
    assert "scripts/demo_pictures.py" not in names  # makes the README pictures; not for users
    assert "scripts/batch_renders.py" in names  # the batch script's --render helpers
    # what a user installs: inference, the Blender side and the weights; nothing that builds the model
    assert not [n for n in names if n.startswith(("training/", "examples/"))]
    assert sorted(n for n in names if n.startswith("docs/")) == [  # the README's pictures
        "docs/demo_back.png", "docs/demo_input.png", "docs/demo_overlay.png", "docs/demo_side.png", "docs/gui_installing.png",
        "docs/gui_result.png", "docs/recolor.png"]
    assert not [n for n in names if "train" in n or "evaluate" in n or "bench" in n]
    assert not [n for n in names if n.startswith(("tests/", ".venv/", ".git/", "dist/", "requirements"))
                or "__pycache__" in n or n.endswith((".pyc", ".zip"))]
    with_weights = pkg.package_files(REPO, include_weights=True)
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "weights").glob("*") if p.is_file())
    assert [f for f in with_weights if f.startswith("weights/")] == shipped


def test_every_module_of_the_extension_ships(built_zip):
    """Blender's builder (scripts/package_extension.py runs it) with the manifest's exclusions keeps every
    module of the add-on and leaves out what only builds or tests it."""
    assert _package_module().blender_builder().is_file()
    names = set(zipfile.ZipFile(built_zip).namelist())
    modules = {p.relative_to(REPO).as_posix() for pkg in ("core", "operators", "panels")
               for p in (REPO / pkg).rglob("*.py") if "__pycache__" not in p.parts}
    assert len(modules) > 50 and sorted(modules - names) == []
    assert "weights/chairs.json" not in names  # the test build leaves the model out
    assert not [n for n in names if n.startswith(("training/", "tests/", "examples/", "scripts/package", "Makefile"))]


def test_manifest_passes_blenders_validation(built_zip):
    if not BLENDER_EXT.is_file():
        pytest.skip(f"Blender's extension validator not found at {BLENDER_EXT}")
    out = subprocess.run([sys.executable, str(BLENDER_EXT), "validate", str(built_zip)],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Success" in out.stdout, out.stdout + out.stderr
    manifest = _package_module().read_manifest(REPO)
    assert (manifest["id"], manifest["version"], manifest["type"]) == ("shape_from_image", "0.3.1", "add-on")
    assert manifest["blender_version_min"] == "4.2.0" and manifest["license"] == ["SPDX:Apache-2.0"]
    assert set(manifest["permissions"]) == {"files", "network"}


INSTALL_SCRIPT = r"""
import json, sys
sys.path.insert(0, {helpers!r})
import bpy, addon_utils
import sfi_helpers
from pathlib import Path

report = {{}}
status = bpy.ops.extensions.package_install_files(filepath={zip!r}, repo="user_default", enable_on_install=True)
report["install"] = sorted(status)
pkg = "bl_ext.user_default.shape_from_image"
report["enabled"] = pkg in bpy.context.preferences.addons
report["prefs_device"] = bpy.context.preferences.addons[pkg].preferences.device
mod = sys.modules[pkg]
report["installed_at"] = mod.__file__
report["deps_dir"] = sys.modules[pkg + ".operators.deps"].deps_dir()
runner = sys.modules[pkg + ".operators.runner"]
runner._call_core = sfi_helpers.FakeCore(package=pkg)
bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)  # keeps the preferences
photo = sfi_helpers.write_photo(Path({tmp!r}) / "installed_chair.png")
report["op"] = sorted(bpy.ops.shape_from_image.reconstruct(filepath=str(photo)))
report["objects"] = sorted(o.name for o in bpy.data.objects)
obj = bpy.data.objects["installed_chair"]
report["color"] = list(obj.data.color_attributes["Col"].data[0].color_srgb)[:3]
addon_utils.disable(pkg)
report["after_disable"] = [hasattr(bpy.types, "SHAPE_FROM_IMAGE_OT_reconstruct"),
                           hasattr(bpy.types.Scene, "shape_from_image")]
print("REPORT" + json.dumps(report))
sfi_helpers.exit_process()
"""


def test_zip_installs_into_a_fresh_blender_and_runs(built_zip, tmp_path):
    """A separate process with its own Blender user folder: install the zip like a user, run it."""
    script = INSTALL_SCRIPT.format(helpers=str(REPO / "tests" / "blender"), zip=str(built_zip), tmp=str(tmp_path))
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("REPORT")), None)
    assert line is not None, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(line[len("REPORT"):])
    assert report["install"] == ["FINISHED"] and report["enabled"] and report["prefs_device"] == "AUTO"
    installed = Path(report["installed_at"]).parent
    assert installed == tmp_path / "blender_user" / "extensions" / "user_default" / "shape_from_image"
    assert (installed / "core" / "api.py").is_file() and not (installed / "tests").exists()
    assert report["deps_dir"].startswith(str(tmp_path / "blender_user" / "extensions" / ".user"))
    assert report["op"] == ["FINISHED"]
    assert report["objects"] == ["installed_chair", "installed_chair Camera"]
    assert abs(report["color"][0] - 0.5) < 1 / 255 + 1e-6 and abs(report["color"][2] - 1.0) < 1e-6
    assert report["after_disable"] == [False, False]
