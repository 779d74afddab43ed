"""The worker process: reconstructions run in a child Python process that stays alive between runs.

Why a process and not a thread of Blender: inside Blender's process the same torch call took about 1.7
times the CPU time it takes in a plain Python on the same machine, and up to 2.5 times the wall time
(``scripts/gui_smoke.sh``, numbers in the README). In a child process the work costs what the command
line costs, Blender's UI stays responsive, and a crash in native code (or the out-of-memory killer) ends
the child, never Blender.

The child is Blender's own Python (:func:`operators.deps.blender_python`) running ``core/worker.py``,
which hands over to ``operators/worker_child.py``; it imports the core and ``operators.runner``, never
``bpy``. It starts with the panel's model warm-up (or the first run) and stays alive so that the model
stays loaded; :func:`shutdown` (unregister, Blender's exit) stops it. One job runs at a time; messages
are pickles over the child's stdin/stdout:

- parent -> child: ``("warm_up", key, model, device)``, ``("run", job_id, request)``,
  ``("cancel", job_id)``, ``("quit",)``;
- child -> parent: ``("warmed", key)``, ``("progress", job_id, ProgressReport)``,
  ``("done", job_id, Outcome)``.

If the child dies, the running job ends with one line saying so, nothing is added to the scene, and the
next run starts a new child.
"""

from __future__ import annotations

import atexit
import itertools
import os
import subprocess
import sys
import threading
import traceback

from ..core import worker as channel

_SERVE = "operators.worker_child"
"""the module, relative to the extension's package, whose ``child_main`` serves in the child."""
_ids = itertools.count(1)


class Pending:
    """A warm-up sent to the child; duck-types the ``threading.Thread`` that the thread fallback uses."""

    def __init__(self, process: WorkerProcess):
        self.process = process
        self.done = threading.Event()

    def is_alive(self) -> bool:
        return not self.done.is_set()

    def join(self, timeout: float | None = None) -> None:
        self.done.wait(timeout)

    @property
    def stale(self) -> bool:
        """The child that warmed up ended: a new one is cold."""
        return not self.process.alive


class WorkerProcess:
    """One child process and the thread that reads its messages."""

    def __init__(self, python: str):
        package = __package__.rpartition(".")[0]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self.proc = subprocess.Popen([python, "-I", os.path.join(root, "core", "worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, creationflags=flags)
        self.lock = threading.Lock()
        self.jobs: dict[int, object] = {}
        self.warming: dict[tuple, Pending] = {}
        self.alive = True
        self.send({"package": package, "root": root, "path": list(sys.path), "serve": _SERVE})
        self.reader = threading.Thread(target=self._read, name="shape_from_image_worker_reader", daemon=True)
        self.reader.start()

    def send(self, message) -> bool:
        """False when the child is gone (its end of the pipe is closed)."""
        try:
            channel.send(self.proc.stdin, message, self.lock)
            return True
        except (OSError, ValueError):
            return False

    def warm_up(self, model: str, device: str) -> Pending:
        key = (model, device)
        pending = self.warming[key] = Pending(self)
        if not self.send(("warm_up", key, model, device)):
            pending.done.set()
        return pending

    def submit(self, job) -> None:
        """Run ``job`` (a ``runner.Job``) in the child; its messages arrive in ``job.messages``."""
        job.process_id = next(_ids)
        self.jobs[job.process_id] = job
        if not self.send(("run", job.process_id, job.request)):
            self._child_ended()

    def cancel(self, job) -> None:
        self.send(("cancel", job.process_id))

    def _read(self) -> None:
        try:  # results unpickle into the core's classes, which import torch: import them while the child works
            from ..core import mesh, result  # noqa: F401
        except ImportError:
            pass  # missing dependencies: the child reports them
        try:
            while True:
                message = channel.recv(self.proc.stdout)
                kind = message[0]
                if kind == "warmed":
                    self.warming[message[1]].done.set()
                elif kind == "progress":
                    self.jobs[message[1]].messages.put(("progress", message[2]))
                elif kind == "done":
                    self.jobs.pop(message[1]).finish(message[2])
        except EOFError:
            pass
        except Exception:  # noqa: BLE001 (a message that cannot be read ends the child: it is reported below)
            traceback.print_exc()
        self._child_ended()

    def _child_ended(self) -> None:
        """The child is gone: every job it had ends with one line, every warm-up counts as done."""
        self.alive = False
        self.stop(timeout=5.0)
        how = describe_exit(self.proc.returncode)
        for job_id in list(self.jobs):
            job = self.jobs.pop(job_id, None)
            if job is not None:
                job.finish(job.failed_outcome(f"the reconstruction process {how}; nothing was added to the scene, "
                                              "run it again (details in the system console)"))
        for pending in self.warming.values():
            pending.done.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the child to quit; terminate it, then kill it, if it does not within ``timeout``."""
        self.alive = False
        if self.proc.poll() is None:
            self.send(("quit",))
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        for end in (None, self.proc.terminate, self.proc.kill):
            if end is not None and self.proc.poll() is None:
                end()
            try:
                self.proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue


def describe_exit(code: int | None) -> str:
    """How the child ended, in words."""
    if code is None:
        return "stopped answering"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == getattr(signal, "SIGKILL", 9) else ""
        return f"was killed by {name}{hint}"
    return f"ended with exit status {code}"


_process: WorkerProcess | None = None
_start_lock = threading.Lock()


def get() -> WorkerProcess:
    """The running child, started now if there is none (or the last one ended)."""
    global _process
    with _start_lock:
        if _process is None or not _process.alive or _process.proc.poll() is not None:
            from .deps import blender_python

            _process = WorkerProcess(blender_python())
        return _process


def current() -> WorkerProcess | None:
    """The child if one was started (tests)."""
    return _process


def shutdown(timeout: float = 2.0) -> None:
    """Stop the child (add-on unregister, Blender's exit); a running job ends as cancelled."""
    global _process
    with _start_lock:
        process, _process = _process, None
    if process is not None:
        process.stop(timeout)
        process.reader.join(timeout)


atexit.register(shutdown)
