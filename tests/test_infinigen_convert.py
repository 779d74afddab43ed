"""Infinigen chairs -> canonical frame and cameras (training.infinigen.convert), on a small fixture made
from Infinigen (``make_chairs.py --fixture tests/fixtures/infinigen/chair_7``); Infinigen itself is not needed."""

import json
from pathlib import Path

import numpy as np
import pytest

from training.data.chairs import EXTENT
from training.infinigen import convert

FIXTURE = Path(__file__).parent / "fixtures" / "infinigen" / "chair_7"


def _fixture():
    with np.load(FIXTURE.with_suffix(".npz")) as d:
        v, f = d["vertices"].astype(np.float64), d["faces"].astype(np.int64)
    return v, f, json.loads(FIXTURE.with_suffix(".json").read_text())


def test_the_canonical_frame_is_the_projects():
    assert convert.EXTENT == EXTENT
    v, _, meta = _fixture()
    m, metric = convert.canonical_transform(v, convert.FRONT_YAW_DEG[meta["family"]])
    canon = convert.apply(m, v)
    lo, hi = canon.min(0), canon.max(0)
    assert np.allclose((lo + hi) / 2, 0, atol=1e-6)
    assert np.isclose((hi - lo).max(), EXTENT)
    assert 0.5 < metric < 1.5  # metres: a chair's largest side
    assert hi[2] - lo[2] == (hi - lo).max()  # upright: the chair is taller than deep or wide
    # the decimated fixture keeps the full mesh's transform (within the decimation's error)
    assert np.allclose(m, np.asarray(meta["canonical_transform"]), atol=0.05)


def test_the_front_faces_minus_y():
    v, _, meta = _fixture()
    yaw = convert.FRONT_YAW_DEG[meta["family"]]
    front = convert.back_offset(convert.apply(convert.canonical_transform(v, yaw)[0], v))
    assert front > 0.15  # the backrest (the top of the chair) stands behind the seat, at +Y
    assert np.isclose(front, meta["back_offset_full"], atol=0.1)  # decimation moves vertex weights
    # turned the other way round, the backrest would be in front
    assert convert.back_offset(convert.apply(convert.canonical_transform(v, yaw + 180)[0], v)) < -0.15
    # sideways: the backrest is neither in front nor behind
    assert abs(convert.back_offset(convert.apply(convert.canonical_transform(v, yaw + 90)[0], v))) < 0.15


def test_the_fixture_camera_follows_the_json_camera_convention():
    v, _, meta = _fixture()
    m = np.asarray(meta["canonical_transform"])
    canon = convert.apply(m, v)
    cam = meta["camera"]
    c2w = np.asarray(cam["cam2world"])
    assert np.allclose(c2w[:3, :3].T @ c2w[:3, :3], np.eye(3), atol=1e-9)  # a rotation, scale 1
    assert np.isclose(np.linalg.det(c2w[:3, :3]), 1.0)
    # azimuth 30: the camera stands on the -Y side, a little toward +X, above the chair, looking at it
    eye, forward = c2w[:3, 3], -c2w[:3, 2]
    assert eye[1] < 0 and eye[0] > 0 and eye[2] > 0
    assert np.isclose(np.degrees(np.arctan2(eye[0], -eye[1])), 30.0, atol=3.0)
    assert forward @ (-eye / np.linalg.norm(eye)) > 0.99
    assert abs(c2w[2, 0]) < 1e-9  # no roll: the image's x axis stays horizontal
    uv = convert.project(canon, c2w, cam["focal_px"], cam["cx"], cam["cy"])
    assert (uv >= 0).all() and (uv[:, 0] <= cam["width"]).all() and (uv[:, 1] <= cam["height"]).all()
    fill = (uv.max(0) - uv.min(0)).max() / cam["width"]
    assert abs(fill - cam["fill_target"]) < 0.03
    # the seat top projects above the legs' feet (y grows downward in pixels)
    assert uv[canon[:, 2].argmax(), 1] < uv[canon[:, 2].argmin(), 1]


def test_fit_camera_fills_the_frame_centred_and_never_cuts_off():
    v, _, meta = _fixture()
    canon = convert.apply(np.asarray(meta["canonical_transform"]), v)
    for az, el, mm, fill in ((0, 5, 35, 0.9), (137, 45, 60, 0.5), (260, 25, 50, 0.75)):
        focal = mm / 36 * 256
        c2w = convert.fit_camera(canon, az, el, focal, 256, fill)
        uv = convert.project(canon, c2w, focal, 128, 128)
        lo, hi = uv.min(0), uv.max(0)
        assert (lo >= 2).all() and (hi <= 254).all()
        assert abs((hi - lo).max() / 256 - fill) < 0.03
        assert np.allclose((lo + hi) / 2, 128, atol=3)


def test_validation_seeds_cycle_through_the_four_factories():
    families = [convert.case_seed(k)[0] for k in range(8)]
    assert families == list(convert.FAMILIES) * 2
    assert convert.case_seed(5)[1] == convert.VALIDATION_SEEDS[5] == 950_005
    assert set(convert.FACTORIES) == set(convert.FAMILIES) == set(convert.FRONT_YAW_DEG)


def test_tuning_seeds_are_apart_from_the_validation_seeds():
    assert convert.case_seed(5, convert.TUNING_SEEDS.start) == ("office", 970_005)
    assert not set(convert.TUNING_SEEDS) & set(convert.VALIDATION_SEEDS)
    with pytest.raises(ValueError, match="970000"):
        convert.case_seed(0, 123)
    assert convert.case_seed(3, convert.TRAINING_SEEDS.start) == ("armchair", 2_000_003)
    assert convert.case_seed(3, convert.TRAINING_SEEDS.start) == convert.training_seed(3)
