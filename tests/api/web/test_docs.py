"""``/docs`` works offline (issue 20, point 8): Swagger UI's files come from the installed
``fastapi-offline`` and are served here, and the page runs under the gallery's
Content-Security-Policy plus the hash of its one inline script. ``/redoc`` leads to it."""

from __future__ import annotations

import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.main import create_app
from api.web.docs import inline_hashes
from tests.api.server import free_port
from tests.api.web.test_browser import Watch
from tests.api.web.test_pages import policy

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@pytest.fixture
def app(make_services):
    return create_app(make_services(executor="null"), start_worker=False)


@pytest.fixture
def client(app):
    return TestClient(app, client=("127.0.0.1", 50000))


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


def urls(html: str) -> list[str]:
    parser = _Urls()
    parser.feed(html)
    return parser.urls


def test_docs_page_loads_only_local_files_under_the_gallery_policy(client):
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    found = urls(r.text)
    assert sorted(found) == [
        "/static/docs/swagger-ui-bundle.js",
        "/static/docs/swagger-ui.css",
        "/static/icon.svg",
    ]
    assert "http" not in r.text  # no other host, not even in the inline script
    assert '"validatorUrl": null' in r.text  # no badge from validator.swagger.io
    for url in found:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(TYPES[Path(url).suffix]), url
    # the gallery's policy, with exactly the page's one inline <script> added
    csp = policy(r.headers["content-security-policy"])
    gallery = policy(client.get("/").headers["content-security-policy"])
    [script] = inline_hashes(r.text, "script")
    assert csp == {**gallery, "script-src": ["'self'", script]}
    assert inline_hashes(r.text, "style") == []


def test_swagger_ui_comes_from_the_package_and_redoc_leads_to_docs(client):
    bundle = client.get("/static/docs/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text[:2000]
    assert "frame-ancestors 'none'" in bundle.headers["content-security-policy"]
    assert client.get("/static/docs/../web/__init__.py").status_code == 404
    assert client.get("/static/app.js").status_code == 200  # the gallery's own still answer
    r = client.get("/redoc", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/docs"
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc"} & set(paths)


@pytest.fixture
def live(app):
    """The app on a real port, in this process (nothing here runs jobs)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the pages need no other
def test_docs_render_in_a_browser_without_the_internet(live, browser):
    """Every request to another host is aborted; Swagger UI still draws every operation."""
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    watch = Watch(live)
    for width, height in ((1280, 900), (390, 844)):
        context = browser.new_context(base_url=live, viewport={"width": width, "height": height})
        page = watch.page(context)
        page.on("console", lambda m: m.type == "error" and watch.problems.append(m.text))

        page.goto("/redoc")
        expect(page).to_have_url(f"{live}/docs")
        post = page.locator(".opblock-post", has=page.get_by_text("/v1/generations", exact=True))
        expect(post.first).to_be_visible()
        expect(page.locator(".information-container .title")).to_contain_text("Imagine Me")
        page.screenshot(path=str(SCREENSHOTS / f"docs-{width}.png"))
        context.close()

    assert watch.foreign == [], "the docs asked other hosts"
    assert watch.problems == []
    assert any(u.endswith("/static/docs/swagger-ui-bundle.js") for u in watch.requests)
