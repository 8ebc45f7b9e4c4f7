"""The ``imagine`` console script: the library's commands plus the service's own."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

from api.cli import gate, serve, users, worker
from api.errors import ApiError
from api.settings import ServiceSettings
from imagine.cli import LIBRARY_COMMANDS
from imagine.cli import main as run_commands
from imagine.errors import CODED_ERRORS

SERVICE_COMMANDS: tuple[ModuleType, ...] = (serve, worker, users, gate)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `cat` cut short by `head`


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    try:
        code = run_commands(
            argv,
            LIBRARY_COMMANDS + SERVICE_COMMANDS,
            environ,
            settings_class=ServiceSettings,
            user_errors=(*CODED_ERRORS, ApiError),
        )
        sys.stdout.flush()  # a reader that left shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        return reader_left()


def reader_left() -> int:
    """Our stdout's reader went away (``imagine gate IP | head -1``): stop quietly, as
    ``cat`` does. Python ignores SIGPIPE, so the write raised instead; what is still
    buffered would raise again when Python exits, so stdout now goes to /dev/null
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
