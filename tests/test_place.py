"""Real size, on the floor: core.place, the height option and the size prior of the shipped model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.api import reconstruct
from core.errors import ReconstructionError
from core.mesh import Mesh
from core.place import place, placement_for
from core.result import CameraInfo

ROOT = Path(__file__).resolve().parent.parent


def _box_mesh() -> Mesh:
    """A box 0.4 x 0.6 x 1.2 centred at (0.1, -0.2, 0.05)."""
    corners = np.array([[x, y, z] for x in (-0.2, 0.2) for y in (-0.3, 0.3) for z in (-0.6, 0.6)], np.float32)
    corners += np.array([0.1, -0.2, 0.05], np.float32)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int32)
    return Mesh(corners, faces, np.full((8, 3), 0.5, np.float32))


def _camera() -> CameraInfo:
    from core.geometry.camera import orbit_pose

    return CameraInfo(np.asarray(orbit_pose(30.0, 20.0, 3.0), np.float64), 400.0, 320, 240, 160.0, 120.0)


def _pixels(points: np.ndarray, cam: CameraInfo) -> np.ndarray:
    w2c = np.linalg.inv(cam.cam2world)
    local = points @ w2c[:3, :3].T + w2c[:3, 3]
    return np.stack([cam.cx + cam.focal_px * local[:, 0] / -local[:, 2],
                     cam.cy - cam.focal_px * local[:, 1] / -local[:, 2]], axis=1)


@pytest.mark.parametrize("height, prior, source, expected", [
    (1.5, 0.87, "given", 1.5), (None, 0.87, "prior", 0.87), (None, 0.0, "none", 1.2)])
def test_the_mesh_stands_on_the_floor_at_its_height_and_the_camera_sees_the_same(height, prior, source, expected):
    mesh, cam = _box_mesh(), _camera()
    placed, (moved,), placement = place(mesh, [cam], height, prior)
    v = placed.vertices
    assert abs(v[:, 2].min()) < 1e-6 and abs(v[:, 2].max() - expected) < 1e-5
    assert np.abs(v[:, :2].max(0) + v[:, :2].min(0)).max() < 1e-5  # the base's centre is the origin
    assert placement.size_source == source and abs(placement.height_m - expected) < 1e-5
    # the view through the camera is unchanged: every vertex lands on the same pixel
    assert np.abs(_pixels(v.astype(np.float64), moved) - _pixels(mesh.vertices.astype(np.float64), cam)).max() < 1e-4
    assert np.allclose(moved.cam2world[:3, :3], cam.cam2world[:3, :3]) and moved.focal_px == cam.focal_px
    # and back: the canonical frame the field lives in
    assert np.allclose(placement.to_canonical(v), mesh.vertices, atol=1e-5)
    assert np.allclose(placement.camera_to_canonical(moved).cam2world, cam.cam2world)
    # the check can fail: scaling the mesh alone moves it in the picture
    alone = placement_for(mesh.vertices, 2 * expected, prior)
    off = _pixels((mesh.vertices - alone.origin) * alone.scale, moved) - _pixels(mesh.vertices, cam)
    assert np.abs(off).max() > 5


def _photo(path: Path) -> Path:
    h, w = 90, 120
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (((xx - 60) / 25.0) ** 2 + ((yy - 45) / 35.0) ** 2 < 1).astype(np.uint8) * 255
    rgb = np.dstack([np.full((h, w), 170, np.uint8), (60 + 3 * (xx % 20)).astype(np.uint8),
                     np.full((h, w), 50, np.uint8)])
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path


@pytest.fixture
def tiny_with_prior(tiny_model_dir, tmp_path):
    """The tiny model and a copy of it whose JSON carries a size prior of 0.9 m."""
    meta = json.loads((tiny_model_dir / "tiny.json").read_text())
    meta["config"]["size_prior"] = {"height_m": 0.9, "source": "test", "n": 3}
    (tiny_model_dir / "sized.json").write_text(json.dumps(meta))
    (tiny_model_dir / "sized.safetensors").write_bytes((tiny_model_dir / "tiny.safetensors").read_bytes())
    return tiny_model_dir


@pytest.mark.parametrize("model, height, source, expected", [
    ("sized", None, "prior", 0.9), ("sized", 1.75, "given", 1.75), ("tiny", 0.5, "given", 0.5)])
def test_reconstruct_gives_exactly_the_height_and_records_where_it_came_from(tiny_with_prior, tmp_path, model,
                                                                              height, source, expected):
    (res,) = reconstruct([_photo(tmp_path / "p.png")], model=model, model_dirs=[tiny_with_prior], steps=0,
                         mesh_resolution=24, height_m=height, texture_size=64, out_dir=tmp_path / "o")
    assert res.ok, res.error
    z = res.mesh.vertices[:, 2]
    assert abs(z.min()) < 1e-6 and abs(z.max() - expected) < 1e-5
    data = json.loads(Path(res.json_path).read_text())
    assert data["placement"]["size_source"] == source and abs(data["placement"]["height_m"] - expected) < 1e-5
    # the camera moved with the mesh: back in the canonical frame it is the camera the field was fitted with
    canon = res.canonical_camera()
    assert np.allclose(res.placement.to_canonical(res.mesh.vertices).min(0)[2], res.placement.origin[2], atol=1e-5)
    assert np.allclose(canon.cam2world[:3, :3], res.camera.cam2world[:3, :3])
    assert not np.allclose(canon.cam2world[:3, 3], res.camera.cam2world[:3, 3])


def test_a_model_without_a_prior_keeps_its_units_and_place_false_keeps_the_canonical_frame(tiny_model_dir, tmp_path):
    photo = _photo(tmp_path / "p.png")
    args = {"model": "tiny", "model_dirs": [tiny_model_dir], "steps": 0, "mesh_resolution": 24, "texture_size": 0}
    (placed,) = reconstruct([photo], **args)
    (canonical,) = reconstruct([photo], place=False, **args)
    assert placed.placement.size_source == "none" and abs(placed.placement.scale - 1.0) < 1e-12
    assert canonical.placement is None and canonical.mesh.vertices[:, 2].min() < -0.05
    shift = canonical.mesh.vertices.min(0)[2]
    assert abs(placed.mesh.vertices[:, 2].min()) < 1e-6
    assert np.allclose(placed.mesh.vertices[:, 2], canonical.mesh.vertices[:, 2] - shift, atol=1e-5)


BAD_HEIGHTS = [0, 0.0, -1.0, float("nan"), float("inf"), 1e6, "1.2", True]


@pytest.mark.parametrize("value", BAD_HEIGHTS)
def test_bad_heights_are_refused_with_one_clear_error_and_nothing_written(tiny_model_dir, tmp_path, value):
    out = tmp_path / "o"
    with pytest.raises(ReconstructionError, match="height must be the object's height in metres") as err:
        reconstruct([_photo(tmp_path / "p.png")], model="tiny", model_dirs=[tiny_model_dir], height_m=value,
                     out_dir=out)
    assert "\n" not in str(err.value) and not out.exists()


@pytest.mark.parametrize("option, value, words", [
    ("texture_size", 5000, "texture size"), ("texture_size", 10, "texture size"), ("texture_size", -1, "texture size"),
    ("faces", 0, "face budget"), ("faces", 50, "face budget"), ("faces", 2.5, "face budget")])
def test_bad_texture_sizes_and_face_budgets_are_refused(tiny_model_dir, tmp_path, option, value, words):
    with pytest.raises(ReconstructionError, match=words):
        reconstruct([_photo(tmp_path / "p.png")], model="tiny", model_dirs=[tiny_model_dir], **{option: value})


@pytest.mark.parametrize("value", ["0", "-2", "nan", "inf", "1e9", "tall"])
def test_cli_refuses_a_bad_height_with_one_line_and_writes_nothing(tiny_model_dir, tmp_path, value):
    out = tmp_path / "o"
    run = subprocess.run([sys.executable, "-m", "core", "reconstruct", str(_photo(tmp_path / "p.png")), "--out",
                          str(out), "--model", str(tiny_model_dir / "tiny.safetensors"), f"--height-m={value}",
                          "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 1 and len(lines) == 1 and "height" in lines[0] and "Traceback" not in run.stderr
    assert not out.exists()


def test_the_shipped_model_carries_the_measured_chair_height():
    from training.size_prior import measure

    meta = json.loads((ROOT / "weights" / "chairs.json").read_text())
    prior = meta["config"]["size_prior"]
    assert 0.7 <= prior["height_m"] <= 1.1 and prior["n"] == 750 and "size-prior" in prior["source"]
    assert measure(40, 10)["n"] == 50  # the command measures (a few chairs: fast)
    assert abs(measure(40, 10)["height_m"] - prior["height_m"]) < 0.15
