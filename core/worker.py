"""A child process that runs work for a parent process (the Blender add-on's worker process).

The two talk over the child's stdin (parent -> child) and stdout (child -> parent): each message is one
pickle preceded by its length (:func:`send`, :func:`recv`); numpy arrays and results cross as they are.
Anything else the child prints goes to its stderr (Blender's system console).

Started as ``python -I <extension>/core/worker.py`` (``operators/worker_process.py``). The first message
is a dict: ``package`` (the extension's package name in the parent, e.g.
``bl_ext.user_default.shape_from_image``), ``root`` (the extension's folder), ``path`` (the parent's
``sys.path``: Blender's modules and the installed dependencies) and ``serve`` (a module of the package,
relative to it, whose ``child_main(inbox, outbox)`` serves the rest). The package is rebuilt here under
the parent's own name without running its ``__init__.py`` (which imports ``bpy``), so classes pickle
the same way on both sides. Nothing here imports torch or bpy.
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import sys
import types

_HEADER = struct.Struct("!Q")


def send(stream, message, lock=None) -> None:
    """Write one message (any picklable object) to a binary stream; ``lock`` serialises writers."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if lock is None:
        _write(stream, data)
    else:
        with lock:
            _write(stream, data)


def _write(stream, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def recv(stream):
    """Read one message; EOFError when the other side closed the stream."""
    size = _HEADER.unpack(_read_exactly(stream, _HEADER.size))[0]
    return pickle.loads(_read_exactly(stream, size))


def _read_exactly(stream, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other process closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def install_package(name: str, root: str) -> None:
    """Make ``name`` (dotted) importable as the package in ``root`` without executing its ``__init__``."""
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        dotted = ".".join(parts[:depth])
        if dotted in sys.modules:
            continue
        module = types.ModuleType(dotted)
        module.__path__ = [root] if depth == len(parts) else []
        module.__package__ = dotted
        sys.modules[dotted] = module
        if depth > 1:
            setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], module)


def main() -> int:
    """The child's entry point: take the channel, rebuild the package, hand over to its ``serve`` module."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in Blender's terminal is Blender's to handle
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() and native code writing to stdout now reach stderr, never the channel
    inbox = sys.stdin.buffer
    try:
        hello = recv(inbox)
    except EOFError:
        return 0
    sys.path[:0] = [entry for entry in hello["path"] if entry not in sys.path]
    install_package(hello["package"], hello["root"])
    serve = importlib.import_module(f"{hello['package']}.{hello['serve']}")
    return int(serve.child_main(inbox, outbox) or 0)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    code = main()
    sys.stderr.flush()
    # no interpreter shutdown: the thread reading stdin holds its lock (Python aborts on that), and nothing
    # here needs cleaning up
    os._exit(code)
