"""train-slots: the colour slots learn the chair's part groups while the shape stays exactly as it was."""

import torch

from core.config import tiny_config
from core.field.generator import Generator
from training.train_slots import PART_GROUPS, part_group, slot_groups, slot_losses, surface_groups, trainable


def test_part_names_map_to_groups():
    names = {"seat": "seat", "seat_cushion": "seat", "sling": "seat", "seat_shell_2": "seat", "back_slat_3": "back",
             "headrest": "back", "back_spindle_4": "back", "arm_l": "arms", "arm_pad_r": "arms",
             "arm_post_l": "frame", "back_post_l": "frame", "leg_fl": "frame", "base_arm_2": "frame"}
    assert {n: PART_GROUPS[part_group(n)] for n in names} == names


def test_slot_groups_split_the_slots_evenly():
    assert slot_groups(16).tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert slot_groups(6).tolist() == [0, 1, 2, 3, 3, 3]


def test_surface_groups_of_a_training_chair():
    from training.data.chairs import sample_chair, surface_samples

    spec = sample_chair(3)
    groups = surface_groups(3, surface_samples(spec, 2048)["points"])
    assert set(groups.tolist()) >= {0, 3}  # every chair has a seat and a frame


def test_slots_learn_groups_and_the_sdf_stays():
    torch.manual_seed(0)
    gen = Generator(tiny_config().generator)
    z = torch.randn(2, gen.cfg.z_dim)
    pts = torch.rand(2, 256, 3) * 1.6 - 0.8
    groups = torch.full((2, 256), 2)  # every point 'arms': learnable from the slot logits' bias alone
    albedo = torch.rand(2, 256, 3)
    sdf_before = gen.query(gen.decode(gen.mapping_ws(z)), pts).sdf.detach()
    params = trainable(gen)
    opt = torch.optim.Adam(params, lr=1e-2)
    sg = slot_groups(gen.cfg.color_k)
    first = first_acc = None
    for _ in range(60):
        color, ce, acc = slot_losses(gen, gen.mapping_ws(z), pts, albedo, groups, sg)
        first, first_acc = (float(ce), float(acc)) if first is None else (first, first_acc)
        opt.zero_grad()
        (color + ce).backward()
        opt.step()
    assert float(ce) < 0.2 * first and float(acc) == 1.0 and first_acc < 0.5
    assert torch.equal(gen.query(gen.decode(gen.mapping_ws(z)), pts).sdf.detach(), sdf_before)


def test_a_slot_decoder_starts_as_the_decoders_slot_logits_and_saves(tmp_path):
    from core.model import ReconstructionModel, load_model, save_model
    from training.train_slots import with_slot_decoder

    torch.manual_seed(0)
    cfg = tiny_config()
    net = ReconstructionModel(cfg)
    new = with_slot_decoder(net, cfg.generator.decoder_hidden)
    z, pts = torch.randn(2, cfg.generator.z_dim), torch.rand(2, 128, 3) * 1.6 - 0.8
    a = net.generator.query(net.generator.decode(net.generator.mapping_ws(z)), pts, with_weights=True)
    b = new.generator.query(new.generator.decode(new.generator.mapping_ws(z)), pts, with_weights=True)
    assert torch.equal(a.sdf, b.sdf) and torch.allclose(a.weights, b.weights) and torch.allclose(a.rgb, b.rgb)
    save_model(new, tmp_path / "slots", half=False)
    loaded = load_model(str(tmp_path / "slots.json"))
    assert loaded.cfg.generator.slot_hidden == cfg.generator.decoder_hidden
    c = loaded.generator.query(loaded.generator.decode(loaded.generator.mapping_ws(z)), pts, with_weights=True)
    assert torch.allclose(c.weights, b.weights)


def test_only_procedural_chairs_teach_the_slots():
    from training.infinigen.convert import procedural_rows, training_seed

    seeds = [0, 1, 700000, training_seed(0)[1], 2, training_seed(5)[1]]
    assert procedural_rows(seeds) == [0, 1, 2, 4]
