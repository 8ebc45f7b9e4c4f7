// Enrollment: the consent text and its version, residence, then the face: from the camera
// (a live capture that follows a head-turn challenge, camera.js) or 1 to the service's limit
// of photos with previews.

import { ApiProblem, api } from "../api.js";
import { cameraAvailable, cameraCapture, explainCapture } from "../camera.js";
import { append, field, formatDate, h } from "../dom.js";
import { MESSAGES, explain } from "../messages.js";

export const title = "Your face";
const ACCEPT = "image/jpeg,image/png,image/webp";

export async function render(root, { navigate }) {
  const [consent, regions, identities, limits] = await Promise.all([
    api("/v1/consent"),
    api("/v1/regions"),
    api("/v1/identities"),
    api("/v1/limits"),
  ]);
  const MAX_PHOTOS = limits.max_enroll_photos;
  let urls = [];

  const consentBox = h("div", { class: "consent-text", tabindex: "0", role: "region", "aria-label": "Consent text" });
  const version = h("code", { id: "consent-version" });
  const agree = h("input", { type: "checkbox", name: "consent", id: "consent" });
  const agreeLabel = h("label", { for: "consent" });
  const showConsent = (c) => {
    consentBox.replaceChildren(...paragraphs(c.text).map((p) => h("p", {}, p)));
    version.textContent = c.version;
    agreeLabel.textContent = `I have read this text (version ${c.version}) and I agree that Imagine Me processes my face data as it describes.`;
    agree.checked = false;
  };
  showConsent(consent);

  const country = h("select", { name: "country", autocomplete: "country" },
    h("option", { value: "" }, "Choose your country…"),
    regions.countries.map((c) => h("option", { value: c.code }, c.name)),
  );
  const state = h("select", { name: "state" });
  const stateField = field("state", "State or region of residence", state,
    "Needed in this country because the rules differ between its states or regions.");
  stateField.hidden = true;
  country.addEventListener("change", () => {
    const chosen = regions.countries.find((c) => c.code === country.value);
    stateField.hidden = !chosen?.needs_subdivision;
    state.replaceChildren(
      h("option", { value: "" }, "Choose your state or region…"),
      ...(chosen?.subdivisions || []).map((s) => h("option", { value: s.code }, s.name)),
    );
  });

  const photos = h("input", { type: "file", name: "photos", multiple: true, accept: ACCEPT });
  const previews = h("ul", { class: "previews", "aria-label": "Photos you chose" });
  photos.addEventListener("change", () => {
    urls.forEach((u) => URL.revokeObjectURL(u));
    urls = [...photos.files].map((f) => URL.createObjectURL(f));
    previews.replaceChildren(
      ...[...photos.files].map((file, i) =>
        h("li", { id: `photo-${i}` },
          h("img", { src: urls[i], alt: `Preview of photo ${i + 1}: ${file.name}` }),
          h("span", { class: "name" }, `${i + 1}. ${file.name}`),
          h("span", { class: "photo-error", id: `photo-${i}-error` }),
        ),
      ),
    );
  });

  // How the face is given: the camera where there is one, else (unless the service asks
  // for a live capture) photos.
  const hasCamera = cameraAvailable();
  const uploadsAllowed = !limits.require_live_capture;
  const useCamera = h("input", { type: "radio", name: "how", id: "how-camera", value: "camera", checked: hasCamera, disabled: !hasCamera });
  const useUpload = h("input", { type: "radio", name: "how", id: "how-upload", value: "upload", checked: !hasCamera && uploadsAllowed });
  const camera = cameraCapture();
  const uploadField = field("photos", `1 to ${MAX_PHOTOS} photos of only you (JPEG, PNG or WebP)`, photos,
    "A clear, sharp photo of your face looking at the camera works best. Photos are analysed and discarded, never stored.");
  const how = h("fieldset", { class: "how" },
    h("legend", {}, "Your face"),
    h("div", { class: "choices" },
      h("div", { class: "check" }, useCamera, h("label", { for: "how-camera" }, "Use my camera")),
      uploadsAllowed ? h("div", { class: "check" }, useUpload, h("label", { for: "how-upload" }, "Upload photos")) : null,
    ),
    hasCamera ? null : h("p", { class: "hint" }, "No camera is available in this browser."),
    uploadsAllowed ? null : h("p", { class: "hint" }, "This service enrolls faces from a camera capture only: it checks that it is you, now."),
    camera.element,
    uploadField,
    previews,
  );
  const submit = h("button", { type: "submit" }, "Enroll my face");
  const showMode = () => {
    const live = useCamera.checked;
    camera.element.hidden = !live;
    uploadField.hidden = live;
    previews.hidden = live;
    submit.textContent = live ? "Start the camera check" : "Enroll my face";
  };
  useCamera.addEventListener("change", showMode);
  useUpload.addEventListener("change", showMode);
  showMode();

  const error = h("div", { class: "error", role: "alert", id: "enroll-error" });
  const status = h("p", { role: "status", id: "enroll-status" });
  const form = h("form", { id: "enroll", novalidate: true },
    h("fieldset", {},
      h("legend", {}, "Where you live"),
      field("country", "Country of residence", country,
        "Biometric laws protect people where they live, so we ask. It is stored with your consent."),
      stateField,
    ),
    how,
    h("div", { class: "check" }, agree, agreeLabel),
    error,
    submit,
    status,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fail = (message, control) => {
      error.replaceChildren(h("p", {}, message));
      if (control) {
        control.setAttribute("aria-invalid", "true");
        control.focus();
      }
    };
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of previews.querySelectorAll(".photo-error")) el.textContent = "";
    error.replaceChildren();
    const needsState = !stateField.hidden;
    if (!country.value) return fail(MESSAGES.residence_missing, country);
    if (needsState && !state.value) return fail(MESSAGES.subdivision_missing, state);
    const live = useCamera.checked;
    if (!live && !useUpload.checked) return fail(MESSAGES.photos_required, useCamera);
    if (!live && photos.files.length < 1) return fail(MESSAGES.photos_required, photos);
    if (!live && photos.files.length > MAX_PHOTOS) return fail(MESSAGES.too_many_photos, photos);
    if (!agree.checked) return fail(MESSAGES.consent_required, agree);
    if (live) return enrollLive(needsState ? state.value : country.value);

    const body = new FormData();
    for (const file of photos.files) body.append("photos", file, file.name);
    body.append("consent", "true");
    body.append("consent_version", version.textContent);
    body.append("residence", needsState ? state.value : country.value);
    submit.disabled = true;
    status.textContent = "Checking your photos…";
    try {
      await api("/v1/identities", { method: "POST", form: body });
      status.textContent = "Your face is enrolled.";
      navigate("/create", { message: "Your face is enrolled. Describe your first image." });
    } catch (err) {
      status.textContent = "";
      if (!(err instanceof ApiProblem)) throw err;
      const parts = [h("p", {}, explain(err))];
      if (err.photo !== null && photos.files[err.photo]) {
        const name = photos.files[err.photo].name;
        parts.unshift(h("p", { class: "which" }, `Photo ${err.photo + 1} (${name}):`));
        const li = previews.querySelector(`#photo-${err.photo}`);
        if (li) {
          li.classList.add("refused");
          li.querySelector(".photo-error").textContent = explain(err);
        }
      }
      parts.push(h("p", { class: "detail" }, `Details: ${err.code}: ${err.message}`));
      error.replaceChildren(...parts);
      if (err.code === "consent_outdated") showConsent(await api("/v1/consent"));
      const control = { consent_outdated: agree, region_unavailable: needsState ? state : country }[err.code];
      (control || photos).focus();
    } finally {
      submit.disabled = false;
    }
  });

  async function enrollLive(residence) {
    submit.disabled = true;
    submit.textContent = "Camera check running…";
    try {
      await camera.enroll({ consent_version: version.textContent, residence });
      navigate("/create", { message: "Your face is enrolled. Describe your first image." });
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      const parts = [h("p", {}, explainCapture(err))];
      if (err.code === "capture_failed") {
        parts.unshift(h("p", { class: "which", id: "capture-step" }, `The check that failed: ${err.step}.`));
      }
      parts.push(h("p", { class: "detail" }, `Details: ${err.code}: ${err.message}`));
      error.replaceChildren(...parts);
      if (err.code === "consent_outdated") showConsent(await api("/v1/consent"));
      submit.textContent = "Try the camera check again";
      submit.disabled = false;
      submit.focus();
    } finally {
      submit.disabled = false;
    }
  }

  append(root, [
    h("h1", {}, "Your face"),
    identities.length ? existing(identities) : null,
    h("section", { "aria-labelledby": "consent-title", class: "card" },
      h("h2", { id: "consent-title" }, "Before you upload: what happens to your face data"),
      h("p", { class: "meta" }, "Policy version ", version, ` · purpose: ${consent.purpose} · kept at most ${consent.retention_days} days after you last use it`),
      consentBox,
    ),
    form,
  ]);;
  return () => {
    urls.forEach((u) => URL.revokeObjectURL(u));
    camera.stop();
  };
}

function existing(identities) {
  const latest = identities[0];
  return h("p", { class: "info" },
    `You enrolled your face on ${formatDate(latest.created_at)} ${latest.capture === "live" ? "with your camera" : "from photos"} (residence ${latest.residence}). `,
    h("a", { href: "/create" }, "Create images"),
    " with it, or enroll more of it below: only your own face can be added to this account. To enroll another face, first erase yours: use “Delete my face data” in the ",
    h("a", { href: "/gallery" }, "gallery"),
    ".",
  );
}

function paragraphs(text) {
  return text.split(/\n\s*\n/).map((p) => p.replace(/\s*\n\s*/g, " ").trim()).filter(Boolean);
}
