"""Reconstruct many photos headless; per photo save a .blend, the mesh, the JSON and optional renders.

    blender -b --python scripts/batch_reconstruct.py -- --input photos/ --out out/ [--steps 10]
    python scripts/batch_reconstruct.py --input a.png b.jpg --out out/          (with the bpy module)
    python scripts/batch_reconstruct.py --joint --input objects/ --out out/     (objects/<name>/*.png)

Options: every option of ``python -m core reconstruct`` with its name, default and meaning (--model NAME
--steps N --device D --mesh-resolution R --format glb|ply|obj --seed S --focal-mm F --height-m H
--texture-size T --faces N ...: made from ``core.config.ReconstructOptions``), and --render (also write
<stem>_overlay.png, <stem>_side.png and <stem>_back.png, Cycles on the CPU).

For every input, as a library user would: a fresh empty scene, the core (``core.reconstruct``, or
``core.joint.reconstruct_object``) and the extension's scene builder (``operators.scene.build_result`` /
``build_object``), then ``<out>/<stem>.<format>`` and ``<stem>.json`` (the core's mesh and per-image JSON, as
``python -m core`` writes them) and ``<out>/<stem>.blend`` (mesh, camera, photo packed as the camera
background). Two inputs with the same stem get ``<stem>_2`` ... (``core.validate.output_stems``);
``<out>/summary.json`` lists every input with ok/error and the files actually written. One line per
image is printed; bad inputs are reported and skipped, and a failed input leaves no files behind.

The options (one ``ReconstructOptions``) and the output folder are checked first, with the rules and
messages of the command line (``core.validate``): a refused option prints one ``error: ...`` line and exits with status 1 before
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
import dataclasses
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


def parse_args(args: list[str], ext=None) -> argparse.Namespace:
    """The script's arguments; the reconstruction options are the command line's (``core.cli``) of the
    extension ``ext`` (default: :func:`load_extension`'s)."""
    cli = importlib.import_module(f"{(ext or load_extension()[0]).__name__}.core.cli")
    parser = argparse.ArgumentParser(prog="batch_reconstruct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", nargs="+", required=True, help="photo files and/or folders of photos")
    cli.add_option_arguments(parser)
    parser.add_argument("--render", action="store_true", help="also render <stem>_overlay.png, <stem>_side.png and <stem>_back.png")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples for --render")
    parser.add_argument("--joint", action="store_true",
                        help="several photos of one object: each subfolder of an --input folder is one object "
                             "(the photos directly in a folder, and the photo files given, too)")
    opts = parser.parse_args(args)
    opts.ext_name = cli.__name__.rpartition(".core.")[0]
    return opts


def request_options(opts: argparse.Namespace):
    """The one ``ReconstructOptions`` the flags ask for, checked (``core.validate``, the command line's rules and
    messages); raises ReconstructionError."""
    cli = importlib.import_module(f"{opts.ext_name}.core.cli")
    validate = importlib.import_module(f"{opts.ext_name}.core.validate")
    return validate.check_options(cli.options_from_args(opts))


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


def _print_progress(stage: str, step: int, total: int, loss=None) -> None:
    text = stage.capitalize() + (f": step {step}/{total}" if total else "")
    print(f"  {text}" + (f" (loss {loss:.4f})" if loss is not None else ""), flush=True)


def _reconstruct(ext, entry: dict, photos: list[str], options):
    """A fresh empty scene and the core's result for ``photos`` (one: ``core.reconstruct``; several:
    ``core.joint.reconstruct_object``), or None after writing the reason into ``entry``."""
    import bpy

    validate = importlib.import_module(f"{ext.__name__}.core.validate")
    # a fresh empty file; unlike read_factory_settings this keeps the user's preferences, so an
    # extension enabled in Blender stays enabled
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    options = dataclasses.replace(options, out_dir=None)  # this script names and writes the files
    try:
        photos = [validate.check_input_file(photo, "image") for photo in photos]
        if len(photos) > 1:
            joint = importlib.import_module(f"{ext.__name__}.core.joint")
            result = joint.reconstruct_object(photos, options, progress=_print_progress)
        else:
            core = importlib.import_module(f"{ext.__name__}.core")
            result = core.reconstruct(photos, options, progress=_print_progress)[0]
    except validate.ReconstructionError as err:
        entry["error"] = str(err)
        return None
    except Exception as err:  # noqa: BLE001 - one bad input must not stop the batch
        entry["error"] = f"{photos[0]}: internal error ({type(err).__name__}: {err}); please report it"
        return None
    if not result.ok:
        entry["error"] = result.error or f"{photos[0]}: reconstruction failed"
        return None
    return result


def _build(ext, result, photos: list[str]):
    """The scene built from ``result`` by the extension's scene builder; the mesh object."""
    import bpy

    scene_build = importlib.import_module(f"{ext.__name__}.operators.scene")
    scene, view_layer = bpy.context.scene, bpy.context.view_layer
    if len(photos) == 1:
        return scene_build.build_result(scene, result, scene_build.BuildOptions(), image_path=photos[0],
                                        view_layer=view_layer).mesh_object
    names = [scene_build.default_name(photo) for photo in photos]
    options = scene_build.BuildOptions(name=scene_build.object_name(names))
    return scene_build.build_object(scene, result, options, image_paths=photos, view_names=names,
                                    view_layer=view_layer).mesh_object


def _save_outputs(ext, result, out: Path, fmt: str, stem: str, files: dict) -> None:
    """The core's mesh and JSON under this batch's unique stem, and the .blend with its photos packed;
    ``files`` gets each path as it is written (so a failure can remove them)."""
    import bpy

    export = importlib.import_module(f"{ext.__name__}.core.io.export")
    export.write_result(result, out, fmt, stem)  # the JSON names the mesh actually written
    files["mesh"], files["json"] = result.mesh_path, result.json_path
    for suffix in _side_files(ext, fmt):  # a textured OBJ's material library and texture
        if (out / f"{stem}{suffix}").exists():
            files[suffix.lstrip("._").replace(".", "_")] = str(out / f"{stem}{suffix}")
    for image_block in bpy.data.images:
        if image_block.source == "FILE" and image_block.packed_file is None and image_block.filepath:
            image_block.pack()
    blend = out / f"{stem}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True, compress=True)
    files["blend"] = str(blend)


def _side_files(ext, fmt: str) -> tuple[str, ...]:
    """Suffixes of the files the core writes beside a ``fmt`` mesh (``core.config.SIDE_FILES``)."""
    return importlib.import_module(f"{ext.__name__}.core.config").SIDE_FILES.get(fmt, ())


def _fail_outputs(entry: dict, err: Exception, label: str, files: dict) -> None:
    """Record why writing failed and remove what was written: no half result."""
    reason = str(err) if hasattr(err, "reason") else f"{label}: writing the outputs failed ({type(err).__name__}: {err})"
    entry["error"] = reason.splitlines()[0] if reason else type(err).__name__
    for path in files.values():
        Path(path).unlink(missing_ok=True)


def _mesh_counts(mesh_obj, result) -> dict:
    return {"timings_s": dict(result.to_json().get("timings_s", {})), "vertices": len(mesh_obj.data.vertices),
            "faces": len(mesh_obj.data.polygons)}


def process(ext, image: str, stem: str, out: Path, opts: argparse.Namespace, options) -> dict:
    """One image: fresh scene, core, scene builder, files. Returns its summary entry (never raises); a failed
    image leaves none of its files behind."""
    import bpy

    entry: dict = {"image": image, "ok": False}
    t0 = time.perf_counter()
    result = _reconstruct(ext, entry, [image], options)
    files: dict = {}
    if result is not None:
        try:
            mesh_obj = _build(ext, result, [image])
            _save_outputs(ext, result, out, options.fmt, stem, files)
            if opts.render:
                files.update(_render_views(ext.__name__, bpy.context.scene, mesh_obj, image, out, stem, opts.samples))
            entry.update(ok=True, files=files, **_mesh_counts(mesh_obj, result))
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


def process_object(ext, name: str, photos: list[str], stem: str, out: Path, opts: argparse.Namespace,
                   options) -> dict:
    """``--joint``: one object seen in ``photos``: fresh scene, core, scene builder, files. Returns its summary
    entry (never raises); a failed object leaves none of its files behind."""
    import bpy

    scene_build = importlib.import_module(f"{ext.__name__}.operators.scene")
    entry: dict = {"object": name, "images": list(photos), "ok": False}
    t0 = time.perf_counter()
    result = _reconstruct(ext, entry, photos, options)
    files: dict = {}
    if result is not None:
        try:
            mesh_obj = _build(ext, result, photos)
            scene = bpy.context.scene
            views = list(getattr(result, "views", None) or [result])  # one photo: a plain result
            cameras = {cam.get(scene_build.PHOTO): cam for cam in scene_build.object_cameras(mesh_obj)}
            entry["views"] = [{"image": photo, "ok": bool(view.ok),
                               **({"camera": cameras[photo].name} if photo in cameras else {}),
                               **({} if view.ok else {"error": view.error or f"{photo}: could not be placed"})}
                              for photo, view in zip(photos, views)]
            _save_outputs(ext, result, out, options.fmt, stem, files)
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
    ext, registered_here = load_extension()
    try:
        return _run(ext, parse_args(script_args(argv), ext))
    finally:
        if registered_here:
            ext.unregister()


def _run(ext, opts: argparse.Namespace) -> int:
    validate = importlib.import_module(f"{ext.__name__}.core.validate")
    try:
        options = request_options(opts)
        out = validate.check_out_dir(options.out_dir).resolve()
    except validate.ReconstructionError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    if opts.joint:
        return _run_joint(ext, validate, out, opts, options)
    images = find_images(opts.input, validate.IMAGE_SUFFIXES)
    if not images:
        print(f"error: no images found in {' '.join(opts.input)} (looked for "
              f"{', '.join(validate.IMAGE_SUFFIXES)})", file=sys.stderr, flush=True)
        return 1
    stems = validate.output_stems(images, (f".{options.fmt}", ".json", *_side_files(ext, options.fmt),
                                           *RENDER_SUFFIXES), str(out))
    entries = []
    for image, stem in zip(images, stems):
        entry = process(ext, image, stem, out, opts, options)
        entries.append(entry)
        if entry["ok"]:
            print(f"ok    {image} -> {entry['files']['blend']} ({entry['seconds']:.1f} s)", flush=True)
        else:
            print(f"FAIL  {entry['error']}", flush=True)
    return _finish(out, "images", entries, opts, options, "")


def _finish(out: Path, key: str, entries: list[dict], opts: argparse.Namespace, options, noun: str) -> int:
    """Write ``summary.json`` (``entries`` under ``key``), print the tally; the exit status."""
    failed = sum(not e["ok"] for e in entries)
    summary = {"out": str(out), key: entries, "ok": len(entries) - failed, "failed": failed,
               "options": _summary_options(opts, options)}
    _write_summary(out / "summary.json", summary)
    print(f"{len(entries) - failed} {noun}ok, {failed} failed; summary: {out / 'summary.json'}", flush=True)
    return 1 if failed else 0


def _summary_options(opts: argparse.Namespace, options) -> dict:
    """The options of the run as summary.json lists them: every command-line option (None: not given)."""
    listed = {("format" if f.name == "fmt" else f.name): getattr(options, f.name)
              for f in dataclasses.fields(options) if "cli" in f.metadata and f.name != "out_dir"}
    return {**listed, "render": opts.render, "joint": opts.joint}


def _run_joint(ext, validate, out: Path, opts: argparse.Namespace, options) -> int:
    """``--joint``: one reconstruction per object (folder of photos)."""
    objects = find_objects(opts.input, validate.IMAGE_SUFFIXES)
    if not objects:
        print(f"error: no images found in {' '.join(opts.input)} (looked for "
              f"{', '.join(validate.IMAGE_SUFFIXES)})", file=sys.stderr, flush=True)
        return 1
    every_photo = [photo for _, photos in objects for photo in photos]
    stems = validate.output_stems([f"{name}.object" for name, _ in objects],
                                  (f".{options.fmt}", ".json", *_side_files(ext, options.fmt), *RENDER_SUFFIXES),
                                  str(out), keep=every_photo)
    entries = []
    for (name, photos), stem in zip(objects, stems):
        entry = process_object(ext, name, photos, stem, out, opts, options)
        entries.append(entry)
        if entry["ok"]:
            print(f"ok    {name}: {entry['placed']} of {len(photos)} photos placed -> {entry['files']['blend']} "
                  f"({entry['seconds']:.1f} s)", flush=True)
            for message in entry["not_placed"]:
                print(f"      not placed: {message}", flush=True)
        else:
            print(f"FAIL  {entry['error']}", flush=True)
    return _finish(out, "objects", entries, opts, options, "objects ")


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
