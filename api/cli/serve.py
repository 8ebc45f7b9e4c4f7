"""``imagine serve [--host H] [--port P] [--executor NAME]``: run the service with uvicorn."""

from __future__ import annotations

import argparse
import sys

from api.settings import ServiceSettings

NAME = "serve"
HELP = "Run the Imagine Me service (REST API and web gallery)."
# api.worker.EXECUTORS, named here so that parsing a command line imports no pipeline code
EXECUTOR_NAMES = ("inprocess", "none", "ray", "null")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: IMAGINE_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: IMAGINE_PORT, 8000)")
    parser.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        help="who runs the jobs: inprocess (a worker thread here), none (`imagine worker` "
        "processes, on PostgreSQL), ray (a Ray Serve deployment, on PostgreSQL), null (load "
        "tests: no images) (default: IMAGINE_EXECUTOR, inprocess)",
    )


def run(args: argparse.Namespace, settings: ServiceSettings) -> int:
    import uvicorn

    from api.main import create_app
    from api.server import StoppingServer
    from api.services import build_services

    flags = (("host", args.host), ("port", args.port), ("executor", args.executor))
    settings = settings.replace(**{k: v for k, v in flags if v is not None})
    if settings.executor in ("none", "ray"):  # jobs run in other processes: a shared queue
        settings.require_shared_database(f"imagine serve --executor {settings.executor}")
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
    if settings.executor == "none":
        print(
            "note: executor none: this process runs no jobs; `imagine worker` processes do",
            file=sys.stderr,
        )
    for warning in services.notes():
        print(f"warning: {warning}", file=sys.stderr)
    if settings.local_region is None:
        print(
            "note: IMAGINE_LOCAL_REGION is unset: clients on loopback/private addresses are "
            "denied enrollment and generation",
            file=sys.stderr,
        )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        # Open connections get this long once event streams have ended (api/server.py); the
        # executor's stop then waits at most STOP_TIMEOUT_S: out within 10 s of SIGTERM.
        timeout_graceful_shutdown=5,
        # The app alone decides what to believe of forwarding headers (IMAGINE_TRUSTED_PROXIES);
        # uvicorn's own proxy support would trust them from any loopback peer.
        proxy_headers=False,
    )
    StoppingServer(config, services).run()
    return 0
