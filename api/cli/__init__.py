"""The ``imagine`` console script: the library's commands plus the service's own."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

from api.cli import gate, serve, users
from api.errors import ApiError
from api.settings import ServiceSettings
from imagine.cli import LIBRARY_COMMANDS, USER_ERRORS
from imagine.cli import main as run_commands

SERVICE_COMMANDS: tuple[ModuleType, ...] = (serve, users, gate)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_commands(
        argv,
        LIBRARY_COMMANDS + SERVICE_COMMANDS,
        environ,
        settings_class=ServiceSettings,
        user_errors=(*USER_ERRORS, ApiError),
    )


if __name__ == "__main__":
    sys.exit(main())
