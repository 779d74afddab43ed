"""The one exception type users see.

Every failure that a user can cause (a bad file, a wrong option, a missing model) is raised as
:class:`ReconstructionError` with a message that names the file and says what to do. The CLI
prints it as one line, Blender shows it with ``report({'ERROR'}, ...)``.
"""

from __future__ import annotations


class ReconstructionError(Exception):
    """A user-actionable failure; ``str(err)`` is a complete one-line message."""

    def __init__(self, message: str, path: str | None = None):
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class Cancelled(ReconstructionError):
    """The caller asked to stop (cancel flag set between steps)."""

    def __init__(self, path: str | None = None):
        super().__init__("cancelled by the user", path)


class EmptySurface(ReconstructionError):
    """Nothing to mesh: no zero level set inside the scene box at the chosen mesh resolution."""
