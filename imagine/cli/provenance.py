"""``imagine provenance verify IMAGE [--json]``: which provenance marks an image carries.

Exit 0 whether or not marks are found (the report is the result); 2 when the
file is missing or not a JPEG, PNG or WebP image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagine.cli.output import emit_json
from imagine.errors import FileNotFound
from imagine.provenance import verify
from imagine.settings import Settings

NAME = "provenance"
HELP = "Verify the provenance marks (watermark, IPTC metadata, C2PA) of an image."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("verify", help=HELP, description=HELP)
    check.add_argument("image", metavar="IMAGE", type=Path, help="JPEG, PNG or WebP")
    check.add_argument("--json", action="store_true", help="print JSON on stdout")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.image.is_file():
        raise FileNotFound(f"{args.image}: no such file")
    findings = verify(args.image.read_bytes(), settings.provenance())
    if args.json:
        emit_json({"file": str(args.image), **findings.to_dict()})
    else:
        first, *rest = findings.describe()
        print(f"{args.image}: {first}")
        for line in rest:
            print(f"  {line}")
    return 0
