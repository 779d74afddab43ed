"""Camera round trips: crop -> model camera -> original-image camera reprojects points exactly."""

import numpy as np
import torch

from core.camera import (DEFAULT_FOCAL_MM, Camera, Crop, crop_to_original, orbit_pose, original_to_crop, photo_focal,
                         project_depth)
from core.invert import PoseParams


def _points(n=50, seed=0):
    return torch.tensor(np.random.default_rng(seed).uniform(-0.8, 0.8, (1, n, 3)), dtype=torch.float32)


def test_crop_camera_round_trip_reprojects_exactly():
    c2w = torch.tensor(orbit_pose(120.0, 30.0, 3.2), dtype=torch.float32)[None]
    w, h, f, cx, cy = 1600, 900, 1400.0, 780.0, 470.0
    orig = Camera(c2w, torch.tensor([f]), torch.tensor([cx]), torch.tensor([cy]), w, h)
    crop = Crop(x0=612.3, y0=-40.5, size=933.0, out_size=128, orig_width=w, orig_height=h)
    fc, cxc, cyc = original_to_crop(f, cx, cy, crop)
    model_cam = Camera(c2w, torch.tensor([fc]), torch.tensor([cxc]), torch.tensor([cyc]), 128, 128)
    # the model works in crop pixels; the returned camera must reproject in the original photo
    f2, cx2, cy2 = crop_to_original(fc, cxc, cyc, crop)
    assert abs(f2 - f) < 1e-6 and abs(cx2 - cx) < 1e-6 and abs(cy2 - cy) < 1e-6
    pts = _points()
    uv_orig, _ = project_depth(orig, pts)
    uv_crop, _ = project_depth(model_cam, pts)
    back = torch.stack([crop.x0 + uv_crop[..., 0] / crop.scale, crop.y0 + uv_crop[..., 1] / crop.scale], -1)
    assert (back - uv_orig).abs().max() < 1e-3


def test_pose_parameters_round_trip():
    c2w = torch.tensor(np.stack([orbit_pose(a, e, d) for a, e, d in [(10, 5, 2.5), (200, 40, 3.5)]]),
                       dtype=torch.float32)
    focal = torch.tensor([90.0, 150.0])
    params = PoseParams.from_cam2world(c2w, focal)
    cam = params.camera(64)
    assert torch.allclose(cam.cam2world, c2w, atol=1e-5)
    assert torch.allclose(cam.focal, focal)
    assert float(cam.cx[0]) == 32.0 and float(cam.cy[1]) == 32.0


def test_pose_parameters_keep_a_principal_point_away_from_the_centre():
    c2w = torch.tensor(orbit_pose(40, 20, 3.0), dtype=torch.float32)[None]
    params = PoseParams.from_cam2world(c2w, torch.tensor([100.0]), torch.tensor([[20.0, 41.5]]))
    cam = params.camera(64)
    assert torch.allclose(cam.cam2world, c2w, atol=1e-5)
    assert float(cam.cx[0]) == 20.0 and float(cam.cy[0]) == 41.5


def test_photo_focal_sources():
    assert photo_focal(3000, 2000, focal_mm=36.0) == (3000.0, "given")  # long side = 36 mm
    assert photo_focal(2000, 3000, focal_mm=18.0) == (1500.0, "given")
    f, source = photo_focal(4000, 3000, exif_35mm=26.0)  # a phone: the 35 mm equivalent is on the diagonal
    assert source == "exif" and abs(f - 26.0 * 5000 / np.hypot(36, 24)) < 1e-9
    assert photo_focal(4000, 3000, focal_mm=50.0, exif_35mm=26.0)[1] == "given"  # the caller wins
    assert photo_focal(640, 480) == (DEFAULT_FOCAL_MM / 36.0 * 640, "default")
    assert photo_focal(640, 480, focal_mm=0, exif_35mm=26.0) == (None, "estimated")


def test_orbit_pose_azimuth_zero_faces_front():
    c2w = orbit_pose(0.0, 0.0, 3.0)
    assert np.allclose(c2w[:3, 3], [0, -3, 0])  # the camera stands in front (-Y)
    assert np.allclose(c2w[:3, 2], [0, -1, 0])  # local +Z points back, away from the object
    assert np.allclose(c2w[:3, 1], [0, 0, 1])  # up is +Z
