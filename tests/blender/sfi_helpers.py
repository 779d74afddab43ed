"""Shared helpers for the Blender tests: import the extension, synthetic results, a fake core."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "shape_from_image"
WEIGHTS = REPO / "weights" / "chairs.safetensors"


def import_extension():
    """The repository root imported as the package ``shape_from_image`` (as Blender would)."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    spec = importlib.util.spec_from_file_location(PACKAGE, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def exit_process(code: int = 0) -> None:
    """End a test's child process (see ``scripts/batch_reconstruct.py: exit_process``: the bpy 4.2 module
    crashes while exiting once the extension was registered)."""
    import bpy

    if tuple(bpy.app.version) < (4, 3, 0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def load_renders():
    """``scripts/batch_renders.py`` (the batch script's Cycles helpers) as a module."""
    name = "shape_from_image_batch_renders"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "batch_renders.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) cam2world, Blender convention (looks along local -Z, +Y up)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    back = (eye - target) / np.linalg.norm(eye - target)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, eye
    return m


def pinhole(cam2world: np.ndarray, focal: float, cx: float, cy: float, points: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> pixels (N, 2), pixel centres at +0.5, v downwards."""
    world2cam = np.linalg.inv(cam2world)
    local = points @ world2cam[:3, :3].T + world2cam[:3, 3]
    depth = -local[:, 2]
    return np.stack([cx + focal * local[:, 0] / depth, cy - focal * local[:, 1] / depth], axis=1)


def uv_sphere(radius: float = 0.6, center=(0.0, 0.0, 0.0), rings: int = 48, segments: int = 96):
    """Vertices (V, 3) float32 and faces (F, 3) int32 of a closed UV sphere, CCW from outside."""
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]]) * radius + np.asarray(center)
    faces = []

    def idx(r, s):
        return 1 + r * segments + (s % segments)

    for s in range(segments):
        faces.append((0, idx(0, s), idx(0, s + 1)))
        last = len(verts) - 1
        faces.append((last, idx(rings - 2, s + 1), idx(rings - 2, s)))
    for r in range(rings - 2):
        for s in range(segments):
            a, b, c, d = idx(r, s), idx(r + 1, s), idx(r + 1, s + 1), idx(r, s + 1)
            faces += [(a, b, c), (a, c, d)]
    return verts.astype(np.float32), np.asarray(faces, dtype=np.int32)


@dataclass
class FakeMesh:
    """Stands in for core.mesh.Mesh."""

    vertices: np.ndarray
    """(V, 3) float32."""
    faces: np.ndarray
    """(F, 3) int32."""
    colors: np.ndarray
    """(V, 3) float32 sRGB."""


@dataclass
class Scenario:
    """A synthetic reconstruction: sphere + camera + photo size."""

    cam2world: np.ndarray
    focal: float
    cx: float
    cy: float
    width: int
    height: int
    radius: float = 0.6
    center: tuple = (0.0, 0.0, 0.0)

    def analytic_mask(self) -> np.ndarray:
        """(H, W) bool: pixel centres whose ray hits the exact sphere."""
        v, u = np.mgrid[0:self.height, 0:self.width] + 0.5
        local = np.stack([(u - self.cx) / self.focal, -(v - self.cy) / self.focal, -np.ones_like(u)], -1)
        dirs = local @ self.cam2world[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        oc = np.asarray(self.center) - self.cam2world[:3, 3]
        along = dirs @ oc
        dist2 = (oc @ oc) - along ** 2
        return (dist2 <= self.radius ** 2) & (along > 0)


DEFAULT_SCENARIO = Scenario(cam2world=look_at((1.2, -2.6, 1.0)), focal=150.0, cx=92.0, cy=52.0,
                            width=160, height=120)


def sphere_colors(verts: np.ndarray) -> np.ndarray:
    """Deterministic sRGB colors; vertex 0 (the north pole) gets (0.5, 0.2, 1.0)."""
    colors = np.clip(0.5 + 0.5 * verts / np.abs(verts).max(), 0.0, 1.0).astype(np.float32)
    colors[0] = (0.5, 0.2, 1.0)
    return colors


def _result_module(package: str):
    from importlib import import_module

    if package == PACKAGE:
        import_extension()
    return import_module(f"{package}.core.result")


def fake_result(image: str, scenario: Scenario = DEFAULT_SCENARIO, package: str = PACKAGE, **overrides):
    """A ReconstructionResult (the extension's own core.result class) for ``scenario``."""
    result_mod = _result_module(package)
    verts, faces = uv_sphere(scenario.radius, scenario.center)
    mesh = FakeMesh(verts, faces, sphere_colors(verts))
    camera = result_mod.CameraInfo(cam2world=scenario.cam2world.copy(), focal_px=scenario.focal,
                                   width=scenario.width, height=scenario.height, cx=scenario.cx, cy=scenario.cy)
    fields = {"image": image, "ok": True, "camera": camera, "mesh": mesh, "model": "fake", "steps": 3,
              "device": "cpu", "timings": {"total": 0.01}}
    fields.update(overrides)
    return result_mod.ReconstructionResult(**fields)


def failed_result(image: str, error: str, package: str = PACKAGE, kind: str | None = None):
    return _result_module(package).ReconstructionResult(image=image, ok=False, error=error, error_kind=kind)


VIEW_SCENARIOS = (
    DEFAULT_SCENARIO,
    Scenario(cam2world=look_at((2.5, 0.9, 0.7)), focal=210.0, cx=58.0, cy=84.0, width=120, height=160),
    Scenario(cam2world=look_at((-1.9, -1.7, 1.6)), focal=120.0, cx=80.0, cy=80.0, width=160, height=160),
)
"""the same sphere photographed from three sides, with three lenses and three photo sizes."""


def view_scenario(index: int) -> Scenario:
    """Scenario of the ``index``-th photo of an object (cycles through VIEW_SCENARIOS)."""
    return VIEW_SCENARIOS[index % len(VIEW_SCENARIOS)]


def fake_object_result(images, dropped=(), package: str = PACKAGE, **overrides):
    """An ObjectResult (the extension's own core.result class): one sphere mesh shared by every placed view,
    view i seen as :func:`view_scenario` (i); the views whose index is in ``dropped`` could not be placed."""
    result_mod = _result_module(package)
    first = view_scenario(0)
    verts, faces = uv_sphere(first.radius, first.center)
    mesh = FakeMesh(verts, faces, sphere_colors(verts))
    views = []
    for i, image in enumerate(images):
        if i in dropped:
            views.append(failed_result(image, f"{image}: could not be placed: the object's silhouette does not "
                                              "match the other photos; check that it shows the same object",
                                       package))
        else:
            views.append(fake_result(image, view_scenario(i), package, mesh=mesh))
    fields = {"images": list(images), "ok": any(v.ok for v in views),
              "mesh": mesh, "views": views, "model": "fake", "steps": 3, "device": "cpu",
              "timings": {"total": 0.01}}
    fields.update(overrides)
    return result_mod.ObjectResult(**fields)


def failed_object_result(images, error: str, package: str = PACKAGE):
    return _result_module(package).ObjectResult(images=list(images), ok=False, error=error)


class FakeCore:
    """Replaces runner._call_core: reports ``steps`` progress steps, honours cancel like the core; a ``joint``
    request gets :func:`fake_object_result` (``result_fn`` replaces either result)."""

    def __init__(self, scenario: Scenario = DEFAULT_SCENARIO, steps: int = 3, delay: float = 0.0,
                 on_step=None, result_fn=None, package: str = PACKAGE):
        self.scenario, self.steps, self.delay, self.package = scenario, steps, delay, package
        self.on_step, self.result_fn = on_step, result_fn
        self.calls: list = []
        self.steps_run = 0

    def __call__(self, request, progress, cancel):
        self.calls.append(request)
        joint = getattr(request, "joint", False)

        def cancelled():
            message = f"{request.image}: cancelled by the user"
            if joint:
                return [failed_object_result(request.images, message, self.package)]
            return [failed_result(request.image, message, self.package)]

        progress("encoder", 1, 1, None)
        for step in range(1, self.steps + 1):
            if cancel():
                return cancelled()
            if self.delay:
                time.sleep(self.delay)
            self.steps_run = step
            progress("inversion", step, self.steps, 1.0 / step)
            if self.on_step is not None:
                self.on_step(step)
        if cancel():
            return cancelled()
        if self.result_fn is not None:
            return [self.result_fn(request)]
        if joint:  # reconstruct_object: view i seen as view_scenario(i)
            return [fake_object_result(request.images, package=self.package)]
        return [fake_result(request.image, self.scenario, self.package)]


def write_photo(path: Path, scenario: Scenario = DEFAULT_SCENARIO) -> Path:
    """An RGBA PNG whose alpha is the analytic sphere silhouette (the 'photo')."""
    import bpy

    mask = scenario.analytic_mask()
    rgba = np.zeros((scenario.height, scenario.width, 4), dtype=np.float32)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 0.8, 0.4, 0.1
    rgba[..., 3] = mask
    image = bpy.data.images.new("photo_tmp", scenario.width, scenario.height, alpha=True)
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return path


def snapshot() -> dict:
    """Names and counts of everything a reconstruction could touch."""
    import bpy

    scene = bpy.context.scene
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "meshes": sorted(m.name for m in bpy.data.meshes),
        "cameras": sorted(c.name for c in bpy.data.cameras),
        "collections": sorted(c.name for c in bpy.data.collections),
        "materials": sorted(m.name for m in bpy.data.materials),
        "images": sorted(i.name for i in bpy.data.images),
        "scene_camera": scene.camera.name if scene.camera else None,
        "resolution": (scene.render.resolution_x, scene.render.resolution_y),
    }


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def fuzz_module():
    """tests/test_fuzz.py (its corpus generator and checks) as a module."""
    name = "sfi_fuzz_corpus"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "test_fuzz.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[name]


# --- draw code against a recording layout ------------------------------------------------------


class _RecordedItems(list):
    """An operator's collection property as the draw code fills it: ``add()`` appends a plain entry."""

    def add(self):
        import types

        item = types.SimpleNamespace(name="")
        self.append(item)
        return item


class OpProps:
    """The properties of ``layout.operator(idname)``: setting a name the operator lacks fails the test."""

    def __init__(self, idname: str):
        import bpy

        module, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()
        object.__setattr__(self, "_names", set(rna.properties.keys()))
        object.__setattr__(self, "_collections", {p.identifier for p in rna.properties if p.type == "COLLECTION"})
        object.__setattr__(self, "values", {})

    def __setattr__(self, name, value):
        assert name in self._names, f"operator has no property {name!r}"
        self.values[name] = value

    def __getattr__(self, name):
        assert name in self._collections, f"operator has no collection property {name!r}"
        return self.values.setdefault(name, _RecordedItems())


def _icons() -> set:
    import bpy

    return set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


class RecordingLayout:
    """Duck-typed UILayout that checks property names, operator ids and icons."""

    def __init__(self, log: list):
        self.log = log

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = split = grid_flow = column_flow = _child

    def _icon(self, icon):
        assert icon in _icons(), f"unknown icon {icon!r}"

    def label(self, text="", icon="NONE", **kwargs):
        self._icon(icon)
        self.log.append(("label", text))

    def prop(self, data, name, icon="NONE", **kwargs):
        self._icon(icon)
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def template_ID(self, data, name, **kwargs):
        assert name in data.bl_rna.properties
        self.log.append(("template_ID", name))

    def operator(self, idname, text="", icon="NONE", **kwargs):
        self._icon(icon)
        props = OpProps(idname)
        self.log.append(("operator", idname, props))
        return props

    def progress(self, factor=0.0, type="BAR", text=""):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def separator(self, **kwargs):
        pass


def draw_panel(panel_cls, context, **attrs) -> list:
    """Run ``panel_cls.draw`` against a RecordingLayout; the log of what it drew."""
    import types

    log: list = []
    self = types.SimpleNamespace(layout=RecordingLayout(log), **attrs)
    panel_cls.draw(self, context)
    return log
