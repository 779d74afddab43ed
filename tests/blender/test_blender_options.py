"""One request object in Blender: the operator's and the panel's option properties are made from
ReconstructOptions' fields, and an option added to the dataclass (nothing else changed) becomes a property of
both, a flag of the batch script, and reaches the core inside the request's options."""

from __future__ import annotations

import dataclasses
import importlib
import types
from dataclasses import field

import bpy
import pytest
import sfi_helpers

KNOB = {"help": "a dummy knob, 0-9", "cli": {"flag": "--dummy-knob", "type": int}, "range": (0, 9),
        "ui": {"name": "Dummy Knob", "description": "A dummy knob"}}


@pytest.fixture
def knob(ext, monkeypatch):
    """ReconstructOptions with one more field, swapped in where the front ends look the dataclass up: as if
    core/config.py declared it."""
    for module in ("validate", "cli", "api", "joint"):  # imported first: they keep the real dataclass
        importlib.import_module(f"shape_from_image.core.{module}")
    config = importlib.import_module("shape_from_image.core.config")
    cls = dataclasses.make_dataclass("WithKnob", [("dummy_knob", int, field(default=3, metadata=KNOB))],
                                     bases=(config.ReconstructOptions,))
    monkeypatch.setattr(config, "ReconstructOptions", cls)
    monkeypatch.setattr(importlib.import_module("shape_from_image.operators.options"), "ReconstructOptions", cls)
    return cls


def test_the_shipped_properties_keep_their_labels_and_limits(ext):
    settings = bpy.context.scene.shape_from_image
    props = settings.bl_rna.properties
    shown = {name: (props[name].name, props[name].default) for name in
             ("mesh_resolution", "focal_mm", "height_m", "texture_size", "faces")}
    assert shown == {"mesh_resolution": ("Mesh Resolution", 128), "focal_mm": ("Focal Length", 0.0),
                     "height_m": ("Height", 0.0), "texture_size": ("Texture Size", 1024),
                     "faces": ("Face Budget", 0)}
    assert (props["mesh_resolution"].hard_min, props["mesh_resolution"].hard_max) == (16, 512)
    assert (props["focal_mm"].hard_min, props["focal_mm"].hard_max, props["focal_mm"].unit) == (0.0, 2000.0, "CAMERA")
    assert (props["faces"].hard_min, props["faces"].hard_max) == (0, 10_000_000)
    op = bpy.ops.shape_from_image.reconstruct.get_rna_type().properties
    assert (op["steps"].default, op["seed"].default, op["seed"].soft_max) == (10, 0, 2 ** 31 - 1)
    assert op["mesh_resolution"].hard_max > 512  # soft limits only: core.validate refuses, never a clamp
    assert "steps" not in props and "seed" not in props  # the panel has its own quality presets


def test_an_added_option_becomes_operator_and_panel_properties_and_reaches_the_core(knob, ext, runner,
                                                                                   monkeypatch, photo):
    options_ui = importlib.import_module("shape_from_image.operators.options")
    operator_props = options_ui.blender_properties()
    panel_props = options_ui.blender_properties(panel=True)
    assert "dummy_knob" in operator_props and "dummy_knob" in panel_props
    settings_cls = type("SFI_PG_knob_test", (bpy.types.PropertyGroup,), {"__annotations__": panel_props})
    bpy.utils.register_class(settings_cls)
    try:
        bpy.types.Scene.sfi_knob_test = bpy.props.PointerProperty(type=settings_cls)
        settings = bpy.context.scene.sfi_knob_test
        rna = settings.bl_rna.properties["dummy_knob"]
        assert (rna.name, rna.default, rna.hard_min, rna.hard_max) == ("Dummy Knob", 3, 0, 9)
        settings.dummy_knob = 6
        op = types.SimpleNamespace(**{name: getattr(settings, name) for name in panel_props}, steps=10, seed=0)
        options_ui.copy_to_operator(settings, op)  # what the panel's button does
        assert op.dummy_knob == 6
    finally:
        del bpy.types.Scene.sfi_knob_test
        bpy.utils.unregister_class(settings_cls)

    # the operator's own code turns its properties into the request's options ...
    reconstruct = importlib.import_module("shape_from_image.operators.reconstruct")
    cls = reconstruct.SHAPE_FROM_IMAGE_OT_reconstruct
    fake = types.SimpleNamespace(files=[], image_names=[], image_name="", filepath=str(photo), mask_path="",
                                 joint=False, model="", device="CPU", out_dir="", out_format="glb", **vars(op))
    request = cls._prepare(fake, bpy.context)
    assert isinstance(request.options, knob) and request.options.dummy_knob == 6
    assert runner.Request.from_dict(request.to_dict()).options.mesh_resolution == request.options.mesh_resolution

    # ... which the worker hands to the core as they are
    seen = []
    api = importlib.import_module("shape_from_image.core.api")
    monkeypatch.setattr(api, "reconstruct", lambda images, options, **kw: seen.append(options) or ["done"])
    assert runner._call_core(request, None, None) == ["done"] and seen == [request.options]
    fake.dummy_knob = 12
    with pytest.raises(Exception, match="dummy knob must be a whole number from 0 to 9, got 12"):
        cls._prepare(fake, bpy.context)


def test_an_added_option_is_a_flag_of_the_batch_script(knob, ext, library_core, tmp_path):
    spec = importlib.util.spec_from_file_location("batch_reconstruct", sfi_helpers.REPO / "scripts" /
                                                  "batch_reconstruct.py")
    batch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batch)
    photo = sfi_helpers.write_photo(tmp_path / "chair.png")
    assert batch.main(["x", "--input", str(photo), "--out", str(tmp_path / "out"), "--dummy-knob", "4"]) == 0
    assert [c.options.dummy_knob for c in library_core.calls] == [4]
