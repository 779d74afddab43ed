"""Infinigen training chairs for the generator (run INSIDE Infinigen's environment, not the project's .venv):

    nice -n 15 runs/infinigen-venv/bin/python training/infinigen/make_training.py --out runs/infinigen_train \
        --chairs 4000 --threads 1

Training chair k (0, 1, 2, ...) is family ``FAMILIES[k % 4]`` built from factory seed
``TRAINING_SEEDS[k]`` (2000000 + k; convert.training_seed), moved into the canonical frame
(convert.canonical_transform, as the validation chairs are). Each chair becomes one
``<family>_<seed>.npz`` holding exactly what ``training.train_generator._make_shape`` and
``_make_silhouettes`` give for a procedural chair (``training.infinigen.dataset`` reads it):

- ``points`` (32768, 3): a quarter near the surface (gaussian sigma 0.01), a quarter sigma 0.04,
  half uniform in [-1, 1]^3; ``sdf`` (32768,): the distance to the nearest triangle (libigl), negative
  where no ray of 26 directions leaves the mesh (:func:`enclosed`), robust to the overlapping, open
  and inside-out parts Infinigen's chairs are made of; ``albedo`` (32768, 3): the colour at the
  nearest surface point;
- ``surface_points``, ``surface_albedo``, ``surface_normals`` (8192, 3): area-uniform samples of
  the outer surface: a sample is kept only where :func:`enclosed` changes across its face (faces
  hidden inside another part are dropped), its normal turned toward the outside;
- ``cam2world`` (6, 4, 4), ``focal`` (6,), ``alpha`` (6, 48, 48) uint8: silhouettes (2 x 2
  supersampled ray casts) from the data generator's pose distribution (azimuth uniform, elevation
  0-45 deg, 35-60 mm on a 36 mm sensor, the chair filling 50-90 % of the frame), centred
  (convert.fit_camera).

Colours are the base colour of Infinigen's procedural materials: Cycles bakes the DIFFUSE pass's
colour alone (metallic and transmission set to 0 first, so that metal keeps its base colour) into a
per-corner colour attribute of the chair decimated to about BAKE_TRIANGLES triangles; a point takes
the colour at its nearest point of that mesh, converted from linear to sRGB display values, as
``training.data.chairs`` gives them. Points and colours are float16 (points
rounded first, then measured at the rounded positions), cameras float32.

A rerun skips chairs whose file exists (files are written whole, then renamed); ``--first K``,
``--chairs N`` and ``--workers W`` (W processes, chair k to process k mod W) split the work;
failures are listed in ``failed.jsonl``, timings in ``chairs.jsonl``. ``--validate N`` checks the
SDF of the first N chairs instead (the sign against 100 random ray directions and the winding
number, the zero level set against the mesh by Chamfer) and writes ``validate.json``; ``--fixture PATH`` writes a reduced test
fixture from ``tests/fixtures/infinigen/chair_7.npz``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from training.infinigen import convert  # noqa: E402
from training.infinigen.make_chairs import mesh_arrays  # noqa: E402

POINTS = 32768
"""= training.train_generator.POINTS_PER_SHAPE (a test keeps them equal)."""
VIEWS, VIEW_SIZE, SUPERSAMPLE = 6, 48, 2
"""= SILHOUETTE_VIEWS, SILHOUETTE_SIZE of training.train_generator and its 2 x 2 supersampling."""
OUTER_EPS = 2e-3
"""offset (canonical units) on both sides of a surface sample where :func:`enclosed` is compared."""


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    from core.color import linear_to_srgb as f

    return np.clip(f(np.clip(c, 0.0, 1.0)), 0.0, 1.0)


def _base_colour_only() -> None:
    """Metallic and transmission of every Principled BSDF (node groups included) set to 0: the diffuse
    colour pass then carries the base colour of metals and glass too."""
    import bpy

    trees = [m.node_tree for m in bpy.data.materials if m.use_nodes and m.node_tree]
    seen = set()
    while trees:
        tree = trees.pop()
        if tree.name in seen:
            continue
        seen.add(tree.name)
        for node in tree.nodes:
            if node.type == "GROUP" and node.node_tree is not None:
                trees.append(node.node_tree)
            if node.type == "BSDF_PRINCIPLED":
                for name in ("Metallic", "Transmission Weight"):
                    if name in node.inputs:
                        for link in list(node.inputs[name].links):
                            tree.links.remove(link)
                        node.inputs[name].default_value = 0.0


BAKE_TRIANGLES = 20_000
"""the base colour is baked on the chair decimated to about this many triangles (Cycles' bake time
grows with the corners; the generator's 64^2 triplanes hold no finer colour than that anyway)."""


def _triangles(objs: list, colours: bool) -> dict:
    """World vertices (V, 3), triangles (F, 3) and, with ``colours``, the baked corner colours (F, 3, 3)."""
    verts, faces, colors, base = [], [], [], 0
    for o in objs:
        me = o.data
        v, tri = mesh_arrays(me, o.matrix_world)
        verts.append(v)
        faces.append(tri + base)
        base += len(v)
        if colours:
            loops = np.zeros(len(me.loop_triangles) * 3, dtype=np.int64)
            me.loop_triangles.foreach_get("loops", loops)
            rgba = np.zeros(len(me.loops) * 4, dtype=np.float32)
            me.color_attributes["albedo"].data.foreach_get("color", rgba)
            colors.append(rgba.reshape(-1, 4)[loops, :3].reshape(-1, 3, 3))
    out = {"vertices": np.concatenate(verts), "faces": np.concatenate(faces)}
    if len(out["faces"]) == 0:
        raise RuntimeError("empty mesh")
    return {**out, "colors": np.concatenate(colors)} if colours else out


def build_baked(family: str, seed: int, threads: int = 1) -> dict:
    """Build the chair and bake its base colour. Returns (Infinigen frame) ``vertices`` (V, 3) float64 and
    ``faces`` (F, 3) int64 of the whole chair, and ``colour``: the mesh decimated to about BAKE_TRIANGLES
    triangles with ``colors`` (F', 3, 3), the linear base colour at its triangles' corners."""
    import bpy

    from training.infinigen.make_chairs import _infinigen_factory
    from training.real import scene

    scene.reset()
    factory = _infinigen_factory(family)(seed)
    root = factory.spawn_asset(0)
    factory.finalize_assets([root])
    bpy.context.view_layer.update()
    objs = [o for o in [root, *root.children_recursive] if o.type == "MESH" and not o.hide_render]
    if not objs:
        raise RuntimeError(f"{family} seed {seed}: no mesh")
    for o in bpy.context.view_layer.objects:
        o.select_set(False)
    for o in objs:
        o.select_set(True)
    bpy.context.view_layer.objects.active = objs[0]
    bpy.ops.object.convert(target="MESH")  # modifiers applied: the baked mesh is the evaluated one
    mesh = _triangles(objs, colours=False)
    ratio = BAKE_TRIANGLES / len(mesh["faces"])
    if ratio < 1:
        for o in objs:
            o.modifiers.new("decimate", "DECIMATE").ratio = ratio
        bpy.ops.object.convert(target="MESH")
    _base_colour_only()
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.cycles.samples = 1
    sc.render.threads_mode = "FIXED"
    sc.render.threads = max(1, threads)
    sc.render.bake.target = "VERTEX_COLORS"
    for o in objs:
        o.data.color_attributes.active_color = o.data.color_attributes.new("albedo", "FLOAT_COLOR", "CORNER")
    bpy.ops.object.bake(type="DIFFUSE", pass_filter={"COLOR"}, target="VERTEX_COLORS")
    return {**mesh, "colour": _triangles(objs, colours=True)}


def _directions(n: int | None = None, seed: int = 0) -> np.ndarray:
    """Unit vectors: the 26 of the cube's faces, edges and corners, or ``n`` random ones."""
    if n is None:
        d = np.array([(x, y, z) for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1) if x or y or z], float)
    else:
        d = np.random.default_rng(seed).standard_normal((n, 3))
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _tree(mesh: dict):
    """mathutils BVH tree of the mesh (built once per mesh dict)."""
    if "_tree" not in mesh:
        import bpy  # noqa: F401  (makes mathutils importable)
        from mathutils.bvhtree import BVHTree

        mesh["_tree"] = BVHTree.FromPolygons(mesh["vertices"].tolist(), mesh["faces"].tolist(), all_triangles=True)
    return mesh["_tree"]


def enclosed(mesh: dict, q: np.ndarray, directions: np.ndarray | None = None) -> np.ndarray:
    """(N,) True where no ray from the point along any of ``directions`` (default: the 26 of
    :func:`_directions`) leaves the mesh: inside the chair. A visibility test, robust to what Infinigen's
    chairs are made of (overlapping parts, parts left open where another part covers them, patches
    turned inside out), where the winding number strays between 0 and 1."""
    tree = _tree(mesh)
    from mathutils import Vector

    dirs = [Vector(d) for d in (_directions() if directions is None else directions).tolist()]
    out = np.ones(len(q), bool)
    for i, p in enumerate(np.asarray(q, dtype=np.float64).tolist()):
        o = Vector(p)
        out[i] = all(tree.ray_cast(o, d)[0] is not None for d in dirs)
    return out


def _barycentric(v: np.ndarray, f: np.ndarray, face: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric coordinates of points ``p`` on triangles ``face`` (clipped to the triangle)."""
    a, b, c = v[f[face, 0]], v[f[face, 1]], v[f[face, 2]]
    e0, e1, ep = b - a, c - a, p - a
    d00, d01, d11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    d20, d21 = (ep * e0).sum(-1), (ep * e1).sum(-1)
    den = np.where(np.abs(d00 * d11 - d01 * d01) < 1e-20, 1e-20, d00 * d11 - d01 * d01)
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    w = np.clip(np.stack([1 - w1 - w2, w1, w2], -1), 0.0, 1.0)
    return w / np.maximum(w.sum(-1, keepdims=True), 1e-12)


def _colour_at(mesh: dict, p: np.ndarray) -> np.ndarray:
    """sRGB base colour (N, 3) at the nearest point of the colour mesh to each of ``p`` (N, 3)."""
    import igl

    c = mesh["colour"]
    _, face, closest = igl.point_mesh_squared_distance(np.ascontiguousarray(p, dtype=np.float64), c["vertices"],
                                                       c["faces"])
    w = _barycentric(c["vertices"], c["faces"], face, closest)
    return linear_to_srgb((c["colors"][face] * w[..., None]).sum(1))


def outer_surface(mesh: dict, n: int, rng: np.random.Generator) -> dict:
    """``n`` area-uniform samples of the outer surface: points, outward normals and their triangles."""
    v, f = mesh["vertices"], mesh["faces"]
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    area = np.linalg.norm(cross, axis=-1)
    normal = cross / np.maximum(area, 1e-20)[:, None]
    keep_p, keep_n, keep_f = [], [], []
    have = 0
    for _ in range(8):
        m = n + n // 2
        face = rng.choice(len(f), m, p=area / area.sum())
        r1, r2 = np.sqrt(rng.random(m)), rng.random(m)
        p = (1 - r1)[:, None] * v[f[face, 0]] + (r1 * (1 - r2))[:, None] * v[f[face, 1]] \
            + (r1 * r2)[:, None] * v[f[face, 2]]
        nrm = normal[face]
        inside = enclosed(mesh, np.concatenate([p + OUTER_EPS * nrm, p - OUTER_EPS * nrm]))
        out_plus, out_minus = ~inside[:m], ~inside[m:]
        ok = out_plus != out_minus
        keep_p.append(p[ok])
        keep_n.append(np.where(out_plus[ok, None], nrm[ok], -nrm[ok]))
        keep_f.append(face[ok])
        have += int(ok.sum())
        if have >= n:
            break
    if have < n // 4:
        raise RuntimeError(f"only {have} of {n} surface samples on the outer surface")
    p, nrm, face = (np.concatenate(x) for x in (keep_p, keep_n, keep_f))
    pick = rng.choice(len(p), n, replace=len(p) < n)
    return {"points": p[pick], "normals": nrm[pick], "faces": face[pick]}


def signed_distance(mesh: dict, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SDF (> 0 outside; the distance to the nearest triangle, the sign from :func:`enclosed`), nearest face
    and nearest point of ``q``."""
    import igl

    q = np.ascontiguousarray(q, dtype=np.float64)
    d, face, closest, _ = igl.signed_distance(q, mesh["vertices"], mesh["faces"], igl.SIGNED_DISTANCE_TYPE_UNSIGNED)
    return np.where(enclosed(mesh, q), -np.abs(d), np.abs(d)), face, closest


def training_samples(mesh: dict, seed: int, n_points: int = POINTS) -> dict[str, np.ndarray]:
    """The ``_make_shape`` supervision of a canonical mesh with its colour mesh, as float16 arrays (see the
    module docstring)."""
    rng = np.random.default_rng([seed, 1])
    m = n_points // 4
    pool = outer_surface(mesh, 2 * m, rng)
    n_near = n_points // 2
    idx = rng.integers(0, len(pool["points"]), n_near)
    sigma = np.concatenate([np.full(n_near // 2, 0.01), np.full(n_near - n_near // 2, 0.04)])[:, None]
    near = pool["points"][idx] + rng.standard_normal((n_near, 3)) * sigma
    pts = np.concatenate([near, rng.random((n_points - n_near, 3)) * 2 - 1]).astype(np.float16)
    sdf, _, closest = signed_distance(mesh, pts.astype(np.float64))
    sidx = rng.integers(0, len(pool["points"]), m)
    sp = pool["points"][sidx].astype(np.float16)
    return {"points": pts, "sdf": sdf.astype(np.float16), "albedo": _colour_at(mesh, closest).astype(np.float16),
            "surface_points": sp,
            "surface_albedo": _colour_at(mesh, pool["points"][sidx]).astype(np.float16),
            "surface_normals": pool["normals"][sidx].astype(np.float16)}


def silhouettes(mesh: dict, seed: int, surface: np.ndarray) -> dict[str, np.ndarray]:
    """VIEWS silhouettes (pixel coverage, SUPERSAMPLE^2 ray casts) from the data generator's poses."""
    tree = _tree(mesh)
    from mathutils import Vector

    rng = np.random.default_rng(seed + 7_000_000)
    n, ss = VIEW_SIZE, SUPERSAMPLE
    fine = n * ss
    grid = (np.arange(fine) + 0.5)
    u, vv = np.meshgrid(grid, grid)  # row = image y (down), column = x
    c2w, focal, alpha = [], [], []
    for _ in range(VIEWS):
        az, el = rng.uniform(0, 360), rng.uniform(0, 45)
        mm, fill = rng.uniform(35, 60), rng.uniform(0.5, 0.9)
        f = mm / 36.0 * n
        m = convert.fit_camera(surface, az, el, f, n, fill)
        local = np.stack([(u - fine / 2) / (f * ss), -(vv - fine / 2) / (f * ss), -np.ones_like(u)], -1).reshape(-1, 3)
        dirs = local @ m[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        origin = Vector(m[:3, 3].tolist())
        hit = np.fromiter((tree.ray_cast(origin, Vector(d))[0] is not None for d in dirs.tolist()), bool, len(dirs))
        cover = hit.reshape(n, ss, n, ss).mean(axis=(1, 3))
        c2w.append(m)
        focal.append(f)
        alpha.append(np.round(cover * 255).astype(np.uint8))
    return {"cam2world": np.asarray(c2w, np.float32), "focal": np.asarray(focal, np.float32),
            "alpha": np.stack(alpha)}


def orient_parts(mesh: dict) -> dict:
    """Every connected part with a negative signed volume turned inside out (its triangles' order
    reversed): Infinigen builds some parts (an office chair's seat and back) with inward normals, where
    the winding number is -1 inside."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    v, f = mesh["vertices"], mesh["faces"]
    edges = sp.coo_matrix((np.ones(2 * len(f)), (np.r_[f[:, 0], f[:, 1]], np.r_[f[:, 1], f[:, 2]])),
                          shape=(len(v), len(v)))
    n, label = connected_components(edges, directed=False)
    part = label[f[:, 0]]
    volume = np.bincount(part, np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])), n)
    flip = volume[part] < 0
    order = np.where(flip[:, None], [0, 2, 1], [0, 1, 2])
    return {**mesh, "faces": np.take_along_axis(f, order, 1)}


def canonical(mesh: dict, family: str) -> tuple[dict, float]:
    """The mesh in the canonical frame, its parts oriented outward; and its metric size."""
    m, metric = convert.canonical_transform(mesh["vertices"], convert.FRONT_YAW_DEG[family])
    colour = {**mesh["colour"], "vertices": convert.apply(m, mesh["colour"]["vertices"])}
    return orient_parts({**mesh, "vertices": convert.apply(m, mesh["vertices"]), "colour": colour}), metric


def make_chair(out: Path, k: int, threads: int) -> dict:
    """Build, bake, sample and write training chair ``k``; returns its record."""
    family, seed = convert.training_seed(k)
    t0, c0 = time.time(), time.process_time()
    mesh, metric = canonical(build_baked(family, seed, threads), family)
    t_bake = time.time() - t0
    data = training_samples(mesh, seed)
    t_samples = time.time() - t0 - t_bake
    data.update(silhouettes(mesh, seed, data["surface_points"].astype(np.float64)))
    path = out / f"{family}_{seed}.npz"
    tmp = out / f".{family}_{seed}.tmp.npz"
    np.savez_compressed(tmp, **data, seed=np.int64(seed), family=np.str_(family), metric_size_m=np.float32(metric))
    os.replace(tmp, path)
    return {"k": k, "family": family, "seed": seed, "faces": int(len(mesh["faces"])), "metric_size_m": round(metric, 4),
            "seconds_build_bake": round(t_bake, 2), "seconds_samples": round(t_samples, 2),
            "seconds": round(time.time() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2),
            "load": round(os.getloadavg()[0], 1), "bytes": path.stat().st_size}


def validate(out: Path, chairs: int, threads: int, points: int = 4000, resolution: int = 80) -> dict:
    """The SDF of the first ``chairs`` training chairs, on ``points`` of the training distribution:

    - sign against two other tests: visibility along 100 random directions instead of the 26 fixed
      ones, and the fast generalized winding number (libigl, > 0.5 inside); the share that disagrees
      (all points, and those within 0.05 of the surface);
    - zero level set: marching cubes of the SDF on a ``resolution``^3 grid over [-1, 1]^3 against
      the outer surface samples, Chamfer-L1 (mean of both directions); the sampling floor is the
      Chamfer between two independent sets of outer surface samples."""
    import igl
    from scipy.spatial import cKDTree
    from skimage.measure import marching_cubes

    rows = []
    for k in range(chairs):
        family, seed = convert.training_seed(k)
        mesh, _ = canonical(build_baked(family, seed, threads), family)
        q = training_samples(mesh, seed, points)["points"].astype(np.float64)
        sdf = signed_distance(mesh, q)[0]
        near = np.abs(sdf) < 0.05
        wrong_rays = (sdf < 0) != enclosed(mesh, q, _directions(100, seed))
        wrong_wn = (sdf < 0) != (igl.fast_winding_number(mesh["vertices"], mesh["faces"], q) > 0.5)
        ax = np.linspace(-1, 1, resolution)
        g = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
        vol = signed_distance(mesh, g)[0].reshape(resolution, resolution, resolution)
        mv = marching_cubes(vol, 0.0, spacing=(ax[1] - ax[0],) * 3)[0] - 1.0
        rng = np.random.default_rng(seed)
        a, b = (outer_surface(mesh, 20000, rng)["points"] for _ in range(2))

        def chamfer(x, y):
            return float(cKDTree(y).query(x)[0].mean() + cKDTree(x).query(y)[0].mean()) / 2

        mc = mv[rng.choice(len(mv), min(len(mv), 20000), replace=False)]
        rows.append({"k": k, "family": family, "seed": seed, "faces": int(len(mesh["faces"])),
                     "inside_share": round(float((sdf < 0).mean()), 4),
                     "wrong_sign_rays100": round(float(wrong_rays.mean()), 4),
                     "wrong_sign_rays100_near": round(float(wrong_rays[near].mean()), 4),
                     "differs_winding": round(float(wrong_wn.mean()), 4),
                     "differs_winding_near": round(float(wrong_wn[near].mean()), 4),
                     "chamfer_mc": round(chamfer(mc, a), 5), "chamfer_floor": round(chamfer(a, b), 5),
                     "grid_step": round(float(ax[1] - ax[0]), 5)})
        print(json.dumps(rows[-1]), flush=True)
    report = {"points": points, "resolution": resolution, "chairs": rows,
              **{f"mean_{key}": float(np.mean([r[key] for r in rows]))
                 for key in ("wrong_sign_rays100", "wrong_sign_rays100_near", "differs_winding", "chamfer_mc",
                             "chamfer_floor")}}
    (out / "validate.json").write_text(json.dumps(report, indent=1))
    return report


FIXTURE_POINTS = 256


def write_fixture(path: Path, source: Path) -> None:
    """A few-KB fixture in the training format from the decimated test chair ``source`` (.npz + .json of
    make_chairs.write_fixture): FIXTURE_POINTS points, white albedo, silhouettes as in training."""
    src = np.load(source.with_suffix(".npz"))
    meta = json.loads(source.with_suffix(".json").read_text())
    f = src["faces"].astype(np.int64)
    v = convert.apply(np.array(meta["canonical_transform"]), src["vertices"])
    colour = {"vertices": v, "faces": f, "colors": np.full((len(f), 3, 3), 0.5, np.float32)}
    mesh = orient_parts({"vertices": v, "faces": f, "colour": colour})
    seed = convert.training_seed(0)[1]
    data = training_samples(mesh, seed, FIXTURE_POINTS)
    data.update(silhouettes(mesh, seed, data["surface_points"].astype(np.float64)))
    np.savez_compressed(path, **data, seed=np.int64(seed), family=np.str_(meta["family"]),
                        metric_size_m=np.float32(meta["metric_size_m"]))
    print(f"{path}: {path.stat().st_size} bytes")


def _log(path: Path, row: dict) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/infinigen_train")
    ap.add_argument("--chairs", type=int, default=1000, help="training chairs 0..N-1 (a rerun skips those done)")
    ap.add_argument("--first", type=int, default=0, help="start at training chair K")
    ap.add_argument("--workers", type=int, default=1, help="processes (chair k goes to process k mod W)")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help="Cycles threads per process (baking)")
    ap.add_argument("--validate", type=int, default=0, metavar="N", help="only check the SDF of chairs 0..N-1")
    ap.add_argument("--fixture", default=None, help="only write the test fixture (PATH.npz)")
    args = ap.parse_args(argv)
    if args.fixture:
        write_fixture(Path(args.fixture), ROOT / "tests" / "fixtures" / "infinigen" / "chair_7")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.validate:
        validate(out, args.validate, args.threads)
        return 0
    if args.worker is None and args.workers > 1:
        procs = [subprocess.Popen([sys.executable, __file__, "--out", str(out), "--chairs", str(args.chairs),
                                   "--first", str(args.first), "--workers", str(args.workers), "--worker", str(w),
                                   "--threads", str(args.threads)]) for w in range(args.workers)]
        return max(p.wait() for p in procs)
    t0, done = time.time(), 0
    for k in range(args.first, args.chairs):
        if args.worker is not None and k % args.workers != args.worker:
            continue
        family, seed = convert.training_seed(k)
        if (out / f"{family}_{seed}.npz").exists():
            continue
        try:
            rec = make_chair(out, k, args.threads)
        except Exception as exc:  # an Infinigen failure costs one chair, not the run
            _log(out / "failed.jsonl", {"k": k, "family": family, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})
            print(f"chair {k} ({family} {seed}) failed: {exc}", flush=True)
            traceback.print_exc()
            continue
        done += 1
        _log(out / "chairs.jsonl", rec)
        print(f"chair {k} {family}_{seed}: {rec['faces']} triangles, {rec['seconds']:.1f}s "
              f"(bake {rec['seconds_build_bake']:.1f}s), {rec['bytes'] / 1e3:.0f} kB ({done} this run, "
              f"{time.time() - t0:.0f}s)", flush=True)
    print(f"{done} chairs written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
