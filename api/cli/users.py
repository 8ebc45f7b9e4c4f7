"""``imagine users create NAME [--operator] [--json]`` (prints an API key once),
``users delete NAME``."""

from __future__ import annotations

import argparse

from sqlalchemy import select

from api.settings import ServiceSettings
from imagine.cli.output import emit_json

NAME = "users"
HELP = "Create or delete service users (API keys)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a user and print their API key once")
    create.add_argument("name")
    create.add_argument(
        "--operator",
        action="store_true",
        help="an operator account (studios, batch campaigns): may enroll other people's "
        "faces on the consent it declares for each; personal accounts enroll their "
        "holder's face only",
    )
    create.add_argument("--json", action="store_true", help="print JSON on stdout")
    delete = sub.add_parser("delete", help="delete a user and erase all their data")
    delete.add_argument("name")
    delete.add_argument("--json", action="store_true", help="print JSON on stdout")


def run(args: argparse.Namespace, settings: ServiceSettings) -> int:
    from api.auth import create_user
    from api.db import Database, migrate
    from api.erasure import erase_user, finish_erasure
    from api.errors import NotFound
    from api.storage import open_storage
    from api.tables import User

    settings.home.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database, settings.sqlite_synchronous)
    migrate(db.engine)
    if args.action == "create":
        with db.session() as session:
            user, key = create_user(session, args.name, "operator" if args.operator else "personal")
        result: dict[str, object] = {"name": user.name, "api_key": key, "kind": user.kind}
        text = f"created {user.kind} user {user.name}\nAPI key (shown once, keep it secret): {key}"
    else:
        with db.session() as session:
            found = session.scalar(select(User).where(User.name == args.name))
            if found is None:
                raise NotFound(f"no user named {args.name!r}")
            keys = erase_user(session, found)
        storage = open_storage(settings.storage_location, s3_endpoint_url=settings.s3_endpoint_url)
        finish_erasure(db, storage, keys)
        result = {"name": args.name, "deleted": True, "images_erased": len(keys)}
        text = f"deleted user {args.name} and {len(keys)} image(s)"
    db.engine.dispose()
    if args.json:
        emit_json(result)
    else:
        print(text)
    return 0
