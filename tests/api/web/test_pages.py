"""The gallery's pages and files: served locally, under a strict Content-Security-Policy,
with nothing inline, nothing from another host, and a human message for every error code."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.region import REASON_CODES
from api.web import STATIC
from identity.errors import IdentityError
from llm_prompting import PromptingError

PAGES = ["/", "/signin", "/onboarding", "/create", "/gallery", "/images/img_abc123"]
FILES = sorted(p for p in STATIC.rglob("*") if p.is_file())
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


@pytest.fixture
def client(make_services):
    return TestClient(create_app(make_services(executor="null")), client=("127.0.0.1", 50000))


def policy(header: str) -> dict[str, list[str]]:
    directives = (d.split() for d in header.split(";") if d.strip())
    return {name: values for name, *values in directives}


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_the_shell_under_a_strict_policy(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in r.text
    csp = policy(r.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert csp["img-src"] == ["'self'", "data:", "blob:"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_api_answers_carry_the_headers_too_and_images_keep_their_own(client):
    r = client.get("/v1/consent")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    # the interactive API docs too, with their one inline block allowed by hash (test_docs.py)
    assert "frame-ancestors 'none'" in client.get("/docs").headers["content-security-policy"]


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        self.problems += [f"<{tag} {n}=...>" for n in names if n.startswith("on") or n == "style"]
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.problems.append("<script> without src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script")


def test_the_shell_has_no_inline_script_style_or_handlers():
    parser = _Markup()
    parser.feed((STATIC / "index.html").read_text())
    assert parser.problems == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(STATIC)))
def test_static_files_are_served_with_their_type(client, path):
    r = client.get(f"/static/{path.relative_to(STATIC).as_posix()}")
    assert r.status_code == 200 and r.content == path.read_bytes()
    assert r.headers["content-type"].split(";")[0] == TYPES[path.suffix]
    assert r.headers["x-content-type-options"] == "nosniff"


# Anything that could make the browser ask another host: absolute or protocol-relative URLs.
URL = re.compile(
    r"""(?:https?:|wss?:)?//[a-z0-9.-]+\.[a-z]{2,}|url\(\s*['"]?(?!data:)[a-z]+:""", re.I
)
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML name, never fetched


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(STATIC)))
def test_static_files_name_no_other_host(path):
    text = path.read_text().replace(SVG_NAMESPACE, "")
    assert URL.findall(text) == []


SCRIPTS = [p for p in FILES if p.suffix == ".js"]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(STATIC)))
def test_scripts_build_no_markup_from_strings_and_import_only_local_modules(path):
    text = path.read_text()
    for unsafe in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in text, f"{path.name} uses {unsafe}"
    assert "new Function" not in text and 'setTimeout("' not in text
    for target in re.findall(r"""\bfrom\s+["']([^"']+)["']""", text):
        assert target.startswith("./") or target.startswith("../"), target
        assert (path.parent / target).resolve().is_file(), f"{path.name} imports {target}"


def _keys(name: str) -> set[str]:
    text = (STATIC / "messages.js").read_text()
    block = re.search(rf"export const {name} = \{{(.*?)\n\}};", text, re.S)
    assert block, name
    return set(re.findall(r"^\s+(\w+):", block.group(1), re.M))


def _codes(base: type) -> set[str]:
    found, todo = set(), [base]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        found.add(cls.code)
    return found - {base.code}


ENROLLMENT_CODES = {
    "consent_required",
    "consent_outdated",
    "invalid_region",
    "region_unavailable",
    "photos_required",
    "too_many_photos",
    "request_too_large",
    "rate_limited",
    "unauthorized",
    "csrf_failed",
}
GENERATION_CODES = {
    "invalid_n",
    "invalid_seed",
    "invalid_steps",
    "invalid_size",
    "too_many_jobs",
    "identity_incompatible",
    "not_cancellable",
    "cancelled",
    "worker_lost",
    "not_found",
    "unsafe_output",
    "watermark_failed",
}


def test_every_error_code_has_a_human_message():
    messages = _keys("MESSAGES")
    wanted = _codes(IdentityError) | _codes(PromptingError) | ENROLLMENT_CODES | GENERATION_CODES
    assert wanted - messages == set()
    assert set(REASON_CODES) - _keys("REGION_REASONS") == set()


def test_an_unknown_page_is_the_gallery_saying_not_found_and_the_api_keeps_json(client):
    html = {"Accept": "text/html,application/xhtml+xml"}
    r = client.get("/no/such/page", headers=html)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in r.text
    assert policy(r.headers["content-security-policy"])["script-src"] == ["'self'"]
    for path in ("/v1/nothing", "/static/nothing.js"):
        r = client.get(path, headers=html)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/no/such/page").json()["error"]["code"] == "not_found"
    r = client.post("/no/such/page", headers=html)  # not a page: only GET draws one
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
