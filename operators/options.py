"""The reconstruction options as Blender properties, made from the fields of ``core.config.ReconstructOptions``.

Every field whose metadata has ``ui`` becomes a property of the Reconstruct operator (soft limits only, so a
script's out-of-range value reaches ``core.validate`` and is refused with the command line's words, never
clamped) and, unless ``"panel": False``, of the panel's settings (hard limits: the slider stops there). A
field that may be None is shown with its ``ui["unset"]`` value standing for None (0: not given). The operator
turns its properties back into one ``ReconstructOptions`` (:func:`options_from_properties`); the panel copies
its settings onto the operator (:func:`copy_to_operator`). An option added to ``ReconstructOptions`` thus
needs only the panel's layout here.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import bpy

from ..core.config import ReconstructOptions, optional

FLOAT32_MAX = 3.4028234663852886e38
"""the largest value a Blender float property holds: infinity set from a script is stored as this."""


def _stored_float(value: float) -> float:
    """A float property's value as the caller set it: +-FLOAT32_MAX (where Blender clamps infinity) is infinity,
    so a message says 'inf', not 3.4028234663852886e+38."""
    return math.copysign(math.inf, value) if abs(value) >= FLOAT32_MAX else value


def _ui_fields(cls=None, panel: bool = False) -> list[tuple[dataclasses.Field, type, dict]]:
    """(field, value type, ui metadata) of the options shown in Blender."""
    cls = cls or ReconstructOptions
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        ui = f.metadata.get("ui")
        if ui is None or (panel and ui.get("panel", True) is False):
            continue
        found.append((f, optional(hints[f.name]) or hints[f.name], ui))
    return found


def _property(f: dataclasses.Field, kind: type, ui: dict, panel: bool):
    default = f.default if f.default is not dataclasses.MISSING else None
    if default is None:
        default = ui.get("default", ui.get("unset"))
    common = {"name": ui["name"], "description": ui.get("description", f.metadata.get("help", ""))}
    if not panel:
        common["options"] = {"SKIP_SAVE"}
    if kind is bool:
        return bpy.props.BoolProperty(default=bool(default), **common)
    if kind is str:
        return bpy.props.StringProperty(default=default or "", **common)
    lo, hi = f.metadata.get("range", (None, None))
    extra = [v for v in (*f.metadata.get("also", ()), ui.get("unset")) if v is not None]
    if lo is not None:
        lo, hi = min([lo, *extra]), max([hi, *extra])
    limits = {}
    if lo is not None and panel:
        limits = {"min": kind(lo), "max": kind(hi), "soft_max": kind(ui.get("soft_max", hi))}
    elif lo is not None:
        limits = {"soft_min": kind(lo), "soft_max": kind(hi)}
    if kind is int:
        return bpy.props.IntProperty(default=int(default), **limits, **common)
    style = {k: ui[k] for k in ("unit", "precision", "subtype") if k in ui}
    return bpy.props.FloatProperty(default=float(default), **limits, **style, **common)


def blender_properties(cls=None, panel: bool = False) -> dict[str, object]:
    """{field name: Blender property} of the options shown in Blender: the operator's (soft limits, not saved
    between calls) or, with ``panel``, the panel's settings (hard limits)."""
    return {f.name: _property(f, kind, ui, panel) for f, kind, ui in _ui_fields(cls, panel)}


def add_properties(owner: type, after: str, cls=None, panel: bool = False) -> None:
    """Put :func:`blender_properties` into the class ``owner`` (before it is registered), after its annotation
    ``after``, so an operator's redo panel lists them in the dataclass's order there."""
    items = list(owner.__dict__.get("__annotations__", {}).items())
    index = [name for name, _ in items].index(after) + 1
    owner.__annotations__ = dict(items[:index] + list(blender_properties(cls, panel).items()) + items[index:])


def options_from_properties(props, cls=None, **given):
    """The (unchecked) options an operator's properties hold: each shown option's value, its ``unset`` value
    as None; ``given`` sets the options Blender takes from elsewhere (model, device, out_dir ...)."""
    cls = cls or ReconstructOptions
    values = {}
    for f, kind, ui in _ui_fields(cls):
        value = getattr(props, f.name)
        if kind is float:
            value = _stored_float(value)
        values[f.name] = None if "unset" in ui and value == ui["unset"] else value
    return cls(**values, **given)


def copy_to_operator(settings, op, cls=None) -> None:
    """The panel's settings onto the Reconstruct operator's properties (those the panel has)."""
    for f, _, _ in _ui_fields(cls):
        if hasattr(settings, f.name):
            setattr(op, f.name, getattr(settings, f.name))
