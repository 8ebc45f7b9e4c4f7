"""'Use my camera' in headless Chromium, fed by its fake camera (issue 19).

Chromium plays a YUV4MPEG2 file as the camera (``--use-file-for-fake-video-capture``),
from its first frame when the page opens the camera. Two videos are built from the
astronaut photo (``tests/capture_frames.py``): one looks at the camera, then turns the
head left and right in turn, quickly enough that every turn window of the page sees both
sides, so it follows whichever challenge the server picks; the other holds still and must
fail the challenge. Screenshots of the capture at 1280 and 390 px wide are saved to
``docs/screenshots/``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.server import Server
from tests.api.web.conftest import launch, playwright
from tests.api.web.test_browser import UNLABELLED, Watch
from tests.capture_frames import PEAK, still, turned, y4m

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
FPS = 10


def turning_video(path: Path) -> Path:
    """2.4 s looking at the camera, then the head to its left and right in turn, 0.5 s
    each with a frame between, for 10 s in all (the page's capture takes about 5 s)."""
    left, right, middle = turned(PEAK), turned(-PEAK), still()
    frames = [middle] * 24
    while len(frames) < 10 * FPS:
        frames += [
            turned(PEAK / 2),
            *[left] * 5,
            turned(0),
            turned(-PEAK / 2),
            *[right] * 5,
            middle,
        ]
    return y4m(path, frames, FPS)


def still_video(path: Path) -> Path:
    return y4m(path, [still()] * 20, FPS)


@pytest.fixture
def chromium():
    """Chromium whose camera plays ``video`` (Chromium's fake capture device)."""
    with playwright() as p:
        yield lambda video: launch(
            p,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        )


def small_png(path: Path) -> None:
    """A screenshot as a 128-colour PNG: a fraction of the size, the page still legible."""
    image = Image.open(path).convert("RGB")
    image.quantize(colors=128, dither=Image.Dither.NONE).save(path, optimize=True)


def capture(browser, server: Server, key: str, width: int, shot: Path | None):
    """Sign in, fill in the onboarding, run the camera check; the page, when it has ended."""
    from playwright.sync_api import expect

    watch = Watch(server.url)
    context = browser.new_context(
        base_url=server.url,
        viewport={"width": width, "height": 900 if width > 600 else 844},
        permissions=["camera"],
    )
    page = watch.page(context)
    page.goto("/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")
    expect(page).to_have_url(f"{server.url}/onboarding")

    expect(page.get_by_label("Use my camera")).to_be_checked()  # there is a camera
    expect(page.get_by_label("Upload photos")).not_to_be_checked()  # uploads stay possible
    expect(page.locator("#drop-zone")).to_be_hidden()
    page.get_by_label("Country of residence").select_option("US")
    page.get_by_label("State or region of residence").select_option("US-CA")
    page.get_by_label("Name for this face").fill("Live me")
    page.get_by_label("I have read this text").check()
    page.get_by_role("button", name="Start the camera check").click()
    say = page.locator("#camera-say")
    expect(say).to_contain_text("Turn your head to your")
    if shot is not None:
        # the onboarding's third step, from its heading
        page.evaluate("document.querySelector('fieldset.how').closest('.step').scrollIntoView()")
        assert page.evaluate(UNLABELLED) == []
        page.screenshot(path=str(shot))
        small_png(shot)
    return page, context, watch


def test_a_live_capture_enrolls_and_a_still_video_fails_the_challenge(
    idle_server, chromium, tmp_path
):
    server = idle_server
    from playwright.sync_api import expect

    alice = server.cli("users", "create", "alice")["api_key"]
    bob = server.cli("users", "create", "bob")["api_key"]
    server.start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # The head turns as asked: a live identity, shown as such in the gallery.
    browser = chromium(turning_video(tmp_path / "turning.y4m"))
    page, context, watch = capture(browser, server, alice, 1280, SCREENSHOTS / "capture-1280.png")
    expect(page).to_have_url(f"{server.url}/create")
    page.get_by_role("navigation").get_by_role("link", name="Gallery").click()
    expect(page.locator("#face-data")).to_contain_text("with your camera (live capture)")
    expect(page.locator("#face-data").get_by_role("heading", name="Live me")).to_be_visible()
    context.close()
    browser.close()
    assert watch.foreign == [] and watch.problems == []
    [identity] = httpx.get(
        f"{server.url}/v1/identities", headers={"Authorization": f"Bearer {alice}"}
    ).json()
    assert identity["capture"] == "live" and identity["name"] == "Live me"

    # A face that holds still: the challenge step fails, and the page says so.
    browser = chromium(still_video(tmp_path / "still.y4m"))
    page, context, watch = capture(browser, server, bob, 390, SCREENSHOTS / "capture-390.png")
    error = page.locator("#enroll-error")
    expect(error).to_contain_text("We didn't see your head turn the way we asked")
    expect(page.locator("#capture-step")).to_have_text("The check that failed: challenge.")
    expect(error).to_contain_text("capture_failed")
    expect(page.get_by_role("button", name="Try the camera check again")).to_be_focused()
    page.screenshot(path=str(tmp_path / "failed-390.png"), full_page=True)
    context.close()
    browser.close()
    assert watch.foreign == [] and watch.problems == []
    assert (
        httpx.get(f"{server.url}/v1/identities", headers={"Authorization": f"Bearer {bob}"}).json()
        == []
    )
    for name in ("capture-1280.png", "capture-390.png"):
        assert (SCREENSHOTS / name).stat().st_size < 400_000
        assert np.asarray(Image.open(SCREENSHOTS / name)).size > 0
