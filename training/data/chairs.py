"""Parametric chairs: a seeded spec, its exact signed distance and its albedo.

Every chair is a union of simple primitives (rounded boxes, tapered capsules, rounded cylinders,
tori and extruded arcs) built in metres, then normalized: the bounding box is centred at the
origin and its largest side is :data:`EXTENT` (1.6), so chairs fit in [-0.8, 0.8]^3 inside the
scene box [-1, 1]^3. Frame (docs/CONVENTIONS.md): +Z up, the chair's front (the side a
seated person faces) looks toward -Y.

The SDF is the minimum of the primitives' SDFs: exact outside the chair, a close bound inside
(tapered capsules are a close bound). The albedo of a point is the albedo of the nearest part, a
base colour modulated by a procedural pattern (wood grain, fabric weave, tufting, rattan, stripes,
leather grain, brushed metal) evaluated in the part's own frame.

Families (the chairs users photograph): dining, shell, folding, barstool, office, armchair, lounge,
child; the seeds of ``training.data.EXTRA_SEEDS`` draw backless stools, rocking and cantilever
chairs. Everything is vectorized torch (float32, CPU): the only Python loops run over primitive
kinds, never over points.
"""

from __future__ import annotations

import colorsys
import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

EXTENT = 1.6
"""largest side of every chair's bounding box, normalized units."""
MIN_HALF_THICKNESS = 0.0132
"""thinnest half-thickness of any part after normalization (full thickness >= ~0.025)."""

# primitive kinds
BOX, CAPSULE, CYLINDER, TORUS, ARC = range(5)
KIND_NAMES = ("box", "capsule", "cylinder", "torus", "arc")
# materials (the renderer varies specular by material)
WOOD, FABRIC, PLASTIC, LEATHER, METAL = range(5)
MATERIAL_NAMES = ("wood", "fabric", "plastic", "leather", "metal")
# surface patterns
P_NONE, P_WOOD, P_WEAVE, P_TUFTED, P_RATTAN, P_STRIPES, P_LEATHER, P_BRUSHED = range(8)
PATTERN_NAMES = ("none", "wood", "weave", "tufted", "rattan", "stripes", "leather", "brushed")

FAMILIES = ("dining", "shell", "folding", "barstool", "office", "armchair", "lounge", "child")
"""chair families (the kinds of chairs users photograph)."""
FAMILY_WEIGHTS = (0.24, 0.12, 0.10, 0.10, 0.13, 0.13, 0.10, 0.08)
"""sampling probability of each family (sums to 1)."""
EXTRA_FAMILIES = ("stool", "rocking", "cantilever")
"""families drawn only by the seeds of :data:`training.data.EXTRA_SEEDS` (the others keep their chairs)."""
EXTRA_WEIGHTS = (0.4, 0.3, 0.3)
"""sampling probability of each extra family (sums to 1)."""


@dataclass
class Material:
    """Appearance of a part."""

    material: int
    """material id: WOOD, FABRIC, PLASTIC, LEATHER or METAL."""
    color: np.ndarray
    """(3,) base albedo, sRGB display values in [0, 1]."""
    pattern: int = P_NONE
    """surface pattern id (P_*)."""
    pattern_scale: float = 0.02
    """characteristic length of the pattern in normalized units (weave period, tuft spacing...)."""
    gloss: float = 0.3
    """0..1 multiplier of the material's specular strength (chrome 1, matte paint ~0.3)."""
    color2: np.ndarray | None = None
    """(3,) second colour (stripes); defaults to a darker ``color``."""


@dataclass
class Part:
    """One primitive of a chair, with its appearance."""

    name: str
    """what the part is: 'seat', 'leg_fl', 'back_slat_2', ..."""
    kind: int
    """primitive kind: BOX, CAPSULE, CYLINDER, TORUS or ARC."""
    center: np.ndarray
    """(3,) origin of the part's local frame, canonical frame."""
    rot: np.ndarray
    """(3, 3) local -> world rotation (columns are the local axes in world)."""
    params: np.ndarray
    """(6,) kind-specific sizes in the local frame.
    BOX: half extents x, y, z, corner radius. CAPSULE: half length along local z, radius at -z,
    radius at +z. CYLINDER (axis local z): radius, half height, edge radius. TORUS (axis local z):
    major radius, minor radius. ARC (in the local xy plane, centred on +y, extruded along z):
    radius, half aperture angle (rad), half thickness, half height, edge radius."""
    mat: Material
    """appearance of the part."""


@dataclass
class ChairSpec:
    """A complete procedural chair in the normalized canonical frame."""

    seed: int
    """the seed it was sampled from (``sample_chair(seed)`` rebuilds it exactly)."""
    family: str
    """one of FAMILIES."""
    style: str
    """family-specific variant, e.g. 'windsor', 'sled', 'tub', 'recliner'."""
    parts: list[Part]
    """the primitives, normalized units."""
    bbox_min: np.ndarray
    """(3,) lower corner of the bounding box (centred: bbox_min = -bbox_max)."""
    bbox_max: np.ndarray
    """(3,) upper corner of the bounding box; the largest side is EXTENT."""
    seat_height: float
    """z of the top of the seat, normalized units."""
    scale: float
    """normalized units per metre of the chair as built."""
    _packed: dict | None = field(default=None, init=False, repr=False, compare=False)
    """tensors of the parts grouped by kind (built lazily)."""
    _surface: dict | None = field(default=None, init=False, repr=False, compare=False)
    """cached surface samples (built lazily by :func:`surface_samples`)."""

    @property
    def part_names(self) -> list[str]:
        return [p.name for p in self.parts]


# --------------------------------------------------------------------------------------------
# colours and materials


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


def _jitter(rng, c, amount=0.03) -> np.ndarray:
    return np.clip(np.asarray(c, dtype=np.float64) + rng.normal(0, amount, 3), 0.02, 0.97)


def _wood(rng, darkness: float | None = None) -> Material:
    """Natural wood from pale beech (0) to dark walnut (1)."""
    t = rng.beta(1.2, 1.2) if darkness is None else darkness
    keys = [np.array([0.87, 0.72, 0.53]), np.array([0.70, 0.50, 0.30]), np.array([0.50, 0.30, 0.17]),
            np.array([0.24, 0.14, 0.08])]
    x = t * (len(keys) - 1)
    i = min(int(x), len(keys) - 2)
    c = keys[i] * (1 - (x - i)) + keys[i + 1] * (x - i)
    return Material(WOOD, _jitter(rng, c, 0.025), P_WOOD, rng.uniform(0.025, 0.06), rng.uniform(0.15, 0.6))


def _painted(rng, material=WOOD) -> Material:
    r = rng.random()
    if r < 0.3:
        c = _hsv(0, 0, rng.uniform(0.04, 0.1))
    elif r < 0.6:
        c = _hsv(0, 0, rng.uniform(0.8, 0.95))
    else:
        c = _hsv(rng.random(), rng.uniform(0.3, 0.85), rng.uniform(0.3, 0.9))
    return Material(material, c, P_NONE, 0.02, rng.uniform(0.2, 0.5))


_SATURATED = (0.0, 0.02, 0.08, 0.14, 0.33, 0.38, 0.5, 0.58, 0.62, 0.75, 0.9)


def _plastic(rng, bright: bool = False) -> Material:
    r = rng.random()
    if not bright and r < 0.3:
        c = _hsv(0, 0, rng.uniform(0.03, 0.09))
    elif not bright and r < 0.55:
        c = _hsv(0.1, rng.uniform(0, 0.05), rng.uniform(0.85, 0.96))
    elif not bright and r < 0.65:
        c = _hsv(rng.random(), rng.uniform(0.0, 0.12), rng.uniform(0.35, 0.7))
    else:
        h = rng.choice(_SATURATED) + rng.normal(0, 0.015)
        c = _hsv(h, rng.uniform(0.6, 0.95), rng.uniform(0.55, 0.95))
    return Material(PLASTIC, c, P_NONE, 0.02, rng.uniform(0.5, 1.0))


def _fabric(rng) -> Material:
    r = rng.random()
    if r < 0.35:  # greys and neutrals
        c = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0, 0.2), rng.uniform(0.12, 0.85))
    else:
        c = _hsv(rng.random(), rng.beta(1.5, 2.0) * 0.85, rng.uniform(0.2, 0.85))
    return Material(FABRIC, c, P_WEAVE, rng.uniform(0.010, 0.02), rng.uniform(0.0, 0.3))


def _leather(rng) -> Material:
    keys = [(0.45, 0.25, 0.12), (0.6, 0.34, 0.16), (0.25, 0.13, 0.07), (0.06, 0.05, 0.05),
            (0.82, 0.76, 0.66), (0.36, 0.09, 0.07), (0.33, 0.22, 0.14)]
    c = _jitter(rng, keys[rng.choice(len(keys), p=[0.2, 0.18, 0.18, 0.2, 0.08, 0.08, 0.08])], 0.02)
    return Material(LEATHER, c, P_LEATHER, rng.uniform(0.01, 0.03), rng.uniform(0.4, 0.9))


def _upholstery(rng, p_leather=0.3) -> Material:
    return _leather(rng) if rng.random() < p_leather else _fabric(rng)


def _metal(rng, p_chrome=0.4) -> Material:
    r = rng.random()
    if r < p_chrome:
        return Material(METAL, _jitter(rng, (0.80, 0.81, 0.83), 0.02), P_BRUSHED, 0.02, 1.0)
    r = rng.random()
    if r < 0.2:
        return Material(METAL, _jitter(rng, (0.66, 0.67, 0.68), 0.02), P_BRUSHED, 0.02, 0.7)
    if r < 0.6:
        return Material(METAL, _hsv(0, 0, rng.uniform(0.03, 0.1)), P_NONE, 0.02, rng.uniform(0.3, 0.6))
    if r < 0.75:
        return Material(METAL, _hsv(0, 0, rng.uniform(0.8, 0.93)), P_NONE, 0.02, rng.uniform(0.3, 0.5))
    if r < 0.82:
        return Material(METAL, _jitter(rng, (0.8, 0.62, 0.3), 0.03), P_BRUSHED, 0.02, 0.9)
    return Material(METAL, _hsv(rng.random(), rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.85)), P_NONE,
                    0.02, rng.uniform(0.3, 0.6))


def _rattan(rng) -> Material:
    return Material(WOOD, _jitter(rng, (0.76, 0.6, 0.38), 0.04), P_RATTAN, rng.uniform(0.02, 0.035), 0.2)


def _striped(rng) -> Material:
    m = _fabric(rng)
    m.pattern = P_STRIPES
    m.pattern_scale = rng.uniform(0.03, 0.08)
    m.color = _hsv(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.45, 0.9))
    m.color2 = _hsv(0, 0, 0.92) if rng.random() < 0.6 else _hsv(rng.random(), 0.7, 0.6)
    return m


def _frame_mat(rng, p_wood=0.5, p_metal=0.3) -> Material:
    r = rng.random()
    if r < p_wood:
        return _wood(rng)
    if r < p_wood + p_metal:
        return _metal(rng)
    return _plastic(rng)


# --------------------------------------------------------------------------------------------
# geometry helpers (built in metres, normalized afterwards)


def _frame(z, xhint=(1.0, 0.0, 0.0)) -> np.ndarray:
    """(3, 3) right-handed rotation whose local z is ``z`` and local x is closest to ``xhint``."""
    z = np.asarray(z, dtype=np.float64)
    z = z / np.linalg.norm(z) if np.linalg.norm(z) > 1e-9 else np.array([0.0, 0.0, 1.0])
    x = np.asarray(xhint, dtype=np.float64)
    x = x - x.dot(z) * z
    if np.linalg.norm(x) < 1e-6:
        x = np.array([0.0, 1.0, 0.0]) - z[1] * z
        if np.linalg.norm(x) < 1e-6:
            x = np.array([0.0, 0.0, 1.0]) - z[2] * z
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def lean_rot(angle: float) -> np.ndarray:
    """Rotation about X that tips local +Z toward +Y (backrest lean) and lifts local -Y (seat front)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0, 0], [0, c, s], [0, -s, c]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _v(*xs) -> np.ndarray:
    return np.array(xs, dtype=np.float64)


class _Builder:
    """Collects parts (metres)."""

    def __init__(self, aux: np.random.Generator):
        self.parts: list[Part] = []
        self.aux = aux  # independent stream for optional variations (keeps the main stream stable)

    def add(self, name, kind, center, rot, params, mat):
        p = np.zeros(6)
        p[: len(params)] = params
        self.parts.append(Part(name, kind, np.asarray(center, dtype=np.float64), np.asarray(rot, dtype=np.float64),
                               p, mat))

    def box(self, name, center, half, mat, rot=None, r=0.0):
        half = np.asarray(half, dtype=np.float64)
        r = min(r, 0.98 * half.min())
        self.add(name, BOX, center, np.eye(3) if rot is None else rot, [*half, r], mat)

    def seg_box(self, name, a, b, hw, hd, mat, r=0.0, xhint=(1.0, 0, 0), extend=0.0):
        """Box from ``a`` to ``b`` (local z), cross-section half sizes ``hw`` (local x) and ``hd``."""
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        length = np.linalg.norm(b - a)
        self.box(name, (a + b) / 2, (hw, hd, length / 2 + extend), mat, _frame(b - a, xhint), r)

    def capsule(self, name, a, b, ra, mat, rb=None):
        """Tapered capsule from ``a`` (radius ``ra``) to ``b`` (radius ``rb``, default ``ra``)."""
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        rb = ra if rb is None else rb
        self.add(name, CAPSULE, (a + b) / 2, _frame(b - a), [np.linalg.norm(b - a) / 2, ra, rb], mat)

    def cyl(self, name, center, radius, hh, mat, axis=(0, 0, 1.0), r=0.0):
        r = min(r, 0.98 * min(radius, hh))
        self.add(name, CYLINDER, center, _frame(axis), [radius, hh, r], mat)

    def cyl_between(self, name, a, b, radius, mat, r=0.0):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        self.cyl(name, (a + b) / 2, radius, np.linalg.norm(b - a) / 2, mat, b - a, r)

    def torus(self, name, center, major, minor, mat, axis=(0, 0, 1.0)):
        self.add(name, TORUS, center, _frame(axis), [major, minor], mat)

    def arc(self, name, center, radius, half_angle, tb, hz, mat, rot=None, r=0.0):
        r = min(r, 0.98 * min(tb, hz))
        self.add(name, ARC, center, np.eye(3) if rot is None else rot, [radius, half_angle, tb, hz, r], mat)

    def leg(self, name, foot, top, half, mat, style):
        """A leg from ``foot`` (on the floor) to ``top``: 'square', 'round' or 'tapered'."""
        foot, top = np.asarray(foot, dtype=np.float64), np.asarray(top, dtype=np.float64)
        if style == "square":
            self.seg_box(name, foot, top, half, half, mat, r=0.3 * half)
        elif style == "round":
            self.cyl_between(name, foot, top, half, mat, r=0.3 * half)
        else:
            ra = 0.6 * half
            self.capsule(name, foot + _v(0, 0, ra), top, ra, mat, rb=half)


# --------------------------------------------------------------------------------------------
# families (metres; front toward -Y; floor at z = 0)


def _legs4(b, rng, xs, ys, z_top, half, mat, style, splay=0.0, names=("fl", "fr", "bl", "br"), skip_back=False):
    """Four legs under the corners (+-xs, +-ys) ending at ``z_top``; returns {name: (foot, top)}."""
    out = {}
    for name, (ix, iy) in zip(names, [(-1, -1), (1, -1), (-1, 1), (1, 1)]):
        top = _v(ix * xs, iy * ys, z_top)
        foot = _v(ix * (xs + splay), iy * (ys + splay * 0.8), 0.0)
        out[name] = (foot, top)
        if skip_back and iy > 0:
            continue
        b.leg("leg_" + name, foot, top, half, mat, style)
    return out


def _on_leg(foot, top, z):
    t = (z - foot[2]) / (top[2] - foot[2])
    return foot + (top - foot) * t


def _stretchers(b, legs, z, radius, mat, rng):
    for side, (f, k) in {"l": ("fl", "bl"), "r": ("fr", "br")}.items():
        b.capsule("stretcher_" + side, _on_leg(*legs[f], z), _on_leg(*legs[k], z), radius, mat)
    if rng.random() < 0.6:
        zf = z + rng.uniform(-0.03, 0.05)
        b.capsule("stretcher_front", _on_leg(*legs["fl"], zf), _on_leg(*legs["fr"], zf), radius, mat)
    if rng.random() < 0.5:
        b.capsule("stretcher_back", _on_leg(*legs["bl"], z), _on_leg(*legs["br"], z), radius, mat)


def _windsor_back(b, rng, W, D, H, Bh, lean, mat, n=None):
    """Curved crest rail with spindles down into the seat's back edge."""
    rc = rng.uniform(0.22, 0.4)
    x_end = rng.uniform(0.8, 1.1) * W / 2
    th = math.asin(min(0.97, x_end / rc))
    z_top = H + Bh
    mid_y = D / 2 - 0.05 + Bh * math.tan(lean)
    center = _v(0, mid_y - rc, z_top)
    hz = rng.uniform(0.02, 0.04)
    b.arc("back_crest", center, rc, th, rng.uniform(0.012, 0.02), hz, mat, r=0.008)
    n = int(rng.integers(5, 10)) if n is None else n
    for k, phi in enumerate(np.linspace(-th * 0.93, th * 0.93, n)):
        top = center + _v(rc * math.sin(phi), rc * math.cos(phi), 0)
        by = float(np.clip(top[1] - Bh * math.tan(lean), -D / 2 + 0.06, D / 2 - 0.03))
        bx = float(np.clip(top[0] * 0.9, -W / 2 + 0.03, W / 2 - 0.03))
        outer = k in (0, n - 1)
        rad = rng.uniform(0.011, 0.016) if outer else rng.uniform(0.006, 0.01)
        b.capsule(f"back_spindle_{k}", _v(bx, by, H - 0.015), top, rad, mat, rb=rad * 0.85)


def _dining(b, rng, child=False):
    H, W, D = rng.uniform(0.43, 0.48), rng.uniform(0.40, 0.50), rng.uniform(0.38, 0.47)
    plastic = rng.random() < (0.2 if not child else 0.5)
    if child:
        H, W, D = rng.uniform(0.25, 0.32), rng.uniform(0.28, 0.36), rng.uniform(0.26, 0.33)
    if plastic:
        frame = _plastic(rng, bright=child)
    elif child or rng.random() < 0.15:
        frame = _painted(rng) if not child else Material(WOOD, _plastic(rng, True).color, P_WOOD, 0.05, 0.4)
    else:
        frame = _wood(rng)
    seat_mat = frame if rng.random() < 0.75 else (_wood(rng) if not plastic else _plastic(rng))
    cane = not plastic and not child and b.aux.random() < 0.15  # woven cane seat and/or back panel
    if cane and b.aux.random() < 0.5:
        seat_mat = _rattan(b.aux)
    T = rng.uniform(0.02, 0.045) if not plastic else rng.uniform(0.03, 0.05)
    styles = ["panel", "curved_panel", "slats", "ladder", "upholstered", "windsor"]
    probs = [0.2, 0.15, 0.2, 0.15, 0.15, 0.15]
    if child:
        styles, probs = ["panel", "curved_panel", "ladder", "slats"], [0.4, 0.2, 0.2, 0.2]
    style = str(rng.choice(styles, p=probs))
    if plastic and style == "windsor":
        style = "panel"
    leg_style = str(rng.choice(["square", "round", "tapered"]))
    if style == "windsor":
        leg_style = "tapered"
        T = rng.uniform(0.035, 0.05)
    splay = rng.uniform(0.02, 0.06) if (style == "windsor" or rng.random() < 0.25) else 0.0
    lh = rng.uniform(0.014, 0.024) if not (plastic or child) else rng.uniform(0.02, 0.03)
    inset = lh + rng.uniform(0.005, 0.03)
    lean = math.radians(rng.uniform(3, 14))
    Bh = rng.uniform(0.35, 0.5) if not child else rng.uniform(0.2, 0.28)
    xs, ys = W / 2 - inset, D / 2 - inset
    sb = H - T  # seat bottom

    b.box("seat", _v(0, 0, H - T / 2), (W / 2, D / 2, T / 2), seat_mat,
          r=min(0.9 * T / 2, rng.uniform(0.002, 0.015) if style != "windsor" else 0.015))
    if rng.random() < (0.3 if not plastic else 0.0):
        c = rng.uniform(0.02, 0.05)
        b.box("seat_cushion", _v(0, -0.005, H + c / 2 - 0.006), (W / 2 - 0.008, D / 2 - 0.014, c / 2),
              _upholstery(rng), r=min(0.95 * c / 2, 0.018))
    continuous = style != "windsor" and rng.random() < 0.75
    legs = _legs4(b, rng, xs, ys, sb + 0.005, lh, frame, leg_style, splay, skip_back=continuous)
    post_half = lh * rng.uniform(0.8, 1.0)
    tl = math.tan(lean)

    def post_at(ix, z):
        return _v(ix * xs, ys + (z - H) * tl, z)

    if style == "windsor":
        _windsor_back(b, rng, W, D, H, Bh, lean, frame)
    else:
        pstyle = "square" if leg_style == "square" else "round"
        for ix, nm in ((-1, "l"), (1, "r")):
            if continuous:
                foot, top = legs["b" + nm]
                b.leg("leg_b" + nm, foot, top + _v(0, 0, T), lh, frame, leg_style)
                b.leg("back_post_" + nm, post_at(ix, H - 0.01), post_at(ix, H + Bh), post_half, frame, pstyle)
            else:
                b.leg("back_post_" + nm, post_at(ix, sb + 0.01), post_at(ix, H + Bh), post_half, frame, pstyle)
        rot = lean_rot(lean)
        if style in ("panel", "curved_panel", "upholstered"):
            z0 = H + Bh * rng.uniform(0.35, 0.65) if style != "upholstered" else H + rng.uniform(0.08, 0.15)
            z1 = H + Bh - rng.uniform(0.0, 0.03)
            zm, hz = (z0 + z1) / 2, (z1 - z0) / 2 / math.cos(lean)
            pm = post_at(0, zm)
            th = rng.uniform(0.009, 0.016)
            if style == "upholstered":
                th = rng.uniform(0.02, 0.04)
                b.box("back_pad", pm + _v(0, 0.004, 0), (xs + post_half * 0.6, th, hz), _upholstery(rng), rot,
                      r=0.9 * th)
            elif style == "panel":
                pmat = frame if rng.random() < 0.8 else seat_mat
                b.box("back_panel", pm, (xs, th, hz), _rattan(b.aux) if cane else pmat, rot, r=0.6 * th)
            else:
                rad = rng.uniform(0.35, 0.8)
                ang = math.asin(min(0.95, xs / rad))
                center = pm - rad * math.cos(ang) * rot[:, 1]
                b.arc("back_panel", center, rad, ang, th, hz, _rattan(b.aux) if cane else frame, rot, r=0.6 * th)
        elif style == "slats":
            rh = rng.uniform(0.025, 0.045)
            ztop = H + Bh - rh
            zbot = H + rng.uniform(0.06, 0.14)
            rt = rng.uniform(0.01, 0.016)
            b.box("back_top_rail", post_at(0, ztop), (xs + post_half * rng.uniform(0.5, 2.5), rt, rh), frame, rot,
                  r=0.6 * rt)
            b.box("back_bottom_rail", post_at(0, zbot), (xs, rt * 0.8, rh * 0.6), frame, rot, r=0.5 * rt)
            n = int(rng.integers(2, 6))
            sw = min(rng.uniform(0.012, 0.04), 0.8 * xs / n)
            zm = (ztop + zbot) / 2
            for k, x in enumerate(np.linspace(-xs, xs, n + 2)[1:-1]):
                b.box(f"back_slat_{k}", post_at(0, zm) + _v(x, 0, 0), (sw, rt * 0.7, (ztop - zbot) / 2 / math.cos(lean)),
                      frame, rot, r=0.5 * rt)
        else:  # ladder
            n = int(rng.integers(2, 5))
            rh = rng.uniform(0.015, 0.035)
            rt = rng.uniform(0.01, 0.016)
            for k, z in enumerate(np.linspace(H + Bh * rng.uniform(0.3, 0.5), H + Bh - rh, n)):
                b.box(f"back_rail_{k}", post_at(0, z), (xs + (post_half if k == n - 1 else 0), rt, rh), frame, rot,
                      r=0.6 * rt)
    if rng.random() < 0.45:
        _stretchers(b, legs, rng.uniform(0.1, 0.22) * (H / 0.45), rng.uniform(0.008, 0.013), frame, rng)
    elif style != "windsor" and splay == 0.0 and rng.random() < 0.6:
        ah, at = rng.uniform(0.04, 0.08), rng.uniform(0.01, 0.018)
        zc = sb - ah / 2 + 0.004
        for nm, c, h in (("front", _v(0, -ys, zc), (xs, at, ah / 2)), ("back", _v(0, ys, zc), (xs, at, ah / 2)),
                         ("left", _v(-xs, 0, zc), (at, ys, ah / 2)), ("right", _v(xs, 0, zc), (at, ys, ah / 2))):
            b.box("apron_" + nm, c, h, frame, r=0.5 * at)
    return style


def _profile_z(profile, y):
    ys = [p[0] for p in profile]
    zs = [p[1] for p in profile]
    return float(np.interp(y, ys, zs))


def _shell(b, rng):
    H, W, D = rng.uniform(0.42, 0.47), rng.uniform(0.42, 0.5), rng.uniform(0.40, 0.46)
    t = rng.uniform(0.009, 0.016)
    r = rng.random()
    shell = _plastic(rng) if r < 0.7 else (_wood(rng) if r < 0.88 else _upholstery(rng, 0.4))
    lean = math.radians(rng.uniform(8, 22))
    Bh = rng.uniform(0.3, 0.45)
    sag = rng.uniform(0.0, 0.025)
    p0 = (-D / 2, H - rng.uniform(0.005, 0.03))
    p1 = (-D / 2 + 0.06, H)
    p2 = (D / 2 - 0.08, H - sag)
    p3 = (D / 2 - 0.01, H - sag + 0.04)
    p4 = (p3[0] + Bh * math.sin(lean), p3[1] + Bh * math.cos(lean))
    prof = [p0, p1, p2, p3]
    for k, (a, c) in enumerate(itertools.pairwise(prof)):
        b.seg_box(f"seat_shell_{k}", _v(0, *a), _v(0, *c), W / 2 - 0.004 * k, t / 2, shell, r=0.98 * t / 2,
                  extend=t / 2)
    wb = W / 2 * rng.uniform(0.85, 1.05)
    if rng.random() < 0.55:
        rot = lean_rot(lean)
        rad = rng.uniform(0.3, 0.6)
        ang = math.asin(min(0.95, wb / rad))
        mid = _v(0, (p3[0] + p4[0]) / 2, (p3[1] + p4[1]) / 2)
        b.arc("back_shell", mid - rad * rot[:, 1], rad, ang, t / 2, Bh / 2 + t / 2, shell, rot, r=0.98 * t / 2)
    else:
        b.seg_box("back_shell", _v(0, *p3), _v(0, *p4), wb, t / 2, shell, r=0.98 * t / 2, extend=t / 2)
    if rng.random() < 0.2:
        for ix, nm in ((-1, "l"), (1, "r")):
            b.box("arm_wing_" + nm, _v(ix * (W / 2 - 0.005), D * 0.22, H + 0.1), (t / 2, D * 0.3, 0.1), shell,
                  r=0.98 * t / 2)
    style = str(rng.choice(["metal4", "sled", "eiffel", "wood4", "pedestal"], p=[0.3, 0.2, 0.15, 0.2, 0.15]))
    legm = _metal(rng, 0.5)
    xs, ys = W / 2 - rng.uniform(0.04, 0.08), D / 2 - 0.08
    zt = _profile_z(prof, -ys) - 0.002
    if style in ("metal4", "wood4", "eiffel"):
        plate_z = min(_profile_z(prof, -ys), _profile_z(prof, ys)) - t / 2 - 0.008
        b.box("mount_plate", _v(0, 0, plate_z), (xs + 0.01, ys + 0.01, 0.01), legm if style == "metal4" else shell,
              r=0.005)
        if style == "metal4":
            rad = rng.uniform(0.007, 0.012)
            legs = _legs4(b, rng, xs, ys, plate_z, rad, legm, "round", rng.uniform(0.0, 0.05))
        else:
            wood = _wood(rng)
            legs = _legs4(b, rng, xs, ys, plate_z, rng.uniform(0.014, 0.02), wood, "tapered",
                          rng.uniform(0.03, 0.07))
            if style == "eiffel":
                z0, z1 = 0.12, plate_z - 0.03
                for nm, (f, k) in {"l": ("fl", "bl"), "r": ("fr", "br"), "f": ("fl", "fr"), "b": ("bl", "br")}.items():
                    b.capsule("wire_" + nm + "1", _on_leg(*legs[f], z0), _on_leg(*legs[k], z1), 0.004, legm)
                    b.capsule("wire_" + nm + "2", _on_leg(*legs[k], z0), _on_leg(*legs[f], z1), 0.004, legm)
    elif style == "sled":
        rad = rng.uniform(0.008, 0.012)
        for ix, nm in ((-1, "l"), (1, "r")):
            x = ix * xs
            a, c = _v(x, -ys, _profile_z(prof, -ys)), _v(x, -D / 2 + rng.uniform(-0.03, 0.03), rad)
            d, e = _v(x, D / 2 + rng.uniform(-0.02, 0.05), rad), _v(x, ys, _profile_z(prof, ys))
            b.capsule("sled_front_" + nm, a, c, rad, legm)
            b.capsule("sled_floor_" + nm, c, d, rad, legm)
            b.capsule("sled_back_" + nm, d, e, rad, legm)
            b.capsule("sled_top_" + nm, e, a, rad, legm)
    else:
        zb = _profile_z(prof, 0.0)
        b.cyl("column", _v(0, 0, zb / 2), rng.uniform(0.02, 0.035), zb / 2, legm)
        b.cyl("base_disc", _v(0, 0, 0.012), rng.uniform(0.2, 0.25), 0.012, legm, r=0.008)
        b.box("mount_plate", _v(0, 0, zb - t / 2 - 0.01), (0.1, 0.1, 0.012), legm, r=0.005)
    _ = zt
    return style


def _folding(b, rng):
    style = str(rng.choice(["metal_folding", "deck", "director"], p=[0.4, 0.3, 0.3]))
    if style == "metal_folding":
        H, W, D = rng.uniform(0.43, 0.47), rng.uniform(0.38, 0.45), rng.uniform(0.36, 0.42)
        m = _metal(rng, 0.35)
        rad = rng.uniform(0.009, 0.013)
        seatm = _plastic(rng) if rng.random() < 0.5 else (_wood(rng) if rng.random() < 0.5 else _upholstery(rng))
        xs = W / 2 + rad
        ytop = D / 2 + 0.06
        T = rng.uniform(0.015, 0.03)
        b.box("seat", _v(0, 0, H - T / 2), (W / 2, D / 2, T / 2), seatm, r=0.9 * T / 2)
        for ix, nm in ((-1, "l"), (1, "r")):
            x = ix * xs
            rear_foot, rear_top = _v(x, D / 2 + 0.02, rad), _v(x, ytop, H + rng.uniform(0.38, 0.45))
            b.capsule("back_post_" + nm, rear_foot, rear_top, rad, m)
            b.capsule("leg_front_" + nm, _v(x, -D / 2 - 0.03, rad), _v(x, D / 2 - 0.03, H - T), rad, m)
            yr = float(_on_leg(rear_foot, rear_top, H - T)[1])
            b.capsule("seat_rail_" + nm, _v(x, -D / 2, H - T), _v(x, yr, H - T), rad, m)
        b.capsule("foot_rail_front", _v(-xs, -D / 2 - 0.03 + 0.02, 0.06), _v(xs, -D / 2 - 0.03 + 0.02, 0.06), rad, m)
        b.capsule("foot_rail_back", _v(-xs, D / 2 + 0.025, 0.08), _v(xs, D / 2 + 0.025, 0.08), rad, m)
        zb0, zb1 = H + 0.22, H + 0.38
        tb = rng.uniform(0.008, 0.015)
        yb = float(_on_leg(_v(0, D / 2 + 0.02, 0), _v(0, ytop, H + 0.4), (zb0 + zb1) / 2)[1])
        lean = math.atan2(ytop - D / 2 - 0.02, H + 0.4)
        b.box("back_panel", _v(0, yb + rad * 0.5, (zb0 + zb1) / 2), (xs, tb, (zb1 - zb0) / 2), seatm, lean_rot(lean),
              r=0.9 * tb)
        return style
    wood = _wood(rng) if rng.random() < 0.8 else _metal(rng, 0.5)
    if style == "deck":
        W = rng.uniform(0.5, 0.6)
        hw, hd = rng.uniform(0.01, 0.016), rng.uniform(0.018, 0.026)
        xs = W / 2
        front_foot, top = _v(0, -0.5, 0), _v(0, rng.uniform(0.22, 0.3), rng.uniform(0.9, 1.0))
        sling = _striped(rng) if rng.random() < 0.7 else _fabric(rng)
        for ix, nm in ((-1, "l"), (1, "r")):
            x = _v(ix * xs, 0, 0)
            b.seg_box("rail_" + nm, front_foot + x + _v(0, 0, hd), top + x, hw, hd, wood, r=0.4 * hw, xhint=(0, 0, 1))
            b.seg_box("back_leg_" + nm, _v(ix * (xs + 2 * hw), 0.42, hd), _on_leg(front_foot, top, 0.55) + x * (1 + 4 * hw / W),
                      hw, hd, wood, r=0.4 * hw, xhint=(0, 0, 1))
            b.seg_box("seat_rail_" + nm, _v(ix * (xs - 2 * hw), -0.55, 0.34), _on_leg(front_foot, top, 0.5) + x
                      - _v(ix * 2 * hw, 0, 0), hw, hd, wood, r=0.4 * hw, xhint=(0, 0, 1))
        back_foot, back_top = _v(0, 0.42, hd), _on_leg(front_foot, top, 0.55)
        for nm, p in (("top", top - _v(0, 0.01, 0.01)), ("front", _v(0, -0.5, 0.34)),
                      ("back", _on_leg(back_foot, back_top, 0.1)), ("brace", back_top)):
            extra = 4 * hw if nm in ("back", "brace") else (0.0 if nm == "top" else -2 * hw)
            b.capsule("crossbar_" + nm, p - _v(xs + extra, 0, 0), p + _v(xs + extra, 0, 0), rng.uniform(0.011, 0.015),
                      wood)
        # sagging fabric sling from the top bar to the front bar
        a, c = top - _v(0, 0.01, 0.01), _v(0, -0.5, 0.34)
        sag = rng.uniform(0.1, 0.18)
        pts = [a + (c - a) * s - _v(0, 0, sag * math.sin(math.pi * s) * 0.9) + _v(0, sag * 0.3 * math.sin(math.pi * s), 0)
               for s in np.linspace(0, 1, 5)]
        for k in range(4):
            b.seg_box(f"sling_{k}", pts[k], pts[k + 1], xs - hw - 0.004, 0.006, sling, r=0.005, extend=0.01)
        return style
    # director's chair: X legs seen from the front, fabric seat and back band, arms
    H, W, D = rng.uniform(0.42, 0.47), rng.uniform(0.45, 0.55), rng.uniform(0.4, 0.46)
    hw = rng.uniform(0.012, 0.018)
    cloth = _fabric(rng) if rng.random() < 0.7 else _leather(rng)
    xs, ys = W / 2, D / 2
    zr = H - 0.04
    Ha = H + rng.uniform(0.18, 0.25)
    Hb = H + rng.uniform(0.38, 0.48)
    for iy, nm in ((-1, "front"), (1, "back")):
        y = iy * ys
        b.seg_box(f"x_leg_{nm}_1", _v(-xs, y, hw), _v(xs, y, zr), hw, hw, wood, r=0.4 * hw, xhint=(0, 1, 0))
        b.seg_box(f"x_leg_{nm}_2", _v(xs, y, hw), _v(-xs, y, zr), hw, hw, wood, r=0.4 * hw, xhint=(0, 1, 0))
    for ix, nm in ((-1, "l"), (1, "r")):
        x = ix * xs
        b.seg_box("seat_rail_" + nm, _v(x, -ys - hw, zr), _v(x, ys + hw, zr), hw, hw * 1.4, wood, r=0.4 * hw)
        b.seg_box("foot_rail_" + nm, _v(x, -ys - hw, hw), _v(x, ys + hw, hw), hw, hw, wood, r=0.4 * hw)
        b.seg_box("arm_post_front_" + nm, _v(x, -ys + 0.03, zr), _v(x, -ys + 0.03, Ha), hw, hw, wood, r=0.4 * hw)
        b.seg_box("back_post_" + nm, _v(x, ys, zr), _v(x, ys + 0.04, Hb), hw, hw, wood, r=0.4 * hw)
        b.box("arm_" + nm, _v(x, 0.0, Ha + hw), (hw * 1.8, ys + 0.02, hw * 1.2), wood, r=0.6 * hw)
    b.box("seat_sling", _v(0, 0, zr + hw * 0.8), (xs - hw * 0.5, ys, 0.006), cloth, r=0.005)
    bz = Hb - rng.uniform(0.06, 0.1)
    b.box("back_band", _v(0, ys + 0.04 * (bz - zr) / (Hb - zr) + hw * 0.5, bz), (xs, 0.006, rng.uniform(0.06, 0.09)),
          cloth, r=0.005)
    return style


def _barstool(b, rng):
    H = rng.uniform(0.62, 0.8)
    rs = rng.uniform(0.17, 0.22)
    T = rng.uniform(0.03, 0.06)
    round_seat = rng.random() < 0.6
    frame = _metal(rng, 0.45) if rng.random() < 0.6 else _wood(rng)
    seatm = rng.choice([0, 1, 2])
    seatm = _upholstery(rng, 0.5) if seatm == 0 else (_wood(rng) if seatm == 1 else _plastic(rng))
    if round_seat:
        b.cyl("seat", _v(0, 0, H - T / 2), rs, T / 2, seatm, r=min(0.9 * T / 2, 0.02))
        ys_back = rs * 0.8
    else:
        b.box("seat", _v(0, 0, H - T / 2), (rs, rs * 0.95, T / 2), seatm, r=min(0.9 * T / 2, 0.02))
        ys_back = rs * 0.85
    style = str(rng.choice(["legs4", "column"], p=[0.6, 0.4]))
    if style == "legs4":
        xs = rs * 0.65
        lstyle = "round" if frame.material == METAL else str(rng.choice(["square", "tapered"]))
        half = rng.uniform(0.011, 0.016) if frame.material == METAL else rng.uniform(0.015, 0.022)
        legs = _legs4(b, rng, xs, xs, H - T + 0.005, half, frame, lstyle, rng.uniform(0.03, 0.08))
        zf = rng.uniform(0.2, 0.32)
        if rng.random() < 0.5:
            p = _on_leg(*legs["fr"], zf)
            b.torus("footrest_ring", _v(0, 0, zf), math.hypot(p[0], p[1]), rng.uniform(0.009, 0.013), frame)
        else:
            _stretchers(b, legs, zf, rng.uniform(0.01, 0.014), frame, np.random.default_rng(0))
    else:
        cr = rng.uniform(0.022, 0.04)
        b.cyl("column", _v(0, 0, H / 2), cr, H / 2 - 0.01, frame)
        rb = rng.uniform(0.19, 0.25)
        b.cyl("base_disc", _v(0, 0, 0.015), rb, 0.015, frame, r=0.01)
        zf = rng.uniform(0.22, 0.32)
        rr = rng.uniform(0.15, 0.19)
        b.torus("footrest_ring", _v(0, 0, zf), rr, rng.uniform(0.009, 0.013), frame)
        for k in range(3):
            a = 2 * math.pi * k / 3 + math.pi / 2
            b.capsule(f"footrest_spoke_{k}", _v(0, 0, zf), _v(rr * math.cos(a), rr * math.sin(a), zf), 0.008, frame)
    bh = rng.uniform(0.2, 0.36)
    lean = math.radians(rng.uniform(3, 12))
    back = str(rng.choice(["band", "panel", "spindle"], p=[0.45, 0.35, 0.2]))
    bmat = seatm if rng.random() < 0.5 else frame
    rot = lean_rot(lean)
    ztop = H + bh
    if back == "spindle":
        _windsor_back(b, rng, 2 * rs * 0.85, 2 * ys_back + 0.08, H, bh, lean, frame if frame.material == WOOD else bmat,
                      n=int(rng.integers(3, 6)))
        return style + "_spindle"
    xs = rs * rng.uniform(0.5, 0.75)
    phalf = rng.uniform(0.01, 0.016)
    for ix, nm in ((-1, "l"), (1, "r")):
        b.capsule("back_post_" + nm, _v(ix * xs, ys_back, H - T / 2), _v(ix * xs, ys_back + bh * math.tan(lean), ztop - 0.02),
                  phalf, frame)
    bandh = rng.uniform(0.05, 0.1) if back == "band" else bh * rng.uniform(0.45, 0.7)
    zm = ztop - bandh
    pm = _v(0, ys_back + (zm - H) * math.tan(lean), zm)
    th = rng.uniform(0.012, 0.03)
    if back == "band":
        rad = rng.uniform(0.22, 0.35)
        ang = math.asin(min(0.95, (xs + 0.03) / rad))
        b.arc("back_band", pm - rad * math.cos(ang) * rot[:, 1], rad, ang * 1.1, th, bandh, bmat, rot, r=0.9 * th)
    else:
        b.box("back_panel", pm, (xs + 0.02, th, bandh), bmat, rot, r=0.9 * th)
    return style + "_" + back


def _star_base(b, rng, n, rb, z_hub, mat, casters=True, wheel_mat=None):
    hub_r = rng.uniform(0.035, 0.05)
    b.cyl("base_hub", _v(0, 0, z_hub), hub_r, 0.03, mat, r=0.01)
    aw, ah = rng.uniform(0.018, 0.026), rng.uniform(0.014, 0.02)
    wr = rng.uniform(0.024, 0.032) if casters else 0.0
    z_tip = 2 * wr + 0.025 if casters else ah
    phase = rng.uniform(0, 2 * math.pi)
    for k in range(n):
        a = phase + 2 * math.pi * k / n
        d = _v(math.cos(a), math.sin(a), 0)
        tip = d * rb + _v(0, 0, z_tip)
        b.seg_box(f"base_arm_{k}", _v(0, 0, z_hub), tip, aw, ah, mat, r=0.6 * ah, xhint=(0, 0, 1), extend=0.01)
        if casters:
            wc = tip + d * 0.005 + _v(0, 0, -z_tip + wr)
            b.box(f"caster_fork_{k}", tip + _v(0, 0, -(z_tip - 2 * wr) / 2 - ah / 2), (0.014, 0.014, (z_tip - 2 * wr) / 2 + 0.01),
                  wheel_mat, _rot_z(a), r=0.006)
            b.cyl(f"caster_wheel_{k}", wc, wr, rng.uniform(0.01, 0.015), wheel_mat, axis=(-d[1], d[0], 0), r=0.006)
        else:
            b.cyl(f"glide_{k}", tip - _v(0, 0, ah * 0.5), aw * 1.1, ah * 0.6, mat, r=0.004)


def _office(b, rng):
    H = rng.uniform(0.44, 0.52)
    W, D = rng.uniform(0.44, 0.54), rng.uniform(0.42, 0.5)
    base = _metal(rng, 0.3) if rng.random() < 0.45 else Material(PLASTIC, _hsv(0, 0, rng.uniform(0.03, 0.1)), P_NONE,
                                                                  0.02, 0.6)
    dark = Material(PLASTIC, _hsv(0, 0, rng.uniform(0.03, 0.08)), P_NONE, 0.02, 0.6)
    r = rng.random()
    up = _leather(rng) if r < 0.25 else (_fabric(rng) if r < 0.85 else _plastic(rng))
    if up.material == FABRIC and rng.random() < 0.6:
        up.color = _hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.06, 0.5))
    _star_base(b, rng, 5, rng.uniform(0.28, 0.34), 0.1, base, casters=rng.random() < 0.9, wheel_mat=dark)
    zs = H - rng.uniform(0.1, 0.13)
    b.cyl("column_sleeve", _v(0, 0, 0.2), rng.uniform(0.024, 0.03), 0.1, dark)
    b.cyl("gas_column", _v(0, 0, (0.28 + zs) / 2), rng.uniform(0.014, 0.018), (zs - 0.28) / 2 + 0.02, base)
    b.box("mechanism", _v(0, 0.02, zs + 0.02), (0.1, 0.11, 0.03), dark, r=0.01)
    T = rng.uniform(0.06, 0.1)
    b.box("seat", _v(0, 0, H - T / 2), (W / 2, D / 2, T / 2), up, lean_rot(math.radians(rng.uniform(0, 4))),
          r=rng.uniform(0.45, 0.9) * T / 2)
    lean = math.radians(rng.uniform(6, 20))
    rot = lean_rot(lean)
    Bh = rng.uniform(0.35, 0.6)
    bt = rng.uniform(0.03, 0.05)
    mesh = rng.random() < 0.3
    back_m = up
    if mesh:
        bt = 0.016
        back_m = Material(FABRIC, _hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.05, 0.4)), P_WEAVE, 0.008, 0.1)
    yb = D / 2 + rng.uniform(0.02, 0.06)
    z_b0 = H + rng.uniform(0.04, 0.1)
    center = _v(0, yb, z_b0) + rot[:, 2] * Bh / 2
    b.box("back", center, (W / 2 * rng.uniform(0.85, 1.0), bt, Bh / 2), back_m, rot, r=0.95 * bt)
    if mesh:
        b.box("back_frame", center + rot[:, 1] * bt, (W / 2 * 0.9, 0.012, Bh / 2 * 0.95), dark, rot, r=0.01)
    # J-bar from the mechanism to the backrest
    jb = center + rot[:, 1] * bt * 0.8 - rot[:, 2] * Bh * 0.25
    b.seg_box("back_support", _v(0, 0.1, zs + 0.02), _v(0, yb + bt + 0.02, zs + 0.02), 0.03, 0.012, dark, r=0.008,
              xhint=(1, 0, 0))
    b.seg_box("back_support_up", _v(0, yb + bt + 0.02, zs + 0.01), jb, 0.03, 0.012, dark, r=0.008, xhint=(1, 0, 0))
    style = "mesh" if mesh else "padded"
    if rng.random() < 0.3:
        hc = center + rot[:, 2] * (Bh / 2 + 0.1)
        b.box("headrest", hc, (W / 2 * 0.55, bt * 1.1, 0.06), back_m, rot, r=0.9 * bt)
        b.seg_box("headrest_bar", center + rot[:, 1] * (bt + 0.006), hc + rot[:, 1] * (bt + 0.006), 0.02, 0.006, dark,
                  r=0.005)
        style += "_headrest"
    if rng.random() < 0.7:
        ha = H + rng.uniform(0.17, 0.25)
        for ix, nm in ((-1, "l"), (1, "r")):
            xo = ix * (W / 2 + 0.03)
            b.seg_box("arm_bracket_" + nm, _v(0, 0.02, zs + 0.03), _v(xo, 0.02, zs + 0.03), 0.02, 0.01, dark,
                      r=0.006, xhint=(0, 1, 0), extend=0.01)
            b.seg_box("arm_post_" + nm, _v(xo, 0.02, zs + 0.03), _v(xo, 0.0, ha), 0.015, 0.025, dark, r=0.008,
                      xhint=(1, 0, 0))
            b.box("arm_pad_" + nm, _v(xo, -0.01, ha + 0.012), (0.04, rng.uniform(0.1, 0.14), 0.014), dark, r=0.012)
        style += "_arms"
    return style


def _armchair(b, rng):
    W, D = rng.uniform(0.7, 0.95), rng.uniform(0.7, 0.92)
    Hs, Ha, Hb = rng.uniform(0.4, 0.46), rng.uniform(0.55, 0.7), rng.uniform(0.75, 1.0)
    up = _upholstery(rng, 0.35)
    cush = up if rng.random() < 0.75 else _upholstery(rng, 0.2)
    style = str(rng.choice(["club", "wingback", "chesterfield", "tub", "modern"], p=[0.3, 0.17, 0.13, 0.17, 0.23]))
    if style == "chesterfield":
        up = _leather(rng) if rng.random() < 0.7 else _fabric(rng)
        up.pattern, up.pattern_scale = P_TUFTED, rng.uniform(0.07, 0.1)
        cush = Material(up.material, up.color, P_LEATHER if up.material == LEATHER else P_WEAVE, 0.015, up.gloss)
        Hb = Ha + rng.uniform(0.0, 0.05)
    tub_rad, tub_aw = max(W, D) / 2 * rng.uniform(0.95, 1.05), rng.uniform(0.07, 0.13)
    legs = rng.random() < 0.65
    z0 = rng.uniform(0.06, 0.16) if legs else 0.0
    if legs:
        lm = _wood(rng) if rng.random() < 0.75 else _metal(rng, 0.5)
        inner = (tub_rad - tub_aw) * 0.6 if style == "tub" else None
        _legs4(b, rng, inner or W / 2 - 0.06, inner or D / 2 - 0.06, z0 + 0.01, rng.uniform(0.016, 0.026), lm,
               str(rng.choice(["tapered", "round", "square"])), rng.uniform(0.0, 0.03))
    c = rng.uniform(0.09, 0.15)
    zb = Hs - c
    rr = rng.uniform(0.02, 0.06)
    if style == "tub":
        rad, aw = tub_rad, tub_aw
        ht = rng.uniform(0.62, 0.8)
        b.cyl("base", _v(0, 0, (z0 + zb) / 2), rad - aw, (zb - z0) / 2, up, r=0.03)
        wicker = _rattan(b.aux) if b.aux.random() < 0.25 else up
        b.arc("back_arms", _v(0, 0, (z0 + ht) / 2), rad - aw / 2, math.radians(rng.uniform(115, 145)), aw / 2,
              (ht - z0) / 2, wicker, r=min(0.9 * aw / 2, rr))
        b.cyl("seat_cushion", _v(0, -0.02, zb + c / 2), rad - aw + 0.004, c / 2, cush, r=0.9 * c / 2)
        return style
    aw = rng.uniform(0.09, 0.2) if style != "modern" else rng.uniform(0.05, 0.1)
    bd = rng.uniform(0.12, 0.25)
    b.box("base", _v(0, 0, (z0 + zb) / 2), (W / 2 - aw + 0.01, D / 2, (zb - z0) / 2), up, r=min(0.02, (zb - z0) / 2 * 0.8))
    for ix, nm in ((-1, "l"), (1, "r")):
        xc = ix * (W / 2 - aw / 2)
        b.box("arm_" + nm, _v(xc, 0, (z0 + Ha) / 2), (aw / 2, D / 2, (Ha - z0) / 2), up, r=min(0.9 * aw / 2, rr))
        if style in ("club", "chesterfield") and rng.random() < 0.8:
            rad = aw / 2 * rng.uniform(1.05, 1.3)
            b.cyl("arm_roll_" + nm, _v(xc + ix * (rad - aw / 2), 0.0, Ha - rad * 0.8), rad, D / 2, up, axis=(0, 1, 0),
                  r=min(0.9 * rad, 0.04))
    lean = math.radians(rng.uniform(2, 10))
    rot = lean_rot(lean)
    hb = (Hb - z0) / 2
    b.box("back", _v(0, D / 2 - bd / 2, z0) + rot[:, 2] * hb, (W / 2 - 0.005, bd / 2, hb), up, rot,
          r=min(0.9 * bd / 2, rr))
    b.box("seat_cushion", _v(0, -bd / 2 + 0.005, zb + c / 2 - 0.005), (W / 2 - aw - 0.002, D / 2 - bd / 2, c / 2), cush,
          r=min(0.9 * c / 2, 0.05))
    if style in ("club", "modern", "wingback") and rng.random() < 0.55:
        bc = rng.uniform(0.1, 0.15)
        h = (Hb - Hs) / 2 * 0.9
        brot = lean_rot(lean + math.radians(rng.uniform(4, 10)))
        b.box("back_cushion", _v(0, D / 2 - bd - bc / 2 + 0.02, Hs - 0.01) + brot[:, 2] * h, (W / 2 - aw - 0.002, bc / 2, h),
              cush, brot, r=0.9 * bc / 2)
    if style == "wingback":
        Hb2 = max(Hb, 1.0)
        for ix, nm in ((-1, "l"), (1, "r")):
            b.box("wing_" + nm, _v(ix * (W / 2 - aw / 2), D / 2 - bd - 0.08, (Ha + Hb2) / 2 - 0.04), (aw / 2 * 0.8, 0.14, (Hb2 - Ha) / 2 + 0.04),
                  up, r=min(0.9 * aw / 2 * 0.8, 0.04))
        b.box("back_top", _v(0, D / 2 - bd / 2, z0) + rot[:, 2] * (Hb2 - z0) / 2, (W / 2 - 0.005, bd / 2, (Hb2 - z0) / 2), up, rot,
              r=min(0.9 * bd / 2, rr))
    return style


def _lounge(b, rng):
    style = str(rng.choice(["recliner", "pedestal"], p=[0.5, 0.5]))
    if style == "recliner":
        W, D = rng.uniform(0.75, 0.92), rng.uniform(0.8, 0.95)
        z0 = rng.uniform(0.0, 0.06)
        up = _upholstery(rng, 0.45)
        if z0 > 0.02:
            _legs4(b, rng, W / 2 - 0.07, D / 2 - 0.07, z0 + 0.01, 0.018, _wood(rng, 0.8), "round")
        Hs, Ha = rng.uniform(0.42, 0.48), rng.uniform(0.58, 0.68)
        aw = rng.uniform(0.12, 0.2)
        c = rng.uniform(0.12, 0.16)
        b.box("base", _v(0, 0, (z0 + Hs - c) / 2), (W / 2 - aw + 0.01, D / 2, (Hs - c - z0) / 2), up, r=0.03)
        for ix, nm in ((-1, "l"), (1, "r")):
            b.box("arm_" + nm, _v(ix * (W / 2 - aw / 2), -0.02, (z0 + Ha) / 2), (aw / 2, D / 2 - 0.02, (Ha - z0) / 2), up,
                  r=min(0.9 * aw / 2, 0.07))
        tilt = math.radians(rng.uniform(3, 8))
        b.box("seat_cushion", _v(0, -0.1, Hs - c / 2), (W / 2 - aw - 0.002, D / 2 - 0.1, c / 2), up, lean_rot(tilt),
              r=0.9 * c / 2)
        lean = math.radians(rng.uniform(18, 32))
        rot = lean_rot(lean)
        Bh = rng.uniform(0.55, 0.7)
        bd = rng.uniform(0.16, 0.24)
        bc = _v(0, D / 2 - bd / 2 - 0.05, z0 + 0.05) + rot[:, 2] * Bh / 2
        b.box("back", bc, (W / 2 - aw * 0.5, bd / 2, Bh / 2), up, rot, r=0.9 * bd / 2)
        b.box("headrest", bc + rot[:, 2] * (Bh / 2 - 0.08) - rot[:, 1] * (bd / 2), (W / 2 - aw - 0.02, 0.06, 0.08), up, rot,
              r=0.05)
        if rng.random() < 0.5:
            b.box("footrest", _v(0, -D / 2 - 0.22, Hs - 0.12), (W / 2 - aw - 0.01, 0.22, 0.05), up, lean_rot(-0.1),
                  r=0.04)
            b.seg_box("footrest_arm", _v(0, -D / 2 - 0.12, Hs - 0.14), _v(0, -D / 2 + 0.05, 0.18), 0.03, 0.012,
                      Material(METAL, _hsv(0, 0, 0.1), P_NONE, 0.02, 0.5), r=0.008)
            style += "_footrest"
        return style
    # pedestal lounge chair: tilted seat and back shells with cushions on a low star base
    W = rng.uniform(0.6, 0.8)
    shell = _wood(rng, rng.uniform(0.3, 1.0)) if rng.random() < 0.6 else _plastic(rng)
    cush = _leather(rng) if rng.random() < 0.6 else _fabric(rng)
    base = _metal(rng, 0.4)
    Hs = rng.uniform(0.36, 0.44)
    tilt = math.radians(rng.uniform(6, 14))
    srot = lean_rot(tilt)
    zs = Hs - 0.1
    n = int(rng.choice([4, 5]))
    _star_base(b, rng, n, rng.uniform(0.3, 0.38), 0.06, base, casters=False)
    b.cyl("column", _v(0, 0, (0.06 + zs) / 2), rng.uniform(0.025, 0.04), (zs - 0.06) / 2 + 0.02, base)
    D = rng.uniform(0.5, 0.6)
    sc = _v(0, -0.03, zs + 0.03)
    b.box("seat_shell", sc, (W / 2, D / 2, 0.012), shell, srot, r=0.011)
    b.box("seat_cushion", sc + srot[:, 2] * 0.05, (W / 2 - 0.02, D / 2 - 0.02, 0.045), cush, srot, r=0.04)
    lean = math.radians(rng.uniform(22, 35))
    rot = lean_rot(lean)
    Bh = rng.uniform(0.45, 0.6)
    bottom = sc + srot[:, 1] * (D / 2 - 0.02)
    bcen = bottom + rot[:, 2] * (Bh / 2 - 0.05)
    b.box("back_shell", bcen + rot[:, 1] * 0.04, (W / 2, 0.012, Bh / 2), shell, rot, r=0.011)
    b.box("back_cushion", bcen - rot[:, 1] * 0.0, (W / 2 - 0.02, 0.045, Bh / 2 - 0.02), cush, rot, r=0.04)
    b.seg_box("back_bracket", sc + srot[:, 1] * (D / 2 - 0.08) - srot[:, 2] * 0.01, bcen + rot[:, 1] * 0.05 - rot[:, 2] * 0.1,
              0.04, 0.012, base, r=0.008)
    style = "pedestal"
    if rng.random() < 0.7:
        htop = bcen + rot[:, 2] * (Bh / 2 + 0.11)
        b.box("headrest_shell", htop + rot[:, 1] * 0.04, (W / 2 * 0.95, 0.012, 0.12), shell, rot, r=0.011)
        b.box("headrest", htop, (W / 2 * 0.95 - 0.02, 0.045, 0.1), cush, rot, r=0.04)
        style += "_headrest"
    if rng.random() < 0.6:
        ha = Hs + rng.uniform(0.12, 0.18)
        for ix, nm in ((-1, "l"), (1, "r")):
            x = ix * (W / 2 + 0.01)
            b.seg_box("arm_post_" + nm, sc + _v(x, 0.05, 0), _v(x, -0.02, ha), 0.012, 0.02, base, r=0.008)
            b.box("arm_pad_" + nm, _v(x, -0.02, ha + 0.02), (0.04, rng.uniform(0.15, 0.22), 0.025), cush, r=0.022)
        style += "_arms"
    return style


def _child(b, rng):
    if rng.random() < 0.7:
        return "child_" + _dining(b, rng, child=True)
    # monobloc-style child armchair: chunky slabs in one bright plastic
    m = _plastic(rng, bright=True) if rng.random() < 0.75 else Material(WOOD, _plastic(rng, True).color, P_WOOD, 0.05, 0.3)
    H, W, D = rng.uniform(0.24, 0.3), rng.uniform(0.32, 0.4), rng.uniform(0.28, 0.34)
    t = rng.uniform(0.025, 0.04)
    r = 0.9 * t / 2
    Ha, Hb = H + rng.uniform(0.1, 0.15), H + rng.uniform(0.2, 0.3)
    b.box("seat", _v(0, 0, H - t / 2), (W / 2 - t, D / 2, t / 2), m, r=r)
    for ix, nm in ((-1, "l"), (1, "r")):
        b.box("side_" + nm, _v(ix * (W / 2 - t / 2), 0, Ha / 2), (t / 2, D / 2, Ha / 2), m, r=r)
    b.box("back", _v(0, D / 2 - t / 2, Hb / 2), (W / 2, t / 2, Hb / 2), m, r=r)
    if rng.random() < 0.5:
        b.box("front_panel", _v(0, -D / 2 + t / 2, H / 2), (W / 2 - t, t / 2, H / 2), m, r=r)
    return "child_block"


def _stool(b, rng):
    """Backless stool, kitchen or bar height: a round or square top on four straight, splayed or bent
    legs, three legs, or a column on a disc; a footrest ring or stretchers."""
    H = rng.uniform(0.42, 0.52) if rng.random() < 0.55 else rng.uniform(0.62, 0.78)
    rs = rng.uniform(0.15, 0.2)
    T = rng.uniform(0.025, 0.055)
    frame = _metal(rng, 0.35) if rng.random() < 0.6 else _wood(rng)
    top = str(rng.choice(["wood", "upholstered", "plastic"], p=[0.55, 0.3, 0.15]))
    topm = _wood(rng) if top == "wood" else (_upholstery(rng, 0.4) if top == "upholstered" else _plastic(rng))
    round_top = rng.random() < 0.7
    if round_top:
        b.cyl("seat", _v(0, 0, H - T / 2), rs, T / 2, topm, r=min(0.9 * T / 2, 0.015))
    else:
        b.box("seat", _v(0, 0, H - T / 2), (rs * 0.9, rs * 0.9, T / 2), topm, r=min(0.9 * T / 2, 0.015))
    metal = frame.material == METAL
    half = rng.uniform(0.01, 0.015) if metal else rng.uniform(0.014, 0.022)
    style = str(rng.choice(["legs4", "bent4", "legs3", "column"], p=[0.4, 0.25, 0.15, 0.2]))
    z_under = H - T + 0.004
    if style == "column":
        cr = rng.uniform(0.02, 0.035)
        b.cyl("column", _v(0, 0, H / 2), cr, H / 2 - 0.01, frame)
        b.cyl("base_disc", _v(0, 0, 0.012), rng.uniform(0.16, 0.22), 0.012, frame, r=0.008)
        if H > 0.6:  # a footrest ring on three spokes
            zf, rr = rng.uniform(0.22, 0.3), rng.uniform(0.13, 0.17)
            b.torus("footrest_ring", _v(0, 0, zf), rr, 0.01, frame)
            for k in range(3):
                a = 2 * math.pi * k / 3 + math.pi / 2
                b.capsule(f"footrest_spoke_{k}", _v(0, 0, zf), _v(rr * math.cos(a), rr * math.sin(a), zf), 0.008, frame)
        return "stool_column"
    n = 3 if style == "legs3" else 4
    spread = rs * rng.uniform(0.55, 0.75)
    splay = rng.uniform(0.02, 0.08) * (H / 0.5) if style != "legs4" or rng.random() < 0.6 else 0.0
    zf = rng.uniform(0.18, 0.3) * (H / 0.5)
    ring = rng.random() < 0.5
    feet = []
    for k in range(n):
        a = 2 * math.pi * k / n + (math.pi / 4 if n == 4 else math.pi / 2)
        d = _v(math.cos(a), math.sin(a), 0.0)
        top_pt = spread * d + _v(0, 0, z_under)
        foot = (spread + splay) * d
        if style == "bent4":  # a tube bent under the top: straight leg, then inward to the top's rim
            knee = (spread + splay * 0.3 + rng.uniform(0.01, 0.03)) * d + _v(0, 0, z_under - rng.uniform(0.04, 0.08))
            b.capsule(f"leg_{k}", foot + _v(0, 0, half), knee, half, frame)
            b.capsule(f"leg_{k}_bend", knee, top_pt, half, frame)
        else:
            b.leg(f"leg_{k}", foot, top_pt, half, frame, "round" if metal else str(rng.choice(["round", "tapered"])))
        feet.append((foot, top_pt))
    if ring:
        p = _on_leg(*feet[0], zf)
        b.torus("footrest_ring", _v(0, 0, zf), math.hypot(p[0], p[1]), max(0.7 * half, 0.008), frame)
    elif rng.random() < 0.6:
        for k in range(n):
            b.capsule(f"stretcher_{k}", _on_leg(*feet[k], zf), _on_leg(*feet[(k + 1) % n], zf), 0.7 * half, frame)
    return "stool_" + style


def _lower_end(part: Part) -> np.ndarray:
    """The lower end of a leg-like part's axis (box, capsule or cylinder)."""
    axis = part.rot[:, 2]
    length = {BOX: part.params[2], CAPSULE: part.params[0], CYLINDER: part.params[1]}[part.kind]
    a, c = part.center - axis * length, part.center + axis * length
    return a if a[2] < c[2] else c


def _rocking(b, rng):
    """A dining or Windsor chair standing on two rockers."""
    style = _dining(b, rng)
    legs = {p.name: p for p in b.parts if p.name in ("leg_fl", "leg_fr", "leg_bl", "leg_br")}
    feet = {name: _lower_end(p) for name, p in legs.items()}
    R = rng.uniform(0.7, 1.2)
    tb = rng.uniform(0.012, 0.02)  # half the rocker's height
    hz = rng.uniform(0.008, 0.013)  # half its width
    mat = legs["leg_fl"].mat
    ys = max(abs(feet["leg_fl"][1]), abs(feet["leg_bl"][1]))
    lift = R - math.sqrt((R - 2 * tb) ** 2 - ys ** 2) - 0.004  # the feet rest on the rockers' top edge
    for p in b.parts:
        p.center = p.center + _v(0, 0, lift)
    half_angle = math.asin(min(0.9, (ys + rng.uniform(0.08, 0.2)) / (R - tb)))
    rot = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # arc's local y toward -Z, x toward +Y
    for side, (f, k) in {"l": ("leg_fl", "leg_bl"), "r": ("leg_fr", "leg_br")}.items():
        x = (feet[f][0] + feet[k][0]) / 2
        b.arc("rocker_" + side, _v(x, 0.0, R), R - tb, half_angle, tb, hz, mat, rot, r=0.8 * min(tb, hz))
    return "rocking_" + style


def _cantilever(b, rng):
    """Cantilever chair: one bent tube per side runs along the floor, rises at the front to the seat,
    goes back under it and up into the back; a seat and back panel or sling."""
    H, W, D = rng.uniform(0.43, 0.48), rng.uniform(0.42, 0.5), rng.uniform(0.4, 0.48)
    tube = _metal(rng, 0.6) if rng.random() < 0.85 else _plastic(rng)
    r = rng.uniform(0.009, 0.013)
    T = rng.uniform(0.02, 0.045)
    kind = str(rng.choice(["panel", "upholstered", "cane", "shell"], p=[0.3, 0.3, 0.2, 0.2]))
    seatm = {"panel": _wood(rng), "upholstered": _upholstery(rng, 0.5), "cane": _rattan(rng),
             "shell": _plastic(rng)}[kind]
    lean = math.radians(rng.uniform(5, 15))
    Bh = rng.uniform(0.3, 0.42)
    xs = W / 2 - r
    y_front = -D / 2 - rng.uniform(0.0, 0.04)
    y_floor_back = D / 2 - rng.uniform(0.0, 0.08)
    sb = H - T
    y_post = D / 2 - 0.02
    top = _v(0, y_post + Bh * math.tan(lean), H + Bh)
    for ix, nm in ((-1, "l"), (1, "r")):
        x = ix * xs
        fb, ff = _v(x, y_floor_back, r), _v(x, y_front, r)
        sf, sbk = _v(x, y_front + rng.uniform(0.0, 0.03), sb - r), _v(x, y_post, sb - r)
        b.capsule("runner_" + nm, fb, ff, r, tube)
        b.capsule("front_" + nm, ff, sf, r, tube)
        b.capsule("seat_rail_" + nm, sf, sbk, r, tube)
        b.capsule("back_post_" + nm, sbk, top + _v(x, 0, 0), r, tube)
    b.capsule("runner_back", _v(-xs, y_floor_back, r), _v(xs, y_floor_back, r), r, tube)
    b.box("seat", _v(0, -0.01, H - T / 2), (W / 2 - 0.5 * r, D / 2 - 0.01, T / 2), seatm, r=min(0.9 * T / 2, 0.015))
    rot = lean_rot(lean)
    bh = Bh * rng.uniform(0.4, 0.7)
    th = rng.uniform(0.01, 0.03) if kind == "upholstered" else rng.uniform(0.008, 0.014)
    pm = _v(0, y_post + (Bh - bh / 2) * math.tan(lean), H + Bh - bh / 2)
    b.box("back_panel", pm, (xs, th, bh / 2 / math.cos(lean)), seatm, rot, r=0.8 * th)
    if rng.random() < 0.3:  # armrests: a loop of the same tube
        za = H + rng.uniform(0.18, 0.24)
        for ix, nm in ((-1, "l"), (1, "r")):
            x = ix * (xs + 2.5 * r)
            b.capsule("arm_" + nm, _v(x, y_front + 0.06, za), _v(x, y_post, za), r, tube)
            b.capsule("arm_front_" + nm, _v(x, y_front + 0.06, za), _v(ix * xs, y_front + 0.04, sb - r), r, tube)
    return "cantilever_" + kind


_BUILDERS = {"dining": _dining, "shell": _shell, "folding": _folding, "barstool": _barstool, "office": _office,
             "armchair": _armchair, "lounge": _lounge, "child": _child, "stool": _stool, "rocking": _rocking,
             "cantilever": _cantilever}


# --------------------------------------------------------------------------------------------
# bounding boxes, normalization


def part_bounds(part: Part) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds (lo (3,), hi (3,)) of one part (exact except arcs, sampled)."""
    c, R, p = part.center, part.rot, part.params
    if part.kind == BOX:
        r = p[3]
        ext = np.abs(R) @ (p[:3] - r) + r
        return c - ext, c + ext
    if part.kind == CAPSULE:
        a, b = c - R[:, 2] * p[0], c + R[:, 2] * p[0]
        return np.minimum(a - p[1], b - p[2]), np.maximum(a + p[1], b + p[2])
    if part.kind in (CYLINDER, TORUS):
        ax = R[:, 2]
        radial = np.sqrt(np.clip(1 - ax**2, 0, 1))
        ext = radial * p[0] + np.abs(ax) * p[1] if part.kind == CYLINDER else radial * p[0] + p[1]
        return c - ext, c + ext
    ra, th, tb, hz = p[:4]
    phi = np.linspace(-th, th, 129)
    loc = np.stack([ra * np.sin(phi), ra * np.cos(phi), np.zeros_like(phi)], 1)
    loc = np.concatenate([loc + [0, 0, hz], loc - [0, 0, hz]])
    w = loc @ R.T + c
    pad = tb * np.sqrt(R[:, 0] ** 2 + R[:, 1] ** 2)
    return w.min(0) - pad, w.max(0) + pad


def _bounds(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    bs = [part_bounds(p) for p in parts]
    return np.min([b[0] for b in bs], 0), np.max([b[1] for b in bs], 0)


_LENGTH_PARAMS = {BOX: (0, 1, 2, 3), CAPSULE: (0, 1, 2), CYLINDER: (0, 1, 2), TORUS: (0, 1), ARC: (0, 2, 3, 4)}


def _normalize(parts: list[Part]) -> float:
    """Centre the bounding box and scale its largest side to EXTENT in place; returns the scale."""
    lo, hi = _bounds(parts)
    s = EXTENT / float((hi - lo).max())
    off = (lo + hi) / 2
    for p in parts:
        p.center = (p.center - off) * s
        idx = list(_LENGTH_PARAMS[p.kind])
        p.params[idx] *= s
        p.mat = Material(p.mat.material, p.mat.color, p.mat.pattern, p.mat.pattern_scale * s, p.mat.gloss, p.mat.color2)
    return s


def _thicken(parts: list[Part], m: float) -> None:
    for p in parts:
        q = p.params
        if p.kind == BOX:
            q[:3] = np.maximum(q[:3], m)
        elif p.kind == CAPSULE:
            q[1:3] = np.maximum(q[1:3], m)
        elif p.kind == CYLINDER:
            q[:2] = np.maximum(q[:2], m)
        elif p.kind == TORUS:
            q[1] = max(q[1], m)
        else:
            q[2:4] = np.maximum(q[2:4], m)


def sample_chair(seed: int) -> ChairSpec:
    """The chair of ``seed`` (deterministic): family, style, parts, normalized to EXTENT."""
    from . import EXTRA_SEEDS

    rng = np.random.default_rng([int(seed), 0xC4A1])
    if int(seed) in EXTRA_SEEDS:
        family = str(rng.choice(EXTRA_FAMILIES, p=EXTRA_WEIGHTS))
    else:
        family = str(rng.choice(FAMILIES, p=FAMILY_WEIGHTS))
    b = _Builder(np.random.default_rng([int(seed), 0xA11]))
    style = _BUILDERS[family](b, rng)
    parts = b.parts
    s1 = _normalize(parts)
    _thicken(parts, MIN_HALF_THICKNESS)
    s2 = _normalize(parts)
    lo, hi = _bounds(parts)
    seat_parts = [p for p in parts if p.name.startswith("seat")] or parts
    seat_height = float(max(part_bounds(p)[1][2] for p in seat_parts))
    return ChairSpec(int(seed), family, style, parts, lo, hi, seat_height, s1 * s2)


# --------------------------------------------------------------------------------------------
# packed tensors and the signed distance


def _texture_frame(p: Part) -> np.ndarray:
    """(3, 3) rotation whose x axis is the pattern's main direction (grain or face normal)."""
    R = p.rot
    if p.mat.pattern == P_STRIPES:
        return np.eye(3)
    if p.kind == BOX:
        dims = p.params[:3]
    elif p.kind == ARC:
        dims = np.array([p.params[0] * p.params[1], p.params[2], p.params[3]])
    elif p.kind == CAPSULE:
        dims = np.array([max(p.params[1], p.params[2]), max(p.params[1], p.params[2]), p.params[0] + 1e-3])
    elif p.kind == CYLINDER:
        dims = np.array([p.params[0], p.params[0], p.params[1]])
    else:
        dims = np.array([p.params[0], p.params[0], p.params[1]])
    if p.mat.pattern in (P_WEAVE, P_TUFTED, P_RATTAN, P_LEATHER):
        main = int(np.argmin(dims))
    else:
        main = int(np.argmax(dims))
    order = [main, (main + 1) % 3, (main + 2) % 3]
    return R[:, order]


def _pack(spec: ChairSpec) -> dict:
    if spec._packed is not None:
        return spec._packed
    f32 = torch.float32
    groups = {}
    order = []
    for k in range(5):
        idx = [i for i, p in enumerate(spec.parts) if p.kind == k]
        if not idx:
            continue
        order += idx
        groups[k] = {
            "center": torch.tensor(np.stack([spec.parts[i].center for i in idx]), dtype=f32),
            "rot": torch.tensor(np.stack([spec.parts[i].rot for i in idx]), dtype=f32),
            "params": torch.tensor(np.stack([spec.parts[i].params for i in idx]), dtype=f32),
        }
    parts = spec.parts
    rng = np.random.default_rng([spec.seed, 7])
    spec._packed = {
        "groups": groups,
        "order": torch.tensor(order, dtype=torch.long),
        "tex_center": torch.tensor(np.stack([p.center for p in parts]), dtype=f32),
        "tex_rot": torch.tensor(np.stack([_texture_frame(p) for p in parts]), dtype=f32),
        "tex_offset": torch.tensor(rng.uniform(-10, 10, (len(parts), 3)), dtype=f32),
        "color": torch.tensor(np.stack([p.mat.color for p in parts]), dtype=f32),
        "color2": torch.tensor(np.stack([p.mat.color * 0.6 if p.mat.color2 is None else p.mat.color2 for p in parts]),
                               dtype=f32),
        "pattern": torch.tensor([p.mat.pattern for p in parts], dtype=torch.long),
        "pscale": torch.tensor([p.mat.pattern_scale for p in parts], dtype=f32),
        "material": torch.tensor([p.mat.material for p in parts], dtype=torch.long),
        "gloss": torch.tensor([p.mat.gloss for p in parts], dtype=f32),
    }
    return spec._packed


def _local(points: Tensor, center: Tensor, rot: Tensor) -> Tensor:
    """points (N, 3) -> local coordinates (P, N, 3) of P frames."""
    return torch.matmul(points[None] - center[:, None], rot)


def _sdf_box(q: Tensor, prm: Tensor) -> Tensor:
    r = prm[:, 3:4]
    d = q.abs() - (prm[:, None, :3] - r[..., None])
    outside = d.clamp(min=0).norm(dim=-1)
    inside = d.max(dim=-1).values.clamp(max=0)
    return outside + inside - r


def _sdf_capsule(q: Tensor, prm: Tensor) -> Tensor:
    L = prm[:, 0:1]
    t = ((q[..., 2] + L) / (2 * L).clamp(min=1e-6)).clamp(0, 1)
    dz = q[..., 2] - (-L + 2 * L * t)
    d = torch.sqrt(q[..., 0] ** 2 + q[..., 1] ** 2 + dz**2)
    return d - (prm[:, 1:2] + (prm[:, 2:3] - prm[:, 1:2]) * t)


def _sdf_cylinder(q: Tensor, prm: Tensor) -> Tensor:
    r = prm[:, 2:3]
    dx = torch.sqrt(q[..., 0] ** 2 + q[..., 1] ** 2) - (prm[:, 0:1] - r)
    dz = q[..., 2].abs() - (prm[:, 1:2] - r)
    return torch.maximum(dx, dz).clamp(max=0) + torch.sqrt(dx.clamp(min=0) ** 2 + dz.clamp(min=0) ** 2) - r


def _sdf_torus(q: Tensor, prm: Tensor) -> Tensor:
    dx = torch.sqrt(q[..., 0] ** 2 + q[..., 1] ** 2) - prm[:, 0:1]
    return torch.sqrt(dx**2 + q[..., 2] ** 2) - prm[:, 1:2]


def _sdf_arc(q: Tensor, prm: Tensor) -> Tensor:
    ra, th, tb, hz, r = (prm[:, i : i + 1] for i in range(5))
    s, c = torch.sin(th), torch.cos(th)
    px, py = q[..., 0].abs(), q[..., 1]
    end = torch.sqrt((px - s * ra) ** 2 + (py - c * ra) ** 2)
    ring = (torch.sqrt(px**2 + py**2) - ra).abs()
    d2 = torch.where(c * px > s * py, end, ring) - (tb - r)
    dz = q[..., 2].abs() - (hz - r)
    return torch.maximum(d2, dz).clamp(max=0) + torch.sqrt(d2.clamp(min=0) ** 2 + dz.clamp(min=0) ** 2) - r


_SDF_FNS = {BOX: _sdf_box, CAPSULE: _sdf_capsule, CYLINDER: _sdf_cylinder, TORUS: _sdf_torus, ARC: _sdf_arc}


def part_sdfs(spec: ChairSpec, points: Tensor) -> Tensor:
    """Signed distance of every part: points (N, 3) -> (P, N), rows in ``spec.parts`` order."""
    pk = _pack(spec)
    rows = []
    for k, g in pk["groups"].items():
        q = _local(points, g["center"], g["rot"])
        rows.append(_SDF_FNS[k](q, g["params"]))
    d = torch.cat(rows, 0)
    out = torch.empty_like(d)
    out[pk["order"]] = d
    return out


def chair_sdf(spec: ChairSpec, points: Tensor) -> Tensor:
    """Signed distance of the chair: points (N, 3) -> (N,), negative inside, normalized units."""
    pk = _pack(spec)
    best = None
    for k, g in pk["groups"].items():
        d = _SDF_FNS[k](_local(points, g["center"], g["rot"]), g["params"]).min(0).values
        best = d if best is None else torch.minimum(best, d)
    return best


def chair_query(spec: ChairSpec, points: Tensor) -> tuple[Tensor, Tensor]:
    """points (N, 3) -> sdf (N,), index of the nearest part (N,) into ``spec.parts``."""
    pk = _pack(spec)
    vals, idx = [], []
    for k, g in pk["groups"].items():
        d = _SDF_FNS[k](_local(points, g["center"], g["rot"]), g["params"])
        m = d.min(0)
        vals.append(m.values)
        idx.append(m.indices)
    # map per-group row index to the global part index
    offsets = []
    o = 0
    for g in pk["groups"].values():
        offsets.append(o)
        o += g["center"].shape[0]
    v = torch.stack(vals, 0)
    best = v.min(0)
    gi = torch.stack([i + off for i, off in zip(idx, offsets)], 0)
    sel = gi.gather(0, best.indices[None])[0]
    return best.values, pk["order"][sel]


# --------------------------------------------------------------------------------------------
# albedo


@functools.lru_cache(maxsize=1)
def _noise_table() -> Tensor:
    """(1, 1, 33, 33, 33) periodic table of uniform random values (period 32), read-only."""
    t = torch.rand(32, 32, 32, generator=torch.Generator().manual_seed(1234))
    t = torch.cat([t, t[:1]], 0)
    t = torch.cat([t, t[:, :1]], 1)
    t = torch.cat([t, t[:, :, :1]], 2)
    return t[None, None].contiguous()


def value_noise(p: Tensor) -> Tensor:
    """Smooth 3-D value noise in [0, 1] (period 32): p (N, 3) -> (N,)."""
    u = torch.remainder(p, 32.0)
    i = torch.floor(u)
    f = u - i
    u = i + f * f * (3 - 2 * f)  # smoothstep fade, then trilinear lookup
    grid = (u / 16.0 - 1.0).reshape(1, -1, 1, 1, 3)
    out = torch.nn.functional.grid_sample(_noise_table(), grid, mode="bilinear", padding_mode="border",
                                          align_corners=True)
    return out.reshape(-1)


def _fbm(p: Tensor, octaves: int = 2) -> Tensor:
    out, amp, tot = 0.0, 1.0, 0.0
    for o in range(octaves):
        out = out + amp * value_noise(p * (2.0**o) + 17.0 * o)
        tot += amp
        amp *= 0.5
    return out / tot


def _pattern(kind: int, q: Tensor, s: Tensor) -> Tensor:
    """Brightness factor (N,) of pattern ``kind`` at texture coordinates q (N, 3), scale s (N,)."""
    tp = 2 * math.pi
    if kind == P_WOOD:
        warp = _fbm(q * torch.tensor([1.5, 6.0, 6.0]), 2)
        rad = torch.sqrt((q[:, 1] * 0.6) ** 2 + q[:, 2] ** 2) / s
        band = 0.5 + 0.5 * torch.sin(tp * (rad + 2.0 * warp))
        streak = value_noise(q * torch.tensor([2.0, 150.0, 150.0]))
        return 1.0 - 0.22 * band**3 - 0.12 * (streak - 0.5) + 0.08 * (warp - 0.5)
    if kind == P_WEAVE:
        a = tp / s
        weave = (torch.cos(a * q[:, 1]) * torch.cos(a * q[:, 2])).abs()
        return 0.9 + 0.1 * weave + 0.12 * (value_noise(q * 90.0) - 0.5) + 0.1 * (_fbm(q * 8.0, 2) - 0.5)
    if kind == P_TUFTED:
        g = (q[:, 1] + q[:, 2]) / (math.sqrt(2) * s)
        h = (q[:, 1] - q[:, 2]) / (math.sqrt(2) * s)
        dg, dh = g - torch.round(g), h - torch.round(h)
        button = torch.exp(-(dg**2 + dh**2) / 0.004)
        crease = torch.exp(-torch.minimum(dg.abs(), dh.abs()) ** 2 / 0.002)
        puff = 1 - (dg**2 + dh**2)
        return 0.8 + 0.2 * puff - 0.45 * button - 0.12 * crease + 0.08 * (value_noise(q * 30.0) - 0.5)
    if kind == P_RATTAN:
        u, v = q[:, 1] / s, q[:, 2] / s
        parity = (torch.floor(u) + torch.floor(v)).remainder(2)
        strand = 0.5 + 0.5 * torch.cos(tp * 3 * torch.where(parity > 0.5, u, v))
        gap = ((u - torch.round(u)).abs() < 0.06) | ((v - torch.round(v)).abs() < 0.06)
        return 0.72 + 0.3 * strand - 0.35 * gap.float() + 0.1 * (value_noise(q * 60.0) - 0.5)
    if kind == P_LEATHER:
        return 0.94 + 0.1 * (_fbm(q * 12.0, 2) - 0.5) + 0.08 * (value_noise(q * 160.0) - 0.5)
    if kind == P_BRUSHED:
        return 0.97 + 0.08 * (value_noise(q * torch.tensor([4.0, 300.0, 300.0])) - 0.5)
    if kind == P_STRIPES:
        return 0.92 + 0.16 * value_noise(q * 90.0)
    return 1.0 + 0.03 * (value_noise(q * 20.0) - 0.5)


def _albedo_of(spec: ChairSpec, points: Tensor, part: Tensor) -> Tensor:
    """Albedo (N, 3) of ``points`` (N, 3) on parts ``part`` (N,)."""
    pk = _pack(spec)
    q = torch.matmul((points - pk["tex_center"][part])[:, None, :], pk["tex_rot"][part])[:, 0]
    q = q + pk["tex_offset"][part]
    s = pk["pscale"][part]
    pat = pk["pattern"][part]
    col = pk["color"][part].clone()
    for kind in pat.unique().tolist():
        idx = torch.nonzero(pat == kind)[:, 0]
        fac = _pattern(kind, q[idx], s[idx])
        if kind == P_STRIPES:
            band = torch.floor(points[idx, 0] / s[idx] + 0.5).remainder(2)[:, None]
            col[idx] = torch.where(band > 0.5, pk["color2"][part[idx]], col[idx])
        col[idx] = col[idx] * fac[:, None]
    return col.clamp(0, 1)


def chair_sdf_albedo(spec: ChairSpec, points: Tensor) -> tuple[Tensor, Tensor]:
    """points (N, 3) -> sdf (N,), albedo (N, 3) in [0, 1] (sRGB display values) of the nearest part."""
    sdf, part = chair_query(spec, points)
    return sdf, _albedo_of(spec, points, part)


def chair_albedo(spec: ChairSpec, points: Tensor) -> Tensor:
    """points (N, 3) -> albedo (N, 3) in [0, 1] (sRGB display values) of the nearest part."""
    return chair_sdf_albedo(spec, points)[1]


def part_material(spec: ChairSpec, part: Tensor) -> tuple[Tensor, Tensor]:
    """Material id (N,) and gloss (N,) of part indices ``part`` (N,)."""
    pk = _pack(spec)
    return pk["material"][part], pk["gloss"][part]


# --------------------------------------------------------------------------------------------
# sampling


def _chunked(fn, points: Tensor, chunk: int = 65536):
    outs = [fn(points[i : i + chunk]) for i in range(0, points.shape[0], chunk)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(o, 0) for o in zip(*outs))
    return torch.cat(outs, 0)


def sdf_grad(spec: ChairSpec, points: Tensor, h: float = 5e-4) -> tuple[Tensor, Tensor]:
    """points (N, 3) -> sdf (N,), gradient (N, 3) (tetrahedron finite differences, step ``h``)."""
    k = torch.tensor([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], dtype=torch.float32)
    d = chair_sdf(spec, (points[None] + h * k[:, None]).reshape(-1, 3)).reshape(4, -1)
    grad = (d[..., None] * k[:, None]).sum(0) / (4 * h)
    return d.mean(0), grad


def surface_samples(spec: ChairSpec, n_target: int = 32768) -> dict[str, Tensor]:
    """Points on the surface (cached on ``spec``): 'points' (M, 3), 'normals' (M, 3), 'albedo' (M, 3).

    Cells of a 40^3 grid over the chair's box that straddle the surface are sampled uniformly,
    jittered inside the cell and projected onto the zero level set by ``p - sdf * grad`` (two
    Newton steps); only points with |sdf| < 1e-3 are kept, so the density is close to uniform
    over the area. Costs ~0.2 s per chair, once.
    """
    if spec._surface is not None:
        return spec._surface
    g = torch.Generator().manual_seed(spec.seed * 7919 + 1)
    res = 40
    lo = torch.tensor(spec.bbox_min, dtype=torch.float32) - 0.03
    hi = torch.tensor(spec.bbox_max, dtype=torch.float32) + 0.03
    axes = [torch.linspace(float(lo[i]), float(hi[i]), res) for i in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    step = (hi - lo) / (res - 1)
    d = chair_sdf(spec, grid)
    near = grid[d.abs() < float(step.norm()) * 0.6]
    want = int(n_target * 1.2)
    p = near[torch.randint(0, near.shape[0], (want,), generator=g)]
    p = p + (torch.rand(p.shape, generator=g) - 0.5) * step
    dd, gr = sdf_grad(spec, p)
    p = p - dd[:, None] * gr / gr.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    dd, gr = sdf_grad(spec, p)
    bad = dd.abs() >= 1e-3  # a second Newton step where the first one landed inside another part
    if bad.any():
        pb = p[bad] - dd[bad, None] * gr[bad] / gr[bad].norm(dim=-1, keepdim=True).clamp(min=1e-6)
        db, gb = sdf_grad(spec, pb)
        p[bad], dd[bad], gr[bad] = pb, db, gb
    keep = torch.nonzero(dd.abs() < 1e-3)[:n_target, 0]
    p, gr = p[keep], gr[keep]
    normals = gr / gr.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    _, albedo = chair_sdf_albedo(spec, p)
    spec._surface = {"points": p, "normals": normals, "albedo": albedo}
    return spec._surface


def training_samples(spec: ChairSpec, n_points: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Supervision for an SDF + colour field.

    Returns 'points' (N, 3): a quarter near the surface with gaussian noise sigma 0.01, a quarter
    with sigma 0.04, half uniform in [-1, 1]^3; 'sdf' (N,); 'albedo' (N, 3) of the nearest part;
    'surface_points' (M, 3) on the surface with 'surface_albedo' (M, 3) and 'surface_normals'
    (M, 3), M = N // 4. The first call per spec builds the surface cache (~0.3 s).
    """
    surf = surface_samples(spec)
    ns = surf["points"].shape[0]
    n_near = n_points // 2
    n1 = n_near // 2
    idx = torch.randint(0, ns, (n_near,), generator=generator)
    sigma = torch.cat([torch.full((n1,), 0.01), torch.full((n_near - n1,), 0.04)])[:, None]
    near = surf["points"][idx] + torch.randn(n_near, 3, generator=generator) * sigma
    uni = torch.rand(n_points - n_near, 3, generator=generator) * 2 - 1
    pts = torch.cat([near, uni], 0)
    sdf, albedo = chair_sdf_albedo(spec, pts)
    m = n_points // 4
    sidx = torch.randint(0, ns, (m,), generator=generator)
    return {"points": pts, "sdf": sdf, "albedo": albedo, "surface_points": surf["points"][sidx],
            "surface_albedo": surf["albedo"][sidx], "surface_normals": surf["normals"][sidx]}


def sdf_grid(spec: ChairSpec, resolution: int, lo: float = -1.0, hi: float = 1.0) -> Tensor:
    """SDF on a regular grid (R, R, R) over [lo, hi]^3, indexing 'ij' (x, y, z)."""
    ax = torch.linspace(lo, hi, resolution)
    grid = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    return _chunked(lambda x: chair_sdf(spec, x), grid).reshape(resolution, resolution, resolution)


def chair_mesh(spec: ChairSpec, resolution: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth mesh by marching cubes of the exact SDF over [-0.85, 0.85]^3.

    Returns vertices (V, 3) float32 (canonical frame) and faces (F, 3) int64, counter-clockwise
    seen from outside (outward normals).
    """
    from skimage.measure import marching_cubes

    lo, hi = -0.85, 0.85
    vol = sdf_grid(spec, resolution, lo, hi).numpy()
    step = (hi - lo) / (resolution - 1)
    verts, faces, _, _ = marching_cubes(vol, 0.0, spacing=(step, step, step))
    verts = verts + lo
    return verts.astype(np.float32), faces.astype(np.int64)
