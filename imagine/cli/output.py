"""What every CLI command shares on the way out: exit codes, JSON on stdout, user errors.

The contract (DESIGN.md): exit 0 on success, 2 on a user error with
``error: <code>: <message>`` on stderr, and ``{"error": {"code", "message"}}``
on stdout with ``--json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from imagine.errors import ImagineError

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ImagineError):
    code = "usage"


def fail(code: str, message: str, as_json: bool) -> int:
    """Report a user error per the CLI contract and return its exit code."""
    print(f"error: {code}: {message}", file=sys.stderr)
    if as_json:
        emit_json({"error": {"code": code, "message": message}})
    return EXIT_USER_ERROR


def emit_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()
