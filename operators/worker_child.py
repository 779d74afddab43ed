"""The worker process's own side (see ``worker_process.py``): runs in the child, never in Blender.

``core/worker.py`` hands the child's stdin and stdout to :func:`child_main`, which serves warm-ups and
jobs in order; a job runs through the same :meth:`runner.Job._work` as Blender's thread fallback, with
its messages sent to the parent instead of put in a queue.
"""

from __future__ import annotations

import os
import queue
import threading

from ..core import worker as channel
from . import runner


class _Forward:
    """Stands in for ``Job.messages`` in the child: what the job posts goes to the parent."""

    def __init__(self, outbox, lock, job_id: int):
        self.outbox, self.lock, self.job_id = outbox, lock, job_id

    def put(self, item) -> None:
        channel.send(self.outbox, (item[0], self.job_id, item[1]), self.lock)


def child_main(inbox, outbox) -> int:
    """Serve warm-ups and jobs in order until ``quit`` (or the parent closes the pipe)."""
    lock = threading.Lock()
    work: queue.Queue = queue.Queue()
    cancelled: set[int] = set()
    running: dict[str, object] = {}

    def read() -> None:
        while True:
            try:
                message = channel.recv(inbox)
            except (EOFError, OSError):
                os._exit(0)  # the parent is gone: nobody is waiting for the work
            if message[0] == "cancel":
                cancelled.add(message[1])
                job = running.get("job")
                if job is not None and job.process_id == message[1]:
                    job.cancel()
            else:
                work.put(message)

    threading.Thread(target=read, name="shape_from_image_worker_inbox", daemon=True).start()
    while True:
        message = work.get()
        if message[0] == "quit":
            return 0
        if message[0] == "warm_up":
            try:
                from ..core.api import warm_up

                warm_up(message[2], message[3])
            except Exception:  # noqa: BLE001 (the run itself reports any problem)
                pass
            channel.send(outbox, ("warmed", message[1]), lock)
        elif message[0] == "run":
            job = runner.Job(message[2])
            job.process_id = message[1]
            job.messages = _Forward(outbox, lock, job.process_id)
            running["job"] = job
            if job.process_id in cancelled:
                job.cancel()
            job._work()
            running.pop("job", None)
