"""The worker process (operators/worker_process.py): a run, a cancel, a killed or broken child, the
warm-up, and the thread fallback, against the extension's real core with a tiny random model."""

from __future__ import annotations

import os
import signal
import time

import bpy
import numpy as np
import pytest
from sfi_helpers import snapshot


@pytest.fixture
def worker(runner):
    from shape_from_image.operators import worker_process

    assert runner.in_process()
    yield worker_process
    worker_process.shutdown()


def _request(runner, photo, model, steps):
    return runner.Request(image=str(photo), options=runner.ReconstructOptions(
        model=str(model), steps=steps, device="cpu", mesh_resolution=16, texture_size=64))


def _wait_for_inversion(job, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.poll()
        if job.latest is not None and job.latest.stage == "inversion" and job.latest.step >= 1:
            return
        assert job.outcome is None, job.outcome
        time.sleep(0.01)
    raise AssertionError("the job did not reach the inversion")


def test_a_job_runs_in_the_worker_process_which_stays_for_the_next(worker, runner, fast_model, photo):
    job = runner.Job(_request(runner, photo, fast_model, 2)).start()
    assert job.thread is None and job.process is worker.current()
    pid = job.process.proc.pid
    assert pid != os.getpid()
    outcome = job.wait(timeout=120)
    assert outcome is not None and outcome.ok, outcome
    result = outcome.result
    assert type(result.mesh).__module__ == "shape_from_image.core.mesh"  # the parent's own classes
    assert len(result.mesh.vertices) > 0 and result.latent.dtype == np.float32 and len(result.losses) == 2
    assert job.latest is not None and job.latest.stage not in ("", "load")  # progress crossed too
    again = runner.Job(_request(runner, photo, fast_model, 0)).start()
    assert again.wait(timeout=120).ok and again.process.proc.pid == pid  # the same child, model loaded


def test_a_photo_in_memory_crosses_to_the_worker_process(worker, runner, fast_model, photo, tmp_path):
    """Pixels given in memory (a Blender image's) reach the child through the pipe, no file on the way."""
    from PIL import Image
    from shape_from_image.core.io.memory import ImageArray

    pixels = np.asarray(Image.open(photo).convert("RGBA"))
    name = str(tmp_path / "not_on_disk.png")
    request = _request(runner, photo, fast_model, 0)
    request.image, request.in_memory = name, (ImageArray(pixels, name),)
    outcome = runner.Job(request).start().wait(timeout=120)
    assert outcome.ok, outcome
    assert not (tmp_path / "not_on_disk.png").exists() and len(outcome.result.mesh.vertices) > 0
    from_file = runner.Job(_request(runner, photo, fast_model, 0)).start().wait(timeout=120)
    np.testing.assert_allclose(outcome.result.latent, from_file.result.latent, rtol=1e-5, atol=1e-6)


def test_cancel_reaches_the_worker_process(worker, runner, fast_model, photo):
    job = runner.Job(_request(runner, photo, fast_model, 500)).start()
    _wait_for_inversion(job)
    job.cancel()
    at_cancel = job.latest.step
    outcome = job.wait(timeout=60)
    assert outcome is not None and outcome.kind == "cancelled", outcome
    assert job.latest.step <= at_cancel + 2 < 500 and worker.current().alive


def test_a_killed_child_gives_one_line_and_the_next_run_works(worker, runner, fast_model, photo):
    job = runner.Job(_request(runner, photo, fast_model, 1000)).start()
    _wait_for_inversion(job)
    pid = job.process.proc.pid
    os.kill(pid, signal.SIGKILL)
    outcome = job.wait(timeout=30)
    assert outcome is not None and outcome.kind == "failed" and outcome.result is None
    assert "\n" not in outcome.message and outcome.message.startswith(str(photo))
    assert "killed by SIGKILL" in outcome.message and "run it again" in outcome.message
    again = runner.Job(_request(runner, photo, fast_model, 0)).start()
    assert again.wait(timeout=120).ok and again.process.proc.pid != pid


def test_the_operator_reports_a_dead_child_and_adds_nothing(worker, runner, fast_model, photo, monkeypatch):
    """The modal path's message and scene when the child cannot even import its code (a broken install)."""
    from shape_from_image.operators import reconstruct

    monkeypatch.setattr(worker, "_SERVE", "operators.no_such_module")
    worker.shutdown()
    before = snapshot()
    job = runner.Job(_request(runner, photo, fast_model, 0)).start()
    outcome = job.wait(timeout=60)
    assert outcome.kind == "failed" and "ended with exit status 1" in outcome.message
    assert "\n" not in outcome.message
    op = type("Op", (), {"report": lambda self, kind, text: reports.append((next(iter(kind)), text))})()
    reports: list = []
    state = reconstruct.SHAPE_FROM_IMAGE_OT_reconstruct._finish(op, bpy.context, bpy.context.scene, job, outcome)
    assert state == {"CANCELLED"} and snapshot() == before
    assert reports[-1][0] == "ERROR" and "reconstruction process ended" in reports[-1][1]
    assert not runner.last_status().ok
    monkeypatch.undo()
    worker.shutdown()
    assert runner.Job(_request(runner, photo, fast_model, 0)).start().wait(timeout=120).ok


def test_warm_up_loads_the_model_in_the_worker_process(worker, runner, fast_model):
    runner.shutdown()
    assert runner.warm_up_in_background(str(fast_model), "cpu")
    assert not runner.warm_up_in_background(str(fast_model), "cpu")  # once per model, device and child
    pending = runner.warming_thread(str(fast_model), "cpu")
    pending.join(120)
    assert not pending.is_alive() and worker.current().alive
    assert runner.warm_up_in_background("no_such_model", "cpu")  # a problem stays in the child
    runner.warming_thread("no_such_model", "cpu").join(60)
    assert worker.current().alive
    runner.shutdown()  # unregister: the child ends and its warm-ups with it
    assert worker.current() is None and pending.stale and pending.process.proc.returncode == 0
    assert runner.warm_up_in_background(str(fast_model), "cpu")  # a new child warms up again
    runner.warming_thread(str(fast_model), "cpu").join(120)


def test_the_process_and_the_thread_fallback_give_the_same_result(worker, runner, fast_model, photo, monkeypatch):
    results = {}
    for where in ("process", "thread"):
        monkeypatch.setattr(runner, "WORKER", where)
        job = runner.Job(_request(runner, photo, fast_model, 2)).start()
        assert (job.thread is None) == (where == "process") and (job.process is None) == (where == "thread")
        outcome = job.wait(timeout=120)
        assert outcome.ok, outcome
        results[where] = outcome.result
    np.testing.assert_allclose(results["process"].losses, results["thread"].losses, rtol=1e-4)
    assert len(results["process"].mesh.vertices) == len(results["thread"].mesh.vertices) > 0
