"""Adding photos to a face, and replacing them, from the gallery's face data (issue 20), in
Chromium at 1280×900 and 390×844 against the real service process: another person's photo
is refused with the service's reason on the photo, the button is disabled while the photos
are checked, the photo count changes in place, a full face says so, and nothing scrolls
sideways. The form with a refused photo is saved to ``docs/screenshots/face-photos-*.png``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.web.test_browser import UNLABELLED, Watch
from tests.api.web.test_gallery_ux import OVERFLOW, SCREENSHOTS, VIEWPORTS, save_small
from tests.photos import astronaut, astronaut_image, astronaut_reframed, encode, hopper

pytestmark = pytest.mark.browser

# What a click on a form's submit button leaves at once: disabled, saying what it does.
CLICK = """(name) => {
  const button = [...document.querySelectorAll('button')].find(b => b.textContent === name);
  button.click();
  return [button.disabled, button.textContent];
}"""


def check(page) -> None:
    """Nothing wider than the window, every control labelled."""
    page.wait_for_timeout(100)  # layout after the last change
    width = page.viewport_size["width"]
    assert page.evaluate(OVERFLOW) <= 0, f"the gallery scrolls sideways at {width} px"
    assert page.evaluate(UNLABELLED) == []


def test_adding_and_replacing_a_faces_photos(idle_server, browser, tmp_path):
    server = idle_server
    from playwright.sync_api import expect

    key = server.cli("users", "create", "alice")["api_key"]
    server.start()
    larger = encode(astronaut_image().resize((640, 640)))
    photos = {"me.jpg": astronaut(), "me2.png": astronaut_reframed(), "me3.jpg": larger}
    for name, data in {**photos, "someone.jpg": hopper()}.items():
        (tmp_path / name).write_bytes(data)
    version = httpx.get(f"{server.url}/v1/consent").json()["version"]
    r = httpx.post(
        f"{server.url}/v1/identities",
        headers={"Authorization": f"Bearer {key}"},
        files=[("photos", ("me.jpg", astronaut(), "image/jpeg"))],
        data={"consent": "true", "consent_version": version, "residence": "US-CA"}
        | {"name": "Studio portraits"},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    watch = Watch(server.url)

    for viewport, added in (("desktop", "me2.png"), ("phone", "me3.jpg")):
        width, height = VIEWPORTS[viewport]
        context = browser.new_context(
            base_url=server.url, viewport={"width": width, "height": height}
        )
        page = watch.page(context)

        page.goto("/gallery")
        page.get_by_label("API key").fill(key)
        page.get_by_label("API key").press("Enter")
        expect(page).to_have_url(f"{server.url}/gallery")
        face = page.locator("li.identity", has_text="Studio portraits")
        held = 1 if viewport == "desktop" else 2
        expect(face.locator(".meta")).to_contain_text(f"{held} photo")

        # Someone else's photo: refused with the reason on it, the face unchanged
        face.get_by_role("button", name="Add photos").click()
        form = face.get_by_role("form", name="Add photos to this face")
        picker = form.get_by_label(f"Photos to add, 1 to {3 - held}")
        picker.set_input_files(tmp_path / "someone.jpg")
        assert page.evaluate(CLICK, "Add these photos") == [True, "Adding photos…"]
        error = form.get_by_role("alert")
        expect(error).to_contain_text("doesn't show the face this face data holds")
        expect(error).to_contain_text("not_same_face: this is not the face this identity holds")
        expect(form.locator(".previews li.refused")).to_contain_text("same person only")
        expect(form.get_by_role("button", name="Add these photos")).to_be_enabled()
        expect(face.locator(".meta")).to_contain_text(f"{held} photo")
        check(page)
        png = face.screenshot(animations="disabled")
        save_small(png, SCREENSHOTS / f"face-photos-{width}.png")

        # Her own photo: the count changes in place, in the face filter's label too
        form.get_by_role("button", name="Remove photo 1: someone.jpg").click()
        picker.set_input_files(tmp_path / added)
        form.get_by_role("button", name="Add these photos").click()
        face = page.locator("li.identity", has_text="Studio portraits")
        expect(face.locator(".face-note")).to_have_text(
            f"1 photo added: this face now has {held + 1} photos."
        )
        expect(face.locator(".meta")).to_contain_text(f"{held + 1} photos · uploaded")
        label = f"Studio portraits · {held + 1} photos · uploaded"
        expect(page.locator("#filter option", has_text=label)).to_have_count(1)
        expect(face.get_by_role("form")).to_have_count(0)
        check(page)

    # Full now: adding says so; replacing makes the face afresh from one photo
    face.get_by_role("button", name="Add photos").click()
    expect(face).to_contain_text("This face has 3 photos, the most one face holds.")
    face.get_by_role("button", name="Cancel").click()
    face.get_by_role("button", name="Replace photos").click()
    form = face.get_by_role("form", name="Replace this face's photos")
    form.get_by_label("New photos, 1 to 3").set_input_files(tmp_path / "me.jpg")
    check(page)
    assert page.evaluate(CLICK, "Replace with these photos") == [True, "Replacing photos…"]
    face = page.locator("li.identity", has_text="Studio portraits")
    expect(face.locator(".face-note")).to_have_text(
        "The photos were replaced: this face now has 1 photo."
    )
    expect(face.locator(".meta")).to_contain_text("1 photo · uploaded")
    check(page)
    context.close()
    assert watch.foreign == [], "pages asked other hosts"
    assert watch.problems == []
