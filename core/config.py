"""Every setting of a model and of a reconstruction, as documented dataclasses.

A model's JSON (``weights/<name>.json``) stores its :class:`ModelConfig`: the sizes the weights need
and the inversion, pose and mesh settings tuned for it, so a model ships with its own defaults.
:class:`ReconstructOptions` is what one call of :func:`core.api.reconstruct` asks for.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass, field

from .errors import ReconstructionError

STEPS_MAX = 1000
"""most inversion steps accepted (10 is fast, 30 slow)."""
MESH_RESOLUTION = (16, 512)
"""accepted marching-cubes grid samples per side."""
FOCAL_MM = (4.0, 2000.0)
"""accepted 35 mm-equivalent focal lengths in mm (0 also: not given)."""
HEIGHT_M = (0.01, 100.0)
"""accepted object heights in metres (a 1 cm figurine to a 100 m building)."""
TEXTURE_SIZE = (64, 4096)
"""accepted texture sides in pixels (0 also: no texture)."""
FACES = (100, 10_000_000)
"""accepted face budgets (None also: keep every face)."""
SEED_MAX = 2 ** 31 - 1
"""largest seed: what a Blender integer property holds, so every interface accepts the same seeds."""

# Each field of a settings dataclass may declare in ``field(metadata=...)`` what core.validate and the front
# ends read (nothing else states them):
#   "range": (lo, hi)   accepted numbers (every item of a tuple); "length": (lo, hi) items of a tuple;
#   "also": (v, ...)    values accepted outside the range (texture_size 0: no texture);
#   "none": v           a value that means the same as None, "not given", everywhere (focal_mm 0);
#   "choices": (...)    accepted strings;
#   "help": text        what the option does and means (the command line's --help, the API's docs);
#   "cli": {...}        the command line's flag: "flag" ('--mesh-resolution'), and optionally "type" (argparse
#                       parses to it and refuses text itself; without it core.validate refuses text with its
#                       own line), "metavar", "default" (as typed on the command line), "required";
#                       a bool field is an on/off flag (store_true);
#   "ui": {...}         the Blender property (operators/options.py): "name", "description", "default" (when
#                       the field's is None), "unset" (the property's value that stands for None), "soft_max",
#                       "unit", "precision", "subtype"; "panel": False keeps it off the panel's settings.

@dataclass
class GeneratorConfig:
    """Sizes of the triplane SDF radiance field (paper: 3 x 32 channels at 256^2; smaller here for CPU)."""

    z_dim: int = field(default=64, metadata={"range": (1, 4096)})
    """size of the Gaussian latent code z."""
    w_dim: int = field(default=128, metadata={"range": (1, 4096)})
    """size of one style vector w (the encoder predicts one, inversion optimizes one per layer)."""
    mapping_layers: int = field(default=3, metadata={"range": (1, 64)})
    """layers of the z -> w mapping MLP."""
    plane_res: int = field(default=64, metadata={"range": (4, 2048)})
    """triplane resolution (pixels per side)."""
    plane_channels: int = field(default=16, metadata={"range": (1, 4096)})
    """feature channels per plane."""
    synthesis_channels: tuple[int, ...] = field(default=(128, 96, 64, 32),
                                                metadata={"range": (1, 4096), "length": (1, 16)})
    """channels of the synthesis blocks at 8, 16, 32, 64 ... pixels (one block per entry, x2 upsampling each)."""
    plane_skips: bool = True
    """StyleGAN2 skip outputs: every synthesis resolution adds its own planes (coarse shape learns fast)."""
    plane_basis: int = field(default=64, metadata={"range": (0, 4096)})
    """size of a learned triplane dictionary added to the synthesis output with coefficients from w (0: none)."""
    decoder_hidden: int = field(default=64, metadata={"range": (1, 4096)})
    """hidden width of the point decoder MLP (softplus)."""
    color_k: int = field(default=16, metadata={"range": (1, 1024)})
    """number of attention color slots K."""
    color_hidden: int = field(default=128, metadata={"range": (1, 4096)})
    """hidden width of the w -> K colors mapping."""
    slot_hidden: int = field(default=0, metadata={"range": (0, 4096)})
    """hidden width of a separate point MLP for the K color-slot logits (0: the decoder's own outputs give them);
    with it the slots can follow the object's parts without touching the shape (training train-slots)."""
    slot_groups: tuple[str, ...] = field(default=(), metadata={"length": (0, 64)})
    """names of the part groups the K slots were trained to follow (training train-slots), each owning
    K / len consecutive slots: the recolorable parts are these groups (core.parts). Empty: parts are the
    slots that dominate somewhere."""
    bound: float = field(default=1.0, metadata={"range": (1e-3, 1e3)})
    """half side of the scene box [-bound, bound]^3."""
    beta_init: float = field(default=0.01, metadata={"range": (1e-8, 10.0)})
    """initial VolSDF Laplace scale beta (scene units)."""
    sphere_radius: float = field(default=0.5, metadata={"range": (0.0, 1e3)})
    """the SDF is |p| - sphere_radius plus the network's output, so an untrained field is a sphere (paper)."""

    @property
    def num_ws(self) -> int:
        """number of per-layer style vectors: one per synthesis block, one for the planes, one for color."""
        return len(self.synthesis_channels) + 2


@dataclass
class RenderConfig:
    """Volume-rendering settings."""

    coarse_samples: int = field(default=16, metadata={"range": (1, 1024)})
    """stratified samples per ray."""
    fine_samples: int = field(default=16, metadata={"range": (0, 1024)})
    """importance samples per ray, drawn from the coarse weights."""
    coarse_beta: float = field(default=0.04, metadata={"range": (1e-8, 10.0)})
    """wider Laplace scale used only to place the importance samples (finds thin parts)."""
    background: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0),
                                                   metadata={"range": (0.0, 1.0), "length": (3, 3)})
    """background color the model composites on (and inputs are composited on)."""
    chunk: int = field(default=8192, metadata={"range": (1, 1 << 24)})
    """rays per chunk; memory stays bounded at any resolution."""
    empty_margin: float = field(default=-1.0, metadata={"range": (-1.0, 10.0)})
    """rays whose coarse samples all lie farther than this (plus half their spacing) from the surface
    skip the fine pass and stay transparent; negative: every ray gets the fine pass."""


@dataclass
class EncoderConfig:
    """Image -> canonical map, mask and w."""

    image_size: int = field(default=64, metadata={"range": (8, 2048)})
    """input crop side in pixels (the canonical map comes out at the same size)."""
    channels: tuple[int, ...] = field(default=(16, 32, 64, 128, 192), metadata={"range": (1, 4096), "length": (1, 12)})
    """channels of the U-Net levels (each level halves the resolution)."""
    photo_masks: bool = False
    """the mask head was trained on photo-like backgrounds (floors, shadows, rooms): a photo without
    alpha or mask is then segmented with it (core.io.images.segment, mask source 'encoder')."""
    crop_margin: float = field(default=1.2, metadata={"range": (0.0, 10.0)})
    """side of the square crop the encoder reads, in multiples of the longer side of the object's box
    (1.2: this project's models; 1.1: the paper's P3D, ImageNet and CUB models); 0: the whole photo
    (padded to a square about its centre), as the paper's ShapeNet and CARLA models saw whole renders."""


@dataclass
class SegmenterConfig:
    """Photo crop -> foreground probability (core.segmenter), for photos without alpha or mask."""

    image_size: int = field(default=0, metadata={"range": (0, 2048)})
    """input crop side in pixels (0: the model has no segmenter)."""
    channels: tuple[int, ...] = field(default=(16, 32, 48, 64, 96), metadata={"range": (1, 4096), "length": (1, 12)})
    """channels of the U-Net levels (each level halves the resolution)."""


@dataclass
class InversionConfig:
    """How the hybrid inversion refines the encoder's guess (:func:`core.fit.invert.invert`).

    The measurements behind these values: weights/MODEL_CARD.md and docs/experiments.md.
    """

    size: int = field(default=64, metadata={"range": (8, 2048)})
    """side of the full-crop render compared with the input (the input crop is loaded at twice this)."""
    loss: str = "l1+ssim"
    """photometric term: 'l1+ssim' (L1 + 0.5 (1 - SSIM)) or 'l1'."""
    lr: float = field(default=3e-3, metadata={"range": (0.0, 10.0)})
    """base Adam learning rate; each parameter group scales it by its gain."""
    lr_end: float = field(default=0.5, metadata={"range": (0.0, 1.0)})
    """the learning rate follows half a cosine from ``lr`` down to this fraction of it at the last step."""
    momentum: float = field(default=0.5, metadata={"range": (0.0, 0.9999)})
    """Adam's first-moment decay (beta1) for every parameter (beta2 is 0.95)."""
    w_gain: float = field(default=15.0, metadata={"range": (0.0, 1e4)})
    """learning-rate gain on w, optimized in units of its spread per dimension."""
    pose_gain: float = field(default=2.0, metadata={"range": (0.0, 1e4)})
    """learning-rate gain on the rotation, translation, depth and focal length."""
    mask_weight: float = field(default=0.35, metadata={"range": (0.0, 1e4)})
    """weight of the silhouette term (L1 between rendered opacity and the input mask)."""
    mask_pyramid: int = field(default=5, metadata={"range": (0, 16)})
    """the silhouette term is also taken on this many 2x2-pooled copies (pulls misplaced thin parts over)."""
    n_patches: int = field(default=0, metadata={"range": (0, 4096)})
    """random patches rendered at twice the resolution and compared with the same crops of the input (paper)."""
    patch_size: int = field(default=16, metadata={"range": (1, 2048)})
    """side of those patches in pixels."""
    plane_lr: float = field(default=0.04, metadata={"range": (0.0, 10.0)})
    """learning rate of an offset fitted to the decoded triplanes, in units of each channel's spread (0: off)."""
    plane_res: int = field(default=0, metadata={"range": (0, 2048)})
    """resolution of that offset in texels a side (0: the planes' own)."""
    plane_start: int = field(default=0, metadata={"range": (0, STEPS_MAX)})
    """first step at which the offset moves."""
    plane_reg: float = field(default=0.0, metadata={"range": (0.0, 1e6)})
    """L2 pull of the offset toward zero."""
    plane_steps: int = field(default=0, metadata={"range": (0, STEPS_MAX)})
    """in a fit of more steps than this, the offset moves only in the first ``plane_steps`` steps, on the
    learning-rate schedule of a fit that long; the further steps refine the latent, the pose and the light
    (0: the offset moves in every step)."""
    plane_mirror: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    """share of the offset's left-right asymmetry removed (1: the offset is mirror-symmetric about x = 0,
    the canonical frame's left-right plane; core.fit.invert.mirrored)."""
    plane_tv: float = field(default=0.0, metadata={"range": (0.0, 1e6)})
    """weight of the offset's total variation (mean absolute difference of neighbouring texels)."""
    plane_unseen: float = field(default=0.0, metadata={"range": (0.0, 1e6)})
    """weight of the offset's change to the SDF at points the photo does not see (outside its frame or
    behind the rendered surface; core.fit.invert.unseen_change)."""
    joint_plane_lr: float | None = field(default=None, metadata={"range": (0.0, 10.0)})
    """``plane_lr`` when several photos are fitted together (core.joint; None: ``plane_lr``)."""
    steps: int = field(default=10, metadata={"range": (0, STEPS_MAX)})
    """Adam steps (0: encoder only, 10: fast, 30: slow); a call's ``steps`` overrides it."""
    seed: int = field(default=0, metadata={"range": (0, SEED_MAX)})
    """seed of the renderer's stratified samples; a call's ``seed`` overrides it."""
    hold_depth: bool = True
    """an image whose focal length is free keeps the pose solver's depth (the photo hardly tells them apart)."""


@dataclass
class PoseConfig:
    """Where the first camera comes from: the photo's focal length and the PnP solver's proposals."""

    default_focal_mm: float = field(default=42.5, metadata={"range": FOCAL_MM})
    """35 mm-equivalent focal length (EXIF definition) assumed when neither the caller nor the photo gives
    one; on a square photo it is the view of a 50 mm lens on a 36 mm wide sensor, the middle of the
    training renders' 35-60 mm."""
    focal_min: float = field(default=0.6, metadata={"range": (1e-3, 1e3)})
    """smallest focal length PnP tries when it searches, in units of the crop side."""
    focal_max: float = field(default=4.5, metadata={"range": (1e-3, 1e3)})
    """largest focal length PnP tries, in crop sides (a 35-60 mm photo of an object filling half to all
    of the frame gives 0.8-2.8, the crop being ~1.2x the object)."""
    focal_count: int = field(default=10, metadata={"range": (1, 1000)})
    """focal lengths tried between the two (geometric steps)."""
    yaw_hypotheses: tuple[float, ...] = field(default=(0.0, 90.0, 180.0, 270.0),
                                              metadata={"range": (-360.0, 360.0), "length": (1, 36)})
    """turns of the solved camera about the object's up axis, in degrees, scored by render-and-compare
    before the inversion (core.fit.hypotheses); the lowest loss starts the inversion. (0.0,): no choice."""
    hypothesis_size: int = field(default=32, metadata={"range": (8, 512)})
    """side in pixels of the renders that score the turns (a gross flip shows at low resolution)."""
    yaw_margin: float = field(default=0.2, metadata={"range": (0.0, 1.0)})
    """another turn replaces the solved camera only when its loss is lower by more than this fraction (the
    encoder's latent agrees with the encoder's pose, so small differences favour it and mean little)."""


@dataclass
class MeshConfig:
    """Marching cubes on the fitted field."""

    resolution: int = field(default=128, metadata={"range": MESH_RESOLUTION})
    """grid samples per side; a call's ``mesh_resolution`` overrides it."""
    level_betas: float = field(default=2.0, metadata={"range": (-100.0, 100.0)})
    """the surface is the level set sdf = level_betas * beta: with VolSDF density a thin part whose SDF
    stays a beta or two above zero is still opaque in the renders the inversion fits."""
    min_component_ratio: float = field(default=0.02, metadata={"range": (0.0, 1.0)})
    """connected pieces with fewer faces than this share of the largest are dropped."""
    coarse: int = field(default=48, metadata={"range": (0, 512)})
    """the field is first sampled on a grid this coarse and only points near the surface are refined."""
    carve_px: float | None = field(default=None, metadata={"range": (0.0, 1000.0)})
    """the photo's silhouette bounds the object: what the camera sees outside the photo's mask by more than
    this many pixels is cut from the surface before marching cubes (the field becomes the larger of the SDF
    and the distance to the silhouette's cone); several photos of one object all cut. Only after an
    inversion (N > 0): the encoder's guess is not fitted to the silhouette. None: no cut."""


@dataclass
class SizePrior:
    """The category's real size: a reconstruction is scaled to it (core.place) unless the caller gives one."""

    height_m: float = field(default=0.0, metadata={"range": (0.0, HEIGHT_M[1])})
    """typical overall height of the category's objects in metres (0: no prior; the mesh keeps the model's units)."""
    source: str = ""
    """where the value comes from (the command that measured it on the training data, or a reference)."""
    n: int = field(default=0, metadata={"range": (0, 1 << 40)})
    """objects it was measured on (0: not measured)."""


ARCHITECTURES = ("shape_from_image", "nerf_from_image")
"""model architectures: this project's own, and the paper's (checkpoints imported from its reference code)."""

IDENTITY_FRAME = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class PaperConfig:
    """Sizes and frame of a model of the paper's own architecture (google-research/nerf-from-image):
    its triplane StyleGAN2 generator with attention colour mapping and VolSDF head, and its
    SegFormer encoder. Only read when ``ModelConfig.architecture`` is 'nerf_from_image'; the
    defaults are the paper's full widths."""

    dataset: str = ""
    """the reference code's dataset name the checkpoint was trained on (p3d_car, cub, shapenet_chairs, ...)."""
    latent_dim: int = field(default=512, metadata={"range": (1, 4096)})
    """size of the Gaussian latent z."""
    w_dim: int = field(default=512, metadata={"range": (1, 4096)})
    """size of one style vector w."""
    mapping_layers: int = field(default=2, metadata={"range": (1, 64)})
    """layers of the z -> w mapping network."""
    plane_res: int = field(default=256, metadata={"range": (4, 1024)})
    """triplane resolution (the synthesis network's output size)."""
    plane_channels: int = field(default=32, metadata={"range": (1, 1024)})
    """feature channels per plane (the synthesis network outputs 3 times this)."""
    channel_base: int = field(default=32768, metadata={"range": (1, 1 << 22)})
    """synthesis channels at resolution r: min(channel_base // r, channel_max)."""
    channel_max: int = field(default=512, metadata={"range": (1, 4096)})
    """largest synthesis width."""
    decoder_hidden: int = field(default=64, metadata={"range": (1, 4096)})
    """hidden width of the triplane decoder MLP (softplus)."""
    attention_values: int = field(default=0, metadata={"range": (0, 1024)})
    """number of attention colour slots (0: the decoder outputs RGB directly)."""
    attention_hidden: int = field(default=512, metadata={"range": (1, 4096)})
    """hidden width of the w -> slot colours mapper."""
    scene_range: float = field(default=1.4, metadata={"range": (1e-3, 1e3)})
    """half side of the reference scene box, in the reference's units."""
    frame: tuple[float, ...] = field(default=IDENTITY_FRAME, metadata={"range": (-1.0, 1.0), "length": (9, 9)})
    """3x3 rotation, row-major, from this project's canonical frame (Z up, front -Y) to the reference
    scene frame: a canonical point p is the reference point scene_range / bound * frame @ p."""
    encoder_image_size: int = field(default=128, metadata={"range": (16, 2048)})
    """side of the square crop the encoder reads."""
    encoder_dims: tuple[int, ...] = field(default=(64, 128, 320, 512), metadata={"range": (1, 4096), "length": (4, 4)})
    """SegFormer (MiT) widths of its four stages (MiT-B5)."""
    encoder_heads: tuple[int, ...] = field(default=(1, 2, 5, 8), metadata={"range": (1, 256), "length": (4, 4)})
    """attention heads per stage."""
    encoder_depths: tuple[int, ...] = field(default=(3, 6, 40, 3), metadata={"range": (1, 256), "length": (4, 4)})
    """transformer blocks per stage."""
    encoder_sr_ratios: tuple[int, ...] = field(default=(8, 4, 2, 1), metadata={"range": (1, 64), "length": (4, 4)})
    """spatial reduction of the keys and values per stage."""
    encoder_mlp_ratio: int = field(default=4, metadata={"range": (1, 64)})
    """hidden width of the blocks' MLP, in multiples of the stage width."""
    encoder_decoder_dim: int = field(default=768, metadata={"range": (1, 4096)})
    """width of the SegFormer all-MLP decoder."""
    encoder_features: int = field(default=512, metadata={"range": (1, 4096)})
    """channels of the backbone output and of the coordinate / latent heads."""
    with_encoder: bool = True
    """the model has the encoder (an imported generator alone cannot reconstruct photos)."""
    noise_mode: str = "const"
    """the synthesis network's per-pixel noise: 'const', the stored noise maps times the learned strengths
    (deterministic). The reference draws fresh noise at every forward of a generator trained with noise
    (its noise_mode 'random'; CUB), and none for one trained without (--disable_stylegan_noise, whose
    strengths stay 0, so 'const' is exact there). Only 'const' is implemented."""


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model from its safetensors file, and how to run it."""

    name: str = "chairs"
    """model name (what --model accepts)."""
    category: str = "chair"
    """the object category the model reconstructs (shown in the model list)."""
    architecture: str = "shape_from_image"
    """which networks the weights belong to (one of ARCHITECTURES)."""
    paper: PaperConfig = field(default_factory=PaperConfig)
    """sizes and frame of a 'nerf_from_image' model (unused otherwise)."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """generator sizes."""
    render: RenderConfig = field(default_factory=RenderConfig)
    """renderer settings."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """encoder sizes."""
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    """foreground segmenter sizes (image_size 0: none)."""
    inversion: InversionConfig = field(default_factory=InversionConfig)
    """inversion settings tuned for this model."""
    pose: PoseConfig = field(default_factory=PoseConfig)
    """pose solver settings."""
    mesh: MeshConfig = field(default_factory=MeshConfig)
    """marching-cubes settings."""
    size_prior: SizePrior = field(default_factory=SizePrior)
    """the category's real size in metres (core.place scales reconstructions to it)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> "ModelConfig":
        """Rebuild from :meth:`to_dict`'s output; a missing key keeps its default, a wrong type or an
        unknown key is a :class:`ReconstructionError` naming ``where``. The inversion's render and patch
        sizes are also read from the top-level ``inversion_size`` / ``patch_size`` of older model files."""
        if isinstance(data, dict) and ("inversion_size" in data or "patch_size" in data):
            data = dict(data)
            inversion = dict(data.get("inversion", {}))
            for old, new in (("inversion_size", "size"), ("patch_size", "patch_size")):
                if old in data:
                    inversion.setdefault(new, data.pop(old))
            data["inversion"] = inversion
        return from_dict(cls, data, where)


FORMATS = ("glb", "ply", "obj")
"""mesh file formats :func:`core.api.reconstruct` writes."""
SIDE_FILES = {"obj": (".mtl", "_texture.png")}
"""files written next to ``<stem>.<format>`` for a textured mesh, as suffixes of the stem (OBJ: its material
library and the texture it names; GLB embeds its texture, PLY has none)."""


def _option(default, help: str, cli: dict | None = None, ui: dict | None = None, **rules):
    """A :class:`ReconstructOptions` field: its default and metadata (see the comment at the top)."""
    meta = {"help": help, **rules}
    if cli is not None:
        meta["cli"] = cli
    if ui is not None:
        meta["ui"] = ui
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ReconstructOptions:
    """What one call of :func:`core.api.reconstruct` asks for (None: the model's own setting).

    Every front end builds this one object: the command line's flags and the Blender properties are made
    from the fields' metadata (``help``, ``cli``, ``ui``) and core.validate checks each field by its rules
    (``range``, ``choices`` ...), so a field added here reaches the CLI, the API, the batch script and the
    Blender operator and panel (the panel's layout draws it where it belongs)."""

    model: str = _option("chairs", "model name or path to a .safetensors file", cli={"flag": "--model"})
    """model name or path to its .safetensors / .json file."""
    steps: int | None = _option(
        None, "inversion steps: 0 encoder only, 10 fast, 30 slow (default: the model's, 10 for chairs)",
        cli={"flag": "--steps", "type": int}, range=(0, STEPS_MAX),
        ui={"name": "Steps", "description": "Inversion steps (0 = encoder only)", "default": 10, "panel": False})
    """inversion steps: 0 encoder only, 10 fast, 30 slow (None: the model's ``inversion.steps``)."""
    device: str = _option("auto", "auto, cpu, cuda, cuda:N or mps", cli={"flag": "--device"})
    """'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    mesh_resolution: int | None = _option(
        None, "marching-cubes grid samples per side, 16-512 (default: the model's, 128 for chairs)",
        cli={"flag": "--mesh-resolution", "type": int}, range=MESH_RESOLUTION,
        ui={"name": "Mesh Resolution", "description": "Marching-cubes grid size (detail vs. time)", "default": 128,
            "soft_max": 256})
    """marching-cubes grid samples per side, 16-512 (None: the model's ``mesh.resolution``)."""
    seed: int = _option(0, "seed of the renderer's random samples, 0 to 2147483647", cli={"flag": "--seed", "type": int},
                        range=(0, SEED_MAX), ui={"name": "Seed", "description": "Seed of the renderer's random samples",
                                                 "panel": False})
    """seed of the renderer's random samples (results are reproducible for a seed)."""
    out_dir: str | None = _option(None, "output folder for <stem>.<format> and <stem>.json",
                                  cli={"flag": "--out", "required": True})
    """when set, ``<stem>.<fmt>`` and ``<stem>.json`` are written there for every image."""
    fmt: str = _option("glb", "mesh file format", cli={"flag": "--format"}, choices=FORMATS)
    """mesh file format: glb, ply or obj."""
    focal_mm: float | None = _option(
        None, "35 mm-equivalent focal length of the photos (as EXIF defines it: on the 43.3 mm diagonal of a "
              "36 x 24 mm frame); default or 0: the EXIF value, else the model's default",
        cli={"flag": "--focal-mm", "type": float}, range=FOCAL_MM, none=0.0,
        ui={"name": "Focal Length", "description": "35 mm-equivalent focal length of the photo (as EXIF states it); "
                                                   "0: the photo's EXIF value, else the model's default",
            "unset": 0.0, "soft_max": 300.0, "unit": "CAMERA", "precision": 1})
    """35 mm-equivalent focal length of the photos (EXIF definition, core.geometry.lens), 4-2000. None or 0: each
    photo's EXIF value, else the model's ``pose.default_focal_mm`` (``estimate_focal`` searches it instead)."""
    estimate_focal: bool = _option(
        False, "search the focal length from the image instead of taking the EXIF value or the model's default",
        cli={"flag": "--estimate-focal"},
        ui={"name": "Estimate Focal Length", "description": "Search the focal length from the image instead of "
                                                            "taking the photo's EXIF value or the model's default"})
    """the pose solver searches the focal length and the inversion refines it (only when ``focal_mm`` is not
    given: a given focal length is kept)."""
    inversion: InversionConfig | None = _option(None, "expert inversion settings")
    """expert inversion settings (None: the model's; ``steps`` and ``seed`` above still apply)."""
    batch_size: int | None = _option(None, "images encoded and inverted together", range=(1, 1 << 20))
    """images encoded and inverted together (None: one at a time on the CPU, where batching is slower
    per image, 4 on a GPU)."""
    model_dirs: tuple[str, ...] = _option((), "extra folders searched for model names")
    """extra folders searched for model names before the shipped weights (the rules for every option:
    :func:`core.validate.check_options`)."""
    height_m: float | None = _option(
        None, "the object's real height in metres, 0.01-100 (default: the model's typical size, 0.87 m for "
              "chairs); the mesh stands on z = 0, its camera moved with it",
        cli={"flag": "--height-m", "metavar": "H"}, range=HEIGHT_M,
        ui={"name": "Height", "description": "The object's real height; 0: the model's typical size for its "
                                             "category (a chair: 0.87 m)",
            "unset": 0.0, "soft_max": 5.0, "unit": "LENGTH", "precision": 3})
    """the object's overall height in metres (0.01-100): mesh and camera are scaled to it (None: the model's
    ``size_prior``; a model without one keeps its own units)."""
    place: bool = _option(True, "put the object on the floor")
    """put the object on the floor: origin at the centre of its base, base at z = 0, scaled to ``height_m``,
    the camera moved with it (core.place). False: mesh and camera stay in the model's canonical frame
    (centred, normalized units), as the evaluations that re-render the field need."""
    texture_size: int = _option(
        1024, "side in pixels of the colour texture baked from the photo, 64-4096; 0: vertex colours only "
              "(default 1024)", cli={"flag": "--texture-size", "metavar": "T", "default": "1024"},
        range=TEXTURE_SIZE, also=(0,),
        ui={"name": "Texture Size", "description": "Side in pixels of the colour texture baked from the photo "
                                                   "(0: vertex colours only)"})
    """side in pixels of the colour texture baked from the photo onto a UV atlas (core.texture), 64-4096;
    0: vertex colours only."""
    faces: int | None = _option(
        None, "decimate the mesh to about N faces (100 to 10000000; default: keep them all)",
        cli={"flag": "--faces", "metavar": "N"}, range=FACES,
        ui={"name": "Face Budget", "description": "Decimate the mesh to about this many faces (0: keep them all)",
            "unset": 0})
    """decimate the mesh to about this many triangles (quadric, 100 to 10,000,000) before it is unwrapped
    and textured (None: keep marching cubes' mesh)."""

    def to_dict(self) -> dict:
        """Plain data (JSON-able): what crosses a thread or process boundary; :meth:`from_dict` rebuilds it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> "ReconstructOptions":
        return from_dict(cls, data, where)


LOSSES = ("l1+ssim", "l1")
"""photometric losses the inversion knows."""


def from_dict(kind, data, where: str = "", prefix: str = ""):
    """The dataclass ``kind`` from a JSON object, field types checked (tuples from lists, nested dataclasses)."""
    if not isinstance(data, dict):
        raise ReconstructionError(f"setting '{prefix.rstrip('.') or kind.__name__}' must be an object, got {data!r}", where)
    hints = typing.get_type_hints(kind)
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ReconstructionError(f"unknown setting '{prefix}{unknown[0]}'; known: {', '.join(sorted(names))}", where)
    values = {}
    for key, value in data.items():
        values[key] = _typed(hints[key], value, where, prefix + key)
    return kind(**values)


def optional(hint):
    """The type inside ``X | None`` (``Optional[X]``); None for any other hint."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return None


def _typed(hint, value, where: str, name: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where, name + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ReconstructionError(f"setting '{name}' must be a list, got {value!r}", where)
        item = typing.get_args(hint)[0]
        return tuple(_typed(item, v, where, name) for v in value)
    if optional(hint):
        if value is None:
            return None
        hint = optional(hint)
    truth = isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__.startswith("bool"))
    whole = hasattr(value, "__index__") and not truth  # int or a NumPy integer
    ok = {bool: isinstance(value, bool),
          int: whole,
          float: whole or (isinstance(value, numbers.Real) and not truth),
          str: isinstance(value, str)}.get(hint, True)
    if not ok:
        raise ReconstructionError(f"setting '{name}' must be {hint.__name__}, got {value!r}", where)
    if hint is float:
        return float(value)
    return int(value) if hint is int else value


def replaced(config, changes: dict, where: str = ""):
    """A copy of the dataclass ``config`` with ``changes`` (checked like :func:`from_dict`)."""
    merged = {**dataclasses.asdict(config), **changes}
    return from_dict(type(config), merged, where)


def tiny_config() -> ModelConfig:
    """A very small model for fast tests."""
    return ModelConfig(name="tiny",
                       generator=GeneratorConfig(z_dim=16, w_dim=32, mapping_layers=2, plane_res=16,
                                                 plane_channels=8, synthesis_channels=(32, 16), plane_basis=4,
                                                 decoder_hidden=32, color_k=4, color_hidden=32),
                       render=RenderConfig(coarse_samples=12, fine_samples=12),
                       encoder=EncoderConfig(image_size=32, channels=(8, 16, 32)),
                       inversion=InversionConfig(size=32, patch_size=8))
