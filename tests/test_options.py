"""One request object: ReconstructOptions' field metadata makes the command line's flags and the checks, and
an option added to the dataclass reaches the CLI, validation and the API with no other file changed
(tests/blender/test_blender_options.py shows the same for the batch script and the Blender operator and panel)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import cli
from core import config as config_mod
from core.config import ReconstructOptions
from core.errors import ReconstructionError
from core.validate import check_model_config, check_options

KNOB = {"help": "a dummy knob, 0-9", "cli": {"flag": "--dummy-knob", "type": int}, "range": (0, 9),
        "ui": {"name": "Dummy Knob", "description": "A dummy knob"}}


def with_knob():
    """ReconstructOptions with one more field, declared as every option is: its default and metadata only."""
    return dataclasses.make_dataclass("WithKnob", [("dummy_knob", int, field(default=3, metadata=KNOB))],
                                      bases=(ReconstructOptions,))


def _photo(path: Path) -> str:
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[12:36, 14:34] = (200, 90, 40, 255)
    Image.fromarray(rgba).save(path)
    return str(path)


def test_an_added_option_becomes_a_flag_a_check_and_reaches_the_core(monkeypatch, tmp_path, capsys):
    import core.api  # noqa: F401  (imported before the dataclass is swapped: it keeps the real one)

    knob = with_knob()
    monkeypatch.setattr(config_mod, "ReconstructOptions", knob)  # as if core/config.py had the field
    parser = cli.build_parser()
    args = parser.parse_args(["reconstruct", "a.png", "--out", str(tmp_path / "o"), "--dummy-knob", "7"])
    options = check_options(cli.options_from_args(args))
    assert isinstance(options, knob) and options.dummy_knob == 7 and options.out_dir == str(tmp_path / "o")
    assert "--dummy-knob" in parser._subparsers._group_actions[0].choices["reconstruct"].format_help()

    seen = []
    monkeypatch.setattr("core.api.reconstruct", lambda images, options, **kw: seen.append(options) or [])
    photo = _photo(tmp_path / "p.png")
    assert cli.main(["reconstruct", photo, "--out", str(tmp_path / "o"), "--dummy-knob", "5", "--quiet"]) == 0
    assert [o.dummy_knob for o in seen] == [5]  # the options object itself reaches the core
    assert cli.main(["reconstruct", photo, "--out", str(tmp_path / "o"), "--dummy-knob", "12", "--quiet"]) == 1
    assert capsys.readouterr().err == "error: dummy knob must be a whole number from 0 to 9, got 12\n"



def test_an_added_option_is_checked_by_the_api_from_its_metadata(tmp_path):
    from core import reconstruct

    knob = with_knob()
    photo = _photo(tmp_path / "p.png")
    with pytest.raises(ReconstructionError, match="dummy knob must be a whole number from 0 to 9, got -1"):
        reconstruct([photo], knob(dummy_knob=-1), out_dir=str(tmp_path / "o"))
    with pytest.raises(ReconstructionError, match="dummy knob must be a whole number from 0 to 9, got 10"):
        reconstruct([photo], knob(), dummy_knob=10)
    assert not (tmp_path / "o").exists()


def test_every_flag_keeps_its_name_and_default():
    ap = argparse.ArgumentParser()
    cli.add_reconstruct_arguments(ap)
    flags = {a.option_strings[0]: a.default for a in ap._actions if a.option_strings and a.dest != "help"}
    assert flags == {"--mask": None, "--model": "chairs", "--steps": None, "--device": "auto",
                     "--mesh-resolution": None, "--seed": 0, "--out": None, "--format": "glb", "--focal-mm": None,
                     "--estimate-focal": False, "--height-m": None, "--texture-size": "1024", "--faces": None,
                     "--joint": False, "--quiet": False}


@pytest.mark.parametrize("focal, expect", [(0, None), (0.0, None), (None, None), (35, 35.0)])
def test_focal_length_zero_means_not_given_everywhere(focal, expect):
    """0 and None: the photo's EXIF value, else the model's default (the panel's 0, the CLI's --focal-mm 0);
    searching it is asked for by estimate_focal."""
    assert check_options(ReconstructOptions(focal_mm=focal)).focal_mm == expect
    field_help = {f.name: f.metadata for f in dataclasses.fields(ReconstructOptions)}["focal_mm"]
    assert field_help["none"] == 0 and field_help["ui"]["unset"] == 0 and "0: the" in field_help["help"]


def test_config_ranges_are_declared_on_the_fields():
    ranged = [(cls.__name__, f.name) for cls in (config_mod.GeneratorConfig, config_mod.InversionConfig,
                                                 config_mod.MeshConfig, config_mod.PaperConfig)
              for f in dataclasses.fields(cls) if "range" in f.metadata]
    assert len(ranged) >= 40 and ("MeshConfig", "resolution") in ranged
    cfg = config_mod.ModelConfig()
    cfg.mesh.resolution = 600  # MeshConfig.resolution declares 16-512
    with pytest.raises(ReconstructionError, match="'mesh.resolution' must be a whole number from 16 to 512, got 600"):
        check_model_config(cfg, "m.json")
    cfg = config_mod.ModelConfig()
    cfg.render.background = (1.0, 1.0)  # declares a length of 3
    with pytest.raises(ReconstructionError, match="'render.background' must be a list of 3 values"):
        check_model_config(cfg, "m.json")


def test_options_cross_a_process_boundary_as_plain_data():
    import json

    options = ReconstructOptions(steps=4, focal_mm=35.0, model_dirs=("a", "b"), faces=500)
    data = json.loads(json.dumps(options.to_dict()))
    assert ReconstructOptions.from_dict(data) == options
