"""The browser tests' fixtures: the real service process on the smoke profile, and Debian's
Chromium through Playwright (never ``playwright install``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.api.server import Server, free_port, smoke_home

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Every wait is on something the page shows, with a ceiling for a busy 2-core machine:
# Playwright's own 5 s for expect() failed there while a photo was checked.
WAIT_MS = 120_000


def page_server(home: Path, *args: str) -> Server:
    """The service the pages are tested on, ``imagine serve *args``. Limits other than the
    defaults: the pages read them from GET /v1/limits."""
    return Server(
        home,
        free_port(),
        *args,
        IMAGINE_RATE_LIMIT_PER_MINUTE="100000",
        IMAGINE_MAX_ENROLL_PHOTOS="3",
        IMAGINE_MAX_IMAGES="4",
    )


@pytest.fixture
def server(tmp_path, model_cache):
    s = page_server(smoke_home(tmp_path / "home", model_cache))
    yield s
    s.stop()


@pytest.fixture
def idle_server(tmp_path, model_cache):
    """``server`` for pages that make no images: jobs end at once without any (``--executor
    null``), and it is ready without loading the pipeline."""
    s = page_server(smoke_home(tmp_path / "home", model_cache), "--executor", "null")
    yield s
    s.stop()


@contextmanager
def playwright() -> Iterator[Any]:
    """Playwright with Debian's Chromium checked and the page waits' ceiling set (then reset)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium")
    sync_api.expect.set_options(timeout=WAIT_MS)
    try:
        with sync_api.sync_playwright() as p:
            yield p
    finally:
        sync_api.expect.set_options(timeout=5_000)


def launch(p: Any, *args: str) -> Any:
    """Chromium with the tests' flags and ``args``."""
    return p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *args])


@pytest.fixture
def browser():
    with playwright() as p:
        b = launch(p)
        yield b
        b.close()
