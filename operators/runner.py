"""Runs the core reconstruction off Blender's main thread and hands the result back to it.

Interactive runs go to a worker PROCESS (``worker_process.py``: why, and how the messages cross): the
child calls :func:`_call_core` through the same :meth:`Job._work` as here and sends the progress reports
and the :class:`Outcome` back; the main thread sees them in ``Job.messages`` either way. A worker THREAD
of Blender's process is the fallback: where ``_call_core`` was replaced (tests: a replacement cannot
cross to another process) or ``WORKER`` is "thread". Background mode and scripts run inline.

Rules kept here: the worker (thread or child) only calls ``_call_core`` and posts messages. It NEVER
touches ``bpy``. The main thread (a modal operator's timer, or the operator's ``execute`` in background
mode) drains the queue with :meth:`Job.poll` and builds the scene from the result. Cancelling sets a
``threading.Event`` that the core polls between steps (in the child, on the parent's message).
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..core import config
from ..core.config import ReconstructOptions
from ..core.errors import error_kind

MISSING_TORCH_MESSAGE = ("PyTorch is not installed for Blender: open Edit > Preferences > Add-ons > "
                         "Shape from Image and press Install dependencies")


def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_memory(collect: bool = False) -> None:
    """Give the C heap's free pages back to the system after a reconstruction.

    A reconstruction allocates and frees hundreds of MB in many blocks (images, renders, marching-cubes
    grids), from the worker thread's own malloc arena; glibc keeps freed pages of every arena mapped, so
    a long Blender session's resident memory crept up run after run (and did not come back when the
    scene was reset). ``malloc_trim(0)`` returns them; elsewhere this does nothing. ``collect`` (main
    thread only: it may free Blender's Python objects) first collects the garbage cycles that still hold
    a run's arrays. Measured with ``scripts/soak_blender.py`` (README)."""
    if collect:
        gc.collect()
    if _TRIM is not None:
        _TRIM(0)


class MissingDependency(RuntimeError):
    """torch or another runtime module is not importable inside Blender."""


def _error_kind(err: Exception) -> str:
    """'refused', 'failed' or 'cancelled' for an exception that ended a job (core.errors.error_kind)."""
    if isinstance(err, MissingDependency):
        return "refused"
    return error_kind(err)


def _error_message(err: Exception, image: str) -> str:
    """One line for the user. ReconstructionError messages already name the file and the fix."""
    text = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, MissingDependency) or hasattr(err, "reason"):
        return text or type(err).__name__
    traceback.print_exception(err)
    return f"{image}: unexpected {type(err).__name__}: {text} (details in the system console)"


@dataclass
class Request:
    """One image, or several photos of one object, and the options of the call (plain data: ``to_dict`` /
    ``from_dict`` carry it across a thread or process boundary)."""

    image: str
    """absolute path of the photo (with ``joint``: the first photo, which names the object)."""
    mask: str | None = None
    """absolute path of an optional foreground mask."""
    images: tuple[str, ...] = ()
    """with ``joint``: absolute paths of every photo of the object, in order (``image`` is the first)."""
    joint: bool = False
    """reconstruct ``images`` as one object (``core.joint.reconstruct_object``): one mesh, one camera per
    photo; the result is a ``core.result.ObjectResult``."""
    options: ReconstructOptions = field(default_factory=ReconstructOptions)
    """what the core is asked for, checked where it was made (``core.validate.check_options``)."""
    in_memory: tuple = ()
    """photos held in memory (core.io.memory.ImageArray: a Blender image's pixels or packed file), each
    standing for the entry of ``image`` / ``images`` that is its ``name``."""

    @property
    def label(self) -> str:
        """The input as messages name it: the photo's path, or the first photo's and how many others."""
        others = len(self.images) - 1 if self.joint else 0
        if others <= 0:
            return self.image
        return f"{self.image} (and {others} more photo{'s' if others > 1 else ''})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Request:
        data = dict(data)
        from ..core.io.memory import ImageArray

        options = config.from_dict(config.ReconstructOptions, data.pop("options", {}))
        memory = tuple(ImageArray(**m) if isinstance(m, dict) else m for m in data.pop("in_memory", ()))
        return cls(**{**data, "images": tuple(data.get("images", ()))}, options=options, in_memory=memory)


@dataclass
class ProgressReport:
    """One progress report from the core."""

    stage: str
    """pipeline stage, e.g. 'load', 'encoder', 'pose', 'inversion', 'mesh'."""
    step: int
    """current step within the stage."""
    total: int
    """number of steps of the stage (0 when unknown)."""
    loss: float | None = None
    """current inversion loss, when the stage has one."""

    def describe(self) -> str:
        text = self.stage.capitalize()
        if self.total:
            text += f": step {self.step}/{self.total}"
        if self.loss is not None:
            text += f" (loss {self.loss:.4f})"
        return text


@dataclass
class Outcome:
    """How a job ended."""

    kind: str
    """'ok', or why not: 'refused' (an input or an option the user can change), 'failed' (an internal error)
    or 'cancelled' (the user stopped it); the core's results say which (``error_kind``)."""
    message: str
    """one-line user-facing text (the reason when not ok)."""
    result: Any = None
    """core.result.ReconstructionResult when kind == 'ok' (an ObjectResult for a ``joint`` request)."""
    seconds: float = 0.0
    """wall-clock time of the core call."""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass
class Status:
    """The last finished run, shown in the panel's status line."""

    ok: bool
    """whether the run succeeded."""
    text: str
    """what the panel shows."""
    history: list[str] = field(default_factory=list)
    """a few earlier status texts, newest last."""


def _call_core(request: Request, progress, cancel) -> list:
    """Call ``core.api.reconstruct`` for one image, or ``core.joint.reconstruct_object`` for the photos of
    a ``joint`` request; a list of one result either way. Runs in the worker thread: no bpy here.

    Tests replace this function to run the Blender side against a synthetic result.
    """
    try:
        if request.joint:
            from ..core.joint import reconstruct_object as call
        else:
            from ..core.api import reconstruct as call
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in ("torch", "numpy", "cv2", "skimage", "trimesh",
                                                   "safetensors", "PIL", "scipy", "fast_simplification"):
            raise MissingDependency(f"{MISSING_TORCH_MESSAGE} (missing Python module '{err.name}')") from err
        raise
    memory = {photo.name: photo for photo in request.in_memory}
    if request.joint:
        images = [memory.get(name, name) for name in request.images]
        return [call(images, request.options, progress=progress, cancel=cancel)]
    return call([memory.get(request.image, request.image)], request.options,
                masks=None if request.mask is None else [request.mask], progress=progress, cancel=cancel)


_CORE_CALL = _call_core
WORKER = "process"
"""where :meth:`Job.start` runs a job: "process" (the worker process) or "thread"."""


def in_process() -> bool:
    """Whether :meth:`Job.start` and the warm-up use the worker process (see the module docstring)."""
    return WORKER == "process" and _call_core is _CORE_CALL


_WARMING: dict[tuple, Any] = {}
WARM_UP_JOIN_S = 120.0
"""how long unregister waits for a warm-up thread (the thread fallback) before going on."""


def warm_up_in_background(model: str, device: str) -> bool:
    """Start ``core.api.warm_up`` in the worker process (or a daemon thread), once per (model, device)
    and worker, so the first Reconstruct click does not pay the model load and first-call costs. True
    when it started now. Best effort: a problem here is left for the real call to report."""
    key = (model, device)
    if key in _WARMING and not getattr(_WARMING[key], "stale", False):
        return False
    if in_process():
        from . import worker_process

        try:
            _WARMING[key] = worker_process.get().warm_up(model, device)
        except OSError:  # no interpreter to start: the run reports it
            return False
        return True

    def work() -> None:
        try:
            from ..core.api import warm_up

            warm_up(model, device)
        except Exception:  # noqa: BLE001 (the Reconstruct call itself reports any problem)
            pass

    thread = threading.Thread(target=work, name="shape_from_image_warm_up", daemon=True)
    _WARMING[key] = thread
    thread.start()
    return True


def warming_thread(model: str, device: str):
    """The warm-up started for (model, device), if any: a thread, or a ``worker_process.Pending`` with the
    same ``is_alive`` and ``join`` (tests, unregister)."""
    return _WARMING.get((model, device))


class Job:
    """One reconstruction; :meth:`start` runs it in the worker process or a thread, :meth:`run_inline` in
    the caller's."""

    def __init__(self, request: Request, echo=None):
        self.request = request
        self.echo = echo
        """optional callable(ProgressReport) called from the worker (use only with run_inline)."""
        self.messages: queue.Queue = queue.Queue()
        self.cancel_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.process = None
        """the ``worker_process.WorkerProcess`` running the job, if it runs there."""
        self.process_id = 0
        self.finished = threading.Event()
        self.latest: ProgressReport | None = None
        self.outcome: Outcome | None = None
        self.started = time.monotonic()

    # --- worker side (no bpy) ---------------------------------------------------------------
    def _post_progress(self, stage: str, step: int, total: int, loss: float | None = None) -> None:
        report = ProgressReport(str(stage), int(step), int(total), None if loss is None else float(loss))
        self.messages.put(("progress", report))
        if self.echo is not None:
            self.echo(report)

    def _work(self) -> None:
        t0 = time.monotonic()
        try:
            results = _call_core(self.request, self._post_progress, self.cancel_event.is_set)
            outcome = self._outcome_from_results(results, time.monotonic() - t0)
        except Exception as err:  # noqa: BLE001 (the worker must always post an outcome)
            if self.cancel_event.is_set():
                outcome = Outcome("cancelled", f"{self.request.label}: cancelled by the user")
            else:
                outcome = Outcome(_error_kind(err), _error_message(err, self.request.label))
            outcome.seconds = time.monotonic() - t0
        release_memory()
        self.finish(outcome)

    def finish(self, outcome: Outcome) -> None:
        """Post the outcome (the worker thread, or the worker process's reader)."""
        self.messages.put(("done", outcome))
        self.finished.set()

    def failed_outcome(self, reason: str) -> Outcome:
        return Outcome("failed", f"{self.request.label}: {reason}", seconds=time.monotonic() - self.started)

    def _outcome_from_results(self, results: list, seconds: float) -> Outcome:
        label = self.request.label
        if not results:
            return Outcome("failed", f"{label}: the core returned no result", seconds=seconds)
        result = results[0]
        if self.cancel_event.is_set():  # cancelled, even if the core finished meanwhile: the scene stays as it is
            return Outcome("cancelled", f"{label}: cancelled by the user", None, seconds)
        if getattr(result, "ok", False):
            return Outcome("ok", f"{label}: done", result, seconds)
        error = getattr(result, "error", None) or f"{label}: reconstruction failed"
        return Outcome(getattr(result, "error_kind", None) or "failed", error, result, seconds)

    # --- main-thread side ---------------------------------------------------------------------
    def start(self) -> Job:
        if in_process():
            from . import worker_process

            try:
                self.process = worker_process.get()
            except OSError as err:  # no interpreter to start: the job fails, Blender goes on
                self.finish(self.failed_outcome(f"could not start the reconstruction process ({err})"))
                return self
            self.process.submit(self)
            return self
        self.thread = threading.Thread(target=self._work, name="shape_from_image", daemon=True)
        self.thread.start()
        return self

    def run_inline(self) -> Outcome:
        """Run synchronously in the calling thread (background mode, scripts)."""
        self._work()
        outcome = self.poll()
        assert outcome is not None
        return outcome

    def cancel(self) -> None:
        """Ask the core to stop; it notices within one step."""
        self.cancel_event.set()
        if self.process is not None:
            self.process.cancel(self)

    @property
    def cancelling(self) -> bool:
        return self.cancel_event.is_set()

    def poll(self) -> Outcome | None:
        """Drain the queue; the outcome once the worker has finished, else None."""
        while True:
            try:
                kind, payload = self.messages.get_nowait()
            except queue.Empty:
                return self.outcome
            if kind == "progress":
                self.latest = payload
            else:
                self.outcome = payload

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the worker ended (tests, unregister); then :meth:`poll`."""
        if self.thread is not None:
            self.thread.join(timeout)
        elif self.process is not None:
            self.finished.wait(timeout)
        return self.poll()

    def describe(self) -> str:
        """Progress line for the status bar and the panel."""
        if self.cancelling:
            return "Cancelling..."
        elapsed = time.monotonic() - self.started
        if self.latest is None:
            return f"Starting ({elapsed:.0f} s)"
        return f"{self.latest.describe()} ({elapsed:.0f} s)"


# The one job that may run at a time and the last status line; module state of the UI session.
_active: Job | None = None
_status: Status | None = None
_last_outcome: Outcome | None = None


def active_job() -> Job | None:
    """The running job, if any."""
    return _active


def set_active(job: Job | None) -> None:
    global _active
    _active = job


def cancel_active() -> bool:
    """Ask the running job to stop; False when nothing runs."""
    job = _active
    if job is None:
        return False
    job.cancel()
    return True


def last_status() -> Status | None:
    return _status


def last_outcome() -> Outcome | None:
    """The outcome of the last finished run (what the Reconstruct operator built the scene from)."""
    return _last_outcome


def set_last_outcome(outcome: Outcome | None) -> None:
    global _last_outcome
    _last_outcome = outcome


def set_status(ok: bool, text: str) -> None:
    global _status
    history = [] if _status is None else (_status.history + [_status.text])[-5:]
    _status = Status(ok, text, history)


def shutdown(timeout: float = 2.0, stop_worker: bool = True) -> None:
    """Cancel a running job and wait briefly for it; with ``stop_worker`` (add-on unregister) also stop
    the worker process and wait for a warm-up thread."""
    job = _active
    if job is not None:
        job.cancel()
        job.wait(timeout)
    set_active(None)
    if stop_worker:
        from . import worker_process

        worker_process.shutdown(timeout)
        for warming in list(_WARMING.values()):  # torch aborts a process that exits under a loading thread
            if isinstance(warming, threading.Thread):
                warming.join(WARM_UP_JOIN_S)
        _WARMING.clear()
