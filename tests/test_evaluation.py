"""The measuring tools of training/: outer surface of a true mesh, segmentation benchmark."""

import numpy as np
import trimesh

from training.evaluate import chamfer_l1, outer_samples


def _boxes(*boxes):
    parts = [trimesh.creation.box(extents=ext, transform=trimesh.transformations.translation_matrix(at))
             for ext, at in boxes]
    mesh = trimesh.util.concatenate(parts)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def test_outer_samples_drop_faces_hidden_inside_the_object():
    # a seat box with a leg pushed half into it: the leg's top half and its top face are inside the seat
    v, f = _boxes(((1.0, 1.0, 0.2), (0, 0, 0.5)), ((0.1, 0.1, 0.6), (0, 0, 0.3)))
    pts = outer_samples(v, f, n=4000)
    lo, hi = v.min(0), v.max(0)
    world = pts * np.linalg.norm(hi - lo) + (lo + hi) / 2
    assert len(pts) == 4000
    inside_seat = (np.abs(world[:, 0]) < 0.45) & (np.abs(world[:, 1]) < 0.45) & (np.abs(world[:, 2] - 0.5) < 0.08)
    assert not inside_seat.any()
    assert (world[:, 2] < 0.35).any()  # the leg's visible part is kept
    # a closed box keeps its whole surface: every face is drawn from
    v1, f1 = _boxes(((1.0, 0.6, 0.4), (0, 0, 0)))
    box = outer_samples(v1, f1, n=3000)
    extent = box.max(0) - box.min(0)
    assert np.allclose(extent, np.array([1.0, 0.6, 0.4]) / np.linalg.norm([1.0, 0.6, 0.4]), atol=0.02)


def test_hidden_faces_inflate_chamfer_against_all_faces():
    seat_and_leg = _boxes(((1.0, 1.0, 0.2), (0, 0, 0.5)), ((0.1, 0.1, 0.6), (0, 0, 0.3)))
    # the same object built without overlap: the leg stops under the seat
    clean = _boxes(((1.0, 1.0, 0.2), (0, 0, 0.5)), ((0.1, 0.1, 0.4), (0, 0, 0.2)))
    every_face = chamfer_l1(*clean, *seat_and_leg)
    outer = chamfer_l1(*clean, *seat_and_leg, b_samples=outer_samples(*seat_and_leg))
    assert outer < every_face


def test_segment_evaluate_scores_procedural_photos(capsys):
    from training.cli import main

    assert main(["segment-evaluate", "--images", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "| procedural | auto | 2 |" in out and "| procedural | net | 2 |" in out
    assert main(["segment-evaluate", "--images", "0"]) == 2
    assert "nothing to measure" in capsys.readouterr().out


def test_bench_times_one_object_against_single_photos(capsys):
    from training.cli import main

    assert main(["bench", "--joint", "--steps", "0", "--repeat", "1", "--mesh-resolution", "32", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| cpu | 2 | 0 |" in out
