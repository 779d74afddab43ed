"""Real size, on the floor: a reconstruction moved from the model's canonical frame into metres.

The model works in its canonical frame (docs/CONVENTIONS.md: centred at the origin, normalized units).
An asset is expected standing on the floor: origin at the centre of its base, the base at z = 0, +Z up,
in metres. :func:`place` scales the mesh about the centre of its base to the category's height (the
model's ``size_prior``, measured on its training data) or to the caller's, and moves every camera with
it (position scaled about the same point, rotation and intrinsics unchanged), so the view through each
camera is exactly the same: a scene seen by a pinhole camera looks the same when both are scaled together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .result import CameraInfo

SOURCES = ("prior", "given", "none")
"""where the height comes from: the model's size prior, the caller, or nowhere (the model has no prior:
the mesh keeps the model's units and is only put on the floor)."""


@dataclass
class Placement:
    """The similarity from the model's canonical frame to the placed (world) frame:
    ``world = (canonical - origin) * scale``."""

    scale: float
    """world units (metres, unless ``size_source`` is 'none') per canonical unit."""
    origin: np.ndarray
    """(3,) the canonical point that becomes the world origin: the centre of the mesh's base."""
    height_m: float
    """the placed mesh's overall height (its extent along +Z), in world units."""
    size_source: str
    """one of :data:`SOURCES`."""

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> the model's canonical frame (to compare with or re-render the field)."""
        return np.asarray(points, np.float64) / self.scale + self.origin

    def camera_to_canonical(self, camera: CameraInfo) -> CameraInfo:
        """The camera ``camera`` (placed) in the canonical frame of the field."""
        c2w = np.array(camera.cam2world, dtype=np.float64)
        c2w[:3, 3] = c2w[:3, 3] / self.scale + self.origin
        return dataclasses.replace(camera, cam2world=c2w)

    def to_json(self) -> dict:
        return {"height_m": round(float(self.height_m), 6), "scale": round(float(self.scale), 8),
                "size_source": self.size_source,
                "canonical_origin": [round(float(v), 6) for v in self.origin]}


def placement_for(vertices: np.ndarray, height_m: float | None, prior_m: float = 0.0) -> Placement:
    """The placement of a mesh with ``vertices`` (V, 3) canonical: its base centre to the origin, scaled to
    ``height_m`` (the caller's), else to ``prior_m`` (the model's size prior; 0: no scaling)."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    origin = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    extent = float(hi[2] - lo[2])
    if height_m is not None:
        target, source = float(height_m), "given"
    elif prior_m > 0:
        target, source = float(prior_m), "prior"
    else:
        target, source = extent, "none"
    scale = target / extent if extent > 0 else 1.0
    return Placement(scale, origin, extent * scale, source)


def place(mesh, cameras: list[CameraInfo], height_m: float | None, prior_m: float = 0.0):
    """(placed mesh, placed cameras, :class:`Placement`) of a canonical ``mesh`` (core.mesh.Mesh) and the
    cameras that see it; see :func:`placement_for`. Colours, UVs, texture and parts are kept."""
    placement = placement_for(mesh.vertices, height_m, prior_m)
    vertices = ((np.asarray(mesh.vertices, np.float64) - placement.origin) * placement.scale).astype(np.float32)
    placed = []
    for cam in cameras:
        c2w = np.array(cam.cam2world, dtype=np.float64)
        c2w[:3, 3] = (c2w[:3, 3] - placement.origin) * placement.scale
        placed.append(dataclasses.replace(cam, cam2world=c2w))
    return dataclasses.replace(mesh, vertices=vertices), placed, placement
