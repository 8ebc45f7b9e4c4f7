"""Run the real service as a separate process (``imagine serve``) for tests that kill it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def smoke_home(home: Path, model_cache: Path) -> Path:
    """A new IMAGINE_HOME sharing the session's smoke weights (built once per session)."""
    home.mkdir()
    (home / "models").symlink_to(model_cache)
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def imagine_command() -> list[str]:
    exe = Path(sys.executable).with_name("imagine")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "api"]


class Server:
    def __init__(self, home: Path, port: int, **env: str):
        self.home, self.port = home, port
        # The checkout under test comes first on the path, ahead of whatever an installed
        # (editable) `imagine` script would import.
        path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        self.env = {
            **os.environ,
            "PYTHONPATH": path,
            "IMAGINE_HOME": str(home),
            "IMAGINE_LOCAL_REGION": "US-CA",
            **env,
        }
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = home / f"server-{port}.log"

    def cli(self, *args: str) -> dict:
        out = subprocess.run(
            [*imagine_command(), *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def start(self, timeout: float = 180.0) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*imagine_command(), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("server did not become ready:\n" + self.log.read_text())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
