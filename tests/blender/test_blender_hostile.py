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
