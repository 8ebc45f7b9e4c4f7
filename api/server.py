"""The HTTP server process: uvicorn, told at once when it is asked to stop."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

from api.services import Services


class StoppingServer(uvicorn.Server):
    """uvicorn's server that, on SIGTERM or SIGINT, also tells the app at once: event
    streams end (so their connections close) and the executor stops claiming and hands its
    running jobs back at their next step, while uvicorn drains the other connections."""

    def __init__(self, config: uvicorn.Config, services: Services):
        super().__init__(config)
        self.services = services

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.services.stopping.is_set():
            self.services.stopping.set()
            threading.Thread(
                target=self.services.executor.stop, name="imagine-stop", daemon=True
            ).start()
        super().handle_exit(sig, frame)
