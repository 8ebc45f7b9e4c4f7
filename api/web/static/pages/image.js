// One image: the picture, how it was made, how much it looks like you, its provenance;
// download and delete.

import { ApiProblem, api, downloadUrl } from "../api.js";
import { append, confirmingButton, h } from "../dom.js";
import { aspectOf, styleLabel, swatch } from "../choices.js";
import { rememberJob } from "../jobs.js";
import { explain } from "../messages.js";
import { SMOKE_NOTICE } from "./gallery.js";

export const title = "Image";

export async function render(root, { params, navigate }) {
  const [id] = params;
  let record;
  try {
    record = await api(`/v1/images/${encodeURIComponent(id)}/metadata`);
  } catch (err) {
    root.append(h("h1", {}, "Image not found"), h("p", {}, explain(err)), h("p", {}, h("a", { href: "/gallery" }, "Back to the gallery")));
    return null;
  }
  const meta = record.metadata;
  const status = h("p", { role: "status", id: "image-status" });
  const checked = h("p", { role: "status", id: "provenance-check" });
  const check = h("button", { type: "button", class: "secondary", id: "check-marks" }, "Check the marks now");
  check.addEventListener("click", async () => {
    check.disabled = true;
    checked.textContent = "Reading the marks in the stored file…";
    try {
      checked.textContent = await verifyMarks(id, meta.provenance);
    } catch (err) {
      checked.textContent = explain(err);
    } finally {
      check.disabled = false;
    }
  });
  const remove = confirmingButton(
    "Delete image",
    {
      title: "Delete this image?",
      text: "The image is deleted for good. Your face data and your other images stay.",
    },
    async () => {
      try {
        await api(`/v1/images/${encodeURIComponent(id)}`, { method: "DELETE" });
        navigate("/gallery", { message: "The image was deleted." });
      } catch (err) {
        status.textContent = explain(err);
      }
    },
    { id: "delete-image" },
  );

  // Iterate from this image: the same prompt and settings with new seeds, or the form filled in.
  const again = h("button", { type: "button", id: "more-like-this" }, "More like this");
  again.addEventListener("click", async () => {
    again.disabled = true;
    status.textContent = "Starting…";
    try {
      const job = await api(`/v1/generations/${encodeURIComponent(record.generation_id)}`);
      const [width, height] = String(meta.size).split("x").map(Number);
      const accepted = await api("/v1/generations", {
        method: "POST",
        json: { identity_id: job.identity_id, prompt: meta.prompt, n: job.n, style: meta.style, width, height, steps: meta.steps },
      });
      rememberJob(accepted.id);
      navigate(`/create?follow=${encodeURIComponent(accepted.id)}`);
    } catch (err) {
      status.textContent = explain(err);
      again.disabled = false;
    }
  });
  const [width, height] = String(meta.size || "").split("x").map(Number);
  append(root, [
    h("p", {}, h("a", { href: "/gallery" }, "← Back to the gallery")),
    h("h1", { class: "image-title" }, meta.prompt || "Image details"),
    h("div", { class: "image-layout" },
      h("figure", { class: "detail" },
        h("img", { src: `/v1/images/${encodeURIComponent(id)}`, alt: `${meta.prompt} (seed ${meta.seed})`, id: "image", width, height }),
        meta.notice || meta.profile === "smoke" ? h("figcaption", { class: "notice", role: "note" }, SMOKE_NOTICE) : null,
      ),
      h("div", { class: "image-side" },
        h("ul", { class: "chips settings", "aria-label": "Settings", id: "settings" },
          h("li", {}, swatch(meta.style || ""), `${styleLabel(meta.style || "")} style`),
          h("li", {}, `${aspectOf(width, height).label} ${width} × ${height}`),
          h("li", {}, `Seed ${meta.seed}`),
          h("li", {}, `${meta.steps} steps`),
        ),
        h("div", { class: "actions", id: "image-actions" },
          again,
          h("a", { class: "button secondary", href: `/create?from=${encodeURIComponent(id)}`, id: "edit-prompt" }, "Edit prompt"),
          h("a", { class: "button secondary", href: downloadUrl(id), download: `imagine-${id}.png`, id: "download" }, "Download PNG"),
          remove,
        ),
        status,
      ),
    ),
    h("h2", {}, "How it was made"),
    h("dl", { class: "facts" },
      fact("Your prompt", meta.prompt, "fact-prompt"),
      fact("Expanded prompt (what the image model was given)", meta.expanded_prompt, "fact-expanded"),
      fact("Added to your words", meta.added?.length ? meta.added.join(", ") : "nothing", "fact-added"),
      fact("Style", meta.style, "fact-style"),
      fact("Seed", String(meta.seed), "fact-seed"),
      fact("Size and steps", `${meta.size} pixels, ${meta.steps} steps, ${meta.profile} profile`, "fact-size"),
      fact("Identity similarity", similarity(meta), "fact-similarity"),
      fact("Provenance", [provenance(meta.provenance), meta.provenance ? h("div", { class: "actions" }, check, checked) : null], "fact-provenance"),
      fact("Made", new Date(meta.created_at).toLocaleString(), "fact-created"),
    ),
  ]);
  return null;
}

function fact(term, value, id) {
  return [h("dt", {}, term), h("dd", { id }, value ?? "unknown")];
}

function similarity(meta) {
  if (meta.identity_similarity === null || meta.identity_similarity === undefined) {
    return `Not measured${meta.identity_similarity_note ? `: ${meta.identity_similarity_note}` : "."}`;
  }
  const score = Number(meta.identity_similarity).toFixed(3);
  return `${score} (cosine similarity between the face in the image and yours; 1 is identical)`;
}

// What was put into the file when it was made (the image's record, `provenance`).
function provenance(record) {
  if (!record) return "Not checked: no provenance marks were recorded for this image.";
  const c2pa = record.c2pa_signed ? "a signed C2PA manifest" : "no C2PA manifest (the server has no signing key)";
  const label = record.label ? ", and the visible “Imagined with AI” label" : "";
  return h("p", { class: "plain" },
    `Marked as AI-generated when it was made: an invisible watermark (${record.watermark_scheme}, id ${record.watermark_id}), the IPTC “trained algorithmic media” source type in its metadata, ${c2pa}${label}.`);
}

// Read the marks back from the stored file (POST /v1/provenance/verify).
async function verifyMarks(id, record) {
  const response = await fetch(`/v1/images/${encodeURIComponent(id)}`, { credentials: "same-origin" });
  if (!response.ok) throw new ApiProblem(response.status, { code: "not_found", message: "the image is gone" });
  const form = new FormData();
  form.append("image", await response.blob(), `${id}.png`);
  const found = await api("/v1/provenance/verify", { method: "POST", form });
  const watermark = found.watermark.found
    ? found.watermark.payload === record.watermark_id
      ? "the watermark reads back with this image's id"
      : `a watermark with another id (${found.watermark.payload})`
    : "no watermark found";
  const c2pa = !found.c2pa.present ? "no C2PA manifest" : found.c2pa.valid ? "a valid C2PA manifest" : "an invalid C2PA manifest";
  return `Checked now: ${found.summary}; ${watermark}; ${c2pa}.`;
}
