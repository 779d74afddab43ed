"""Runtime dependencies (torch & co.): status, the add-on's own install folder, pip install.

Packages are installed with ``<Blender's python> -m pip install --target <deps>`` into the
extension's user directory (``bpy.utils.extension_path_user(<package>, path="deps")``), never into
the extension's own folder, which is replaced on every update. That folder is appended to
``sys.path`` at register time (Blender's bundled numpy keeps precedence).
The pip run happens in a subprocess polled by a modal timer, so the UI does not freeze.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import subprocess
import sys

import bpy

from . import ADDON_ID

TORCH_VERSION = "2.13.0"
TORCH_INDEX = {
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": "https://download.pytorch.org/whl/cu128",
}
"""PyTorch wheel index per flavor (the CUDA one needs an NVIDIA driver recent enough for it)."""
REQUIREMENTS = {
    # import name: pip requirement; keep in sync with requirements.txt (a test checks it).
    "numpy": "numpy>=1.26,<3",
    "PIL": "pillow>=10",
    "cv2": "opencv-python-headless>=4.9",
    "skimage": "scikit-image>=0.22",
    "trimesh": "trimesh>=4",
    "safetensors": "safetensors>=0.4",
    "scipy": "scipy>=1.10",
    "tqdm": "tqdm>=4.60",
    "fast_simplification": "fast-simplification>=0.1.9,<1",
}
MODULES = ("torch", *REQUIREMENTS)
"""modules the core imports; the panel shows which ones are missing."""

_status_cache: dict[str, bool] | None = None
_added_paths: list[str] = []


def deps_dir(create: bool = False) -> str:
    """The add-on's private site-packages folder (in Blender's user extension data)."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="deps", create=create)
    except ValueError:  # imported as a plain module (tests, batch script), not as an extension
        path = os.path.join(bpy.utils.user_resource("CONFIG"), ADDON_ID, "deps")
        if create:
            os.makedirs(path, exist_ok=True)
        return path


def add_to_sys_path() -> None:
    """Append the deps folder to ``sys.path`` when it exists (cheap; called at register)."""
    path = deps_dir(create=False)
    if path and os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)
        _added_paths.append(path)
        importlib.invalidate_caches()


def remove_from_sys_path() -> None:
    """Undo :func:`add_to_sys_path` (unregister)."""
    while _added_paths:
        path = _added_paths.pop()
        if path in sys.path:
            sys.path.remove(path)


def status(refresh: bool = False) -> dict[str, bool]:
    """{module: importable}; cached (``find_spec`` does not import anything)."""
    global _status_cache
    if _status_cache is None or refresh:
        importlib.invalidate_caches()
        _status_cache = {name: importlib.util.find_spec(name) is not None for name in MODULES}
    return _status_cache


def missing(refresh: bool = False) -> list[str]:
    return [name for name, ok in status(refresh).items() if not ok]


def install_commands(flavor: str = "CPU", target: str | None = None,
                     python: str | None = None) -> list[list[str]]:
    """The pip command lines that install everything into ``target``: torch from the PyTorch
    index of the flavor, then the rest from PyPI."""
    python = python or sys.executable
    target = target or deps_dir(create=False)
    pip = [python, "-m", "pip", "install", "--upgrade", "--no-input", "--target", target]
    return [pip + ["--index-url", TORCH_INDEX[flavor], f"torch=={TORCH_VERSION}"],
            pip + list(REQUIREMENTS.values())]


def commands_text(commands: list[list[str]]) -> str:
    """Shell text the user can paste into a terminal."""
    return " && ".join(shlex.join(cmd) for cmd in commands)


def log_path() -> str:
    return os.path.join(os.path.dirname(deps_dir(create=True)), "install.log")


# The pip subprocess of the modal install (terminated at unregister).
_process: subprocess.Popen | None = None


def running_install() -> subprocess.Popen | None:
    return _process if _process is not None and _process.poll() is None else None


def stop_install() -> None:
    """Terminate a running pip started by this add-on."""
    global _process
    proc = running_install()
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    _process = None


class SHAPE_FROM_IMAGE_OT_install_dependencies(bpy.types.Operator):
    """Download PyTorch and the other Python packages the reconstruction needs (uses the network)"""

    bl_idname = "shape_from_image.install_dependencies"
    bl_label = "Install Dependencies"
    bl_options = {"REGISTER", "INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    flavor: bpy.props.EnumProperty(
        name="PyTorch",
        items=(("CPU", "CPU", "PyTorch for the CPU (Apple MPS included on macOS), smaller download"),
               ("CUDA", "CUDA (NVIDIA)", "PyTorch with CUDA for NVIDIA GPUs, large download")),
        default="CPU")

    _commands: list
    _index: int
    _timer = None
    _log = None

    @classmethod
    def poll(cls, context):
        if running_install() is not None:
            cls.poll_message_set("Dependencies are being installed")
            return False
        return True

    def _refuse_offline(self, commands) -> bool:
        if bpy.app.online_access:
            return False
        self.report({"ERROR"}, "Online access is disabled (Preferences > System > Network > Allow Online "
                               f"Access). Allow it and press Install Dependencies again, or run by hand: "
                               f"{commands_text(commands)}")
        return True

    def _fail(self, message: str) -> set:
        self.report({"ERROR"}, f"{message}. Install by hand with: {commands_text(self._commands)} "
                               f"(log: {log_path()})")
        return {"CANCELLED"}

    def _succeed(self) -> set:
        add_to_sys_path()
        still = missing(refresh=True)
        if still:
            return self._fail(f"pip finished but these modules are still missing: {', '.join(still)}")
        self.report({"INFO"}, f"Dependencies installed in {deps_dir()}")
        return {"FINISHED"}

    def execute(self, context):
        """Synchronous install (background mode / scripts)."""
        self._commands = install_commands(self.flavor, deps_dir(create=True))
        if self._refuse_offline(self._commands):
            return {"CANCELLED"}
        with open(log_path(), "a", encoding="utf-8") as log:
            for cmd in self._commands:
                log.write("$ " + shlex.join(cmd) + "\n")
                log.flush()
                try:
                    code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
                except OSError as err:
                    return self._fail(f"could not run pip ({err})")
                if code != 0:
                    return self._fail(f"pip exited with status {code}")
        return self._succeed()

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        self._commands = install_commands(self.flavor, deps_dir(create=True))
        if self._refuse_offline(self._commands):
            return {"CANCELLED"}
        self._index = -1
        self._log = open(log_path(), "a", encoding="utf-8")  # noqa: SIM115 (open across modal calls)
        if not self._next_command():
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        context.workspace.status_text_set("Shape from Image: installing dependencies (pip)...")
        return {"RUNNING_MODAL"}

    def _next_command(self) -> bool:
        global _process
        self._index += 1
        cmd = self._commands[self._index]
        self._log.write("$ " + shlex.join(cmd) + "\n")
        self._log.flush()
        try:
            _process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        except OSError as err:
            self._finish_modal(bpy.context)
            self._fail(f"could not run pip ({err})")
            return False
        return True

    def _finish_modal(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        proc = _process
        if proc is None:
            self._finish_modal(context)
            return self._fail("the pip process was stopped")
        code = proc.poll()
        if code is None:
            return {"PASS_THROUGH"}
        if code != 0:
            self._finish_modal(context)
            return self._fail(f"pip exited with status {code}")
        if self._index + 1 < len(self._commands):
            return {"PASS_THROUGH"} if self._next_command() else {"CANCELLED"}
        self._finish_modal(context)
        return self._succeed()

    def cancel(self, context):
        stop_install()
        self._finish_modal(context)


class SHAPE_FROM_IMAGE_OT_refresh_dependencies(bpy.types.Operator):
    """Check again which Python packages are importable"""

    bl_idname = "shape_from_image.refresh_dependencies"
    bl_label = "Refresh"
    bl_options = {"INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context):
        add_to_sys_path()
        gone = missing(refresh=True)
        self.report({"INFO"}, "All dependencies found" if not gone else f"Missing: {', '.join(gone)}")
        return {"FINISHED"}


CLASSES = (SHAPE_FROM_IMAGE_OT_install_dependencies, SHAPE_FROM_IMAGE_OT_refresh_dependencies)
