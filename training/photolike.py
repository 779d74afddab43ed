"""Photo-like conditions for the encoder's bootstrap renders: surroundings and materials.

A user's photo has no alpha channel: the chair stands on a floor, casts a contact shadow and has a
wall, a room or the outdoors behind it. The encoder's mask head learns to tell the chair from those
(core.io.images refines the automatic segmentation with it), so its renders are composited over:

- ``room``: a floor (wood planks, tiles or carpet: stripes, grid lines and noise in a random colour)
  meeting a wall at a random horizon, lit by a vertical gradient, with the chair's contact shadow
  (the bottom of its silhouette squashed onto the floor and blurred; a shadow is never object);
- ``hdri``: a random window of one of Blender's bundled studio-light HDRIs (``datafiles/studiolights
  /world`` of the bpy wheel), tone-mapped; skipped when the wheel is not installed;
- ``plain``: a flat or graded colour (paper backdrops, walls).

Materials: the generator paints each part in one colour, a real chair has wood grain, fabric weave
or leather creases. :func:`material_texture` multiplies the albedo by a screen-space pattern (grain
stripes bent by noise, a woven grid, fine noise) for a share of the renders.

Everything is drawn with torch from a seeded generator: the same seed gives the same images.
"""

from __future__ import annotations

import glob
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

KINDS = ("room", "hdri", "plain")
KIND_WEIGHTS = (0.55, 0.25, 0.2)


def hdri_folder() -> Path | None:
    """``datafiles/studiolights/world`` of the installed bpy wheel (None without it)."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    hits = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "*", "datafiles", "studiolights", "world"))
    return Path(hits[0]) if hits else None


def load_hdris(folder: Path | None = None) -> list[torch.Tensor]:
    """Every ``*.exr`` in ``folder`` (default :func:`hdri_folder`) as (H, W, 3) float in [0, 1]:
    exposure set so the median pixel is mid-grey, then Reinhard tone mapping and gamma 2.2."""
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    folder = folder or hdri_folder()
    if folder is None:
        return []
    out = []
    for path in sorted(Path(folder).glob("*.exr")):
        a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if a is None or a.ndim != 3:
            continue
        x = torch.from_numpy(a[..., ::-1].copy()).float().clamp(min=0)
        x = x * (0.18 / x.mean(-1).median().clamp(min=1e-6))
        out.append((x / (1 + x)).pow(1 / 2.2).clamp(0, 1))
    return out


def _muted(rgb: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """Pull colours (..., 3) toward their grey by 1 - ``saturation``: rooms are mostly muted."""
    grey = rgb.mean(-1, keepdim=True)
    return grey + (rgb - grey) * saturation


def _noise(b: int, s: int, cells: int, g: torch.Generator) -> torch.Tensor:
    """(B, S, S) smooth value noise in about [-1, 1] with ``cells`` cells across."""
    coarse = torch.rand(b, 1, cells + 1, cells + 1, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=True)[:, 0].clamp(-1, 1)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of (B, S, S) with one sigma (pixels) per image."""
    radius = int(math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None].clamp(min=0.3)) ** 2)
    k = k / k.sum(-1, keepdim=True)
    b, s, _ = x.shape
    y = F.conv2d(F.pad(x[None], (radius, radius, 0, 0), mode="replicate"), k[:, None, None, :], groups=b)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=b)
    return y[0]


def contact_shadow(alpha: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(B, S, S) shadow strength in [0, 1] on the floor under each silhouette ``alpha`` (B, S, S): the
    lowest third of the object, squashed toward its bottom row, widened and blurred."""
    b, s, _ = alpha.shape
    rows = torch.arange(s, dtype=torch.float32)
    present = alpha > 0.5
    any_row = present.any(-1)  # (B, S)
    bottom = torch.where(any_row, rows, torch.full_like(rows, -1)).amax(-1)  # (B,)
    top = torch.where(any_row, rows, torch.full_like(rows, float(s))).amin(-1)
    height = (bottom - top).clamp(min=1)
    low = (rows[None] > bottom[:, None] - height[:, None] / 3).float()  # (B, S)
    base = alpha * low[:, :, None]
    # squash: the row r maps to bottom + (r - bottom) * squash (a floor seen at a grazing angle)
    squash = 0.15 + 0.35 * torch.rand(b, generator=g)
    src = bottom[:, None] + (rows[None] - bottom[:, None]) / squash[:, None]  # (B, S) source row per target row
    gy = (src + 0.5) / s * 2 - 1
    gx = torch.linspace(-1 + 1 / s, 1 - 1 / s, s)
    grid = torch.stack([gx[None, None].expand(b, s, s), gy[:, :, None].expand(b, s, s)], dim=-1)
    shadow = F.grid_sample(base[:, None], grid, align_corners=False, padding_mode="zeros")[:, 0]
    shadow = shadow + 0.5 * F.max_pool2d(shadow[:, None], 5, 1, 2)[:, 0]  # a wider, softer halo
    sigma = 0.6 + 2.5 * torch.rand(b, generator=g)
    return _blur(shadow.clamp(0, 1), sigma).clamp(0, 1)


def _room(alpha: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b, s, _ = alpha.shape
    rnd = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    yy = torch.linspace(0, 1, s)[None, :, None].expand(b, s, s)
    xx = torch.linspace(0, 1, s)[None, None, :].expand(b, s, s)
    # horizon: from above the frame (all floor) to the chair's middle
    horizon = (rnd(b) * 0.8 - 0.3)[:, None, None]
    floor = (yy > horizon).float()
    depth = (yy - horizon).clamp(min=0.02)  # perspective: stripes crowd toward the horizon
    u = (xx - 0.5) / depth
    v = 1 / depth
    kind = torch.randint(0, 3, (b,), generator=g)[:, None, None]
    freq = 2 + 6 * rnd(b)[:, None, None]
    planks = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * u + 3 * _noise(b, s, 3, g))
    grain = _noise(b, s, 24, g) * 0.5 + _noise(b, s, 8, g) * 0.5
    wood = 0.75 + 0.15 * planks + 0.1 * grain
    lines = ((torch.frac(freq * u) < 0.04) | (torch.frac(freq * v * 0.3) < 0.04)).float()
    tiles = 1 - 0.3 * lines
    carpet = 0.9 + 0.1 * _noise(b, s, 48, g)
    pattern = torch.where(kind == 0, wood, torch.where(kind == 1, tiles, carpet))
    floor_rgb = _muted(0.15 + 0.75 * rnd(b, 1, 1, 3), rnd(b, 1, 1, 1))
    wall_rgb = _muted(0.5 + 0.5 * rnd(b, 1, 1, 3), rnd(b, 1, 1, 1))
    wall_rgb = wall_rgb * (0.9 + 0.1 * _noise(b, s, 4, g))[..., None]
    bg = floor[..., None] * floor_rgb * pattern[..., None] + (1 - floor[..., None]) * wall_rgb
    light = 1 + (0.3 * rnd(b) - 0.15)[:, None, None] * (yy * 2 - 1) + (0.3 * rnd(b) - 0.15)[:, None, None] * (xx * 2 - 1)
    bg = bg * light[..., None]
    shadow = contact_shadow(alpha, g) * floor * (0.3 + 0.5 * rnd(b))[:, None, None]
    return bg * (1 - shadow[..., None])


def _hdri(b: int, s: int, hdris: list[torch.Tensor], g: torch.Generator) -> torch.Tensor:
    out = []
    for _ in range(b):
        pano = hdris[int(torch.randint(0, len(hdris), (1,), generator=g))]
        h, w, _ = pano.shape
        side = int(h * (0.15 + 0.35 * float(torch.rand(1, generator=g))))
        y0 = int(torch.randint(int(0.2 * h), max(int(0.2 * h) + 1, h - side), (1,), generator=g))
        x0 = int(torch.randint(0, w - side, (1,), generator=g))
        win = pano[y0:y0 + side, x0:x0 + side].permute(2, 0, 1)[None]
        out.append(F.interpolate(win, size=(s, s), mode="bilinear", align_corners=False)[0].permute(1, 2, 0))
    return torch.stack(out) * (0.6 + 0.8 * torch.rand(b, 1, 1, 1, generator=g))


def _plain(b: int, s: int, g: torch.Generator) -> torch.Tensor:
    sat = torch.rand(b, 1, 1, 1, generator=g)
    c0, c1 = _muted(torch.rand(b, 1, 1, 3, generator=g), sat), _muted(torch.rand(b, 1, 1, 3, generator=g), sat)
    t = torch.linspace(0, 1, s)[None, :, None, None] * torch.rand(b, 1, 1, 1, generator=g)
    return c0 + (c1 - c0) * t


def photo_backgrounds(alpha: torch.Tensor, g: torch.Generator, hdris: list[torch.Tensor] | None = None) -> torch.Tensor:
    """(B, S, S, 3) backgrounds in [0, 1] for silhouettes ``alpha`` (B, S, S), one kind per image
    (KIND_WEIGHTS; ``hdri`` falls back to ``room`` without HDRIs)."""
    b, s, _ = alpha.shape
    weights = torch.tensor(KIND_WEIGHTS)
    kind = torch.multinomial(weights, b, replacement=True, generator=g)
    if not hdris:
        kind = torch.where(kind == 1, torch.zeros_like(kind), kind)
    bg = _room(alpha, g)
    if (kind == 1).any():
        bg[kind == 1] = _hdri(int((kind == 1).sum()), s, hdris, g)
    if (kind == 2).any():
        bg[kind == 2] = _plain(int((kind == 2).sum()), s, g)
    return bg.clamp(0, 1)


def soft_focus(img: torch.Tensor, g: torch.Generator, share: float = 0.3) -> torch.Tensor:
    """A 3x3 binomial blur on a random ``share`` of the images (B, S, S, 3) (focus, camera shake)."""
    blur = torch.rand(img.shape[0], generator=g) < share
    if blur.any():
        k = torch.tensor([0.25, 0.5, 0.25])
        kernel = (k[:, None] * k[None]).expand(3, 1, 3, 3)
        x = img[blur].permute(0, 3, 1, 2)
        img[blur] = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3).permute(0, 2, 3, 1)
    return img


def material_texture(b: int, s: int, g: torch.Generator) -> torch.Tensor:
    """(B, S, S, 1) albedo factors around 1: wood grain, weave or fine grain, one per image, strength
    5-30%."""
    rnd = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    angle = rnd(b) * math.pi
    along = xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]
    across = -xx[None] * torch.sin(angle)[:, None, None] + yy[None] * torch.cos(angle)[:, None, None]
    freq = (4 + 20 * rnd(b))[:, None, None]
    grain = torch.sin(2 * math.pi * freq * across + 2.5 * _noise(b, s, 4, g) + 0.3 * along)
    weave = torch.sin(2 * math.pi * 2 * freq * along) * torch.sin(2 * math.pi * 2 * freq * across)
    fine = _noise(b, s, s // 2, g)
    kind = torch.randint(0, 3, (b,), generator=g)[:, None, None]
    pattern = torch.where(kind == 0, grain, torch.where(kind == 1, weave, fine))
    strength = (0.05 + 0.25 * rnd(b))[:, None, None]
    return (1 + strength * pattern)[..., None]
