"""Hostile inputs through every interface: no hang, no traceback, no lost output, one contract.

:func:`make_corpus` makes a few hundred bad or odd inputs on the fly (nothing is committed): missing
files, folders, named pipes, devices, sockets, empty, text and random files, images truncated or with
flipped bits, images too small or with too small an object, fully or half transparent ones,
decompression bombs, floating-point TIFFs, other formats under a photo's name (EPS, GIF, ICO, PPM, TGA,
PDF, AVIF ...: refused by their content), broken links, file names with newlines, tabs, bytes that
are not UTF-8, names of 254 and 300 characters, and inputs that share a file stem. They go through
the command line (a handful of invocations with many inputs each, every one under a time limit) and
the Python API, with a tiny random model. The contract checked for every input of every call:

- a bad input fails alone: exit status 1 and exactly one stderr line ``error: <file>: <reason>``
  naming it (its reason with the words the case expects), never a traceback;
- a good input of the same call is written: ``<stem>.<format>`` and ``<stem>.json``, under a name no
  other input of the call got, and the JSON names the mesh actually written;
- nothing is half-written: the output folder holds exactly the reported files (no ``.tmp``, no
  mesh without its JSON), and each JSON names its own mesh's SHA-256;
- nothing hangs (a named pipe is never opened).

Refused options (steps, mesh resolution, focal length incl. NaN and infinity, seed incl. 2**64,
device strings, output folder, model files) give exit status 1 and one line before any work; the API
raises ReconstructionError with the same text. The batch script and the Blender operator get a subset
(tests/blender/test_blender_batch.py, test_blender_operator.py), built with the same generator.

Also: every folder of the model search path unreadable or absurd (the shipped model still loads; a
model name that is no file is one line), the caller's callbacks raising in every stage (the caller's
exception leaves the call, nothing is written), and two writers racing a reader on one result stem.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fast_model import save_fast_model
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FORMATS = "PNG, JPEG, WebP, TIFF or BMP"
CLI_TIMEOUT = 90
"""seconds one command-line invocation may take (a hang fails the test instead of blocking it)."""


# ---------------------------------------------------------------------------------------------
# the corpus


@dataclass
class Case:
    """One input file of the corpus."""

    path: str
    """the file as given to the interface (absolute)."""
    expect: str
    """'bad' (must fail), 'good' (must be written) or 'odd' (either, but by the contract)."""
    words: tuple[str, ...] = ()
    """words a bad input's error line must contain."""


def blob_rgba(width=120, height=90, center=(70, 40), radii=(30, 25)) -> np.ndarray:
    """(H, W, 4) uint8: an opaque colored ellipse on a transparent background (a chair-like cut-out)."""
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((xx - center[0]) / radii[0]) ** 2 + ((yy - center[1]) / radii[1]) ** 2 < 1
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 180, 90 + yy % 50, 60
    rgba[..., 3] = inside * 255
    return rgba


def write_good(path: Path, **kwargs) -> Path:
    Image.fromarray(blob_rgba(**kwargs), "RGBA").save(path, format="PNG")
    return path


def encoded(fmt: str, rgba: np.ndarray | None = None) -> bytes:
    """The blob encoded as ``fmt`` (PNG, JPEG, WEBP, TIFF, BMP, or another format Pillow writes)."""
    rgba = blob_rgba() if rgba is None else rgba
    im = Image.fromarray(rgba, "RGBA")
    if fmt in ("JPEG", "BMP", "PPM", "PCX", "SGI", "JPEG2000", "PDF", "TGA"):
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(im, mask=im.getchannel("A"))
        im = white
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def ztxt_bomb(before_pixels: bool) -> bytes:
    """A valid PNG with a zTXt chunk that inflates to 64 MB (a metadata decompression bomb)."""
    data = encoded("PNG")
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\0" * (64 << 20), 9))
    at = 8 + 25 if before_pixels else len(data) - 12  # after IHDR, or before IEND
    return data[:at] + bomb + data[at:]


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (its pixel data is a few bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def float_tiff(width: int, height: int, channels: int, bits: int = 32) -> bytes:
    """An uncompressed little-endian TIFF with IEEE floating-point samples (SampleFormat 3)."""
    pixels = np.random.default_rng(0).random((height, width, channels)).astype(np.float32 if bits == 32 else np.float64)
    data = pixels.tobytes()
    count = 10
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * count + 4
    shorts = struct.pack("<" + "H" * channels, *([bits] * channels)) + struct.pack("<" + "H" * channels, *([3] * channels))
    pixels_at = extra_at + len(shorts)

    def entry(tag, kind, n, value):
        if kind == 3 and n == 1:
            return struct.pack("<HHIHH", tag, kind, n, value, 0)
        return struct.pack("<HHII", tag, kind, n, value)

    multi = channels > 2
    entries = [entry(256, 3, 1, width), entry(257, 3, 1, height),
               entry(258, 3, channels, extra_at) if multi else entry(258, 3, 1, bits),
               entry(259, 3, 1, 1), entry(262, 3, 1, 2 if channels >= 3 else 1), entry(273, 4, 1, pixels_at),
               entry(277, 3, 1, channels), entry(278, 3, 1, height), entry(279, 4, 1, len(data)),
               entry(339, 3, channels, extra_at + 2 * channels) if multi else entry(339, 3, 1, 3)]
    return b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<H", count) + b"".join(entries) + \
        struct.pack("<I", 0) + shorts + data


def make_corpus(root: Path, seed: int = 0) -> list[Case]:
    """A few hundred bad or odd inputs (and a few good ones) under ``root``; see the module docstring."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, data: bytes | None, expect: str, *words: str) -> Path:
        path = root / name
        if data is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        cases.append(Case(str(path), expect, words))
        return path

    # files that are not there or not regular files: refused from their stat, never opened
    for name in ("nope.png", "nope.jpg", "ghost dir/nope.png", "ünïcödé-nope.png", "nope", "a b c.webp"):
        add(name, None, "bad", "file not found")
    (root / "plainfile").write_text("x")
    add("plainfile/below.png", None, "bad", "file not found")
    for name in ("folder.png", "folder.jpg", "folder"):
        (root / name).mkdir()
        add(name, None, "bad", "folder", "directory")
    for name in ("pipe.png", "pipe.jpg", "pipe.tif", "pipe"):
        os.mkfifo(root / name)
        add(name, None, "bad", "named pipe", "regular")
    for name, target in (("devnull.png", "/dev/null"), ("devzero.png", "/dev/zero")):
        if os.path.exists(target):
            os.symlink(target, root / name)
            add(name, None, "bad", "character device", "regular")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "sock.png"))
        add("sock.png", None, "bad", "socket", "regular")
    except OSError:  # a socket path over ~108 bytes: skip this case
        pass
    finally:
        sock.close()
    os.symlink("loop_b.png", root / "loop_a.png")
    os.symlink("loop_a.png", root / "loop_b.png")
    add("loop_a.png", None, "bad", "link loop")
    os.symlink("nowhere.png", root / "dangling.png")
    add("dangling.png", None, "bad", "file not found", "link")
    os.symlink(root / "folder.png", root / "link_to_folder.png")
    add("link_to_folder.png", None, "bad", "folder")
    add("x" * 300 + ".png", None, "bad", "name is too long")

    # contents that are not an image
    for ext in ("png", "jpg", "jpeg", "webp", "tif", "bmp", "gif"):
        add(f"empty.{ext}", b"", "bad", "empty", "0 bytes")
        add(f"text.{ext}", b"this is not an image\n" * 3, "bad", "holds text data", "convert the image to PNG or JPEG")
    exts = ("png", "jpg", "webp", "tif", "bmp", "bin", "")
    for k in range(80):
        name = f"random_{k:02d}" + (f".{exts[k % len(exts)]}" if exts[k % len(exts)] else "")
        add(name, rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8).tobytes(), "bad")
    magics = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff\xe0", "gif": b"GIF89a", "tif": b"II*\x00",
              "bmp": b"BM", "webp": b"RIFF\x00\x10\x00\x00WEBPVP8 "}
    for ext, magic in magics.items():
        for k in range(10):
            noise = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
            add(f"magic_{ext}_{k}.{ext}", magic + noise, "bad")

    # real images, damaged
    formats = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tif": "TIFF", "bmp": "BMP"}
    for ext, fmt in formats.items():
        data = encoded(fmt)
        for frac in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95):
            add(f"cut_{int(frac * 100):02d}.{ext}", data[: max(1, int(len(data) * frac))], "odd")
        for k in range(6):  # a few flipped bytes past the header
            flipped = bytearray(data)
            for at in rng.integers(min(64, len(data) - 1), len(data), 3):
                flipped[at] ^= 0xFF
            add(f"flip_{k}.{ext}", bytes(flipped), "odd")

    # images that decode but hold no usable object
    for w, h in ((1, 1), (2, 2), (15, 15), (15, 200), (200, 15), (8, 64)):
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (200, 30, 30)).save(buf, "PNG")
        add(f"tiny_{w}x{h}.png", buf.getvalue(), "bad", "too small", "at least 16")
    rgba = np.zeros((64, 64, 4), np.uint8)
    add("transparent.png", _png(rgba), "bad", "fully transparent")
    rgba[..., :3], rgba[..., 3] = 200, 127
    add("alpha127.png", _png(rgba), "bad", "half opaque", "49.8%")
    for side in (1, 3, 10):
        rgba = np.zeros((96, 128, 4), np.uint8)
        rgba[40:40 + side, 50:50 + side] = (200, 40, 40, 255)
        add(f"speck_{side}px.png", _png(rgba), "bad", "too small", f"{side}x{side} pixels", "at least 16 pixels")
    for k, color in enumerate(((255, 255, 255), (0, 0, 0), (120, 130, 140))):
        buf = io.BytesIO()
        Image.new("RGB", (80, 60), color).save(buf, "JPEG" if k == 2 else "PNG")
        add(f"uniform_{k}.{'jpg' if k == 2 else 'png'}", buf.getvalue(), "bad", "no object")
    for k in range(2):
        noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        add(f"noise_{k}.png", _png(noise, "RGB"), "odd")
    add("bomb_head.png", ztxt_bomb(True), "bad", "decompression bomb")
    add("bomb_tail.png", ztxt_bomb(False), "bad", "decompression bomb")
    add("huge_header.png", huge_png_header(30000, 30000), "bad", "too large", "megapixels")
    add("float32_rgb.tif", float_tiff(40, 30, 3), "bad", "32-bit floating-point", "8- or 16-bit")
    add("float64_rgb.tif", float_tiff(40, 30, 3, 64), "bad", "64-bit floating-point", "8- or 16-bit")
    add("float32_gray.tif", float_tiff(40, 30, 1), "odd")
    # other formats, whatever their name: only the PNG, JPEG, WebP, TIFF and BMP readers are ever tried (an
    # EPS file would reach Ghostscript), and the message says what the file holds
    for ext, fmt, kind in (("gif", "GIF", "GIF"), ("ico", "ICO", "ICO"), ("png", "GIF", "GIF"), ("jpg", "ICO", "ICO"),
                           ("png", "PPM", "Netpbm"), ("png", "TGA", "TGA"), ("tif", "PCX", "PCX"),
                           ("webp", "SGI", "SGI"), ("png", "PDF", "PDF"), ("bmp", "JPEG2000", "JPEG 2000")):
        add(f"blob_{fmt.lower()}.{ext}", encoded(fmt), "bad", kind, "convert the image to PNG or JPEG")
    for ext in ("png", "jpg", "tif"):
        add(f"postscript.{ext}", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n", "bad", "PostScript (EPS)")
        add(f"avif.{ext}", b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + bytes(300), "bad", "AVIF")
    exif = Image.Exif()
    exif[0x0112] = 9  # an orientation that does not exist
    buf = io.BytesIO()
    Image.fromarray(blob_rgba()[..., :3], "RGB").save(buf, "JPEG", exif=exif)
    add("orientation9.jpg", buf.getvalue(), "odd")
    jpeg = bytearray(encoded("JPEG"))
    app1 = b"\xff\xe1" + struct.pack(">H", 40) + b"Exif\x00\x00" + bytes(rng.integers(0, 256, 32, dtype=np.uint8))
    add("broken_exif.jpg", bytes(jpeg[:2]) + app1 + bytes(jpeg[2:]), "odd")

    # odd names, not images: the error line stays one line and names the file
    for name in ("new\nline.png", "tab\there.png", "carriage\rreturn.png", "bad_utf8_\udcff\udcfe.png",
                 "-leading-dash.png", "semi;colon $HOME.png"):
        add(name, b"not an image", "bad", "holds text data")

    # good inputs: a 254-character name, unicode, stems shared by several inputs, a disguised PNG
    write_good(root / "good.png")
    cases.append(Case(str(root / "good.png"), "good"))
    add("l" * 250 + ".png", encoded("PNG"), "good")
    add("ünï cödé ✓.png", encoded("PNG"), "good")
    add("a/chair.png", encoded("PNG"), "good")
    add("b/chair.png", encoded("PNG"), "good")
    add("chair_2.png", encoded("PNG"), "good")
    add("png_named.jpg", encoded("PNG"), "good")
    return cases


def _png(pixels: np.ndarray, mode: str = "RGBA") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "PNG")
    return buf.getvalue()


def shown(path: str) -> str:
    """A path as the one-line messages show it (core.errors.display_path)."""
    from core.errors import display_path

    return display_path(path)


# ---------------------------------------------------------------------------------------------
# the model and the checks


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory) -> Path:
    """A tiny random model that reconstructs in well under a second (tests/fast_model.py)."""
    return save_fast_model(tmp_path_factory.mktemp("fuzz_model"), "fuzz")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Case]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def check_outputs(out: Path, written: dict[str, tuple[str, str]]) -> None:
    """``out`` holds exactly the reported files: for each input its mesh and its JSON (which names that
    mesh and that input), no two inputs share a file, nothing else (no .tmp, no probe, no orphan)."""
    names = [n for pair in written.values() for n in pair]
    for mesh, _ in written.values():  # a textured OBJ's material library and texture lie beside it
        if mesh.endswith(".obj"):
            names += [mesh[:-4] + ".mtl", mesh[:-4] + "_texture.png"]
    assert len(set(names)) == len(names), "two inputs were written to the same file"
    present = sorted(os.listdir(out)) if out.exists() else []
    assert present == sorted(os.path.basename(n) for n in names), set(present) ^ {os.path.basename(n) for n in names}
    modes = set()
    for image, (mesh, js) in written.items():
        data = json.loads(Path(js).read_text())
        assert data["image"] == image and data["ok"] is True
        assert data["mesh"]["path"] == os.path.basename(mesh) and Path(mesh).stat().st_size > 0
        assert data["mesh"]["sha256"] == hashlib.sha256(Path(mesh).read_bytes()).hexdigest()  # the pair's bond
        assert Path(js).stem == Path(mesh).stem
        modes |= {Path(mesh).stat().st_mode & 0o777, Path(js).stat().st_mode & 0o777}
    assert len(modes) <= 1, f"meshes and JSON files got different modes: {sorted(map(oct, modes))}"


def check_error_line(case: Case, line: str) -> None:
    assert line.startswith(f"error: {shown(case.path)}: "), line
    for word in case.words:
        assert word in line, (word, line)
    assert "Traceback" not in line and "internal error" not in line, line


def run_cli(*args, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "core", "reconstruct", *map(str, args)], cwd=ROOT,
                             capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise AssertionError(f"the command line hung (over {timeout} s): {args[:4]}...") from err
    run.seconds = time.monotonic() - t0
    run.out_text = run.stdout.decode("utf-8", "replace")
    run.err_text = run.stderr.decode("utf-8", "replace")
    return run


# ---------------------------------------------------------------------------------------------
# per-input contract: the command line and the API


def test_corpus_is_a_few_hundred_inputs(corpus):
    assert len(corpus) >= 250
    assert sum(c.expect == "good" for c in corpus) >= 6 and sum(c.expect == "bad" for c in corpus) >= 180


def test_cli_every_input_fails_alone_or_is_written(corpus, fast_model, tmp_path):
    """The corpus in three invocations (each with good inputs); per input one stdout or one stderr line,
    in input order."""
    outcomes = {}
    for part in range(3):
        cases = corpus[part::3]
        if not any(c.expect == "good" for c in cases):
            cases = cases + [next(c for c in corpus if c.expect == "good")]
        out = tmp_path / f"out{part}"
        run = run_cli(*(c.path for c in cases), "--out", out, "--model", fast_model, "--steps", "0",
                      "--format", ("glb", "ply", "obj")[part], "--quiet")
        assert "Traceback" not in run.out_text + run.err_text
        errors = run.err_text.splitlines()
        lines = run.out_text.splitlines()
        written = {}
        for case in cases:
            prefix = f"{shown(case.path)}: "
            if errors and errors[0].startswith("error: " + prefix):
                check_error_line(case, errors.pop(0))
                outcomes[case.path] = "failed"
                continue
            assert lines and lines[0].startswith(prefix), (case, lines[:1], errors[:1])
            line = lines.pop(0)
            mesh, js = line[len(prefix):].split(" (")[0], line.rsplit(", ", 1)[1]
            written[case.path] = (mesh, js)
            outcomes[case.path] = "written"
        assert errors == [] and lines == [], (errors[:3], lines[:3])
        assert run.returncode == (1 if len(written) < len(cases) else 0)
        check_outputs(out, written)
    for case in corpus:
        assert outcomes[case.path] == {"bad": "failed", "good": "written"}.get(case.expect, outcomes[case.path]), case


def test_api_every_input_fails_alone_or_is_written(corpus, fast_model, tmp_path):
    from core.api import reconstruct

    paths = [c.path for c in corpus]
    out = tmp_path / "out"
    results = reconstruct(paths, model=str(fast_model), out_dir=out, steps=0, fmt="ply")
    assert [r.image for r in results] == paths
    written = {}
    for case, res in zip(corpus, results):
        if case.expect == "bad" or (case.expect == "odd" and not res.ok):
            assert not res.ok, case
            check_error_line(case, f"error: {res.error}")
            assert "\n" not in res.error and res.mesh_path is None and res.json_path is None
        else:
            assert res.ok, (case, res.error)
            written[case.path] = (res.mesh_path, res.json_path)
    check_outputs(out, written)


def test_masks_through_the_api(fast_model, tmp_path):
    """A mask that is a pipe, a folder, missing, empty, half transparent or of another size fails its image
    alone; the good pair of the same call is written."""
    from core.api import reconstruct

    good = write_good(tmp_path / "photo.png")
    masks = {"pipe": (tmp_path / "m_pipe.png", "named pipe"), "folder": (tmp_path / "m_dir.png", "folder"),
             "missing": (tmp_path / "m_gone.png", "file not found"), "empty": (tmp_path / "m_empty.png", "0 bytes"),
             "black": (tmp_path / "m_black.png", "mask is empty"), "half": (tmp_path / "m_half.png", "49.8%"),
             "size": (tmp_path / "m_size.png", "same size"), "speck": (tmp_path / "m_speck.png", "too small")}
    os.mkfifo(masks["pipe"][0])
    masks["folder"][0].mkdir()
    masks["empty"][0].write_bytes(b"")
    Image.new("L", (120, 90), 0).save(masks["black"][0])
    Image.new("L", (120, 90), 127).save(masks["half"][0])
    Image.new("L", (30, 30), 255).save(masks["size"][0])
    speck = np.zeros((90, 120), np.uint8)
    speck[10, 10] = 255
    Image.fromarray(speck).save(masks["speck"][0])
    images, mask_list = [], []
    for k, (mask, _) in enumerate(masks.values()):
        images.append(shutil.copy(good, tmp_path / f"photo_{k}.png"))
        mask_list.append(str(mask))
    images.append(str(good))
    mask_list.append(None)
    results = reconstruct(images, masks=mask_list, model=str(fast_model), steps=0, out_dir=tmp_path / "out")
    for (mask, words), res in zip(masks.values(), results):
        assert not res.ok and shown(str(mask)) in res.error and words in res.error, res.error
    assert results[-1].ok and Path(results[-1].mesh_path).name == "photo.glb"
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.glb", "photo.json"]


def test_cli_mask_that_is_a_pipe_does_not_hang(fast_model, tmp_path):
    good = write_good(tmp_path / "photo.png")
    os.mkfifo(tmp_path / "mask.png")
    run = run_cli(good, "--mask", tmp_path / "mask.png", "--out", tmp_path / "out", "--model", fast_model, "--quiet")
    assert run.returncode == 1 and run.err_text.count("\n") == 1, run.err_text
    assert "mask.png: is a named pipe (FIFO)" in run.err_text and not (tmp_path / "out" / "photo.glb").exists()


def test_same_stem_gets_unique_names_and_the_json_says_which(fast_model, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    inputs = [write_good(a / "chair.png"), write_good(b / "chair.png"), write_good(tmp_path / "chair_2.png"),
              write_good(a / "Chair.png")]
    run = run_cli(*inputs, "--out", tmp_path / "out", "--model", fast_model, "--steps", "0", "--quiet")
    assert run.returncode == 0, run.err_text
    out = tmp_path / "out"
    expected = ["chair", "chair_3", "chair_2", "Chair_4"]  # chair_2 is another input's own name
    for image, stem in zip(inputs, expected):
        data = json.loads((out / f"{stem}.json").read_text())
        assert data["image"] == str(image) and data["mesh"]["path"] == f"{stem}.glb"
        assert f"{image}: {out / stem}.glb" in run.out_text
    assert len(os.listdir(out)) == 8


def test_output_name_that_is_a_folder_fails_that_input_alone(fast_model, tmp_path):
    out = tmp_path / "out"
    (out / "blocked.json").mkdir(parents=True)
    inputs = [write_good(tmp_path / "blocked.png"), write_good(tmp_path / "fine.png")]
    run = run_cli(*inputs, "--out", out, "--model", fast_model, "--quiet")
    assert run.returncode == 1 and run.err_text.startswith(f"error: {out / 'blocked.glb'}: cannot write"), run.err_text
    assert sorted(os.listdir(out)) == ["blocked.json", "fine.glb", "fine.json"]  # no mesh without its JSON
    assert not any((out / "blocked.json").iterdir())


# ---------------------------------------------------------------------------------------------
# refused options and models: one line, exit 1, nothing written, the same text in the API

BAD_OPTIONS = [
    (["--steps", "-1"], "steps must be a whole number >= 0", {"steps": -1}),
    (["--steps", "1001"], "use at most 1000", {"steps": 1001}),
    (["--mesh-resolution", "15"], "mesh resolution must be a whole number between 16 and 512", {"mesh_resolution": 15}),
    (["--mesh-resolution", "100000"], "between 16 and 512, got 100000", {"mesh_resolution": 100000}),
    (["--focal-mm", "nan"], "focal length must be", {"focal_mm": math.nan}),
    (["--focal-mm", "inf"], "focal length must be", {"focal_mm": math.inf}),
    (["--focal-mm=-inf"], "focal length must be", {"focal_mm": -math.inf}),
    (["--focal-mm", "-5"], "focal length must be", {"focal_mm": -5.0}),
    (["--focal-mm", "3"], "between 4 and 2000", {"focal_mm": 3.0}),
    (["--seed", "-1"], "seed must be a whole number from 0 to 2147483647", {"seed": -1}),
    (["--seed", str(2 ** 31)], "seed must be", {"seed": 2 ** 31}),
    (["--seed", str(2 ** 64)], "got 18446744073709551616", {"seed": 2 ** 64}),
    (["--device", "cuda:abc"], "unknown device 'cuda:abc'", {"device": "cuda:abc"}),
    (["--device", "tpu"], "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps", {"device": "tpu"}),
    (["--device", ""], "unknown device ''", {"device": ""}),
    (["--out", ""], "the output folder name is empty", {"out_dir": ""}),
    (["--model", "unicorns"], "unknown model 'unicorns'", {"model": "unicorns"}),
]


@pytest.mark.parametrize("args, words, _api", BAD_OPTIONS, ids=[" ".join(a) or "empty" for a, _, _ in BAD_OPTIONS])
def test_cli_refuses_options_with_one_line(args, words, _api, fast_model, tmp_path):
    good = write_good(tmp_path / "good.png")
    extra = [] if "--model" in args else ["--model", fast_model]
    extra += [] if "--out" in args else ["--out", tmp_path / "out"]
    run = run_cli(good, *args, *extra, "--quiet", timeout=30)
    assert run.returncode == 1 and run.err_text.count("\n") == 1, (run.returncode, run.err_text)
    assert run.err_text.startswith("error: ") and words in run.err_text, run.err_text
    assert "Traceback" not in run.err_text and run.out_text == "" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("_cli, words, changes", BAD_OPTIONS + [
    (None, "device must be one of auto, cpu, cuda, cuda:N or mps (a string), got 123", {"device": 123}),
    (None, "seed must be a whole number from 0 to 2147483647, got 'abc'", {"seed": "abc"}),
    (None, "seed must be", {"seed": 1.5}),
    (None, "steps must be", {"steps": np.int64(-1)}),
    (None, "steps must be", {"steps": True}),
    (None, "focal length must be", {"focal_mm": "35"}),
    (None, "unknown mesh format", {"fmt": None}),
    (None, "output folder must be a path", {"out_dir": 123}),
    (None, "unknown inversion loss 'bogus'", {"inversion": {"loss": "bogus"}}),
    (None, "inversion setting 'size' must be a whole number from 8 to 2048, got 0", {"inversion": {"size": 0}}),
    (None, "inversion setting 'lr' must be a finite number", {"inversion": {"lr": math.nan}}),
    (None, "inversion setting 'joint_plane_lr' must be a finite number from 0.0 to 10.0, got -1.0",
     {"inversion": {"joint_plane_lr": -1.0}}),
    (None, "batch size must be", {"batch_size": 0}),
    (None, "unknown option 'loss'", {"loss": "bogus"}),
], ids=lambda v: None)
def test_api_refuses_the_same_options_with_the_same_text(_cli, words, changes, fast_model, tmp_path):
    from core.api import reconstruct
    from core.errors import ReconstructionError

    good = write_good(tmp_path / "good.png")
    args = {"model": str(fast_model), "out_dir": tmp_path / "out", **changes}
    with pytest.raises(ReconstructionError) as info:
        reconstruct([good], **args)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_api_refuses_inversion_settings_objects(fast_model, tmp_path):
    from core.api import reconstruct
    from core.config import InversionConfig
    from core.errors import ReconstructionError

    good = write_good(tmp_path / "good.png")
    for settings, words in ((InversionConfig(loss="bogus"), "unknown inversion loss 'bogus'"),
                            (InversionConfig(steps=-3), "inversion setting 'steps' must be a whole number from 0"),
                            ([1], "inversion settings must be a core.config.InversionConfig")):
        with pytest.raises(ReconstructionError, match=words):
            reconstruct([good], model=str(fast_model), inversion=settings)


def test_api_accepts_numpy_numbers_and_writes_mesh_with_json(fast_model, tmp_path):
    from core.api import reconstruct

    good = write_good(tmp_path / "good.png")
    (res,) = reconstruct([good], model=str(fast_model), steps=np.int64(0), mesh_resolution=np.int32(16),
                         seed=np.uint8(3), focal_mm=np.float32(35), out_dir=tmp_path / "out", model_dirs=str(tmp_path))
    assert res.ok, res.error
    data = json.loads(Path(res.json_path).read_text())
    assert data["steps"] == 0 and data["mesh"]["path"] == "good.glb"
    assert sorted(os.listdir(tmp_path / "out")) == ["good.glb", "good.json"]


def test_device_that_this_machine_lacks_is_one_line(fast_model, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: 'cuda:0' is a valid device here")
    good = write_good(tmp_path / "good.png")
    for device in ("cuda:0", "cuda"):
        run = run_cli(good, "--device", device, "--out", tmp_path / "out", "--model", fast_model, "--quiet")
        assert run.returncode == 1 and run.err_text == (f"error: device '{device}' was requested but no CUDA GPU is "
                                                        "available; use the device cpu or auto\n"), run.err_text
    assert not (tmp_path / "out").exists()


def test_output_folder_refusals(fast_model, tmp_path):
    good = write_good(tmp_path / "good.png")
    (tmp_path / "file").write_text("x")
    for out, words in ((tmp_path / "file", "it is a file, not a folder"), (tmp_path / "file" / "sub", "not writable")):
        run = run_cli(good, "--out", out, "--model", fast_model, "--quiet", timeout=30)
        assert run.returncode == 1 and run.err_text.count("\n") == 1 and words in run.err_text, run.err_text
        assert "Traceback" not in run.err_text


def _model_copy(fast_model: Path, folder: Path, name: str, edit=None, weights=None) -> Path:
    """A copy of the fast model as ``folder/name``; ``edit(meta)`` changes its JSON, ``weights(path)`` its tensors
    (the checksum is then updated, so only the change itself can be refused)."""
    from core.model import sha256_file

    folder.mkdir(exist_ok=True)
    stem = folder / name
    shutil.copy(fast_model, stem.with_suffix(".safetensors"))
    meta = json.loads(fast_model.with_suffix(".json").read_text())
    if weights is not None:
        weights(stem.with_suffix(".safetensors"))
        meta["sha256"] = sha256_file(stem.with_suffix(".safetensors"))
    if edit is not None:
        edit(meta)
    stem.with_suffix(".json").write_text(json.dumps(meta) if isinstance(meta, dict) else meta)
    return stem.with_suffix(".json")


def _nan_weights(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key].clone().fill_(float("nan"))
    save_file(tensors, str(path))


def _set(section, key, value):
    def edit(meta):
        if key is None:
            meta["config"][section] = value
        else:
            meta["config"][section][key] = value
    return edit


MODEL_CASES = {
    "no_sha256": ({"edit": lambda meta: meta.pop("sha256")}, "no SHA-256 checksum", "json"),
    "nan_weights": ({"weights": _nan_weights}, "the weights file contains NaN or infinite values", "safetensors"),
    "negative_channels": ({"edit": _set("generator", "plane_channels", -4)},
                          "'generator.plane_channels' must be a whole number from 1 to 4096, got -4", "json"),
    "absurd_channels": ({"edit": _set("generator", "synthesis_channels", [10 ** 9, 16])},
                        "'generator.synthesis_channels' must be a whole number from 1 to 4096", "json"),
    "big_channels": ({"edit": _set("generator", "decoder_hidden", 4096)}, "weights do not match", "safetensors"),
    "chunk_0": ({"edit": _set("render", "chunk", 0)}, "'render.chunk' must be a whole number from 1", "json"),
    "list_for_object": ({"edit": _set("render", None, [1, 2])}, "setting 'render' must be an object", "json"),
    "config_is_list": ({"edit": lambda meta: meta.__setitem__("config", [])}, "must be an object", "json"),
    "loss_bogus": ({"edit": _set("inversion", "loss", "bogus")}, "'inversion.loss' must be one of", "json"),
    "nan_setting": ({"edit": _set("render", "coarse_beta", float("nan"))}, "'render.coarse_beta' must be a finite",
                    "json"),
    "mesh_res_0": ({"edit": _set("mesh", "resolution", 0)}, "'mesh.resolution' must be", "json"),
    "json_is_list": ({"edit": None}, "not a model's JSON", "json"),
    "wrong_type": ({"edit": _set("encoder", "image_size", "64")}, "'encoder.image_size' must be int", "json"),
}


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_damaged_models_are_refused_naming_the_file(name, fast_model, tmp_path):
    from core.api import reconstruct
    from core.errors import ReconstructionError

    change, words, suffix = MODEL_CASES[name]
    models = tmp_path / "models"
    json_path = _model_copy(fast_model, models, name, **change)
    if name == "json_is_list":
        json_path.write_text("[1, 2, 3]")
    good = write_good(tmp_path / "good.png")
    with pytest.raises(ReconstructionError) as info:
        reconstruct([good], model=name, model_dirs=[models], out_dir=tmp_path / "out")
    message = str(info.value)
    assert words in message and message.startswith(str(json_path.with_suffix("." + suffix))), message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_weights_that_are_a_pipe_or_a_folder_do_not_hang(fast_model, tmp_path):
    models = tmp_path / "models"
    good = write_good(tmp_path / "good.png")
    for name, make, words in (("piped", os.mkfifo, "named pipe"), ("foldered", os.mkdir, "folder")):
        json_path = _model_copy(fast_model, models, name)
        json_path.with_suffix(".safetensors").unlink()
        make(json_path.with_suffix(".safetensors"))
        run = run_cli(good, "--out", tmp_path / "out", "--model", json_path, "--quiet", timeout=30)
        assert run.returncode == 1 and run.err_text.count("\n") == 1, run.err_text
        assert words in run.err_text and f"{name}.safetensors" in run.err_text
    no_sum = _model_copy(fast_model, models, "nosum", edit=lambda meta: meta.pop("sha256"))
    run = run_cli(good, "--out", tmp_path / "out", "--model", no_sum, "--quiet", timeout=30)
    assert run.returncode == 1 and "no SHA-256 checksum" in run.err_text and str(no_sum) in run.err_text


# ---------------------------------------------------------------------------------------------
# cancel in every stage


@pytest.mark.parametrize("stage", ["load", "encoder", "pose", "mesh"])
def test_cancel_in_every_stage_writes_nothing(stage, fast_model, tmp_path):
    from core.api import reconstruct

    inputs = [write_good(tmp_path / f"p{k}.png") for k in range(3)]
    seen = []

    def progress(name, step, total, loss):
        seen.append(name)

    results = reconstruct(inputs, model=str(fast_model), steps=0, out_dir=tmp_path / "out", progress=progress,
                          cancel=lambda: stage in seen)
    assert all(not r.ok and r.error.endswith("cancelled by the user") for r in results), [r.error for r in results]
    assert os.listdir(tmp_path / "out") == []


def test_api_refuses_malformed_calls(fast_model, tmp_path):
    from core.api import reconstruct
    from core.errors import ReconstructionError

    good = write_good(tmp_path / "good.png")
    for args, kwargs, words in (((5,), {}, "images must be a path or a list of paths, got 5"),
                                (([good],), {"masks": 5}, "masks must be a path or a list"),
                                (([good],), {"masks": [None, None]}, "got 2 masks for 1 images"),
                                (([good],), {"cancel": True}, "cancel must be a function"),
                                (([good, 7],), {}, "an image must be a file path, got 7"),
                                (([good],), {"options": {"steps": 3}}, "must be a core.config.ReconstructOptions")):
        with pytest.raises(ReconstructionError, match=words):
            reconstruct(*args, model=str(fast_model), out_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
    (res,) = reconstruct((p for p in [good]), model=str(fast_model), steps=0)  # any iterable of paths
    assert res.ok, res.error


def test_cli_turns_an_unexpected_error_into_one_line(fast_model, tmp_path, monkeypatch, capsys):
    """A bug is still one line on stderr (status 1); SHAPE_FROM_IMAGE_DEBUG=1 shows the traceback."""
    from core import api, cli

    def broken(*args, **kwargs):
        raise ValueError("something nobody expected\nsecond line")

    monkeypatch.setattr(api, "reconstruct", broken)
    good = write_good(tmp_path / "good.png")
    argv = ["reconstruct", str(good), "--out", str(tmp_path / "out"), "--model", str(fast_model), "--quiet"]
    monkeypatch.delenv("SHAPE_FROM_IMAGE_DEBUG", raising=False)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error (ValueError: something nobody expected); please report it")
    assert err.count("\n") == 1
    monkeypatch.setenv("SHAPE_FROM_IMAGE_DEBUG", "1")
    with pytest.raises(ValueError, match="nobody expected"):
        cli.main(argv)


def test_an_output_never_overwrites_an_input_of_the_call(fast_model, tmp_path):
    """A PNG named like a mesh, in the output folder: its mesh gets another name, the photo stays."""
    photo = tmp_path / "chair.glb"
    photo.write_bytes(encoded("PNG"))
    before = photo.read_bytes()
    run = run_cli(photo, "--out", tmp_path, "--model", fast_model, "--format", "glb", "--quiet")
    assert run.returncode == 0, run.err_text
    assert photo.read_bytes() == before
    assert json.loads((tmp_path / "chair_2.json").read_text())["mesh"]["path"] == "chair_2.glb"


# ---------------------------------------------------------------------------------------------
# the model search path: folders that cannot be read, names that are no file


def _locked(monkeypatch, folder: Path) -> None:
    """Looking into ``folder`` raises PermissionError (as for a non-root user and mode 000, whoever runs this)."""
    real_stat, real_scandir, real_listdir = os.stat, os.scandir, os.listdir

    def blocked(path) -> bool:
        try:
            return not isinstance(path, int) and Path(os.fsdecode(path)).is_relative_to(folder)
        except (TypeError, ValueError):
            return False

    def guard(real, itself: bool):
        def call(path=".", *args, **kwargs):
            if blocked(path) and (itself or Path(os.fsdecode(path)) != folder):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "stat", guard(real_stat, False))
    monkeypatch.setattr(os, "scandir", guard(real_scandir, True))
    monkeypatch.setattr(os, "listdir", guard(real_listdir, True))


@pytest.mark.parametrize("hazard", ["user_folder", "home", "extra_folder", "extra_is_file", "extra_long", "extra_nul"])
def test_model_search_path_hazards_never_break_the_call(hazard, fast_model, tmp_path, monkeypatch):
    from core.api import reconstruct
    from core.errors import ReconstructionError
    from core.registry import WEIGHTS_DIR, resolve_model

    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "fuzz.json").write_text("{}")
    extra: list = []
    if hazard == "user_folder":
        monkeypatch.setenv("SHAPE_FROM_IMAGE_MODELS", str(locked))
    elif hazard == "home":
        monkeypatch.delenv("SHAPE_FROM_IMAGE_MODELS")
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        monkeypatch.setenv("HOME", str(locked))
    elif hazard == "extra_folder":
        extra = [locked]
    elif hazard == "extra_is_file":
        extra = [locked / "fuzz.json"]
    elif hazard == "extra_long":
        extra = ["x" * 5000]
    else:
        extra = ["a\0b"]
    _locked(monkeypatch, locked)
    assert resolve_model("chairs", extra) == WEIGHTS_DIR / "chairs.json"
    good = write_good(tmp_path / "good.png")
    (res,) = reconstruct([good], model="fuzz", model_dirs=[*extra, fast_model.parent], steps=0)
    assert res.ok, res.error
    for model in ("/", "x" * 5000, "y/" * 2000, "nosuch"):
        with pytest.raises(ReconstructionError) as err:
            reconstruct([good], model=model, model_dirs=extra, steps=0)
        assert "\n" not in str(err.value) and len(str(err.value)) < 400, str(err.value)[:200]


# ---------------------------------------------------------------------------------------------
# the caller's callbacks raising


def test_callbacks_that_raise_leave_the_call_with_their_own_exception(fast_model, tmp_path):
    """Every stage and both callbacks, with exception types in turn: the caller's exception object comes out
    of reconstruct() (never a per-image 'internal error'), and nothing is written."""
    from core.api import reconstruct

    good = write_good(tmp_path / "good.png")
    kinds = [ValueError, KeyError, RuntimeError, ZeroDivisionError, OSError]
    for n, (which, stage) in enumerate((w, s) for w in ("progress", "cancel")
                                       for s in ("load", "encoder", "pose", "inversion", "mesh")):
        error = kinds[n % len(kinds)](f"{which} in {stage}")
        seen = []

        def progress(name, step, total, loss, which=which, stage=stage, seen=seen, error=error):
            seen.append(name)
            if which == "progress" and name == stage:
                raise error

        def cancel(which=which, stage=stage, seen=seen, error=error):
            if which == "cancel" and seen[-1:] == [stage]:
                raise error
            return False

        with pytest.raises(type(error)) as info:
            reconstruct([good], model=str(fast_model), steps=1, out_dir=tmp_path / "out", progress=progress,
                        cancel=cancel)
        assert info.value is error, (which, stage)
    assert os.listdir(tmp_path / "out") == []


# ---------------------------------------------------------------------------------------------
# result pairs under concurrent writers


def test_two_writers_and_a_reader_on_one_stem(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pair_race", ROOT / "scripts" / "pair_race.py")
    race = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(race)
    counts = race.race(tmp_path / "out", reads=300)
    assert counts["writes"] >= 10 and counts["mismatched"] == 0 and counts["final_mismatched"] == 0, counts
