"""Infinigen chairs -> this project's canonical frame and cameras (NumPy only, no bpy, no torch).

Imported by ``make_chairs.py`` inside Infinigen's environment and by the tests in the project's own.

- Seeds: :data:`VALIDATION_SEEDS` are validation only and :data:`TUNING_SEEDS` are for tuning; the
  generator's training chairs take theirs from :data:`TRAINING_SEEDS` (:func:`training_seed`).
- Frame: Infinigen builds its seating facing +X (``ChairFactory.create_asset`` draws the seat from
  y = 0 at the back to y = -depth at the front, then turns the joined object by +90 deg about Z; the
  backrests of ``OfficeChairFactory`` and ``ArmChairFactory`` (a ``SofaFactory``) also stand at -X,
  measured by :func:`back_offset` on seeds 1-3 before the turn: -0.31 to -0.45 of the depth).
  ``BarChairFactory`` makes backless bar stools (a round seat on 3-4 legs, one column or casters):
  they have no front, turned like the others; the evaluation forgives exactly the turns that map a
  stool onto itself (training.shape_metrics.self_turns). :data:`FRONT_YAW_DEG` turns each family's
  front onto -Y (docs/CONVENTIONS.md); :func:`back_offset` is recorded for every chair.
- Scale: the metric chair is centred on its bounding box and scaled so that its largest side is
  :data:`EXTENT` (as ``training.data.chairs`` and ``training.real`` do); the metric size is kept
  in the manifest.
- Cameras: Blender's convention (looks along local -Z, +Y up; ``cam2world`` = ``matrix_world``),
  azimuth 0 = camera on the -Y side looking at the front, 90 = camera on +X.
"""

from __future__ import annotations

import math

import numpy as np

EXTENT = 1.6
"""largest side of the canonical bounding box (= training.data.chairs.EXTENT; a test keeps them equal)."""
VALIDATION_SEEDS = range(950_000, 960_000)
"""Infinigen factory seeds used for validation only; training on Infinigen chairs uses other seeds."""
TUNING_SEEDS = range(970_000, 980_000)
"""Infinigen factory seeds for tuning inference settings (``make_chairs.py --first-seed 970000``): never
used for validation or training, so that settings are chosen without looking at the validation."""
TRAINING_SEEDS = range(2_000_000, 2_100_000)
"""Infinigen factory seeds of the generator's training chairs (make_training.py), disjoint from the above."""
FAMILIES = ("chair", "office", "bar", "armchair")
"""in the order the validation cycles through them: chair k has family FAMILIES[k % 4]."""
FACTORIES = {"chair": "ChairFactory", "office": "OfficeChairFactory", "bar": "BarChairFactory",
             "armchair": "ArmChairFactory"}
"""family -> class in ``infinigen.assets.objects.seating``."""
FRONT_YAW_DEG = {"chair": -90.0, "office": -90.0, "bar": -90.0, "armchair": -90.0}
"""turn about +Z that takes the family's front (+X in Infinigen) onto -Y."""


def case_seed(k: int, first_seed: int = VALIDATION_SEEDS.start) -> tuple[str, int]:
    """(family, factory seed) of chair ``k`` of the set whose factory seeds start at ``first_seed``
    (:data:`VALIDATION_SEEDS`, :data:`TUNING_SEEDS`, or :data:`TRAINING_SEEDS`: training photos, e.g.
    for the segmenter)."""
    seeds = next((r for r in (VALIDATION_SEEDS, TUNING_SEEDS, TRAINING_SEEDS) if r.start == first_seed), None)
    if seeds is None:
        raise ValueError(f"first seed {first_seed}: use {VALIDATION_SEEDS.start} (validation), "
                         f"{TUNING_SEEDS.start} (tuning) or {TRAINING_SEEDS.start} (training)")
    if not 0 <= k < len(seeds):
        raise ValueError(f"chair index {k} outside 0..{len(seeds) - 1}")
    return FAMILIES[k % len(FAMILIES)], seeds[k]


def training_seed(k: int) -> tuple[str, int]:
    """(family, factory seed) of training chair ``k``: families cycle as the validation's do."""
    if not 0 <= k < len(TRAINING_SEEDS):
        raise ValueError(f"training chair index {k} outside 0..{len(TRAINING_SEEDS) - 1}")
    return FAMILIES[k % len(FAMILIES)], TRAINING_SEEDS[k]


def procedural_rows(seeds: list[int]) -> list[int]:
    """Indices of the entries of a generator's chair list (``seeds``) that are the data generator's
    chairs, not Infinigen training chairs (:data:`TRAINING_SEEDS`): only those have named parts and a
    data-generator twin to render."""
    return [i for i, s in enumerate(seeds) if s not in TRAINING_SEEDS]


def rot_z(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def canonical_transform(vertices: np.ndarray, yaw_deg: float) -> tuple[np.ndarray, float]:
    """(4, 4) map from Infinigen's frame to the canonical one (turn by ``yaw_deg`` about +Z, centre
    the bounding box, largest side EXTENT) and the metric length of that largest side."""
    turned = np.asarray(vertices, dtype=np.float64) @ rot_z(yaw_deg).T
    lo, hi = turned.min(0), turned.max(0)
    metric = float((hi - lo).max())
    s = EXTENT / metric
    m = np.eye(4)
    m[:3, :3] = s * rot_z(yaw_deg)
    m[:3, 3] = -s * (lo + hi) / 2
    return m, metric


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


def back_offset(vertices: np.ndarray, top: float = 0.25) -> float:
    """Where the top of a canonical chair lies along Y, in units of its depth: the mean Y of the
    points in the highest ``top`` of its height minus the box centre. The backrest is the highest part
    and stands behind the seat, so this is > 0 when the front faces -Y (stools: about 0)."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    upper = v[v[:, 2] >= hi[2] - top * (hi[2] - lo[2])]
    return float((upper[:, 1].mean() - (lo[1] + hi[1]) / 2) / max(hi[1] - lo[1], 1e-9))


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cam2world of a camera at ``eye`` looking at ``target`` with +Z up (Blender convention)."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 0.0, 1.0], back)
    if np.linalg.norm(right) < 1e-9:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, eye
    return m


def project(pts: np.ndarray, cam2world: np.ndarray, focal_px: float, cx: float, cy: float) -> np.ndarray:
    """(N, 2) pixel positions (x right, y down from the top-left corner) of world points."""
    local = (np.asarray(pts, dtype=np.float64) - cam2world[:3, 3]) @ cam2world[:3, :3]
    depth = -local[:, 2]
    return np.stack([cx + focal_px * local[:, 0] / depth, cy - focal_px * local[:, 1] / depth], -1)


def fit_camera(pts: np.ndarray, azimuth_deg: float, elevation_deg: float, focal_px: float, size: int,
               fill: float, margin: float = 2.0) -> np.ndarray:
    """cam2world looking at the chair from (azimuth, elevation) so that its projection fills ``fill`` of
    the square ``size`` frame (the larger side of its projected box), centred, never cut off."""
    pts = np.asarray(pts, dtype=np.float64)
    if len(pts) > 4000:
        pts = pts[np.linspace(0, len(pts) - 1, 4000).astype(int)]
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    direction = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
    radius = float(np.linalg.norm(pts.max(0) - pts.min(0))) / 2
    target = (pts.max(0) + pts.min(0)) / 2
    dist = radius * focal_px / (fill * size / 2) + radius
    c = size / 2
    m = look_at(target + direction * dist, target)
    for _ in range(12):
        m = look_at(target + direction * dist, target)
        uv = project(pts, m, focal_px, c, c)
        lo, hi = uv.min(0), uv.max(0)
        # re-aim at the projected box's centre (camera right / up through the target), then the distance
        off = (hi + lo) / 2 - c
        target = target + (m[:3, 0] * off[0] - m[:3, 1] * off[1]) * dist / focal_px
        dist *= 0.2 + 0.8 * float((hi - lo).max()) / (fill * size)
    m = look_at(target + direction * dist, target)
    for _ in range(20):  # never cut off
        uv = project(pts, m, focal_px, c, c)
        if (uv.min(0) >= margin).all() and (uv.max(0) <= size - margin).all():
            break
        dist *= 1.05
        m = look_at(target + direction * dist, target)
    return m
