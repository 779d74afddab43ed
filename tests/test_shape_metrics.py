"""Validation metrics (training.shape_metrics): F-score, normal consistency, the self-symmetry turn rule."""

import numpy as np
import trimesh

from training.evaluate import outer_samples
from training.shape_metrics import (compare, fscore, normal_consistency, rot_z, rotation_error_deg,
                                    samples_with_normals, self_turns)


def _boxes(*boxes):
    parts = [trimesh.creation.box(extents=ext, transform=trimesh.transformations.translation_matrix(at))
             for ext, at in boxes]
    mesh = trimesh.util.concatenate(parts)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def _stool():
    """A square seat on four legs: the same after every quarter turn."""
    legs = [((0.08, 0.08, 0.8), (x, y, 0.4)) for x in (-0.4, 0.4) for y in (-0.4, 0.4)]
    return _boxes(((1.0, 1.0, 0.1), (0, 0, 0.85)), *legs)


def _chair():
    """The stool with a backrest on its +Y side: no turn maps it onto itself."""
    v, f = _stool()
    back = _boxes(((1.0, 0.08, 0.9), (0, 0.46, 1.35)))
    return np.concatenate([v, back[0]]), np.concatenate([f, back[1] + len(v)])


def test_fscore_counts_points_within_tau_both_ways():
    # 3 of 4 predicted points within 0.01 of the truth (precision 0.75), 1 of 2 true points reached (recall 0.5)
    d_pred = np.array([0.001, 0.005, 0.009, 0.05])
    d_true = np.array([0.002, 0.5])
    assert np.isclose(fscore(d_pred, d_true, 0.01), 2 * 0.75 * 0.5 / 1.25)
    assert fscore(d_pred, d_true, 0.0001) == 0.0
    # points 0.1 apart against their copy moved by 0.015: nothing within 0.01, everything within 0.02
    grid = np.stack(np.meshgrid(*[np.arange(6) * 0.1] * 3), -1).reshape(-1, 3)
    normals = np.tile([0.0, 0, 1], (len(grid), 1))
    scores = compare((grid, normals), (grid + np.array([0.009, 0.012, 0]), normals))
    assert scores["fscore_0.01"] == 0.0 and scores["fscore_0.02"] == 1.0
    assert np.isclose(scores["chamfer"], 0.015, atol=1e-6)


def test_normal_consistency_is_one_for_the_same_surface_and_low_for_crossing_planes():
    v, f = _boxes(((1.0, 0.6, 0.4), (0, 0, 0)))
    same = compare(samples_with_normals(v, f, 4000, seed=0), samples_with_normals(v, f, 4000, seed=1))
    assert same["normal_consistency"] > 0.95  # below 1 only next to the edges
    assert same["fscore_0.02"] > 0.9  # 4000 samples: spacing about 0.02
    # flipped normals count as agreeing (absolute cosine); perpendicular ones as 0
    n_up = np.tile([0.0, 0, 1], (5, 1))
    nearest = np.arange(5)
    assert normal_consistency(n_up, -n_up, nearest, nearest) == 1.0
    assert normal_consistency(n_up, np.tile([1.0, 0, 0], (5, 1)), nearest, nearest) == 0.0
    # a thin slab against the same slab standing up: the normals mostly disagree
    slab = _boxes(((1.0, 1.0, 0.02), (0, 0, 0)))
    wall = _boxes(((1.0, 0.02, 1.0), (0, 0, 0)))
    crossed = compare(samples_with_normals(*slab, 4000), samples_with_normals(*wall, 4000))
    assert crossed["normal_consistency"] < 0.3


def test_outer_samples_give_unit_normals_of_their_faces():
    v, f = _boxes(((1.0, 0.6, 0.4), (0, 0, 0)))
    pts, nrm = outer_samples(v, f, n=2000, normals=True)
    assert pts.shape == nrm.shape == (2000, 3)
    assert np.allclose(np.linalg.norm(nrm, axis=1), 1.0)
    # on the top face (z = +0.2 before normalisation) the normal is +-Z
    top = np.isclose(pts[:, 2], 0.2 / np.linalg.norm([1.0, 0.6, 0.4]), atol=1e-6)
    assert top.sum() > 100 and np.allclose(np.abs(nrm[top, 2]), 1.0)


def test_self_turns_are_decided_from_the_mesh():
    stool = self_turns(*_stool(), n=3000)
    assert {90.0, 180.0, 270.0} <= set(stool["turns_deg"])
    assert 45.0 not in stool["turns_deg"] and 5.0 not in stool["chamfer_by_turn"]  # small turns: not tried
    assert stool["chamfer_by_turn"][180.0] < 1.5 * stool["floor"] < stool["chamfer_by_turn"][45.0]
    chair = self_turns(*_chair(), n=3000)
    assert chair["turns_deg"] == []
    assert chair["chamfer_by_turn"][180.0] > 3 * chair["floor"]
    # a round column (72 sides): every 5-degree turn maps it onto itself
    column = trimesh.creation.cylinder(radius=0.3, height=1.0, sections=72)
    assert self_turns(np.asarray(column.vertices), np.asarray(column.faces), 30.0, 3000)["turns_deg"] == [
        30.0 * k for k in range(1, 12)]
    assert len(self_turns(np.asarray(column.vertices), np.asarray(column.faces), n=3000)["turns_deg"]) == 61


def test_rotation_error_forgives_only_turns_that_map_the_mesh_onto_itself():
    true = np.eye(4)
    true[:3, :3] = rot_z(30.0) @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # some camera
    est = true.copy()
    est[:3, :3] = rot_z(90.0) @ true[:3, :3] @ rot_z(3.0)  # a quarter turn round the object, 3 deg off
    assert np.isclose(rotation_error_deg(est, true), 90.0, atol=3.1)
    stool = self_turns(*_stool(), 90.0, 3000)["turns_deg"]
    assert rotation_error_deg(est, true, stool) < 3.5
    chair = self_turns(*_chair(), 90.0, 3000)["turns_deg"]
    assert rotation_error_deg(est, true, chair) > 85.0
