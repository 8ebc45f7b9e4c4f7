"""The ``imagine`` console script: the library's commands plus the service's own."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType

from imagine.cli import LIBRARY_COMMANDS
from imagine.cli import main as run_commands

SERVICE_COMMANDS: tuple[ModuleType, ...] = ()


def main(argv: Sequence[str] | None = None) -> int:
    return run_commands(argv, LIBRARY_COMMANDS + SERVICE_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
