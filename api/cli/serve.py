"""``imagine serve [--host H] [--port P]``: run the service with uvicorn."""

from __future__ import annotations

import argparse
import sys

from api.settings import ServiceSettings

NAME = "serve"
HELP = "Run the Imagine Me service (REST API and web gallery)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: IMAGINE_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: IMAGINE_PORT, 8000)")


def run(args: argparse.Namespace, settings: ServiceSettings) -> int:
    import uvicorn

    from api.main import create_app
    from api.services import build_services

    settings = settings.replace(
        **{k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    )
    services = build_services(settings)
    app = create_app(services)
    where = f"http://{settings.host}:{settings.port}"
    print(
        f"Imagine Me {where}/  (API docs {where}/docs, data in {settings.home.resolve()})",
        file=sys.stderr,
    )
    if settings.profile == "smoke":
        print(
            "note: smoke profile: images are noise from tiny random-weight models", file=sys.stderr
        )
    if settings.local_region is None:
        print(
            "note: IMAGINE_LOCAL_REGION is unset: clients on loopback/private addresses are "
            "denied enrollment and generation",
            file=sys.stderr,
        )
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10
    )
    return 0
