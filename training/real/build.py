"""Build the real validation set: ``python -m training real-build --out runs/real [--chairs N] [--seed S]``.

Human-made chair models from Sweet Home 3D's default furniture catalogue (inside the
``sweethome3d`` Debian package; the .deb is found in ``--deb``, ``OUT/source``, /tmp or the working
folder, else fetched with ``apt-get download sweethome3d``) are converted into the canonical frame
(+Z up, front toward -Y, bounding box centred with its largest side EXTENT = 1.6, exactly like the
procedural chairs of training.data.chairs) and rendered with Cycles in two conditions
(training.real.scene): ``cutout`` (RGBA) and ``photo`` (floor, contact shadow, wall or HDRI
background, no alpha; the object mask is a separate file).

Views (per chair and condition, ``--views``, default 8): azimuth uniform in [0, 360), elevation in
[5, 45] degrees, a 35-60 mm lens on a 36 mm sensor, ``--size`` (256) pixels square, the chair's
projected box filling 50-90 % of the frame and never cut off (training.data.raytrace.fit_view).

Written into OUT:

- ``manifest.json``: the source package (name, sha256), the chairs used (catalogue entries), the
  seats left out and why, the per-model overrides;
- ``meshes/<chair>.npz``: ``vertices`` (V, 3) float32 and ``faces`` (F, 3) int32, canonical frame;
- ``images/<chair>_<condition>_<k>.png`` and ``masks/<chair>_<condition>_<k>.png`` (the true
  object coverage, 8-bit);
- ``check/front_side.png``: every chair from azimuth 0 (the camera at -Y: the seat front must face
  it) and from azimuth 90 (the camera at +X: the front on the left), upright;
- ``cases.json``: one record per render: image, mask, condition, chair, cam2world (Blender
  convention, canonical frame), focal_px, cx, cy, width, height, lens_mm, azimuth/elevation, fill,
  mesh, symmetry_yaw_deg (turns about +Z that map the chair onto itself), the lighting and room
  chosen. Paths are relative to the folder of ``cases.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from . import catalog

CONDITIONS = ("cutout", "photo")
YAW_OVERRIDES: dict[str, float] = {}
"""catalogue id -> extra turn about +Z in degrees, for a model whose front is not the catalogue's +Z
(none needed: every default chair faces +Z; checked on ``check/front_side.png``)."""
SYMMETRY_TOL = 0.008
"""a turn about +Z maps a chair onto itself when the Chamfer-L1 distance between its surface samples
and their turned copy is below this (units of the bounding-box diagonal; sampling noise ~0.003)."""
CHECK_VIEWS = ((0.0, 12.0), (90.0, 12.0))
"""(azimuth, elevation) of the frame-check renders: from the front, from the chair's left (+X)."""


def _view(rng: np.random.Generator, pts, size: int) -> dict:
    from ..data.raytrace import fit_view

    az, el = float(rng.uniform(0, 360)), float(rng.uniform(5, 45))
    mm, fill = float(rng.uniform(35, 60)), float(rng.uniform(0.5, 0.9))
    off = (float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)))
    focal = mm / 36.0 * size
    m = fit_view(pts, az, el, focal, size, size, fill, off)
    return {"cam2world": m, "lens_mm": mm, "focal_px": focal, "azimuth_deg": az, "elevation_deg": el,
            "fill_target": fill}


def yaw_symmetries(vertices: np.ndarray, faces: np.ndarray, n: int = 20000) -> list[float]:
    """Turns about +Z among 90, 180 and 270 degrees that map the mesh onto itself (SYMMETRY_TOL): a
    camera turned by one of them sees the same image, so the rotation error can be scored modulo them."""
    import trimesh
    from scipy.spatial import cKDTree

    pts, _ = trimesh.sample.sample_surface(trimesh.Trimesh(vertices, faces, process=False), n, seed=0)
    diag = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
    tree, out = cKDTree(pts), []
    for deg in (90.0, 180.0, 270.0):
        a = np.radians(deg)
        turned = pts @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]]).T
        d = (tree.query(turned)[0].mean() + cKDTree(turned).query(pts)[0].mean()) / 2 / diag
        if d < SYMMETRY_TOL:
            out.append(deg)
    return out


def _lighting(rng: np.random.Generator, camera_azimuth: float, hdris: list[str], photo: bool) -> dict:
    from . import scene

    key = {"azimuth_deg": float(camera_azimuth + rng.uniform(-100, 100)), "elevation_deg": float(rng.uniform(25, 70)),
           "strength": float(rng.uniform(1.5, 3.5)), "angle_deg": float(rng.uniform(5, 25))}
    if photo or rng.random() < 0.5:
        env = {"hdri": Path(str(rng.choice(hdris))).name, "strength": float(rng.uniform(0.4, 0.8)),
               "yaw_deg": float(rng.uniform(0, 360))}
        hdri = next(h for h in hdris if Path(h).name == env["hdri"])
        scene.set_world(strength=env["strength"], hdri=hdri, yaw_deg=env["yaw_deg"],
                        background_strength=env["strength"] * 1.3 if photo else None)
    else:
        tint = np.clip(1 + rng.normal(0, 0.04, 3), 0.85, 1.1)
        env = {"color": tint.round(3).tolist(), "strength": float(rng.uniform(0.5, 0.9))}
        scene.set_world(tuple(tint), env["strength"])
    scene.set_key_light(key["azimuth_deg"], key["elevation_deg"], key["strength"], key["angle_deg"])
    return {"environment": env, "key": key}


def _save_mask(alpha: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray((np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8), "L").save(path)


def _read_alpha(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGBA"))[..., 3] / 255.0


def _fill(alpha: np.ndarray) -> float:
    ys, xs = np.nonzero(alpha > 0.5)
    if len(xs) == 0:
        return 0.0
    return float(max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / max(alpha.shape))


def contact_sheet(rows: list[tuple[str, list[Path]]], path: Path) -> None:
    """Renders (RGBA) composited on white, one row per chair, labelled."""
    from PIL import Image, ImageDraw

    tiles = [[Image.open(p).convert("RGBA") for p in paths] for _, paths in rows]
    s = tiles[0][0].size[0]
    label_w = 110
    sheet = Image.new("RGB", (label_w + s * len(tiles[0]), s * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, ((name, _), row) in enumerate(zip(rows, tiles)):
        draw.text((6, r * s + s // 2 - 6), name, fill="black")
        for c, im in enumerate(row):
            bg = Image.new("RGBA", im.size, "white")
            sheet.paste(Image.alpha_composite(bg, im).convert("RGB"), (label_w + c * s, r * s))
            draw.rectangle([label_w + c * s, r * s, label_w + (c + 1) * s - 1, (r + 1) * s - 1], outline=(200, 200, 200))
    sheet.save(path)


def build(out: Path, n_chairs: int | None, seed: int, views: int, size: int, samples: int, deb: Path | None,
          threads: int, conditions: tuple[str, ...], log=print) -> dict:
    """Write the set into ``out`` (see the module docstring); returns the manifest."""
    import torch

    from core.model import sha256_file

    from ..data.raytrace import fit_view
    from . import scene

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    src = out / "source"
    deb = deb or catalog.find_deb([src, Path("/tmp"), Path.cwd()], src)
    jar_path = catalog.extract_jar(deb, src)
    with zipfile.ZipFile(jar_path) as jar:
        chairs, excluded = catalog.select_chairs(catalog.read_catalog(jar))
        chairs = chairs[:n_chairs] if n_chairs else chairs
        mtl = catalog.default_mtl(jar)
        objs = {c.id: catalog.extract_model(jar, c, src / "models" / c.slug, mtl) for c in chairs}
    log(f"{deb.name}: {len(chairs)} chairs: {', '.join(c.id for c in chairs)}")
    for sub in ("meshes", "images", "masks", "check"):
        (out / sub).mkdir(exist_ok=True)

    hdris = scene.studio_lights()
    cases, sheet_rows, chair_info = [], [], []
    for ci, entry in enumerate(chairs):
        scene.reset()
        yaw = YAW_OVERRIDES.get(entry.id, 0.0)
        canon = scene.import_canonical(objs[entry.id], entry.size_cm, entry.model_rotation, yaw)
        mesh_rel = f"meshes/{entry.slug}.npz"
        np.savez_compressed(out / mesh_rel, vertices=canon.vertices, faces=canon.faces)
        lo, hi = canon.vertices.min(0), canon.vertices.max(0)
        symmetry = yaw_symmetries(canon.vertices, canon.faces)
        chair_info.append({**entry.summary(), "slug": entry.slug, "mesh": mesh_rel, "yaw_override_deg": yaw,
                           "symmetry_yaw_deg": symmetry,
                           "vertices": int(len(canon.vertices)), "faces": int(len(canon.faces)),
                           "bbox_min": lo.round(4).tolist(), "bbox_max": hi.round(4).tolist()})
        pts = torch.tensor(canon.vertices, dtype=torch.float32)

        # frame check: fixed neutral light, transparent film
        scene.setup_render(192, max(8, samples // 3), True, True, threads)
        scene.set_world((1.0, 1.0, 1.0), 0.7)
        scene.set_key_light(-30.0, 50.0, 2.5)
        paths = []
        for az, el in CHECK_VIEWS:
            mm = 50.0
            scene.set_camera(fit_view(pts, az, el, mm / 36 * 192, 192, 192, 0.8), mm)
            paths.append(scene.render(out / "check" / f"{entry.slug}_az{int(az):03d}.png"))
        sheet_rows.append((entry.slug, paths))

        for cond in conditions:
            photo = cond == "photo"
            for k in range(views):
                rng = np.random.default_rng([seed, ci, CONDITIONS.index(cond), k])
                view = _view(rng, pts, size)
                name = f"{entry.slug}_{cond}_{k}"
                img_rel, mask_rel = f"images/{name}.png", f"masks/{name}.png"
                scene.setup_render(size, samples, True, not photo, threads)
                scene.set_camera(view["cam2world"], view["lens_mm"])
                light = _lighting(rng, view["azimuth_deg"], hdris, photo)
                room = None
                if photo:
                    room = scene.build_room(rng, float(lo[2]), view["azimuth_deg"], wall=rng.random() < 0.6)
                    scene.render(out / img_rel)
                    scene.hide_room()
                    scene.setup_render(size, 16, False, True, threads)
                    tmp = out / "masks" / f"{name}_rgba.png"
                    scene.render(tmp)
                    alpha = _read_alpha(tmp)
                    tmp.unlink()
                else:
                    scene.render(out / img_rel)
                    alpha = _read_alpha(out / img_rel)
                _save_mask(alpha, out / mask_rel)
                cases.append({
                    "name": name, "chair": entry.id, "slug": entry.slug, "condition": cond, "image": img_rel,
                    "mask": mask_rel, "mesh": mesh_rel, "symmetry_yaw_deg": symmetry, "width": size, "height": size,
                    "cam2world": np.asarray(view["cam2world"]).tolist(), "focal_px": view["focal_px"],
                    "cx": size / 2, "cy": size / 2, "lens_mm": view["lens_mm"], "sensor_mm": 36.0,
                    "azimuth_deg": view["azimuth_deg"], "elevation_deg": view["elevation_deg"],
                    "fill": _fill(alpha), "lighting": light, "room": room})
        log(f"  {entry.id}: {len(canon.faces)} triangles, {sum(c['slug'] == entry.slug for c in cases)} renders "
            f"({time.time() - t0:.0f}s)")

    contact_sheet(sheet_rows, out / "check" / "front_side.png")
    manifest = {
        "source": {"package": deb.name, "sha256": sha256_file(deb), "jar": catalog.JAR_PATH,
                   "catalog": catalog.CATALOG_PATH, "selection": f"id or name matches /{catalog.CHAIR_PATTERN.pattern}/i"},
        "chairs": chair_info, "chairs_asked": n_chairs, "excluded": excluded, "yaw_overrides_deg": YAW_OVERRIDES,
        "frame": "+Z up, front toward -Y, bbox centred, largest side 1.6 (training.data.chairs.EXTENT)",
        "seed": seed, "views": views, "size": size, "samples": samples, "conditions": list(conditions),
        "seconds": round(time.time() - t0, 1)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "cases.json").write_text(json.dumps({"manifest": "manifest.json", "cases": cases}, indent=1))
    log(f"{len(cases)} renders of {len(chairs)} chairs in {time.time() - t0:.0f}s -> {out / 'cases.json'}; "
        f"frame check: {out / 'check' / 'front_side.png'}")
    return manifest


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training real-build --help``)."""
    ap.add_argument("--out", default="runs/real", help="output folder")
    ap.add_argument("--chairs", type=int, default=None, help="use the first N chairs of the catalogue (default all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--views", type=int, default=8, help="renders per chair and condition")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--samples", type=int, default=64, help="Cycles samples per pixel (denoised)")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    ap.add_argument("--deb", default=None, help="the sweethome3d .deb (default: searched, else apt-get download)")
    ap.add_argument("--threads", type=int, default=2, help="Cycles CPU threads (0: all)")
    ap.add_argument("--force", action="store_true", help="build again over a finished set with the same settings")


def finished(out: Path, settings: dict) -> bool:
    """True when ``out`` holds a finished set (its cases.json and manifest.json) whose manifest records
    every one of ``settings``."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        json.loads((out / "cases.json").read_text())
    except (OSError, ValueError):
        return False
    return all(k in manifest and manifest[k] == v for k, v in settings.items())


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    settings = {"chairs_asked": args.chairs, "seed": args.seed, "views": args.views, "size": args.size,
                "samples": args.samples, "conditions": list(args.conditions)}
    if not args.force and finished(out, settings):
        print(f"{out}: already built with these settings (--force builds it again)")
        return 0
    build(out, args.chairs, args.seed, args.views, args.size, args.samples,
          Path(args.deb) if args.deb else None, args.threads, tuple(args.conditions))
    return 0
