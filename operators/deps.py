"""Runtime dependencies (torch & co.): status, the add-on's own install folder, pip install.

Packages are installed with ``<Blender's python> -m pip install --target <deps>`` into the
extension's user directory (``bpy.utils.extension_path_user(<package>, path="deps")``), never into
the extension's own folder, which is replaced on every update. That folder is appended to
``sys.path`` at register time (Blender's bundled numpy keeps precedence).

:class:`Installer` is the plan, free of Blender: find or bootstrap pip (``ensurepip``, else a pip
wheel on disk), install torch from the PyTorch index of the chosen flavor and, where that index
cannot be reached, from PyPI, then the other packages; always binary wheels for Blender's own Python
version. The operator runs its commands in a subprocess polled by a modal timer, so the UI does not
freeze, and shows pip's latest line in the panel.
"""

from __future__ import annotations

import importlib
import importlib.util
import glob
import os
import platform
import shlex
import shutil
import subprocess
import sys

import bpy

from . import ADDON_ID, tag_sidebar_redraw

TORCH_VERSION = "2.13.0"
TORCH_INDEX = {
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": "https://download.pytorch.org/whl/cu128",
}
"""PyTorch wheel index per flavor (the CUDA one needs an NVIDIA driver recent enough for it)."""
PYPI_TORCH_SIZE = {"Linux": "about 5 GB: the CUDA build with its NVIDIA libraries", "Windows": "about 0.3 GB",
                   "Darwin": "about 0.1 GB"}
"""what ``pip install torch`` downloads from PyPI per system (said when the PyTorch index is unreachable)."""
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
        _status_cache = {name: _findable(name) for name in MODULES}
    return _status_cache


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a blocked or half-installed package counts as missing
        return False


def missing(refresh: bool = False) -> list[str]:
    return [name for name, ok in status(refresh).items() if not ok]

def blender_python() -> str:
    """The Python interpreter Blender runs (``sys.executable`` is Blender itself in some builds)."""
    exe = sys.executable
    if os.path.basename(exe).lower().startswith("python"):
        return exe
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.join(sys.prefix, "bin", f"python{version}"), os.path.join(sys.prefix, "bin", "python3"),
                      os.path.join(sys.prefix, "python.exe"), shutil.which(f"python{version}")):
        if candidate and os.path.isfile(candidate):
            return candidate
    return exe


def pip_wheels() -> list[str]:
    """pip wheels on disk that can run pip without installing it (``python pip-X.whl/pip``):
    ensurepip's bundled wheel, Debian's ``python3-pip-whl``."""
    folders = [os.path.join(os.path.dirname(os.__file__), "ensurepip", "_bundled"), "/usr/share/python-wheels"]
    return sorted(path for folder in folders for path in glob.glob(os.path.join(folder, "pip-*.whl")))


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Installer:
    """The install as a generator of commands: :meth:`run` yields each command line and receives its
    exit status; afterwards ``error`` is None (done) or one short line saying what failed, ``phase``
    says what runs now (the panel shows it) and ``notes`` what the user should know (the fallback)."""

    def __init__(self, flavor: str = "CPU", target: str | None = None, python: str | None = None,
                 wheels: list[str] | None = None, system: str | None = None,
                 python_version: tuple[int, int] | None = None):
        self.flavor = flavor
        self.target = target or deps_dir(create=False)
        self.python = python or blender_python()
        self.wheels = pip_wheels() if wheels is None else wheels
        self.system = system or platform.system()
        self.python_version = python_version or tuple(sys.version_info[:2])
        self.phase = "finding pip"
        self.notes: list[str] = []
        self.error: str | None = None
        self.pip = [self.python, "-m", "pip"]

    def pip_install(self, *args: str, pip: list[str] | None = None) -> list[str]:
        """``pip install`` into the target, binary wheels for Blender's Python version only."""
        version = "%d.%d" % self.python_version
        return [*(pip or self.pip), "install", "--upgrade", "--no-input", "--disable-pip-version-check",
                "--only-binary=:all:", "--python-version", version, "--target", self.target, *args]

    def torch_commands(self, pip: list[str] | None = None) -> list[list[str]]:
        """torch from the flavor's PyTorch index, else (the index unreachable) from PyPI."""
        return [self.pip_install("--index-url", TORCH_INDEX[self.flavor], f"torch=={TORCH_VERSION}", pip=pip),
                self.pip_install(f"torch=={TORCH_VERSION}", pip=pip)]

    def other_command(self, pip: list[str] | None = None) -> list[str]:
        return self.pip_install(*REQUIREMENTS.values(), pip=pip)

    def manual_text(self) -> str:
        """Shell text the user can paste into a terminal (with the PyPI fallback for torch)."""
        first, fallback = (shlex.join(cmd) for cmd in self.torch_commands())
        return f"{{ {first} || {fallback}; }} && {shlex.join(self.other_command())}"

    def run(self):
        """Generator: yields command lines, receives their exit status."""
        if (yield [*self.pip, "--version"]) != 0:
            self.phase = "installing pip (ensurepip)"
            if (yield [self.python, "-m", "ensurepip", "--upgrade"]) != 0 or (yield [*self.pip, "--version"]) != 0:
                if not self.wheels:
                    self.error = (f"Blender's Python ({self.python}) has no pip and ensurepip failed; install pip "
                                  "for it (Debian/Ubuntu: apt install python3-pip) and try again")
                    return
                self.pip = [self.python, os.path.join(self.wheels[-1], "pip")]
                self.notes.append(f"pip runs from {os.path.basename(self.wheels[-1])}")
        index, pypi = self.torch_commands()
        self.phase = f"PyTorch {TORCH_VERSION} ({self.flavor}) from download.pytorch.org"
        if (yield index) != 0:
            size = PYPI_TORCH_SIZE.get(self.system, "")
            self.notes.append(f"PyTorch index unreachable: torch comes from PyPI ({size})")
            self.phase = f"PyTorch {TORCH_VERSION} from PyPI ({size})"
            if (yield pypi) != 0:
                self.error = "pip could not install PyTorch from the PyTorch index or PyPI"
                return
        self.phase = "NumPy, OpenCV, scikit-image, SciPy, trimesh ..."
        if (yield self.other_command()) != 0:
            self.error = "pip could not install " + ", ".join(r.split(">")[0].split("=")[0]
                                                             for r in REQUIREMENTS.values())
            return
        self.phase = "done"


def online() -> bool:
    """Blender's "Allow Online Access" (Preferences > System > Network)."""
    return bool(bpy.app.online_access)


def log_path() -> str:
    """The install log, beside the deps folder (its folder is made when the install starts)."""
    return os.path.join(os.path.dirname(deps_dir(create=False)), "install.log")


def log_tail(path: str, size: int = 4096) -> str:
    """The last non-empty line of the log (pip's latest message), shortened for the panel."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line and not line.startswith("$ ")]
    return _short(lines[-1], 60) if lines else ""


# The pip subprocess of the modal install (terminated at unregister), what it does, how the last one ended.
_process: subprocess.Popen | None = None
_installer: Installer | None = None
_last: tuple[bool, str] | None = None
"""(succeeded, one short line) of the last install (the panel shows it with the log's path)."""


_busy = False
"""an interactive install is under way (between its commands too)."""


def running_install() -> subprocess.Popen | None:
    return _process if _process is not None and _process.poll() is None else None


def install_in_progress() -> bool:
    """True from pressing Install Dependencies until its last command ended."""
    return _busy or running_install() is not None


def progress_text() -> str:
    """What the running install does now: its phase and pip's latest line ('' when none runs)."""
    if not install_in_progress() or _installer is None:
        return ""
    detail = log_tail(log_path())
    return f"{_installer.phase}: {detail}" if detail else _installer.phase


def last_result() -> tuple[bool, str] | None:
    return _last


def stop_install() -> None:
    """Terminate a running pip started by this add-on."""
    global _process, _busy
    _busy = False
    proc = running_install()
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    _process = None


def _redraw_progress(context) -> None:
    """Redraw only the regions that show the install: the 3D View sidebars and the Preferences."""
    for window in context.window_manager.windows:
        tag_sidebar_redraw(window.screen)
        tag_sidebar_redraw(window.screen, ("PREFERENCES",), ("WINDOW",))


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

    _timer = None
    _log = None
    _steps = None
    _shown = ""

    @classmethod
    def poll(cls, context):
        if install_in_progress():
            cls.poll_message_set("Dependencies are being installed")
            return False
        return True

    def _start(self) -> bool:
        """Set up the installer and the log; False (reported) when online access is off."""
        global _installer, _last
        _installer = Installer(self.flavor, deps_dir())
        self._steps = _installer.run()
        if not online():
            print(f"{ADDON_ID}: to install by hand run: {_installer.manual_text()}")
            self.report({"ERROR"}, "Online access is off (Preferences > System > Network). Allow it and "
                                   "try again, or install by hand: Copy Install Commands")
            return False
        deps_dir(create=True)
        self._log = open(log_path(), "a", encoding="utf-8")  # noqa: SIM115 (open across modal calls)
        self._log.write(f"# {ADDON_ID}: install into {_installer.target}\n# by hand: {_installer.manual_text()}\n")
        _last = None
        return True

    def _send(self, code: int | None) -> list[str] | None:
        """The next command after an exit status (None: the first), or None when the plan ended."""
        try:
            cmd = next(self._steps) if code is None else self._steps.send(code)
        except StopIteration:
            return None
        self._log.write("$ " + shlex.join(cmd) + "\n")
        self._log.flush()
        return cmd

    def _end(self) -> set:
        """Report how the install ended: one short line (the log's path is in the panel)."""
        global _last
        if self._log is not None:
            self._log.close()
            self._log = None
        if _installer.error is None:
            add_to_sys_path()
            still = missing(refresh=True)
            if still:
                _installer.error = f"pip finished but {', '.join(still)} cannot be imported"
        notes = "; ".join(_installer.notes)
        if _installer.error is not None:
            detail = log_tail(log_path())
            _last = (False, f"Install failed: {_installer.error}" + (f" ({detail})" if detail else ""))
            print(f"{ADDON_ID}: {_last[1]}. Log: {log_path()}")
            self.report({"ERROR"}, f"{_last[1]}. The panel copies or opens the log")
            return {"CANCELLED"}
        _last = (True, "Dependencies installed" + (f" ({notes})" if notes else ""))
        self.report({"INFO"}, _last[1])
        return {"FINISHED"}

    def _run(self, cmd: list[str], wait: bool):
        global _process
        try:
            _process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        except OSError as err:
            self._log.write(f"could not run {cmd[0]}: {err}\n")
            _process = None
            return 127
        return _process.wait() if wait else None

    def execute(self, context):
        """Synchronous install (background mode / scripts)."""
        if not self._start():
            return {"CANCELLED"}
        code = None
        while (cmd := self._send(code)) is not None:
            code = self._run(cmd, wait=True)
        return self._end()

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if not self._start():
            return {"CANCELLED"}
        cmd = self._send(None)
        while cmd is not None and (code := self._run(cmd, wait=False)) is not None:  # could not start
            cmd = self._send(code)
        if cmd is None:
            return self._end()
        global _busy
        _busy = True
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        _redraw_progress(context)
        return {"RUNNING_MODAL"}

    def _finish_modal(self, context) -> None:
        global _busy
        _busy = False
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _redraw_progress(context)

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        proc = _process
        code = 1 if proc is None else proc.poll()  # None: stopped from outside (unregister)
        if code is None:
            shown = progress_text()
            if shown != self._shown:  # redraw the panel only when the line changed
                self._shown = shown
                _redraw_progress(context)
            return {"PASS_THROUGH"}
        cmd = self._send(code)
        while cmd is not None and (code := self._run(cmd, wait=False)) is not None:
            cmd = self._send(code)
        if cmd is not None:
            return {"PASS_THROUGH"}
        self._finish_modal(context)
        return self._end()

    def cancel(self, context):
        stop_install()
        self._finish_modal(context)


class SHAPE_FROM_IMAGE_OT_copy_text(bpy.types.Operator):
    """Copy to the clipboard"""

    bl_idname = "shape_from_image.copy_text"
    bl_label = "Copy"
    bl_options = {"INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    text: bpy.props.StringProperty(name="Text", options={"SKIP_SAVE"})
    what: bpy.props.StringProperty(name="What", default="Text", options={"SKIP_SAVE"})

    @classmethod
    def description(cls, context, properties):
        return f"Copy to the clipboard: {properties.text}"

    def execute(self, context):
        context.window_manager.clipboard = self.text
        self.report({"INFO"}, f"{self.what} copied to the clipboard")
        return {"FINISHED"}


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


CLASSES = (SHAPE_FROM_IMAGE_OT_install_dependencies, SHAPE_FROM_IMAGE_OT_refresh_dependencies,
           SHAPE_FROM_IMAGE_OT_copy_text)
