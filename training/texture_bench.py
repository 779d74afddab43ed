"""The baked texture against vertex colours: every example seen through its recovered camera.

    python -m training texture-bench [--examples examples] [--steps 10] [--texture-size 1024] [--out FILE.json]

Each photo of ``--examples`` (a ``<stem>_mask.png`` next to it is its mask) is reconstructed once with a
texture; the delivered mesh is drawn through the recovered camera at the photo's resolution, unlit, once
with the texture and once with its vertex colours (z-buffered rasterization, core.texture.rasterize), and
each drawing is compared with the photo inside the photo's foreground where the mesh covers it: PSNR on
sRGB values in [0, 1]. Also: the seconds the texture stage took, and the GLB's size with the texture and
without it (the same mesh written with ``texture_size`` 0).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def draw(mesh, camera, width: int, height: int, k: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unlit drawings of ``mesh`` (core.mesh.Mesh with ``uv`` and ``texture``) through ``camera`` at ``k`` times
    its photo's pixels: (textured (H, W, 3), vertex colours (H, W, 3), covered (H, W) bool)."""
    import cv2

    from core.texture import _camera_space, rasterize

    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.faces, np.int64)
    at, depth = _camera_space(v, camera, k)
    f = f[(depth[f] > 1e-6).all(axis=1)]
    pix, face, bary = rasterize(at[f], width, height)
    z = (bary * depth[f[face]]).sum(axis=1)
    order = np.lexsort((z, pix))
    pix, face, bary = pix[order], face[order], bary[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    pix, corners, bary = pix[first], f[face[first]], bary[first]
    plain = np.zeros((height * width, 3))
    plain[pix] = np.einsum("nk,nkj->nj", bary, np.asarray(mesh.colors, np.float64)[corners])
    uv = np.einsum("nk,nkj->nj", bary, np.asarray(mesh.uv, np.float64)[corners])
    size = mesh.texture.shape[0]
    tex = mesh.texture.astype(np.float32) / 255.0
    mx = (uv[:, 0] * size - 0.5).astype(np.float32).reshape(-1, 1)
    my = ((1.0 - uv[:, 1]) * size - 0.5).astype(np.float32).reshape(-1, 1)
    rows = -(-len(mx) // 1024) * 1024
    grid = np.zeros((rows, 2), np.float32)
    grid[:len(mx), 0], grid[:len(mx), 1] = mx[:, 0], my[:, 0]
    grid = grid.reshape(-1, 1024, 2)
    sampled = cv2.remap(tex, grid[..., 0].copy(), grid[..., 1].copy(), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[:len(pix)]
    textured = np.zeros((height * width, 3))
    textured[pix] = sampled
    covered = np.zeros(height * width, bool)
    covered[pix] = True
    return textured.reshape(height, width, 3), plain.reshape(height, width, 3), covered.reshape(height, width)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def bench_one(path: Path, mask: Path | None, steps: int, texture_size: int, folder: Path) -> dict:
    from core import reconstruct
    from core.io.images import prepare_image

    (res,) = reconstruct([str(path)], masks=[None if mask is None else str(mask)], steps=steps, device="cpu",
                         texture_size=texture_size, out_dir=str(folder / "textured"))
    if not res.ok:
        raise RuntimeError(res.error)
    (plain,) = reconstruct([str(path)], masks=[None if mask is None else str(mask)], steps=steps, device="cpu",
                           texture_size=0, out_dir=str(folder / "plain"))
    prep = prepare_image(str(path), 128, mask_path=None if mask is None else str(mask))
    photo, k = prep.loaded.rgb, prep.loaded.scale
    height, width = photo.shape[:2]
    textured, colors, covered = draw(res.mesh, res.camera, width, height, k)
    inside = covered & (prep.full_mask >= 0.5)
    glb_tex = Path(res.mesh_path).stat().st_size
    glb_plain = Path(plain.mesh_path).stat().st_size
    return {"image": path.name, "pixels": int(inside.sum()),
            "psnr_texture": round(psnr(textured[inside], photo[inside]), 2),
            "psnr_vertex": round(psnr(colors[inside], photo[inside]), 2),
            "texture_s": round(res.timings.get("texture", 0.0), 3),
            "glb_bytes_texture": glb_tex, "glb_bytes_vertex": glb_plain,
            "height_m": round(float(res.mesh.vertices[:, 2].max() - res.mesh.vertices[:, 2].min()), 4),
            "base_z": round(float(res.mesh.vertices[:, 2].min()), 6)}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--examples", type=Path, default=Path("examples"), help="folder of example photos")
    ap.add_argument("--steps", type=int, default=10, help="inversion steps (default 10)")
    ap.add_argument("--texture-size", type=int, default=1024, help="texture side in pixels (default 1024)")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")


def photos(folder: Path) -> list[tuple[Path, Path | None]]:
    """(photo, its mask or None) of every example photo in ``folder`` (``*_mask.png`` files are masks)."""
    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.stem.endswith("_mask"):
            mask = path.with_name(f"{path.stem}_mask.png")
            out.append((path, mask if mask.exists() else None))
    return out


def run(args: argparse.Namespace) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, mask in photos(args.examples):
            row = bench_one(path, mask, args.steps, args.texture_size, Path(tmp))
            row["gain_db"] = round(row["psnr_texture"] - row["psnr_vertex"], 2)
            row["size_increase"] = round(row["glb_bytes_texture"] / row["glb_bytes_vertex"] - 1.0, 4)
            rows.append(row)
            print(f"{row['image']:22s} PSNR texture {row['psnr_texture']:6.2f} dB, vertex colours "
                  f"{row['psnr_vertex']:6.2f} dB (+{row['gain_db']:.2f}); texture {row['texture_s']:.2f} s; GLB "
                  f"{row['glb_bytes_vertex'] / 1e6:.2f} -> {row['glb_bytes_texture'] / 1e6:.2f} MB "
                  f"(+{100 * row['size_increase']:.0f}%); height {row['height_m']:.3f} m", flush=True)
    gains = [r["gain_db"] for r in rows]
    sizes = [r["size_increase"] for r in rows]
    print(f"smallest gain {min(gains):.2f} dB, mean {np.mean(gains):.2f} dB; GLB size +{100 * np.mean(sizes):.0f}% "
          f"(at most +{100 * max(sizes):.0f}%); texture stage {np.mean([r['texture_s'] for r in rows]):.2f} s mean")
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0
