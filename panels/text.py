"""Text that fits the sidebar: labels wrapped to the region's width, paths shortened in the middle."""

from __future__ import annotations

import os
import textwrap

DEFAULT_CHARS = 38
"""characters per line when the region is unknown (the default sidebar width at UI scale 1)."""
CHAR_PX = 6.5
"""average width of one character of the interface font at UI scale 1, in pixels."""


def line_chars(context) -> int:
    """How many characters fit on one label line of the current region."""
    region = getattr(context, "region", None)
    if region is None or not getattr(region, "width", 0):
        return DEFAULT_CHARS
    scale = context.preferences.system.ui_scale if getattr(context, "preferences", None) else 1.0
    return max(16, int((region.width - 40 * scale) / (CHAR_PX * scale)))


def shorten_path(path: str, limit: int) -> str:
    """``path`` in at most ``limit`` characters: the file name whole, the middle of the folders cut."""
    if len(path) <= limit:
        return path
    folder, name = os.path.split(path)
    room = limit - len(name) - 4  # ".../"
    if room < 4:
        return name if len(name) <= limit else name[: limit - 3] + "..."
    head = room // 2
    return f"{folder[:head]}...{folder[len(folder) - (room - head):]}{os.sep}{name}"


def wrap(text: str, width: int) -> list[str]:
    """``text`` as lines of at most ``width`` characters. A message that starts with a path
    (``/folder/photo.png: reason``) keeps that path on its first line, shortened in its folders;
    other words longer than a line are shortened in the middle, not split."""
    head, sep, rest = text.partition(": ")
    first = []
    if sep and os.sep in head:  # a path, spaces and all
        first, text = [shorten_path(head + ":", width)], rest
    words = [shorten_path(w, width) if len(w) > width else w for w in text.split()]
    return first + textwrap.wrap(" ".join(words), width, break_long_words=False, break_on_hyphens=False) or [""]


def label(layout, context, text: str, icon: str = "NONE") -> None:
    """A label wrapped to the region's width (the icon on the first line only)."""
    width = line_chars(context) - (3 if icon != "NONE" else 0)
    col = layout.column(align=True)
    for i, line in enumerate(wrap(text, width)):
        col.label(text=line, icon=icon if i == 0 else "BLANK1" if icon != "NONE" else "NONE")
