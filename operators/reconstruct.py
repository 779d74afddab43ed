"""The Reconstruct operator: validate inputs, run the core (worker process or inline), build the scene.

Interactive (``invoke``): the core runs in the worker process (``worker_process.py``; a thread where
``runner.py`` says); a 0.1 s modal timer drains its queue, shows progress in the status bar and the
sidebar (redrawing only that region, when the step changed and at most once a second), and Esc or
the panel's Cancel button cancels the job. The scene is built on the main thread inside
``modal`` before it returns {'FINISHED'}, so the operator's UNDO push makes the whole result one
undo step. In background mode and when called with EXEC_DEFAULT (scripts) ``execute`` runs the
same job inline and returns when done. On cancel or error nothing is added to the scene.

Several photos of one object (``files`` + ``directory`` from a file browser or a script, or
``image_names``) with ``joint`` on run ``core.joint.reconstruct_object`` in the same worker and build one
mesh with one camera per placed photo (``scene.build_object``); photos the core could not place are
reported as warnings. Several photos without ``joint`` are refused.

The operator's option properties are made from ``core.config.ReconstructOptions`` (``options.py``) and
turned back into one ``ReconstructOptions``, checked once by ``core.validate`` as the command line and the
API check theirs: a value out of range (steps -1, mesh resolution 100000, a NaN focal length) is refused
with the same message, never clamped; the properties only have soft limits for the UI.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import bpy

from . import deps, inputs, runner, tag_sidebar_redraw
from . import options as option_props
from . import scene as scene_build

DEVICE_ITEMS = (("AUTO", "Auto", "CUDA or Apple MPS when available, else the CPU"),
                ("CPU", "CPU", "Run on the CPU"),
                ("CUDA", "CUDA", "Run on an NVIDIA GPU"),
                ("MPS", "Apple MPS", "Run on an Apple Silicon GPU"))
FORMAT_ITEMS = (("glb", "glTF Binary", ""), ("ply", "PLY", ""), ("obj", "OBJ", ""))
_SKIP = {"SKIP_SAVE"}


class _InputError(Exception):
    """Stand-in for ReconstructionError if ``core`` cannot even be imported (dependencies missing)."""

    def __init__(self, message: str, path: str | None = None):
        self.path, self.reason = path, message
        super().__init__(f"{path}: {message}" if path else message)


def _error_type() -> type:
    """The project's exception type, imported lazily (``core``'s package import is cheap)."""
    try:
        from ..core.errors import ReconstructionError
    except ImportError:
        return _InputError
    return ReconstructionError


def _input_error(message: str, path: str | None = None) -> Exception:
    return _error_type()(message, path)


PROGRESS_REDRAW_S = 1.0
"""the progress line is redrawn at most once a second, when the stage or step changed ..."""
PROGRESS_CLOCK_S = 10.0
"""... and else every 10 s (its elapsed seconds): each redraw of a software-drawn window costs tens of
milliseconds of CPU that the reconstruction would otherwise have."""


def _tag_redraw(context) -> None:
    tag_sidebar_redraw(getattr(context, "screen", None))


@dataclass
class Photo:
    """One input photo as the operator resolved it."""

    path: str
    """absolute path of its file, or the name of its pixels in memory (``memory``) as messages show it."""
    name: str
    """what the objects built for it are named after: the file's stem or the image datablock's."""
    image: object | None = None
    """the image datablock it came from (shown as the camera background), or None for a file."""
    memory: object | None = None
    """a datablock's pixels or packed file in memory (core.io.memory.ImageArray), given to the core as they are."""


def _datablock_photo(image_name: str) -> Photo:
    image = bpy.data.images.get(image_name)
    if image is None:
        raise _input_error(f"Image '{image_name}' is not in this file: open it or pick another")
    try:
        photo = inputs.image_datablock_photo(image)
    except (ValueError, OSError, RuntimeError) as err:
        raise _input_error(f"cannot be read ({err}); open it again or save it as PNG",
                           f"Image '{image.name}'") from err
    if isinstance(photo, str):
        return Photo(photo, scene_build.default_name(image.name), image)
    return Photo(photo.name, scene_build.default_name(image.name), image, photo)


def collect_photos(op) -> list[Photo]:
    """The photos an operator's properties name, checked (``core.validate``): ``files`` (names relative to
    ``directory``, or absolute), else ``image_names``, else ``image_name``, else ``filepath``."""
    from ..core import validate

    files = [f.name for f in op.files if f.name.strip()] if op.files else []
    if files:
        folder = bpy.path.abspath(op.directory) if op.directory else ""
        paths = [os.path.abspath(bpy.path.abspath(os.path.join(folder, name))) for name in files]
        return [Photo(validate.check_input_file(path, "image"), scene_build.default_name(path)) for path in paths]
    names = [i.name for i in op.image_names if i.name] if op.image_names else []
    if names:
        return [_datablock_photo(name) for name in names]
    if op.image_name:
        return [_datablock_photo(op.image_name)]
    if not op.filepath.strip():
        raise _input_error("No photo chosen: set Photo in 3D View > Sidebar > Reconstruct "
                           "(or pass filepath=...)")
    path = validate.check_input_file(os.path.abspath(bpy.path.abspath(op.filepath)), "image")
    return [Photo(path, scene_build.default_name(path))]


def check_joint(photos: list[Photo], joint: bool, mask: str | None) -> None:
    """Several photos are reconstructed only as one object, each once, without a (single) mask."""
    if len(photos) < 2:
        return
    listed = ", ".join(os.path.basename(p.path) for p in photos)
    if not joint:
        raise _input_error(f"{len(photos)} photos chosen ({listed}): turn on One Object to reconstruct them as "
                           "one object, or reconstruct them one at a time")
    seen: set = set()
    for photo in photos:
        if photo.path in seen:
            raise _input_error("is chosen twice; pick each photo of the object once", photo.path)
        seen.add(photo.path)
    if mask is not None:
        raise _input_error("a mask belongs to one photo; for several photos of one object leave Mask empty and "
                           "use photos with transparency (alpha) or plain backdrops", mask)


class SHAPE_FROM_IMAGE_OT_reconstruct(bpy.types.Operator):
    """Reconstruct a colored 3D mesh and the camera from one photo, or one mesh and a camera per photo from
    several photos of one object"""

    bl_idname = "shape_from_image.reconstruct"
    bl_label = "Reconstruct from Image"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    filepath: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH", options=_SKIP,
                                       description="Photo to reconstruct from")
    image_name: bpy.props.StringProperty(name="Image", options=_SKIP,
                                         description="Use this image datablock instead of a file")
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE", "HIDDEN"},
                                        name="Photos", description="Several photos of one object: file names in "
                                                                   "Folder, or absolute paths (needs One Object)")
    directory: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH", options={"SKIP_SAVE", "HIDDEN"},
                                        description="Folder of the names in Photos")
    image_names: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement,
                                              options={"SKIP_SAVE", "HIDDEN"}, name="Images",
                                              description="Several open images of one object (needs One Object)")
    joint: bpy.props.BoolProperty(name="One Object", default=False, options=_SKIP,
                                  description="The photos show one object: one mesh, one camera per photo")
    mask_path: bpy.props.StringProperty(name="Mask", subtype="FILE_PATH", options=_SKIP,
                                        description="Optional foreground mask")
    model: bpy.props.StringProperty(name="Model", options=_SKIP,
                                    description="Model name or .safetensors path (empty: the preferences' default)")
    # steps, mesh_resolution, seed, focal_mm ...: made from core.config.ReconstructOptions (options.py)
    device: bpy.props.EnumProperty(name="Device", items=DEVICE_ITEMS, default="AUTO", options=_SKIP)
    add_camera: bpy.props.BoolProperty(name="Add Camera", default=True, options=_SKIP)
    set_scene_camera: bpy.props.BoolProperty(name="Make Scene Camera", default=True, options=_SKIP)
    set_render_resolution: bpy.props.BoolProperty(name="Photo Resolution", default=True, options=_SKIP)
    camera_background: bpy.props.BoolProperty(name="Photo as Background", default=True, options=_SKIP)
    replace_previous: bpy.props.BoolProperty(name="Replace Previous", default=True, options=_SKIP)
    out_dir: bpy.props.StringProperty(name="Output Folder", subtype="DIR_PATH", options={"SKIP_SAVE", "HIDDEN"},
                                      description="Also write <stem>.<format> and <stem>.json here")
    out_format: bpy.props.EnumProperty(name="Format", items=FORMAT_ITEMS, default="glb",
                                       options={"SKIP_SAVE", "HIDDEN"})

    @classmethod
    def poll(cls, context):
        if runner.active_job() is not None:
            cls.poll_message_set("A reconstruction is already running")
            return False
        return context.scene is not None

    # --- shared steps ----------------------------------------------------------------------------
    def _prepare(self, context) -> runner.Request:
        """Validate the inputs (``core.validate``, the rules of every interface); raises ReconstructionError
        with a message the user can act on."""
        from ..core import validate

        photos = collect_photos(self)
        self._photos = photos
        mask = None
        if self.mask_path.strip():
            mask = validate.check_input_file(os.path.abspath(bpy.path.abspath(self.mask_path)), "mask")
        check_joint(photos, self.joint, mask)
        prefs = inputs.get_preferences(context)
        model = self.model or (prefs.default_model if prefs is not None else "")
        extra = prefs.models_dir if prefs is not None else ""
        out_dir = os.path.abspath(bpy.path.abspath(self.out_dir)) if self.out_dir.strip() else None
        options = validate.check_options(option_props.options_from_properties(
            self, model=inputs.resolve_model(model, extra), device=self.device, out_dir=out_dir, fmt=self.out_format))
        gone = deps.missing() and deps.missing(refresh=True)  # installed meanwhile?
        if gone:
            raise _input_error(f"{runner.MISSING_TORCH_MESSAGE} (missing: {', '.join(gone)})")
        joint = len(photos) > 1
        return runner.Request(image=photos[0].path, mask=mask, images=tuple(p.path for p in photos) if joint else (),
                              joint=joint, options=options,
                              in_memory=tuple(p.memory for p in photos if p.memory is not None))

    def _prepare_or_report(self, context) -> runner.Request | None:
        """The request, or None after reporting why the inputs cannot be used (status line + report)."""
        try:
            return self._prepare(context)
        except _error_type() as err:
            runner.set_status(False, str(err))
            self.report({"ERROR"}, str(err))
            return None

    def _options(self) -> scene_build.BuildOptions:
        image = bpy.data.images.get(self.image_name) if self.image_name else None
        name = scene_build.default_name(image.name) if image is not None else None
        return scene_build.BuildOptions(add_camera=self.add_camera, set_scene_camera=self.set_scene_camera,
                                        set_render_resolution=self.set_render_resolution,
                                        camera_background=self.camera_background,
                                        replace_previous=self.replace_previous, name=name,
                                        background_image=image)

    def _finish(self, context, scene, job: runner.Job, outcome: runner.Outcome) -> set:
        """Build the scene from a finished job (main thread) and report; the run's garbage is collected and
        its freed memory handed back first (runner.release_memory)."""
        runner.release_memory(collect=True)
        runner.set_last_outcome(outcome)
        label = os.path.basename(job.request.image)
        if job.request.joint:
            label += f" (+{len(job.request.images) - 1} photos)"
        if outcome.kind == "cancelled":
            runner.set_status(False, f"{label}: cancelled")
            self.report({"WARNING"}, outcome.message)
            return {"CANCELLED"}
        if outcome.kind != "ok":
            runner.set_status(False, f"{label}: failed - {outcome.message}")
            self.report({"ERROR"}, outcome.message)
            return {"CANCELLED"}
        view_layer = context.view_layer if context.scene == scene else None
        try:
            if job.request.joint:
                built = build_object(self, scene, self._photos, outcome.result, view_layer)
            else:
                built = scene_build.build_result(scene, outcome.result, self._options(),
                                                 image_path=job.request.image, view_layer=view_layer)
        except Exception as err:  # noqa: BLE001 (nothing was left in the scene; tell the user why)
            message = str(err) if hasattr(err, "reason") else f"{job.request.label}: building the scene " \
                                                               f"failed ({type(err).__name__}: {err})"
            runner.set_last_outcome(runner.Outcome("failed", message, outcome.result, outcome.seconds))
            runner.set_status(False, f"{label}: failed - {message}")
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        mesh = built.mesh_object.data
        text = f"{built.mesh_object.name}: {len(mesh.vertices)} vertices, {len(mesh.polygons)} faces"
        skipped = getattr(built, "skipped", [])
        if job.request.joint:
            placed = len(job.request.images) - len(skipped)
            text += f", {placed} of {len(job.request.images)} photos placed"
        text += f" in {outcome.seconds:.1f} s"
        if skipped:
            text += "; not placed: " + ", ".join(_unplaced(self._photos, outcome.result))
        runner.set_status(True, text)
        self.report({"INFO"}, text)
        for message in skipped:
            self.report({"WARNING"}, message)
        for hint in built.hints:
            self.report({"INFO"}, hint)
        return {"FINISHED"}

    # --- synchronous path (background mode, scripts) --------------------------------------------
    def execute(self, context):
        request = self._prepare_or_report(context)
        if request is None:
            return {"CANCELLED"}
        echo = _print_progress if bpy.app.background else None
        job = runner.Job(request, echo=echo)
        runner.set_active(job)
        try:
            outcome = job.run_inline()
        finally:
            runner.set_active(None)
        return self._finish(context, context.scene, job, outcome)

    # --- interactive path ------------------------------------------------------------------------
    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        return self._start_modal(context)

    def _start_modal(self, context) -> set:
        """Start the job (worker process or thread) and the 0.1 s timer that drives :meth:`modal`."""
        request = self._prepare_or_report(context)
        if request is None:
            return {"CANCELLED"}
        self._job = runner.Job(request)
        self._scene_name = context.scene.name
        runner.set_active(self._job)
        self._job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        self._shown = (None, 0.0)
        self._show_progress(context, force=True)
        return {"RUNNING_MODAL"}

    def _show_progress(self, context, force: bool = False) -> None:
        """The progress line in the status bar and the sidebar (the 3D viewport itself is not redrawn):
        when the stage or step changed, at most every ``PROGRESS_REDRAW_S``; else every ``PROGRESS_CLOCK_S``."""
        latest, now = self._job.latest, time.monotonic()
        key = (self._job.cancelling, None if latest is None else (latest.stage, latest.step))
        shown, at = getattr(self, "_shown", (None, 0.0))
        if not force and (now - at < PROGRESS_REDRAW_S or (key == shown and now - at < PROGRESS_CLOCK_S)):
            return
        self._shown = (key, now)
        if context.workspace is not None:
            context.workspace.status_text_set(f"Shape from Image: {self._job.describe()}   (Esc: cancel)")
        _tag_redraw(context)

    def _end_modal(self, context) -> None:
        if getattr(self, "_timer", None) is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        if runner.active_job() is self._job:
            runner.set_active(None)
        _tag_redraw(context)

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            self._show_progress(context, force=True)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        outcome = self._job.poll()
        if outcome is None:
            self._show_progress(context)
            return {"PASS_THROUGH"}
        self._end_modal(context)
        scene = bpy.data.scenes.get(self._scene_name) or context.scene
        return self._finish(context, scene, self._job, outcome)

    def cancel(self, context):
        """Blender ends the modal (file load, quit): stop the worker, add nothing."""
        self._job.cancel()
        self._end_modal(context)


def build_object(op, scene, photos: list[Photo], result, view_layer=None):
    """Build an ObjectResult with the operator's scene options; each camera is named after its photo and
    shows it (an image datablock as itself)."""
    names = [p.name for p in photos]
    options = scene_build.BuildOptions(add_camera=op.add_camera, set_scene_camera=op.set_scene_camera,
                                       set_render_resolution=op.set_render_resolution,
                                       camera_background=op.camera_background,
                                       replace_previous=op.replace_previous, name=scene_build.object_name(names))
    return scene_build.build_object(scene, result, options, image_paths=[p.path for p in photos], view_names=names,
                                    background_images=[p.image for p in photos], view_layer=view_layer)


def _unplaced(photos: list[Photo], result) -> list[str]:
    """The file or image names of the photos whose view is not placed."""
    views = list(getattr(result, "views", None) or [])
    return [photo.image.name if photo.image is not None else os.path.basename(photo.path)
            for photo, view in zip(photos, views) if not getattr(view, "ok", False)]


def _print_progress(report: runner.ProgressReport) -> None:
    print(f"  {report.describe()}", flush=True)


class SHAPE_FROM_IMAGE_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction (it stops within one step; nothing is added)"""

    bl_idname = "shape_from_image.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context):
        return runner.active_job() is not None

    def execute(self, context):
        runner.cancel_active()
        self.report({"INFO"}, "Cancelling the reconstruction...")
        return {"FINISHED"}


option_props.add_properties(SHAPE_FROM_IMAGE_OT_reconstruct, after="model")
CLASSES = (SHAPE_FROM_IMAGE_OT_reconstruct, SHAPE_FROM_IMAGE_OT_cancel)
