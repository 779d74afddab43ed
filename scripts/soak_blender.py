"""Memory soak: many reconstructions in one Blender process, resident memory (RSS) as it goes.

    python scripts/soak_blender.py [--runs 1000] [--image examples/chair_dining.png] [--steps 0]
        [--mesh-resolution 64] [--every 50] [--reset-every 0] [--worker-thread] [--max-growth 5]

Runs the extension's operator ``--runs`` times on one photo with the shipped model (``--model``), each
run replacing the previous result in the scene, and prints the process's RSS after run ``--every``,
every ``--every`` runs after it, and after the last run. The operator runs the core synchronously, as
in background mode; ``--worker-thread`` runs it on a worker thread of its own each time instead, as
the interactive (modal) operator does.
``--reset-every K`` also loads the empty factory scene every K runs. The exit status is 1 when the
RSS after the last run exceeds the RSS after run ``--every`` by more than ``--max-growth`` percent
(the baseline is taken after the warm-up, when the caches are full), else 0.

Needs the ``bpy`` module (the venv's bpy 5.0.1 wheel) or ``blender -b --python scripts/soak_blender.py --``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; elsewhere the peak from ``resource``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1e6 if sys.platform == "darwin" else 1e3)


def _extension():
    """The extension, registered, as the batch script beside this one loads it."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    from batch_reconstruct import load_extension

    return load_extension()[0]


def soak(image: str, runs: int, steps: int, resolution: int, every: int, reset_every: int = 0,
         worker_thread: bool = False, model: str = "chairs", echo=print) -> dict[int, float]:
    """RSS in MB after run ``every``, each multiple of it and the last run, keyed by run number."""
    import bpy

    runner = importlib.import_module(f"{_extension().__name__}.operators.runner")
    inline = runner.Job.run_inline

    def on_a_thread(job):  # what the modal operator's thread fallback does, waited for here
        job.start()
        return job.wait()

    runner.Job.run_inline, where, runner.WORKER = on_a_thread if worker_thread else inline, runner.WORKER, "thread"
    try:
        return _runs(bpy, image, runs, steps, resolution, every, reset_every, model, echo)
    finally:
        runner.Job.run_inline, runner.WORKER = inline, where


def _runs(bpy, image, runs, steps, resolution, every, reset_every, model, echo) -> dict[int, float]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    marks: dict[int, float] = {}
    t0 = time.perf_counter()
    for run in range(1, runs + 1):
        if reset_every and run % reset_every == 0:
            bpy.ops.wm.read_factory_settings(use_empty=True)
        done = bpy.ops.shape_from_image.reconstruct(filepath=image, model=model, steps=steps,
                                                    mesh_resolution=resolution, device="CPU")
        if done != {"FINISHED"}:
            raise SystemExit(f"error: run {run} did not finish ({done})")
        if run % every == 0 or run == runs:
            marks[run] = rss_mb()
            echo(f"run {run}: RSS {marks[run]:.1f} MB ({time.perf_counter() - t0:.0f} s)", flush=True)
    return marks


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--image", default=str(ROOT / "examples" / "chair_dining.png"))
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--mesh-resolution", type=int, default=64)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--reset-every", type=int, default=0, help="load the empty factory scene every K runs")
    ap.add_argument("--worker-thread", action="store_true", help="run each reconstruction on its own thread")
    ap.add_argument("--model", default="chairs")
    ap.add_argument("--max-growth", type=float, default=5.0, help="percent of the RSS after run --every")
    args = ap.parse_args(argv)
    marks = soak(os.path.abspath(args.image), args.runs, args.steps, args.mesh_resolution, args.every,
                 args.reset_every, args.worker_thread, args.model)
    first, last = marks[min(marks)], marks[max(marks)]
    growth = 100 * (last / first - 1)
    print(f"RSS after run {min(marks)}: {first:.1f} MB; after run {max(marks)}: {last:.1f} MB ({growth:+.1f}%)")
    return 0 if growth <= args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
