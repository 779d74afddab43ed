"""Pose hypotheses: turns of the solved camera about the up axis, scored before the inversion."""

import json
from pathlib import Path

import numpy as np
import torch

import core.api as api
from core.fit.hypotheses import turned
from core.geometry.camera import Camera, orbit_pose, project_depth

ROOT = Path(__file__).resolve().parent.parent


def _rotation_error_deg(a, b) -> float:
    r = np.asarray(a)[:3, :3].T @ np.asarray(b)[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def test_a_turn_orbits_the_camera_about_the_up_axis():
    c2w = torch.tensor(orbit_pose(30.0, 25.0, 2.5))[None]
    assert torch.allclose(turned(c2w, 90.0), torch.tensor(orbit_pose(120.0, 25.0, 2.5))[None], atol=1e-6)
    assert torch.allclose(turned(turned(c2w, 180.0), 180.0), c2w, atol=1e-6)
    # the object's centre stays where the photo has it, at the same distance
    cams = [Camera(m, torch.tensor([100.0]), torch.tensor([40.0]), torch.tensor([30.0]), 80, 60)
            for m in (c2w, turned(c2w, 270.0))]
    (uv_a, d_a), (uv_b, d_b) = [project_depth(c, torch.zeros(1, 1, 3, dtype=torch.float64)) for c in cams]
    assert torch.allclose(uv_a, uv_b) and torch.allclose(d_a, d_b)


def test_a_pose_forced_half_a_turn_off_is_recovered(monkeypatch):
    """The shipped model on an example photo whose solved pose is turned 180 degrees: the hypotheses find
    the photo's side again before any inversion step."""
    truth = {c["file"]: c for c in json.loads((ROOT / "examples" / "cameras.json").read_text())}
    photo = ROOT / "examples" / "chair_dining.png"
    solve = api.Pipeline.solve_pose

    def flipped(self, *args):
        c2w, focal = solve(self, *args)
        return turned(c2w[None], 180.0)[0], focal

    (honest,) = api.reconstruct([photo], steps=0, mesh_resolution=32)
    monkeypatch.setattr(api.Pipeline, "solve_pose", flipped)
    (res,) = api.reconstruct([photo], steps=0, mesh_resolution=32)
    assert res.ok, res.error
    assert _rotation_error_deg(res.camera.cam2world, truth[photo.name]["cam2world"]) < 15
    chosen = [c for c in res.pose_candidates if c["chosen"]]
    assert [c["yaw_deg"] for c in chosen] == [180.0] and len(res.pose_candidates) == 4
    assert chosen[0]["loss"] == min(c["loss"] for c in res.pose_candidates)
    assert _rotation_error_deg(res.camera.cam2world, honest.camera.cam2world) < 1.0
    # without the hypotheses the forced pose stays
    cfg = api.load_model("chairs").cfg
    monkeypatch.setattr(cfg.pose, "yaw_hypotheses", (0.0,))
    (stuck,) = api.reconstruct([photo], steps=0, mesh_resolution=32)
    assert _rotation_error_deg(stuck.camera.cam2world, truth[photo.name]["cam2world"]) > 150
    assert stuck.pose_candidates == []
