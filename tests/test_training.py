"""Training code: the SDF loss, and that both training commands run, checkpoint, resume and write a model."""

import json

import numpy as np
import pytest
import torch

from core.config import tiny_config
from training.train_generator import SDF_CLAMP, sdf_loss


def test_sdf_loss_pulls_far_off_predictions():
    # a point inside a leg (target -0.01) where the initial sphere says +0.4: must get a gradient
    pred = torch.tensor([0.4], requires_grad=True)
    sdf_loss(pred, torch.tensor([-0.01])).backward()
    assert pred.grad[0] > 0  # gradient descent lowers the prediction
    # far outside on the right side: nothing to learn; on the wrong side: a loss
    assert float(sdf_loss(torch.tensor([0.3]), torch.tensor([0.5]))) == 0.0
    assert float(sdf_loss(torch.tensor([-0.3]), torch.tensor([0.5]))) > 0.3
    # near the surface: plain (weighted) L1
    near = sdf_loss(torch.tensor([0.02]), torch.tensor([0.01]))
    assert abs(float(near) - 5 * 0.01) < 1e-6
    assert SDF_CLAMP == 0.1


def test_train_generator_learns_resumes_and_writes(tmp_path):
    from training.train_generator import train_generator

    out = tmp_path / "gen"
    path = train_generator(out, shapes=2, iters=4, batch_size=2, points=512, seed=0, threads=1, config=tiny_config())
    first = torch.load(out / "generator_ckpt.pt", weights_only=True)
    assert first["iteration"] == 4 and path.exists()
    # resuming continues from the checkpoint and trains further (the cache is reused)
    train_generator(out, shapes=2, iters=40, batch_size=2, points=512, seed=0, threads=1, config=tiny_config())
    second = torch.load(out / "generator_ckpt.pt", weights_only=True)
    assert second["iteration"] == 40
    final = torch.load(path, weights_only=True)
    assert final["iterations"] == 40
    assert final["generator"]["w_std"].min() > 0  # w statistics for the encoder were measured


def test_train_generator_adds_chairs_of_the_later_families_to_a_checkpoint(tmp_path):
    """--extra-shapes on a checkpoint without their codes: the cache keeps the chairs it has and builds
    the new ones, their codes are fitted, and training goes on with every chair."""
    from training.data import EXTRA_SEEDS
    from training.train_generator import train_generator

    out = tmp_path / "gen"
    run = dict(shapes=2, batch_size=2, points=512, seed=0, threads=1, config=tiny_config())
    train_generator(out, iters=4, **run)
    before = torch.load(out / "chairs_cache.pt", weights_only=True)
    path = train_generator(out, iters=8, extra_shapes=2, fit_steps=3, **run)
    after = torch.load(out / "chairs_cache.pt", weights_only=True)
    assert after["seeds"].tolist() == [0, 1, EXTRA_SEEDS[0], EXTRA_SEEDS[1]]
    assert torch.equal(after["points"][:2], before["points"])
    ckpt = torch.load(out / "generator_ckpt.pt", weights_only=True)
    assert ckpt["iteration"] == 8 and ckpt["codes"].shape[0] == 4 and ckpt["extra_shapes"] == 2
    assert ckpt["codes"][2:].abs().sum() > 0
    final = torch.load(path, weights_only=True)
    assert final["codes"].shape[0] == 4 and final["extra_shapes"] == 2


def test_train_generator_lowers_the_sdf_loss(tmp_path):
    from core.field.generator import Generator
    from training.train_generator import LOSS_WEIGHTS, build_dataset, generator_losses

    cfg = tiny_config()
    data = build_dataset(tmp_path / "cache.pt", [0, 1], workers=1)
    torch.manual_seed(0)
    gen = Generator(cfg.generator)
    codes = torch.nn.Parameter(torch.randn(2, cfg.generator.z_dim))
    opt = torch.optim.Adam(list(gen.parameters()) + [codes], lr=3e-3)
    batch = {k: data[k][:, :1024] for k in ("points", "sdf", "albedo", "surface_points", "surface_albedo",
                                           "surface_normals")}
    history = []
    for _ in range(60):
        loss, terms = generator_losses(gen, codes, batch, LOSS_WEIGHTS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(terms["sdf"])
    assert sum(history[-5:]) / 5 < 0.6 * sum(history[:5]) / 5


def test_fold_code_distribution_makes_standard_normal_z_sample_like_the_codes():
    from core.field.generator import Generator
    from training.train_generator import fold_code_distribution

    cfg = tiny_config().generator
    torch.manual_seed(0)
    gen = Generator(cfg)
    codes = torch.randn(4000, cfg.z_dim) * torch.linspace(0.2, 3.0, cfg.z_dim) + 1.5
    first = gen.mapping.net[0]
    with torch.no_grad():
        before = first(codes[:5])
        mu = codes.mean(0)
        chol = torch.linalg.cholesky(torch.cov(codes.T) + 1e-4 * torch.eye(cfg.z_dim))
        z = torch.linalg.solve_triangular(chol, (codes[:5] - mu).T, upper=False).T  # the codes' standard coordinates
        folded = fold_code_distribution(gen, codes)
        after = first(z)
    assert torch.allclose(before, after, atol=1e-3)
    assert torch.allclose(folded[:5], z, atol=1e-4)  # returned: the codes as z of the folded mapping
    assert abs(float(folded.std(0).mean()) - 1.0) < 0.05


def test_bootstrap_z_near_the_codes():
    from training.train_encoder import CODE_NOISE, sample_z

    codes = torch.randn(50, 8) * 3
    plain = sample_z(400, 8, torch.Generator().manual_seed(0))
    assert torch.equal(plain, sample_z(400, 8, torch.Generator().manual_seed(0), codes, 0.0))
    near = sample_z(400, 8, torch.Generator().manual_seed(0), codes, 1.0)
    nearest = torch.cdist(near, codes).min(1).values
    assert float(nearest.max()) < 8 * CODE_NOISE  # every sample sits next to a training chair
    mixed = sample_z(400, 8, torch.Generator().manual_seed(0), codes, 0.5)
    share = float((torch.cdist(mixed, codes).min(1).values < 6 * CODE_NOISE).float().mean())
    assert 0.35 < share < 0.65


def test_train_encoder_writes_a_loadable_model(tmp_path):
    from core.model import load_model
    from training.common import load_checkpoint, save_checkpoint
    from training.train_encoder import train_encoder
    from training.train_generator import train_generator

    gen_path = train_generator(tmp_path / "gen", shapes=2, iters=2, batch_size=2, points=256, seed=0, threads=1,
                               config=tiny_config())
    train_encoder(gen_path, tmp_path / "enc", n_images=16, iters=3, batch_size=4, seed=0, threads=1,
                  write=tmp_path / "models" / "tinytrained", name="tinytrained")
    model = load_model(str(tmp_path / "models" / "tinytrained.json"))
    assert model.cfg.name == "tinytrained"
    card = (tmp_path / "models" / "tinytrained.json").read_text()
    assert '"validation"' in card
    assert json.loads(card)["card"]["generator"]["infinigen_shapes"] == 0  # the generator's sources are named
    # --init starts from that model's encoder (0 iterations: the weights come through unchanged)
    tuned = train_encoder(gen_path, tmp_path / "enc2", n_images=16, iters=0, batch_size=4, seed=1, threads=1,
                          write=None, name="tinytrained", init=str(tmp_path / "models" / "tinytrained.json"))
    for key, value in model.encoder.state_dict().items():
        if key not in ("w_avg", "w_std"):  # those always come from the generator being bootstrapped
            assert torch.equal(tuned.encoder.state_dict()[key].float(), value.float()), key
    assert torch.equal(tuned.encoder.w_avg, tuned.generator.w_avg)
    # generator.pt keeps the training chairs' z; --code-share draws renders near them
    assert load_checkpoint(gen_path)["codes"].shape == (2, tiny_config().generator.z_dim)
    near = train_encoder(gen_path, tmp_path / "enc3", n_images=16, iters=1, batch_size=4, seed=0, threads=1,
                         write=None, name="tinytrained", code_share=1.0)
    assert near is not None
    data = load_checkpoint(tmp_path / "enc3" / "bootstrap_set.pt")
    assert float(data["code_share"]) == 1.0
    old = load_checkpoint(gen_path)
    del old["codes"]
    save_checkpoint(tmp_path / "old_generator.pt", old)
    with pytest.raises(ValueError, match="no training codes"):
        train_encoder(tmp_path / "old_generator.pt", tmp_path / "enc4", n_images=16, iters=1, batch_size=4, seed=0,
                      threads=1, write=None, code_share=0.5)
    # photo-like backgrounds and loose crops: the written model segments photos with its mask head
    photo = dict(n_images=16, batch_size=4, seed=0, threads=1, name="photo", photo_share=0.5, wide_share=0.3)
    train_encoder(gen_path, tmp_path / "enc5", iters=2, write=tmp_path / "models" / "photo", **photo)
    assert load_model(str(tmp_path / "models" / "photo.json")).cfg.encoder.photo_masks
    assert not model.cfg.encoder.photo_masks
    renders = tmp_path / "enc5" / "bootstrap_set.pt"
    assert abs(float(load_checkpoint(renders)["wide_share"]) - 0.3) < 1e-6
    # the renders are reused by the next command with the same shares (stored as float32)
    stamp = renders.stat().st_mtime_ns
    train_encoder(gen_path, tmp_path / "enc5", iters=3, write=None, **photo)
    assert renders.stat().st_mtime_ns == stamp


def test_photo_backgrounds_and_contact_shadow():
    from training.photolike import contact_shadow, material_texture, photo_backgrounds

    alpha = torch.zeros(6, 48, 48)
    alpha[:, 10:30, 16:32] = 1.0  # seat and back
    alpha[:, 30:40, 17:19] = 1.0  # legs
    alpha[:, 30:40, 29:31] = 1.0
    shadow = contact_shadow(alpha, torch.Generator().manual_seed(0))
    assert shadow.shape == alpha.shape and 0 <= float(shadow.min()) and float(shadow.max()) <= 1
    rows = shadow.sum(-1)  # the shadow lies around the bottom of the legs, not up at the seat
    assert float(rows[:, 36:44].sum()) > 5 * float(rows[:, :26].sum())
    hdri = torch.rand(64, 128, 3)
    bg = photo_backgrounds(alpha, torch.Generator().manual_seed(1), [hdri])
    again = photo_backgrounds(alpha, torch.Generator().manual_seed(1), [hdri])
    assert bg.shape == (6, 48, 48, 3) and torch.equal(bg, again)
    assert 0 <= float(bg.min()) and float(bg.max()) <= 1
    assert float((bg - 1).abs().mean()) > 0.05  # not the white backdrop
    assert photo_backgrounds(alpha, torch.Generator().manual_seed(2), []).shape == bg.shape
    texture = material_texture(5, 32, torch.Generator().manual_seed(3))
    assert texture.shape == (5, 32, 32, 1)
    assert 0.65 <= float(texture.min()) and float(texture.max()) <= 1.35 and float(texture.std()) > 0.02


def test_silhouettes_match_the_data_renderer():
    import numpy as np

    from training.data.chairs import sample_chair
    from training.data.raytrace import render, sample_light, sample_view
    from training.train_generator import SILHOUETTE_SIZE, _make_silhouettes

    views = _make_silhouettes(3)
    n = SILHOUETTE_SIZE
    assert views["alpha"].shape == (6, n, n) and views["alpha"].dtype == torch.uint8
    # the same cameras through the data renderer give the same coverage
    spec = sample_chair(3)
    rng = np.random.default_rng(3 + 7_000_000)
    cam = sample_view(rng, n, n, spec)
    assert torch.allclose(cam.cam2world[0], views["cam2world"][0]) and float(cam.focal[0]) == float(views["focal"][0])
    alpha = render(spec, cam, sample_light(np.random.default_rng(0)))[..., 3]
    ours = views["alpha"][0].float().numpy() / 255
    assert 0.03 < ours.mean() < 0.6 and np.abs(ours - alpha).mean() < 0.01


def test_silhouette_loss_is_learnable_and_training_with_it_resumes(tmp_path):
    import numpy as np

    from core.field.generator import Generator
    from training.train_generator import _make_silhouettes, silhouette_loss, train_generator

    cfg = tiny_config()
    views = {k: v[None].expand(2, *v.shape).clone() for k, v in _make_silhouettes(5).items()}
    torch.manual_seed(0)
    gen = Generator(cfg.generator)
    codes = torch.nn.Parameter(torch.randn(2, cfg.generator.z_dim))
    params = list(gen.parameters()) + [codes]

    def loss_on_fixed_rays():
        torch.manual_seed(1)  # the same rays and the same stratified samples every time
        return silhouette_loss(gen, gen.decode(gen.mapping_ws(codes)), views, cfg.render, 256,
                               np.random.default_rng(0))

    before = loss_on_fixed_rays()
    before.backward()
    assert codes.grad.abs().sum() > 0  # the opacity depends on the latent codes
    with torch.no_grad():  # a small step against the gradient lowers it
        for p in params:
            if p.grad is not None:
                p -= 1e-3 * p.grad / max(float(p.grad.abs().max()), 1e-12)
        after = loss_on_fixed_rays()
    assert 0 < float(after) < float(before.detach())
    out = tmp_path / "gen"
    train_generator(out, shapes=2, iters=2, batch_size=2, points=256, seed=0, threads=1, config=cfg,
                    render_weight=1.0, render_rays=64)
    train_generator(out, shapes=2, iters=4, batch_size=2, points=256, seed=0, threads=1, config=cfg,
                    render_weight=1.0, render_rays=64)
    assert torch.load(out / "generator_ckpt.pt", weights_only=True)["iteration"] == 4
    assert torch.load(out / "silhouettes.pt", weights_only=True)["alpha"].shape[:2] == (2, 6)


def test_learning_rate_schedule_and_resume_with_a_new_rate(tmp_path):
    from training.train_generator import lr_factor, train_generator

    assert lr_factor(0, 0, 100) == 1.0 and abs(lr_factor(100, 0, 100) - 0.05) < 1e-12
    assert lr_factor(50, 50, 150) == 1.0 and lr_factor(100, 50, 150) < lr_factor(60, 50, 150)  # a new phase
    out = tmp_path / "gen"
    cfg = tiny_config()
    train_generator(out, shapes=2, iters=2, batch_size=2, points=256, seed=0, threads=1, config=cfg, lr=2e-3)

    def peaks():
        groups = torch.load(out / "generator_ckpt.pt", weights_only=True)["optimizer"]["param_groups"]
        return [g["base_lr"] for g in groups], [g["lr"] for g in groups]

    assert peaks()[0][0] == 2e-3
    train_generator(out, shapes=2, iters=3, batch_size=2, points=256, seed=0, threads=1, config=cfg)
    assert peaks()[0][0] == 2e-3  # no rate named: the checkpoint's is kept
    train_generator(out, shapes=2, iters=5, batch_size=2, points=256, seed=0, threads=1, config=cfg, lr=5e-4,
                    schedule_from=3)
    base, last = peaks()
    assert base[0] == 5e-4 and base[2] > base[0]  # the named rate, with the codes' gain
    assert abs(last[0] - 5e-4 * lr_factor(4, 3, 5)) < 1e-12  # the last step ran on the new phase's cosine


def test_silhouette_ceiling_command(tmp_path, capsys):
    import numpy as np
    import pytest

    from training.ceiling import silhouette_ceiling
    from training.evaluate import mask_iou
    from training.cli import main
    from training.train_generator import train_generator

    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    assert mask_iou(a, b) == 4 / 12 and mask_iou(a, a) == 1.0
    out = tmp_path / "gen"
    train_generator(out, shapes=2, iters=2, batch_size=2, points=256, seed=0, threads=1, config=tiny_config())
    rows = silhouette_ceiling(out / "generator_ckpt.pt", chairs=5)
    assert [r[0] for r in rows] == [0, 1]  # only the chairs the checkpoint has codes for
    assert all(0.0 <= r[2] <= 1.0 for r in rows)
    assert main(["ceiling", str(out / "generator_ckpt.pt"), "--chairs", "1", "--threads", "1"]) == 0
    assert "mean IoU" in capsys.readouterr().out
    # the folded generator.pt keeps the training chairs as folded codes: the same chairs, the same outlines
    folded = silhouette_ceiling(out / "generator.pt", chairs=5)
    assert [r[0] for r in folded] == [0, 1]
    assert all(abs(f[2] - r[2]) < 0.02 for f, r in zip(folded, rows))
    # an Infinigen training chair among the codes has no data-generator twin to compare with: skipped
    from training.infinigen.convert import training_seed

    mixed = torch.load(out / "generator_ckpt.pt", weights_only=True)
    mixed["seeds"] = torch.tensor([training_seed(0)[1], 1])
    torch.save(mixed, tmp_path / "mixed.pt")
    assert [r[0] for r in silhouette_ceiling(tmp_path / "mixed.pt", chairs=5)] == [1]
    old = torch.load(out / "generator.pt", weights_only=True)
    del old["codes"]  # a generator.pt from before the codes were kept
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(SystemExit):  # no training codes: a clear error
        main(["ceiling", str(tmp_path / "old.pt")])
    assert "no training codes" in capsys.readouterr().err


def test_generator_starts_from_a_model_and_refits_its_codes(tmp_path, capsys):
    import numpy as np

    from training.cli import main
    from core.model import load_model
    from training.train_encoder import train_encoder
    from training.train_generator import LOSS_WEIGHTS, build_dataset, fit_codes, generator_losses, train_generator

    gen_path = train_generator(tmp_path / "gen", shapes=2, iters=400, batch_size=2, points=512, seed=0, threads=1,
                               config=tiny_config())
    stem = tmp_path / "models" / "tinygen"
    train_encoder(gen_path, tmp_path / "enc", n_images=8, iters=0, batch_size=4, seed=0, threads=1, write=stem,
                  name="tinygen")
    model = load_model(str(stem.with_suffix(".json")))
    gen = model.generator
    data = build_dataset(tmp_path / "gen" / "chairs_cache.pt", [0, 1], workers=1)
    batch = {k: data[k][:, :2048] for k in ("points", "sdf", "albedo", "surface_points", "surface_albedo",
                                           "surface_normals")}

    def sdf_term(z):
        with torch.no_grad():
            return generator_losses(gen, z, batch, LOSS_WEIGHTS)[1]["sdf"]

    kept = torch.load(gen_path, weights_only=True)["codes"]  # the codes training learned (folded z)
    trainable = [p.requires_grad for p in gen.parameters()]
    fitted, terms = fit_codes(gen, data, steps=150, batch_size=2, points=512, rng=np.random.default_rng(0))
    zero = torch.zeros_like(kept)
    # fitting finds the chairs again: far better than the mean chair, about as good as the learned codes
    assert sdf_term(fitted) < 0.7 * sdf_term(zero)
    assert sdf_term(fitted) < 1.3 * sdf_term(kept)
    assert [p.requires_grad for p in gen.parameters()] == trainable  # the generator is frozen only while fitting
    assert terms["sdf"] > 0
    # end to end: starts at the model's iteration with its weights, checkpoints the codes, trains on
    out = tmp_path / "warm"
    train_generator(out, shapes=2, iters=400, batch_size=2, points=512, seed=0, threads=1,
                    init=str(stem.with_suffix(".json")), fit_steps=20)
    ckpt = torch.load(out / "generator_ckpt.pt", weights_only=True)
    assert ckpt["iteration"] == 400 and ckpt["codes"].shape == kept.shape
    for key, value in gen.state_dict().items():
        if key not in ("w_avg", "w_std"):
            assert torch.allclose(ckpt["generator"][key], value), key
    assert torch.load(out / "generator.pt", weights_only=True)["codes"].shape == kept.shape
    train_generator(out, shapes=2, iters=405, batch_size=2, points=512, seed=0, threads=1,
                    init=str(stem.with_suffix(".json")))  # a checkpoint exists: resumes, no second fit
    assert torch.load(out / "generator_ckpt.pt", weights_only=True)["iteration"] == 405
    assert "codes fitted" not in capsys.readouterr().out.split("resuming")[-1]
    for bad in (["--iters", "100"], ["--shapes", "3", "--iters", "500"]):
        with pytest.raises(SystemExit, match="error"):
            main(["train-generator", "--out", str(tmp_path / "bad"), "--init", str(stem.with_suffix(".json")),
                  "--tiny", "--batch", "2", "--points", "256", "--threads", "1", "--shapes", "2", *bad])


def test_average_encoders_means_the_encoders_of_one_generator(tmp_path):
    from core.config import tiny_config
    from core.model import ReconstructionModel, load_model, save_model
    from training.average import average_encoders

    torch.manual_seed(0)
    a = ReconstructionModel(tiny_config())
    b = ReconstructionModel(tiny_config())
    b.generator.load_state_dict(a.generator.state_dict())
    save_model(a, tmp_path / "a", half=False)
    save_model(b, tmp_path / "b", half=False)
    average_encoders([str(tmp_path / "a.json"), str(tmp_path / "b.json")], tmp_path / "soup")
    soup = load_model(str(tmp_path / "soup.json"))
    key = next(k for k, v in a.encoder.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    expected = (a.encoder.state_dict()[key] + b.encoder.state_dict()[key]) / 2
    assert torch.allclose(soup.encoder.state_dict()[key].float(), expected, atol=1e-3)  # float16 file
    other = ReconstructionModel(tiny_config())  # another generator
    save_model(other, tmp_path / "other", half=False)
    with pytest.raises(ValueError, match="generator differs"):
        average_encoders([str(tmp_path / "a.json"), str(tmp_path / "other.json")], tmp_path / "bad")


def test_train_segmenter_learns_resumes_and_joins_the_model(tmp_path, capsys):
    """train-segmenter: ray-traced chairs over photo-like surroundings; the loss falls, the run resumes
    from its checkpoint, and --write adds a segmenter to the model without touching its other tensors."""
    import json

    from core.config import tiny_config
    from core.model import ReconstructionModel, load_model, save_model
    from core.segmenter import Segmenter
    from training.cli import main

    torch.manual_seed(0)
    save_model(ReconstructionModel(tiny_config()), tmp_path / "tiny", {"note": "test"})  # float16, as shipped
    base = ["train-segmenter", "--model", str(tmp_path / "tiny.json"), "--out", str(tmp_path / "seg"),
            "--images", "6", "--validation", "2", "--size", "32", "--batch", "4", "--threads", "1",
            "--lr", "3e-3"]
    assert main([*base, "--iters", "4"]) == 0
    assert (tmp_path / "seg" / "renders.pt").exists() and (tmp_path / "seg" / "segmenter_ckpt.pt").exists()
    assert main([*base, "--iters", "8", "--write", str(tmp_path / "with_seg")]) == 0
    assert "resumed at step 4" in capsys.readouterr().out
    model = load_model(str(tmp_path / "with_seg.json"), "cpu")
    assert isinstance(model.segmenter, Segmenter) and model.cfg.segmenter.image_size == 32
    card = json.loads((tmp_path / "with_seg.json").read_text())["card"]
    assert card["note"] == "test" and card["segmenter"]["iterations"] == 8
    before = load_model(str(tmp_path / "tiny.json"), "cpu").state_dict()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_graft_gives_a_model_another_models_segmenter_and_settings(tmp_path):
    """graft: the new model keeps its generator and encoder, takes the donor's segmenter (configuration,
    tensors and training card) and the given inference settings; a setting that does not exist is refused."""
    import json
    from core.config import SegmenterConfig, tiny_config
    from core.model import ReconstructionModel, load_model, save_model
    from training.cli import main

    torch.manual_seed(0)
    new = ReconstructionModel(tiny_config())
    donor_cfg = tiny_config()
    donor_cfg.segmenter = SegmenterConfig(image_size=32, channels=(8, 16, 24))
    donor = ReconstructionModel(donor_cfg)
    save_model(new, tmp_path / "new", {"note": "new"}, half=False)
    save_model(donor, tmp_path / "donor", {"segmenter": {"iterations": 7}}, half=False)
    assert main(["graft", str(tmp_path / "new.json"), "--segmenter-from", str(tmp_path / "donor.json"),
                 "--set", "inversion.joint_plane_lr=0.02", "pose.focal_count=6",
                 "--write", str(tmp_path / "out")]) == 0
    out = load_model(str(tmp_path / "out.json"), "cpu")
    assert out.cfg.inversion.joint_plane_lr == 0.02 and out.cfg.pose.focal_count == 6
    assert out.cfg.segmenter.channels == (8, 16, 24)
    card = json.loads((tmp_path / "out.json").read_text())["card"]
    assert card["note"] == "new" and card["segmenter"] == {"iterations": 7}
    state = out.state_dict()
    for source, prefix in ((donor, "segmenter."), (new, "generator."), (new, "encoder.")):
        kept = {k: v for k, v in source.state_dict().items() if k.startswith(prefix)}
        assert kept and all(torch.allclose(state[k].float(), v.float(), atol=1e-3) for k, v in kept.items())
    assert load_model(str(tmp_path / "new.json"), "cpu").segmenter is None  # the source file is untouched
    # grafted again: the new setting joins the earlier ones, the segmenter's record stays
    assert main(["graft", str(tmp_path / "out.json"), "--set", "inversion.plane_steps=10",
                 "--write", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())["card"]["graft"]
    assert again == {"segmenter_from": str(tmp_path / "donor.json"),
                     "settings": {"inversion.joint_plane_lr": 0.02, "pose.focal_count": 6, "inversion.plane_steps": 10}}
    assert main(["graft", str(tmp_path / "new.json"), "--set", "inversion.no_such_setting=1",
                 "--write", str(tmp_path / "bad")]) == 2
    assert main(["graft", str(tmp_path / "new.json"), "--set", "inversion.joint_plane_lr=-1",
                 "--write", str(tmp_path / "bad")]) == 2  # out of range: refused before anything is written
    assert main(["graft", str(tmp_path / "new.json"), "--segmenter-from", str(tmp_path / "new.json"),
                 "--write", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad.json").exists()


def test_the_held_back_camera_follows_the_recovered_cameras_size_and_all():
    """multiview-evaluate places the held-back camera by the similarity from the true to the recovered
    cameras: a scene reconstructed larger and turned about the object's centre puts it exactly where that
    similarity does; the rigid placement keeps the distances as they were."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    from training.multiview import place_held_back

    rng = np.random.default_rng(0)

    def camera(yaw: float) -> np.ndarray:
        c2w = np.eye(4)
        c2w[:3, :3] = Rotation.from_euler("xz", [70, yaw], degrees=True).as_matrix()
        c2w[:3, 3] = c2w[:3, :3] @ np.array([0.0, 0.0, -2.5]) + rng.normal(0, 0.05, 3)
        return c2w

    true = [camera(yaw) for yaw in (0, 60, 150, 250)]
    turn = Rotation.from_euler("xyz", [3, -5, 40], degrees=True).as_matrix()
    size = 1.2

    def moved(c2w: np.ndarray) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = turn @ c2w[:3, :3], size * turn @ c2w[:3, 3]
        return out

    recovered = [moved(c) for c in true[:3]]
    placed = place_held_back(recovered, true[:3], true[3])
    assert np.allclose(placed, moved(true[3]), atol=1e-6)
    for k in (1, 2):  # one or two views: the same similarity
        assert np.allclose(place_held_back(recovered[:k], true[:k], true[3]), moved(true[3]), atol=1e-6)
    rigid = place_held_back(recovered, true[:3], true[3], scale=False)
    assert np.allclose(rigid[:3, :3], turn @ true[3][:3, :3], atol=1e-6)
    assert abs(np.linalg.norm(rigid[:3, 3] - placed[:3, 3])) > 0.1  # the rigid one stays at the old distance
    # each camera placed a few degrees round the object, its own way: no size change, so both placements agree
    orbits = [Rotation.from_euler("xyz", rng.normal(0, 3, 3), degrees=True).as_matrix() for _ in range(3)]
    orbited = []
    for q, c in zip(orbits, true[:3]):
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = q @ c[:3, :3], q @ c[:3, 3]
        orbited.append(m)
    assert np.allclose(place_held_back(orbited, true[:3], true[3]),
                       place_held_back(orbited, true[:3], true[3], scale=False), atol=1e-6)


def test_the_held_back_alignment_moves_a_misplaced_camera_back_onto_the_view(tmp_path):
    """align_held_back (multiview-evaluate's novel_iou_aligned) fits only the held-back camera to the view's
    silhouette: a camera turned 4 deg round a true procedural chair's fitted field and shifted sideways
    comes back to cover the view, and a camera already in place stays there."""
    import types

    import numpy as np
    from scipy.spatial.transform import Rotation

    from core.model import load_model
    from training.evaluate import _render_model, mask_iou
    from training.multiview import VIEW_SIZE, align_held_back, make_views

    model = load_model("chairs", "cpu")
    case = make_views(600_000, 1, tmp_path)
    nv = case["cams"][-1]
    c2w = nv.cam2world[0].numpy().astype(np.float64)
    field = types.SimpleNamespace(latent=model.generator.w_avg.numpy(), plane_offset=None)

    def alpha(cam2world):
        return _render_model(model, field.latent, (0.5, 0.5), cam2world, float(nv.focal[0]), float(nv.cx[0]),
                             float(nv.cy[0]), VIEW_SIZE)[1] > 0.5

    case["novel_alpha"] = alpha(c2w).astype(np.float32)  # the mean chair seen by the held-back camera
    off = np.eye(4)
    off[:3, :3] = Rotation.from_euler("z", 4, degrees=True).as_matrix()
    moved = off @ c2w
    moved[:3, 3] += 0.08 * moved[:3, 0]
    before = mask_iou(alpha(moved), case["novel_alpha"] > 0.5)
    after = mask_iou(alpha(align_held_back(model, field, moved, case)), case["novel_alpha"] > 0.5)
    assert before < 0.8 and after > 0.9
    assert mask_iou(alpha(align_held_back(model, field, c2w, case)), case["novel_alpha"] > 0.5) > 0.95


def test_the_multiview_summary_compares_the_joint_with_each_chairs_own_photos():
    """summarize: the joint against the mean and the best of the same chair's single photos, the share of
    chairs above their best single, the gain's standard error, and the gain where single photos leave room."""
    import pytest

    from training.multiview import HEADROOM, _against_singles

    rows = [{"iou": 0.80, "singles": [{"iou": 0.70}, {"iou": 0.78}]},   # gain 0.06, above its best single
            {"iou": 0.96, "singles": [{"iou": 0.95}, {"iou": 0.97}]},   # no room: gain 0.0, below its best
            {"iou": 0.60, "singles": [{"iou": 0.50}, {"iou": 0.62}]}]   # gain 0.04, below its best
    out = _against_singles(rows, "iou")
    assert out["joint_iou_mean"] == pytest.approx((0.80 + 0.96 + 0.60) / 3)
    assert out["single_iou_mean"] == pytest.approx((0.74 + 0.96 + 0.56) / 3)
    assert out["best_single_iou_mean"] == pytest.approx((0.78 + 0.97 + 0.62) / 3)
    assert out["chairs_iou_better"] == pytest.approx(1 / 3)
    assert out["gain_iou_se"] == pytest.approx(0.0306 / 3 ** 0.5, abs=1e-4)  # gains 0.06, 0.0, 0.04: sample std 0.0306
    assert 0.96 >= HEADROOM > 0.74
    assert out["chairs_iou_with_headroom"] == 2 and out["gain_iou_with_headroom"] == pytest.approx(0.05)


def test_mesh_level_scores_mesh_silhouettes_like_the_photo(tiny_model_dir, tmp_path):
    import numpy as np

    from core.api import Pipeline, reconstruct
    from core.model import load_model
    from training.evaluate import make_case, mask_iou
    from training.mesh_level import level_scores, mesh_silhouette

    # a true chair's mesh through its true camera covers the rendered alpha: the camera convention agrees
    case = make_case(600_000, tmp_path)
    cam = case["cam_in"]
    truth = case["alpha_in"] > 0.5
    sil = mesh_silhouette(*case["mesh"], cam.cam2world[0].numpy(), float(cam.focal[0]), float(cam.cx[0]),
                          float(cam.cy[0]), truth.shape[1], truth.shape[0])
    assert mask_iou(sil, truth) > 0.95
    moved = cam.cam2world[0].numpy().copy()
    moved[:3, 3] += 0.05 * moved[:3, 0]  # the camera 5 cm to its right: the outline no longer fits
    shifted = mesh_silhouette(*case["mesh"], moved, float(cam.focal[0]), float(cam.cx[0]), float(cam.cy[0]),
                              truth.shape[1], truth.shape[0])
    assert mask_iou(shifted, truth) < mask_iou(sil, truth) - 0.1
    # a fitted field cut at a higher level is fatter: its silhouette never shrinks
    (res,) = reconstruct([case["path"]], model="tiny", model_dirs=[tiny_model_dir], steps=1, mesh_resolution=32)
    assert res.ok
    pipe = Pipeline(load_model(str(tiny_model_dir / "tiny.json")), torch.device("cpu"))
    everything = np.ones_like(truth)
    levels = [-5.0, 0.0, 5.0]
    areas = level_scores(pipe, res, everything, levels, 32)
    assert list(areas) == levels and all(0.0 <= a <= 1.0 for a in areas.values())
    assert areas[-5.0] <= areas[0.0] <= areas[5.0] and areas[5.0] > 0.0
    assert pipe.cfg is pipe.model.cfg  # the model's own level is back


def _photo_cases(folder, seeds) -> str:
    """A cases.json of photo-like renders (a red block on a grey floor, its true mask) with these seeds."""
    import json

    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    cases = []
    for k, seed in enumerate(seeds):
        rgb = np.full((64, 64, 3), 120, np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        mask[20 + k:44, 16:36] = 255  # box 20 x (24 - k), centre (26, 32 + k / 2)
        rgb[mask > 0] = (200, 30, 30)
        Image.fromarray(rgb).save(folder / "images" / f"c{k}_photo_0.png")
        Image.fromarray(mask).save(folder / "masks" / f"c{k}_photo_0.png")
        cases.append({"name": f"c{k}_photo_0", "condition": "photo", "seed": seed,
                      "image": f"images/c{k}_photo_0.png", "mask": f"masks/c{k}_photo_0.png"})
        cases.append({"name": f"c{k}_cutout_0", "condition": "cutout", "seed": seed})
    (folder / "cases.json").write_text(json.dumps({"cases": cases}))
    return str(folder / "cases.json")


def test_training_photos_are_cut_around_the_chair_and_never_validation_chairs(tmp_path):
    from training.train_segmenter import PHOTO_CONTEXT, load_photos, photo_batch

    cases = _photo_cases(tmp_path / "train", [2_000_000, 2_000_001])
    photos = load_photos([cases], 16)
    assert photos["names"] == ["c0_photo_0", "c1_photo_0"]  # the cut-outs are left out
    assert photos["rgb"].shape == (2, 32, 32, 3) and photos["alpha"].shape == (2, 32, 32)
    alpha = photos["alpha"][0].float() / 255
    ys, xs = torch.nonzero(alpha > 0.5, as_tuple=True)
    assert abs((xs.float().mean() + 0.5) - 16) < 1 and abs((ys.float().mean() + 0.5) - 16) < 1  # centred
    assert abs(float(alpha.sum()) - 32 * 32 * (20 * 24) / (PHOTO_CONTEXT * 24) ** 2) < 10  # 2.4 x the box side
    red = photos["rgb"][0][..., 0].float() > 160
    assert float(((alpha > 0.5) == red).float().mean()) > 0.95  # image and mask stay aligned
    img, cover = photo_batch(photos, torch.tensor([0, 1, 0, 1]), torch.Generator().manual_seed(0), 24)
    assert img.shape == (4, 24, 24, 3) and cover.shape == (4, 24, 24)
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    redness = img[..., 0] - img[..., 1]
    inside, outside = redness[cover > 0.9].mean(), redness[cover < 0.1].mean()
    assert float(inside) > float(outside) + 0.3  # mirrored or not, the mask covers the red block
    with pytest.raises(ValueError, match="not an Infinigen training chair"):
        load_photos([_photo_cases(tmp_path / "val", [950_003])], 16)
    # a leg one pixel wide is averaged into the smaller square, not sampled away or thickened
    thin = _photo_cases(tmp_path / "thin", [2_000_002])
    from PIL import Image
    mask = np.zeros((64, 64), np.uint8)
    mask[8:56, 31] = 255
    Image.fromarray(mask).save(tmp_path / "thin" / "masks" / "c0_photo_0.png")
    leg = load_photos([thin], 16)["alpha"][0].float() / 255  # 48 px tall box -> 115 px square -> 32 px
    assert abs(float(leg.sum()) - 48 * (32 / 115) ** 2) < 1.0


def test_train_segmenter_fine_tunes_on_training_photos(tmp_path, capsys):
    import json

    from core.config import SegmenterConfig, tiny_config
    from core.model import ReconstructionModel, load_model, save_model
    from training.cli import main
    from training.train_segmenter import CHANNELS

    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.segmenter = SegmenterConfig(image_size=32, channels=CHANNELS)
    save_model(ReconstructionModel(cfg), tmp_path / "seg_model", half=False)
    cases = _photo_cases(tmp_path / "photos", [2_000_000, 2_000_001])
    args = ["train-segmenter", "--model", str(tmp_path / "seg_model.json"), "--out", str(tmp_path / "seg"),
            "--images", "4", "--validation", "2", "--size", "32", "--batch", "4", "--threads", "1", "--iters", "2",
            "--photos", cases, "--photos-share", "0.5", "--init", "--write", str(tmp_path / "tuned")]
    assert main(args) == 0
    assert "2 training photos" in capsys.readouterr().out
    card = json.loads((tmp_path / "tuned.json").read_text())["card"]["segmenter"]
    assert card["photos"] == 2 and card["photos_share"] == 0.5 and card["init"].endswith("seg_model.json")
    assert load_model(str(tmp_path / "tuned.json"), "cpu").segmenter is not None
    small = tiny_config()  # a model without a segmenter cannot be fine-tuned
    save_model(ReconstructionModel(small), tmp_path / "plain", half=False)
    with pytest.raises(ValueError, match="no segmenter"):
        main([*args[:2], str(tmp_path / "plain.json"), *args[3:]])
