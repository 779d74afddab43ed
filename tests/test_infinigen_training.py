"""Infinigen training chairs for the generator: seeds, the format make_training.py writes (a reduced
fixture, ``make_training.py --fixture tests/fixtures/infinigen/chair_2000000.npz``, made from the
``chair_7`` fixture mesh), and train-generator on both sources. Infinigen itself is not needed."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.infinigen import convert

FIXTURES = Path(__file__).parent / "fixtures" / "infinigen"
TRAIN = FIXTURES / "chair_2000000.npz"


def _mesh():
    with np.load(FIXTURES / "chair_7.npz") as d:
        v, f = d["vertices"].astype(np.float64), d["faces"].astype(np.int64)
    meta = json.loads((FIXTURES / "chair_7.json").read_text())
    return convert.apply(np.asarray(meta["canonical_transform"]), v), f


def _full_size(folder: Path, seeds=(0,)) -> Path:
    """Training chairs in ``folder`` with the full point counts: the fixture's points repeated."""
    from training.train_generator import POINTS_PER_SHAPE

    folder.mkdir(parents=True, exist_ok=True)
    with np.load(TRAIN) as z:
        d = dict(z)
    for k in ("points", "sdf", "albedo"):
        d[k] = np.resize(d[k], (POINTS_PER_SHAPE, *d[k].shape[1:]))
    for k in ("surface_points", "surface_albedo", "surface_normals"):
        d[k] = np.resize(d[k], (POINTS_PER_SHAPE // 4, 3))
    for k in seeds:
        family, seed = convert.training_seed(k)
        np.savez_compressed(folder / f"{family}_{seed}.npz", **d)
    return folder


def test_training_seeds_are_disjoint_from_every_other_use():
    from training.data import EVAL_SEEDS, EXAMPLE_SEEDS, EXTRA_SEEDS, TRAIN_SEEDS
    from training.infinigen import make_training
    from training.train_generator import POINTS_PER_SHAPE, SILHOUETTE_SIZE, SILHOUETTE_VIEWS

    train = set(convert.TRAINING_SEEDS)
    for other in (convert.VALIDATION_SEEDS, convert.TUNING_SEEDS, range(970_000, 980_000), TRAIN_SEEDS,
                  EVAL_SEEDS, EXTRA_SEEDS, EXAMPLE_SEEDS, range(600_000, 700_000)):
        assert train.isdisjoint(other)
    assert [convert.training_seed(k) for k in range(5)] == [
        ("chair", 2_000_000), ("office", 2_000_001), ("bar", 2_000_002), ("armchair", 2_000_003), ("chair", 2_000_004)]
    with pytest.raises(ValueError):
        convert.training_seed(len(convert.TRAINING_SEEDS))
    # make_training writes what the generator trains on
    assert (make_training.POINTS, make_training.VIEWS, make_training.VIEW_SIZE) == (
        POINTS_PER_SHAPE, SILHOUETTE_VIEWS, SILHOUETTE_SIZE)


def _inside_by_rays(v, f, q):
    """Reference: a point is inside when none of 26 rays from it escapes the mesh (Moller-Trumbore)."""
    dirs = np.array([(x, y, z) for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1) if (x, y, z) != (0, 0, 0)],
                    float)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    a, e1, e2 = v[f[:, 0]], v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    inside = np.ones(len(q), bool)
    for d in dirs:
        p = np.cross(d, e2)  # (F, 3)
        det = (e1 * p).sum(-1)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1 / np.where(ok, det, 1), 0)
        s = q[:, None] - a[None]  # (Q, F, 3)
        u = (s * p).sum(-1) * inv
        qv = np.cross(s, e1)
        w = (qv * d).sum(-1) * inv
        t = (qv * e2).sum(-1) * inv
        hit = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 1e-9)
        inside &= hit.any(1)
    return inside


def test_the_fixture_sdf_and_surface_agree_with_the_mesh():
    v, f = _mesh()
    with np.load(TRAIN) as d:
        pts, sdf = d["points"].astype(np.float64), d["sdf"].astype(np.float64)
        sp, sn = d["surface_points"].astype(np.float64), d["surface_normals"].astype(np.float64)
        albedo = d["albedo"].astype(np.float64)
    # the sign: the winding number against a ray-escape test of the same mesh
    agree = ((sdf < 0) == _inside_by_rays(v, f, pts)).mean()
    assert agree >= 0.97, agree
    assert 0.05 < (sdf < 0).mean() < 0.5
    # |sdf| is a distance: no point is farther from every vertex than its |sdf| allows (vertices are on the mesh)
    nearest_vertex = np.linalg.norm(pts[:, None] - v[None], axis=-1).min(1)
    assert (np.abs(sdf) <= nearest_vertex + 2e-3).all()
    # surface samples lie on the mesh's outer surface, their normals point out of the chair
    assert np.allclose(np.linalg.norm(sn, axis=-1), 1, atol=2e-3)
    assert not _inside_by_rays(v, f, sp + 0.01 * sn).any()
    assert _inside_by_rays(v, f, sp - 0.005 * sn).mean() > 0.8  # parts thinner than 1 cm excepted
    # the fixture's base colour is 0.5 linear: 0.735 as sRGB display values, as training.data.chairs gives
    assert np.allclose(albedo, 0.7354, atol=2e-3)


def test_the_fixture_silhouettes_use_the_projects_cameras():
    from core.geometry.camera import Camera, project_depth

    with np.load(TRAIN) as d:
        c2w, focal, alpha, sp = d["cam2world"], d["focal"], d["alpha"], d["surface_points"].astype(np.float32)
    assert alpha.dtype == np.uint8 and alpha.shape == (6, 48, 48)
    n = alpha.shape[1]
    for i in range(len(c2w)):
        cam = Camera(torch.from_numpy(c2w[i])[None], torch.tensor([float(focal[i])]), torch.tensor([n / 2]),
                     torch.tensor([n / 2]), n, n)
        uv, depth = project_depth(cam, torch.from_numpy(sp)[None])
        px = uv[0].floor().long().clamp(0, n - 1).numpy()
        grown = torch.nn.functional.max_pool2d(torch.from_numpy(alpha[i]).float()[None], 3, 1, 1)[0].numpy()
        assert (depth > 0).all()  # every surface point falls on the silhouette (thin parts within a pixel)
        assert (alpha[i][px[:, 1], px[:, 0]] > 0).mean() > 0.9 and (grown[px[:, 1], px[:, 0]] > 0).all()
        assert 0.05 < alpha[i].mean() / 255 < 0.6  # the chair fills part of the frame, as in sample_view
        lens_mm = float(focal[i]) / n * 36
        assert 35 - 1e-3 <= lens_mm <= 60 + 1e-3


def test_load_shape_reads_the_training_format_and_refuses_bad_files(tmp_path):
    from training.infinigen.dataset import list_seeds, load_shape, load_silhouettes
    from training.train_generator import POINTS_PER_SHAPE, SILHOUETTE_SIZE, SILHOUETTE_VIEWS, _make_shape

    folder = _full_size(tmp_path / "ig", seeds=(0, 1))
    assert list_seeds(folder) == [2_000_000, 2_000_001] and list_seeds(folder, 1) == [2_000_000]
    shape = load_shape(folder, 2_000_001, POINTS_PER_SHAPE)
    ref = _make_shape(3)
    assert shape.keys() == ref.keys()
    for k in ref:
        assert shape[k].dtype == torch.float32 and shape[k].shape == ref[k].shape, k
    with np.load(TRAIN) as d:
        assert np.array_equal(shape["sdf"][:256].numpy(), d["sdf"].astype(np.float32))
    views = load_silhouettes(folder, 2_000_000, SILHOUETTE_VIEWS, SILHOUETTE_SIZE)
    assert views["alpha"].dtype == torch.uint8 and views["cam2world"].shape == (6, 4, 4)
    # bad input: one clear line naming the file
    with pytest.raises(ValueError, match="fewer than the 3"):
        list_seeds(folder, 3)
    with pytest.raises(ValueError, match="no such folder"):
        list_seeds(tmp_path / "missing")
    bad = folder / "office_2000001.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="office_2000001.npz: not a training chair"):
        load_shape(folder, 2_000_001, POINTS_PER_SHAPE)
    with pytest.raises(ValueError, match="'points' has shape"):
        load_shape(folder, 2_000_000, 1024)


def test_draw_batch_keeps_the_procedural_draw_and_mixes_at_the_share():
    from training.train_generator import draw_batch

    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(20):  # without Infinigen chairs: exactly the draw train-generator always made
        assert torch.equal(draw_batch(a, 30, 6), torch.as_tensor(b.choice(30, 6, replace=False)))
    rng = np.random.default_rng(0)
    batches = torch.stack([draw_batch(rng, 40, 6, 20, 0.3) for _ in range(3000)])
    assert all(len(set(x.tolist())) == 6 for x in batches[:100])  # no chair twice in a batch
    assert abs(float((batches >= 20).float().mean()) - 0.3) < 0.02
    assert bool((draw_batch(rng, 40, 6, 20, 1.0) >= 20).all()) and bool((draw_batch(rng, 40, 6, 20, 0.0) < 20).all())


def test_train_generator_on_both_sources(tmp_path):
    """A procedural run resumed with --infinigen: the cache keeps its chairs and adds the Infinigen ones
    read from their files, their codes are fitted, training goes on with every chair (silhouettes too)."""
    from core.config import tiny_config
    from training.cli import main as cli
    from training.train_generator import train_generator

    folder = _full_size(tmp_path / "ig", seeds=(0, 1))
    out = tmp_path / "gen"
    run = dict(shapes=2, batch_size=2, points=256, seed=0, threads=1, config=tiny_config(), render_weight=1.0,
               render_rays=32)
    train_generator(out, iters=2, **run)
    before = torch.load(out / "chairs_cache.pt", weights_only=True)
    path = train_generator(out, iters=4, fit_steps=2, infinigen=folder, infinigen_share=0.5, **run)
    after = torch.load(out / "chairs_cache.pt", weights_only=True)
    assert after["seeds"].tolist() == [0, 1, 2_000_000, 2_000_001]
    assert torch.equal(after["points"][:2], before["points"])
    with np.load(TRAIN) as d:
        assert np.array_equal(after["sdf"][3, :256].numpy(), d["sdf"].astype(np.float32))
    views = torch.load(out / "silhouettes.pt", weights_only=True)
    assert views["alpha"].shape == (4, 6, 48, 48)
    with np.load(TRAIN) as d:
        assert np.array_equal(views["alpha"][2].numpy(), d["alpha"])
    ckpt = torch.load(out / "generator_ckpt.pt", weights_only=True)
    assert ckpt["iteration"] == 4 and ckpt["codes"].shape[0] == 4 and ckpt["infinigen_shapes"] == 2
    assert torch.load(path, weights_only=True)["infinigen_shapes"] == 2
    # a folder whose chairs changed under a checkpoint is refused (the codes follow the chairs' order)
    (folder / "chair_2000000.npz").unlink()
    _full_size(folder, seeds=(2,))
    with pytest.raises(ValueError, match="other chairs"):
        train_generator(out, iters=5, infinigen=folder, **run)
    with pytest.raises(SystemExit, match="no such folder"):
        cli(["train-generator", "--out", str(tmp_path / "x"), "--shapes", "2", "--iters", "1", "--tiny",
             "--infinigen", str(tmp_path / "missing")])


def test_parts_turned_inside_out_are_turned_back_and_colours_interpolate():
    from training.infinigen.make_training import _barycentric, orient_parts

    # two tetrahedra: the first outward, the second inside out (negative signed volume)
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    out_faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    v = np.concatenate([tet, tet + 3])
    f = np.concatenate([out_faces, out_faces[:, [0, 2, 1]] + 4])
    fixed = orient_parts({"vertices": v, "faces": f})["faces"]
    assert np.array_equal(fixed[:4], f[:4]) and np.array_equal(fixed[4:], out_faces + 4)

    def volume(faces):
        return np.einsum("ij,ij->i", v[faces[:, 0]], np.cross(v[faces[:, 1]], v[faces[:, 2]])).sum() / 6

    assert volume(fixed[4:]) > 0 > volume(f[4:])
    w = _barycentric(v, f, np.array([3, 3]), np.array([[0.2, 0.3, 0.5], [2.0, 0.0, 0.0]]))
    assert np.allclose(w[0], [0.2, 0.3, 0.5]) and np.allclose(w[1], [1, 0, 0])  # outside: clipped to a corner
