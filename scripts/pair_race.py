"""Race on one result stem: two writers rewrite ``<stem>.ply`` + ``<stem>.json``, one reader checks every pair.

    python scripts/pair_race.py [--reads 10000] [--out DIR]

Two writer processes call :func:`core.io.export.write_result` on the same stem as fast as they can, each
with meshes of its own vertex counts; meanwhile this process reads the pair ``--reads`` times with
:func:`core.io.export.read_result` and counts the reads whose mesh is not the one its JSON describes
(the PLY's vertex count against the JSON's ``mesh.vertices``, and the writer named in the JSON against
the mesh's own). It also counts, for comparison, how often a naive reader (the JSON, then the mesh,
no check) gets a mismatched pair, and checks the pair left when both writers are done. Exit status 1
when a checked read or the final pair is mismatched.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEM = "race"


def _mesh(writer: int, n: int):
    """A fan of ``n`` triangles whose vertex count (n + 2) and colors say which writer made it."""
    import numpy as np

    from core.mesh import Mesh

    angle = np.linspace(0.0, np.pi, n + 1)
    vertices = np.concatenate([[[0.0, 0.0, 0.0]], np.stack([np.cos(angle), np.sin(angle), 0 * angle], 1)])
    faces = np.stack([np.zeros(n, int), np.arange(1, n + 1), np.arange(2, n + 2)], 1)
    colors = np.full((len(vertices), 3), 0.25 + 0.5 * writer)
    return Mesh(vertices.astype(np.float32), faces.astype(np.int32), colors.astype(np.float32))


class _Result:
    """The least a result needs for write_result: an image, a mesh, to_json()."""

    def __init__(self, writer: int, n: int):
        self.image, self.writer, self.mesh = f"writer{writer}.png", writer, _mesh(writer, n)
        self.mesh_path = self.json_path = None

    def to_json(self) -> dict:
        return {"image": self.image, "writer": self.writer, "ok": True,
                "mesh": {"path": Path(self.mesh_path).name, "vertices": len(self.mesh.vertices),
                         "faces": len(self.mesh.faces)}}


def write_loop(out: Path, writer: int, stop: Path) -> int:
    """Rewrite the pair until ``stop`` exists; returns the number of writes."""
    from core.io.export import write_result

    n = 0
    while not stop.exists():
        write_result(_Result(writer, 8 + 2 * (n % 50) + writer), out, "ply", STEM)  # odd counts: writer 1
        n += 1
    return n


def _ply_vertices(data: bytes) -> int:
    return int(re.search(rb"element vertex (\d+)", data[:400]).group(1))


def _mismatch(data: dict, mesh: bytes) -> bool:
    vertices = _ply_vertices(mesh)
    return vertices != data["mesh"]["vertices"] or (vertices - 2 - 8) % 2 != data["writer"]


def race(out: Path, reads: int) -> dict:
    """Start two writers on ``out/race.*``, make ``reads`` checked reads (and as many naive ones); counts."""
    from core.io.export import read_result

    out.mkdir(parents=True, exist_ok=True)
    stop = out.parent / f".{out.name}.stop"
    stop.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    writers = [subprocess.Popen([sys.executable, __file__, "--write", str(w), "--out", str(out)], env=env,
                                stdout=subprocess.PIPE, text=True) for w in (0, 1)]
    json_path = out / f"{STEM}.json"
    counts = {"reads": 0, "mismatched": 0, "naive_reads": 0, "naive_mismatched": 0}
    try:
        deadline = time.monotonic() + 60
        while not json_path.exists():  # the first pair
            if time.monotonic() > deadline or any(w.poll() is not None for w in writers):
                raise RuntimeError("the writers did not start")
            time.sleep(0.01)
        import json

        t0 = time.monotonic()
        for _ in range(reads):
            data, mesh = read_result(json_path)
            counts["reads"] += 1
            counts["mismatched"] += _mismatch(data, mesh)
            naive = json.loads(json_path.read_bytes())
            naive_mesh = (out / naive["mesh"]["path"]).read_bytes()
            counts["naive_reads"] += 1
            counts["naive_mismatched"] += _mismatch(naive, naive_mesh)
        counts["seconds"] = round(time.monotonic() - t0, 1)
    finally:
        stop.touch()
        counts["writes"] = sum(int((w.communicate(timeout=60)[0] or "0").strip() or 0) for w in writers)
        stop.unlink(missing_ok=True)
    data = json.loads(json_path.read_bytes())
    counts["final_mismatched"] = int(_mismatch(data, (out / data["mesh"]["path"]).read_bytes()))
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=10000)
    ap.add_argument("--out", default=None, help="folder of the pair (default: a temporary folder)")
    ap.add_argument("--write", type=int, default=None, help=argparse.SUPPRESS)  # a writer process
    args = ap.parse_args(argv)
    if args.write is not None:
        out = Path(args.out)
        print(write_loop(out, args.write, out.parent / f".{out.name}.stop"))
        return 0
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        counts = race(Path(args.out or Path(tmp) / "out"), args.reads)
    print(f"{counts['reads']} checked reads ({counts['writes']} writes by two writers, {counts['seconds']} s): "
          f"{counts['mismatched']} mismatched pairs; naive reads (no check): {counts['naive_mismatched']} of "
          f"{counts['naive_reads']} mismatched; pair at rest mismatched: {counts['final_mismatched']}")
    return 1 if counts["mismatched"] or counts["final_mismatched"] else 0


if __name__ == "__main__":
    sys.exit(main())
