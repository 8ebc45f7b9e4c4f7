"""The ``imagine`` console script as a process: what a shell pipeline sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import EXIT_BROKEN_PIPE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["gate", "8.8.8.8"],
        ["gate", "8.8.8.8", "--json"],
        ["provenance", "verify", str(ROOT / "examples" / "astronaut.jpg")],
    ],
)
def test_a_reader_that_leaves_early_gets_a_quiet_exit(tmp_path, argv):
    """``imagine gate 8.8.8.8 | head -1``: head has gone by the time we write."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader leaves before the first write: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "api", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "IMAGINE_HOME": str(tmp_path / "home")},
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert done.returncode == EXIT_BROKEN_PIPE
