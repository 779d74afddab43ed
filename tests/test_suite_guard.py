"""``make test`` cannot pass without the Blender tier: a run that asks for tests/blender fails when none
of its tests passed (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "SFI_SKIP_BLENDER"} | env
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=300)


def test_a_run_of_the_blender_tier_without_blender_tests_fails():
    # tests/blender is asked for, but none of its tests is collected: what a missing bpy module does
    args = ("tests/blender", "tests/test_imports.py", "--ignore-glob=tests/blender/test_*")
    out = _pytest(*args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "3 passed" in out.stdout and "the Blender tier (tests/blender) did not run" in out.stdout
    assert _pytest(*args, SFI_SKIP_BLENDER="1").returncode == 0  # on purpose: allowed


def test_a_run_of_other_tests_does_not_need_the_blender_tier():
    out = _pytest("tests/test_imports.py")
    assert out.returncode == 0 and "did not run" not in out.stdout, out.stdout + out.stderr
