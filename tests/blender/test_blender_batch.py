"""scripts/batch_reconstruct.py: per-image outputs, summary, failures, both ways of calling it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys

import bpy
import pytest
import sfi_helpers

SCRIPT = sfi_helpers.REPO / "scripts" / "batch_reconstruct.py"


@pytest.fixture
def batch():
    spec = importlib.util.spec_from_file_location("batch_reconstruct", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_args(batch):
    assert batch.script_args(["blender", "-b", "--python", "x.py", "--", "--input", "a"]) == ["--input", "a"]
    assert batch.script_args(["x.py", "--input", "a", "--out", "o"]) == ["--input", "a", "--out", "o"]


def test_batch_writes_everything_and_continues_past_bad_files(batch, fake_core, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    sfi_helpers.write_photo(photos / "chair_a.png")
    sfi_helpers.write_photo(photos / "chair_b.png")
    (photos / "chair_a_mask.png").write_bytes(b"")  # masks in the folder are not inputs
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "out"

    def fail_on_broken(request):
        if request.image.endswith("broken.png"):
            return sfi_helpers.failed_result(request.image, f"{request.image}: cannot read the image; "
                                                            "save it as PNG or JPEG")
        return sfi_helpers.fake_result(request.image)

    fake_core.result_fn = fail_on_broken
    code = batch.main(["x", "--input", str(photos), str(broken), str(tmp_path / "missing.png"),
                       "--out", str(out), "--steps", "3", "--render", "--samples", "2"])
    assert code == 1
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("ok ", "FAIL"))]
    assert len(lines) == 4 and sum(ln.startswith("ok ") for ln in lines) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["ok"], summary["failed"]) == (2, 2)
    by_name = {e["image"].rsplit("/", 1)[-1]: e for e in summary["images"]}
    assert "cannot read the image" in by_name["broken.png"]["error"]
    assert "file not found" in by_name["missing.png"]["error"]
    for stem in ("chair_a", "chair_b"):
        entry = by_name[f"{stem}.png"]
        assert entry["ok"] and entry["vertices"] == 4514
        for key, name in (("blend", f"{stem}.blend"), ("mesh", f"{stem}.glb"), ("json", f"{stem}.json"),
                          ("overlay", f"{stem}_overlay.png"), ("side", f"{stem}_side.png")):
            assert entry["files"][key] == str(out / name) and (out / name).stat().st_size > 0
        data = json.loads((out / f"{stem}.json").read_text())
        assert data["camera"]["width"] == 160 and data["mesh"]["path"] == f"{stem}.glb"
    assert (out / "chair_a.glb").read_bytes()[:4] == b"glTF"
    assert [r.steps for r in fake_core.calls] == [3, 3, 3]

    # the .blend holds mesh + camera + the photo packed as the camera background
    bpy.ops.wm.open_mainfile(filepath=str(out / "chair_a.blend"))
    cam = bpy.data.objects["chair_a Camera"]
    assert bpy.context.scene.camera == cam and "chair_a" in bpy.data.objects
    image = cam.data.background_images[0].image
    assert image.packed_file is not None and tuple(image.size) == (160, 120)
    assert bpy.data.objects["chair_a"].data.color_attributes.active_color_name == "Col"

    overlay = importlib.import_module("shape_from_image.operators.inputs").read_rgba(str(out / "chair_a_overlay.png"))
    assert overlay.shape == (120, 160, 4)


def test_command_line_reports_bad_input_and_exits_nonzero(tmp_path):
    """`python scripts/batch_reconstruct.py ...` with the bpy module, as a user runs it."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--input", str(tmp_path / "nope.jpg"), "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "nope.jpg: file not found" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 1 and summary["images"][0]["ok"] is False

