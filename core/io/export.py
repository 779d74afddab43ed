"""Files of a reconstruction: the mesh (GLB, PLY or OBJ with vertex colors) and the per-image JSON.

Axes (docs/CONVENTIONS.md): a :class:`core.mesh.Mesh` lives in the world/canonical frame (+Z up,
front -Y). PLY is written in that frame as is. glTF and OBJ are Y-up formats, so they store
``(x, y, z)_world -> (x, z, -y)``: Blender's stock importers (glTF, ``wm.obj_import`` with its
default forward -Z / up Y) undo exactly this and place the object upright, facing -Y.

Colors are sRGB display values in the :class:`Mesh`, in PLY (uchar RGBA, alpha 255) and in OBJ
(the ``v x y z r g b`` extension, which Blender reads as sRGB; 8-bit values written as floats);
glTF's ``COLOR_0`` is linear by the specification, so the GLB stores the linearized colors as
float32 (8-bit linear colors would band visibly in dark tones).

A mesh with recolorable color parts (:mod:`core.parts`) also carries, per vertex, its part weights
and pre-sigmoid residual: in PLY as float properties ``part_0`` ... ``part_{P-1}`` and
``residual_r/g/b``; in GLB as the application-specific float attributes ``_PART_WEIGHTS_0`` (parts
0-3) and ``_PART_WEIGHTS_1`` (parts 4-7, zero-padded VEC4) and ``_COLOR_RESIDUAL`` (VEC3). The part
values that complete the mix are in the JSON's ``palette``. OBJ has no place for them.

The bytes come from ``trimesh`` (its PLY, OBJ and GLB exporters), written atomically with the
process's normal file mode (meshes and JSON alike).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import trimesh
from trimesh.exchange.gltf import export_glb
from trimesh.exchange.obj import export_obj
from trimesh.exchange.ply import export_ply
from trimesh.visual.material import PBRMaterial
from trimesh.visual.texture import TextureVisuals

from ..color import srgb_to_linear
from ..config import FORMATS
from ..errors import ReconstructionError
from ..mesh import Mesh


def write_result(res, out: Path, fmt: str, stem: str | None = None) -> None:
    """Write ``res.mesh`` as ``out/<stem>.<fmt>`` and ``res.to_json()`` as ``out/<stem>.json``; sets
    ``res.mesh_path`` and ``res.json_path`` (None again when writing failed).

    ``stem`` defaults to the input file's stem (a call with several inputs passes the unique stems of
    :func:`core.validate.output_stems`). Both files are encoded before anything is written, written
    under temporary names and then moved into place, so a failure leaves neither file behind (a
    result never has a mesh without its JSON) and a reader never sees a half-written one.
    """
    out = Path(out)
    stem = stem or Path(res.image).stem or "image"
    fmt = _check_format(fmt, out / f"{stem}.{fmt}")
    mesh_path, json_path = out / f"{stem}.{fmt}", out / f"{stem}.json"
    res.mesh_path, res.json_path = str(mesh_path), str(json_path)
    try:
        text = json.dumps(res.to_json(), indent=2, default=_plain)
        files = [(mesh_path, _mesh_bytes(res.mesh, fmt, stem, mesh_path)), (json_path, text.encode("utf-8"))]
        _write_files(files, out)
    except BaseException:
        res.mesh_path = res.json_path = None
        raise


def export_mesh(mesh: Mesh, path, fmt: str | None = None) -> str:
    """Write ``mesh`` as GLB, PLY or OBJ (``fmt``, default from the extension); returns the path.

    The file is written to a temporary name in the same folder and moved into place, so a reader
    never sees a half-written file; it gets the mode of any new file (0o666 less the umask).
    Raises :class:`ReconstructionError` for an unknown format, an empty mesh or a folder that
    cannot be written.
    """
    path = os.fspath(path)
    fmt = _check_format(fmt or os.path.splitext(path)[1].lstrip("."), path)
    data = _mesh_bytes(mesh, fmt, os.path.splitext(os.path.basename(path))[0] or "mesh", path)
    _write_files([(Path(path), data)], Path(os.path.dirname(os.path.abspath(path))))
    return path


def _check_format(fmt: str, path) -> str:
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ReconstructionError(f"unknown mesh format '{fmt}'; use one of {', '.join(FORMATS)}", str(path))
    return fmt


def _mesh_bytes(mesh: Mesh, fmt: str, name: str, path) -> bytes:
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ReconstructionError("the mesh is empty, nothing to write", str(path))
    writer = {"glb": _glb_bytes, "ply": _ply_bytes, "obj": _obj_bytes}[fmt]
    return writer(mesh, name)


def _plain(value):
    """JSON for NumPy scalars and arrays that reach a result (``json.dumps``'s ``default``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_files(files: list[tuple[Path, bytes]], folder: Path) -> None:
    """Write every ``(path, data)`` under a short temporary name in ``folder`` (a long file name plus a
    suffix would pass the 255-byte limit), then move them into place; on failure nothing is left.

    Every file gets the mode of any new file (0o666 less the umask), as ``open`` would give it
    (``mkstemp`` would give 0o600).
    """
    temps: list[str] = []
    placed: list[Path] = []
    try:
        try:
            os.makedirs(folder, exist_ok=True)
            for _path, data in files:
                tmp = os.path.join(folder, f".sfi-{uuid.uuid4().hex[:16]}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
                temps.append(tmp)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            for (path, _data), tmp in zip(files, temps):
                os.replace(tmp, path)
                placed.append(path)
        except OSError as err:
            first = files[0][0]
            not_folder = os.path.exists(folder) and not os.path.isdir(folder)
            reason = "it is a file, not a folder" if not_folder else (err.strerror or str(err))
            raise ReconstructionError(f"cannot write the {'mesh' if len(files) == 1 else 'results'} into folder "
                                      f"'{folder}' ({reason}); choose a writable output folder", str(first)) from err
    except BaseException:
        for path in placed:  # a mesh without its JSON is a half result: take it back
            _remove(path)
        for tmp in temps:
            _remove(tmp)
        raise


def _remove(path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def world_to_y_up(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) world (Z up) -> Y-up file coordinates: (x, y, z) -> (x, z, -y)."""
    return np.stack([vertices[:, 0], vertices[:, 2], -vertices[:, 1]], axis=1)


def _srgb_bytes(colors: np.ndarray) -> np.ndarray:
    """(V, 3) float colors -> uint8, rounded (trimesh keeps vertex colors as uint8 RGBA)."""
    return np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)


def _ply_bytes(mesh: Mesh, name: str) -> bytes:
    """Binary little-endian PLY, world coordinates, uchar sRGB vertex colors (RGBA, alpha 255)."""
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=_srgb_bytes(mesh.colors), process=False)
    parts = getattr(mesh, "parts", None)
    if parts is not None:
        for p in range(parts.count):
            tm.vertex_attributes[f"part_{p}"] = np.ascontiguousarray(parts.weights[:, p], dtype=np.float32)
        for c, channel in enumerate("rgb"):
            tm.vertex_attributes[f"residual_{channel}"] = np.ascontiguousarray(parts.residual[:, c], dtype=np.float32)
    data = export_ply(tm, encoding="binary", vertex_normal=False, include_attributes=parts is not None)
    # trimesh's header comment names trimesh; say which frame the file is in instead.
    return data.replace(b"comment https://github.com/mikedh/trimesh\n",
                        b"comment Blender world coordinates, Z up; vertex colors are sRGB\n", 1)


def _obj_bytes(mesh: Mesh, name: str) -> bytes:
    """Wavefront OBJ, Y-up, with the ``v x y z r g b`` sRGB vertex color extension."""
    tm = trimesh.Trimesh(world_to_y_up(mesh.vertices), mesh.faces, vertex_colors=_srgb_bytes(mesh.colors),
                         process=False, metadata={"name": name})
    text = export_obj(tm, include_normals=False, include_color=True, include_texture=False, digits=6,
                      header=f"{name}: Y up, -Z forward; vertex colors are sRGB")
    return text.encode("utf-8")


def _glb_bytes(mesh: Mesh, name: str) -> bytes:
    """Binary glTF 2.0: POSITION (Y up), linear float32 COLOR_0, uint32 indices, one rough material.

    trimesh writes vertex colors as uint8 only, so the linear colors go in as a custom float32
    vertex attribute (trimesh names it ``_COLOR_0``) that is renamed ``COLOR_0`` in the JSON.
    """
    material = PBRMaterial(name=f"{name}_vertex_color", baseColorFactor=[1.0, 1.0, 1.0, 1.0],
                           metallicFactor=0.0, roughnessFactor=0.9)  # glTF's default metal 1.0 looks wrong
    linear = np.ascontiguousarray(srgb_to_linear(mesh.colors), dtype=np.float32)
    attributes = {"COLOR_0": linear}
    parts = getattr(mesh, "parts", None)
    if parts is not None:
        padded = np.zeros((len(mesh.vertices), 8), np.float32)
        padded[:, :parts.count] = parts.weights[:, :8]
        attributes["PART_WEIGHTS_0"] = np.ascontiguousarray(padded[:, :4])
        attributes["PART_WEIGHTS_1"] = np.ascontiguousarray(padded[:, 4:])
        attributes["COLOR_RESIDUAL"] = np.ascontiguousarray(parts.residual, dtype=np.float32)
    tm = trimesh.Trimesh(world_to_y_up(mesh.vertices), mesh.faces, visual=TextureVisuals(material=material),
                         vertex_attributes=attributes, process=False)
    scene = trimesh.Scene()
    scene.add_geometry(tm, geom_name=name, node_name=name)
    return export_glb(scene, include_normals=False, tree_postprocessor=_color_0_is_the_vertex_color)


def _color_0_is_the_vertex_color(tree: dict) -> None:
    """trimesh prefixes custom attributes with '_' (glTF's rule for application-specific ones);
    ours is the standard ``COLOR_0``."""
    for gltf_mesh in tree.get("meshes", []):
        for primitive in gltf_mesh["primitives"]:
            attributes = primitive["attributes"]
            if "_COLOR_0" in attributes:
                attributes["COLOR_0"] = attributes.pop("_COLOR_0")
