"""Build the installable extension: dist/shape_from_image-<version>.zip.

    python scripts/package_extension.py [--out-dir dist] [--no-weights]

``blender --command extension build`` is not available with the ``bpy`` module, so this writes the
zip itself: every file under the repository root that the manifest's ``[build]
paths_exclude_pattern`` (gitignore-style) does not exclude, with ``blender_manifest.toml`` at the
zip root. The shipped model (``weights/``) is included; ``.safetensors`` files are stored without
compression (they do not compress). Needs only the standard library (Python 3.11+ for tomllib).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("blender_manifest.toml", "__init__.py", "core/api.py", "operators/reconstruct.py", "panels/main.py")
STORED_SUFFIXES = (".safetensors", ".png", ".jpg", ".jpeg", ".zip")


def read_manifest(root: Path = ROOT) -> dict:
    with open(root / "blender_manifest.toml", "rb") as f:
        return tomllib.load(f)


def _glob_to_regex(glob: str) -> str:
    """gitignore glob -> regex over '/'-separated paths: '*' and '?' stay inside one path part."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1:end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class ExcludePatterns:
    """gitignore-style matching as Blender's extension builder does it: a path is excluded when a
    pattern matches it and no '!' pattern does (declaration order does not matter)."""

    def __init__(self, patterns: list[str]):
        self.rules: list[tuple[bool, bool, re.Pattern]] = []
        for raw in patterns:
            negate = raw.startswith("!")
            pattern = raw[1:] if negate else raw
            if pattern.startswith("\\!"):
                pattern = pattern[1:]
            dir_only = pattern.endswith("/")
            if dir_only:
                pattern = pattern[:-1]
            anchored = "/" in pattern  # a slash before the end anchors the pattern to the root
            pattern = pattern.lstrip("/")
            regex = _glob_to_regex(pattern)
            full = ("^" if anchored else "^(?:.*/)?") + regex + "$"
            self.rules.append((negate, dir_only, re.compile(full)))

    def excluded(self, rel_path: str, is_dir: bool) -> bool:
        """``rel_path`` uses '/' and no leading '/'."""
        hit = False
        for negate, dir_only, regex in self.rules:
            if dir_only and not is_dir:
                continue
            if regex.match(rel_path):
                if negate:
                    return False
                hit = True
        return hit


def package_files(root: Path = ROOT, include_weights: bool = True) -> list[str]:
    """Relative paths ('/'-separated, sorted) of the files that go into the zip."""
    manifest = read_manifest(root)
    patterns = list(manifest.get("build", {}).get("paths_exclude_pattern", []))
    if not include_weights:
        patterns.append("/weights/")
    rules = ExcludePatterns(patterns)
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not rules.excluded(rel_dir + d, is_dir=True)
                             and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            rel = rel_dir + name
            if not rules.excluded(rel, is_dir=False) and os.path.isfile(os.path.join(dirpath, name)):
                files.append(rel)
    return sorted(files)


def build_zip(out_dir: Path | None = None, root: Path = ROOT, include_weights: bool = True) -> Path:
    """Write ``<out_dir>/<id>-<version>.zip``; returns its path."""
    manifest = read_manifest(root)
    files = package_files(root, include_weights)
    missing = [f for f in REQUIRED if f not in files]
    if missing:
        raise SystemExit(f"cannot package: missing {', '.join(missing)} under {root}")
    out_dir = Path(out_dir or root / "dist")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for rel in files:
            stored = rel.lower().endswith(STORED_SUFFIXES)
            zf.write(root / rel, rel, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    parser.add_argument("--no-weights", action="store_true", help="leave weights/ out (a test build)")
    parser.add_argument("--list", action="store_true", help="only print the files that would be packaged")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(package_files(ROOT, not args.no_weights)))
        return 0
    files = package_files(ROOT, not args.no_weights)
    if not args.no_weights and not any(f.startswith("weights/") and f.endswith(".safetensors") for f in files):
        print("warning: no weights/*.safetensors: the package will have no model", file=sys.stderr)
    target = build_zip(Path(args.out_dir), ROOT, not args.no_weights)
    print(f"{target} ({target.stat().st_size / 1e6:.1f} MB, {len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
