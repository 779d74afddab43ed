"""Recolorable parts: slot weights from the generator, merged parts, exact colors in files, recolor()."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import shipped_bars as bars
import torch
import trimesh

from core.api import reconstruct
from core.config import tiny_config
from core.field.generator import Generator, widened_sigmoid
from core.io.export import _glb_bytes
from core.mesh import Mesh
from core.parts import MAX_PARTS, dominance, inverse_widened_sigmoid, merge_slots, recolor, slot_groups
from core.parts import widened_sigmoid as np_widened_sigmoid
from test_api import _chair_like_png  # the same synthetic cut-out photo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "chair_dining.png"


def test_query_weights_mix_the_palette_into_the_same_albedo():
    torch.manual_seed(0)
    gen = Generator(tiny_config().generator).eval()
    with torch.no_grad():
        state = gen.decode(torch.randn(2, gen.cfg.w_dim))
        points = torch.rand(2, 300, 3) * 2 - 1
        plain = gen.query(state, points)
        both = gen.query(state, points, with_weights=True)
    assert plain.weights is None
    assert torch.equal(plain.rgb, both.rgb) and torch.equal(plain.sdf, both.sdf)
    assert both.weights.shape == (2, 300, gen.cfg.color_k)
    assert torch.allclose(both.weights.sum(-1), torch.ones(2, 300), atol=1e-5)
    mixed = widened_sigmoid(torch.einsum("bnk,bkc->bnc", both.weights, state.color_values))
    assert torch.allclose(mixed, both.rgb, atol=1e-6)


def _random_slots(v=400, k=16, seed=0, concentration=0.2):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, concentration), size=v), rng.normal(0.0, 2.0, (k, 3))


def test_merged_parts_reproduce_the_slot_mix_exactly():
    a, values = _random_slots()
    parts = merge_slots(a, values)
    assert 1 <= parts.count <= MAX_PARTS and parts.weights.shape == (400, parts.count)
    assert np.allclose(parts.weights.sum(1), 1.0, atol=1e-5)
    assert set(parts.slot_part.tolist()) == set(range(parts.count))  # every part holds a slot
    truth = np.clip(widened_sigmoid(torch.from_numpy(a @ values)).numpy(), 0, 1)
    assert np.abs(parts.colors() - truth).max() < 1e-5
    # part 0 is the slot that dominates the most vertices
    top = np.bincount(a.argmax(1), minlength=16).argmax()
    assert parts.slot_part[top] == 0
    assert inverse_widened_sigmoid(parts.part_colors()) == pytest.approx(parts.values, abs=1e-3)


def test_dominance_counts_rows_with_one_large_weight():
    w = np.array([[0.9, 0.1], [0.5, 0.5], [0.8, 0.2], [0.1, 0.9]])
    assert dominance(w) == 0.75 and dominance(w, 0.95) == 0.0


def test_recolor_moves_only_the_vertices_that_carry_the_part():
    a, values = _random_slots(seed=1, concentration=0.02)
    parts = merge_slots(a, values)
    mesh = Mesh(np.zeros((400, 3), np.float32), np.array([[0, 1, 2]], np.int32), parts.colors(), parts)
    target = (0.1, 0.8, 0.3)
    new = recolor(mesh, {0: target})
    assert new is not mesh and np.array_equal(mesh.colors, parts.colors())  # the input is untouched
    change = np.abs(new.colors - mesh.colors).max(1)
    w0 = parts.weights[:, 0]
    assert (w0 < 1e-3).any() and (w0 > 0.99).any()
    assert change[w0 < 1e-3].max() < 1.0 / 255  # no weight on the part: no change
    assert change[w0 > 0.99].min() > 0.02  # dominated by the part: recolored
    # the new colors are the same mix with the part's new value
    z = torch.from_numpy(parts.weights.astype(np.float64) @ new.parts.values + parts.residual)
    assert np.allclose(new.colors, np.clip(widened_sigmoid(z).numpy(), 0, 1), atol=1e-5)
    assert np.allclose(new.parts.part_colors()[0], target, atol=1e-5)
    # recolorings compose and the original color comes back
    back = recolor(new, {0: parts.part_colors()[0]})
    assert np.abs(back.colors - mesh.colors).max() < 1e-4
    with pytest.raises(ValueError, match="part 9"):
        recolor(mesh, {9: target})
    with pytest.raises(ValueError, match="no color parts"):
        recolor(Mesh(mesh.vertices, mesh.faces, mesh.colors), {0: target})


def _ply_vertices(path: Path) -> np.ndarray:
    """The PLY's vertex records as a structured array (binary little-endian, float/uchar properties)."""
    data = path.read_bytes()
    head, body = data.split(b"end_header\n", 1)
    names, types, count = [], [], 0
    for line in head.decode().splitlines():
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count = int(parts[2])
        elif parts[0] == "property" and parts[1] != "list":
            names.append(parts[2])
            types.append({"float": "<f4", "uchar": "u1"}[parts[1]])
        elif parts[:2] == ["element", "face"]:
            break
    return np.frombuffer(body, dtype=np.dtype(list(zip(names, types))), count=count)


def test_exported_files_carry_weights_and_palette_that_reproduce_the_colors(tiny_model_dir, tmp_path):
    good = _chair_like_png(tmp_path / "good.png")
    (res,) = reconstruct([good], model="tiny", model_dirs=[tiny_model_dir], steps=0, mesh_resolution=32,
                         out_dir=tmp_path / "out", fmt="ply")
    assert res.ok, res.error
    parts = res.mesh.parts
    assert parts is not None and parts.slot_values.shape == (tiny_config().generator.color_k, 3)
    assert np.abs(parts.colors() - res.mesh.colors).max() < 1e-5
    palette = json.loads(Path(res.json_path).read_text())["palette"]
    assert len(palette["parts"]) == parts.count and len(palette["slots"]) == len(parts.slot_values)
    rows = _ply_vertices(Path(res.mesh_path))
    weights = np.stack([rows[f"part_{p}"] for p in range(parts.count)], 1).astype(np.float64)
    residual = np.stack([rows[f"residual_{c}"] for c in "rgb"], 1).astype(np.float64)
    values = np.array([p["value"] for p in palette["parts"]])
    z = weights @ values + residual
    again = np.clip((1 / (1 + np.exp(-z))) * (1 + 2 * palette["eps"]) - palette["eps"], 0, 1)
    exported = np.stack([rows[c] for c in ("red", "green", "blue")], 1) / 255.0
    assert np.abs(again - exported).max() <= 1.0 / 255 + 1e-6
    # the slots of each part are listed with the part they went to
    for p, part in enumerate(palette["parts"]):
        assert all(palette["slots"][k]["part"] == p for k in part["slots"])


def test_glb_has_the_part_attributes():
    a, values = _random_slots(v=3)
    parts = merge_slots(a, values, min_share=0.0)
    mesh = Mesh(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]], np.int32), parts.colors(), parts)
    data = _glb_bytes(mesh, "m")
    size = struct.unpack("<I", data[12:16])[0]
    tree = json.loads(data[20:20 + size])
    attributes = tree["meshes"][0]["primitives"][0]["attributes"]
    assert {"COLOR_0", "_PART_WEIGHTS_0", "_PART_WEIGHTS_1", "_COLOR_RESIDUAL"} <= set(attributes)
    assert tree["accessors"][attributes["_PART_WEIGHTS_0"]]["type"] == "VEC4"
    loaded = trimesh.load(trimesh.util.wrap_as_stream(data), file_type="glb", force="mesh", process=False)
    assert len(loaded.vertices) == 3


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the example photo is not in this checkout")
def test_shipped_model_parts_on_a_real_chair(tmp_path):
    (res,) = reconstruct([EXAMPLE], steps=0, mesh_resolution=64)
    assert res.ok, res.error
    parts = res.mesh.parts
    assert 2 <= parts.count <= MAX_PARTS
    assert np.abs(parts.colors() - res.mesh.colors).max() < 1.0 / 255
    # the shipped model's slots follow named part groups: the dining chair has a seat, a back and a frame
    assert {"seat", "back", "frame"} <= {n.split()[0] for n in parts.names} and len(parts.names) == parts.count
    # many vertices lean on one part (thresholds and measured values: tests/shipped_bars.py)
    assert bars.PARTS_DOMINANCE.holds(dominance(parts.weights))
    seat = parts.names.index("seat")
    new = recolor(res, {seat: (0.9, 0.1, 0.1)})
    change = np.abs(new.colors - res.mesh.colors).max(1)
    w = parts.weights[:, seat]
    free = w < 1e-3  # vertices the seat does not touch (the frame's legs, the back): their colours stay
    assert bars.PARTS_SEAT_FREE.holds(free.mean())
    assert change[free].max() < 1.0 / 255
    assert bars.PARTS_SEAT_CHANGE.holds(np.median(change[w > 0.8]))
    assert bars.PARTS_FRAME_CHANGE.holds(np.median(change[parts.weights[:, parts.names.index("frame")] > 0.8]))


def test_parts_of_named_groups_carry_their_names():
    """A model whose slots follow named groups (train-slots): each part is named after its first slot's group."""
    rng = np.random.default_rng(0)
    k, v = 8, 600
    names = ("seat", "back", "arms", "frame")
    groups = slot_groups(k, 4)  # slots 0-1 seat, 2-3 back, 4-5 arms, 6-7 frame
    assert groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    dominant = rng.choice([0, 1, 2, 6, 7], v, p=[0.35, 0.12, 0.25, 0.2, 0.08])  # no arms on this chair
    logits = rng.normal(0, 0.3, (v, k))
    logits[np.arange(v), dominant] += 4.0
    a = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    values = rng.normal(0, 1, (k, 3))
    parts = merge_slots(a, values, group_names=names)
    assert parts.names == ("seat", "back", "frame", "seat 2", "frame 2")
    for p, name in enumerate(parts.names):  # a part's founding slot (its most frequent one) is in its group
        founder = max(np.flatnonzero(parts.slot_part == p), key=lambda s: (a.argmax(1) == s).sum())
        assert names[groups[founder]] == name.split()[0]
    np.testing.assert_allclose(parts.colors(), np.clip(np_widened_sigmoid(a @ values), 0, 1), atol=1e-5)
    assert [q["name"] for q in parts.to_json()["parts"]] == list(parts.names)
    assert merge_slots(a, values).names == ()
