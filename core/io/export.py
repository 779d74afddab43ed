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

A textured mesh (:mod:`core.texture`: ``uv`` and ``texture``) adds its texture: GLB embeds it as the
material's ``baseColorTexture`` (JPEG) with ``TEXCOORD_0``; since glTF multiplies that texture by
``COLOR_0``, a textured GLB keeps its vertex colours in the application-specific ``_VERTEX_COLOR``
instead, as unsigned bytes 0-255: sRGB RGBA, alpha 255, as in PLY. OBJ gets ``vt`` coordinates and ``mtllib <stem>.mtl``, whose material's ``map_Kd`` is
``<stem>_texture.png`` (both written next to it, with it). PLY keeps vertex colours only.

The bytes come from ``trimesh`` (its PLY, OBJ and GLB exporters), written atomically with the
process's normal file mode (meshes and JSON alike).

A result is a PAIR, ``<stem>.<format>`` + ``<stem>.json``, and two file names cannot be replaced in
one step, so the pair is published by one rule (docs/CONVENTIONS.md, "Result pairs"): the JSON's
``mesh.sha256`` is the SHA-256 of its mesh file; a writer moves the mesh into place, then the JSON,
while it holds a lock on the output folder (``flock``; writers of one folder take turns, so the pair
at rest is always one writer's); a reader that may run while results are written reads the JSON,
then the mesh, and accepts them only when the mesh's hash is the JSON's, else reads again
(:func:`read_result`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import trimesh
from trimesh.exchange.gltf import export_glb
from trimesh.exchange.obj import export_obj
from trimesh.exchange.ply import export_ply
from trimesh.visual.material import PBRMaterial
from PIL import Image
from trimesh.visual.texture import TextureVisuals

from ..color import srgb_to_linear
from ..config import FORMATS, SIDE_FILES
from ..errors import ReconstructionError
from ..mesh import Mesh


def write_result(res, out: Path, fmt: str, stem: str | None = None) -> None:
    """Write ``res.mesh`` as ``out/<stem>.<fmt>`` and ``res.to_json()`` as ``out/<stem>.json``; sets
    ``res.mesh_path`` and ``res.json_path`` (None again when writing failed).

    ``stem`` defaults to the input file's stem (a call with several inputs passes the unique stems of
    :func:`core.validate.output_stems`). Both files are encoded before anything is written, written
    under temporary names and then moved into place (the mesh, then the JSON, under the folder's lock),
    so a failure leaves neither file behind (a result never has a mesh without its JSON) and a reader
    never sees a half-written one; the JSON's ``mesh.sha256`` names its mesh's bytes (:func:`read_result`).
    """
    out = Path(out)
    stem = stem or Path(res.image).stem or "image"
    fmt = _check_format(fmt, out / f"{stem}.{fmt}")
    mesh_path, json_path = out / f"{stem}.{fmt}", out / f"{stem}.json"
    res.mesh_path, res.json_path = str(mesh_path), str(json_path)
    try:
        mesh_files = _mesh_files(res.mesh, fmt, stem, mesh_path)
        data = res.to_json()
        data["mesh"] = {**data.get("mesh", {}), "sha256": hashlib.sha256(mesh_files[0][1]).hexdigest()}
        text = json.dumps(data, indent=2, default=_plain)
        _write_files([*mesh_files, (json_path, text.encode("utf-8"))], out)
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
    files = _mesh_files(mesh, fmt, os.path.splitext(os.path.basename(path))[0] or "mesh", Path(path))
    _write_files(files, Path(os.path.dirname(os.path.abspath(path))))
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


def _mesh_files(mesh: Mesh, fmt: str, name: str, path: Path) -> list[tuple[Path, bytes]]:
    """(path, bytes) of the mesh file and, for a textured OBJ, its material library and texture
    (``SIDE_FILES``: ``<stem>.mtl``, ``<stem>_texture.png``) next to it."""
    if fmt != "obj" or getattr(mesh, "texture", None) is None:
        return [(path, _mesh_bytes(mesh, fmt, name, path))]
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ReconstructionError("the mesh is empty, nothing to write", str(path))
    stem = path.name[:-len(".obj")] if path.name.lower().endswith(".obj") else path.stem
    mtl_name, png_name = stem + SIDE_FILES["obj"][0], stem + SIDE_FILES["obj"][1]
    obj, mtl = _textured_obj(mesh, name, mtl_name, png_name)
    return [(path, obj), (path.with_name(mtl_name), mtl), (path.with_name(png_name), _png_bytes(mesh.texture))]


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
            with _folder_lock(folder):  # writers of one folder publish their pairs in turn
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


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive ``flock`` on the folder itself (no lock file is left in it) while the block runs;
    nothing where ``fcntl`` or a folder descriptor is unavailable (Windows)."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class PairChanging(ReconstructionError):
    """:func:`read_result` kept finding a mesh that is not its JSON's (results were being rewritten)."""


def read_result(json_path, timeout: float = 5.0) -> tuple[dict, bytes]:
    """A result pair as one writer wrote it: ``(the JSON as a dict, the bytes of its mesh file)``.

    Reads the JSON, then the mesh it names (``mesh.path``, beside it), and accepts them only when the
    mesh's SHA-256 is the JSON's ``mesh.sha256``; otherwise a writer was between its two renames, and
    both are read again (for up to ``timeout`` seconds, then :class:`PairChanging`). A JSON without
    ``mesh.sha256`` (written by an older version) is returned with its mesh unchecked.
    """
    json_path = Path(json_path)
    deadline = time.monotonic() + timeout
    delay = 1e-4
    while True:
        try:
            data = json.loads(json_path.read_bytes())
            mesh = data.get("mesh") or {}
            mesh_bytes = (json_path.parent / str(mesh.get("path"))).read_bytes()
        except FileNotFoundError as err:
            raise ReconstructionError(f"result file not found ({err.filename}); reconstruct the photo again",
                                      str(json_path)) from None
        except (OSError, ValueError, AttributeError) as err:
            raise ReconstructionError(f"cannot read the result ({err}); reconstruct the photo again",
                                      str(json_path)) from None
        expected = mesh.get("sha256")
        if expected is None or hashlib.sha256(mesh_bytes).hexdigest() == expected:
            return data, mesh_bytes
        if time.monotonic() > deadline:
            raise PairChanging(f"the mesh kept changing under its JSON for {timeout:g} s (is another program "
                               "writing this result?); read it again when it is done", str(json_path))
        time.sleep(delay)
        delay = min(2 * delay, 0.01)


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
    texture = getattr(mesh, "texture", None)
    image = None if texture is None else Image.open(io.BytesIO(_jpeg_bytes(texture)))  # trimesh keeps a JPEG as is
    material = PBRMaterial(name=f"{name}_{'texture' if image is not None else 'vertex_color'}",
                           baseColorFactor=[1.0, 1.0, 1.0, 1.0], baseColorTexture=image,
                           metallicFactor=0.0, roughnessFactor=0.9)  # glTF's default metal 1.0 looks wrong
    linear = np.ascontiguousarray(srgb_to_linear(mesh.colors), dtype=np.float32)
    # glTF multiplies the base colour texture by COLOR_0: with a texture the vertex colours go in their own
    # attribute, so that viewers show the texture as baked; 8-bit sRGB RGBA as in PLY (a third of float32's
    # bytes: the texture's file-size budget)
    if image is None:
        attributes = {"COLOR_0": linear}
    else:
        rgba = np.full((len(mesh.vertices), 4), 255, np.uint8)
        rgba[:, :3] = _srgb_bytes(mesh.colors)
        attributes = {"VERTEX_COLOR": rgba}
    parts = getattr(mesh, "parts", None)
    if parts is not None:
        padded = np.zeros((len(mesh.vertices), 8), np.float32)
        padded[:, :parts.count] = parts.weights[:, :8]
        attributes["PART_WEIGHTS_0"] = np.ascontiguousarray(padded[:, :4])
        attributes["PART_WEIGHTS_1"] = np.ascontiguousarray(padded[:, 4:])
        attributes["COLOR_RESIDUAL"] = np.ascontiguousarray(parts.residual, dtype=np.float32)
    uv = None if image is None else mesh.uv
    tm = trimesh.Trimesh(world_to_y_up(mesh.vertices), mesh.faces, visual=TextureVisuals(uv=uv, material=material),
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


JPEG_QUALITY = 85
"""quality of the JPEG texture a GLB embeds (glTF allows PNG or JPEG; a photo's texture is a quarter the size
as JPEG, without a visible difference)."""


def _jpeg_bytes(texture: np.ndarray) -> bytes:
    with io.BytesIO() as f:
        Image.fromarray(np.ascontiguousarray(texture, np.uint8), "RGB").save(f, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        return f.getvalue()


def _png_bytes(texture: np.ndarray) -> bytes:
    with io.BytesIO() as f:
        Image.fromarray(np.ascontiguousarray(texture, np.uint8), "RGB").save(f, format="PNG", compress_level=6)
        return f.getvalue()


def _textured_obj(mesh: Mesh, name: str, mtl_name: str, png_name: str) -> tuple[bytes, bytes]:
    """(OBJ, MTL) of a textured mesh: Y-up ``v x y z r g b`` (sRGB vertex colours), ``vt`` (one per vertex),
    faces ``f a/a b/b c/c`` with one material whose ``map_Kd`` is the texture."""
    v = np.concatenate([world_to_y_up(mesh.vertices), _srgb_bytes(mesh.colors) / 255.0], axis=1)
    with io.StringIO() as out:
        out.write(f"# {name}: Y up, -Z forward; vertex colors are sRGB\nmtllib {mtl_name}\no {name}\n")
        np.savetxt(out, v, fmt="v %.6f %.6f %.6f %.6f %.6f %.6f")
        np.savetxt(out, np.asarray(mesh.uv, np.float64), fmt="vt %.6f %.6f")
        out.write(f"usemtl {name}_texture\n")
        f = np.asarray(mesh.faces, np.int64) + 1
        np.savetxt(out, np.repeat(f, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
        text = out.getvalue()
    mtl = (f"# {name}\nnewmtl {name}_texture\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nNs 10\nd 1\nillum 1\n"
           f"map_Kd {png_name}\n")
    return text.encode("utf-8"), mtl.encode("utf-8")
