"""PnP pose recovery on synthetic correspondences, degenerate inputs, quaternion helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.geometry import pnp as pose_mod
from core.geometry.camera import look_at
from core.errors import ReconstructionError
from core.geometry.lens import focal_35mm_to_px
from core.geometry.pnp import PnPCamera, default_focal_candidates, matrix_to_quaternion, quaternion_to_matrix, solve_pnp


def _random_pose(rng: np.random.Generator) -> np.ndarray:
    """Blender cam2world looking near the origin from distance 2-4, elevation 0-45 degrees, some roll."""
    az, el = np.radians(rng.uniform(0, 360)), np.radians(rng.uniform(0, 45))
    dist = rng.uniform(2, 4)
    eye = dist * np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    c2w = look_at(eye, rng.uniform(-0.1, 0.1, 3))
    roll = np.radians(rng.uniform(-20, 20))
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    c2w[:3, :3] = c2w[:3, :3] @ rz
    return c2w


def _correspondences(rng, focal, width, height, cx, cy, n=1200, noise=0.0, outliers=0.0):
    """Visible points of [-0.8, 0.8]^3 projected by a random camera (Blender convention)."""
    c2w = _random_pose(rng)
    w2c = np.linalg.inv(c2w)
    pts = rng.uniform(-0.8, 0.8, (8 * n, 3))
    local = pts @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -local[:, 2]
    uv = np.stack([cx + focal * local[:, 0] / depth, cy - focal * local[:, 1] / depth], axis=1)
    visible = (depth > 0.1) & (uv[:, 0] > 0) & (uv[:, 0] < width) & (uv[:, 1] > 0) & (uv[:, 1] < height)
    pts, uv = pts[visible][:n], uv[visible][:n]
    assert len(pts) >= 200
    uv = uv + rng.normal(0.0, noise, uv.shape)
    n_out = round(outliers * len(pts))
    if n_out:
        idx = rng.choice(len(pts), n_out, replace=False)
        pts = pts.copy()
        pts[idx] = rng.uniform(-0.8, 0.8, (n_out, 3))
    return c2w, uv, pts


def _rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    rel = a[:3, :3].T @ b[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))))


def _translation_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3]) / np.linalg.norm(b[:3, 3]))


INTRINSICS = [  # focal, width, height, cx, cy
    (40.0, 64, 64, 32.0, 32.0),
    (60.0, 64, 64, 20.0, 41.0),
    (100.0, 64, 64, 32.0, 32.0),
    (700.0, 640, 480, 290.0, 255.0),
]


@pytest.mark.parametrize("focal,width,height,cx,cy", INTRINSICS)
def test_known_focal_recovers_pose(focal, width, height, cx, cy):
    rng = np.random.default_rng(int(focal))
    for _ in range(4):
        c2w, uv, pts = _correspondences(rng, focal, width, height, cx, cy, noise=0.1)
        res = solve_pnp(uv, pts, PnPCamera(width, height, focal_candidates=[focal], principal=(cx, cy)))
        assert res.cam2world.shape == (4, 4) and res.cam2world.dtype == np.float64
        assert _rotation_error_deg(res.cam2world, c2w) < 0.5
        assert _translation_error(res.cam2world, c2w) < 0.01
        assert res.focal == focal and (res.cx, res.cy) == (cx, cy)
        assert 0.05 < res.reprojection_error < 0.3  # ~ E|noise| = 0.125 px
        assert res.inlier_ratio > 0.9
        np.testing.assert_allclose(res.cam2world[3], [0, 0, 0, 1])
        np.testing.assert_allclose(res.cam2world[:3, :3] @ res.cam2world[:3, :3].T, np.eye(3), atol=1e-9)


def test_default_principal_point_is_image_centre():
    rng = np.random.default_rng(3)
    c2w, uv, pts = _correspondences(rng, 50.0, 80, 64, 40.0, 32.0, noise=0.1)
    res = solve_pnp(uv, pts, PnPCamera(80, 64, focal_candidates=[50.0]))
    assert (res.cx, res.cy) == (40.0, 32.0)
    assert _rotation_error_deg(res.cam2world, c2w) < 0.5


def test_default_focal_candidates_cover_18_to_75_mm():
    cands = default_focal_candidates(64, 48)
    assert 8 <= len(cands) <= 10
    # 35 mm-equivalent on the diagonal: a 64 x 48 image's 80 px diagonal spans 43.27 mm
    np.testing.assert_allclose([cands[0], cands[-1]], [18 * 80 / np.hypot(36, 24), 75 * 80 / np.hypot(36, 24)])
    assert cands[0] == focal_35mm_to_px(18.0, 64, 48)
    ratios = np.array(cands[1:]) / np.array(cands[:-1])
    np.testing.assert_allclose(ratios, ratios[0])  # geometric spacing


@pytest.mark.parametrize("focal,width,height,cx,cy", [INTRINSICS[0], INTRINSICS[2], INTRINSICS[3]])
def test_unknown_focal(focal, width, height, cx, cy):
    rng = np.random.default_rng(10 + int(focal))
    for _ in range(2):
        c2w, uv, pts = _correspondences(rng, focal, width, height, cx, cy)
        cands = default_focal_candidates(width, height)
        assert focal not in cands
        res = solve_pnp(uv, pts, PnPCamera(width, height, principal=(cx, cy)))
        assert _rotation_error_deg(res.cam2world, c2w) < 1.0
        assert abs(res.focal / focal - 1) < 0.02
        assert _translation_error(res.cam2world, c2w) < 0.03
        # Without refinement the focal is one of the proposals and the rotation still close.
        coarse = solve_pnp(uv, pts, PnPCamera(width, height, principal=(cx, cy), refine_focal=False))
        assert coarse.focal in cands
        assert _rotation_error_deg(coarse.cam2world, c2w) < 2.0


def test_gross_outliers_known_and_unknown_focal():
    rng = np.random.default_rng(7)
    for focal, width, height, cx, cy in INTRINSICS[:3]:
        c2w, uv, pts = _correspondences(rng, focal, width, height, cx, cy, noise=0.1, outliers=0.2)
        res = solve_pnp(uv, pts, PnPCamera(width, height, focal_candidates=[focal], principal=(cx, cy)))
        assert _rotation_error_deg(res.cam2world, c2w) < 2.0
        assert 0.7 < res.inlier_ratio < 0.9
        assert res.reprojection_error < 0.5
    c2w, uv, pts = _correspondences(rng, 60.0, 64, 64, 32.0, 32.0, noise=0.1, outliers=0.2)
    res = solve_pnp(uv, pts, PnPCamera(64, 64))
    assert _rotation_error_deg(res.cam2world, c2w) < 2.0


def test_weights_suppress_bad_points():
    """Low-confidence points with a systematic 3-pixel shift barely move the weighted solution."""
    rng = np.random.default_rng(11)
    c2w, uv, pts = _correspondences(rng, 60.0, 64, 64, 32.0, 32.0, noise=0.1)
    bad = rng.random(len(uv)) < 0.4
    uv[bad] += np.array([3.0, 0.0])
    weights = np.where(bad, 0.01, 1.0)
    weighted = solve_pnp(uv, pts, PnPCamera(64, 64, focal_candidates=[60.0]), weights=weights)
    assert _rotation_error_deg(weighted.cam2world, c2w) < 0.2  # unweighted: ~0.9 degrees
    assert _translation_error(weighted.cam2world, c2w) < 0.002


def test_nan_rows_are_ignored():
    rng = np.random.default_rng(5)
    c2w, uv, pts = _correspondences(rng, 60.0, 64, 64, 32.0, 32.0, noise=0.1)
    uv[:10] = np.nan
    pts[10:20, 1] = np.inf
    res = solve_pnp(uv, pts, PnPCamera(64, 64, focal_candidates=[60.0]))
    assert _rotation_error_deg(res.cam2world, c2w) < 0.5


def _degenerate_cases():
    rng = np.random.default_rng(0)
    uv, pts = rng.uniform(0, 64, (100, 2)), rng.uniform(-1, 1, (100, 3))
    return {
        "too few points": (uv[:5], pts[:5], None),
        "all NaN": (np.full_like(uv, np.nan), pts, None),
        "identical 3D points": (uv, np.ones_like(pts), None),
        "collinear 3D points": (uv, np.outer(np.linspace(-1, 1, 100), [1.0, 2.0, 3.0]), None),
        "identical pixels": (np.full_like(uv, 30.0), pts, None),
        "collinear pixels": (np.stack([np.linspace(0, 60, 100), np.full(100, 7.0)], 1), pts, None),
        "zero weights": (uv, pts, np.zeros(100)),
        "shape mismatch": (uv[:50], pts, None),
    }


@pytest.mark.parametrize("case", list(_degenerate_cases()))
def test_degenerate_input_raises(case):
    uv, pts, weights = _degenerate_cases()[case]
    with pytest.raises(ReconstructionError) as info:
        solve_pnp(uv, pts, PnPCamera(64, 64), weights=weights, path="photos/chair.jpg")
    assert "photos/chair.jpg" in str(info.value)
    assert "pose" in str(info.value)


def test_all_solutions_behind_camera_raises(monkeypatch):
    rng = np.random.default_rng(2)
    _, uv, pts = _correspondences(rng, 60.0, 64, 64, 32.0, 32.0)
    monkeypatch.setattr(pose_mod, "_in_front", lambda *args: False)
    with pytest.raises(ReconstructionError, match="behind the camera") as info:
        solve_pnp(uv, pts, PnPCamera(64, 64), path="chair.png")
    assert "chair.png" in str(info.value)


def test_quaternion_round_trip():
    torch.manual_seed(0)
    q = torch.randn(2000, 4, dtype=torch.float64)
    rot = quaternion_to_matrix(q)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rot @ rot.transpose(-1, -2), eye.expand_as(rot), atol=1e-12)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(2000, dtype=torch.float64))
    unit = q / q.norm(dim=-1, keepdim=True)
    unit = torch.where(unit[:, :1] < 0, -unit, unit)
    back = matrix_to_quaternion(rot)
    assert (back[:, 0] >= 0).all()
    assert torch.allclose(back, unit, atol=1e-10)
    # 180-degree turns (w = 0) and the identity.
    for axis in torch.eye(3, dtype=torch.float64):
        turn = 2 * torch.outer(axis, axis) - eye
        assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(turn)), turn, atol=1e-12)
    assert torch.allclose(matrix_to_quaternion(eye), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    # Batch shapes and agreement with OpenCV's Rodrigues.
    assert matrix_to_quaternion(rot.reshape(40, 50, 3, 3)).shape == (40, 50, 4)
    import cv2
    rvec = np.array([0.3, -0.2, 0.9])
    ref, _ = cv2.Rodrigues(rvec)
    angle = np.linalg.norm(rvec)
    qr = torch.tensor([np.cos(angle / 2), *(np.sin(angle / 2) * rvec / angle)])
    np.testing.assert_allclose(quaternion_to_matrix(qr).numpy(), ref, atol=1e-12)


def test_quaternion_gradients_are_finite():
    q = torch.randn(16, 4, requires_grad=True)
    loss = matrix_to_quaternion(quaternion_to_matrix(q)).sum() + quaternion_to_matrix(q).square().sum()
    loss.backward()
    assert torch.isfinite(q.grad).all()
    # Gradient descent on a quaternion reaches a target rotation.
    target = quaternion_to_matrix(torch.tensor([0.6, 0.2, -0.7, 0.3]))
    param = torch.tensor([1.0, 0.0, 0.0, 0.0], requires_grad=True)
    opt = torch.optim.Adam([param], lr=0.1)
    for _ in range(150):
        opt.zero_grad()
        (quaternion_to_matrix(param) - target).square().sum().backward()
        opt.step()
    assert (quaternion_to_matrix(param) - target).abs().max() < 1e-3
