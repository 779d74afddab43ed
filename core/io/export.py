"""Files of a reconstruction: the mesh (GLB, PLY or OBJ with vertex colors) and the per-image JSON.

Axes (docs/CONVENTIONS.md): a :class:`core.mesh.Mesh` lives in the world/canonical frame (+Z up,
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
from pathlib import Path

import numpy as np

from ..config import FORMATS
from ..errors import ReconstructionError
from ..mesh import Mesh


def write_result(res, out: Path, fmt: str) -> None:
    """Write ``res.mesh`` as ``out/<stem>.<fmt>`` and ``res.to_json()`` as ``out/<stem>.json``; sets
    ``res.mesh_path`` and ``res.json_path``."""
    stem = Path(res.image).stem
    res.mesh_path = str(export_mesh(res.mesh, out / f"{stem}.{fmt}", fmt))
    res.json_path = str(out / f"{stem}.json")
    tmp = out / f".{stem}.json.tmp"
    tmp.write_text(json.dumps(res.to_json(), indent=2))
    os.replace(tmp, res.json_path)


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
