"""Reconstruct many photos headless; per photo save a .blend, the mesh, the JSON and optional renders.

    blender -b --python scripts/batch_reconstruct.py -- --input photos/ --out out/ [--steps 10]
    python scripts/batch_reconstruct.py --input a.png b.jpg --out out/          (with the bpy module)
    python scripts/batch_reconstruct.py --joint --input objects/ --out out/     (objects/<name>/*.png)

Options: --model NAME  --steps N  --device auto|cpu|cuda|mps  --mesh-resolution R  --format glb|ply|obj
--seed S  --focal-mm F  --height-m H  --texture-size T  --faces N  --render (also write <stem>_overlay.png, <stem>_side.png and <stem>_back.png: the view through the
recovered camera over the photo, and the mesh seen from 90 and 180 deg around it; Cycles on the CPU).

For every input: a fresh empty scene, the extension's operator (synchronous in background mode),
then ``<out>/<stem>.<format>`` and ``<stem>.json`` (the core's mesh and per-image JSON, as
``python -m core`` writes them) and ``<out>/<stem>.blend`` (mesh, camera, photo packed as the camera
background). Two inputs with the same stem get ``<stem>_2`` ... (``core.validate.output_stems``);
``<out>/summary.json`` lists every input with ok/error and the files actually written. One line per
image is printed; bad inputs are reported and skipped, and a failed input leaves no files behind.

The options and the output folder are checked first, with the rules and messages of the command line
(``core.validate``): a refused option prints one ``error: ...`` line and exits with status 1 before
any image is read. Otherwise the exit status is 1 if any image failed, else 0. Folders are scanned
for the formats the core reads (PNG, JPEG, WebP, TIFF, BMP).

``--joint``: several photos of one object. Each subfolder of an --input folder is one object (its
photos are the views), and so are the photos directly in an --input folder and the photo files named on
the command line. Per object, named after its folder (or its first photo): ``<name>.blend`` (one mesh,
one camera per placed photo, each with its photo as background), ``<name>.<format>`` and ``<name>.json``
(the object's mesh and every view's camera); ``--render``: ``<name>_<photo stem>_overlay.png`` through each
placed photo's camera, ``<name>_side.png`` and ``<name>_back.png``. summary.json lists every object with its photos; photos
that could not be placed are named there (``not_placed``) and printed, but only a failed object makes
the exit status 1.

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
RENDER_SUFFIXES = ("_overlay.png", "_render.png", "_side.png", "_back.png", ".blend")
"""the longest names written per input beside the core's <stem>.<format> and <stem>.json."""


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
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--mesh-resolution", type=int, default=128, help="marching-cubes grid samples per side, 16-512")
    parser.add_argument("--format", default="glb", choices=("glb", "ply", "obj"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the renderer's random samples, 0 to 2147483647")
    parser.add_argument("--focal-mm", type=float, default=0.0,
                        help="35 mm-equivalent focal length of the photos (as EXIF states it); 0 (default): each "
                             "photo's EXIF value, else the model's default")
    parser.add_argument("--height-m", type=float, default=0.0,
                        help="the objects' real height in metres; 0 (default): the model's typical size")
    parser.add_argument("--texture-size", type=int, default=1024,
                        help="side of the texture baked from the photo, 64-4096; 0: vertex colours only")
    parser.add_argument("--faces", type=int, default=0, help="decimate to about N faces (0: keep them all)")
    parser.add_argument("--render", action="store_true",
                        help="also render <stem>_overlay.png, <stem>_side.png and <stem>_back.png")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples for --render")
    parser.add_argument("--joint", action="store_true",
                        help="several photos of one object: each subfolder of an --input folder is one object "
                             "(the photos directly in a folder, and the photo files given, too)")
    return parser.parse_args(args)


def find_images(inputs: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """Files as given; folders expanded to their entries ending in ``suffixes`` (sorted, masks '*_mask.*'
    left out). Nothing is opened here: the operator checks every entry (a named pipe is refused there)."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if os.path.isdir(item):  # False for any name that cannot be looked up (Path.is_dir raises for some)
            try:
                entries = sorted(path.iterdir())
            except OSError as err:
                raise SystemExit(f"error: {item}: cannot list the folder ({err.strerror or err})") from None
            found += [str(p.absolute()) for p in entries
                      if p.suffix.lower() in suffixes and not p.stem.endswith("_mask")]
        else:
            found.append(str(path.absolute()))
    return found


def _folder_photos(folder: Path, suffixes: tuple[str, ...]) -> tuple[list[str], list[Path]]:
    """(photos, subfolders) directly in ``folder``, sorted; masks '*_mask.*' left out."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise SystemExit(f"error: {folder}: cannot list the folder ({err.strerror or err})") from None
    photos = [str(p.absolute()) for p in entries
              if p.suffix.lower() in suffixes and not p.stem.endswith("_mask") and not os.path.isdir(p)]
    return photos, [p for p in entries if os.path.isdir(p)]


def find_objects(inputs: list[str], suffixes: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``--joint``: (name, photos) per object, in input order. A folder's photos are one object named after
    the folder, and each of its subfolders holding photos is one object named after the subfolder; the
    photo files given are one object named after the first of them."""
    objects: list[tuple[str, list[str]]] = []
    loose: list[str] = []
    for item in inputs:
        path = Path(item)
        if not os.path.isdir(item):
            loose.append(str(path.absolute()))
            continue
        photos, subfolders = _folder_photos(path, suffixes)
        if photos:
            objects.append((path.absolute().name or "object", photos))
        for sub in subfolders:
            sub_photos, _ = _folder_photos(sub, suffixes)
            if sub_photos:
                objects.append((sub.name, sub_photos))
    if loose:
        objects.insert(0, (Path(loose[0]).stem or "object", loose))
    return objects


def check_options(validate, opts: argparse.Namespace) -> Path:
    """The command line's rules (``core.validate``) for every option; returns the output folder, created.

    Raises ReconstructionError with the command line's message. ``--focal-mm 0`` keeps its meaning
    here (EXIF, else the model's default: the operator's 0)."""
    opts.steps = validate.check_steps(opts.steps)
    opts.mesh_resolution = validate.check_mesh_resolution(opts.mesh_resolution)
    opts.seed = validate.check_seed(opts.seed)
    opts.focal_mm = validate.check_focal_mm(opts.focal_mm) or 0.0
    opts.height_m = 0.0 if opts.height_m == 0 else validate.check_height_m(opts.height_m)
    opts.texture_size = validate.check_texture_size(opts.texture_size)
    opts.faces = 0 if opts.faces == 0 else validate.check_faces(opts.faces)
    opts.device = validate.check_device(opts.device)
    if opts.device.startswith("cuda:") and opts.device != "cuda:0":
        raise validate.ReconstructionError(f"device '{opts.device}': Blender's operator runs on the first CUDA GPU "
                                           "(cuda); choose another one with CUDA_VISIBLE_DEVICES")
    opts.device = opts.device.partition(":")[0]
    opts.format = validate.check_format(opts.format)
    return validate.check_out_dir(opts.out)


def load_extension():
    """The extension module, registered: one Blender already has, or this folder's as 'shape_from_image'."""
    import bpy

    for name, module in sys.modules.copy().items():  # a copy: a background thread may be importing
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
    paths.update(_orbit_views(render, scene, mesh_obj, scene.camera, out, stem))
    return paths


ORBITS = (("side", 90.0), ("back", 180.0))
"""the views around the mesh that ``--render`` adds: name and turn about the vertical axis from the camera."""


def _orbit_views(render, scene, mesh_obj, camera, out: Path, stem: str) -> dict:
    """``<stem>_side.png`` and ``<stem>_back.png``: the mesh from ``camera`` turned by :data:`ORBITS` about
    the vertical through its centre (what the photo did not show)."""
    paths = {}
    for name, angle in ORBITS:
        view = render.side_camera(scene, mesh_obj, camera, angle)
        try:
            paths[name] = render.render_still(scene, view, str(out / f"{stem}_{name}.png"))
        finally:
            render.remove_object(view)
    return paths


def _run_operator(ext, entry: dict, label: str, **operator_args):
    """A fresh empty scene and the Reconstruct operator; its outcome, or None after writing the reason
    into ``entry``."""
    import bpy

    runner = importlib.import_module(f"{ext.__name__}.operators.runner")
    # a fresh empty file; unlike read_factory_settings this keeps the user's preferences, so an
    # extension enabled in Blender stays enabled
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    runner.set_last_outcome(None)
    try:
        status = bpy.ops.shape_from_image.reconstruct(**operator_args)
    except (RuntimeError, TypeError, ValueError) as err:  # error reports arrive as RuntimeError
        entry["error"] = str(err).strip().removeprefix("Error: ").strip()
        return None
    outcome = runner.last_outcome()
    if status != {"FINISHED"} or outcome is None or not outcome.ok:
        entry["error"] = outcome.message if outcome is not None else f"{label}: the operator returned {status}"
        return None
    return outcome


def _save_outputs(ext, result, out: Path, fmt: str, stem: str, files: dict) -> None:
    """The core's mesh and JSON under this batch's unique stem, and the .blend with its photos packed;
    ``files`` gets each path as it is written (so a failure can remove them)."""
    import bpy

    export = importlib.import_module(f"{ext.__name__}.core.io.export")
    export.write_result(result, out, fmt, stem)  # the JSON names the mesh actually written
    files["mesh"], files["json"] = result.mesh_path, result.json_path
    for image_block in bpy.data.images:
        if image_block.source == "FILE" and image_block.packed_file is None and image_block.filepath:
            image_block.pack()
    blend = out / f"{stem}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True, compress=True)
    files["blend"] = str(blend)


def _fail_outputs(entry: dict, err: Exception, label: str, files: dict) -> None:
    """Record why writing failed and remove what was written: no half result."""
    reason = str(err) if hasattr(err, "reason") else f"{label}: writing the outputs failed ({type(err).__name__}: {err})"
    entry["error"] = reason.splitlines()[0] if reason else type(err).__name__
    for path in files.values():
        Path(path).unlink(missing_ok=True)


def _mesh_counts(mesh_obj, result) -> dict:
    return {"timings_s": dict(result.to_json().get("timings_s", {})), "vertices": len(mesh_obj.data.vertices),
            "faces": len(mesh_obj.data.polygons)}


def process(ext, image: str, stem: str, out: Path, opts: argparse.Namespace) -> dict:
    """One image: fresh scene, operator, files. Returns its summary entry (never raises); a failed
    image leaves none of its files behind."""
    import bpy

    entry: dict = {"image": image, "ok": False}
    t0 = time.perf_counter()
    outcome = _run_operator(ext, entry, image, filepath=image, model=opts.model, steps=opts.steps,
                            device=opts.device.upper(), mesh_resolution=opts.mesh_resolution, seed=opts.seed,
                            focal_mm=opts.focal_mm, height_m=opts.height_m, texture_size=opts.texture_size,
                            faces=opts.faces)
    files: dict = {}
    if outcome is not None:
        try:
            scene, mesh_obj = bpy.context.scene, bpy.context.view_layer.objects.active
            _save_outputs(ext, outcome.result, out, opts.format, stem, files)
            if opts.render:
                files.update(_render_views(ext.__name__, scene, mesh_obj, image, out, stem, opts.samples))
            entry.update(ok=True, files=files, **_mesh_counts(mesh_obj, outcome.result))
        except Exception as err:  # noqa: BLE001 - one bad image must not stop the batch
            _fail_outputs(entry, err, image, files)
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    return entry


def _render_object_views(ext_name: str, scene, mesh_obj, cameras: list, out: Path, stem: str,
                         samples: int) -> dict:
    """``--render`` for an object: the render through each placed photo's camera over that photo, at the
    photo's resolution, and the side and back views. Keys ``overlay:<photo stem>``, ``side`` and ``back``."""
    render = load_renders()
    pixels = importlib.import_module(f"{ext_name}.operators.inputs")
    scene_build = importlib.import_module(f"{ext_name}.operators.scene")
    render.use_cycles(scene, samples=samples)
    render.white_world(scene)
    paths = {}
    first = scene.camera
    for cam in cameras:
        photo = cam.get(scene_build.PHOTO)
        view = Path(photo).stem
        scene_build.use_camera(scene, cam)
        shot_path = out / f"{stem}_{view}_render.png"
        shot = pixels.read_rgba(render.render_still(scene, cam, str(shot_path)))
        overlay = render.composite_over(pixels.read_rgba(photo), shot, opacity=0.7)
        paths[f"overlay:{view}"] = pixels.write_rgba(str(out / f"{stem}_{view}_overlay.png"), overlay)
        shot_path.unlink(missing_ok=True)
    if first is not None:
        scene_build.use_camera(scene, first)
        paths.update(_orbit_views(render, scene, mesh_obj, first, out, stem))
    return paths


def process_object(ext, name: str, photos: list[str], stem: str, out: Path, opts: argparse.Namespace) -> dict:
    """``--joint``: one object seen in ``photos``: fresh scene, operator, files. Returns its summary entry
    (never raises); a failed object leaves none of its files behind."""
    import bpy

    scene_build = importlib.import_module(f"{ext.__name__}.operators.scene")
    entry: dict = {"object": name, "images": list(photos), "ok": False}
    t0 = time.perf_counter()
    outcome = _run_operator(ext, entry, photos[0], files=[{"name": photo} for photo in photos], directory="",
                            joint=True, model=opts.model, steps=opts.steps, device=opts.device.upper(),
                            mesh_resolution=opts.mesh_resolution, seed=opts.seed, focal_mm=opts.focal_mm,
                            height_m=opts.height_m, texture_size=opts.texture_size, faces=opts.faces)
    files: dict = {}
    if outcome is not None:
        try:
            result = outcome.result
            scene, mesh_obj = bpy.context.scene, bpy.context.view_layer.objects.active
            views = list(getattr(result, "views", None) or [result])  # one photo: a plain result
            cameras = {cam.get(scene_build.PHOTO): cam for cam in scene_build.object_cameras(mesh_obj)}
            entry["views"] = [{"image": photo, "ok": bool(view.ok),
                               **({"camera": cameras[photo].name} if photo in cameras else {}),
                               **({} if view.ok else {"error": view.error or f"{photo}: could not be placed"})}
                              for photo, view in zip(photos, views)]
            _save_outputs(ext, result, out, opts.format, stem, files)
            if opts.render:
                placed = [cameras[v["image"]] for v in entry["views"] if v.get("camera")]
                files.update(_render_object_views(ext.__name__, scene, mesh_obj, placed, out, stem, opts.samples))
            entry.update(ok=True, files=files, placed=sum(v["ok"] for v in entry["views"]),
                         not_placed=[v["error"] for v in entry["views"] if not v["ok"]],
                         **_mesh_counts(mesh_obj, result))
        except Exception as err:  # noqa: BLE001 - one bad object must not stop the batch
            _fail_outputs(entry, err, photos[0], files)
            entry.pop("views", None)
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    return entry


def _write_summary(path: Path, summary: dict) -> None:
    """summary.json, replaced atomically (a reader never sees half of it)."""
    tmp = path.with_name(f".summary.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(script_args(argv))
    ext, registered_here = load_extension()
    try:
        return _run(ext, opts)
    finally:
        if registered_here:
            ext.unregister()


def _run(ext, opts: argparse.Namespace) -> int:
    validate = importlib.import_module(f"{ext.__name__}.core.validate")
    try:
        out = check_options(validate, opts).resolve()
    except validate.ReconstructionError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    if opts.joint:
        return _run_joint(ext, validate, out, opts)
    images = find_images(opts.input, validate.IMAGE_SUFFIXES)
    if not images:
        print(f"error: no images found in {' '.join(opts.input)} (looked for "
              f"{', '.join(validate.IMAGE_SUFFIXES)})", file=sys.stderr, flush=True)
        return 1
    stems = validate.output_stems(images, (f".{opts.format}", ".json", *RENDER_SUFFIXES), str(out))
    entries = []
    for image, stem in zip(images, stems):
        entry = process(ext, image, stem, out, opts)
        entries.append(entry)
        if entry["ok"]:
            print(f"ok    {image} -> {entry['files']['blend']} ({entry['seconds']:.1f} s)", flush=True)
        else:
            print(f"FAIL  {entry['error']}", flush=True)
    return _finish(out, "images", entries, opts, "")


def _finish(out: Path, key: str, entries: list[dict], opts: argparse.Namespace, noun: str) -> int:
    """Write ``summary.json`` (``entries`` under ``key``), print the tally; the exit status."""
    failed = sum(not e["ok"] for e in entries)
    summary = {"out": str(out), key: entries, "ok": len(entries) - failed, "failed": failed,
               "options": _summary_options(opts)}
    _write_summary(out / "summary.json", summary)
    print(f"{len(entries) - failed} {noun}ok, {failed} failed; summary: {out / 'summary.json'}", flush=True)
    return 1 if failed else 0


def _summary_options(opts: argparse.Namespace) -> dict:
    return {k: getattr(opts, k) for k in ("model", "steps", "device", "mesh_resolution", "format", "seed",
                                          "focal_mm", "height_m", "texture_size", "faces", "render", "joint")}


def _run_joint(ext, validate, out: Path, opts: argparse.Namespace) -> int:
    """``--joint``: one reconstruction per object (folder of photos)."""
    objects = find_objects(opts.input, validate.IMAGE_SUFFIXES)
    if not objects:
        print(f"error: no images found in {' '.join(opts.input)} (looked for "
              f"{', '.join(validate.IMAGE_SUFFIXES)})", file=sys.stderr, flush=True)
        return 1
    every_photo = [photo for _, photos in objects for photo in photos]
    stems = validate.output_stems([f"{name}.object" for name, _ in objects],
                                  (f".{opts.format}", ".json", *RENDER_SUFFIXES), str(out), keep=every_photo)
    entries = []
    for (name, photos), stem in zip(objects, stems):
        entry = process_object(ext, name, photos, stem, out, opts)
        entries.append(entry)
        if entry["ok"]:
            print(f"ok    {name}: {entry['placed']} of {len(photos)} photos placed -> {entry['files']['blend']} "
                  f"({entry['seconds']:.1f} s)", flush=True)
            for message in entry["not_placed"]:
                print(f"      not placed: {message}", flush=True)
        else:
            print(f"FAIL  {entry['error']}", flush=True)
    return _finish(out, "objects", entries, opts, "objects ")


def exit_process(code) -> None:
    """``sys.exit(code)``, except under the bpy 4.2 Python module (not Blender itself): that one crashes
    while the process exits once an add-on with a dynamic enum was registered (status -11 instead of
    ``code``), so there the process ends after flushing its output, without Python's final cleanup."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and not bpy.app.binary_path and tuple(bpy.app.version) < (4, 3, 0):
        if isinstance(code, str):
            print(code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 0 if code is None else 1)
    sys.exit(code)


if __name__ == "__main__":
    try:
        status = main()
    except SystemExit as stop:
        status = stop.code
    exit_process(status)
