"""Importing the paper's reference checkpoints: the safe reader, the importer and the imported model in the
pipeline. The parity of the networks themselves: test_paper_generator.py, test_paper_encoder.py."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from core.api import reconstruct
from core.config import ModelConfig, PaperConfig
from core.errors import ReconstructionError
from core.model import load_model
from core.paper.checkpoint import read_checkpoint
from core.paper.convert import ImportOptions, dataset_settings, frame_matrix, generator_sizes, import_model
from core.paper.render import render_reference
from core.validate import check_model_config

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "paper"


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, legacy):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"model_ema": {"beta": torch.ones(1)}, "iteration": 5, "extra": _Payload(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ReconstructionError) as err:
        read_checkpoint(path)
    text = str(err.value)
    assert str(path) in text and "refused" in text and "system" in text
    assert not marker.exists()


def test_plain_pickle_is_refused(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ReconstructionError, match="refused"):
        read_checkpoint(path)
    assert not marker.exists()


def test_reference_random_states_are_read(tmp_path):
    """The reference stores NumPy random states and scores beside the weights: data, accepted."""
    rng = np.random.RandomState(3)
    path = tmp_path / "checkpoint_latest.pth"
    torch.save({"model_ema": {"beta": torch.tensor([0.1])}, "iteration": 7, "best_fid": np.float64(12.5),
                "random_state": {"np_global_state": np.random.get_state(), "np_rng_state": rng.get_state(),
                                 "torch_cpu_state": torch.get_rng_state()}}, path)
    data = read_checkpoint(path)
    assert data["iteration"] == 7 and float(data["best_fid"]) == 12.5
    assert data["random_state"]["np_rng_state"][1].shape == (624,)


@pytest.mark.parametrize("content, message", [(b"not a checkpoint", "not a PyTorch checkpoint"), (b"", "empty")])
def test_damaged_checkpoint_names_the_file(tmp_path, content, message):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(ReconstructionError) as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("content, kind", [
    (b"hello, a text file starting with h\n", "a text file"), (b"json: a text file starting with j\n", "a text file"),
    (b"{\"model_ema\": 1}\n", "a text file"), (_png_bytes(), "a PNG image"),
    (__import__("gzip").compress(b"x" * 100), "a gzip archive"),
    (bytes(np.random.default_rng(1).integers(1, 256, 3000, dtype=np.uint8)), "neither a ZIP archive nor a pickle"),
    (b"\x80\x02hh" + bytes(50), "or a damaged one"), (b"\x80\x04jjjj" + bytes(50), "or a damaged one")])
def test_files_that_are_not_checkpoints_say_so(tmp_path, content, kind):
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(content)
    with pytest.raises(ReconstructionError) as err:
        read_checkpoint(path)
    text = str(err.value)
    assert text.startswith(f"{path}: not a PyTorch checkpoint") and kind in text, text
    assert "\n" not in text and "KeyError" not in text.split("(")[0]


def test_checkpoint_that_is_not_a_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.ones(1)], path)
    with pytest.raises(ReconstructionError, match="not the reference code's dictionary"):
        read_checkpoint(path)


def test_importer_refuses_a_checkpoint_without_a_generator(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"x": torch.ones(1)}, "iteration": 1}, path)
    with pytest.raises(ReconstructionError, match="no 'model_ema'"):
        import_model(path, None, "x", tmp_path, ImportOptions("p3d_car"))


def test_importer_refuses_conditional_and_nerf_generators():
    state = {"beta": torch.ones(1), "alpha": torch.ones(1), "viewdir_mapper.fc0.weight": torch.ones(1, 3)}
    with pytest.raises(ReconstructionError, match="use_viewdir"):
        generator_sizes(state, "g.pth")
    with pytest.raises(ReconstructionError, match="no SDF head"):
        generator_sizes({"mapping_network.backbone.fc0.weight": torch.ones(4, 4)}, "g.pth")


def test_frame_matrix():
    rot = np.array(frame_matrix("+y", "+z")).reshape(3, 3)
    assert np.allclose(rot @ [0, 0, 1], [0, 1, 0])  # our up (+Z) is the reference's +Y
    assert np.allclose(rot @ [0, -1, 0], [0, 0, 1])  # our front (-Y) faces the reference's +Z
    assert np.isclose(np.linalg.det(rot), 1.0)
    assert np.allclose(np.array(frame_matrix("+z", "-y")).reshape(3, 3), np.eye(3))
    with pytest.raises(ReconstructionError, match="perpendicular"):
        frame_matrix("+y", "-y")


def test_dataset_settings():
    assert dataset_settings("p3d_car").scene_range == 1.4
    # the encoder's input as the reference cuts it: 1.1 x the box for photos, whole renders for ShapeNet / CARLA
    assert [dataset_settings(d).crop_margin for d in ("p3d_car", "cub", "imagenet_zebra")] == [1.1, 1.1, 1.1]
    assert [dataset_settings(d).crop_margin for d in ("shapenet_chairs", "shapenet_cars", "carla")] == [0, 0, 0]
    assert dataset_settings("imagenet_zebra").category == "zebra"
    with pytest.raises(ReconstructionError, match="unknown reference dataset"):
        dataset_settings("mnist")


def test_paper_config_is_checked():
    cfg = ModelConfig(architecture="nerf_from_image", paper=PaperConfig(frame=(1.0, 0, 0, 0, 1, 0, 0, 0, 2)))
    cfg.generator.z_dim = cfg.generator.w_dim = 512
    with pytest.raises(ReconstructionError, match="paper.frame"):
        check_model_config(cfg, "m.json")
    with pytest.raises(ReconstructionError, match="architecture"):
        check_model_config(ModelConfig(architecture="stylegan9"), "m.json")


# -- the committed reduced-width fixture, imported ----------------------------------------------------

def _import(folder: Path, **changes) -> Path:
    options = ImportOptions("p3d_car", **{"encoder_heads": (1, 2, 3, 4), "resolution": 64, "samples": 2000, **changes})
    return import_model(FIXTURES / "generator.pt", FIXTURES / "encoder.pt", "paper_tiny", folder, options)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    return _import(tmp_path_factory.mktemp("models"))


def test_import_reads_the_architecture_from_the_tensors(imported):
    meta = json.loads(imported.read_text())
    cfg = ModelConfig.from_dict(meta["config"])
    expected = json.loads((FIXTURES / "generator_config.json").read_text())
    expected.update({k: v for k, v in json.loads((FIXTURES / "encoder_config.json").read_text()).items()})
    expected["encoder_heads"] = [1, 2, 3, 4]
    expected["frame"] = list(frame_matrix("+y", "+z"))  # the default axes (the fixture's own are the identity)
    got = dataclasses.asdict(cfg.paper)
    assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in got.items() if k in expected} == expected
    assert cfg.architecture == "nerf_from_image" and cfg.category == "car" and cfg.paper.dataset == "p3d_car"
    assert cfg.render.coarse_samples == cfg.render.fine_samples == 64 and cfg.inversion.steps == 30
    assert cfg.render.background == (0.5, 0.5, 0.5)  # P3D images are masked to 0 in [-1, 1]
    assert meta["card"]["imported_from"]["generator"] == "generator.pt"


def test_imported_model_gives_the_reference_outputs(imported):
    """The whole path: checkpoint -> importer -> safetensors -> load_model -> the reference's numbers."""
    model = load_model(str(imported))
    gen, enc = model.generator, model.encoder
    exp = load_file(str(FIXTURES / "generator_expected.safetensors"))
    ws = gen.ws_from_z(exp["z"])
    planes, colors = gen.synthesize(ws), gen.slot_colors(ws)
    out = gen.sample_reference(planes, colors, exp["points"])
    for got, name in ((ws, "ws"), (out.distance, "sdf"), (out.sigma, "sigma"), (out.rgb, "rgb"),
                      (out.semantics, "semantics")):
        assert float((got - exp[name]).abs().max()) < 1e-4, name
    frame = render_reference(gen, ws, exp["cam2world"], exp["focal"], 32, 16)
    assert float((frame.rgb - exp["render_rgb"]).abs().max()) < 1e-4
    exp = load_file(str(FIXTURES / "encoder_expected.safetensors"))
    coords, segmentation, w = enc.reference_forward(exp["input"])
    for got, name in ((coords, "coords"), (segmentation, "segmentation"), (w, "w")):
        assert float((got - exp[name]).abs().max()) < 1e-4, name
    # the inversion starts from the mean w and moves in units of its spread
    assert float(gen.w_std.min()) > 0 and float((gen.w_avg - gen.mapping_ws(torch.zeros(1, 64))[0, 0]).abs().max()) > 0


def test_import_states_the_crop_and_the_noise_mode(imported):
    meta = json.loads(imported.read_text())
    cfg = ModelConfig.from_dict(meta["config"])
    assert cfg.encoder.crop_margin == 1.1 and cfg.paper.noise_mode == "const"  # p3d_car
    assert "1.1 x the object's box" in meta["card"]["imported_from"]["encoder_crop"]
    assert meta["card"]["imported_from"]["noise_mode"].startswith("const")


def test_import_refuses_an_existing_name_unless_forced(imported, tmp_path):
    folder = imported.parent
    before = imported.read_bytes(), imported.with_suffix(".safetensors").stat().st_mtime_ns
    with pytest.raises(ReconstructionError) as err:
        _import(folder)
    assert "a model named 'paper_tiny' already exists" in str(err.value) and "--force" in str(err.value)
    assert (imported.read_bytes(), imported.with_suffix(".safetensors").stat().st_mtime_ns) == before
    forced = _import(tmp_path, overwrite=True)  # a fresh folder: nothing to replace, --force is harmless
    again = _import(tmp_path, overwrite=True, samples=1000)
    assert forced == again and json.loads(again.read_text())["card"]["imported_from"]["w_statistics"]["samples"] == 1000


def test_shapenet_import_feeds_the_encoder_the_whole_photo(tmp_path):
    """A ShapeNet model's encoder saw whole renders: its crop is the whole photo (padded square), not the box."""
    from core.api import Pipeline

    path = import_model(FIXTURES / "generator.pt", FIXTURES / "encoder.pt", "sn", tmp_path,
                        ImportOptions("shapenet_chairs", encoder_heads=(1, 2, 3, 4), resolution=64, samples=500))
    photo = tmp_path / "photo.png"
    rgba = np.zeros((96, 128, 4), np.uint8)
    rgba[30:70, 50:80] = (180, 60, 40, 255)
    Image.fromarray(rgba).save(photo)
    model = load_model(str(path))
    assert model.cfg.encoder.crop_margin == 0
    crop = Pipeline(model, torch.device("cpu")).prepare(str(photo), None).crop
    assert (crop.x0, crop.y0, crop.size) == (0.0, -16.0, 128.0)  # the 128 x 96 photo, centred in a 128 square
    p3d = load_model(str(_import(tmp_path / "p3d")))
    crop = Pipeline(p3d, torch.device("cpu")).prepare(str(photo), None).crop
    assert crop.size == pytest.approx(1.1 * 40) and crop.x0 == pytest.approx(65 - 22)


def test_cli_import_refuses_an_existing_name_and_force_replaces_it(tmp_path, capsys):
    from core.cli import main

    args = ["import-model", str(FIXTURES / "generator.pt"), str(FIXTURES / "encoder.pt"), "--name", "dup",
            "--dataset", "p3d_car", "--encoder-heads", "1", "2", "3", "4", "--resolution", "64", "--out", str(tmp_path)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--force" in err
    assert main([*args, "--force"]) == 0


def test_import_refuses_heads_that_do_not_divide_the_widths(tmp_path):
    with pytest.raises(ReconstructionError, match="heads"):
        _import(tmp_path, encoder_heads=(1, 2, 5, 4))  # 5 does not divide the third stage's 24


def test_imported_model_reconstructs_a_photo(imported, tmp_path):
    """encoder -> PnP -> inversion -> marching cubes with the paper's networks (random weights: a shape,
    not a car), at small settings."""
    photo = tmp_path / "photo.png"
    rgba = np.zeros((96, 96, 4), np.uint8)
    rgba[20:80, 28:70] = (180, 60, 40, 255)
    Image.fromarray(rgba).save(photo)
    small = dataclasses.replace(ModelConfig.from_dict(json.loads(imported.read_text())["config"]).inversion,
                                size=32, steps=2)
    (res,) = reconstruct([str(photo)], model=str(imported), inversion=small, mesh_resolution=32,
                         out_dir=str(tmp_path / "out"))
    assert res.ok, res.error
    assert Path(res.json_path).is_file() and len(res.mesh.vertices) > 0 and res.mesh.parts is None
    assert res.light == (1.0, pytest.approx(0.0, abs=1e-5))  # the paper's colours hold their light: unshaded
    cam = np.array(json.loads(Path(res.json_path).read_text())["camera"]["cam2world"])
    assert np.allclose(cam[:3, :3] @ cam[:3, :3].T, np.eye(3), atol=1e-4)


def test_generator_only_model_is_refused_when_reconstructing(tmp_path):
    options = ImportOptions("p3d_car", resolution=64, samples=500)
    path = import_model(FIXTURES / "generator.pt", None, "paper_gen", tmp_path, options)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(photo)
    with pytest.raises(ReconstructionError, match="no encoder"):
        reconstruct([str(photo)], model=str(path))


def test_cli_import_goes_to_the_user_model_folder_and_is_found_by_name(tmp_path, monkeypatch, capsys):
    from core.cli import main
    from core.registry import list_models, resolve_model

    monkeypatch.setenv("SHAPE_FROM_IMAGE_MODELS", str(tmp_path / "models"))
    code = main(["import-model", str(FIXTURES / "generator.pt"), str(FIXTURES / "encoder.pt"), "--name", "tiny_car",
                 "--dataset", "p3d_car", "--encoder-heads", "1", "2", "3", "4", "--resolution", "64"])
    assert code == 0 and "--model tiny_car" in capsys.readouterr().out
    assert resolve_model("tiny_car") == tmp_path / "models" / "tiny_car.json"
    assert ("tiny_car", "car") in [(m.name, m.category) for m in list_models()]
    assert main(["import-model", str(FIXTURES / "encoder.pt"), "--name", "x", "--dataset", "p3d_car"]) == 1
    assert "no 'model_ema'" in capsys.readouterr().err
