"""Reconstruct many photos headless; per photo save a .blend, the mesh, the JSON and optional renders.

    blender -b --python scripts/batch_reconstruct.py -- --input photos/ --out out/ [--steps 10]
    python scripts/batch_reconstruct.py --input a.png b.jpg --out out/          (with the bpy module)

Options: --model NAME  --steps N  --device auto|cpu|cuda|mps  --mesh-resolution R  --format glb|ply|obj
--seed S  --focal-mm F  --render (also write <stem>_overlay.png and <stem>_side.png, Cycles on the CPU).

For every input: a fresh empty scene, the extension's operator (synchronous in background mode),
then ``<out>/<stem>.blend`` (mesh, camera, photo packed as the camera background), ``<stem>.<format>``
(written by the core; Blender's glTF exporter if the core did not), ``<stem>.json`` (the core's
per-image JSON). ``<out>/summary.json`` lists every input with ok/error, paths and timings. One
line per image is printed; bad inputs are reported and skipped; the exit status is 1 if any failed.

The extension is imported from this file's parent folder (the repository root or an installed
extension) under the package name ``shape_from_image`` and registered for the run, unless Blender
already has it enabled.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "shape_from_image"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr"}


def script_args(argv: list[str] | None = None) -> list[str]:
    """The script's own arguments: after ``--`` when present (Blender), else argv[1:]."""
    argv = sys.argv if argv is None else argv
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_reconstruct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", nargs="+", required=True, help="photo files and/or folders of photos")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default="chairs", help="model name or .safetensors path")
    parser.add_argument("--steps", type=int, default=10, help="inversion steps (0 = encoder only)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--mesh-resolution", type=int, default=128)
    parser.add_argument("--format", default="glb", choices=("glb", "ply", "obj"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--focal-mm", type=float, default=0.0,
                        help="35 mm-equivalent focal length of the photos (as EXIF states it); 0 (default): each "
                             "photo's EXIF value, else the model's default")
    parser.add_argument("--render", action="store_true", help="also render <stem>_overlay.png and <stem>_side.png")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples for --render")
    return parser.parse_args(args)


def find_images(inputs: list[str]) -> list[str]:
    """Files as given; folders expanded to their image files (sorted, masks '*_mask.*' left out)."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += [str(p.resolve()) for p in sorted(path.iterdir())
                      if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith("_mask")]
        else:
            found.append(str(path.resolve()) if path.exists() else str(path))
    return found


def load_extension():
    """The extension module, registered: one Blender already has, or this folder's as 'shape_from_image'."""
    import bpy

    for name, module in list(sys.modules.items()):
        is_ours = name == PACKAGE or name.endswith("." + PACKAGE)
        if is_ours and callable(getattr(module, "is_registered", None)) and module.is_registered():
            return module, False
    if getattr(bpy.types, "SHAPE_FROM_IMAGE_OT_reconstruct", None) is not None:
        raise SystemExit("another copy of Shape from Image is registered; disable it or run without it")
    module = sys.modules.get(PACKAGE)
    if module is None:
        spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    module.register()
    return module, True


def _unique_stem(path: str, used: set[str]) -> str:
    stem = Path(path).stem or "image"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def _export_mesh_with_blender(obj, path: Path, fmt: str) -> None:
    import bpy

    for other in bpy.context.view_layer.objects:
        other.select_set(other == obj)
    bpy.context.view_layer.objects.active = obj
    if fmt == "glb":
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True,
                                  export_cameras=False, export_vertex_color="ACTIVE")
    elif fmt == "ply":
        bpy.ops.wm.ply_export(filepath=str(path), export_selected_objects=True, forward_axis="Y", up_axis="Z",
                              export_colors="SRGB")
    else:
        bpy.ops.wm.obj_export(filepath=str(path), export_selected_objects=True, export_colors=True)


def load_renders():
    """The Cycles render helpers beside this script (``batch_renders.py``), as a module."""
    name = "shape_from_image_batch_renders"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "batch_renders.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _render_views(ext_name: str, scene, mesh_obj, photo: str, out: Path, stem: str, samples: int) -> dict:
    render = load_renders()
    pixels = importlib.import_module(f"{ext_name}.operators.inputs")  # read_rgba / write_rgba
    render.use_cycles(scene, samples=samples)
    render.white_world(scene)
    paths = {}
    shot_path = out / f"{stem}_render.png"
    shot = pixels.read_rgba(render.render_still(scene, scene.camera, str(shot_path)))
    overlay = render.composite_over(pixels.read_rgba(photo), shot, opacity=0.7)
    paths["overlay"] = pixels.write_rgba(str(out / f"{stem}_overlay.png"), overlay)
    shot_path.unlink(missing_ok=True)
    side = render.side_camera(scene, mesh_obj, scene.camera)
    try:
        paths["side"] = render.render_still(scene, side, str(out / f"{stem}_side.png"))
    finally:
        render.remove_object(side)
    return paths


def process(ext, image: str, stem: str, out: Path, opts: argparse.Namespace) -> dict:
    """One image: fresh scene, operator, files. Returns its summary entry (never raises)."""
    import bpy

    runner = importlib.import_module(f"{ext.__name__}.operators.runner")
    entry: dict = {"image": image, "ok": False}
    t0 = time.perf_counter()
    # a fresh empty file; unlike read_factory_settings this keeps the user's preferences, so an
    # extension enabled in Blender stays enabled
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    runner.set_last_outcome(None)
    try:
        status = bpy.ops.shape_from_image.reconstruct(
            filepath=image, model=opts.model, steps=opts.steps, device=opts.device.upper(),
            mesh_resolution=opts.mesh_resolution, seed=opts.seed, out_dir=str(out), out_format=opts.format,
            focal_mm=opts.focal_mm)
    except (RuntimeError, TypeError, ValueError) as err:  # error reports arrive as RuntimeError
        entry["error"] = str(err).strip().removeprefix("Error: ").strip()
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        return entry
    outcome = runner.last_outcome()
    if status != {"FINISHED"} or outcome is None or not outcome.ok:
        entry["error"] = outcome.message if outcome is not None else f"{image}: the operator returned {status}"
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        return entry
    try:
        result = outcome.result
        scene = bpy.context.scene
        mesh_obj = bpy.context.view_layer.objects.active
        files: dict = {}
        mesh_path = Path(result.mesh_path) if getattr(result, "mesh_path", None) else None
        wanted_mesh = out / f"{stem}.{opts.format}"
        if mesh_path is not None and mesh_path.is_file():
            if mesh_path != wanted_mesh:
                os.replace(mesh_path, wanted_mesh)
        else:
            _export_mesh_with_blender(mesh_obj, wanted_mesh, opts.format)
        files["mesh"] = str(wanted_mesh)
        data = result.to_json()
        data.setdefault("mesh", {})["path"] = wanted_mesh.name
        json_path = out / f"{stem}.json"
        core_json = Path(result.json_path) if getattr(result, "json_path", None) else None
        if core_json is not None and core_json.is_file() and core_json == json_path and mesh_path == wanted_mesh:
            data = json.loads(core_json.read_text())  # the core's own file, as `python -m core` writes it
        else:
            if core_json is not None and core_json != json_path:
                core_json.unlink(missing_ok=True)
            json_path.write_text(json.dumps(data, indent=2))
        files["json"] = str(json_path)
        for image_block in bpy.data.images:
            if image_block.source == "FILE" and image_block.packed_file is None and image_block.filepath:
                image_block.pack()
        blend = out / f"{stem}.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True, compress=True)
        files["blend"] = str(blend)
        if opts.render:
            files.update(_render_views(ext.__name__, scene, mesh_obj, image, out, stem, opts.samples))
        entry.update(ok=True, files=files, timings_s=data.get("timings_s", {}),
                     vertices=len(mesh_obj.data.vertices), faces=len(mesh_obj.data.polygons))
    except Exception as err:  # noqa: BLE001 - one bad image must not stop the batch
        entry["error"] = f"{image}: writing the outputs failed ({type(err).__name__}: {err})"
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    return entry


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(script_args(argv))
    out = Path(opts.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    images = find_images(opts.input)
    if not images:
        print(f"no images found in {' '.join(opts.input)}", file=sys.stderr)
        return 2
    ext, registered_here = load_extension()
    entries, used = [], set()
    try:
        for image in images:
            stem = _unique_stem(image, used)
            entry = process(ext, image, stem, out, opts)
            entries.append(entry)
            if entry["ok"]:
                print(f"ok    {image} -> {entry['files']['blend']} ({entry['seconds']:.1f} s)", flush=True)
            else:
                print(f"FAIL  {entry['error']}", flush=True)
    finally:
        if registered_here:
            ext.unregister()
    failed = sum(not e["ok"] for e in entries)
    summary = {"out": str(out), "images": entries, "ok": len(entries) - failed, "failed": failed,
               "options": {k: getattr(opts, k) for k in ("model", "steps", "device", "mesh_resolution",
                                                         "format", "seed", "focal_mm", "render")}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{len(entries) - failed} ok, {failed} failed; summary: {out / 'summary.json'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
