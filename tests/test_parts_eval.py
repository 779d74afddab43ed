"""The seat-recolor measurement: its z-buffered mesh drawing, the choice of the seat, the summary."""

import numpy as np

from training.parts_eval import draw_mesh, score, seat_part, summarize


def _camera_at_z(distance: float) -> np.ndarray:
    """cam2world of a camera on +Z looking down at the origin (Blender convention: looks along -Z)."""
    m = np.eye(4)
    m[2, 3] = distance
    return m


def _square(z: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_draw_mesh_covers_the_projected_square_and_keeps_the_nearest_surface():
    near_v, near_f = _square(0.5, 0.25)   # small square closer to the camera
    far_v, far_f = _square(0.0, 0.5)      # larger square behind it
    verts = np.concatenate([near_v, far_v])
    faces = np.concatenate([near_f, far_f + 4])
    attr = np.concatenate([np.ones((4, 1)), np.zeros((4, 1))])
    size, focal = 64, 64.0
    drawn, covered = draw_mesh(verts, faces, attr, _camera_at_z(2.0), focal, size / 2, size / 2, size, samples=200_000)
    # far square: half-width 0.5 at depth 2 -> 16 px either side of the centre; near: 0.25 at 1.5 -> ~10.7 px
    assert covered[16:48, 16:48].mean() > 0.97 and not covered[:14].any() and not covered[:, 50:].any()
    assert drawn[24:40, 24:40, 0].mean() > 0.99          # the near square hides the far one
    assert drawn[17:20, 17:47, 0].max() < 1e-9            # only the far square out there


def test_seat_part_is_the_most_visible_seat_and_ignores_rails():
    names = ["leg_fl", "seat", "seat_rail_l", "seat_cushion", "back"]
    assert seat_part(names, np.array([50, 10, 400, 30, 90])) == 3
    assert seat_part(names, np.array([50, 0, 400, 0, 90])) is None


def test_summary_pools_pixels_and_separates_chairs_painted_in_one_color():
    rows = [{"seat_seen": True, "parts": 2, "seat_pixels": 100, "seat_changed": 90, "other_pixels": 200,
             "other_changed": 10, "other_like_seat": 0.1},
            {"seat_seen": True, "parts": 2, "seat_pixels": 100, "seat_changed": 70, "other_pixels": 200,
             "other_changed": 190, "other_like_seat": 0.9},
            {"seat_seen": False}]
    s = summarize(rows)
    assert s["seat_seen"] == 2 and abs(s["seat_changed_pooled"] - 0.8) < 1e-9
    assert abs(s["other_changed_pooled"] - 0.5) < 1e-9 and s["colors_apart"] == 1
    assert abs(s["other_changed_pooled_colors_apart"] - 0.05) < 1e-9
    assert s["chairs_seat_ge_80"] == 0.5 and s["chairs_other_le_10"] == 0.5


def test_score_on_a_synthetic_two_part_reconstruction(monkeypatch):
    """Seat pixels take the new fabric; pixels of a differently painted part keep their color."""
    import types

    from core.mesh import Mesh
    from core.parts import merge_slots
    from core.result import CameraInfo
    from training import parts_eval

    seat_v, seat_f = _square(0.5, 0.25)
    back_v, back_f = _square(0.0, 0.5)
    verts = np.concatenate([seat_v, back_v]).astype(np.float32)
    faces = np.concatenate([seat_f, back_f + 4])
    slot_weights = np.concatenate([np.tile([0.95, 0.05], (4, 1)), np.tile([0.02, 0.98], (4, 1))])
    parts = merge_slots(slot_weights, np.array([[1.0, 1.0, 1.0], [-2.0, -2.0, -1.0]]))
    mesh = Mesh(verts, faces, parts.colors(), parts=parts)
    cam = CameraInfo(_camera_at_z(2.0), 128.0, 128, 128, 64.0, 64.0)
    result = types.SimpleNamespace(mesh=mesh, camera=cam)
    # true parts: the inner square is the seat (part 1), the rest the back (part 0), painted differently
    truth = np.full((parts_eval.VIEW, parts_eval.VIEW), -1)
    truth[32:96, 32:96] = 0
    truth[42:86, 42:86] = 1  # the near square spans 64 -+ 128 * 0.25 / 1.5 pixels
    monkeypatch.setattr(parts_eval, "true_parts",
                        lambda seed, camera: (truth, ["back", "seat"], np.array([[0.1, 0.1, 0.2], [0.8, 0.8, 0.8]])))
    row = score({"seed": 0, "family": "test", "cam_in": None}, result)
    assert row["seat_seen"] and row["seat_changed"] / row["seat_pixels"] > 0.95
    assert row["other_changed"] / row["other_pixels"] < 0.02
