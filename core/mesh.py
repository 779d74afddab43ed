"""Marching cubes on the signed distance field, vertex colors, cleanup and export.

:func:`extract_mesh` samples ``query_sdf`` on a regular grid over the scene box, extracts the
zero level set (negative inside), removes small floating pieces and colors every vertex with
``query_color``. :func:`export_mesh` writes GLB, PLY or OBJ with vertex colors.

Axes (../shared/CONVENTIONS.md): a :class:`Mesh` lives in the world/canonical frame (+Z up,
front -Y). PLY is written in that frame as is. glTF and OBJ are Y-up formats, so they store
``(x, y, z)_world -> (x, z, -y)``: Blender's stock importers (glTF, ``wm.obj_import`` with its
default forward -Z / up Y) undo exactly this and place the object upright, facing -Y.

Colors are sRGB display values in the :class:`Mesh`, in PLY (uchar) and in OBJ (the
``v x y z r g b`` extension, which Blender reads as sRGB); glTF's ``COLOR_0`` is linear by the
specification, so the GLB stores the linearized colors as float32.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import marching_cubes
from torch import Tensor

from .errors import EmptySurface, ReconstructionError

FORMATS = ("glb", "ply", "obj")


@dataclass
class Mesh:
    """A triangle mesh with per-vertex colors."""

    vertices: np.ndarray
    """(V, 3) float32 positions in the world/canonical frame, +Z up."""
    faces: np.ndarray
    """(F, 3) int32 vertex indices, counter-clockwise seen from outside (outward normals)."""
    colors: np.ndarray
    """(V, 3) float32 sRGB display colors in [0, 1]."""


def extract_mesh(query_sdf: Callable[[Tensor], Tensor], query_color: Callable[[Tensor], Tensor] | None,
                 resolution: int = 128, bound: float = 1.0, chunk: int = 65536,
                 min_component_ratio: float = 0.02, device="cpu", path: str = "", coarse: int | None = 48) -> Mesh:
    """Colored surface of ``query_sdf``'s zero level set inside ``[-bound, bound]^3``.

    ``query_sdf`` maps points (N, 3) float32 to signed distances (N,), negative inside;
    ``query_color`` maps points (N, 3) to sRGB colors (N, 3) (None: mid gray). The grid has
    ``resolution^3`` samples including the box faces (voxel = 2 * bound / (resolution - 1)); the
    outermost layer is treated as outside so the mesh is closed even where the shape touches the
    box. Connected pieces with fewer than ``min_component_ratio`` times the faces of the largest
    are dropped. Raises :class:`ReconstructionError` naming ``path`` if there is no surface.
    With ``coarse`` set (and smaller than ``resolution``), the field is first sampled on a coarse
    grid and only the fine points near the surface are queried (see :func:`sample_grid_adaptive`).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if resolution < 4:
        raise ReconstructionError(f"mesh resolution {resolution} is too small; use at least 32", path)
    if coarse is not None and coarse * 2 <= resolution:
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
                           "try a higher --mesh-resolution", path)
    voxel = 2.0 * bound / (resolution - 1)
    # With x along axis 0 (ij indexing), skimage's default gradient direction orients the faces
    # counter-clockwise seen from the positive (outside) side of the field.
    verts, faces, _, _ = marching_cubes(closed, level=0.0, spacing=(voxel,) * 3)
    verts = (verts - bound).astype(np.float32)
    verts, faces = _remove_small_components(verts, faces.astype(np.int64), min_component_ratio)
    if query_color is None:
        colors = np.full_like(verts, 0.5)
    else:
        colors = _query_points(query_color, verts, chunk, device).reshape(len(verts), 3)
        colors = np.clip(np.nan_to_num(colors, nan=0.5), 0.0, 1.0)
    return Mesh(verts, faces.astype(np.int32), colors.astype(np.float32))


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
    """Drop connected pieces with fewer than ``min_ratio`` x the largest piece's faces."""
    n = len(verts)
    edges = np.concatenate([faces[:, :2], faces[:, 1:]])
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if count <= 1:
        return verts, faces
    face_labels = labels[faces[:, 0]]
    sizes = np.bincount(face_labels, minlength=count)
    faces = faces[sizes[face_labels] >= min_ratio * sizes.max()]
    used = np.zeros(n, dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return verts[used], remap[faces]


# ---------------------------------------------------------------------------------------------
# Export


def export_mesh(mesh: Mesh, path, fmt: str | None = None) -> str:
    """Write ``mesh`` as GLB, PLY or OBJ (``fmt``, default from the extension); returns the path.

    The file is written to a temporary name in the same folder and moved into place, so a reader
    never sees a half-written file. Raises :class:`ReconstructionError` for an unknown format, an
    empty mesh or a folder that cannot be written.
    """
    path = os.fspath(path)
    fmt = (fmt or os.path.splitext(path)[1].lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ReconstructionError(f"unknown mesh format '{fmt}'; use one of {', '.join(FORMATS)}", path)
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ReconstructionError("the mesh is empty, nothing to write", path)
    writer = {"glb": _glb_bytes, "ply": _ply_bytes, "obj": _obj_bytes}[fmt]
    data = writer(mesh, os.path.splitext(os.path.basename(path))[0] or "mesh")
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        reason = "it is a file, not a folder" if os.path.isfile(folder) else (err.strerror or str(err))
        raise ReconstructionError(f"cannot write the mesh into folder '{folder}' ({reason}); "
                                  f"choose a writable output folder", path) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


def world_to_y_up(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) world (Z up) -> Y-up file coordinates: (x, y, z) -> (x, z, -y)."""
    return np.stack([vertices[:, 0], vertices[:, 2], -vertices[:, 1]], axis=1)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB display values in [0, 1] -> linear values (IEC 61966-2-1)."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb_bytes(colors: np.ndarray) -> np.ndarray:
    return np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)


def _ply_bytes(mesh: Mesh, name: str) -> bytes:
    """Binary little-endian PLY, world coordinates, uchar sRGB vertex colors."""
    v, f = len(mesh.vertices), len(mesh.faces)
    header = (f"ply\nformat binary_little_endian 1.0\ncomment {name}: Blender world coordinates, Z up\n"
              f"element vertex {v}\nproperty float x\nproperty float y\nproperty float z\n"
              f"property uchar red\nproperty uchar green\nproperty uchar blue\n"
              f"element face {f}\nproperty list uchar int vertex_indices\nend_header\n")
    vert = np.empty(v, dtype=[("p", "<f4", 3), ("c", "u1", 3)])
    vert["p"], vert["c"] = mesh.vertices, _srgb_bytes(mesh.colors)
    face = np.empty(f, dtype=[("n", "u1"), ("i", "<i4", 3)])
    face["n"], face["i"] = 3, mesh.faces
    return header.encode("ascii") + vert.tobytes() + face.tobytes()


def _obj_bytes(mesh: Mesh, name: str) -> bytes:
    """Wavefront OBJ, Y-up, with the ``v x y z r g b`` sRGB vertex color extension."""
    verts = np.concatenate([world_to_y_up(mesh.vertices), np.clip(mesh.colors, 0.0, 1.0)], axis=1)
    lines = ("v %.6f %.6f %.6f %.5f %.5f %.5f\n" * len(verts)) % tuple(verts.astype(np.float64).ravel())
    faces = ("f %d %d %d\n" * len(mesh.faces)) % tuple((mesh.faces.astype(np.int64) + 1).ravel())
    return f"# {name}: Y up, -Z forward; vertex colors are sRGB\no {name}\n".encode() + \
        lines.encode("ascii") + faces.encode("ascii")


def _glb_bytes(mesh: Mesh, name: str) -> bytes:
    """Binary glTF 2.0: POSITION (Y up), linear float COLOR_0, uint32 indices, one rough material."""
    positions = np.ascontiguousarray(world_to_y_up(mesh.vertices), dtype="<f4")
    colors = np.ascontiguousarray(srgb_to_linear(mesh.colors), dtype="<f4")
    indices = np.ascontiguousarray(mesh.faces, dtype="<u4")
    blobs = [positions.tobytes(), colors.tobytes(), indices.tobytes()]  # all multiples of 4 bytes
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    gltf = {
        "asset": {"version": "2.0", "generator": "single-image chair reconstruction"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [{
            "attributes": {"POSITION": 0, "COLOR_0": 1}, "indices": 2, "material": 0, "mode": 4}]}],
        "materials": [{"name": f"{name}_vertex_color", "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.9}}],
        "buffers": [{"byteLength": int(offsets[-1])}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": int(offsets[0]), "byteLength": len(blobs[0]), "target": 34962},
            {"buffer": 0, "byteOffset": int(offsets[1]), "byteLength": len(blobs[1]), "target": 34962},
            {"buffer": 0, "byteOffset": int(offsets[2]), "byteLength": len(blobs[2]), "target": 34963},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(positions), "type": "VEC3",
             "min": positions.min(0).tolist(), "max": positions.max(0).tolist()},
            {"bufferView": 1, "componentType": 5126, "count": len(colors), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5125, "count": int(indices.size), "type": "SCALAR"},
        ],
    }
    json_chunk = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * (-len(json_chunk) % 4)
    bin_chunk = b"".join(blobs)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(json_chunk), b"JSON") + json_chunk
            + struct.pack("<I4s", len(bin_chunk), b"BIN\x00") + bin_chunk)
