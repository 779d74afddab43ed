"""The paper's encoder: a SegFormer (MiT-B5) with a canonical-coordinate / mask head and a w head.

Same parameters, same names and same arithmetic as the reference ``BootstrapEncoder`` (google-research/
nerf-from-image ``models/encoder.py``, built with ``pose_regressor=True, latent_regressor=True,
separate_backbones=False``), so the ``model_coord`` state dict of its ``coords_checkpoints/*.pth``
loads as is once DataParallel's ``module.`` prefix is stripped.

What the reference encoder reads (``run.py`` train_coord_regressor and the inversion, ``data/``):

- **range and size**: an image (B, 3, 128, 128) in [-1, 1] (``--resolution`` 128 by default). It is
  trained only on images rendered by the frozen generator (clamped to [-1, 1]) and applied at
  inversion time to ``split.images[..., :3]``, a dataset image ``img * 2 - 1``.
- **background**, the one the generator was trained with (``white_background`` of the dataset config):
  ShapeNet (shapenet_cars, shapenet_chairs) and CARLA: white, +1 (1.0 in [0, 1]); SRN renderings are
  used whole, unmasked. P3D (p3d_car), CUB (cub) and ImageNet (imagenet_*): 0, i.e. mid-grey (0.5 in
  [0, 1]): the dataset masks the photo, ``img = (img * 2 - 1) * mask`` with the (area-resized, hence
  soft-edged) segmentation mask, so the object is composited on 0 and everything else, including the
  padding outside the photo, is 0. :func:`reference_background` gives that colour in [0, 1].
- **crop**: at inversion, P3D and CUB test images are the object's box grown by 5 % of its size on
  every side, made square (centred) and area-resized (OpenCV INTER_AREA) to 128; ImageNet (no test
  split) uses the whole photo made square (256 px, then 2 x 2 average-pooled). ShapeNet views are the
  128 x 128 SRN renderings (area-resized if larger), object at the scene origin. The encoder itself is
  trained on renderings at the training images' poses and framings (for P3D and ImageNet the whole
  photo made square), so it does not assume a tight crop.

What it predicts, per pixel at the input resolution:

- **coords**: the reference scene point q of the visible surface, in the reference's units (the same
  units as ``scene_range``: the training target is the volume-rendered query point ``x_in``, not
  divided by ``scene_range``; only the demo visualisation divides by it). Being volume-rendered, the
  target is premultiplied by the opacity: about 0 on the background, q * alpha at soft edges. The
  reference's PnP uses it as is where segmentation > 0.9.
- **segmentation**: the foreground probability (sigmoid of the fourth map).
- **w**: one style vector (B, 1, w_dim), broadcast to every layer's w by the inversion.

:meth:`PaperEncoder.forward` wraps this for this project's pipeline (``core.encoder.EncoderOutput``):
[0, 1] images of any square size in, this project's canonical frame out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PaperConfig
from ..encoder import EncoderOutput
from .segformer import Segformer

MASK_EPS = 1e-6
"""probabilities are clamped to [eps, 1 - eps] before the logit, so mask logits stay within about +-13.8."""

_BACKGROUNDS = (("shapenet", 1.0), ("carla", 1.0), ("p3d_", 0.5), ("imagenet_", 0.5), ("cub", 0.5))


def reference_background(dataset: str) -> float:
    """The grey level in [0, 1] that the reference encoder of ``dataset`` expects behind the object
    (white for ShapeNet and CARLA, mid-grey, i.e. 0 in the reference's [-1, 1], for P3D, CUB and
    ImageNet)."""
    for prefix, value in _BACKGROUNDS:
        if dataset.startswith(prefix):
            return value
    raise ValueError(f"unknown reference dataset {dataset!r}: expected shapenet_*, carla, p3d_*, imagenet_* or cub")


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


def _resize(grid: Tensor, size: int) -> Tensor:
    """grid (B, C, H, W) -> (B, C, size, size): box-filtered (area) when shrinking, as the reference's
    data pipeline resizes, bilinear when enlarging."""
    if grid.shape[-1] == size and grid.shape[-2] == size:
        return grid
    if size < grid.shape[-1]:
        return F.interpolate(grid, size=(size, size), mode="area")
    return F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)


class PaperEncoder(nn.Module):
    """The reference ``BootstrapEncoder`` (pose and latent regressor, one shared backbone).

    ``backbone`` (SegFormer, ``encoder_features`` channels at 1/4 resolution), ``post`` (three 3x3
    convs -> 3 coordinate + 1 mask channels at full resolution), ``w_regressor_pre`` (3x3 conv, then
    a spatial mean) and ``w_regressor_post`` (MLP ending in LeakyReLU(0.2) like the mapping network).
    """

    def __init__(self, cfg: PaperConfig, bound: float = 1.0):
        super().__init__()
        self.cfg = cfg
        self.bound = bound
        f = cfg.encoder_features
        self.backbone = Segformer(cfg)
        self.post = nn.Sequential(_conv3(f, f), nn.ReLU(), _conv3(f, f), nn.ReLU(), _conv3(f, 4))
        self.w_regressor_pre = nn.Sequential(_conv3(f, f), nn.ReLU())
        self.w_regressor_post = nn.Sequential(nn.Linear(f, f), nn.ReLU(), nn.Linear(f, cfg.w_dim), nn.LeakyReLU(0.2))
        frame = torch.tensor(cfg.frame, dtype=torch.float32).reshape(3, 3)
        # a canonical point is p = bound / scene_range * R^T q; for row vectors p = q @ (R * bound / scene_range)
        self.register_buffer("to_canonical", frame * (bound / cfg.scene_range), persistent=False)

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The reference's computation, with the mask still as a logit.

        x (B, 3, H, W) in [-1, 1] -> coords (B, H, W, 3) reference scene points, mask logits (B, H, W),
        w (B, w_dim). H and W multiples of 4 give outputs of the input's size.
        """
        features = self.backbone(x)  # (B, F, H/4, W/4)
        maps = self.post(F.relu(F.interpolate(features, scale_factor=4, mode="bilinear", align_corners=False)))
        pooled = self.w_regressor_pre(F.relu(features)).mean(dim=(2, 3))  # (B, F)
        return maps[:, :3].permute(0, 2, 3, 1), maps[:, 3], self.w_regressor_post(pooled)

    def reference_forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Exactly the reference ``BootstrapEncoder.forward`` (drop path is off in eval mode).

        x (B, 3, H, W) in [-1, 1] -> coords (B, H, W, 3) in reference scene units, segmentation
        (B, H, W) probabilities, w (B, 1, w_dim).
        """
        coords, logits, w = self.predict(x)
        return coords, torch.sigmoid(logits), w.unsqueeze(1)

    def forward(self, image: Tensor) -> EncoderOutput:
        """image (B, S, S, 3) in [0, 1], composited on :func:`reference_background` of the model's dataset
        -> EncoderOutput with coords (B, S, S, 3) in this project's canonical frame, mask_logits (B, S, S)
        and w (B, w_dim).

        The image is resized to ``encoder_image_size`` when S differs (area when shrinking), the maps
        are resized back to S (probabilities, then the logit; coordinates stay premultiplied by the
        opacity, as the reference predicts them).
        """
        if image.ndim != 4 or image.shape[1] != image.shape[2] or image.shape[3] != 3:
            raise ValueError(f"expected square images (B, S, S, 3), got {tuple(image.shape)}")
        side = image.shape[1]
        x = _resize(image.permute(0, 3, 1, 2) * 2 - 1, self.cfg.encoder_image_size)
        coords, logits, w = self.predict(x)
        coords = _resize(coords.permute(0, 3, 1, 2), side).permute(0, 2, 3, 1)
        prob = _resize(torch.sigmoid(logits).unsqueeze(1), side).squeeze(1)
        return EncoderOutput(coords=coords @ self.to_canonical.to(coords.dtype),
                             mask_logits=torch.logit(prob, eps=MASK_EPS), w=w)
