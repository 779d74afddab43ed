"""Hostile inputs through the Blender operator: messages that fit Blender (no command-line flags, no
float32 artefacts), and memory that stays flat over many reconstructions in one process."""

from __future__ import annotations

import importlib.util

import bpy
import pytest
import sfi_helpers


def test_infinite_focal_length_is_reported_as_infinite(fake_core, photo):
    with pytest.raises(RuntimeError) as info:
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), focal_mm=float("inf"))
    text = str(info.value)
    assert "got inf" in text and "3.40" not in text and "e+38" not in text, text
    with pytest.raises(RuntimeError, match="got -inf"):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), focal_mm=float("-inf"))
    assert fake_core.calls == []


def test_unwritable_output_folder_names_no_command_line_flag(ext, runner, fast_model, photo, tmp_path):
    (tmp_path / "file").write_text("x")
    before = sfi_helpers.snapshot()
    for out, words in ((tmp_path / "file", "it is a file, not a folder"), (tmp_path / "file" / "sub", "not writable")):
        with pytest.raises(RuntimeError) as info:
            bpy.ops.shape_from_image.reconstruct(filepath=str(photo), model=str(fast_model), steps=0, device="CPU",
                                                 out_dir=str(out))
        text = str(info.value)
        assert words in text and "choose another output folder" in text and "--" not in text, text
    assert sfi_helpers.snapshot() == before


def _soak():
    spec = importlib.util.spec_from_file_location("soak_blender", sfi_helpers.REPO / "scripts" / "soak_blender.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_job_hands_its_memory_back(fake_core, runner, photo, monkeypatch):
    """After every reconstruction the worker trims the C heap, and the operator (main thread) collects the
    garbage cycles and trims again: what keeps a long session's memory flat (the RSS soak itself,
    scripts/soak_blender.py, takes an hour: its numbers are in the README)."""
    import threading

    trims, collects = [], []
    monkeypatch.setattr(runner, "_TRIM", lambda pad: trims.append(threading.current_thread().name))
    monkeypatch.setattr(runner.gc, "collect", lambda *a: collects.append(threading.current_thread().name) or 0)
    for _ in range(3):
        assert bpy.ops.shape_from_image.reconstruct(filepath=str(photo), steps=0) == {"FINISHED"}
    main = threading.main_thread().name
    assert trims == [main] * 6 and collects == [main] * 3  # inline: the worker's trim and the operator's
    job = runner.Job(runner.Request(image=str(photo), options=runner.ReconstructOptions(steps=0))).start()
    job.thread.join(30)
    assert job.poll() is not None and trims[-1] == "shape_from_image"  # the worker thread trims its own arena
    with pytest.raises(RuntimeError):
        bpy.ops.shape_from_image.reconstruct(filepath=str(photo), steps=-1)  # refused before any job: nothing
    assert len(trims) == 7


def test_soak_script_reports_rss_marks(ext, runner, fast_model, photo):
    """scripts/soak_blender.py on a tiny model: RSS after run 2, 4 and the last run, all plausible."""
    marks = _soak().soak(str(photo), 5, 0, 16, 2, worker_thread=True, model=str(fast_model), echo=lambda *a, **k: None)
    assert sorted(marks) == [2, 4, 5] and all(100 < rss < 100000 for rss in marks.values()), marks
