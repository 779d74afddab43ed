"""The public API and CLI end to end with a tiny random model, and every kind of bad input."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from core.api import reconstruct
from core.errors import ReconstructionError

ROOT = Path(__file__).resolve().parent.parent


def _chair_like_png(path: Path, size=(120, 90)) -> Path:
    """An RGBA cut-out: an opaque blob off-centre on a transparent background."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (((xx - 70) / 30.0) ** 2 + ((yy - 40) / 25.0) ** 2 < 1).astype(np.uint8) * 255
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 180, 90 + yy % 50, 60
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    good = _chair_like_png(tmp_path / "good.png")
    bad = {}
    bad["missing"] = tmp_path / "nope.png"
    (tmp_path / "text.png").write_text("this is not an image")
    bad["not_image"] = tmp_path / "text.png"
    data = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    bad["truncated"] = tmp_path / "cut.png"
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    bad["tiny"] = tmp_path / "dot.png"
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    bad["transparent"] = tmp_path / "clear.png"
    Image.new("RGB", (64, 64), (120, 120, 120)).save(tmp_path / "gray.png")
    bad["uniform"] = tmp_path / "gray.png"
    return good, bad


def test_reconstruct_end_to_end_writes_mesh_and_json(tiny_model_dir, tmp_path, inputs):
    good, _ = inputs
    seen = []
    results = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=2, mesh_resolution=32,
                          out_dir=tmp_path / "out", progress=lambda *a: seen.append(a))
    (res,) = results
    assert res.ok, res.error
    cam = res.camera
    assert (cam.width, cam.height) == (120, 90)
    # the optical axis meets the photo in its centre, wherever the object (and the crop) lies
    assert abs(cam.cx - 60.0) < 1e-3 and abs(cam.cy - 45.0) < 1e-3
    assert res.focal_source == "default"  # a PNG without EXIF: 50 mm, refined by the inversion
    assert abs(np.linalg.det(cam.cam2world[:3, :3]) - 1) < 1e-4
    assert len(res.mesh.vertices) > 100 and res.mesh.colors.min() >= 0 and res.mesh.colors.max() <= 1
    data = json.loads(Path(res.json_path).read_text())
    assert data["camera"]["width"] == 120 and len(data["camera"]["cam2world"]) == 4
    assert data["mesh"]["path"] == "good.glb" and (tmp_path / "out" / "good.glb").exists()
    assert set(data["timings_s"]) >= {"load", "encoder", "pose", "inversion", "mesh", "total"}
    assert [s for s in seen if s[0] == "inversion"] == [("inversion", 1, 2, res.losses[0]),
                                                         ("inversion", 2, 2, res.losses[1])]


@pytest.mark.parametrize("focal_mm, estimate, source", [(35.0, False, "given"), (35.0, True, "given"),
                                                        (None, True, "estimated"), (None, False, "exif"),
                                                        (0, False, "exif")])
def test_focal_length_given_estimated_or_from_exif(tiny_model_dir, tmp_path, focal_mm, estimate, source):
    """0 means what the panel's 0 means: not given (EXIF, else the default); estimate_focal searches it."""
    png = _chair_like_png(tmp_path / "src.png")
    photo = tmp_path / "photo.jpg"  # 120 x 90, diagonal 150 px; the EXIF says 86.5 mm on a 43.27 mm diagonal
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 86
    rgba = Image.open(png)
    Image.composite(rgba.convert("RGB"), Image.new("RGB", rgba.size, (255, 255, 255)), rgba).save(photo, exif=exif)
    (res,) = reconstruct([photo], masks=[tmp_path / "src.png"], model="tiny", model_dirs=[tiny_model_dir], steps=2,
                         mesh_resolution=24, focal_mm=focal_mm, estimate_focal=estimate)
    assert res.ok, res.error
    assert res.focal_source == source
    stated = {"given": 35.0 * 150 / np.hypot(36, 24), "exif": 86 * 150 / np.hypot(36, 24)}  # one convention
    if source in stated:  # a focal length the photo states is kept through the inversion
        assert abs(res.camera.focal_px - stated[source]) < 1e-3 * stated[source]
    assert abs(res.camera.cx - 60.0) < 1e-3 and abs(res.camera.cy - 45.0) < 1e-3


def test_bad_images_fail_alone_with_a_message_naming_the_file(tiny_model_dir, inputs, tmp_path):
    good, bad = inputs
    order = list(bad.values()) + [good]
    results = reconstruct(order, model="tiny", model_dirs=[tiny_model_dir], steps=0, mesh_resolution=24)
    assert results[-1].ok, results[-1].error
    for path, res in zip(order[:-1], results[:-1]):
        assert not res.ok
        assert path.name in res.error and "\n" not in res.error and "Traceback" not in res.error


def test_mask_of_another_size_is_refused(tiny_model_dir, inputs, tmp_path):
    good, _ = inputs
    Image.new("L", (10, 10), 255).save(tmp_path / "mask.png")
    (res,) = reconstruct([good], masks=[tmp_path / "mask.png"], model="tiny", model_dirs=[tiny_model_dir], steps=0,
                         mesh_resolution=24)
    assert not res.ok and "mask.png" in res.error


def test_cancel_between_steps(tiny_model_dir, inputs):
    good, _ = inputs
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    (res,) = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=20, mesh_resolution=24,
                         cancel=cancel)
    assert not res.ok and "cancel" in res.error


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": -1}, "steps"),
    ({"mesh_resolution": 4}, "resolution"),
    ({"fmt": "fbx"}, "format"),
    ({"model": "unicorns"}, "unknown model"),
    ({"device": "tpu"}, "device"),
    ({"focal_mm": -5}, "focal length"),
    ({"focal_mm": float("nan")}, "focal length"),
])
def test_bad_options_raise_one_clear_error(tiny_model_dir, inputs, kwargs, words):
    good, _ = inputs
    args = {"model": "tiny", "model_dirs": [tiny_model_dir], **kwargs}
    with pytest.raises(ReconstructionError, match=words):
        reconstruct([good], **args)


def test_output_folder_not_writable(tiny_model_dir, inputs, tmp_path):
    good, _ = inputs
    (tmp_path / "file").write_text("x")
    with pytest.raises(ReconstructionError, match="not writable") as err:
        reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], out_dir=tmp_path / "file" / "out")
    assert "file" in str(err.value)


def test_damaged_weights_are_caught(tiny_model_dir, inputs, tmp_path):
    good, _ = inputs
    d = tmp_path / "models"
    d.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_model_dir / f"tiny{suffix}", d / f"cut{suffix}")
        shutil.copy(tiny_model_dir / f"tiny{suffix}", d / f"nomatch{suffix}")
    data = (d / "cut.safetensors").read_bytes()
    (d / "cut.safetensors").write_bytes(data[: len(data) // 2])
    # a JSON whose configuration does not match the tensors (checksum updated: only the shapes disagree)
    meta = json.loads((d / "nomatch.json").read_text())
    meta["config"]["generator"]["decoder_hidden"] = 48
    (d / "nomatch.json").write_text(json.dumps(meta))
    shutil.copy(tiny_model_dir / "tiny.json", d / "gone.json")
    for name, words in [("cut", "damaged"), ("nomatch", "do not match"), ("gone", "missing")]:
        with pytest.raises(ReconstructionError, match=words) as err:
            reconstruct([good], model=name, model_dirs=[d])
        assert name in str(err.value)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_exit_status_and_one_line_errors(tiny_model_dir, inputs, tmp_path):
    good, bad = inputs
    model = tiny_model_dir / "tiny.safetensors"
    run = _cli("reconstruct", good, bad["missing"], bad["not_image"], "--out", tmp_path / "o", "--model", model,
               "--steps", "1", "--mesh-resolution", "24", "--format", "ply", "--quiet")
    assert run.returncode == 1
    assert (tmp_path / "o" / "good.ply").exists() and (tmp_path / "o" / "good.json").exists()
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors), run.stderr
    assert "nope.png" in errors[0] and "text.png" in errors[1]
    assert "Traceback" not in run.stderr
    run = _cli("reconstruct", good, "--out", tmp_path / "o", "--model", model, "--steps", "-3", "--quiet")
    assert run.returncode != 0 and "steps" in run.stderr and "Traceback" not in run.stderr
    run = _cli("reconstruct", good, "--out", tmp_path / "o", "--model", "nothing-here", "--quiet")
    assert run.returncode != 0 and "unknown model" in run.stderr and "Traceback" not in run.stderr


def test_an_inversion_that_erases_the_shape_falls_back_to_the_encoder_guess(tiny_model_dir, inputs, monkeypatch):
    from core import api
    from core.errors import EmptySurface

    good, _ = inputs
    real_mesh, latents = api.Pipeline.mesh, []

    def mesh(self, ws, resolution, path, plane_offset=None, cancel=None, photos=()):
        latents.append(ws.detach().clone())
        if len(latents) == 1:  # the inverted latent: as if the field had left the box
            raise EmptySurface("no surface to extract: the whole scene box is outside the shape", path)
        assert plane_offset is None  # the encoder's guess has no fitted planes
        return real_mesh(self, ws, resolution, path, None, cancel)

    monkeypatch.setattr(api.Pipeline, "mesh", mesh)
    (res,) = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=2, mesh_resolution=32)
    assert res.ok, res.error
    assert len(latents) == 2 and not torch.equal(latents[0], latents[1])
    assert np.allclose(res.latent, latents[1].cpu().numpy()) and res.plane_offset is None
    # without inversion there is nothing to fall back to: the error is reported
    latents.clear()
    (res,) = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=0, mesh_resolution=32)
    assert not res.ok and "no surface" in res.error


def test_inversion_size_other_than_the_encoders(tmp_path, inputs):
    """A model whose inversion renders at another size than the encoder sees still solves the pose
    (the input mask goes to the pose solver at the encoder's resolution)."""
    from core.config import tiny_config
    from core.model import ReconstructionModel, save_model

    cfg = tiny_config()
    cfg.inversion_size = 48  # the encoder works at 32
    torch.manual_seed(0)
    save_model(ReconstructionModel(cfg), tmp_path / "wide", {"note": "random test model"}, half=False)
    good, _ = inputs
    (res,) = reconstruct([good], model="wide", model_dirs=[tmp_path], steps=1, mesh_resolution=24)
    assert res.ok, res.error
    assert (res.camera.width, res.camera.height) == (120, 90) and len(res.losses) == 1


def test_a_model_with_photo_masks_segments_photos_with_its_mask_head(tmp_path, inputs, monkeypatch):
    """encoder.photo_masks: a photo without alpha is segmented with the encoder's mask head (mask
    source 'encoder'), seeing a square crop at the encoder's size; other models and cut-outs do not."""
    from core.config import tiny_config
    from core.model import ReconstructionModel, save_model
    from core.encoder import Encoder

    cfg = tiny_config()
    cfg.encoder.photo_masks = True
    torch.manual_seed(0)
    save_model(ReconstructionModel(cfg), tmp_path / "photo", {"note": "random test model"}, half=False)
    good, _ = inputs
    rgba = np.asarray(Image.open(good))
    plain = tmp_path / "plain.png"
    Image.fromarray(np.where(rgba[..., 3:] > 0, rgba[..., :3], 235).astype(np.uint8)).save(plain)

    seen = []
    forward = Encoder.forward

    def spy(self, image):
        seen.append(tuple(image.shape))
        out = forward(self, image)
        # a mask head that sees the blob: the blob's reddish colour
        red = (image[..., 0] - image[..., 2] > 0.2).float()
        return type(out)(**{**out.__dict__, "mask_logits": 8 * red - 4})

    monkeypatch.setattr(Encoder, "forward", spy)
    (res,) = reconstruct([plain], model="photo", model_dirs=[tmp_path], steps=0, mesh_resolution=24)
    assert res.ok, res.error
    assert res.mask_source == "encoder"
    assert seen[0] == (1, cfg.encoder.image_size, cfg.encoder.image_size, 3)
    seen.clear()
    (cut,) = reconstruct([good], model="photo", model_dirs=[tmp_path], steps=0, mesh_resolution=24)
    assert cut.mask_source == "alpha" and len(seen) == 1  # only the reconstruction's own encoder pass


def test_a_model_with_a_segmenter_segments_photos_with_it(tmp_path, inputs, monkeypatch):
    """segmenter.image_size > 0: the model file carries a segmenter (saved, checked and loaded with the
    rest); a photo without alpha is segmented with it (mask source 'segmenter'), seeing a square crop at
    its own size; a cut-out never runs it."""
    from core.config import SegmenterConfig, tiny_config
    from core.model import ReconstructionModel, load_model, save_model
    from core.segmenter import Segmenter

    cfg = tiny_config()
    cfg.encoder.photo_masks = True  # the segmenter wins over the mask head
    cfg.segmenter = SegmenterConfig(image_size=48, channels=(8, 16, 16))
    torch.manual_seed(0)
    save_model(ReconstructionModel(cfg), tmp_path / "seg", {"note": "random test model"}, half=False)
    loaded = load_model("seg", "cpu", [tmp_path])
    assert isinstance(loaded.segmenter, Segmenter) and loaded.cfg.segmenter.image_size == 48
    good, _ = inputs
    rgba = np.asarray(Image.open(good))
    plain = tmp_path / "plain.png"
    Image.fromarray(np.where(rgba[..., 3:] > 0, rgba[..., :3], 235).astype(np.uint8)).save(plain)

    seen = []

    def spy(self, image):
        seen.append(tuple(image.shape))
        red = (image[..., 0] - image[..., 2] > 0.2).float()  # a segmenter that sees the reddish blob
        return 8 * red - 4

    monkeypatch.setattr(Segmenter, "forward", spy)
    (res,) = reconstruct([plain], model="seg", model_dirs=[tmp_path], steps=0, mesh_resolution=24)
    assert res.ok, res.error
    assert res.mask_source == "segmenter" and seen == [(1, 48, 48, 3)]
    (cut,) = reconstruct([good], model="seg", model_dirs=[tmp_path], steps=0, mesh_resolution=24)
    assert cut.mask_source == "alpha" and len(seen) == 1


def test_a_model_file_without_segmenter_tensors_is_refused(tmp_path):
    """A JSON that says the model has a segmenter, with a tensors file that lacks it: a clear error."""
    import json

    from core.config import tiny_config
    from core.errors import ReconstructionError
    from core.model import ReconstructionModel, load_model, save_model

    torch.manual_seed(0)
    save_model(ReconstructionModel(tiny_config()), tmp_path / "noseg", {}, half=False)
    meta = json.loads((tmp_path / "noseg.json").read_text())
    meta["config"]["segmenter"] = {"image_size": 48, "channels": [8, 16, 16]}
    (tmp_path / "noseg.json").write_text(json.dumps(meta))
    with pytest.raises(ReconstructionError, match="noseg"):
        load_model("noseg", "cpu", [tmp_path])


def test_mesh_extraction_polls_cancel_between_chunks(tiny_model_dir):
    """Cancel is honoured inside the mesh stage: the field is queried chunk by chunk and every chunk asks
    first (at resolution 512 this stage alone takes tens of seconds)."""
    from core.api import Pipeline, pick_device
    from core.errors import Cancelled
    from core.model import load_model

    model = load_model("tiny", "cpu", [tiny_model_dir])
    pipe = Pipeline(model, pick_device("cpu"))
    ws = torch.zeros(model.cfg.generator.num_ws, model.cfg.generator.w_dim)
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) > 2

    with pytest.raises(Cancelled, match="chair.png: cancelled by the user"):
        pipe.mesh(ws, 128, "chair.png", None, cancel)
    assert len(polls) == 3  # the third chunk was never queried
    assert len(pipe.mesh(ws, 32, "chair.png", None, lambda: False).vertices) > 0


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_mesh_and_json_get_the_same_mode(tiny_model_dir, inputs, tmp_path, umask):
    import os

    good, _ = inputs
    old = os.umask(umask)
    try:
        (res,) = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=0, mesh_resolution=16,
                             out_dir=tmp_path / "out", fmt="obj")
    finally:
        os.umask(old)
    assert res.ok, res.error
    modes = {Path(p).stat().st_mode & 0o777 for p in (res.mesh_path, res.json_path)}
    assert modes == {0o666 & ~umask}


def test_a_result_that_cannot_be_written_leaves_no_file(tiny_model_dir, inputs, tmp_path, monkeypatch):
    """The JSON is encoded before anything is written: a mesh never stays behind without its JSON."""
    from core.io import export
    from core.result import ReconstructionResult

    good, _ = inputs

    def broken(self):
        raise TypeError("Object of type complex is not JSON serializable")

    monkeypatch.setattr(ReconstructionResult, "to_json", broken)
    (res,) = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=0, mesh_resolution=16,
                         out_dir=tmp_path / "out")
    assert not res.ok and "good.png" in res.error and res.mesh_path is None
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.undo()
    real_write, calls = export._write_files, []

    def fail_second_rename(files, folder):  # the mesh is in place, then the JSON cannot be
        calls.append(1)
        real_replace = export.os.replace

        def replace(src, dst):
            if str(dst).endswith(".json"):
                raise OSError(28, "No space left on device")
            return real_replace(src, dst)

        monkeypatch.setattr(export.os, "replace", replace)
        try:
            return real_write(files, folder)
        finally:
            monkeypatch.setattr(export.os, "replace", real_replace)

    monkeypatch.setattr(export, "_write_files", fail_second_rename)
    (res,) = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=0, mesh_resolution=16,
                         out_dir=tmp_path / "out")
    assert calls and not res.ok and "No space left on device" in res.error
    assert list((tmp_path / "out").iterdir()) == []


def test_warm_up_loads_the_model_and_a_bad_model_is_a_clear_error(tiny_model_dir):
    from core.api import warm_up
    from core.model import _load_cached

    _load_cached.cache_clear()
    seconds = warm_up(str(tiny_model_dir / "tiny.json"), "cpu")
    assert seconds > 0 and _load_cached.cache_info().currsize == 1
    with pytest.raises(ReconstructionError, match="no_such_model"):
        warm_up("no_such_model", "cpu")


def test_a_cold_reconstruction_does_not_import_the_compiler(tiny_model_dir, inputs, tmp_path):
    """torch._dynamo costs about 0.9 s of a cold process (torch.optim's optimizer classes import it)."""
    code = ("import sys; from core.api import reconstruct; "
            f"r = reconstruct([{str(inputs[0])!r}], model={str(tiny_model_dir / 'tiny.json')!r}, steps=2, "
            "mesh_resolution=32)[0]; assert r.ok, r.error; "
            "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_photos_silhouette_cuts_the_mesh_one_photo_or_several(tmp_path, inputs):
    from core.config import tiny_config
    from core.geometry.camera import project_depth, Camera
    from core.joint import reconstruct_object
    from core.model import ReconstructionModel, save_model

    good, _ = inputs
    folder = tmp_path / "models"
    for name, carve in (("uncut", None), ("cut", 0.0)):
        cfg = tiny_config()
        cfg.mesh = dataclasses.replace(cfg.mesh, carve_px=carve)
        torch.manual_seed(0)  # the same networks
        save_model(ReconstructionModel(cfg), folder / name, {"note": "random test model"}, half=False)
    photo_mask = np.asarray(Image.open(good))[..., 3] > 127

    def outside(res) -> int:  # mesh vertices that land on the photo's background, more than a pixel from the object
        from scipy.ndimage import binary_dilation

        c = res.camera
        cam = Camera(torch.tensor(c.cam2world, dtype=torch.float32)[None], torch.tensor([c.focal_px]),
                     torch.tensor([c.cx]), torch.tensor([c.cy]), c.width, c.height)
        uv, _ = project_depth(cam, torch.from_numpy(res.mesh.vertices)[None])
        u, v = (uv[0].numpy() - 0.5).round().astype(int).T
        inside = (u >= 0) & (u < c.width) & (v >= 0) & (v < c.height)
        near = binary_dilation(photo_mask, iterations=2)
        return int((~inside).sum() + (~near[v[inside], u[inside]]).sum())

    (uncut,) = reconstruct([good], model="uncut", model_dirs=[folder], steps=1, mesh_resolution=48)
    (cut,) = reconstruct([good], model="cut", model_dirs=[folder], steps=1, mesh_resolution=48)
    assert uncut.ok and cut.ok
    # only the mesh changes (the cameras in the field's frame: each mesh is put on the floor its own way)
    assert np.allclose(uncut.canonical_camera().cam2world, cut.canonical_camera().cam2world)
    assert outside(uncut) > 50 and outside(cut) <= 0.02 * len(cut.mesh.vertices)
    assert len(cut.mesh.vertices) > 0 and not np.array_equal(uncut.mesh.vertices.shape, cut.mesh.vertices.shape)
    # at N=0 neither shape nor camera was fitted to the silhouette: no cut
    (uncut0,) = reconstruct([good], model="uncut", model_dirs=[folder], steps=0, mesh_resolution=48)
    (cut0,) = reconstruct([good], model="cut", model_dirs=[folder], steps=0, mesh_resolution=48)
    assert np.array_equal(uncut0.mesh.vertices, cut0.mesh.vertices)
    # several photos of one object: every placed photo cuts
    obj = reconstruct_object([good, good], model="cut", model_dirs=[folder], steps=1, mesh_resolution=48)
    assert obj.ok and all(outside(r) <= 0.02 * len(obj.mesh.vertices) for r in obj.placed)


def test_photos_in_memory_give_the_files_result(tiny_model_dir, tmp_path):
    """Pixels (uint8 or float) or a file's bytes in memory reconstruct as the file does, named by their name."""
    from core.io.memory import ImageArray

    png = _chair_like_png(tmp_path / "src.png")
    rgba = np.asarray(Image.open(png))
    photos = [png, ImageArray(rgba, "chair.png"), ImageArray(rgba.astype(np.float32) / 255, "floaty.png"),
              ImageArray(png.read_bytes(), "bytes.png"), ImageArray(rgba[..., 0], "flat.png")]
    results = reconstruct(photos, model="tiny", model_dirs=[tiny_model_dir], steps=0, mesh_resolution=24,
                          texture_size=0, out_dir=tmp_path / "out")
    assert [r.ok for r in results] == [True, True, True, True, False]
    assert [r.image for r in results] == [str(png), "chair.png", "floaty.png", "bytes.png", "flat.png"]
    assert results[-1].error.startswith("flat.png: image pixels must be an (H, W, 3) or (H, W, 4) array")
    assert results[-1].error_kind == "refused"
    reference = results[0]
    for res in results[1:4]:
        assert res.mask_source == reference.mask_source == "alpha"
        assert np.allclose(res.camera.cam2world, reference.camera.cam2world, atol=1e-4)
        assert abs(res.camera.focal_px - reference.camera.focal_px) < 1e-3 * reference.camera.focal_px
        assert len(res.mesh.vertices) == len(reference.mesh.vertices)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("src", "chair", "floaty", "bytes") for ext in ("glb", "json"))
