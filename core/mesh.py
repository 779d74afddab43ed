"""Marching cubes on the signed distance field, vertex colors and cleanup.

:func:`extract_mesh` samples ``query_sdf`` on a regular grid over the scene box, extracts the
zero level set (negative inside), removes small floating pieces and colors every vertex with
``query_color``. A :class:`Mesh` lives in the world/canonical frame (+Z up, front -Y; see
docs/CONVENTIONS.md); :mod:`core.io.export` writes it to files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes
from torch import Tensor

from .config import MeshConfig
from .errors import EmptySurface, ReconstructionError
from .parts import ColorParts, merge_slots


@dataclass
class Mesh:
    """A triangle mesh with per-vertex colors."""

    vertices: np.ndarray
    """(V, 3) float32 positions in the world/canonical frame, +Z up."""
    faces: np.ndarray
    """(F, 3) int32 vertex indices, counter-clockwise seen from outside (outward normals)."""
    colors: np.ndarray
    """(V, 3) float32 sRGB display colors in [0, 1]."""
    parts: ColorParts | None = None
    """recolorable parts: per-vertex part weights, part palette and residual with
    ``parts.colors() == colors`` (core.parts); None when the colors did not come from color slots."""
    uv: np.ndarray | None = None
    """(V, 2) float32 texture coordinates in [0, 1], origin at the bottom-left (core.texture); None: no texture."""
    texture: np.ndarray | None = None
    """(T, T, 3) uint8 sRGB colour texture, row 0 at the top (core.texture); None: vertex colours only."""


def extract_mesh(query_sdf: Callable[[Tensor], Tensor], query_color: Callable[[Tensor], Tensor] | None,
                 cfg: MeshConfig | None = None, bound: float = 1.0, device="cpu", path: str = "",
                 chunk: int = 65536,
                 slots: tuple | None = None) -> Mesh:
    """Colored surface of ``query_sdf``'s zero level set inside ``[-bound, bound]^3``.

    ``query_sdf`` maps points (N, 3) float32 to signed distances (N,), negative inside;
    ``query_color`` maps points (N, 3) to sRGB colors (N, 3) (None: mid gray). The grid has
    ``cfg.resolution^3`` samples including the box faces (voxel = 2 * bound / (resolution - 1)); the
    outermost layer is treated as outside so the mesh is closed even where the shape touches the
    box. Connected pieces with fewer than ``cfg.min_component_ratio`` times the faces of the largest
    are dropped. Raises :class:`ReconstructionError` naming ``path`` if there is no surface.
    ``slots = (query_slots, slot_values[, group_names])``: ``query_slots`` maps points (N, 3) to color-slot
    weights (N, K) that mix ``slot_values`` (K, 3) (pre-sigmoid) into the generator's colors; given, the
    colors come from that mix (``query_color`` is not called) and the mesh gets recolorable ``parts``
    (:func:`core.parts.merge_slots`; ``group_names``: the model's ``slot_groups``).
    With ``cfg.coarse`` smaller than half the resolution, the field is first sampled on a coarse
    grid and only the fine points near the surface are queried (see :func:`sample_grid_adaptive`).
    """
    cfg = cfg or MeshConfig()
    resolution, coarse, min_component_ratio = cfg.resolution, cfg.coarse, cfg.min_component_ratio
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if resolution < 4:
        raise ReconstructionError(f"mesh resolution {resolution} is too small; use at least 32", path)
    if coarse and coarse * 2 <= resolution:
        volume = sample_grid_adaptive(query_sdf, resolution, bound, chunk, device, coarse)
    else:
        volume = sample_grid(query_sdf, resolution, bound, chunk, device)
    if not np.isfinite(volume).all():  # undefined values count as empty space
        volume = np.nan_to_num(volume, nan=1.0, posinf=1.0, neginf=-1.0)
    if not (volume.min() < 0.0 < volume.max()):
        inside = "inside" if volume.max() <= 0.0 else "outside"
        raise EmptySurface(f"no surface to extract: the whole scene box is {inside} the shape; "
                           f"try another photo or more inversion steps", path)
    closed = volume.copy()
    for axis in range(3):  # the box faces count as outside: the mesh closes along them
        index = [slice(None)] * 3
        for side in (0, -1):
            index[axis] = side
            closed[tuple(index)] = np.maximum(closed[tuple(index)], 1e-6)
    if closed.min() >= 0.0:
        raise EmptySurface("no surface to extract: the shape is thinner than the mesh resolution; "
                           "try a higher mesh resolution", path)
    voxel = 2.0 * bound / (resolution - 1)
    # With x along axis 0 (ij indexing), skimage's default gradient direction orients the faces
    # counter-clockwise seen from the positive (outside) side of the field.
    verts, faces, _, _ = marching_cubes(closed, level=0.0, spacing=(voxel,) * 3)
    verts = (verts - bound).astype(np.float32)
    verts, faces = _remove_small_components(verts, faces.astype(np.int64), min_component_ratio)
    parts = None
    if slots is not None:  # one pass: the colors are the slot weights' mix of the palette
        query_slots, slot_values, *rest = slots
        slot_names = rest[0] if rest else ()
        weights = _query_points(query_slots, verts, chunk, device).reshape(len(verts), -1)
        if np.isfinite(weights).all():
            parts = merge_slots(weights, np.asarray(slot_values, np.float32), group_names=tuple(slot_names))
            colors = parts.colors()
        else:
            colors = np.full_like(verts, 0.5)
    elif query_color is None:
        colors = np.full_like(verts, 0.5)
    else:
        colors = _query_points(query_color, verts, chunk, device).reshape(len(verts), 3)
    colors = np.clip(np.nan_to_num(colors, nan=0.5), 0.0, 1.0)
    return Mesh(verts, faces.astype(np.int32), colors.astype(np.float32), parts)


CONE_MAX_SIDE = 1024
"""a larger photo's mask is area-averaged down to this side before its distance transforms (a 4000 px photo
would spend seconds on them; a pixel there is a small fraction of a 128^3 grid's voxel)."""


def silhouette_cone(mask: np.ndarray, cam2world: np.ndarray, focal: float, cx: float, cy: float,
                    margin_px: float, max_side: int = CONE_MAX_SIDE) -> Callable[[Tensor], Tensor]:
    """Signed distance (world units, positive outside) to the cone of rays through a photo's silhouette.

    ``mask`` (H, W) bool is the photo's foreground; the camera (Blender convention, pixel centres at +0.5,
    as core.geometry.camera.project) sees it at ``focal``, ``cx``, ``cy`` in the mask's pixels. A point's
    value is its pixel's signed distance to the silhouette's edge (from the distance transforms of the mask
    and of its complement), less ``margin_px``, times depth / focal: about the point's distance to the
    cone's surface. Points beyond the image's border are outside by the extra pixels too. ``max(sdf, cone)``
    is the object cut down to what the photo allows. A mask larger than ``max_side`` is scaled down first
    (camera and margin with it).
    """
    import cv2
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the silhouette is empty")
    k = max_side / max(mask.shape)
    if k < 1.0:  # x original pixels lie at x * k (the rounded size is off by under half a pixel)
        size = (max(1, round(mask.shape[1] * k)), max(1, round(mask.shape[0] * k)))
        small = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
        if small.any():  # else the object is too small to shrink: its full-size mask stays
            mask, focal, cx, cy, margin_px = small, focal * k, cx * k, cy * k, margin_px * k
    from .geometry.camera import Camera, project_depth

    signed = np.where(mask, 0.5 - distance_transform_edt(mask), distance_transform_edt(~mask) - 0.5)
    table = torch.from_numpy((signed - margin_px).astype(np.float32))
    height, width = mask.shape
    camera = Camera(torch.as_tensor(np.asarray(cam2world), dtype=torch.float32)[None], torch.tensor([float(focal)]),
                    torch.tensor([float(cx)]), torch.tensor([float(cy)]), width, height)

    def cone(points: Tensor) -> Tensor:
        uv, depth = project_depth(camera, points[None].cpu())
        u, v = (uv[0] - 0.5).round().long().unbind(-1)
        ui, vi = u.clamp(0, width - 1), v.clamp(0, height - 1)
        px = table[vi, ui] + ((u - ui).abs() + (v - vi).abs()).float()  # beyond the border: outside by that more
        depth = depth[0]
        out = torch.where(depth > 0, px * depth.clamp_min(1e-6) / focal, torch.ones_like(px))  # behind: outside
        return out.to(points.device)

    return cone


def decimate(mesh: Mesh, faces: int) -> Mesh:
    """``mesh`` with about ``faces`` triangles (quadric error simplification, fast-simplification); each new
    vertex takes the colour and parts of the nearest original vertex. A mesh with fewer faces is returned
    as is."""
    if len(mesh.faces) <= faces:
        return mesh
    import fast_simplification
    from scipy.spatial import cKDTree

    verts, tris = fast_simplification.simplify(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64),
                                               target_count=int(faces))
    tris = np.asarray(tris, np.int64)
    tris = tris[(tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])]
    if len(tris) == 0:
        return mesh
    _, near = cKDTree(mesh.vertices).query(verts)
    parts = mesh.parts
    if parts is not None:
        parts = dataclasses.replace(parts, weights=parts.weights[near], residual=parts.residual[near])
    return Mesh(np.asarray(verts, np.float32), tris.astype(np.int32), mesh.colors[near], parts)


def sample_grid(query: Callable[[Tensor], Tensor], resolution: int, bound: float, chunk: int,
                device="cpu") -> np.ndarray:
    """(R, R, R) float32 values of ``query`` on the grid; axis 0 is x, 1 is y, 2 is z.

    Points are generated slab by slab (constant x) so no (R^3, 3) array is ever built.
    """
    r = resolution
    lin = torch.linspace(-bound, bound, r, device=device, dtype=torch.float32)
    yz = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), dim=-1).reshape(-1, 2)  # (R*R, 2)
    out = np.empty(r ** 3, dtype=np.float32)
    slabs = max(1, chunk // (r * r))
    pos = 0
    with torch.no_grad():
        for x0 in range(0, r, slabs):
            xs = lin[x0:x0 + slabs]
            for s in range(0, r * r, chunk):
                part = yz[s:s + chunk]
                points = torch.cat([xs.repeat_interleave(len(part))[:, None], part.repeat(len(xs), 1)], dim=1)
                out[pos:pos + len(points)] = query(points).reshape(-1).float().cpu().numpy()
                pos += len(points)
    return out.reshape(r, r, r)


def sample_grid_adaptive(query: Callable[[Tensor], Tensor], resolution: int, bound: float, chunk: int,
                         device="cpu", coarse: int = 48, band: float = 1.5) -> np.ndarray:
    """Like :func:`sample_grid`, but exact only near the surface.

    The field is sampled on a ``coarse``^3 grid and trilinearly upsampled; fine points whose
    upsampled value lies within ``band`` coarse voxels of zero are queried exactly, the rest keep the
    upsampled value (far from the surface only the sign matters, and it is right there for a field
    that behaves like a distance). About 6x fewer queries at 128^3 for a chair.
    """
    import torch.nn.functional as F

    low = torch.from_numpy(sample_grid(query, coarse, bound, chunk, device))
    fine = F.interpolate(low[None, None], size=(resolution,) * 3, mode="trilinear", align_corners=True)[0, 0]
    threshold = band * 2.0 * bound / (coarse - 1)
    near = torch.nonzero(fine.abs() < threshold)
    volume = fine.numpy().copy()
    if len(near):
        step = 2.0 * bound / (resolution - 1)
        points = (near.float() * step - bound).numpy()
        values = _query_points(query, points, chunk, device).reshape(-1)
        idx = near.numpy()
        volume[idx[:, 0], idx[:, 1], idx[:, 2]] = values
    return volume


def _query_points(query: Callable[[Tensor], Tensor], points: np.ndarray, chunk: int, device) -> np.ndarray:
    """``query`` on points (N, 3) in chunks, as a float32 array (N, ...)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(points), chunk):
            p = torch.from_numpy(np.ascontiguousarray(points[start:start + chunk])).to(device)
            out.append(query(p).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3), np.float32)


def _remove_small_components(verts: np.ndarray, faces: np.ndarray,
                             min_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop connected pieces with fewer than ``min_ratio`` x the largest piece's faces.

    Pieces are connected through shared vertices (faces that only touch at a vertex are one piece).
    Kept vertices keep their order; faces are reindexed to them.
    """
    if len(faces) == 0:
        return verts, faces
    edges = trimesh.geometry.faces_to_edges(faces)
    labels = trimesh.graph.connected_component_labels(edges, node_count=len(verts))
    face_labels = labels[faces[:, 0]]
    sizes = np.bincount(face_labels)
    keep = sizes[face_labels] >= min_ratio * sizes.max()
    if keep.all():
        return verts, faces
    piece = trimesh.Trimesh(verts, faces, process=False)
    piece.update_faces(keep)
    piece.remove_unreferenced_vertices()
    return np.asarray(piece.vertices, dtype=verts.dtype), np.asarray(piece.faces, dtype=faces.dtype)
