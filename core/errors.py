"""The one exception type users see.

Every failure that a user can cause (a bad file, a wrong option, a missing model) is raised as
:class:`ReconstructionError` with a message that names the file and says what to do. The CLI
prints it as one line, Blender shows it with ``report({'ERROR'}, ...)``.
"""

from __future__ import annotations


def display_path(path) -> str:
    """A path as one line of text: characters that are not printable (a newline or a tab in a file
    name, bytes that are not UTF-8) are shown as backslash escapes."""
    text = str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


class ReconstructionError(Exception):
    """A user-actionable failure; ``str(err)`` is a complete one-line message."""

    kind = "refused"
    """what a result failed by it says (``error_kind``): an input or an option the user can change."""

    def __init__(self, message: str, path: str | None = None):
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{display_path(self.path)}: {message}" if self.path else message)


class Cancelled(ReconstructionError):
    """The caller asked to stop (cancel flag set between steps)."""

    kind = "cancelled"

    def __init__(self, path: str | None = None):
        super().__init__("cancelled by the user", path)


class EmptySurface(ReconstructionError):
    """Nothing to mesh: no zero level set inside the scene box at the chosen mesh resolution."""

    kind = "failed"


ERROR_KINDS = ("refused", "failed", "cancelled")
"""why a result is not ok: an input or option refused (the message says what to change), the reconstruction
failed (no surface, an internal error), or the caller cancelled it."""


def error_kind(err: BaseException) -> str:
    """The kind of failure ``err`` stands for: its ``kind`` for a ReconstructionError, else 'failed'."""
    return err.kind if isinstance(err, ReconstructionError) else "failed"
