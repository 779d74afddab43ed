"""Teach the colour slots the chair's parts: ``python -m training train-slots --model M --codes G --write STEM``.

The generator colours a point by softmax weights over K slots, whose colours come from w. Trained on
colour alone it lets one slot paint the seat and the frame alike, so recolouring the seat recolours the
frame (core.parts). Here the slots are split into groups, one per kind of part the data generator
names: the seat (seat, shell, cushion, sling), the back (panel, slats, spindles, cushion, headrest),
the arms, and the frame (legs, posts, rails, base); every training chair's surface points are pushed
to put their weight in their part's group (cross-entropy on the group's summed weight) while the
colours still fit the albedo (L1). Only what colours a point learns: a slot MLP of its own
(``GeneratorConfig.slot_hidden``, started as the decoder's slot logits) and the w -> slot colours
mapping. The shape (the SDF output, the planes, the mapping to w) is frozen, so
the encoder that goes with the generator stays valid and every silhouette stays as it was.

The training chairs and their codes are the generator's own: its ``generator.pt`` (codes, folded
like the shipped mapping) and ``chairs_cache.pt`` beside it (surface points and albedo); only its
procedural chairs teach the slots (Infinigen's training chairs name no parts).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .infinigen.convert import procedural_rows

SEED = 0
"""seed of the chairs, points and initial weights drawn (the shipped run's)."""
PART_GROUPS = ("seat", "back", "arms", "frame")
"""the kinds of part that get their own slot group, in slot order (the rest of the slots: none)."""
_SEAT = re.compile(r"^(seat|seat_shell|seat_cushion|seat_sling|sling)(_\d+)?$")
_BACK = re.compile(r"^(back|back_panel|back_shell|back_cushion|back_pad|back_slat|back_spindle|back_band|back_crest|"
                   r"back_top|back_top_rail|back_bottom_rail|back_rail|headrest|headrest_shell)(_\d+)?$")
_ARMS = re.compile(r"^(arm|arm_pad|arm_roll|arm_wing|wing|arm_l|arm_r)(_[lr])?(_\d+)?$|^arm_(pad|roll|wing)_[lr]$")


def part_group(name: str) -> int:
    """Index in PART_GROUPS of the data generator's part ``name`` ('seat_cushion' -> 0, 'leg_fl' -> 3)."""
    if _SEAT.match(name):
        return 0
    if _BACK.match(name):
        return 1
    if _ARMS.match(name):
        return 2
    return 3


def surface_groups(seed: int, points: Tensor) -> Tensor:
    """(N,) part group of each surface point (N, 3) of training chair ``seed``: its nearest part's."""
    from .data.chairs import chair_query, sample_chair

    spec = sample_chair(seed)
    groups = torch.tensor([part_group(n) for n in spec.part_names])
    return groups[chair_query(spec, points)[1]]


def slot_groups(k: int) -> Tensor:
    """(K,) the part group of every slot (core.parts.slot_groups: K / len(PART_GROUPS) consecutive slots each)."""
    from core.parts import slot_groups as groups_of

    return torch.as_tensor(groups_of(k, len(PART_GROUPS)))


def slot_losses(gen, ws: Tensor, points: Tensor, albedo: Tensor, groups: Tensor, slot_group: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Colour L1, group cross-entropy and group accuracy of surface points (B, N, 3) with albedo
    (B, N, 3) and part groups (B, N) under latents ws (B, num_ws, w_dim)."""
    state = gen.decode(ws)
    field = gen.query(state, points, with_weights=True)
    onehot = torch.nn.functional.one_hot(slot_group, len(PART_GROUPS)).to(field.weights.dtype)  # (K, G)
    group_weight = field.weights @ onehot  # (B, N, G)
    picked = group_weight.gather(-1, groups[..., None])[..., 0]
    color = (field.rgb - albedo).abs().mean()
    ce = -(picked + 1e-6).log().mean()
    accuracy = (group_weight.argmax(dim=-1) == groups).float().mean()
    return color, ce, accuracy


def with_slot_decoder(net, hidden: int):
    """A copy of the model ``net`` whose generator has its own slot MLP of ``hidden`` units
    (``GeneratorConfig.slot_hidden``), started as the decoder's slot logits when the widths allow
    (the same colours as before the first step)."""
    import dataclasses

    from core.model import ReconstructionModel

    cfg = dataclasses.replace(net.cfg, generator=dataclasses.replace(net.cfg.generator, slot_hidden=hidden,
                                                                      slot_groups=PART_GROUPS))
    out = ReconstructionModel(cfg)
    missing, unexpected = out.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("generator.slot_decoder.") for k in missing), (missing, unexpected)
    dec, slots = out.generator.decoder, out.generator.slot_decoder
    if hidden == dec[0].out_features:
        with torch.no_grad():
            for i in (0, 1):
                slots[i].weight.copy_(dec[i].weight)
                slots[i].bias.copy_(dec[i].bias)
            slots[2].weight.copy_(dec[2].weight[1:])
            slots[2].bias.copy_(dec[2].bias[1:])
    return out


def trainable(gen) -> list[Tensor]:
    """What learns: the slot MLP when the generator has one, else the slot logits (rows 1.. of the decoder's
    last layer, a gradient hook keeps row 0, the SDF, exactly as it is); and the colour mapping."""
    gen.requires_grad_(False)
    mapping = list(gen.color_mapping.parameters())
    for p in mapping:
        p.requires_grad_(True)
    if gen.slot_decoder is not None:
        gen.slot_decoder.requires_grad_(True)
        return [*gen.slot_decoder.parameters(), *mapping]
    last = gen.decoder[-1]
    last.weight.requires_grad_(True)
    last.bias.requires_grad_(True)
    keep = torch.ones_like(last.bias)
    keep[0] = 0.0
    last.weight.register_hook(lambda g: g * keep[:, None])
    last.bias.register_hook(lambda g: g * keep)
    return [last.weight, last.bias, *mapping]


def train_slots(model: str, codes_path: Path, write: Path, iters: int, batch: int, points: int, weight: float,
                lr: float, slot_hidden: int = 0) -> dict:
    """Fine-tune ``model``'s colour slots on the training chairs of ``codes_path`` (see the module docstring);
    writes ``write``.safetensors/.json and returns the training card."""
    from core.model import load_model, resolve_model, save_model

    from .common import Progress

    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    net = load_model(model, "cpu")
    if slot_hidden:
        net = with_slot_decoder(net, slot_hidden)
    else:
        import dataclasses

        net.cfg = dataclasses.replace(net.cfg, generator=dataclasses.replace(net.cfg.generator,
                                                                             slot_groups=PART_GROUPS))
    gen = net.generator
    ckpt = torch.load(codes_path, map_location="cpu", weights_only=True)
    codes = ckpt["codes"].float()
    data = torch.load(Path(codes_path).parent / "chairs_cache.pt", map_location="cpu", weights_only=True, mmap=True)
    seeds = data["seeds"].tolist()
    if len(seeds) != codes.shape[0]:
        raise SystemExit(f"{codes_path}: {codes.shape[0]} codes for {len(seeds)} cached chairs")
    rows = np.array(procedural_rows(seeds), dtype=np.int64)  # Infinigen's training chairs name no parts
    if len(rows) < batch:
        raise SystemExit(f"{codes_path}: {len(rows)} procedural chairs with named parts, fewer than --batch {batch}")
    sdf_before = gen.decoder[-1].weight[0].clone()
    params = trainable(gen)
    opt = torch.optim.Adam(params, lr=lr)
    slot_group = slot_groups(gen.cfg.color_k)
    group_cache: dict[int, Tensor] = {}
    progress = Progress(iters, label="slots")
    t0 = time.time()
    log = []
    for it in range(iters):
        idx = torch.as_tensor(rows[rng.choice(len(rows), batch, replace=False)])
        pick = torch.as_tensor(rng.choice(data["surface_points"].shape[1], points, replace=False))
        pts = data["surface_points"][idx][:, pick]
        for i in idx.tolist():
            if i not in group_cache:
                group_cache[i] = surface_groups(seeds[i], data["surface_points"][i])
        groups = torch.stack([group_cache[i][pick] for i in idx.tolist()])
        ws = gen.mapping_ws(codes[idx])
        color, ce, acc = slot_losses(gen, ws, pts, data["surface_albedo"][idx][:, pick], groups, slot_group)
        opt.zero_grad()
        (color + weight * ce).backward()
        opt.step()
        log.append((float(color.detach()), float(ce.detach()), float(acc)))
        progress.update(it + 1, color=log[-1][0], ce=log[-1][1], acc=log[-1][2])
    assert torch.equal(gen.decoder[-1].weight[0], sdf_before), "the SDF row moved"
    last = np.mean(log[-50:], axis=0)
    card_in = json.loads(resolve_model(model).read_text()).get("card", {})
    card = {**card_in, "slots": {"groups": list(PART_GROUPS), "slot_hidden": slot_hidden, "iterations": iters,
                                 "batch": batch, "points": points,
                                 "weight": weight, "lr": lr, "seed": SEED, "codes": str(codes_path),
                                 "elapsed_s": round(time.time() - t0, 1),
                                 "final": {"color_l1": round(float(last[0]), 4), "group_ce": round(float(last[1]), 4),
                                           "group_accuracy": round(float(last[2]), 4)}}}
    net.eval().requires_grad_(False)
    save_model(net, write, card)
    return card["slots"]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training train-slots --help``)."""
    ap.add_argument("--model", default="chairs", help="the model whose slots learn (name or .json)")
    ap.add_argument("--codes", required=True, help="its generator's training checkpoint generator.pt (codes; "
                                                    "chairs_cache.pt beside it)")
    ap.add_argument("--write", required=True, help="output model stem")
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--points", type=int, default=4096, help="surface points per chair and step")
    ap.add_argument("--weight", type=float, default=0.1, help="weight of the part-group cross-entropy")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--slot-hidden", type=int, default=64,
                    help="width of a separate slot MLP (GeneratorConfig.slot_hidden); 0: only the decoder's slot "
                         "logits learn")
    ap.add_argument("--threads", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    card = train_slots(args.model, Path(args.codes), Path(args.write), args.iters, args.batch, args.points,
                       args.weight, args.lr, args.slot_hidden)
    print(json.dumps(card, indent=1))
    return 0
