"""Settings as data: a model ships its own inversion, the API takes the dataclasses, bad values are refused."""

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.api import Pipeline, pick_device, reconstruct
from core.config import InversionConfig, ModelConfig, ReconstructOptions, tiny_config
from core.errors import ReconstructionError
from core.model import ReconstructionModel, load_model, save_model

ROOT = Path(__file__).resolve().parent.parent


def _photo(path: Path) -> Path:
    yy, xx = np.mgrid[0:80, 0:96]
    alpha = (((xx - 50) / 25.0) ** 2 + ((yy - 40) / 22.0) ** 2 < 1).astype(np.uint8) * 255
    rgb = np.full((80, 96, 3), 150, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path


def test_config_round_trip_and_checked_values(tmp_path):
    cfg = tiny_config()
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # lists come back as tuples
    with pytest.raises(ReconstructionError, match=r"model\.json: unknown setting 'inversion\.lrr'"):
        ModelConfig.from_dict({"inversion": {"lrr": 1.0}}, "model.json")
    with pytest.raises(ReconstructionError, match="'generator.plane_res' must be int"):
        ModelConfig.from_dict({"generator": {"plane_res": "64"}})
    with pytest.raises(ReconstructionError, match="'encoder.channels' must be a list"):
        ModelConfig.from_dict({"encoder": {"channels": 16}})
    # older model files kept the inversion's sizes at the top level
    old = ModelConfig.from_dict({"inversion_size": 48, "patch_size": 12})
    assert (old.inversion.size, old.inversion.patch_size) == (48, 12)


def test_a_model_ships_its_own_inversion_settings(tmp_path):
    """The inversion a model's JSON stores is what reconstruct runs; a call's steps override it."""
    cfg = tiny_config()
    cfg.inversion = dataclasses.replace(cfg.inversion, steps=3, mask_weight=0.8)
    save_model(ReconstructionModel(cfg), tmp_path / "tuned", half=False)
    assert load_model(str(tmp_path / "tuned.json")).cfg.inversion == cfg.inversion
    photo = _photo(tmp_path / "p.png")
    (res,) = reconstruct([photo], model="tuned", model_dirs=[tmp_path], mesh_resolution=24)
    assert res.ok, res.error
    assert res.steps == 3 and len(res.losses) == 3
    (res,) = reconstruct([photo], ReconstructOptions(model="tuned", model_dirs=(str(tmp_path),), steps=1,
                                                     mesh_resolution=24))
    assert res.steps == 1 and len(res.losses) == 1
    # expert settings: a dict changes fields of the model's settings, an InversionConfig replaces them
    (res,) = reconstruct([photo], model="tuned", model_dirs=[tmp_path], mesh_resolution=24, inversion={"steps": 2})
    assert res.ok and res.steps == 2
    (res,) = reconstruct([photo], model="tuned", model_dirs=[tmp_path], mesh_resolution=24,
                         inversion=InversionConfig(steps=4, size=32))
    assert res.ok and res.steps == 4


def test_options_are_checked_before_any_work(tmp_path):
    photo = _photo(tmp_path / "p.png")
    for changes, words in [({"stepz": 3}, "unknown option 'stepz'"), ({"steps": -1}, "steps must be"),
                           ({"fmt": "stl"}, "unknown mesh format"), ({"focal_mm": float("nan")}, "focal length"),
                           ({"inversion": {"loss": "bogus"}}, "unknown inversion loss"),
                           ({"inversion": {"nope": 1}}, "unknown setting 'nope'"),
                           ({"batch_size": 0}, "batch size")]:
        with pytest.raises(ReconstructionError, match=words):
            reconstruct([photo], **changes)
    with pytest.raises(ReconstructionError, match="ReconstructOptions"):
        reconstruct([photo], {"steps": 3})


def test_out_of_memory_retry_changes_only_the_calls_copy():
    model = ReconstructionModel(tiny_config())
    pipe = Pipeline(model, pick_device("cpu"))
    pipe.render_cfg.chunk = 1024
    assert model.cfg.render.chunk == 8192 and Pipeline(model, pick_device("cpu")).render_cfg.chunk == 8192


def test_shipped_model_stores_its_settings():
    meta = json.loads((ROOT / "weights" / "chairs.json").read_text())
    cfg = ModelConfig.from_dict(meta["config"])
    assert cfg.category == "chair" and cfg.inversion.steps == 10
    assert set(meta["config"]["inversion"]) == {f.name for f in dataclasses.fields(InversionConfig)}


def _functions(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_core_is_inference_only_with_small_signatures():
    core = ROOT / "core"
    too_many = []
    for path, fn in _functions(core):
        a = fn.args
        names = [x.arg for x in a.posonlyargs + a.args]
        count = len(names) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
        count -= bool(names and names[0] in ("self", "cls"))
        if count > 8:
            too_many.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name} ({count})")
    assert not too_many, too_many
    for path in core.rglob("*.py"):
        text = path.read_text()
        for banned in ("import bpy", "from training", "import training", "from ..training"):
            assert banned not in text, f"{path.relative_to(ROOT)} has '{banned}'"
        assert not any(word in path.stem for word in ("train", "evaluate", "bench", "ceiling")), path
