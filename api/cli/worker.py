"""``imagine worker``: run queued generations in a process of its own, without HTTP.

Beside API processes started with ``imagine serve --executor none``, on the
PostgreSQL database (its job rows are the queue) and the image storage they
share. It loads the pipeline once, then claims and runs jobs, as the in-process
executor of ``imagine serve`` does, until SIGTERM or SIGINT; it then stops as
``serve`` does (no more claims; its running jobs go back to the queue at their
next step) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from api.settings import ServiceSettings

NAME = "worker"
HELP = "Run queued generations in this process, for API processes started with --executor none."

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = logging.getLogger("api.worker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, settings: ServiceSettings) -> int:
    from sqlalchemy.engine import make_url

    from api.services import build_services
    from api.worker import InProcessExecutor

    settings.require_shared_database("imagine worker")
    # Its own lines (ready, each job it runs, stopping) and others' warnings, on stderr.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("api").setLevel(logging.INFO)
    services = build_services(settings, executor="inprocess")
    executor = services.executor
    assert isinstance(executor, InProcessExecutor)
    database = make_url(settings.database).render_as_string(hide_password=True)
    print(
        f"Imagine Me worker {executor.owner}: jobs from {database}, "
        f"images in {settings.images_dir.resolve()}",
        file=sys.stderr,
    )
    if settings.profile == "smoke":
        print(
            "note: smoke profile: images are noise from tiny random-weight models", file=sys.stderr
        )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    executor.start()
    try:
        announced = False
        while not stop.wait(0.2):
            if not executor.is_alive():  # it could not load the pipeline (logged)
                if executor.failure is not None:
                    raise executor.failure  # a coded error exits 2 with its code
                return 1
            if not announced and executor.status()[0]:
                log.info("worker %s ready: claiming jobs", executor.owner)
                announced = True
        log.info("worker %s stopping: its running jobs go back to the queue", executor.owner)
    finally:
        executor.stop()
        services.db.engine.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
