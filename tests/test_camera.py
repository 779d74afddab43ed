"""Camera round trips: crop -> model camera -> original-image camera reprojects points exactly."""

import numpy as np
import torch

from core.geometry.camera import Camera, Crop, crop_to_original, orbit_pose, original_to_crop, project_depth
from core.geometry.lens import (FULL_FRAME_DIAGONAL_MM, SENSOR_WIDTH_MM, blender_lens_mm, focal_35mm_to_px,
                                focal_px_to_35mm, photo_focal)
from core.fit.invert import PoseParams


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


def test_photo_focal_sources_share_one_convention():
    # a phone photo: 4000 x 3000 px, 5000 px diagonal; its 35 mm equivalent refers to the 43.27 mm diagonal
    expected = 26.0 * 5000 / np.hypot(36, 24)
    assert photo_focal(4000, 3000, 26.0, None, 42.5) == (expected, "given")
    assert photo_focal(4000, 3000, None, 26.0, 42.5) == (expected, "exif")  # same number, same camera
    assert photo_focal(4000, 3000, None, None, 26.0) == (expected, "default")
    assert photo_focal(4000, 3000, 50.0, 26.0, 42.5)[1] == "given"  # the caller wins
    assert photo_focal(640, 480, 0, 26.0, 42.5) == (None, "estimated")
    # portrait and landscape of the same frame get the same focal length
    assert photo_focal(3000, 2000, 35.0, None, 42.5)[0] == photo_focal(2000, 3000, 35.0, None, 42.5)[0]


def test_lens_conversions():
    assert FULL_FRAME_DIAGONAL_MM == np.hypot(SENSOR_WIDTH_MM, 24.0)
    # a 3:2 photo has the full frame's shape: 36 mm equivalent spans the long side exactly once
    assert abs(focal_35mm_to_px(36.0, 3000, 2000) - 3000.0) < 1e-9
    assert abs(focal_px_to_35mm(focal_35mm_to_px(28.0, 640, 480), 640, 480) - 28.0) < 1e-12
    # Blender: sensor width 36 mm on the long side
    assert blender_lens_mm(3000.0, 3000, 2000) == 36.0 and blender_lens_mm(1500.0, 2000, 3000) == 18.0
    # the model's default is a 50 mm lens on a 36 mm wide sensor for a square photo
    assert abs(focal_35mm_to_px(42.5, 256, 256) - 50 / 36 * 256) < 0.1


def test_orbit_pose_azimuth_zero_faces_front():
    c2w = orbit_pose(0.0, 0.0, 3.0)
    assert np.allclose(c2w[:3, 3], [0, -3, 0])  # the camera stands in front (-Y)
    assert np.allclose(c2w[:3, 2], [0, -1, 0])  # local +Z points back, away from the object
    assert np.allclose(c2w[:3, 1], [0, 0, 1])  # up is +Z
