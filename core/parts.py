"""Recolorable parts of a reconstructed mesh: the generator's color slots merged for users.

The generator colors a point by mixing K color slots (the paper's attention color mapping):
``color = widened_sigmoid(a @ v)`` with per-point softmax weights ``a`` (K,) and pre-sigmoid slot
values ``v`` (K, 3) decoded from w (:meth:`core.field.generator.Generator.query`). Slots that
dominate few vertices are merged into at most ``MAX_PARTS`` user-facing *parts* (:func:`merge_slots`);
a vertex keeps its part weights ``W`` (V, P), each part one pre-sigmoid value ``u`` (P, 3), and the
part of its mix that the merged values do not explain, the pre-sigmoid ``residual`` (V, 3):

    a @ v = W @ u + residual        (exactly, by construction)
    color = clip(widened_sigmoid(W @ u + residual), 0, 1)

So the untouched parts reproduce the generator's colors exactly, and changing part p's value moves
a vertex's pre-sigmoid color by ``W[:, p] * (u'_p - u_p)``: vertices without weight on p keep their
color, vertices dominated by p take the new color (with the part's own shading variation kept in
the residual). The Blender material computes the same formula with shader nodes
(operators/scene.py), and :func:`recolor` computes it for scripts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

MAX_PARTS = 8
"""the most parts a mesh is given (Blender attributes ``part_0`` ... ``part_7``)."""
EPS = 0.001
"""the widened sigmoid's stretch (core.field.generator.widened_sigmoid)."""


@dataclass
class ColorParts:
    """Per-vertex part weights and the palette they mix; see the module docstring for the formula."""

    weights: np.ndarray
    """(V, P) float32 part weights, each row sums to 1 (the slot weights summed per part)."""
    values: np.ndarray
    """(P, 3) float32 pre-sigmoid part values (the mass-weighted mean of their slots' values)."""
    residual: np.ndarray
    """(V, 3) float32 pre-sigmoid remainder: slot mix minus ``weights @ values``."""
    slot_values: np.ndarray
    """(K, 3) float32 the generator's pre-sigmoid slot values (the palette decoded from w)."""
    slot_part: np.ndarray
    """(K,) int32 the part each slot was merged into."""
    eps: float = EPS
    """the widened sigmoid's stretch."""
    names: tuple[str, ...] = ()
    """a name per part ('seat', 'frame', ...) when the model's slots follow named part groups; else empty."""

    @property
    def count(self) -> int:
        """the number of parts P."""
        return int(self.values.shape[0])

    def colors(self, values: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) float32 sRGB colors in [0, 1] of the mix with ``values`` (P, 3) (default: the own)."""
        values = self.values if values is None else values
        z = self.weights.astype(np.float64) @ np.asarray(values, np.float64) + self.residual
        return np.clip(widened_sigmoid(z, self.eps), 0.0, 1.0).astype(np.float32)

    def part_colors(self) -> np.ndarray:
        """(P, 3) float32 sRGB display color of each part (its swatch)."""
        return np.clip(widened_sigmoid(self.values, self.eps), 0.0, 1.0).astype(np.float32)

    def to_json(self) -> dict:
        """The palette for the per-image JSON (weights and residual are per vertex: mesh files only)."""
        slot_srgb = np.clip(widened_sigmoid(self.slot_values, self.eps), 0.0, 1.0)
        share = self.weights.mean(axis=0) if len(self.weights) else np.zeros(self.count)
        return {"eps": self.eps,
                "slots": [{"value": _round(v), "srgb": _round(c), "part": int(p)}
                          for v, c, p in zip(self.slot_values, slot_srgb, self.slot_part)],
                "parts": [{"value": _round(v), "srgb": _round(c), "share": round(float(s), 6),
                           "slots": [int(k) for k in np.flatnonzero(self.slot_part == p)],
                           **({"name": self.names[p]} if self.names else {})}
                          for p, (v, c, s) in enumerate(zip(self.values, self.part_colors(), share))]}


def _round(v) -> list[float]:
    return [round(float(x), 6) for x in v]


def widened_sigmoid(x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """NumPy twin of core.field.generator.widened_sigmoid: sigmoid stretched to (-eps, 1 + eps)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64))) * (1 + 2 * eps) - eps


def inverse_widened_sigmoid(c: np.ndarray, eps: float = EPS) -> np.ndarray:
    """The pre-sigmoid value whose widened sigmoid is ``c``, for ``c`` in [0, 1] (clipped to it)."""
    s = (np.clip(np.asarray(c, np.float64), 0.0, 1.0) + eps) / (1 + 2 * eps)
    return np.log(s) - np.log1p(-s)


def dominance(slot_weights: np.ndarray, threshold: float = 0.8) -> float:
    """Fraction of vertices (rows of ``slot_weights`` (V, K)) whose largest weight is >= ``threshold``."""
    if len(slot_weights) == 0:
        return 0.0
    return float((slot_weights.max(axis=1) >= threshold).mean())


def slot_groups(k: int, groups: int) -> np.ndarray:
    """(K,) the group of every slot when K slots are split into ``groups`` named groups: K // groups
    consecutive slots each, the remainder joining the last group."""
    per = k // groups
    if per < 1:
        raise ValueError(f"{k} colour slots are fewer than {groups} part groups")
    return np.minimum(np.arange(k) // per, groups - 1)


def merge_slots(slot_weights: np.ndarray, slot_values: np.ndarray, max_parts: int = MAX_PARTS,
                min_share: float = 0.01, eps: float = EPS, group_names: tuple[str, ...] = ()) -> ColorParts:
    """Merge K slots into at most ``max_parts`` parts by their dominant slot.

    ``slot_weights`` (V, K) softmax weights per vertex; ``slot_values`` (K, 3) pre-sigmoid values.
    A slot that is the largest weight of at least ``min_share`` of the vertices starts a part (the
    ``max_parts`` most frequent do; part 0 is the most frequent); every other slot joins the part it
    co-occurs with most (sum over vertices of its weight times the part's weight). Parts are thus
    the regions where the model itself separates colors: seat, frame, cushions. With ``group_names`` (a
    model whose slots were trained to follow named part groups, :func:`slot_groups`) every part is named
    after the group of the slot that started it ('seat', and 'seat 2' for a second seat part).
    """
    a = np.asarray(slot_weights, np.float64)
    v = np.asarray(slot_values, np.float64)
    n_v, k = a.shape
    if v.shape != (k, 3):
        raise ValueError(f"slot_values must be ({k}, 3), got {v.shape}")
    counts = np.bincount(a.argmax(axis=1), minlength=k) if n_v else np.zeros(k, np.int64)
    order = np.argsort(-counts, kind="stable")
    kept = [int(s) for s in order[:max_parts] if counts[s] >= max(1, min_share * n_v)] or [int(order[0])]
    slot_part = np.full(k, -1, np.int64)
    slot_part[kept] = np.arange(len(kept))
    co = a.T @ a[:, kept] if n_v else np.zeros((k, len(kept)))  # (K, P) co-occurrence with kept slots
    for s in range(k):
        if slot_part[s] < 0:
            slot_part[s] = int(np.argmax(co[s]))
    names: tuple[str, ...] = ()
    if group_names:
        group = slot_groups(k, len(group_names))
        seen: dict[str, int] = {}
        for s in kept:
            base = group_names[group[s]]
            seen[base] = seen.get(base, 0) + 1
            names += (base if seen[base] == 1 else f"{base} {seen[base]}",)
    onehot = np.zeros((k, len(kept)))
    onehot[np.arange(k), slot_part] = 1.0
    weights = a @ onehot  # (V, P)
    mass = a.sum(axis=0) + 1e-12  # (K,)
    values = (onehot * mass[:, None]).T @ v / (onehot.T @ mass)[:, None]  # (P, 3)
    residual = a @ v - weights @ values
    return ColorParts(weights.astype(np.float32), values.astype(np.float32), residual.astype(np.float32),
                      v.astype(np.float32), slot_part.astype(np.int32), eps, names)


def recolor(result, colors: dict[int, tuple[float, float, float]]):
    """A new ``core.mesh.Mesh`` with parts recolored: ``colors`` maps a part index to an sRGB color in [0, 1].

    ``result`` is a ReconstructionResult (its ``mesh``) or a Mesh that carries ``parts``. The new mesh's
    ``colors`` are the mix with the new part values and its ``parts`` hold them, so recolorings
    compose; the input is left unchanged. For scripted variants: the same chair in five fabrics.
    """
    mesh = getattr(result, "mesh", None) if not hasattr(result, "vertices") else result
    parts: ColorParts | None = getattr(mesh, "parts", None)
    if parts is None:
        raise ValueError("this mesh has no color parts (reconstructed without slot weights)")
    values = parts.values.astype(np.float64).copy()
    for part, rgb in colors.items():
        if not 0 <= int(part) < parts.count:
            raise ValueError(f"part {part} does not exist; this mesh has parts 0-{parts.count - 1}")
        rgb = np.asarray(rgb, np.float64).reshape(-1)
        if rgb.shape != (3,) or not np.isfinite(rgb).all():
            raise ValueError(f"part {part}: the color must be three finite sRGB values in [0, 1], got {rgb}")
        values[int(part)] = inverse_widened_sigmoid(rgb, parts.eps)
    new_parts = dataclasses.replace(parts, values=values.astype(np.float32))
    return dataclasses.replace(mesh, colors=new_parts.colors(), parts=new_parts)
