"""Run the real service as separate processes (``imagine serve``, ``imagine worker``) for
tests that kill them."""

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
    """``imagine serve --port PORT *args`` with ``IMAGINE_HOME=home`` and ``env``."""

    def __init__(self, home: Path, port: int, *args: str, **env: str):
        self.home, self.port, self.args = home, port, args
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
                [*imagine_command(), "serve", "--port", str(self.port), *self.args],
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


class Worker:
    """``imagine worker`` with the environment of ``server`` (its database and storage)."""

    def __init__(self, server: Server, name: str):
        self.env = server.env
        self.log = server.home / f"worker-{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Worker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*imagine_command(), "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until the worker logs that it has loaded the pipeline and claims jobs."""
        deadline = time.monotonic() + timeout
        while " ready: claiming jobs" not in self.log.read_text():
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "worker not ready:\n" + self.log.read_text()
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM; its exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                return None
        return self.proc.returncode
