"""Render Infinigen validation chairs (run INSIDE Infinigen's environment, not the project's .venv):

    runs/infinigen-venv/bin/python training/infinigen/make_chairs.py --out runs/infinigen --chairs 160

Validation chair k (0, 1, 2, ...) is family ``FAMILIES[k % 4]`` (ChairFactory, OfficeChairFactory,
BarChairFactory, ArmChairFactory of ``infinigen.assets.objects.seating``) built from factory seed
``VALIDATION_SEEDS[k]`` (950000 + k; validation only, see training.infinigen.convert) with its own
procedural materials, moved from Infinigen's frame (metric, front +X) into the canonical one (+Z up,
front -Y, box centred, largest side 1.6; convert.canonical_transform) and rendered with Cycles on
the CPU by the same scene code as the Sweet Home 3D set (training.real.scene, training.real.build):

- ``cutout`` input: transparent film (RGBA), soft environment (grey or a bundled studio HDRI) + key sun;
- ``photo`` input: no alpha, textured floor catching the contact shadow, a wall or an HDRI behind;
  its true mask is rendered separately;
- ``--others`` (default 3) more cut-out views around the chair, at the cut-out input's azimuth plus
  360 k / (others + 1) deg (+- 20 deg), ``--other-size`` (128) px, for the novel-view IoU.

Every view: azimuth uniform in [0, 360), elevation in [5, 45] deg, a 35-60 mm lens on a 36 mm sensor,
the chair's projected box filling 50-90 % of the square frame (inputs ``--size``, 256 px), centred,
never cut off. Cycles keeps its scene data between one chair's renders (persistent data); 8 samples
(denoised) and 2 bounces keep a chair at about 30 s of a free 2-core CPU.

Written into OUT (the format of ``training.real.build``, so ``python -m training real-evaluate`` reads
it): ``meshes/<slug>.npz`` (canonical vertices, triangles), ``images/`` and ``masks/``
(``<slug>_cutout_0``, ``<slug>_photo_0``, ``<slug>_other_<j>``), ``chairs/<slug>.json`` (one per
chair: its cases, metric size, front check; a rerun skips chairs already there), ``cases.json``
(every chair's cases, rewritten after each chair), ``manifest.json`` and ``check/front_side_<i>.png``
(40 chairs a sheet, each from azimuth 0 and 90: the seat front must face the first, its left side
the second). ``--fixture PATH`` writes the small test fixture instead (:func:`write_fixture`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from training.infinigen import convert  # noqa: E402

CHECK_VIEWS = ((0.0, 12.0), (90.0, 12.0))
CHECK_SIZE = 96
BOUNCES = 2
MASK_SAMPLES = 4
"""samples of the photo-like inputs' true-mask render (transparent film, alpha only)."""


def _infinigen_factory(family: str):
    import infinigen.assets.objects.seating as seating

    return getattr(seating, convert.FACTORIES[family])


def mesh_arrays(me, matrix_world) -> tuple[np.ndarray, np.ndarray]:
    """World vertices (V, 3) and triangles (F, 3) int64 of a Blender mesh ``me`` placed by ``matrix_world``."""
    me.calc_loop_triangles()
    co = np.zeros(len(me.vertices) * 3)
    me.vertices.foreach_get("co", co)
    tri = np.zeros(len(me.loop_triangles) * 3, dtype=np.int64)
    me.loop_triangles.foreach_get("vertices", tri)
    mw = np.array(matrix_world)
    return co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3], tri.reshape(-1, 3)


def spawn(family: str, seed: int):
    """The chair's root object (Infinigen's frame) and the (V, 3) world vertices, (F, 3) triangles of
    all its meshes, modifiers applied."""
    import bpy

    factory = _infinigen_factory(family)(seed)
    obj = factory.spawn_asset(0)
    factory.finalize_assets([obj])
    bpy.context.view_layer.update()
    dg = bpy.context.evaluated_depsgraph_get()
    verts, faces, base = [], [], 0
    for o in [obj, *obj.children_recursive]:
        if o.type != "MESH" or o.hide_render:
            continue
        ev = o.evaluated_get(dg)
        me = ev.to_mesh()
        v, tri = mesh_arrays(me, o.matrix_world)
        verts.append(v)
        faces.append(tri + base)
        base += len(v)
        ev.to_mesh_clear()
    if not faces or base == 0:
        raise RuntimeError(f"{family} seed {seed}: no mesh")
    return obj, np.concatenate(verts), np.concatenate(faces)


def _view(rng: np.random.Generator, pts: np.ndarray, size: int, azimuth: float | None = None) -> dict:
    az = float(rng.uniform(0, 360)) if azimuth is None else float(azimuth % 360)
    el, mm, fill = float(rng.uniform(5, 45)), float(rng.uniform(35, 60)), float(rng.uniform(0.5, 0.9))
    focal = mm / 36.0 * size
    m = convert.fit_camera(pts, az, el, focal, size, fill)
    return {"cam2world": m.tolist(), "focal_px": focal, "cx": size / 2, "cy": size / 2, "width": size,
            "height": size, "lens_mm": mm, "sensor_mm": 36.0, "azimuth_deg": az, "elevation_deg": el,
            "fill_target": fill}


def _render_settings(size: int, samples: int, denoise: bool, transparent: bool, threads: int) -> None:
    """training.real.scene.setup_render, keeping Cycles' scene data (BVH, compiled shaders) between the
    renders of one chair (most of a render's time on a busy CPU is otherwise spent rebuilding them),
    with BOUNCES light bounces (one diffuse, one glossy): Infinigen's procedural shaders are costly
    per evaluation."""
    import bpy

    from training.real import scene

    scene.setup_render(size, samples, denoise, transparent, threads)
    bpy.context.scene.render.use_persistent_data = True
    cycles = bpy.context.scene.cycles
    cycles.max_bounces, cycles.diffuse_bounces, cycles.glossy_bounces = BOUNCES, 1, 1


def render_chair(out: Path, k: int, size: int, samples: int, others: int, threads: int, other_size: int = 128,
                 other_samples: int = 8, first_seed: int = convert.VALIDATION_SEEDS.start) -> dict:
    """Build, convert and render chair ``k`` of the set starting at ``first_seed``; returns its record
    (chairs/<slug>.json)."""
    import bpy  # noqa: F401  (makes mathutils importable)
    from mathutils import Matrix

    from training.real import build, scene

    family, seed = convert.case_seed(k, first_seed)
    slug = f"{family}_{seed}"
    t0 = time.time()
    scene.reset()
    obj, verts, faces = spawn(family, seed)
    t_gen = time.time() - t0
    m, metric = convert.canonical_transform(verts, convert.FRONT_YAW_DEG[family])
    obj.matrix_world = Matrix(m.tolist()) @ obj.matrix_world
    canon = convert.apply(m, verts).astype(np.float32)
    mesh_rel = f"meshes/{slug}.npz"
    np.savez_compressed(out / mesh_rel, vertices=canon, faces=faces.astype(np.int32))
    lo = canon.min(0)
    hdris = scene.studio_lights()

    _render_settings(CHECK_SIZE, 4, True, True, threads)
    scene.set_world((1.0, 1.0, 1.0), 0.7)
    scene.set_key_light(-30.0, 50.0, 2.5)
    for az, el in CHECK_VIEWS:
        scene.set_camera(convert.fit_camera(canon, az, el, 50 / 36 * CHECK_SIZE, CHECK_SIZE, 0.8), 50.0)
        scene.render(out / "check" / f"{slug}_az{int(az):03d}.png")

    def shoot(name: str, view: dict, photo: bool, rng, n_samples: int, denoise: bool = True) -> dict:
        img_rel, mask_rel = f"images/{name}.png", f"masks/{name}.png"
        _render_settings(view["width"], n_samples, denoise, not photo, threads)
        scene.set_camera(np.array(view["cam2world"]), view["lens_mm"])
        light = build._lighting(rng, view["azimuth_deg"], hdris, photo)
        room = None
        if photo:
            room = scene.build_room(rng, float(lo[2]), view["azimuth_deg"], wall=rng.random() < 0.6)
            scene.render(out / img_rel)
            scene.hide_room()
            _render_settings(view["width"], MASK_SAMPLES, False, True, threads)
            tmp = out / "masks" / f"{name}_rgba.png"
            scene.render(tmp)
            alpha = build._read_alpha(tmp)
            tmp.unlink()
        else:
            scene.render(out / img_rel)
            alpha = build._read_alpha(out / img_rel)
        build._save_mask(alpha, out / mask_rel)
        return {**view, "name": name, "image": img_rel, "mask": mask_rel, "fill": build._fill(alpha),
                "lighting": light, "room": room}

    cases, pts = [], canon
    base = None
    for ci, cond in enumerate(build.CONDITIONS):
        rng = np.random.default_rng([seed, ci])
        shot = shoot(f"{slug}_{cond}_0", _view(rng, pts, size), cond == "photo", rng, samples)
        base = shot["azimuth_deg"] if base is None else base
        cases.append({**shot, "chair": slug, "slug": slug, "family": family, "seed": seed, "source": "infinigen",
                      "condition": cond, "mesh": mesh_rel})
    other_views = []
    for j in range(others):
        rng = np.random.default_rng([seed, 10 + j])
        az = base + 360.0 * (j + 1) / (others + 1) + rng.uniform(-20, 20)
        other_views.append(shoot(f"{slug}_other_{j}", _view(rng, pts, other_size, az), False, rng, other_samples,
                                 denoise=False))
    for c in cases:
        c["others"] = other_views
    return {"slug": slug, "family": family, "seed": seed, "factory": convert.FACTORIES[family], "mesh": mesh_rel,
            "metric_size_m": round(metric, 4), "front_yaw_deg": convert.FRONT_YAW_DEG[family],
            "back_offset": round(convert.back_offset(canon), 4), "vertices": int(len(canon)),
            "faces": int(len(faces)), "seconds_generate": round(t_gen, 2), "samples": samples, "bounces": BOUNCES,
            "seconds": round(time.time() - t0, 2), "cases": cases}


FIXTURE_SEED = 7
"""factory seed of the test fixture (outside VALIDATION_SEEDS)."""


def write_fixture(path: Path, family: str = "chair", seed: int = FIXTURE_SEED, faces: int = 400) -> None:
    """A few-KB test fixture: one chair decimated to about ``faces`` triangles, in Infinigen's own frame
    (``<path>.npz``: vertices, faces), and ``<path>.json``: the family, the canonical transform this
    module applies and a camera (JSON camera convention) fitted to the canonical chair from azimuth 30,
    elevation 20, 50 mm, fill 0.7, 256 px."""
    import bpy

    from training.real import scene

    scene.reset()
    obj, verts, tris = spawn(family, seed)
    mesh = bpy.data.meshes.new("fixture")
    mesh.from_pydata(verts.tolist(), [], tris.tolist())
    small = bpy.data.objects.new("fixture", mesh)
    bpy.context.scene.collection.objects.link(small)
    mod = small.modifiers.new("decimate", "DECIMATE")
    mod.ratio = min(1.0, faces / len(tris))
    dg = bpy.context.evaluated_depsgraph_get()
    me = small.evaluated_get(dg).to_mesh()
    me.calc_loop_triangles()
    co = np.zeros(len(me.vertices) * 3)
    me.vertices.foreach_get("co", co)
    tri = np.zeros(len(me.loop_triangles) * 3, dtype=np.int64)
    me.loop_triangles.foreach_get("vertices", tri)
    v, f = co.reshape(-1, 3).astype(np.float32), tri.reshape(-1, 3).astype(np.int32)
    m, metric = convert.canonical_transform(verts, convert.FRONT_YAW_DEG[family])
    size, mm = 256, 50.0
    cam = convert.fit_camera(convert.apply(m, verts), 30.0, 20.0, mm / 36 * size, size, 0.7)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), vertices=v, faces=f)
    path.with_suffix(".json").write_text(json.dumps({
        "family": family, "seed": seed, "factory": convert.FACTORIES[family], "triangles_full": int(len(tris)),
        "metric_size_m": metric, "canonical_transform": m.tolist(), "back_offset_full": convert.back_offset(convert.apply(m, verts)),
        "camera": {"cam2world": cam.tolist(), "focal_px": mm / 36 * size, "cx": size / 2, "cy": size / 2,
                   "width": size, "height": size, "azimuth_deg": 30.0, "elevation_deg": 20.0, "fill_target": 0.7}},
        indent=1))
    print(f"{path}: {len(f)} of {len(tris)} triangles")


def collect(out: Path, args: argparse.Namespace, failed: list[dict]) -> int:
    """Rewrite cases.json, manifest.json (and the contact sheet) from chairs/*.json."""
    records = [json.loads(p.read_text()) for p in sorted((out / "chairs").glob("*.json"))]
    records.sort(key=lambda r: r["seed"])
    cases = [c for r in records for c in r["cases"]]
    (out / "cases.json").write_text(json.dumps({"manifest": "manifest.json", "cases": cases}, indent=1))
    manifest = {
        "source": {"package": "infinigen==1.15.5", "module": "infinigen.assets.objects.seating",
                   "factories": convert.FACTORIES},
        "seeds": (f"chair k: family FAMILIES[k % 4], factory seed {args.first_seed} + k ("
                  + ("tuning only" if args.first_seed == convert.TUNING_SEEDS.start else "validation only") + ")"),
        "frame": "+Z up, front toward -Y, bbox centred, largest side 1.6 (Infinigen front +X turned by FRONT_YAW_DEG)",
        "front_yaw_deg": convert.FRONT_YAW_DEG, "size": args.size, "samples": args.samples, "others": args.others,
        "other_size": args.other_size, "other_samples": args.other_samples, "mask_samples": MASK_SAMPLES,
        "bounces": BOUNCES,
        "chairs": [{k: v for k, v in r.items() if k != "cases"} for r in records], "failed": failed,
        "per_family": {f: sum(r["family"] == f for r in records) for f in convert.FAMILIES}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return len(records)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/infinigen")
    ap.add_argument("--chairs", type=int, default=160, help="chairs 0..N-1 (a rerun skips those done)")
    ap.add_argument("--first", type=int, default=0, help="start at chair K")
    ap.add_argument("--first-seed", type=int, default=convert.VALIDATION_SEEDS.start,
                    help=f"factory seed of chair 0: {convert.VALIDATION_SEEDS.start} validation (default), "
                         f"{convert.TUNING_SEEDS.start} tuning (never validation or training), "
                         f"{convert.TRAINING_SEEDS.start} training photos (the generator's training chairs; "
                         f"train-segmenter --photos)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=8, help="Cycles samples of the inputs (denoised)")
    ap.add_argument("--others", type=int, default=3, help="cut-out views around each chair for the novel-view IoU")
    ap.add_argument("--other-size", type=int, default=128, help="side of the other views (the metric's 128 px)")
    ap.add_argument("--other-samples", type=int, default=8, help="Cycles samples of the other views (not denoised)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sheet", action="store_true", help="only rebuild cases.json, manifest.json and the contact sheet")
    ap.add_argument("--fixture", default=None, help="only write the test fixture (PATH.npz + PATH.json)")
    args = ap.parse_args(argv)
    if args.fixture:
        write_fixture(Path(args.fixture))
        return 0
    out = Path(args.out)
    for sub in ("meshes", "images", "masks", "check", "chairs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    failed: list[dict] = []
    t0 = time.time()
    for k in range(args.first, args.chairs) if not args.sheet else ():
        family, seed = convert.case_seed(k, args.first_seed)
        rec_path = out / "chairs" / f"{family}_{seed}.json"
        if rec_path.exists():
            continue
        try:
            rec = render_chair(out, k, args.size, args.samples, args.others, args.threads, args.other_size,
                               args.other_samples, args.first_seed)
        except Exception as exc:  # an Infinigen failure costs one chair, not the run
            failed.append({"k": k, "family": family, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})
            print(f"chair {k} ({family} {seed}) failed: {exc}", flush=True)
            traceback.print_exc()
            continue
        rec_path.write_text(json.dumps(rec, indent=1))
        n = collect(out, args, failed)
        print(f"chair {k} {rec['slug']}: {rec['faces']} triangles, {rec['metric_size_m']} m, back offset "
              f"{rec['back_offset']:+.2f}, {rec['seconds']:.1f}s ({n} done, {time.time() - t0:.0f}s)", flush=True)
    n = collect(out, args, failed)
    _sheet(out)
    print(f"{n} chairs in {out / 'cases.json'}; {len(failed)} failed this run; frame check {out / 'check'}/front_side_*.png")
    return 0


def _sheet(out: Path) -> None:
    from training.real import build

    records = [json.loads(p.read_text()) for p in sorted((out / "chairs").glob("*.json"))]
    rows = [(r["slug"], [out / "check" / f"{r['slug']}_az{int(az):03d}.png" for az, _ in CHECK_VIEWS]) for r in records]
    rows = [(name, paths) for name, paths in rows if all(p.exists() for p in paths)]
    for i in range(0, len(rows), 40):
        build.contact_sheet(rows[i:i + 40], out / "check" / f"front_side_{i // 40}.png")


if __name__ == "__main__":
    sys.exit(main())
