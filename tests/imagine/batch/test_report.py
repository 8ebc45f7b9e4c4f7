"""report.html: a contact sheet that works offline and shows user strings as text."""

from __future__ import annotations

import base64
import io
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image

from imagine.batch.runner import BatchRun
from imagine.batch.state import BatchState
from tests.imagine.batch.fakes import PaintingExecutor, write_manifest

HOSTILE = '<script>alert("x")</script><img src=https://example.com/t.png onerror=alert(1)>'


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def sheet(tmp_path) -> tuple[Tags, str]:
    manifest = write_manifest(
        tmp_path,
        [
            {"id": "me", "photos": ["me.jpg"], "prompts": [HOSTILE, "plain"], "n": 1},
            {"id": "no", "photos": ["me.jpg"], "prompt": f"forbidden {HOSTILE}"},
            '{"prompt": "' + "</td><script>bad()</script>" + '"',
        ],
    )
    BatchRun(manifest, tmp_path / "out", PaintingExecutor(), context={"profile": "smoke"}).run()
    html = (tmp_path / "out" / "report.html").read_text()
    tags = Tags()
    tags.feed(html)
    return tags, html


def test_user_strings_are_text_not_markup(tmp_path):
    tags, _ = sheet(tmp_path)
    assert not [t for t, _ in tags.tags if t == "script"]
    assert not [a for _, a in tags.tags if any(k.startswith("on") for k in a)]
    text = "".join(tags.text)
    assert HOSTILE in text  # shown to the reader as typed
    assert "forbidden" in text and "prompt_rejected" in text and "invalid_json" in text
    assert "noise" in text  # the smoke profile is named for what it is


def test_it_makes_no_request_and_embeds_every_thumbnail(tmp_path):
    tags, _ = sheet(tmp_path)
    urls = [v or "" for _, a in tags.tags for k, v in a.items() if k in ("src", "href", "action")]
    assert urls and all(u.startswith("data:") for u in urls)
    assert not [t for t, _ in tags.tags if t in ("link", "iframe", "object", "embed")]
    csp = [a for t, a in tags.tags if t == "meta" and a.get("http-equiv")]
    assert "default-src 'none'" in (csp[0]["content"] or "")
    images = [a["src"] or "" for t, a in tags.tags if t == "img"]
    assert len(images) == 2
    for src in images:
        assert src.startswith("data:image/jpeg;base64,")
        thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert max(thumb.size) <= 160


def test_report_counts_match_the_state(tmp_path):
    sheet(tmp_path)
    state = BatchState.load(tmp_path / "out" / "batch-state.json")
    assert {i: r.status for i, r in state.items.items()} == {"me": "done", "no": "failed"}


@pytest.mark.browser
def test_a_browser_shows_the_sheet_without_a_single_request(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    sheet(tmp_path)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page()
        requests: list[str] = []
        dialogs: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((tmp_path / "out" / "report.html").as_uri())
        loaded = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        browser.close()
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert len(loaded) == 2 and all(w > 0 for w in loaded)  # every thumbnail decoded
    assert dialogs == []  # the hostile prompt's alert() never ran
