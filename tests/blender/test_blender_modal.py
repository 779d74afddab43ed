"""The interactive (modal) path, driven by hand: background mode has no event loop, so the test
plays the window manager: it calls the operator's methods with a recording context and TIMER/ESC
events, exactly in the order Blender would."""

from __future__ import annotations

import time
import types

import bpy
import pytest
import sfi_helpers
from sfi_helpers import FakeCore, snapshot


class _WindowManager:
    def __init__(self):
        self.timers: list = []
        self.handlers: list = []

    def event_timer_add(self, step, window=None):
        timer = types.SimpleNamespace(step=step)
        self.timers.append(timer)
        return timer

    def event_timer_remove(self, timer):
        self.timers.remove(timer)

    def modal_handler_add(self, op):
        self.handlers.append(op)
        return True


class _Workspace:
    def __init__(self):
        self.texts: list = []

    def status_text_set(self, text):
        self.texts.append(text)


@pytest.fixture
def modal_op(ext):
    """A stand-in operator instance carrying the real methods and property defaults."""
    from shape_from_image.operators import reconstruct

    cls = reconstruct.SHAPE_FROM_IMAGE_OT_reconstruct
    rna = bpy.ops.shape_from_image.reconstruct.get_rna_type()
    op = types.SimpleNamespace(reports=[])
    for prop in rna.properties:
        if prop.identifier != "rna_type":
            setattr(op, prop.identifier, getattr(prop, "default", ""))
    op.report = lambda kind, message: op.reports.append((next(iter(kind)), message))
    for name in ("_prepare", "_prepare_or_report", "_options", "_finish", "_start_modal", "_show_progress", "_end_modal", "modal",
                 "cancel"):
        setattr(op, name, types.MethodType(getattr(cls, name), op))
    ctx = types.SimpleNamespace(window_manager=_WindowManager(), workspace=_Workspace(), window=object(),
                                screen=None, scene=bpy.context.scene, view_layer=bpy.context.view_layer,
                                preferences=bpy.context.preferences)
    return op, ctx


def _drive(op, ctx, timeout=10.0, esc_after_step=None):
    timer_event = types.SimpleNamespace(type="TIMER", value="NOTHING")
    esc_event = types.SimpleNamespace(type="ESC", value="PRESS")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert op.modal(ctx, types.SimpleNamespace(type="MOUSEMOVE", value="NOTHING")) == {"PASS_THROUGH"}
        latest = op._job.latest
        if esc_after_step is not None and latest is not None and latest.stage == "inversion" \
                and latest.step >= esc_after_step and not op._job.cancelling:
            assert op.modal(ctx, esc_event) == {"RUNNING_MODAL"}
        state = op.modal(ctx, timer_event)
        if state != {"PASS_THROUGH"}:
            return state
        time.sleep(0.02)
    raise AssertionError("the modal operator did not finish")


def test_modal_run_builds_the_scene_on_the_main_thread(modal_op, runner, monkeypatch, photo):
    op, ctx = modal_op
    core = FakeCore(steps=50, delay=0.03)  # longer than the progress line's 1 s redraw interval
    monkeypatch.setattr(runner, "_call_core", core)
    op.filepath = str(photo)
    assert op._start_modal(ctx) == {"RUNNING_MODAL"}
    assert ctx.window_manager.handlers == [op] and ctx.window_manager.timers[0].step == pytest.approx(0.1)
    assert runner.active_job() is op._job and op._job.thread.is_alive()
    assert len(bpy.data.objects) == 0  # nothing is built while the worker runs
    assert _drive(op, ctx) == {"FINISHED"}
    assert snapshot()["objects"] == ["sphere_chair", "sphere_chair Camera"]
    progress = [t for t in ctx.workspace.texts if t]
    assert any("Inversion: step" in t for t in progress) and ctx.workspace.texts[-1] is None
    assert ctx.window_manager.timers == [] and runner.active_job() is None
    assert op.reports[0][0] == "INFO" and "4514 vertices" in op.reports[0][1]


class _Region:
    def __init__(self, type_):
        self.type, self.redraws = type_, 0

    def tag_redraw(self):
        self.redraws += 1


class _Area:
    def __init__(self, type_):
        self.type, self.regions = type_, [_Region("WINDOW"), _Region("HEADER"), _Region("UI")]

    def tag_redraw(self):
        raise AssertionError("the whole area is redrawn")


def test_modal_redraws_only_the_sidebar_once_a_second(modal_op, runner, monkeypatch, photo):
    """Progress redraws the 3D View's sidebar, at most once a second and only when the step changed;
    the viewport (WINDOW region) and other areas are not redrawn while the worker runs."""
    op, ctx = modal_op
    view3d, outliner = _Area("VIEW_3D"), _Area("OUTLINER")
    ctx.screen = types.SimpleNamespace(areas=[view3d, outliner])
    monkeypatch.setattr(runner, "_call_core", FakeCore(steps=100, delay=0.025))  # about 2.5 s, 100 progress lines
    op.filepath = str(photo)
    started = time.monotonic()
    op._start_modal(ctx)
    timers = 0
    while (state := op.modal(ctx, types.SimpleNamespace(type="TIMER", value="NOTHING"))) == {"PASS_THROUGH"}:
        timers += 1
        time.sleep(0.005)
    seconds = time.monotonic() - started
    sidebar = view3d.regions[2].redraws
    assert state == {"FINISHED"} and timers > 100  # many timer events, ...
    assert 3 <= sidebar <= 2 + seconds / 1.0 + 1  # ... few redraws: start, once a second, end
    assert [r.redraws for r in view3d.regions[:2]] == [0, 0] and [r.redraws for r in outliner.regions] == [0, 0, 0]
    assert len([t for t in ctx.workspace.texts if t]) == sidebar - 1  # the status bar follows the same rate


def test_modal_escape_cancels_and_adds_nothing(modal_op, runner, monkeypatch, photo):
    op, ctx = modal_op
    core = FakeCore(steps=100, delay=0.02)
    monkeypatch.setattr(runner, "_call_core", core)
    op.filepath = str(photo)
    before = snapshot()
    op._start_modal(ctx)
    assert _drive(op, ctx, esc_after_step=3) == {"CANCELLED"}
    assert core.steps_run < 10 and snapshot() == before
    assert op.reports[-1][0] == "WARNING" and "cancelled" in op.reports[-1][1]
    assert ctx.window_manager.timers == [] and runner.active_job() is None and ctx.workspace.texts[-1] is None


def test_modal_core_error_reports_and_adds_nothing(modal_op, runner, monkeypatch, photo):
    op, ctx = modal_op
    reason = "the photo is too small (32x32); use at least 128x128"
    monkeypatch.setattr(runner, "_call_core", FakeCore(result_fn=lambda r: sfi_helpers.failed_result(
        r.image, f"{r.image}: {reason}")))
    op.filepath = str(photo)
    before = snapshot()
    op._start_modal(ctx)
    assert _drive(op, ctx) == {"CANCELLED"}
    assert snapshot() == before and op.reports[-1] == ("ERROR", f"{photo}: {reason}")
    assert not runner.last_status().ok


def test_blender_cancelling_the_modal_stops_the_worker(modal_op, runner, monkeypatch, photo):
    """Blender calls cancel() on file load or quit: the worker stops, the timer goes."""
    op, ctx = modal_op
    core = FakeCore(steps=500, delay=0.01)
    monkeypatch.setattr(runner, "_call_core", core)
    op.filepath = str(photo)
    op._start_modal(ctx)
    op.cancel(ctx)
    outcome = op._job.wait(timeout=5)
    assert outcome.kind == "cancelled" and core.steps_run < 500
    assert ctx.window_manager.timers == [] and runner.active_job() is None and len(bpy.data.objects) == 0


def test_modal_escape_during_mesh_extraction_adds_nothing(modal_op, runner, monkeypatch, photo, tmp_path):
    """The real core: Esc while marching cubes runs stops it at its next chunk of points; nothing is added
    and nothing written. The worker waits at the start of the mesh stage until the main thread has seen it
    and pressed Esc, so the test does not depend on timing."""
    import torch

    sfi_helpers.import_extension()
    from shape_from_image.core.config import tiny_config
    from shape_from_image.core.model import ReconstructionModel, save_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = save_model(ReconstructionModel(tiny_config()), tmp_path / "models" / "tiny", half=False)
    real_call = runner._call_core

    def call_core(request, progress, cancel):
        def report(stage, step, total, loss=None):
            progress(stage, step, total, loss)
            deadline = time.monotonic() + 10
            while stage == "mesh" and not cancel() and time.monotonic() < deadline:
                time.sleep(0.01)

        return real_call(request, report, cancel)

    monkeypatch.setattr(runner, "_call_core", call_core)
    op, ctx = modal_op
    op.filepath, op.model, op.steps, op.mesh_resolution = str(photo), str(model), 0, 128
    op.out_dir, op.device = str(tmp_path / "out"), "CPU"
    before = snapshot()
    assert op._start_modal(ctx) == {"RUNNING_MODAL"}
    timer = types.SimpleNamespace(type="TIMER", value="NOTHING")
    deadline = time.monotonic() + 60
    state = {"PASS_THROUGH"}
    while state == {"PASS_THROUGH"} and time.monotonic() < deadline:
        state = op.modal(ctx, timer)
        latest = op._job.latest
        if latest is not None and latest.stage == "mesh" and not op._job.cancelling:
            assert op.modal(ctx, types.SimpleNamespace(type="ESC", value="PRESS")) == {"RUNNING_MODAL"}
        time.sleep(0.02)
    assert state == {"CANCELLED"} and op._job.latest.stage == "mesh"
    assert runner.last_outcome().kind == "cancelled" and op.reports[-1][0] == "WARNING"
    assert snapshot() == before and not (tmp_path / "out" / "sphere_chair.glb").exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
