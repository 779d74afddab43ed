"""Reference checkpoints -> this project's model files (``python -m core import-model``).

A generator checkpoint's ``model_ema`` and an encoder checkpoint's ``model_coord`` (read by
:mod:`.checkpoint`, which runs nothing) are checked against the paper's architecture, their sizes read
from the tensor shapes, and written as ``<name>.safetensors`` + ``<name>.json`` with a
:class:`~core.config.ModelConfig` of architecture ``nerf_from_image``: the paper's render and inversion
settings, the dataset's scene box and axes, and the mean and spread of w over 10000 latents (where
the inversion starts and the units it moves in).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import (EncoderConfig, GeneratorConfig, InversionConfig, MeshConfig, ModelConfig, PaperConfig,
                      PoseConfig, RenderConfig, SizePrior)
from ..errors import ReconstructionError
from .checkpoint import read_checkpoint


@dataclass(frozen=True)
class Dataset:
    """What the reference code knows about one training set (its data/loaders.py)."""

    category: str
    """the object category (shown in the model list)."""
    scene_range: float
    """half side of its scene box."""
    white_background: bool
    """its images are composited on white (ShapeNet, CARLA); else masked to 0 in the reference's [-1, 1]
    colours, mid grey (its generator renders on that too)."""
    crop_margin: float
    """the encoder's input as the reference cuts it (EncoderConfig.crop_margin): 1.1 times the object's box
    for photo datasets (its padding_frac 0.05 on each side, then squared), 0 (the whole image) for renders."""
    height_m: float = 0.0
    """the category's typical overall height in metres (the model's size prior; 0: none, meshes keep the
    model's units)."""
    height_source: str = ""
    """where that height comes from."""


CAR_HEIGHT = (1.5, "typical height of a passenger car (1.4-1.6 m); a reference value, not measured on the data")
CHAIR_HEIGHT = (0.874, "median overall height of this project's 750 procedural training chairs (python -m training "
                       "size-prior); ShapeNet's chairs are stored normalized, without their size")


DATASETS = {
    "p3d_car": Dataset("car", 1.4, False, 1.1, *CAR_HEIGHT),
    "cub": Dataset("bird", 2.0, False, 1.1),  # birds range from 10 cm to over a metre: no prior
    "shapenet_chairs": Dataset("chair", 0.55, True, 0.0, *CHAIR_HEIGHT),
    "shapenet_cars": Dataset("car", 0.55, True, 0.0, *CAR_HEIGHT),
    "carla": Dataset("car", 3.0, True, 0.0, *CAR_HEIGHT),
}
"""the reference's datasets with a perspective camera or (CUB) one we approximate with a long lens; its
ImageNet classes are ``imagenet_<class>`` with the P3D settings."""

AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}


def dataset_settings(name: str) -> Dataset:
    """The settings of a reference dataset name; unknown names are refused with the known ones."""
    if name in DATASETS:
        return DATASETS[name]
    if name.startswith("imagenet_") and len(name) > len("imagenet_"):
        return Dataset(name[len("imagenet_"):], 1.4, False, 1.1)
    known = ", ".join([*DATASETS, "imagenet_<class>"])
    raise ReconstructionError(f"unknown reference dataset '{name}'; known: {known}")


def frame_matrix(up: str, front: str) -> tuple[float, ...]:
    """Row-major rotation from our canonical frame (up +Z, front -Y) to a frame whose up and front are
    the named axes ('+y', '-z', ...): +Z -> up, -Y -> front, +X -> up x front."""
    if up not in AXES or front not in AXES:
        raise ReconstructionError(f"axes must be one of {', '.join(AXES)}; got up {up!r}, front {front!r}")
    u, f = np.array(AXES[up], float), np.array(AXES[front], float)
    if abs(float(u @ f)) > 0:
        raise ReconstructionError(f"the up axis {up} and the front axis {front} must be perpendicular")
    rot = np.stack([np.cross(u, f), -f, u], axis=1)  # columns: images of +X, +Y, +Z
    return tuple(float(v) + 0.0 for v in rot.reshape(-1))  # + 0.0: no negative zeros in the JSON


# -- reading the architecture from the tensors ---------------------------------------------------------

def _strip_prefix(state: dict) -> dict:
    """DataParallel saves every key under 'module.'."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _tensors(ckpt: dict, key: str, path: str) -> dict:
    state = ckpt.get(key)
    if not isinstance(state, dict) or not state:
        keys = ", ".join(sorted(str(k) for k in ckpt)[:8])
        raise ReconstructionError(f"checkpoint has no '{key}' state (it holds: {keys}); give the reference code's "
                                  f"{'generator' if key == 'model_ema' else 'encoder'} checkpoint", path)
    state = _strip_prefix(state)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReconstructionError(f"checkpoint's '{key}' holds a non-tensor entry '{bad[0]}'", path)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def generator_sizes(state: dict, path: str) -> dict:
    """The PaperConfig generator fields a reference ``model_ema`` state implies (shapes only)."""
    def need(key):
        if key not in state:
            raise ReconstructionError(f"not a generator of the paper's architecture (no '{key}')", path)
        return state[key].shape

    for prefix, what in (("viewdir_mapper.", "view-dependent colour (--use_viewdir)"),
                         ("emb.", "an image-conditioned generator (--use_encoder)"),
                         ("class_embedding.", "a class-conditional generator (--use_class)"),
                         ("mapping_network.backbone.embed.", "a conditional mapping network")):
        if any(k.startswith(prefix) for k in state):
            raise ReconstructionError(f"this generator uses {what}, which the importer does not support; "
                                      "use an unconditional SDF generator", path)
    if "beta" not in state or "alpha" not in state:
        raise ReconstructionError("this generator has no SDF head (trained without --use_sdf); only SDF models "
                                  "give meshes", path)
    w_dim, latent_dim = need("mapping_network.backbone.fc0.weight")
    mapping_layers = len({m.group(1) for k in state if (m := re.match(r"mapping_network\.backbone\.fc(\d+)\.", k))})
    widths = {int(m.group(1)): state[k].shape[0] for k in state
              if (m := re.fullmatch(r"synthesis_network\.b(\d+)\.conv1\.weight", k))}
    if not widths:
        raise ReconstructionError("not a generator of the paper's architecture (no synthesis blocks)", path)
    plane_res = max(widths)
    channel_max = max(widths.values())
    channel_base = widths[plane_res] * plane_res
    if any(min(channel_base // r, channel_max) != c for r, c in widths.items()):
        raise ReconstructionError(f"synthesis widths {dict(sorted(widths.items()))} do not follow the reference's "
                                  "channel_base / channel_max rule", path)
    img_channels = need(f"synthesis_network.b{plane_res}.torgb.weight")[0]
    decoder_hidden, plane_channels = need("decoder.net.0.weight")
    if img_channels != 3 * plane_channels:
        raise ReconstructionError(f"{img_channels} plane channels do not make three planes of {plane_channels}", path)
    outputs = need("decoder.net.2.weight")[0] - 1
    attention = 0
    attention_hidden = PaperConfig.attention_hidden
    if "texture_mapper.fc_values.weight" in state:
        attention = need("texture_mapper.fc_values.weight")[0] // 3
        attention_hidden = need("texture_mapper.const")[1]
        if outputs != attention:
            raise ReconstructionError(f"decoder outputs {outputs} features for {attention} colour slots", path)
    elif outputs != 3:
        raise ReconstructionError(f"decoder outputs {outputs} features, expected 3 (RGB)", path)
    return dict(latent_dim=int(latent_dim), w_dim=int(w_dim), mapping_layers=mapping_layers, plane_res=plane_res,
                plane_channels=int(plane_channels), channel_base=int(channel_base), channel_max=int(channel_max),
                decoder_hidden=int(decoder_hidden), attention_values=int(attention),
                attention_hidden=int(attention_hidden))


def encoder_sizes(state: dict, path: str, heads: tuple[int, ...]) -> dict:
    """The PaperConfig encoder fields a reference ``model_coord`` state implies (the attention heads do not
    show in the shapes: they are given)."""
    def need(key):
        if key not in state:
            raise ReconstructionError(f"not an encoder of the paper's architecture (no '{key}')", path)
        return state[key].shape

    if any(k.startswith("backbone_latent.") for k in state):
        raise ReconstructionError("this encoder has a second backbone (--inv_separate_backbones), which the importer "
                                  "does not support", path)
    dims, depths, srs, ratios = [], [], [], []
    for i in range(1, 5):
        dims.append(int(need(f"backbone.patch_embed{i}.proj.weight")[0]))
        depths.append(len({m.group(1) for k in state if (m := re.match(rf"backbone\.block{i}\.(\d+)\.", k))}))
        sr = state.get(f"backbone.block{i}.0.attn.sr.weight")
        srs.append(1 if sr is None else int(sr.shape[-1]))
        ratios.append(int(need(f"backbone.block{i}.0.mlp.fc1.weight")[0]) // dims[-1])
    if len(set(ratios)) != 1:
        raise ReconstructionError(f"stage MLP ratios {ratios} differ; the reference uses one ratio", path)
    if len(heads) != 4 or any(d % h for d, h in zip(dims, heads)):
        raise ReconstructionError(f"attention heads {list(heads)} do not divide the stage widths {dims}; give "
                                  "--encoder-heads", path)
    decoder_dim = int(need("backbone.linear_c1.proj.weight")[0])
    features = int(need("backbone.linear_pred.weight")[0])
    w_dim = int(need("w_regressor_post.2.weight")[0])
    return dict(encoder_dims=tuple(dims), encoder_depths=tuple(depths), encoder_sr_ratios=tuple(srs),
                encoder_mlp_ratio=ratios[0], encoder_heads=tuple(heads), encoder_decoder_dim=decoder_dim,
                encoder_features=features, w_dim=w_dim)


# -- the importer ------------------------------------------------------------------------------------

def paper_model_config(name: str, paper: PaperConfig, category: str, white_background: bool,
                       with_encoder: bool, crop_margin: float = 1.1, size_prior: SizePrior | None = None) -> ModelConfig:
    """The model configuration of an imported model: the paper's render and inversion settings (renders at
    the encoder's crop size, 128 px for its models; 64 + 64 samples per ray; 30 steps; Adam 2e-3, beta1 0.9,
    w moved 5x faster), our loss (L1 + SSIM + silhouette: no ImageNet VGG can ship)."""
    return ModelConfig(
        name=name, category=category, architecture="nerf_from_image",
        paper=dataclasses.replace(paper, with_encoder=with_encoder),
        generator=GeneratorConfig(z_dim=paper.latent_dim, w_dim=paper.w_dim, bound=1.0),
        render=RenderConfig(coarse_samples=64, fine_samples=64, coarse_beta=0.04,
                            background=(1.0, 1.0, 1.0) if white_background else (0.5, 0.5, 0.5),
                            chunk=4096, empty_margin=-1.0),
        encoder=EncoderConfig(image_size=paper.encoder_image_size, channels=(16,), photo_masks=False,
                              crop_margin=crop_margin),
        inversion=InversionConfig(size=paper.encoder_image_size, loss="l1+ssim", lr=2e-3, lr_end=1.0, momentum=0.9, w_gain=5.0,
                                  pose_gain=1.0, n_patches=0, plane_lr=0.0, steps=30, hold_depth=False),
        pose=PoseConfig(yaw_hypotheses=(0.0,)),
        mesh=MeshConfig(resolution=128, level_betas=0.0), size_prior=size_prior or SizePrior())


@dataclass
class ImportOptions:
    """How reference checkpoints become a model (``python -m core import-model``)."""

    dataset: str
    """the reference dataset the generator was trained on (scene box, category, background)."""
    up: str = "+y"
    """the reference frame's axis the object's up points along."""
    front: str = "+z"
    """the reference frame's axis the object's front faces."""
    encoder_heads: tuple[int, ...] = (1, 2, 5, 8)
    """attention heads of the encoder's four stages (they do not show in the tensor shapes)."""
    resolution: int = 128
    """the reference's --resolution: side of its renders and of the encoder's crops (128 for its models)."""
    half: bool = False
    """store float16 weights (half the size; parity with the reference holds in float32 only)."""
    samples: int = 10000
    """latents drawn for the mean and spread of w."""
    seed: int = 0
    """seed of those latents."""
    overwrite: bool = False
    """replace a model of the same name in the output folder (else it is refused: ``--force``)."""


def import_model(generator_path: str | Path, encoder_path: str | Path | None, name: str, out_dir: str | Path,
                 options: ImportOptions) -> Path:
    """Convert reference checkpoints into ``out_dir/<name>.safetensors`` + ``.json``; returns the JSON path."""
    from ..model import ReconstructionModel, save_model

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ReconstructionError(f"model name {name!r} must be letters, digits, '_', '-' or '.' (at most 64)")
    dataset, up, front = options.dataset, options.up, options.front
    settings = dataset_settings(dataset)
    stem = Path(out_dir) / name
    taken = [p for p in (stem.with_suffix(".json"), stem.with_suffix(".safetensors")) if p.exists()]
    if taken and not options.overwrite:
        raise ReconstructionError(f"a model named '{name}' already exists there; choose another --name, or give "
                                  "--force to replace it", str(taken[0]))
    gen_state = _tensors(read_checkpoint(generator_path), "model_ema", str(generator_path))
    fields = generator_sizes(gen_state, str(generator_path))
    enc_state = None
    if encoder_path is not None:
        enc_state = _tensors(read_checkpoint(encoder_path), "model_coord", str(encoder_path))
        enc_fields = encoder_sizes(enc_state, str(encoder_path), tuple(options.encoder_heads))
        if enc_fields.pop("w_dim") != fields["w_dim"]:
            raise ReconstructionError(f"the encoder predicts a w of another size than the generator's "
                                      f"{fields['w_dim']}: they are not a pair", str(encoder_path))
        fields.update(enc_fields)
    paper = PaperConfig(dataset=dataset, scene_range=settings.scene_range, frame=frame_matrix(up, front),
                        encoder_image_size=options.resolution, **fields)
    prior = SizePrior(settings.height_m, settings.height_source) if settings.height_m else SizePrior(
        source=f"none: the '{dataset}' objects have no single size")
    cfg = paper_model_config(name, paper, settings.category, settings.white_background, enc_state is not None,
                             settings.crop_margin, prior)
    model = ReconstructionModel(cfg)
    _load(model.generator, gen_state, str(generator_path))
    if enc_state is not None:
        _load(model.encoder, enc_state, str(encoder_path))
    w_avg, w_std = latent_statistics(model.generator, options.samples, options.seed)
    model.generator.w_avg.copy_(w_avg)
    model.generator.w_std.copy_(w_std)
    card = {"imported_from": {"generator": Path(generator_path).name,
                              "encoder": None if encoder_path is None else Path(encoder_path).name,
                              "dataset": dataset, "up": up, "front": front,
                              "w_statistics": {"samples": options.samples, "seed": options.seed},
                              "encoder_crop": ("the whole image, as the reference's renders" if not settings.crop_margin
                                               else f"{settings.crop_margin:g} x the object's box, as the reference"),
                              "noise_mode": "const: the stored noise maps (the reference draws fresh noise at every "
                                            "forward of a generator trained with noise, such as CUB's)"},
            "source": "google-research/nerf-from-image (Pavllo et al., CVPR 2023)"}
    save_model(model, Path(out_dir) / name, card, half=options.half)
    return (Path(out_dir) / name).with_suffix(".json")


def _load(module: torch.nn.Module, state: dict, path: str) -> None:
    """Strict load of the reference tensors; our own buffers (w statistics) are not in the checkpoint."""
    own = {k: v for k, v in module.state_dict().items() if k not in state}
    missing = sorted(k for k in own if k not in ("w_avg", "w_std"))
    extra = sorted(set(state) - set(module.state_dict()))
    differ = sorted(k for k in state if k in module.state_dict() and module.state_dict()[k].shape != state[k].shape)
    if missing or extra or differ:
        detail = (f"missing '{missing[0]}'" if missing else f"unexpected '{extra[0]}'" if extra
                  else f"'{differ[0]}' is {list(state[differ[0]].shape)}")
        raise ReconstructionError(f"checkpoint does not fit the paper's architecture ({detail})", path)
    module.load_state_dict({**own, **state}, strict=True)


def latent_statistics(gen, samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-dimension spread of w = mapping(z) over ``samples`` Gaussian z (the reference starts
    its inversion from the mean, ``get_average_w``)."""
    g = torch.Generator().manual_seed(seed)
    ws = []
    with torch.no_grad():
        for start in range(0, samples, 1000):
            z = torch.randn(min(1000, samples - start), gen.cfg.z_dim, generator=g)
            ws.append(gen.mapping_ws(z)[:, 0].float())
    ws = torch.cat(ws)
    return ws.mean(dim=0), ws.std(dim=0).clamp(min=1e-6)
