"""Import the paper's reference code (google-research/nerf-from-image) from a local checkout.

Only the parity fixture uses it: the reference models are built at reduced width (text patches of
their constructors' constants), given fixed random weights and run on the CPU, and what they output
becomes the expected values that ``tests/test_paper_parity.py`` checks our own implementation
against. The product never imports the reference code.

A checkout is any folder holding the repository's ``models/`` and ``lib/`` (for instance
``git clone https://github.com/google-research/nerf-from-image``).
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from pathlib import Path

MODULES = ("lib/ops.py", "lib/utils.py", "lib/nerf_utils.py", "lib/pose_utils.py", "lib/pose_estimation.py",
           "models/stylegan.py", "models/generator.py", "models/segformer.py", "models/encoder.py")
"""the reference files the fixture needs (run.py is a script and is never imported)."""


def load_reference(checkout: str | Path, patches: dict[str, list[tuple[str, str]]] | None = None) -> dict:
    """The reference modules by dotted name ('models.generator', ...), imported from a patched copy.

    ``patches`` maps a file ('models/generator.py') to (old, new) text replacements; every ``old`` must
    occur in the file (so a changed reference fails loudly instead of silently not shrinking). The copy
    is a real folder on ``sys.path``: the reference's ``torch.jit.script`` functions need their source.
    Modules of an earlier call are dropped first, so differently patched copies can be loaded in turn.
    """
    checkout = Path(checkout)
    missing = [m for m in MODULES if not (checkout / m).is_file()]
    if missing:
        raise SystemExit(f"{checkout}: not a nerf-from-image checkout (missing {missing[0]})")
    root = Path(tempfile.mkdtemp(prefix="nerf_from_image_"))
    for rel in MODULES:
        text = (checkout / rel).read_text()
        for old, new in (patches or {}).get(rel, []):
            if old not in text:
                raise SystemExit(f"{checkout / rel}: expected text not found, the reference changed: {old!r}")
            text = text.replace(old, new)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for package in ("lib", "models"):
        (root / package / "__init__.py").touch()
    for name in [n for n in sys.modules if n in ("lib", "models") or n.startswith(("lib.", "models."))]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        return {m[:-3].replace("/", "."): importlib.import_module(m[:-3].replace("/", ".")) for m in MODULES}
    finally:
        sys.path.remove(str(root))
        shutil.rmtree(root, ignore_errors=True)
