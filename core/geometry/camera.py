"""Pinhole cameras, rays and the crop <-> original-image conversion.

Frames (see docs/CONVENTIONS.md): world = canonical object frame, +Z up, front -Y.
A camera is stored the Blender way: ``cam2world`` maps camera-local points to world, the camera
looks along local -Z, +Y up, +X right. Pixel (u, v) has its centre at (u + 0.5, v + 0.5), measured
from the top-left corner; ``cx, cy`` are in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# OpenCV camera (x right, y down, z forward) <-> Blender camera (x right, y up, z backward).
CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class Camera:
    """A batch of pinhole cameras with square pixels."""

    cam2world: Tensor
    """(B, 4, 4) camera-local -> world, Blender convention."""
    focal: Tensor
    """(B,) focal length in pixels."""
    cx: Tensor
    """(B,) principal point x in pixels from the left edge."""
    cy: Tensor
    """(B,) principal point y in pixels from the top edge."""
    width: int
    """image width in pixels (shared by the batch)."""
    height: int
    """image height in pixels (shared by the batch)."""

    @property
    def batch(self) -> int:
        return self.cam2world.shape[0]

    def to(self, device) -> "Camera":
        return Camera(self.cam2world.to(device), self.focal.to(device), self.cx.to(device),
                      self.cy.to(device), self.width, self.height)

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera for an image resampled to ``width x height`` (same field of view)."""
        sx, sy = width / self.width, height / self.height
        return Camera(self.cam2world, self.focal * sx, self.cx * sx, self.cy * sy, width, height)


@dataclass
class RayBundle:
    """Rays in world coordinates."""

    origins: Tensor
    """(B, R, 3) ray origins (the camera centres)."""
    directions: Tensor
    """(B, R, 3) unit ray directions."""


def pixel_grid(width: int, height: int, device=None) -> Tensor:
    """(H*W, 2) pixel-centre coordinates (u, v), row-major."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32) + 0.5,
                          torch.arange(width, device=device, dtype=torch.float32) + 0.5,
                          indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)


def camera_rays(camera: Camera, pixels: Tensor | None = None) -> RayBundle:
    """Rays through pixel centres.

    ``pixels`` (B, R, 2) or (R, 2) pixel coordinates; default: every pixel, row-major.
    """
    device = camera.cam2world.device
    if pixels is None:
        pixels = pixel_grid(camera.width, camera.height, device)
    if pixels.dim() == 2:
        pixels = pixels.unsqueeze(0).expand(camera.batch, -1, -1)
    x = (pixels[..., 0] - camera.cx[:, None]) / camera.focal[:, None]
    y = -(pixels[..., 1] - camera.cy[:, None]) / camera.focal[:, None]
    local = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # (B, R, 3)
    rot = camera.cam2world[:, :3, :3]
    dirs = torch.einsum("bij,brj->bri", rot, local)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = camera.cam2world[:, None, :3, 3].expand_as(dirs)
    return RayBundle(origins, dirs)


def project(camera: Camera, points: Tensor) -> Tensor:
    """Project world points (B, N, 3) to pixels (B, N, 2); also returns depth via ``project_depth``."""
    uv, _ = project_depth(camera, points)
    return uv


def project_depth(camera: Camera, points: Tensor) -> tuple[Tensor, Tensor]:
    """World points (B, N, 3) -> pixels (B, N, 2) and depth in front of the camera (B, N)."""
    world2cam = torch.linalg.inv(camera.cam2world)
    local = torch.einsum("bij,bnj->bni", world2cam[:, :3, :3], points) + world2cam[:, None, :3, 3]
    depth = -local[..., 2]
    u = camera.cx[:, None] + camera.focal[:, None] * local[..., 0] / depth
    v = camera.cy[:, None] - camera.focal[:, None] * local[..., 1] / depth
    return torch.stack([u, v], dim=-1), depth


def look_at(eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None) -> np.ndarray:
    """4x4 cam2world (Blender convention) of a camera at ``eye`` looking at ``target`` (origin), +Z up."""
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-8:  # looking straight down or up
        right = np.array([1.0, 0.0, 0.0])
    right = right / np.linalg.norm(right)
    true_up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, true_up, back, eye
    return m


def orbit_pose(azimuth_deg: float, elevation_deg: float, distance: float,
               target: np.ndarray | None = None) -> np.ndarray:
    """cam2world of a camera on a sphere around ``target``.

    Azimuth 0 looks at the object's front (camera on -Y), positive azimuth moves the camera
    counter-clockwise seen from above (towards +X); elevation is above the horizon.
    """
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    eye = target + distance * np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    return look_at(eye, target)


@dataclass
class Crop:
    """A square window of the original image that was resampled to the model's input size."""

    x0: float
    """left edge of the window in original-image pixels (may be negative: padded)."""
    y0: float
    """top edge of the window in original-image pixels (may be negative: padded)."""
    size: float
    """side length of the window in original-image pixels."""
    out_size: int
    """side length of the resampled crop in pixels."""
    orig_width: int
    """original image width."""
    orig_height: int
    """original image height."""

    @property
    def scale(self) -> float:
        """crop pixels per original pixel."""
        return self.out_size / self.size


def crop_to_original(focal: float, cx: float, cy: float, crop: Crop) -> tuple[float, float, float]:
    """Intrinsics of the crop camera -> intrinsics of the original image (focal, cx, cy)."""
    s = crop.scale
    return focal / s, crop.x0 + cx / s, crop.y0 + cy / s


def original_to_crop(focal: float, cx: float, cy: float, crop: Crop) -> tuple[float, float, float]:
    """Inverse of :func:`crop_to_original`."""
    s = crop.scale
    return focal * s, (cx - crop.x0) * s, (cy - crop.y0) * s
