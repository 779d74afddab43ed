"""Tests of core.io.images: decoding, masks, segmentation, crop geometry and bad input."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps, features

from core.geometry.camera import Crop
from core.errors import ReconstructionError
from core.io.images import (
    ForegroundNet,
    _net_probability,
    crop_and_resize,
    load_image,
    load_mask,
    mask_bbox,
    prepare_image,
    segment,
    segment_foreground,
    square_crop,
)

LEFT = (0.2, 0.4, 0.6)  # colour of the left half of the format test image


# ---------------------------------------------------------------------------------------------
# helpers


def disk_mask(width, height, cx, cy, radius, supersample=8):
    """(H, W) float32 antialiased disk: exact pixel-area coverage up to 1/supersample^2."""
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    cover = np.zeros((height, width), np.float32)
    offsets = (np.arange(supersample, dtype=np.float32) + 0.5) / supersample
    for oy in offsets:
        dy2 = (y + oy - cy) ** 2
        for ox in offsets:
            cover += (x + ox - cx) ** 2 + dy2 < radius ** 2
    return cover / supersample ** 2


def disk_image(width, height, cx, cy, radius, color=(0.8, 0.2, 0.1), background=(0.9, 0.9, 0.85)):
    """(H, W, 3) float32 image of a disk and its (H, W) coverage."""
    m = disk_mask(width, height, cx, cy, radius)
    rgb = m[..., None] * np.array(color, np.float32) + (1 - m[..., None]) * np.array(background, np.float32)
    return rgb.astype(np.float32), m


def to8(x):
    return np.clip(np.rint(np.asarray(x) * 255), 0, 255).astype(np.uint8)


def save_png_with_alpha(path, rgb, alpha):
    Image.fromarray(np.dstack([to8(rgb), to8(alpha)]), "RGBA").save(path)


def halves(h=24, w=40):
    """(h, w, 3) float image: left half LEFT, right half white."""
    rgb = np.ones((h, w, 3), np.float32)
    rgb[:, : w // 2] = LEFT
    return rgb


def centroid(mask):
    """Centre of mass (x, y) of an (H, W) mask in continuous pixel coordinates."""
    ys, xs = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    total = mask.sum()
    return float(((xs + 0.5) * mask).sum() / total), float(((ys + 0.5) * mask).sum() / total)


def iou(a, b):
    a, b = a >= 0.5, b >= 0.5
    return (a & b).sum() / (a | b).sum()


def write_big_png(path, width, height):
    """A valid 1-bit PNG of ``width x height`` black pixels, built without allocating the image."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = (b"\x00" + bytes((width + 7) // 8)) * 1000
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(rows) for _ in range(height // 1000)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------------------------
# formats and modes


def _pil_image(mode):
    rgb8 = to8(halves())
    if mode == "RGB":
        return Image.fromarray(rgb8, "RGB")
    if mode == "L":
        return Image.fromarray(rgb8, "RGB").convert("L")
    if mode == "1":
        return Image.fromarray(rgb8[..., 0] > 128).convert("1")
    if mode == "P":
        return Image.fromarray(rgb8, "RGB").quantize(4)
    if mode == "CMYK":
        return Image.fromarray(rgb8, "RGB").convert("CMYK")
    alpha = np.full(rgb8.shape[:2], 255, np.uint8)
    alpha[:4] = 0  # top rows transparent
    if mode == "RGBA":
        return Image.fromarray(np.dstack([rgb8, alpha]), "RGBA")
    if mode == "LA":
        return Image.fromarray(np.dstack([rgb8, alpha]), "RGBA").convert("LA")
    raise ValueError(mode)


# (file name, Pillow mode or special case, expects alpha, gray, tolerance)
FORMAT_CASES = [
    ("rgb.png", "RGB", False, False, 1e-6),
    ("l.png", "L", False, True, 1e-6),
    ("bw.png", "1", False, True, 1e-6),
    ("pal.png", "P", False, False, 1e-6),
    ("rgba.png", "RGBA", True, False, 1e-6),
    ("la.png", "LA", True, True, 1e-6),
    ("rgb.jpg", "RGB", False, False, 0.04),
    ("l.jpg", "L", False, True, 0.04),
    ("cmyk.jpg", "CMYK", False, False, 0.06),
    ("rgb.webp", "RGB", False, False, 1e-6),
    ("rgba.webp", "RGBA", True, False, 1e-6),
    ("rgb.tif", "RGB", False, False, 1e-6),
    ("rgba.tif", "RGBA", True, False, 1e-6),
    ("cmyk.tif", "CMYK", False, False, 0.01),
    ("rgb.bmp", "RGB", False, False, 1e-6),
    ("l.bmp", "L", False, True, 1e-6),
]


@pytest.mark.parametrize("name,mode,has_alpha,gray,tol", FORMAT_CASES)
def test_formats_and_modes(tmp_path, name, mode, has_alpha, gray, tol):
    if name.endswith(".webp") and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    path = tmp_path / name
    kwargs = {"lossless": True} if name.endswith(".webp") else {"quality": 95} if name.endswith(".jpg") else {}
    _pil_image(mode).save(path, **kwargs)
    img = load_image(path)
    assert img.rgb.shape == (24, 40, 3) and img.rgb.dtype == np.float32
    assert (img.orig_width, img.orig_height, img.scale) == (40, 24, 1.0)
    assert img.rgb.min() >= 0.0 and img.rgb.max() <= 1.0
    left = img.rgb[12, 5]
    if mode == "1":
        expected_left = np.zeros(3)  # 0.2 * 255 < 128 -> black
    elif gray:
        expected_left = np.full(3, round(255 * (0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6)) / 255)
    else:
        expected_left = np.array(LEFT)
    tol_left = max(tol, 1 / 255 + 1e-6) if mode in ("P", "L", "LA") else max(tol, 0.5 / 255 + 1e-6)
    np.testing.assert_allclose(left, expected_left, atol=tol_left)
    np.testing.assert_allclose(img.rgb[12, 35], 1.0, atol=max(tol, 1e-6))
    if has_alpha:
        assert img.alpha is not None and img.alpha.shape == (24, 40)
        assert img.alpha[:4].max() == 0.0 and img.alpha[4:].min() == 1.0
    else:
        assert img.alpha is None


def test_palette_transparency_gives_alpha(tmp_path):
    im = Image.fromarray(to8(halves()), "RGB").quantize(4)
    white = im.getpixel((35, 12))
    im.save(tmp_path / "p.png", transparency=white)
    img = load_image(tmp_path / "p.png")
    assert img.alpha is not None
    assert img.alpha[:, 30:].max() == 0.0 and img.alpha[:, :15].min() == 1.0


def test_opaque_alpha_is_ignored(tmp_path):
    save_png_with_alpha(tmp_path / "opaque.png", halves(), np.ones((24, 40)))
    assert load_image(tmp_path / "opaque.png").alpha is None


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_gray(tmp_path, ext):
    a = np.full((24, 40), 65535, np.uint16)
    a[:, :20] = 1000
    Image.fromarray(a).save(tmp_path / f"g16.{ext}")  # mode I;16
    img = load_image(tmp_path / f"g16.{ext}")
    assert img.rgb.shape == (24, 40, 3)
    np.testing.assert_allclose(img.rgb[5, 30], 1.0, atol=1e-7)
    np.testing.assert_allclose(img.rgb[5, 5], 1000 / 65535, atol=1e-6)


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_color_full_precision(tmp_path, ext, channels):
    bgr = np.full((24, 40, channels), 65535, np.uint16)
    bgr[:, :20, :3] = (3000, 2000, 1000)  # OpenCV order: B, G, R
    if channels == 4:
        bgr[:4, :, 3] = 0
    assert cv2.imwrite(str(tmp_path / f"c16.{ext}"), bgr)
    img = load_image(tmp_path / f"c16.{ext}")
    np.testing.assert_allclose(img.rgb[10, 5], np.array([1000, 2000, 3000]) / 65535, atol=1e-6)
    np.testing.assert_allclose(img.rgb[10, 35], 1.0, atol=1e-7)
    if channels == 4:
        assert img.alpha is not None and img.alpha[:4].max() == 0 and img.alpha[4:].min() == 1.0
    else:
        assert img.alpha is None


# ---------------------------------------------------------------------------------------------
# EXIF orientation


def _save_oriented(path, arr, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    arr = rng.integers(0, 256, (20, 33, 3), dtype=np.uint8)
    path = tmp_path / f"o{orientation}.png"
    _save_oriented(path, arr, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")) / 255
    img = load_image(path)
    assert img.orientation == orientation
    assert (img.orig_height, img.orig_width) == expected.shape[:2]
    np.testing.assert_allclose(img.rgb, expected, atol=1e-6)


def test_exif_rotate_90_jpeg(tmp_path):
    arr = np.full((40, 60, 3), 255, np.uint8)
    arr[:10, :10] = (255, 0, 0)  # red block at the stored top-left
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned 90 degrees: display = stored rotated clockwise
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    img = load_image(path)
    assert img.rgb.shape == (60, 40, 3) and (img.orig_width, img.orig_height) == (40, 60)
    np.testing.assert_allclose(img.rgb[4, 35], (1, 0, 0), atol=0.08)  # now at the top-right
    np.testing.assert_allclose(img.rgb[4, 4], (1, 1, 1), atol=0.08)


def test_exif_focal_length_in_35mm_film(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "tagged.jpg", exif=exif)
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "plain.jpg")
    assert load_image(tmp_path / "tagged.jpg").focal_35mm == 28.0
    assert load_image(tmp_path / "plain.jpg").focal_35mm is None


# ---------------------------------------------------------------------------------------------
# masks


def test_mask_sources(tmp_path):
    rgb, m = disk_image(96, 80, 40, 42, 20)
    save_png_with_alpha(tmp_path / "alpha.png", rgb, m)
    Image.fromarray(to8(rgb)).save(tmp_path / "plain.png")
    Image.fromarray(to8(m)).save(tmp_path / "mask.png")

    alpha = prepare_image(tmp_path / "alpha.png", 32)
    assert alpha.mask_source == "alpha"
    from_mask = prepare_image(tmp_path / "plain.png", 32, mask_path=tmp_path / "mask.png")
    assert from_mask.mask_source == "mask"
    auto = prepare_image(tmp_path / "plain.png", 32)
    assert auto.mask_source == "auto"
    explicit = prepare_image(tmp_path / "alpha.png", 32, mask_path=tmp_path / "mask.png")
    assert explicit.mask_source == "mask"  # an explicit mask wins over the alpha channel
    for prepared in (alpha, from_mask, auto, explicit):
        assert iou(prepared.full_mask, m) > 0.95
        assert prepared.image.shape == (32, 32, 3) and prepared.mask.shape == (32, 32)
        np.testing.assert_allclose(prepared.image[0, 0], 1.0, atol=1e-5)  # white background
        np.testing.assert_allclose(prepared.image[16, 16], (0.8, 0.2, 0.1), atol=0.01)


def _room_photo(h=160, w=160):
    """A chair-like object on a floor: a dark seat and back, four legs in almost the floor's colour,
    a contact shadow under it. Returns (rgb, object mask, shadow mask)."""
    floor, wall, legs, body = (0.80, 0.78, 0.74), (0.93, 0.93, 0.95), (0.83, 0.81, 0.77), (0.25, 0.15, 0.1)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = wall
    rgb[h // 3:] = floor
    yy, xx = np.mgrid[0:h, 0:w]
    shadow = ((xx - 80) / 46.0) ** 2 + ((yy - 126) / 9.0) ** 2 < 1
    rgb[shadow] = np.array(floor) * 0.55
    obj = np.zeros((h, w), bool)
    obj[40:95, 50:110] = True  # back and seat
    for x0 in (52, 68, 92, 104):
        obj[95:126, x0:x0 + 4] = True
    rgb[obj] = legs
    rgb[40:95, 50:110] = body
    return rgb, obj.astype(np.float32), shadow & ~obj


class _ColourNet:
    """A stand-in for the encoder's mask head: 'object' = the body's or the legs' exact colour."""

    size = 48

    def __call__(self, image):
        assert image.shape == (self.size, self.size, 3)
        body = np.abs(image - (0.25, 0.15, 0.1)).max(-1) < 0.03
        legs = np.abs(image - (0.83, 0.81, 0.77)).max(-1) < 0.008
        return (body | legs).astype(np.float32)


def test_segmentation_refined_by_a_foreground_net():
    rgb, obj, shadow = _room_photo()
    plain, plain_source = segment(rgb, "room.png")
    net = _ColourNet()
    refined, source = segment(rgb, "room.png", ForegroundNet(net.size, net))
    assert (plain_source, source) == ("auto", "encoder")
    assert iou(refined, obj) > iou(plain, obj) + 0.05
    assert iou(refined, obj) > 0.85
    # the shadow is not object
    assert (refined[shadow] >= 0.5).mean() < 0.1
    np.testing.assert_array_equal(segment_foreground(rgb, "room.png"), plain)


@pytest.mark.parametrize("answer", [0.0, 1.0])
def test_a_net_that_sees_nothing_or_everything_keeps_the_colour_segmentation(answer):
    rgb, obj, _ = _room_photo()
    useless = ForegroundNet(32, lambda image: np.full(image.shape[:2], answer, np.float32))
    mask, source = segment(rgb, "room.png", useless)
    assert source == "auto"
    np.testing.assert_array_equal(mask, segment_foreground(rgb, "room.png"))


@pytest.mark.parametrize("kind", ["L", "binary01", "1", "RGBA", "RGB", "I16"])
def test_mask_file_modes(tmp_path, kind):
    Image.fromarray(to8(halves())).save(tmp_path / "img.png")
    image = load_image(tmp_path / "img.png")
    truth = np.zeros((24, 40), np.float32)
    truth[6:18, 10:30] = 1.0
    path = tmp_path / f"mask_{kind}.png"
    if kind == "L":
        Image.fromarray(to8(truth)).save(path)
    elif kind == "binary01":
        Image.fromarray(truth.astype(np.uint8)).save(path)  # values 0 and 1
    elif kind == "1":
        Image.fromarray(truth > 0.5).save(path)
    elif kind == "RGBA":  # the alpha channel is the mask, colour is irrelevant
        Image.fromarray(np.dstack([np.zeros((24, 40, 3), np.uint8), to8(truth)]), "RGBA").save(path)
    elif kind == "RGB":
        Image.fromarray(to8(np.repeat(truth[..., None], 3, axis=2))).save(path)
    elif kind == "I16":
        Image.fromarray((truth * 65535).astype(np.uint16)).save(path)
    mask = load_mask(path, image)
    assert mask.shape == (24, 40) and mask.dtype == np.float32
    np.testing.assert_allclose(mask, truth, atol=1e-6)


def test_mask_follows_load_downscale(tmp_path):
    rgb, m = disk_image(400, 300, 180, 140, 60)
    Image.fromarray(to8(rgb)).save(tmp_path / "img.png")
    Image.fromarray(to8(m)).save(tmp_path / "mask.png")
    image = load_image(tmp_path / "img.png", max_side=100)
    mask = load_mask(tmp_path / "mask.png", image)
    assert mask.shape == image.rgb.shape[:2] == (75, 100)
    cx, cy = centroid(mask)
    assert abs(cx / image.scale - 180) < 0.3 and abs(cy / image.scale - 140) < 0.3


# ---------------------------------------------------------------------------------------------
# automatic segmentation


@pytest.mark.parametrize("case", ["centre", "touching_right", "corner", "gradient"])
def test_grabcut_finds_disk(case):
    w, h = 320, 240
    cx, cy, r = {"centre": (150, 110, 60), "touching_right": (300, 120, 60), "corner": (15, 15, 60),
                 "gradient": (170, 130, 55)}[case]
    rgb, m = disk_image(w, h, cx, cy, r)
    if case == "gradient":
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        bg = np.stack([xx / w, yy / h, np.full_like(xx, 0.5)], axis=-1) * 0.5 + 0.4
        rgb = (m[..., None] * rgb + (1 - m[..., None]) * bg).astype(np.float32)
    rgb = np.clip(rgb + np.random.default_rng(0).normal(0, 0.02, rgb.shape), 0, 1).astype(np.float32)
    mask = segment_foreground(rgb)
    assert mask.shape == (h, w) and mask.dtype == np.float32
    assert iou(mask, m) > 0.9


def chair_photo(touch_bottom: bool, shadow: bool):
    """(240, 320, 3) image of a slatted chair (thin legs, see-through back) and its true mask."""
    h, w = 240, 320
    m = np.zeros((h, w), np.uint8)
    cv2.rectangle(m, (110, 120), (215, 137), 1, -1)  # seat
    cv2.rectangle(m, (112, 45), (127, 120), 1, -1)  # back posts
    cv2.rectangle(m, (197, 45), (212, 120), 1, -1)
    for y in (50, 70, 90):  # slats, with gaps showing the background
        cv2.rectangle(m, (127, y), (197, y + 6), 1, -1)
    for x in (112, 130, 195, 209):  # legs
        cv2.rectangle(m, (x, 137), (x + 4, h if touch_bottom else 220), 1, -1)
    rng = np.random.default_rng(3)
    img = np.ones((h, w, 3), np.float32) * np.array((0.93, 0.92, 0.9), np.float32)
    if shadow:
        yy, xx = np.mgrid[0:h, 0:w]
        img *= (1 - 0.35 * np.exp(-(((xx - 165) / 75) ** 2 + ((yy - 222) / 10) ** 2)))[..., None]
    wood = np.array((0.45, 0.28, 0.15)) * (0.85 + 0.3 * rng.random((h, w, 1)))
    img = np.where(m[..., None] > 0, wood, img) + rng.normal(0, 0.015, img.shape)
    return np.clip(img, 0, 1).astype(np.float32), m.astype(np.float32)


@pytest.mark.parametrize("touch_bottom,shadow", [(False, True), (True, False), (True, True)])
def test_grabcut_finds_chair(touch_bottom, shadow):
    rgb, m = chair_photo(touch_bottom, shadow)
    mask = segment_foreground(rgb)
    assert iou(mask, m) > 0.9
    assert mask[60:68, 140:180].max() < 0.5  # the gap between the slats stays background


def test_segmentation_fills_small_holes():
    rgb, m = disk_image(200, 160, 100, 80, 50)
    rgb[78:82, 98:102] = 0.9, 0.9, 0.85  # a speck of background colour inside the object
    mask = segment_foreground(rgb)
    assert mask[80, 100] > 0.5
    assert iou(mask, m) > 0.95


# ---------------------------------------------------------------------------------------------
# crop geometry


def test_mask_bbox_binary_and_subpixel():
    m = np.zeros((20, 30), np.float32)
    m[5:12, 7:19] = 1
    assert mask_bbox(m) == (7.0, 5.0, 19.0, 12.0)
    soft = disk_mask(60, 50, 30.3, 24.6, 12.0)
    x0, y0, x1, y1 = mask_bbox(soft)
    for got, want in zip((x0, y0, x1, y1), (18.3, 12.6, 42.3, 36.6)):
        assert abs(got - want) < 0.08
    # a blurred (upsampled) mask: within a fraction of the coarse pixel
    coarse = cv2.resize(soft, (15, 12), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = mask_bbox(cv2.resize(coarse, (60, 50), interpolation=cv2.INTER_LINEAR))
    for got, want in zip((x0, y0, x1, y1), (18.3, 12.6, 42.3, 36.6)):
        assert abs(got - want) < 1.0


def test_square_crop_geometry():
    crop = square_crop((10.0, 20.0, 50.0, 40.0), 64, 1.5, orig_width=200, orig_height=100, scale=0.5)
    assert isinstance(crop, Crop)
    assert crop.size == pytest.approx(120.0)  # 1.5 * 40 loaded px / 0.5
    assert crop.x0 + crop.size / 2 == pytest.approx(60.0) and crop.y0 + crop.size / 2 == pytest.approx(60.0)
    assert (crop.out_size, crop.orig_width, crop.orig_height) == (64, 200, 100)


@pytest.mark.parametrize("size_px,step", [(37.3, None), (200.0, None), (13.7, None)])
def test_crop_and_resize_subpixel_exact(size_px, step):
    """A linear ramp is its own area average: each crop pixel must equal the ramp at its centre."""
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    rgb = np.stack([xx / w, yy / h, 0.5 + 0 * xx], axis=-1).astype(np.float32)
    out = 24
    crop = Crop(31.37, 22.81, size_px, out, w, h) if size_px < 100 else Crop(-20.4, -35.2, size_px, out, w, h)
    image, mask = crop_and_resize(rgb, None, crop, background=(0, 0, 0))
    u = np.arange(out) + 0.5
    x = crop.x0 + u / crop.scale
    y = crop.y0 + u / crop.scale
    inside_x = (x - 0.5 * crop.size / out > 1) & (x + 0.5 * crop.size / out < w - 1)
    inside_y = (y - 0.5 * crop.size / out > 1) & (y + 0.5 * crop.size / out < h - 1)
    sel = np.ix_(inside_y, inside_x)
    assert inside_x.sum() > 5 and inside_y.sum() > 5
    np.testing.assert_allclose(image[..., 0][sel], np.broadcast_to(x[None, :] / w, (out, out))[sel], atol=2e-3)
    np.testing.assert_allclose(image[..., 1][sel], np.broadcast_to(y[:, None] / h, (out, out))[sel], atol=2e-3)
    np.testing.assert_allclose(mask[sel], 1.0, atol=1e-5)


def test_crop_antialiasing_and_padding():
    checker = (np.indices((128, 128)).sum(0) % 2).astype(np.float32)
    rgb = np.repeat(checker[..., None], 3, axis=2)
    image, mask = crop_and_resize(rgb, None, Crop(0, 0, 128, 32, 128, 128))
    assert abs(image.mean() - 0.5) < 1e-3 and image.std() < 0.01  # no aliasing
    # a window half outside the image: padded part is background and mask 0
    image, mask = crop_and_resize(rgb, None, Crop(64, 0, 128, 32, 128, 128), background=(0.2, 0.3, 0.4))
    np.testing.assert_allclose(image[:, 20:], np.broadcast_to((0.2, 0.3, 0.4), (32, 12, 3)), atol=1e-6)
    assert mask[:, 20:].max() == 0.0 and mask[:, :14].min() > 0.999


def _check_crop_centroid(prepared, true_centroid):
    """The crop mask's centroid, mapped through the Crop, lands on the original centroid (< 0.5 px)."""
    crop = prepared.crop
    cu, cv = centroid(prepared.mask)
    mapped = (crop.x0 + cu / crop.scale, crop.y0 + cv / crop.scale)
    err_crop_px = np.hypot(mapped[0] - true_centroid[0], mapped[1] - true_centroid[1]) * crop.scale
    assert err_crop_px < 0.5, err_crop_px


@pytest.mark.parametrize("cx,cy", [(170.3, 120.6), (26.2, 200.7)])  # centred / cut by the border
def test_prepare_crop_maps_disk(tmp_path, cx, cy):
    w, h, r = 320, 240, 45.0
    rgb, m = disk_image(w, h, cx, cy, r)
    save_png_with_alpha(tmp_path / "disk.png", rgb, m)
    prepared = prepare_image(tmp_path / "disk.png", 64, margin=1.3)
    crop = prepared.crop
    assert (crop.orig_width, crop.orig_height, crop.out_size) == (w, h, 64)
    _check_crop_centroid(prepared, centroid(m))  # the visible part's centroid
    if cx > 100:  # fully visible disk: centred crop of the right size
        assert abs(crop.x0 + crop.size / 2 - cx) < 0.1 and abs(crop.y0 + crop.size / 2 - cy) < 0.1
        assert abs(crop.size - 1.3 * 2 * r) < 0.3
    else:  # cut by the left and bottom edges: the window extends past the image, padded white
        assert crop.x0 < 0 and crop.y0 + crop.size > h
        np.testing.assert_allclose(prepared.image[-1, 0], 1.0, atol=1e-6)
        assert prepared.mask[-1, 0] == 0.0
    # disk pixels in the crop have the disk colour
    inside = prepared.mask > 0.999
    np.testing.assert_allclose(prepared.image[inside], np.broadcast_to((0.8, 0.2, 0.1), (inside.sum(), 3)),
                               atol=3 / 255)


@pytest.mark.parametrize("ext,orientation", [("png", 1), ("jpg", 1), ("jpg", 3), ("jpg", 8)])
def test_downscaled_load_gives_same_crop(tmp_path, ext, orientation):
    """PNG: alpha through Image.reduce + resampling; JPEG: DCT draft 1/8 (+ EXIF rotation), mask file."""
    w, h, cx, cy, r = 1203, 905, 611.4, 377.8, 150.0  # sizes not divisible by the reduction factors
    rgb, m = disk_image(w, h, cx, cy, r, color=(0.1, 0.2, 0.8), background=(1.0, 1.0, 1.0))
    path, mask_path = tmp_path / f"big.{ext}", None
    if ext == "png":
        save_png_with_alpha(path, rgb, m)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(_orient_inverse(to8(rgb), orientation)).save(path, exif=exif, quality=95)
        mask_path = tmp_path / "mask.png"
        Image.fromarray(to8(m)).save(mask_path)  # masks are given in display orientation
    full = prepare_image(path, 64, mask_path=mask_path, max_side=4096)
    small = prepare_image(path, 64, mask_path=mask_path, max_side=150)
    assert full.loaded.scale == 1.0 and small.loaded.scale == pytest.approx(150 / 1203)
    assert small.loaded.rgb.shape == (round(905 * 150 / 1203), 150, 3)
    for a, b in ((full.crop.x0, small.crop.x0), (full.crop.y0, small.crop.y0), (full.crop.size, small.crop.size)):
        assert abs(a - b) < 1.0, (full.crop, small.crop)
    assert abs(full.crop.x0 + full.crop.size / 2 - cx) < 0.3 and abs(full.crop.y0 + full.crop.size / 2 - cy) < 0.3
    _check_crop_centroid(small, (cx, cy))
    # the downscaled pixels themselves (not only the mask) sit where ``scale`` says
    loaded = small.loaded
    alpha = np.ones(loaded.rgb.shape[:2], np.float32) if loaded.alpha is None else loaded.alpha
    on_white = loaded.rgb * alpha[..., None] + (1 - alpha[..., None])
    darkness = (1 - on_white.mean(axis=2)) / (1 - np.mean((0.1, 0.2, 0.8)))
    gx, gy = centroid(np.clip(darkness, 0, None))
    assert abs(gx / loaded.scale - cx) < 0.25 and abs(gy / loaded.scale - cy) < 0.25


def _orient_inverse(arr, orientation):
    """The stored array that EXIF ``orientation`` turns into ``arr``."""
    inverse = {1: None, 3: Image.Transpose.ROTATE_180, 8: Image.Transpose.ROTATE_270}[orientation]
    return arr if inverse is None else np.asarray(Image.fromarray(arr).transpose(inverse))


# ---------------------------------------------------------------------------------------------
# bad input


def _expect_error(call, name):
    with pytest.raises(ReconstructionError) as info:
        call()
    message = str(info.value)
    assert name in message and "\n" not in message
    return message


def test_missing_file_and_directory(tmp_path):
    _expect_error(lambda: load_image(tmp_path / "nope.png"), "nope.png")
    (tmp_path / "folder.png").mkdir()
    assert "directory" in _expect_error(lambda: load_image(tmp_path / "folder.png"), "folder.png")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    assert "not an image" in _expect_error(lambda: load_image(tmp_path / "notes.png"), "notes.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    _expect_error(lambda: load_image(tmp_path / "empty.jpg"), "empty.jpg")


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_file(tmp_path, ext):
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    path = tmp_path / f"cut.{ext}"
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _expect_error(lambda: load_image(path), f"cut.{ext}")


def test_too_small(tmp_path):
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tmp_path / "dot.png")
    assert "too small" in _expect_error(lambda: load_image(tmp_path / "dot.png"), "dot.png")


def test_huge_image_refused_without_decoding(tmp_path):
    path = tmp_path / "huge.png"
    write_big_png(path, 20000, 20000)
    assert path.stat().st_size < 1_000_000
    message = _expect_error(lambda: load_image(path), "huge.png")
    assert "too large" in message and "400 megapixels" in message


def test_fully_transparent(tmp_path):
    save_png_with_alpha(tmp_path / "ghost.png", halves(), np.zeros((24, 40)))
    message = _expect_error(lambda: prepare_image(tmp_path / "ghost.png", 32), "ghost.png")
    assert "alpha channel is empty" in message


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_uniform_image_has_no_object(tmp_path, noise):
    rgb = np.full((80, 100, 3), 0.6, np.float32)
    rgb = rgb + np.random.default_rng(1).normal(0, noise, rgb.shape)
    Image.fromarray(to8(rgb)).save(tmp_path / "wall.png")
    assert "no object" in _expect_error(lambda: prepare_image(tmp_path / "wall.png", 32), "wall.png")


def test_tiny_object_is_refused(tmp_path):
    rgb, _ = disk_image(300, 300, 150, 150, 6)  # 0.13% of the image
    Image.fromarray(to8(rgb)).save(tmp_path / "speck.png")
    assert "no object" in _expect_error(lambda: prepare_image(tmp_path / "speck.png", 32), "speck.png")


def test_segmentation_that_took_the_background_is_refused():
    from core.io.images import _check_found

    fg = np.ones((100, 120), np.uint8)
    fg[40:60, 50:70] = 0  # "object" = everything but a hole: it is the background
    with pytest.raises(ReconstructionError, match="border") as info:
        _check_found(fg, "room.jpg")
    assert "room.jpg" in str(info.value)
    fg[:] = 0
    fg[45:55, 55:65] = 1
    _check_found(fg, "ok.jpg")  # 0.8% of the image, not touching the border: accepted


def test_bad_masks(tmp_path):
    Image.fromarray(to8(halves())).save(tmp_path / "img.png")
    Image.new("L", (41, 24), 255).save(tmp_path / "wrong.png")
    message = _expect_error(lambda: prepare_image(tmp_path / "img.png", 32, mask_path=tmp_path / "wrong.png"),
                            "wrong.png")
    assert "41x24" in message and "40x24" in message and "img.png" in message
    (tmp_path / "mask.txt").write_text("0 1 0\n")
    _expect_error(lambda: prepare_image(tmp_path / "img.png", 32, mask_path=tmp_path / "mask.txt"), "mask.txt")
    _expect_error(lambda: prepare_image(tmp_path / "img.png", 32, mask_path=tmp_path / "gone.png"), "gone.png")
    Image.new("L", (40, 24), 0).save(tmp_path / "black.png")
    assert "empty" in _expect_error(
        lambda: prepare_image(tmp_path / "img.png", 32, mask_path=tmp_path / "black.png"), "black.png")


# ---------------------------------------------------------------------------------------------
# hostile files: only regular files are opened, each refusal says what is wrong


def test_named_pipe_and_devices_are_refused_without_opening(tmp_path):
    import os
    import signal

    os.mkfifo(tmp_path / "pipe.png")
    os.symlink("/dev/zero", tmp_path / "zero.png")
    signal.alarm(20)  # opening the pipe would block forever: fail loudly instead
    try:
        assert "named pipe (FIFO)" in _expect_error(lambda: load_image(tmp_path / "pipe.png"), "pipe.png")
        assert "character device" in _expect_error(lambda: load_image(tmp_path / "zero.png"), "zero.png")
        Image.fromarray(to8(halves())).save(tmp_path / "img.png")
        message = _expect_error(lambda: prepare_image(tmp_path / "img.png", 32, mask_path=tmp_path / "pipe.png"),
                                "pipe.png")
        assert "not a regular mask file" in message
    finally:
        signal.alarm(0)


def test_directory_empty_file_and_link_messages(tmp_path):
    (tmp_path / "photos.png").mkdir()
    message = _expect_error(lambda: load_image(tmp_path / "photos.png"), "photos.png")
    assert "folder (directory)" in message and "not found" not in message
    (tmp_path / "zero.jpg").write_bytes(b"")
    assert "empty (0 bytes)" in _expect_error(lambda: load_image(tmp_path / "zero.jpg"), "zero.jpg")
    (tmp_path / "gone.png").symlink_to(tmp_path / "elsewhere.png")
    assert "link to a file that does not exist" in _expect_error(lambda: load_image(tmp_path / "gone.png"), "gone.png")


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@pytest.mark.parametrize("where", ["before", "after"])
def test_ztxt_decompression_bomb_is_named(tmp_path, where):
    Image.fromarray(to8(halves())).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\0" * (32 << 20), 9))
    at = 33 if where == "before" else len(data) - 12  # after IHDR, or before IEND
    (tmp_path / "bomb.png").write_bytes(data[:at] + bomb + data[at:])
    message = _expect_error(lambda: load_image(tmp_path / "bomb.png"), "bomb.png")
    assert "decompression bomb" in message and "internal error" not in message


def test_float_colour_tiff_is_named(tmp_path):
    cv2.imwrite(str(tmp_path / "hdr.tif"), np.random.default_rng(0).random((20, 30, 3)))  # float64, 3 channels
    message = _expect_error(lambda: load_image(tmp_path / "hdr.tif"), "hdr.tif")
    assert "64-bit floating-point colour TIFF" in message and "8- or 16-bit" in message
    cv2.imwrite(str(tmp_path / "logluv.tif"), np.random.default_rng(0).random((20, 30, 3)).astype(np.float32))
    assert "LogLuv" in _expect_error(lambda: load_image(tmp_path / "logluv.tif"), "logluv.tif")


def test_alpha_below_half_everywhere_is_not_called_transparent(tmp_path):
    save_png_with_alpha(tmp_path / "veil.png", halves(), np.full((24, 40), 127 / 255))
    message = _expect_error(lambda: prepare_image(tmp_path / "veil.png", 32), "veil.png")
    assert "fully transparent" not in message and "half opaque" in message and "49.8%" in message


@pytest.mark.parametrize("side", [1, 5, 15])
def test_too_small_object_says_how_big_it_must_be(tmp_path, side):
    alpha = np.zeros((60, 80))
    alpha[20:20 + side, 30:30 + side] = 1
    save_png_with_alpha(tmp_path / "speck.png", halves(60, 80), alpha)
    message = _expect_error(lambda: prepare_image(tmp_path / "speck.png", 32), "speck.png")
    assert f"only {side}x{side} pixels" in message and "at least 16 pixels across" in message
    alpha[20:36, 30:31] = 1  # 16 pixels tall, 1 wide: big enough
    save_png_with_alpha(tmp_path / "stick.png", halves(60, 80), alpha)
    assert prepare_image(tmp_path / "stick.png", 32).mask_source == "alpha"


def test_too_small_object_in_a_downscaled_photo_is_measured_in_the_photos_pixels(tmp_path):
    alpha = np.zeros((1200, 1600))
    alpha[500:540, 700:740] = 1  # 40 photo pixels: 10 at the loaded quarter scale
    save_png_with_alpha(tmp_path / "far.png", np.ones((1200, 1600, 3)) * 0.5, alpha)
    message = _expect_error(lambda: prepare_image(tmp_path / "far.png", 32, max_side=400), "far.png")
    assert "only 40x40 pixels" in message and "at least 64 pixels across" in message


def test_mask_too_small_names_the_mask(tmp_path):
    Image.fromarray(to8(halves())).save(tmp_path / "img.png")
    mask = np.zeros((24, 40), np.uint8)
    mask[5, 5] = 255
    Image.fromarray(mask).save(tmp_path / "dot_mask.png")
    message = _expect_error(lambda: prepare_image(tmp_path / "img.png", 32, mask_path=tmp_path / "dot_mask.png"),
                            "dot_mask.png")
    assert "the mask's white part is only 1x1 pixels" in message


def test_a_segmenter_is_asked_again_about_what_reaches_past_its_crop():
    """Legs the colour segmentation missed lie below its box, so a segmenter's first square cuts them:
    it is asked again about the grown box until its object stops growing, and its probability then
    covers the feet (source 'segmenter'). The encoder's coarse mask head is asked once."""
    floor, wall, legs, body = (0.80, 0.78, 0.74), (0.93, 0.93, 0.95), (0.83, 0.81, 0.77), (0.25, 0.15, 0.1)
    rgb = np.empty((200, 200, 3), np.float32)
    rgb[:] = wall
    rgb[50:] = floor
    obj = np.zeros((200, 200), bool)
    for x0 in (62, 130):  # long pale legs under a low dark seat: the seat's box is far short of the feet
        obj[70:180, x0:x0 + 8] = True
    rgb[obj] = legs
    rgb[40:70, 60:140] = body
    plain, _ = segment(rgb, "room.png")
    assert plain[100:180].max() < 0.5  # the colours alone miss the legs
    crops = []

    def predict(image):  # a segmenter that sees the seat and the pale legs in the crop it is shown
        crops.append(image)
        seen = (np.abs(image - body).max(-1) < 0.03) | (np.abs(image - legs).max(-1) < 0.008)
        return seen.astype(np.float32)

    net = ForegroundNet(48, predict, "segmenter")
    _, source = segment(rgb, "room.png", net)
    assert source == "segmenter" and len(crops) >= 2
    crops.clear()
    prob, _ = _net_probability(rgb, (plain > 0.5).astype(np.uint8), 1.0, net)
    assert len(crops) >= 2
    for x0 in (62, 130):  # every row of both legs, down to the feet
        assert prob[75:165, x0:x0 + 8].max(axis=1).min() > 0.5
    crops.clear()
    segment(rgb, "room.png", ForegroundNet(48, predict))
    assert len(crops) == 1
