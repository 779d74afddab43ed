"""Drive the installed extension in a real Blender GUI (see scripts/gui_smoke.sh); not part of CI.

In Blender (``blender --online-mode --python gui_smoke_drive.py -- OUT PHOTO STEPS``): with timers, as a
user would, in the 3D View's sidebar: screenshot the panel without dependencies, press Install
Dependencies and wait, reconstruct PHOTO with STEPS inversion steps (timed, 3 runs), start another run and
cancel it, undo the runs, save screenshots and ``OUT/gui.json``; then quit.

With a plain Python (``python3 gui_smoke_drive.py --cli EXT DEPS PHOTO STEPS OUT [RUNS]``): the same
``core.reconstruct`` call the panel makes, timed the same way (after the same warm-up), into
``OUT/cli.json``; the GUI runs it after each of its own timed runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

MODEL, DEVICE, MESH_RESOLUTION = "chairs", "auto", 128  # the panel's defaults
RUNS = int(os.environ.get("SMOKE_RUNS", "3"))
"""timed runs on each side; the median is reported (the machine may be shared)."""
WORKERS = [w for w in os.environ.get("SMOKE_WORKERS", "process").split(",") if w]
"""where the GUI runs each round's jobs, in order ("process": the extension's worker process, its default;
"thread": a thread of Blender's process); each round then runs the CLI once."""


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name of this process (Linux), to see who takes the CPU during a run."""
    ticks, total = os.sysconf("SC_CLK_TCK"), {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")].rstrip("0123456789:-_ ")
        fields = stat[stat.rindex(")") + 2:].split()
        total[name] = total.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return total


def process_cpu() -> float:
    """CPU seconds of this process so far, all threads (ended ones too)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pid_cpu(pid: int | None) -> float:
    """CPU seconds of another process so far (the worker process), 0 when there is none."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_delta(before: dict, after: dict) -> dict:
    return {k: round(v - before.get(k, 0.0), 1) for k, v in sorted(after.items(), key=lambda kv: -kv[1])
            if v - before.get(k, 0.0) >= 0.1}


def cli(ext: str, deps: str, photo: str, steps: int, out: str, runs: int = RUNS) -> None:
    sys.path[:0] = [ext, deps]
    import core

    started = time.perf_counter()
    core.warm_up(MODEL, DEVICE)
    warm = time.perf_counter() - started
    times = []
    cpu, total = thread_cpu(), process_cpu()
    for _ in range(runs):
        started = time.perf_counter()
        results = core.reconstruct([photo], model=MODEL, steps=steps, device=DEVICE,
                                   mesh_resolution=MESH_RESOLUTION)
        times.append(round(time.perf_counter() - started, 2))
    ok = results[0].ok
    report = {"warm_up_s": round(warm, 2), "runs_s": times, "reconstruct_s": sorted(times)[len(times) // 2],
              "ok": bool(ok), "faces": int(len(results[0].mesh.faces)) if ok else 0,
              "thread_cpu_s": cpu_delta(cpu, thread_cpu()), "process_cpu_s": round(process_cpu() - total, 1)}
    print("CLI", json.dumps(report), flush=True)
    with open(os.path.join(out, "cli.json"), "w") as f:
        json.dump(report, f, indent=1)


def gui(out: str, photo: str, steps: int) -> None:
    import bpy

    report: dict = {"blender": bpy.app.version_string, "python": sys.version.split()[0], "steps": steps}
    log = open(os.path.join(out, "gui.log"), "a", encoding="utf-8")  # noqa: SIM115 (open for the session)

    def say(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    def ext(name: str):
        return sys.modules[f"bl_ext.user_default.shape_from_image.{name}"]

    def view3d():
        window = bpy.context.window_manager.windows[0]
        area = max((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
        return window, area, next(r for r in area.regions if r.type == "WINDOW")

    def override():
        window, area, region = view3d()
        return bpy.context.temp_override(window=window, area=area, region=region, screen=window.screen)

    def shot(name: str) -> None:
        """The X screen as it is drawn now (Blender's own screenshot operator reads back black under Xvfb)."""
        import subprocess

        path = os.path.join(out, name)
        subprocess.run(["import", "-window", "root", path], check=False, timeout=60)
        say(f"screenshot {name}")

    def objects() -> list[str]:
        return sorted(o.name for o in bpy.data.objects)

    def script():
        window, area, _ = view3d()
        area.spaces.active.show_region_ui = True
        cube = bpy.data.objects.get("Cube")  # the startup file's cube would hide the chair
        if cube is not None:
            bpy.data.objects.remove(cube)
            with override():
                bpy.ops.ed.undo_push(message="Remove the startup cube")  # the runs' undo stops here
        yield 1.0  # the sidebar is drawn once before its tabs can be chosen
        for region in area.regions:
            if region.type == "UI":
                try:
                    region.active_panel_category = "Reconstruct"
                    region.tag_redraw()
                    say(f"sidebar tab: {region.active_panel_category}")
                except (AttributeError, TypeError) as err:
                    say(f"could not switch the sidebar tab: {err}")
        deps = ext("operators.deps")
        report["missing_before"] = deps.missing(refresh=True)
        say(f"missing before install: {report['missing_before']}")
        yield 2.0
        shot("01_needs_dependencies.png")

        # Install Dependencies, as the panel's button does (KEEP_PROFILE=1 runs find them installed)
        if not report["missing_before"]:
            yield from timed_runs()
            return
        started = time.perf_counter()
        with override():
            state = bpy.ops.shape_from_image.install_dependencies("INVOKE_DEFAULT", flavor="CPU")
        say(f"install invoked: {state}")
        shot_at = started + 25.0
        while deps.install_in_progress():
            if shot_at and time.perf_counter() > shot_at:
                shot("02_installing.png")
                shot_at = 0.0
            yield 1.0
        report["install_s"] = round(time.perf_counter() - started, 1)
        report["install_result"] = deps.last_result()
        report["missing_after"] = deps.missing(refresh=True)
        say(f"install: {report['install_result']} in {report['install_s']} s; missing {report['missing_after']}")
        report["install_log"] = deps.log_path()
        shot("03_installed.png")
        if report["missing_after"]:
            raise RuntimeError("dependencies are missing after the install")
        yield from timed_runs()

    def timed_runs():
        window, area, _ = view3d()

        # the panel starts the model's warm-up when it first shows; wait for it (the CLI warms up too)
        settings = bpy.context.scene.shape_from_image
        settings.filepath = photo
        settings.steps_preset = str(steps) if str(steps) in ("0", "10", "30") else "CUSTOM"
        settings.steps_custom = steps
        runner = ext("operators.runner")
        started = time.perf_counter()
        while not runner._WARMING and time.perf_counter() - started < 30:
            area.tag_redraw()
            yield 0.5
        while any(thread.is_alive() for thread in runner._WARMING.values()):
            yield 0.5
        report["gui_warm_up_wait_s"] = round(time.perf_counter() - started, 1)
        before = objects()

        # the timed runs: from pressing the button to the result in the scene; each followed by the same
        # call in a plain Python process (Blender waits idle meanwhile), so both see the same machine load
        import subprocess

        deps = ext("operators.deps")
        ext_dir = os.path.dirname(sys.modules["bl_ext.user_default.shape_from_image"].__file__)
        cli_cmd = [deps.blender_python(), os.path.abspath(__file__), "--cli", ext_dir, deps.deps_dir(), photo,
                   str(steps), out, "1"]
        worker = ext("operators.worker_process")
        by_worker: dict[str, list] = {where: [] for where in WORKERS}
        cli_times = []
        if "thread" in WORKERS:  # the panel warmed up the worker process; warm Blender's own process too
            import importlib
            import threading

            api = importlib.import_module("bl_ext.user_default.shape_from_image.core.api")
            warming = threading.Thread(target=api.warm_up, args=(MODEL, DEVICE))
            warming.start()
            while warming.is_alive():
                yield 0.5

        def gui_run(where: str):
            runner.WORKER = where
            process = worker.current() if where == "process" else None
            child = process.proc.pid if process is not None and process.alive else None
            cpu, total, child_cpu = thread_cpu(), process_cpu(), pid_cpu(child)
            started = time.perf_counter()
            with override():
                report["state"] = str(bpy.ops.shape_from_image.reconstruct(
                    "INVOKE_DEFAULT", filepath=photo, steps=steps, mesh_resolution=MESH_RESOLUTION))
            job = runner.active_job()
            child = job.process.proc.pid if job is not None and job.process is not None else child
            while runner.active_job() is not None:
                yield 0.25
            wall, blender_cpu = round(time.perf_counter() - started, 2), round(process_cpu() - total, 1)
            child_cpu = round(pid_cpu(child) - child_cpu, 1)
            by_worker[where].append({"wall_s": wall, "blender_cpu_s": blender_cpu, "worker_cpu_s": child_cpu,
                                     "cpu_s": round(blender_cpu + child_cpu, 1), "load": os.getloadavg()[0]})
            report.setdefault("gui_thread_cpu_s", []).append(cpu_delta(cpu, thread_cpu()))
            say(f"GUI run {len(by_worker[where])} ({where}): {wall} s, {blender_cpu} CPU s in Blender + {child_cpu} "
                f"in the worker process; CPU s per live thread {report['gui_thread_cpu_s'][-1]}")

        def cli_run():
            proc = subprocess.Popen(cli_cmd)
            while proc.poll() is None:
                yield 0.5
            with open(os.path.join(out, "cli.json")) as f:
                cli_report = json.load(f)
            cli_times.append(cli_report["reconstruct_s"])
            report.setdefault("cli_process_cpu_s", []).append(cli_report["process_cpu_s"])
            report.setdefault("cli_load", []).append(os.getloadavg()[0])
            say(f"CLI run {len(cli_times)}: {cli_times[-1]} s, {cli_report['process_cpu_s']} CPU s "
                f"(load {os.getloadavg()[0]:.1f})")

        for _ in range(RUNS):
            for where in WORKERS:
                yield from gui_run(where)
            yield from cli_run()
        times = [run["wall_s"] for run in by_worker[WORKERS[0]]]
        runner.WORKER = WORKERS[0]
        report["gui_runs"] = by_worker
        report["runs_s"], report["cli_runs_s"] = times, cli_times
        report["reconstruct_s"] = sorted(times)[len(times) // 2]
        report["cli_reconstruct_s"] = sorted(cli_times)[len(cli_times) // 2]
        status = runner.last_status()
        report["status"] = status.text if status is not None else None
        report["objects_after_run"] = objects()
        say(f"reconstruct {report['state']}: {report['status']} in {report['reconstruct_s']} s; objects {objects()}")
        with override():
            bpy.ops.view3d.view_selected()
        yield 2.0
        shot("04_result.png")

        # a second run, cancelled from the panel's Cancel button
        with override():
            bpy.ops.shape_from_image.reconstruct("INVOKE_DEFAULT", filepath=photo, steps=30,
                                                 mesh_resolution=MESH_RESOLUTION)
        yield 4.0
        shot("05_second_run.png")
        with override():
            bpy.ops.shape_from_image.cancel()
        while runner.active_job() is not None:
            yield 0.2
        report["objects_after_cancel"] = objects()
        status = runner.last_status()
        report["cancel_status"] = status.text if status is not None else None
        say(f"cancelled: {report['cancel_status']}; objects {objects()}")

        # undo the runs (each replaced the one before: one undo step each)
        for _ in range(RUNS * len(WORKERS)):
            with override():
                bpy.ops.ed.undo()
            yield 1.0
        report["objects_after_undo"] = objects()
        report["objects_before"] = before
        say(f"undo: objects {objects()}")
        shot("06_undone.png")
        report["ok"] = (report["objects_after_cancel"] == report["objects_after_run"] != before
                        and report["objects_after_undo"] == before)

    steps_gen = script()

    def tick():
        try:
            return next(steps_gen)
        except StopIteration:
            pass
        except Exception:  # noqa: BLE001 (the smoke test reports every failure in its log)
            report["error"] = traceback.format_exc()
            say(report["error"])
        with open(os.path.join(out, "gui.json"), "w") as f:
            json.dump(report, f, indent=1)
        say(f"done: {json.dumps(report)}")
        bpy.ops.wm.quit_blender()
        return None

    bpy.app.timers.register(tick, first_interval=3.0)


if __name__ == "__main__":
    if "--cli" in sys.argv:
        ext_dir, deps_dir, image, n, out_dir, *runs = sys.argv[sys.argv.index("--cli") + 1:]
        cli(ext_dir, deps_dir, image, int(n), out_dir, int(runs[0]) if runs else RUNS)
    else:
        out_dir, image, n = sys.argv[sys.argv.index("--") + 1:][:3]
        gui(out_dir, image, int(n))
