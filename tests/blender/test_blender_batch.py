"""scripts/batch_reconstruct.py: per-image outputs, summary, failures, both ways of calling it, and the
command line's contract (core.validate): the same options refused with the same text, a subset of the
fuzz corpus (tests/test_fuzz.py) failing alone while the good inputs of the run are written."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_batch_writes_everything_and_continues_past_bad_files(batch, library_core, tmp_path, capsys):
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

    library_core.result_fn = fail_on_broken
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
                          ("overlay", f"{stem}_overlay.png"), ("side", f"{stem}_side.png"),
                          ("back", f"{stem}_back.png")):
            assert entry["files"][key] == str(out / name) and (out / name).stat().st_size > 0
        data = json.loads((out / f"{stem}.json").read_text())
        assert data["camera"]["width"] == 160 and data["mesh"]["path"] == f"{stem}.glb"
    assert (out / "chair_a.glb").read_bytes()[:4] == b"glTF"
    assert [r.options.steps for r in library_core.calls] == [3, 3, 3]

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
    assert "FAIL" in proc.stdout and "nope.jpg: image file not found" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 1 and summary["images"][0]["ok"] is False





REFUSED = [["--focal-mm", "nan"], ["--focal-mm", "inf"], ["--focal-mm=-3"], ["--steps", "-1"], ["--steps", "5000"],
           ["--mesh-resolution", "100000"], ["--seed", str(2 ** 64)], ["--seed", "-1"], ["--device", "cuda:abc"],
           ["--device", "tpu"], ["--out", ""]]


@pytest.mark.parametrize("args", REFUSED, ids=" ".join)
def test_batch_refuses_what_the_command_line_refuses_with_its_text(batch, ext, library_core, tmp_path, capsys, args):
    photo = sfi_helpers.write_photo(tmp_path / "photo.png")
    out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
    assert batch.main(["x", "--input", str(photo), *args, *out]) == 1
    batch_err = capsys.readouterr().err
    cli = subprocess.run([sys.executable, "-m", "core", "reconstruct", str(photo), *args, *out, "--quiet"],
                         cwd=sfi_helpers.REPO, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and batch_err == cli.stderr and batch_err.count("\n") == 1, (batch_err, cli.stderr)
    assert library_core.calls == [] and not (tmp_path / "out").exists()


def test_batch_refuses_an_output_folder_that_is_a_file(batch, ext, library_core, tmp_path, capsys):
    photo = sfi_helpers.write_photo(tmp_path / "photo.png")
    (tmp_path / "file").write_text("x")
    for out, words in ((tmp_path / "file", "it is a file, not a folder"), (tmp_path / "file" / "sub", "not writable")):
        assert batch.main(["x", "--input", str(photo), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out}: output folder is not writable") and words in err and err.count("\n") == 1
    assert library_core.calls == []


def test_batch_fuzz_subset_fails_alone_and_writes_the_good_ones(batch, ext, runner, fast_model, tmp_path, capsys):
    """Bad inputs of the fuzz corpus with the real core: one FAIL line each naming the file and the reason the
    command line gives; the good inputs (two sharing the stem 'chair') are written under unique names; the
    output folder holds exactly what summary.json lists."""
    fuzz = sfi_helpers.fuzz_module()
    corpus = fuzz.make_corpus(tmp_path / "corpus")
    bad = [c for c in corpus if c.expect == "bad" and "random_" not in c.path and "magic_" not in c.path
           and not os.path.isdir(c.path)]  # a folder given to the batch script is scanned, not an input
    bad += [c for c in corpus if "random_0" in c.path or "magic_png_1" in c.path]
    good = [c for c in corpus if c.expect == "good" and os.path.basename(c.path) in ("good.png", "chair.png")]
    cases = bad[:len(bad) // 2] + good + bad[len(bad) // 2:]
    out = tmp_path / "out"
    code = batch.main(["x", "--input", *(c.path for c in cases), "--out", str(out), "--model", str(fast_model),
                       "--steps", "0", "--format", "ply"])
    assert code == 1
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("ok ", "FAIL"))]
    assert len(lines) == len(cases)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["ok"], summary["failed"]) == (len(good), len(bad))
    listed = {"summary.json"}
    stems = []
    for case, entry, line in zip(cases, summary["images"], lines):
        assert entry["image"] == case.path
        if case.expect == "bad":
            assert not entry["ok"] and line == f"FAIL  {entry['error']}"
            fuzz.check_error_line(case, f"error: {entry['error']}")
            continue
        assert entry["ok"], entry
        stem = Path(entry["files"]["mesh"]).stem
        stems.append(stem)
        data = json.loads(Path(entry["files"]["json"]).read_text())
        assert data["mesh"]["path"] == f"{stem}.ply" and data["image"] == case.path
        listed |= {os.path.basename(p) for p in entry["files"].values()}
    assert sorted(stems) == ["chair", "chair_2", "good"]
    assert sorted(os.listdir(out)) == sorted(listed)  # no .tmp, nothing of a failed input


def test_folder_scan_takes_what_the_core_reads(batch, ext, library_core, tmp_path, capsys):
    """.exr (the core refuses it) is not scanned; a named pipe or a folder named like a photo is reported."""
    photos = tmp_path / "photos"
    photos.mkdir()
    sfi_helpers.write_photo(photos / "chair.png")
    (photos / "light.exr").write_bytes(b"v/1\x01")
    os.mkfifo(photos / "pipe.png")
    (photos / "sub.jpg").mkdir()
    code = batch.main(["x", "--input", str(photos), "--out", str(tmp_path / "out")])
    assert code == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    names = [os.path.basename(e["image"]) for e in summary["images"]]
    assert names == ["chair.png", "pipe.png", "sub.jpg"]
    errors = {os.path.basename(e["image"]): e.get("error", "") for e in summary["images"]}
    assert "is a named pipe (FIFO)" in errors["pipe.png"] and "is a folder (directory)" in errors["sub.jpg"]
    assert [os.path.basename(r.image) for r in library_core.calls] == ["chair.png"]


def test_a_textured_obj_lists_its_side_files_and_a_failure_removes_them(batch, ext, runner, fast_model, tmp_path,
                                                                         capsys, monkeypatch):
    """OBJ comes with <stem>.mtl and <stem>_texture.png: summary.json lists them with the mesh, and an image
    whose outputs fail to be written leaves none of them behind."""
    photo = sfi_helpers.write_photo(tmp_path / "chair.png")
    args = ["x", "--input", str(photo), "--model", str(fast_model), "--steps", "0", "--format", "obj",
            "--texture-size", "64"]
    out = tmp_path / "ok"
    assert batch.main([*args, "--out", str(out)]) == 0
    entry = json.loads((out / "summary.json").read_text())["images"][0]
    names = {os.path.basename(p) for p in entry["files"].values()}
    assert {"chair.obj", "chair.mtl", "chair_texture.png", "chair.json", "chair.blend"} <= names
    assert sorted(os.listdir(out)) == sorted(names | {"summary.json"})

    def refuse(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(batch, "_mesh_counts", refuse)  # after every file is written
    out = tmp_path / "failed"
    assert batch.main([*args, "--out", str(out)]) == 1
    assert "disk full" in capsys.readouterr().out
    assert os.listdir(out) == ["summary.json"]
