"""The gallery in headless Chromium against the real service process on the smoke profile.

One walk through everything a person does: sign in, read the consent and upload a
group photo (refused) then a portrait, create two images and watch the progress reach
100%, find them in the gallery, inspect and download one, delete it, erase the face data
and see the gallery empty, sign out. Every page is screenshotted into
``test-artifacts/browser/``. The test fails if any page asks another host for anything,
breaks its Content-Security-Policy, throws, or shows a control without a label or an
image without alt text.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.web.conftest import WAIT_MS
from tests.photos import astronaut, group

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
PNG = b"\x89PNG\r\n\x1a\n"

# Controls without a label and images without alt text, as the page stands.
UNLABELLED = """() => [
  ...[...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => el.type !== 'hidden' && !el.closest('[hidden]'))
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
    .map(el => el.outerHTML.slice(0, 80)),
  ...[...document.querySelectorAll('img')].filter(img => !img.alt).map(img => img.src),
]"""


class Watch:
    """Everything the pages asked for and complained about."""

    def __init__(self, origin: str):
        self.origin = urlsplit(origin).netloc
        self.foreign: list[str] = []
        self.requests: list[str] = []
        self.problems: list[str] = []

    def route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != self.origin:
            self.foreign.append(url)
            route.abort()
        else:
            route.continue_()

    def console(self, message) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.problems.append(message.text)

    def page(self, context):
        """A new page of ``context`` (Playwright's) whose requests and complaints are watched,
        every wait with the tests' ceiling."""
        context.set_default_timeout(WAIT_MS)
        context.route("**/*", self.route)
        page = context.new_page()
        page.on("console", self.console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        return page


def test_the_whole_gallery_in_a_browser(server, browser, tmp_path):
    from playwright.sync_api import expect

    key = server.cli("users", "create", "alice")["api_key"]
    server.start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (tmp_path / "group.jpg").write_bytes(group())
    (tmp_path / "me.jpg").write_bytes(astronaut())
    watch = Watch(server.url)
    context = browser.new_context(base_url=server.url, accept_downloads=True)
    page = watch.page(context)

    def shot(name: str, full_page: bool = True) -> None:
        assert page.evaluate(UNLABELLED) == [], f"unlabelled on {page.url}"
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)

    # Sign in, with the keyboard
    page.goto("/")
    expect(page).to_have_url(f"{server.url}/signin")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Imagine Me")
    shot("1-signin")
    page.get_by_label("API key").fill("imk_wrong")
    page.get_by_label("API key").press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("isn't valid")
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")
    expect(page).to_have_url(f"{server.url}/onboarding")
    [cookie] = context.cookies()
    assert cookie["name"] == "imagine_session" and cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it

    # Onboarding: the consent text and version, residence, a group photo refused
    version = httpx.get(f"{server.url}/v1/consent").json()["version"]
    expect(page.locator("#consent-version")).to_have_text(version)
    expect(page.get_by_role("region", name="Consent text")).to_contain_text("face embedding")
    expect(page.get_by_label("State or region of residence")).to_be_hidden()
    page.get_by_label("Country of residence").select_option("US")
    page.get_by_label("State or region of residence").select_option("US-CA")
    page.get_by_label("Upload photos").check()  # the camera has its own test
    page.get_by_label("Add 1 to 3 photos").set_input_files(tmp_path / "group.jpg")
    expect(page.get_by_role("img", name="Preview of photo 1: group.jpg")).to_be_visible()
    page.get_by_label("I have read this text").check()
    shot("2-onboarding")
    page.get_by_role("button", name="Enroll my face").click()
    expect(page.locator("#enroll-error")).to_contain_text("more than one person")
    expect(page.locator("#enroll-error")).to_contain_text("multiple_faces")
    shot("3-onboarding-group-photo-refused")
    page.get_by_role("button", name="Remove photo 1: group.jpg").click()
    page.get_by_label("Add 1 to 3 photos").set_input_files(tmp_path / "me.jpg")
    page.get_by_role("button", name="Enroll my face").click()
    expect(page).to_have_url(f"{server.url}/create", timeout=60_000)

    # Create: the expanded prompt, progress from the events to 100%, the images
    page.get_by_label("Describe the image").fill("me as an astronaut on Mars")
    page.get_by_role("radio", name="Cinematic").check()
    expect(page.get_by_label("Number of images")).to_have_attribute("max", "4")
    page.get_by_label("Number of images").fill("2")
    page.get_by_label("Seed (optional)").fill("7")
    page.get_by_role("button", name="Create", exact=True).click()
    job = page.locator("#jobs li.job")
    expect(job.locator(".expanded-prompt")).to_contain_text("astronaut on Mars")
    expect(job.locator(".added")).to_contain_text("film grain")
    seen = watch_progress(job)
    assert seen[-1] == 100 and seen == sorted(seen), seen
    # after the last step come the safety check and the provenance marks
    expect(job.locator(".progress-text")).to_have_text("Done: 2 images ready.")
    assert any(url.endswith("/events") for url in watch.requests)
    expect(page.locator("#smoke-notice")).to_contain_text(
        "smoke profile: these images are noise", ignore_case=True
    )
    expect(job.get_by_role("img")).to_have_count(2)
    shot("4-create-done")

    # Gallery: both images, newest first, with the smoke notice beside them
    page.get_by_role("navigation").get_by_role("link", name="Gallery").click()
    grid = page.get_by_role("list", name="Your images, newest first")
    expect(grid.get_by_role("img")).to_have_count(2)
    expect(page.locator("#smoke-notice")).to_be_visible()
    alts = [img.get_attribute("alt") for img in grid.get_by_role("img").all()]
    assert sorted(alts) == [
        "me as an astronaut on Mars (image 1, seed 7)",
        "me as an astronaut on Mars (image 2, seed 8)",
    ]
    shot("5-gallery")

    # Details, download, delete
    grid.get_by_role("link").first.click()
    expect(page.locator("#fact-prompt")).to_have_text("me as an astronaut on Mars")
    expect(page.locator("#fact-expanded")).to_contain_text("film grain")
    expect(page.locator("#fact-seed")).to_have_text(alts[0].split("seed ")[1].rstrip(")"))
    expect(page.locator("#fact-similarity")).not_to_be_empty()
    expect(page.locator("#fact-provenance")).to_contain_text("Marked as AI-generated")
    page.get_by_role("button", name="Check the marks now").click()
    expect(page.locator("#provenance-check")).to_contain_text(
        "marked as AI-generated; the watermark reads back with this image's id", timeout=30_000
    )
    expect(page.get_by_role("note")).to_contain_text("smoke profile", ignore_case=True)
    shot("6-image")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PNG").click()
    image_id = page.url.rsplit("/", 1)[1]
    assert download.value.suggested_filename == f"imagine-{image_id}.png"
    assert Path(download.value.path()).read_bytes()[:8] == PNG

    page.get_by_role("button", name="Delete image").click()
    dialog = page.get_by_role("dialog", name="Delete this image?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")  # changed my mind
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("button", name="Delete image")).to_be_focused()
    page.get_by_role("button", name="Delete image").click()
    dialog.get_by_role("button", name="Delete image").click()
    expect(page).to_have_url(f"{server.url}/gallery")
    expect(grid.get_by_role("img")).to_have_count(1)

    # Erase the face data: everything made from it goes too
    page.get_by_role("button", name="Delete this face data").click()
    dialog = page.get_by_role("dialog", name="Delete this face data?")
    shot("7-erase-dialog", full_page=False)
    dialog.get_by_role("button", name="Delete this face data").click()
    expect(page.locator("#face-status")).to_contain_text("were deleted")
    expect(page.locator("#gallery-empty")).to_be_visible()
    expect(grid.get_by_role("img")).to_have_count(0)
    expect(page.locator("#no-face-data")).to_be_visible()
    shot("8-gallery-empty")
    bearer = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/v1/gallery", headers=bearer).json()["items"] == []
    assert httpx.get(f"{server.url}/v1/identities", headers=bearer).json() == []

    # Sign out: the session is gone on the server too
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.url}/signin")
    assert page.request.get("/v1/session").status == 401

    context.close()
    assert watch.foreign == [], "pages asked other hosts"
    assert watch.problems == []


def watch_progress(job, timeout: float = 300.0) -> list[int]:
    """The values the job's progress bar shows, sampled until it reaches 100 (none while it
    is queued or finishing: the bar then says it is busy without a measure)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = job.locator("progress").get_attribute("value")
        if raw is None:
            time.sleep(0.05)
            continue
        value = int(raw)
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == 100:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"progress never reached 100: {seen}")
