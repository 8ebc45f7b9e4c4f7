// One image: the picture, how it was made, how much it looks like you, its provenance;
// download and delete.

import { api, downloadUrl } from "../api.js";
import { append, confirmDialog, h } from "../dom.js";
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
  const remove = h("button", { type: "button", class: "danger", id: "delete-image" }, "Delete image");
  remove.addEventListener("click", async () => {
    const sure = await confirmDialog({
      title: "Delete this image?",
      text: "The image is deleted for good. Your face data and your other images stay.",
      confirm: "Delete image",
    });
    if (!sure) return;
    try {
      await api(`/v1/images/${encodeURIComponent(id)}`, { method: "DELETE" });
      navigate("/gallery", { message: "The image was deleted." });
    } catch (err) {
      status.textContent = explain(err);
    }
  });

  append(root, [
    h("p", {}, h("a", { href: "/gallery" }, "← Back to the gallery")),
    h("h1", {}, "Image details"),
    h("figure", { class: "detail" },
      h("img", { src: `/v1/images/${encodeURIComponent(id)}`, alt: `${meta.prompt} (seed ${meta.seed})`, id: "image" }),
      meta.notice || meta.profile === "smoke" ? h("figcaption", { class: "notice", role: "note" }, SMOKE_NOTICE) : null,
    ),
    h("dl", { class: "facts" },
      fact("Your prompt", meta.prompt, "fact-prompt"),
      fact("Expanded prompt (what the image model was given)", meta.expanded_prompt, "fact-expanded"),
      fact("Added to your words", meta.added?.length ? meta.added.join(", ") : "nothing", "fact-added"),
      fact("Style", meta.style, "fact-style"),
      fact("Seed", String(meta.seed), "fact-seed"),
      fact("Size and steps", `${meta.size} pixels, ${meta.steps} steps, ${meta.profile} profile`, "fact-size"),
      fact("Identity similarity", similarity(meta), "fact-similarity"),
      fact("Provenance", provenance(meta.provenance), "fact-provenance"),
      fact("Made", new Date(meta.created_at).toLocaleString(), "fact-created"),
    ),
    h("div", { class: "actions" },
      h("a", { class: "button", href: downloadUrl(id), download: `imagine-${id}.png`, id: "download" }, "Download PNG"),
      remove,
    ),
    status,
  ]);;
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

// The provenance library (watermark, C2PA manifest) fills `provenance` in the image's record;
// until it does, images carry no marks and this says so.
function provenance(record) {
  if (!record) return "Not checked: this image carries no provenance marks yet.";
  if (typeof record === "string") return record;
  return record.status || record.summary || JSON.stringify(record);
}
