"""The validation report's table (training.real.evaluate): per family and overall, resumable rows."""

import json
from pathlib import Path

from training.real.evaluate import _read_rows, markdown_table, tables


def _row(name, family, condition, rot, rot_plain, iou=0.9, novel=0.7, ok=True):
    row = {"name": name, "family": family, "condition": condition, "steps": 10, "seconds": 2.0, "ok": ok}
    if ok:
        row.update(iou=iou, rot_err=rot, rot_err_plain=rot_plain, rot_err_sym=rot_plain, chamfer=0.02,
                   chamfer_all_faces=0.03, **{"fscore_0.01": 0.3, "fscore_0.02": 0.6}, normal_consistency=0.7,
                   novel_iou=novel)
    return row


def test_table_reports_each_family_and_all_with_the_mesh_turn_rule():
    rows = {10: [_row("a", "bar", "cutout", 2.0, 92.0),  # a stool turned onto itself: forgiven
                 _row("b", "bar", "cutout", 4.0, 4.0, iou=0.7, novel=0.5),
                 _row("c", "chair", "cutout", 150.0, 150.0, novel=None),  # a real flip
                 _row("d", "chair", "cutout", 0, 0, ok=False),
                 _row("e", "chair", "photo", 3.0, 3.0)]}
    table = tables(rows, ["cutout", "photo"], ["bar", "chair"])
    assert set(table) == {"cutout N=10 bar", "cutout N=10 chair", "cutout N=10 all", "photo N=10 bar",
                          "photo N=10 chair", "photo N=10 all"}
    bar, chair, everything = table["cutout N=10 bar"], table["cutout N=10 chair"], table["cutout N=10 all"]
    assert bar["rot_over_30"] == 0.0 and bar["rot_over_30_plain"] == 0.5
    assert abs(bar["iou"] - 0.8) < 1e-9 and abs(bar["novel_iou"] - 0.6) < 1e-9
    assert chair["images"] == 2 and chair["failed"] == 1 and chair["rot_over_30"] == 1.0
    assert "novel_iou" not in chair  # no other views scored
    assert everything["images"] == 4 and abs(everything["rot_over_30"] - 1 / 3) < 1e-9
    assert abs(everything["novel_iou"] - 0.6) < 1e-9  # the mean over the images that have other views
    assert table["photo N=10 bar"] == {"images": 0.0, "failed": 0.0, "seconds": 0.0}
    text = markdown_table({"table": table})
    lines = text.splitlines()
    assert len(lines) == 2 + 6
    assert "| cutout | 10 | all | 4 | 0.833 | 4.0 deg | 33% | 67% | 0.600 | - |" in text
    assert "| photo | 10 | bar | 0 | none scored |" in text


def test_rows_file_keeps_the_last_row_of_each_render_and_n(tmp_path):
    path = tmp_path / "rows.jsonl"
    first, again = _row("a", "bar", "cutout", 50.0, 50.0), _row("a", "bar", "cutout", 5.0, 5.0)
    other_n = {**_row("a", "bar", "cutout", 9.0, 9.0), "steps": 0}
    path.write_text("".join(json.dumps(r) + "\n" for r in (first, again, other_n)) + "\n")
    rows = _read_rows(path)
    assert len(rows) == 2
    assert {(r["steps"], r["rot_err"]) for r in rows} == {(10, 5.0), (0, 9.0)}
    assert _read_rows(tmp_path / "missing.jsonl") == []


def test_real_evaluate_scores_a_case_and_resumes(tmp_path, capsys):
    """One cut-out example through the public pipeline (N=0): every metric in range, the 'other view'
    that IS the input view gives the input view's IoU, and a rerun scores nothing again."""
    import numpy as np
    from PIL import Image

    from training.cli import main
    from training.data.chairs import chair_mesh, sample_chair

    root = Path(__file__).resolve().parents[1] / "examples"
    cam = next(c for c in json.loads((root / "cameras.json").read_text()) if c["file"] == "chair_dining.png")
    for sub in ("images", "masks", "meshes"):
        (tmp_path / sub).mkdir()
    rgba = Image.open(root / "chair_dining.png")
    rgba.save(tmp_path / "images" / "a.png")
    rgba.getchannel("A").save(tmp_path / "masks" / "a.png")
    verts, faces = chair_mesh(sample_chair(cam["seed"]), 48)
    np.savez(tmp_path / "meshes" / "a.npz", vertices=np.asarray(verts), faces=np.asarray(faces))
    view = {"cam2world": cam["cam2world"], "focal_px": cam["focal_px"], "cx": cam["width"] / 2,
            "cy": cam["height"] / 2, "width": cam["width"], "height": cam["height"]}
    case = {**view, "name": "a", "chair": "a", "family": "dining", "condition": "cutout", "image": "images/a.png",
            "mask": "masks/a.png", "mesh": "meshes/a.npz", "azimuth_deg": 0.0, "elevation_deg": 0.0, "lens_mm": 50.0,
            "others": [{**view, "image": "images/a.png", "mask": "masks/a.png"}]}
    (tmp_path / "cases.json").write_text(json.dumps({"cases": [case]}))
    rows = tmp_path / "rows.jsonl"
    argv = ["real-evaluate", "--cases", str(tmp_path / "cases.json"), "--steps", "0", "--threads", "1",
            "--mesh-resolution", "32", "--rows", str(rows)]
    assert main(argv) == 0
    (row,) = _read_rows(rows)
    assert row["ok"] and row["steps"] == 0 and row["family"] == "dining"
    # the same view placed by the input cameras: the same silhouette (the true masks differ only by 8-bit
    # rounding); placed about the object it need not be the input camera, but it sees the same chair
    assert abs(row["novel_iou_cameras"] - row["iou"]) < 2e-3 and row["iou"] > 0.5
    assert 0.3 < row["novel_iou"] <= 1
    assert 0 <= row["fscore_0.01"] <= row["fscore_0.02"] <= 1 and 0.3 < row["normal_consistency"] <= 1
    assert 0 < row["chamfer"] < 0.2 and row["rot_err"] <= row["rot_err_plain"] + 1e-9
    assert (tmp_path / "meshes" / "a.npz.turns.json").is_file()
    capsys.readouterr()
    assert main(argv) == 0  # resumed: nothing left to score, the table comes from the rows
    assert len(rows.read_text().splitlines()) == 1
    assert "| cutout | 0 | all | 1 |" in capsys.readouterr().out


def test_a_render_without_other_views_borrows_its_chairs_other_cutouts():
    import numpy as np

    from training.real.evaluate import other_cutouts

    def case(name, mesh, condition, shift):
        c2w = np.eye(4)
        c2w[0, 3] = shift
        return {"name": name, "mesh": mesh, "condition": condition, "cam2world": c2w.tolist(), "focal_px": 300.0,
                "cx": 128.0, "cy": 128.0, "width": 256, "height": 256, "image": f"images/{name}.png",
                "mask": f"masks/{name}.png"}

    cuts = [case("a_cutout_0", "a", "cutout", 0.0), case("a_cutout_1", "a", "cutout", 1.0),
            case("a_cutout_2", "a", "cutout", 2.0)]
    assert [o["mask"] for o in other_cutouts(cuts[1], cuts)] == ["masks/a_cutout_0.png", "masks/a_cutout_2.png"]
    photo = case("a_photo_0", "a", "photo", 2.0)  # rendered from a cut-out's camera: that view is no other view
    assert [o["mask"] for o in other_cutouts(photo, cuts)] == ["masks/a_cutout_0.png", "masks/a_cutout_1.png"]
    assert set(other_cutouts(photo, cuts)[0]) == {"cam2world", "focal_px", "cx", "cy", "width", "height", "image",
                                                  "mask"}


def test_an_other_view_is_placed_about_the_object_whatever_the_input_cameras_distance():
    import numpy as np

    from training.multiview import place_about_object, place_held_back
    from training.shape_metrics import rot_z

    def camera(azimuth, distance):
        a = np.radians(azimuth)
        eye = distance * np.array([np.sin(a), -np.cos(a), 0.3])
        forward = -eye / np.linalg.norm(eye)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(right, forward), -forward, eye
        return c2w

    true, held = camera(20, 3.0), camera(110, 3.0)
    origin = np.zeros(3)
    assert np.allclose(place_about_object(true, true, held, 1.0, origin, origin), held)
    # a lens guessed 1.4 times too long: the same view from 1.4 times farther
    far = camera(20, 4.2)
    assert np.allclose(place_about_object(far, true, held, 1.0, origin, origin), held)
    assert np.linalg.norm(place_held_back([far], [true], held)[:3, 3]) > 1.3 * 3.0  # shrinks the object
    # a pose turned by 90 deg about the up axis turns the other view with it; a larger, shifted mesh
    turn = np.eye(4)
    turn[:3, :3] = rot_z(90.0)
    placed = place_about_object(turn @ true, true, held, 2.0, np.array([0.1, 0.0, 0.0]), origin)
    expected = turn @ held
    assert np.allclose(placed[:3, :3], expected[:3, :3])
    assert np.allclose(placed[:3, 3], 2.0 * expected[:3, 3] + [0.1, 0.0, 0.0])


def test_real_build_leaves_a_finished_set_with_the_same_settings(tmp_path, capsys):
    from training.cli import main
    from training.real.build import finished

    settings = {"chairs_asked": None, "seed": 0, "views": 8, "size": 256, "samples": 64,
                "conditions": ["cutout", "photo"]}
    assert not finished(tmp_path, settings)  # nothing there
    (tmp_path / "manifest.json").write_text(json.dumps({**settings, "chairs": []}))
    assert not finished(tmp_path, settings)  # no cases.json: an interrupted build
    (tmp_path / "cases.json").write_text(json.dumps({"cases": []}))
    assert finished(tmp_path, settings)
    assert not finished(tmp_path, {**settings, "views": 4}) and not finished(tmp_path, {**settings, "chairs_asked": 2})
    assert main(["real-build", "--out", str(tmp_path)]) == 0
    assert "already built" in capsys.readouterr().out
