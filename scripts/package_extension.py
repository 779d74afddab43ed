"""Build the installable extension: dist/shape_from_image-<version>.zip.

    python scripts/package_extension.py [--out-dir dist] [--no-weights] [--list]

Blender's own extension builder writes the zip (``blender --command extension build``; its command line,
``blender_ext.py``, ships in the ``bpy`` wheel of requirements-dev.txt and runs in this Python without
starting Blender): every file under the repository root that the manifest's ``[build]
paths_exclude_pattern`` does not exclude, with ``blender_manifest.toml`` at the zip root. The shipped
model (``weights/``) is included; ``--no-weights`` leaves it out (a test build).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("blender_manifest.toml", "__init__.py", "core/api.py", "operators/reconstruct.py", "panels/main.py")
BUILDER = "scripts/addons_core/bl_pkg/cli/blender_ext.py"
"""Blender's extension command line, under the ``<version>/`` folder of the bpy module."""


def read_manifest(root: Path = ROOT) -> dict:
    with open(root / "blender_manifest.toml", "rb") as f:
        return tomllib.load(f)


def blender_builder() -> Path:
    """Blender's ``blender_ext.py`` in the installed bpy module (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    for base in (spec.submodule_search_locations or []) if spec is not None else []:
        found = sorted(Path(base).glob(f"*/{BUILDER}"))
        if found:
            return found[-1]
    raise SystemExit("cannot package: Blender's extension builder comes with the bpy module; install it with "
                     "pip install -r requirements-dev.txt (or run make package)")


def _blender_build(root: Path, out_dir: Path) -> Path:
    """Run Blender's builder on ``root``; the zip it wrote in ``out_dir``."""
    run = subprocess.run([sys.executable, str(blender_builder()), "build", "--source-dir", str(root),
                          "--output-dir", str(out_dir)], check=False, capture_output=True, text=True)
    zips = sorted(out_dir.glob("*.zip"))
    if run.returncode != 0 or len(zips) != 1:
        raise SystemExit(f"cannot package: Blender's extension builder failed:\n{run.stdout}{run.stderr}".rstrip())
    return zips[0]


def _without_weights(source: Path, target: Path) -> None:
    """Copy the zip ``source`` to ``target`` leaving ``weights/`` out (entries copied with their compression)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            if not info.filename.startswith("weights/"):
                zout.writestr(info, zin.read(info), compress_type=info.compress_type)


def build_zip(out_dir: Path | None = None, root: Path = ROOT, include_weights: bool = True) -> Path:
    """Write ``<out_dir>/<id>-<version>.zip`` with Blender's builder; returns its path."""
    manifest = read_manifest(root)
    out_dir = Path(out_dir or root / "dist")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        built = _blender_build(root, Path(tmp))
        names = set(zipfile.ZipFile(built).namelist())
        missing = [f for f in REQUIRED if f not in names]
        if missing:
            raise SystemExit(f"cannot package: missing {', '.join(missing)} under {root}")
        if not include_weights:
            trimmed = Path(tmp) / "trimmed.zip"
            _without_weights(built, trimmed)
            built = trimmed
        os.replace(built, target)
    return target


def zip_files(path: Path) -> list[str]:
    """The files (not folders) in the zip at ``path``, sorted."""
    return sorted(n for n in zipfile.ZipFile(path).namelist() if not n.endswith("/"))


def package_files(root: Path = ROOT, include_weights: bool = True) -> list[str]:
    """Relative paths ('/'-separated, sorted) of the files that go into the zip (a build in a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        return zip_files(build_zip(Path(tmp), root, include_weights))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    parser.add_argument("--no-weights", action="store_true", help="leave weights/ out (a test build)")
    parser.add_argument("--list", action="store_true", help="only print the files that would be packaged")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(package_files(ROOT, not args.no_weights)))
        return 0
    target = build_zip(Path(args.out_dir), ROOT, not args.no_weights)
    files = zip_files(target)
    if not args.no_weights and not any(f.startswith("weights/") and f.endswith(".safetensors") for f in files):
        print("warning: no weights/*.safetensors: the package will have no model", file=sys.stderr)
    print(f"{target} ({target.stat().st_size / 1e6:.1f} MB, {len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
