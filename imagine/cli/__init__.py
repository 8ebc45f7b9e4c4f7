"""The library's CLI commands (enroll, expand, generate, batch, provenance) and their shared runner.

Each command is a module with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, settings) -> int``. ``api.cli`` mounts these next to the service's
own commands under the single ``imagine`` console script.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from imagine import __version__
from imagine.cli import batch, enroll, expand, generate, provenance
from imagine.cli.output import EXIT_INTERRUPTED, UsageError, fail
from imagine.errors import CODED_ERRORS
from imagine.settings import Settings

LIBRARY_COMMANDS: tuple[ModuleType, ...] = (enroll, expand, generate, batch, provenance)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors follow the ``error: <code>: <message>`` contract."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser(commands: Sequence[ModuleType]) -> argparse.ArgumentParser:
    parser = _Parser(prog="imagine", description="Imagine Me: likeness images of you.")
    parser.add_argument("--version", action="version", version=f"imagine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in commands:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(
    argv: Sequence[str] | None = None,
    commands: Sequence[ModuleType] = LIBRARY_COMMANDS,
    environ: Mapping[str, str] | None = None,
    settings_class: type[Settings] = Settings,
    user_errors: tuple[type[Exception], ...] = CODED_ERRORS,
) -> int:
    """Run one command; ``api.cli`` passes the service's settings class and error bases."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    try:
        args = build_parser(commands).parse_args(argv)
        settings = settings_class.from_env(os.environ if environ is None else environ)
        return int(args._command.run(args, settings))
    except user_errors as exc:
        return fail(exc.code, str(exc), wants_json)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
