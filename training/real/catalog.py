"""Sweet Home 3D's default furniture catalogue: the .deb, the jar inside it, the chairs it lists.

Only the catalogue that ships inside the ``sweethome3d`` package itself is read
(``com/eteks/sweethome3d/io/DefaultFurnitureCatalog.properties`` in ``sweethome3d.jar``); the
separate ``sweethome3d-furniture`` package is never touched.

Sweet Home 3D's model frame: +Y up, the front (what its 3D view shows when the piece is placed
unrotated in the plan) toward +Z. A catalogue entry may rotate the model (``modelRotation``, a 3x3
matrix, row-major, applied to points as ``R @ p``) before the model's bounding box is stretched to
the entry's ``width`` (x), ``height`` (y) and ``depth`` (z), in centimetres. Models without a
``mtllib`` (or with material names their library lacks) use the Wavefront default material library
that Sweet Home 3D's OBJ loader embeds as a string constant in ``OBJLoader.class``.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "sweethome3d"
JAR_PATH = "usr/share/sweethome3d/sweethome3d.jar"
CATALOG_PATH = "com/eteks/sweethome3d/io/DefaultFurnitureCatalog.properties"
OBJ_LOADER_CLASS = "com/eteks/sweethome3d/j3d/OBJLoader.class"
CHAIR_PATTERN = re.compile(r"chair|stool", re.IGNORECASE)
"""an entry is a chair when its id or English name matches (chairs, armchairs, stools; not sofas)."""
SEAT_TAG = "seat"
"""entries tagged 'Seat' that are not chairs are listed in the manifest as excluded."""


@dataclass
class CatalogEntry:
    """One piece of furniture of the catalogue (the keys of its ``key#N=value`` lines)."""

    index: int
    """N in ``key#N``."""
    props: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.props.get("id", f"#{self.index}")

    @property
    def name(self) -> str:
        return self.props.get("name", "")

    @property
    def slug(self) -> str:
        """File-name-safe short name: the id after its '#' (``eTeks#armchair2`` -> ``armchair2``)."""
        return re.sub(r"[^A-Za-z0-9_-]+", "_", self.id.split("#")[-1])

    @property
    def tags(self) -> list[str]:
        return [t.strip() for t in self.props.get("tags", "").split(",") if t.strip()]

    @property
    def model(self) -> str:
        return self.props["model"]

    @property
    def size_cm(self) -> tuple[float, float, float]:
        """(width, depth, height) in centimetres."""
        return float(self.props["width"]), float(self.props["depth"]), float(self.props["height"])

    @property
    def model_rotation(self) -> list[list[float]] | None:
        """The 3x3 ``modelRotation`` (row-major), or None when the entry has none."""
        text = self.props.get("modelRotation")
        if not text:
            return None
        v = [float(x) for x in text.split()]
        return [v[0:3], v[3:6], v[6:9]]

    def summary(self) -> dict:
        keys = ("id", "name", "category", "tags", "model", "width", "depth", "height", "modelRotation", "creator")
        return {k: self.props[k] for k in keys if k in self.props}


def find_deb(search: list[Path], download_dir: Path) -> Path:
    """The sweethome3d .deb: the first ``sweethome3d_*.deb`` in ``search``, else ``apt-get download``."""
    for folder in search:
        hits = sorted(Path(folder).glob(f"{PACKAGE}_*_all.deb"))
        if hits:
            return hits[-1]
    download_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", PACKAGE], cwd=download_dir, check=True)
    hits = sorted(download_dir.glob(f"{PACKAGE}_*_all.deb"))
    if not hits:
        raise FileNotFoundError(f"apt-get download {PACKAGE} wrote no .deb into {download_dir}")
    return hits[-1]


def _ar_members(data: bytes) -> dict[str, bytes]:
    """Members of a Unix ``ar`` archive (the .deb container)."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos, out = 8, {}
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    return out


def extract_jar(deb: Path, dest: Path) -> Path:
    """Copy ``sweethome3d.jar`` out of the .deb into ``dest`` (pure Python: ar + tar)."""
    dest.mkdir(parents=True, exist_ok=True)
    jar = dest / "sweethome3d.jar"
    if jar.exists():
        return jar
    members = _ar_members(deb.read_bytes())
    data_name = next(n for n in members if n.startswith("data.tar"))
    with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode="r:*") as tar:
        info = next(m for m in tar.getmembers() if m.name.lstrip("./") == JAR_PATH)
        with tar.extractfile(info) as src, open(jar, "wb") as out:
            shutil.copyfileobj(src, out)
    return jar


def _unescape(value: str) -> str:
    """Java properties escapes: \\uXXXX, \\t, \\n, \\:, \\=, \\\\."""
    def sub(m: re.Match) -> str:
        s = m.group(1)
        if s.startswith("u"):
            return chr(int(s[1:], 16))
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(s, s)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", sub, value)


def parse_properties(text: str) -> dict[str, str]:
    """A Java ``.properties`` file -> {key: value} (comments, continuations and escapes handled)."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        line = line.lstrip()
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and not line.endswith("\\\\"):
            line = line[:-1] + next(lines, "").lstrip()
        m = re.match(r"((?:\\.|[^=:\s\\])+)\s*[=:\s]\s*(.*)", line)
        if m:
            out[_unescape(m.group(1))] = _unescape(m.group(2))
    return out


def read_catalog(jar: zipfile.ZipFile) -> list[CatalogEntry]:
    """All entries of the default catalogue, in catalogue order."""
    props = parse_properties(jar.read(CATALOG_PATH).decode("latin-1"))
    entries: dict[int, CatalogEntry] = {}
    for key, value in props.items():
        m = re.fullmatch(r"(\w+)#(\d+)", key)
        if m:
            n = int(m.group(2))
            entries.setdefault(n, CatalogEntry(n)).props[m.group(1)] = value
    return [entries[n] for n in sorted(entries)]


def select_chairs(entries: list[CatalogEntry]) -> tuple[list[CatalogEntry], list[dict]]:
    """(chairs, excluded seats): chairs match CHAIR_PATTERN on id or name; entries tagged 'Seat' that
    do not (sofas) are reported as excluded."""
    chairs, excluded = [], []
    for e in entries:
        if "model" not in e.props:
            continue
        if CHAIR_PATTERN.search(e.id) or CHAIR_PATTERN.search(e.name):
            chairs.append(e)
        elif any(t.lower() == SEAT_TAG for t in e.tags):
            excluded.append({"id": e.id, "name": e.name, "reason": "a seat but not a chair (sofa)"})
    return chairs, excluded


def default_mtl(jar: zipfile.ZipFile) -> str:
    """The default material library embedded in Sweet Home 3D's OBJLoader.class (a CONSTANT_Utf8
    entry of its constant pool that starts with ``newmtl``)."""
    data = jar.read(OBJ_LOADER_CLASS)
    count = struct.unpack(">H", data[8:10])[0]
    pos, i, best = 10, 1, ""
    sizes = {3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2, 17: 4, 18: 4, 19: 2, 20: 2}
    while i < count:
        tag = data[pos]
        if tag == 1:
            n = struct.unpack(">H", data[pos + 1:pos + 3])[0]
            text = data[pos + 3:pos + 3 + n].decode("utf-8", "replace")
            if text.lstrip().startswith("newmtl") and len(text) > len(best):
                best = text
            pos += 3 + n
        else:
            pos += 1 + sizes[tag]
        i += 2 if tag in (5, 6) else 1
    if not best:
        raise ValueError(f"no default material library found in {OBJ_LOADER_CLASS}")
    return best


def extract_model(jar: zipfile.ZipFile, entry: CatalogEntry, dest: Path, mtl_text: str) -> Path:
    """Write the entry's OBJ, the files next to it (MTL, textures) and the default MTL into ``dest``;
    returns the OBJ path (with ``mtllib default.mtl`` added so every material name resolves).

    A model given as ``/path/file.zip!/inner.obj`` is read from the zip inside the jar."""
    dest.mkdir(parents=True, exist_ok=True)
    model = entry.model.lstrip("/")
    if "!/" in model:
        outer, inner = model.split("!/", 1)
        archive = zipfile.ZipFile(io.BytesIO(jar.read(outer)))
        for n in archive.namelist():
            if not n.endswith("/"):
                (dest / Path(n).name).write_bytes(archive.read(n))
        obj_name = Path(inner).name
    else:
        folder = str(Path(model).parent)
        obj_name = Path(model).name
        (dest / obj_name).write_bytes(jar.read(model))
        for lib in _references(jar.read(model), ("mtllib",)):
            mtl = f"{folder}/{lib}"
            if mtl in jar.namelist():
                (dest / Path(lib).name).write_bytes(jar.read(mtl))
                for tex in _references(jar.read(mtl), ("map_Kd", "map_Ka", "map_Ks", "map_d", "map_Bump", "bump")):
                    if f"{folder}/{tex}" in jar.namelist():
                        (dest / Path(tex).name).write_bytes(jar.read(f"{folder}/{tex}"))
    (dest / "default.mtl").write_text(mtl_text)
    obj = dest / obj_name
    text = obj.read_text(encoding="latin-1")
    obj.write_text("mtllib default.mtl\n" + text, encoding="latin-1")
    return obj


def _references(data: bytes, keys: tuple[str, ...]) -> list[str]:
    """File names that lines starting with one of ``keys`` name (the last word of the line)."""
    out = []
    for line in data.decode("latin-1").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in keys:
            out.append(words[-1])
    return out
