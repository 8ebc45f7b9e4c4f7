// Enrollment in three steps: where you live (where the service is offered comes first, from
// the region policy, and places it does not serve are marked), the consent text and its
// version, then the face and a name for it. The face comes from the camera (a live capture
// that follows a head-turn challenge, camera.js) or from 1 to the service's limit of photos,
// added or removed one at a time or dropped on the page.

import { ApiProblem, api } from "../api.js";
import { cameraAvailable, cameraCapture, explainCapture } from "../camera.js";
import { append, field, formatDate, formatDateTime, h } from "../dom.js";
import { MESSAGES } from "../messages.js";
import { photoPicker } from "../photos.js";

export const title = "Your face";

export async function render(root, { navigate }) {
  const [consent, regions, identities, limits] = await Promise.all([
    api("/v1/consent"),
    api("/v1/regions"),
    api("/v1/identities"),
    api("/v1/limits"),
  ]);
  const MAX_PHOTOS = limits.max_enroll_photos;

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

  // Step 1: residence. Served places first; the others say so in the list itself.
  const served = regions.countries.filter((c) => c.served);
  const unserved = regions.countries.filter((c) => !c.served);
  const country = h("select", { name: "country", autocomplete: "country" },
    h("option", { value: "" }, "Choose your country…"),
    h("optgroup", { label: "Where Imagine Me is offered" }, served.map((c) => h("option", { value: c.code }, c.name))),
    h("optgroup", { label: "Not offered yet" }, unserved.map((c) => h("option", { value: c.code }, `${c.name} (not offered)`))),
  );
  const state = h("select", { name: "state" });
  const stateField = field("state", "State or region of residence", state,
    "Needed in this country because the rules differ between its states or regions.");
  stateField.hidden = true;
  const residenceNote = h("p", { id: "residence-note", role: "status" });
  const rest = []; // the steps after residence: closed while the place is not served

  const residence = () => {
    const chosen = regions.countries.find((c) => c.code === country.value);
    if (!chosen) return { chosen: null, place: null, code: "" };
    if (!chosen.needs_subdivision) return { chosen, place: chosen, code: chosen.code };
    const sub = chosen.subdivisions.find((s) => s.code === state.value);
    return { chosen, place: sub || null, code: sub ? sub.code : "" };
  };
  const judge = () => {
    const { place } = residence();
    const offered = !place || place.served;
    residenceNote.className = offered ? "" : "error";
    residenceNote.textContent = offered
      ? ""
      : `Imagine Me isn't offered to people who live in ${place.name} yet, so you can't enroll. Nothing has been uploaded.`;
    for (const part of rest) part.disabled = !offered;
  };
  country.addEventListener("change", () => {
    clearError(country);
    const chosen = regions.countries.find((c) => c.code === country.value);
    stateField.hidden = !chosen?.needs_subdivision;
    state.replaceChildren(
      h("option", { value: "" }, "Choose your state or region…"),
      ...(chosen?.subdivisions || []).map((s) => h("option", { value: s.code }, s.served ? s.name : `${s.name} (not offered)`)),
    );
    judge();
  });
  state.addEventListener("change", () => {
    clearError(state);
    judge();
  });

  // Step 3: the face. Photos, one at a time or several, picked or dropped; each can be removed.
  const photos = photoPicker({
    max: MAX_PHOTOS,
    label: `Add 1 to ${MAX_PHOTOS} photos of only you (JPEG, PNG or WebP)`,
    hint: "photos-hint",
    tooMany: `This enrollment takes at most ${MAX_PHOTOS}.`,
    problem: (message) => showError(message),
    adding: () => clearError(photos.picker),
    enabled: () => !photosStep.disabled,
  });
  const picker = photos.picker;

  const name = h("input", { type: "text", name: "name", maxlength: "80", value: `Face of ${formatDateTime(new Date().toISOString())}` });

  // Or the camera: where there is one it is the default, and unless the service asks for a
  // live capture, photos stay possible.
  const hasCamera = cameraAvailable();
  const uploadsAllowed = !limits.require_live_capture;
  const useCamera = h("input", { type: "radio", name: "how", id: "how-camera", value: "camera", checked: hasCamera, disabled: !hasCamera });
  const useUpload = h("input", { type: "radio", name: "how", id: "how-upload", value: "upload", checked: !hasCamera && uploadsAllowed });
  const camera = cameraCapture();
  const how = h("fieldset", { class: "how" },
    h("legend", {}, "How to show us your face"),
    h("div", { class: "how-choices" },
      h("div", { class: "check" }, useCamera, h("label", { for: "how-camera" }, "Use my camera")),
      uploadsAllowed ? h("div", { class: "check" }, useUpload, h("label", { for: "how-upload" }, "Upload photos")) : null,
    ),
    hasCamera ? null : h("p", { class: "hint" }, "No camera is available in this browser."),
    uploadsAllowed ? null : h("p", { class: "hint" }, "This service enrolls faces from a camera capture only: it checks that it is you, now."),
  );
  const upload = h("div", { class: "upload", id: "upload" },
    h("p", { class: "hint", id: "photos-hint" }, `1 to ${MAX_PHOTOS} photos of only you (JPEG, PNG or WebP). A clear, sharp photo of your face looking at the camera works best. Photos are analysed and discarded, never stored.`),
    ...photos.parts,
  );

  const error = h("div", { class: "error", role: "alert", id: "enroll-error" });
  const status = h("p", { role: "status", id: "enroll-status" });
  const submit = h("button", { type: "submit" }, "Enroll my face");
  const showMode = () => {
    const live = useCamera.checked;
    camera.element.hidden = !live;
    upload.hidden = live;
    submit.textContent = live ? "Start the camera check" : "Enroll my face";
  };
  useCamera.addEventListener("change", showMode);
  useUpload.addEventListener("change", showMode);
  showMode();
  const consentStep = h("fieldset", { class: "step" },
    h("legend", {}, "2. What happens to your face data"),
    h("p", { class: "meta" }, "Policy version ", version, ` · purpose: ${consent.purpose} · kept at most ${consent.retention_days} days after you last use it`),
    consentBox,
  );
  const photosStep = h("fieldset", { class: "step" },
    h("legend", {}, `3. Your ${uploadsAllowed ? (hasCamera ? "camera or photos" : "photos") : "camera"}`),
    how,
    camera.element,
    upload,
    field("identity-name", "Name for this face", name, "To tell your enrolled faces apart, e.g. “Summer 2026”."),
    h("div", { class: "check" }, agree, agreeLabel),
    error,
    h("div", { class: "actions" }, submit, status),
  );
  rest.push(consentStep, photosStep);

  const form = h("form", { id: "enroll", novalidate: true },
    h("fieldset", { class: "step" },
      h("legend", {}, "1. Where you live"),
      h("p", { id: "served-regions", class: "info" }, `Imagine Me is offered to people who live in ${servedSummary(regions.countries)}.`),
      field("country", "Country of residence", country,
        "Biometric laws protect people where they live, so we ask first. It is stored with your consent."),
      stateField,
      residenceNote,
    ),
    consentStep,
    photosStep,
  );

  function showError(message, control) {
    error.replaceChildren(h("p", {}, message));
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.focus();
    }
  }
  function clearError(control) {
    control.removeAttribute("aria-invalid");
    error.replaceChildren();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    error.replaceChildren();
    const needsState = !stateField.hidden;
    const { code } = residence();
    if (!country.value) return showError(MESSAGES.residence_missing, country);
    if (needsState && !state.value) return showError(MESSAGES.subdivision_missing, state);
    const live = useCamera.checked;
    if (!live && !useUpload.checked) return showError(MESSAGES.photos_required, useCamera);
    const chosenFiles = photos.files();
    if (!live && chosenFiles.length < 1) return showError(MESSAGES.photos_required, picker);
    if (!live && chosenFiles.length > MAX_PHOTOS) return showError(MESSAGES.too_many_photos, picker);
    if (!agree.checked) return showError(MESSAGES.consent_required, agree);
    if (live) return enrollLive(code, name.value.trim());

    const body = new FormData();
    for (const file of chosenFiles) body.append("photos", file, file.name);
    body.append("consent", "true");
    body.append("consent_version", version.textContent);
    body.append("residence", code);
    if (name.value.trim()) body.append("name", name.value.trim());
    submit.disabled = true;
    status.textContent = "Checking your photos…";
    try {
      await api("/v1/identities", { method: "POST", form: body });
      status.textContent = "Your face is enrolled.";
      navigate("/create", { message: "Your face is enrolled. Describe your first image." });
    } catch (err) {
      status.textContent = "";
      if (!(err instanceof ApiProblem)) throw err;
      error.replaceChildren(...photos.refusal(err));
      if (err.code === "consent_outdated") showConsent(await api("/v1/consent"));
      const control = { consent_outdated: agree, region_unavailable: needsState ? state : country }[err.code];
      (control || picker).focus();
    } finally {
      submit.disabled = false;
    }
  });

  async function enrollLive(residenceCode, faceName) {
    submit.disabled = true;
    submit.textContent = "Camera check running…";
    try {
      await camera.enroll({ consent_version: version.textContent, residence: residenceCode, name: faceName });
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
    form,
  ]);
  return () => {
    photos.dispose();
    camera.stop();
  };
}

// "the United States (except Illinois and Texas)", from the policy's served flags.
export function servedSummary(countries) {
  const parts = countries.filter((c) => c.served).map((c) => {
    const off = c.subdivisions.filter((s) => !s.served).map((s) => s.name);
    return off.length ? `${c.name} (except ${listOf(off)})` : c.name;
  });
  return parts.length ? listOf(parts) : "no place at the moment";
}

function listOf(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

function existing(identities) {
  const latest = identities[0];
  return h("p", { class: "info" },
    `You enrolled your face ${identities.length === 1 ? "once" : `${identities.length} times`}, the latest on ${formatDate(latest.created_at)} ${latest.capture === "live" ? "with your camera" : "from photos"}. `,
    h("a", { href: "/create" }, "Create images"),
    " with it, or enroll more of it below: this account holds your own face only. To add photos to your face data or replace them, rename it, or erase it to enroll another face, see “Your face data” in the ",
    h("a", { href: "/gallery" }, "gallery"),
    ".",
  );
}

function paragraphs(text) {
  return text.split(/\n\s*\n/).map((p) => p.replace(/\s*\n\s*/g, " ").trim()).filter(Boolean);
}
