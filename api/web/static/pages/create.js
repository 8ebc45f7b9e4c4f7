// Create: the face, a prompt with its length counter, a style and an aspect ratio as
// choices, number of images and seed. Every job of this tab is a card under the form, newest
// first, each with its own live progress (server-sent events), cancel, and its images
// appearing in the places held for them. After Create the new card is scrolled into view.

import { ApiProblem, api } from "../api.js";
import { ASPECTS, aspectOf, choiceGroup, chosen, sizeOf, styleLabel, swatch } from "../choices.js";
import { field, h, identityLabel, plural } from "../dom.js";
import { forgetJob, rememberJob, rememberedJobs } from "../jobs.js";
import { explain, notesFor } from "../messages.js";
import { SMOKE_NOTICE, thumbnail } from "./gallery.js";

export const title = "Create";

export async function render(root, { flash }) {
  const [identities, styles, limits] = await Promise.all([
    api("/v1/identities"), api("/v1/styles"), api("/v1/limits"),
  ]);
  const query = new URLSearchParams(location.search);
  const from = await startingPoint(query);
  const face = from?.identity_id || query.get("identity");
  root.append(h("h1", {}, "Create images of you"));
  if (limits.profile_is_noise) root.append(h("p", { class: "notice", role: "note", id: "smoke-notice" }, SMOKE_NOTICE));
  const flashLine = flash ? h("p", { class: "info", role: "status", id: "flash" }, flash) : null;
  if (flashLine) root.append(flashLine);
  if (!identities.length) {
    root.append(h("p", {}, "First enroll your face: ", h("a", { href: "/onboarding" }, "upload a photo of you"), "."));
    return null;
  }

  const identity = h("select", { name: "identity_id" },
    identities.map((i) => h("option", { value: i.id, selected: i.id === face }, identityLabel(i))),
  );
  const identityField = field("identity", "Face", identity, "Which of your enrolled faces to use.");
  identityField.hidden = identities.length < 2;

  const maxChars = limits.max_prompt_chars;
  const prompt = h("textarea", { name: "prompt", rows: "3", required: true, placeholder: "me as an astronaut on Mars" });
  prompt.value = from?.prompt || "";
  const counter = h("p", { class: "counter", id: "prompt-count" });
  const promptError = h("div", { class: "error", role: "alert", id: "create-error" });
  const promptField = field("prompt", "Describe the image", prompt,
    `Say “me” for yourself, e.g. “me hiking in the Alps at sunrise”. Up to ${maxChars} characters.`);
  promptField.append(counter, promptError);
  prompt.setAttribute("aria-describedby", "prompt-hint prompt-count create-error");
  const length = () => [...prompt.value.trim().normalize("NFC").replace(/[\r\n\t]/g, " ")].length;
  const count = () => {
    const used = length();
    const over = used > maxChars;
    counter.textContent = over
      ? `${used} / ${maxChars} characters: ${used - maxChars} over the limit. Shorten it to create.`
      : `${used} / ${maxChars} characters`;
    counter.classList.toggle("over", over);
    prompt.toggleAttribute("aria-invalid", over);
  };
  prompt.addEventListener("input", () => {
    count();
    promptError.replaceChildren();
  });
  count();

  const styleHint = h("p", { class: "hint", id: "style-hint" });
  const styleChoices = choiceGroup("style", "Style",
    styles.styles.map((s) => ({ value: s.name, label: styleLabel(s.name), picture: swatch(s.name) })),
    from?.style || styles.default, "style-hint");
  const describeStyle = () => {
    const s = styles.styles.find((x) => x.name === chosen(styleChoices, "style"));
    styleHint.textContent = s ? `${styleLabel(s.name)}: ${s.description}.` : "";
  };
  styleChoices.addEventListener("change", describeStyle);
  describeStyle();
  const startAspect = from ? aspectOf(from.width, from.height).name : "square";
  const aspectChoices = choiceGroup("aspect", "Shape",
    ASPECTS.map((a) => {
      const size = sizeOf(a, limits);
      return { value: a.name, label: a.label, hint: `${size.width} × ${size.height}`, picture: h("span", { class: `shape shape-${a.name}`, "aria-hidden": "true" }) };
    }),
    startAspect);

  const n = h("input", { type: "number", name: "n", min: "1", max: String(limits.generation.max_images), value: "1", inputmode: "numeric" });
  const seed = h("input", { type: "number", name: "seed", min: "0", max: "4294967295", inputmode: "numeric" });
  if (from?.seed !== undefined && from?.seed !== null) seed.value = String(from.seed);
  const error = h("div", { class: "error", role: "alert", id: "submit-error" });
  const submit = h("button", { type: "submit", id: "create-button" }, "Create");
  const sending = h("span", { role: "status", class: "hint", id: "create-status" });
  const form = h("form", { id: "create", class: "card" },
    identityField,
    promptField,
    styleChoices, styleHint,
    aspectChoices,
    h("div", { class: "row" },
      field("n", `Number of images (1 to ${limits.generation.max_images})`, n),
      field("seed", "Seed (optional)", seed, "The same prompt and seed make the same image again."),
    ),
    error,
    h("div", { class: "actions" }, submit, sending),
  );
  const list = h("ol", { class: "jobs", id: "jobs", "aria-label": "Your images being made, newest first" });
  const jobs = h("section", { id: "job", "aria-labelledby": "jobs-title", hidden: true },
    h("h2", { id: "jobs-title" }, "Your images"), list);
  root.append(form, jobs);
  if (from?.prompt) prompt.focus();

  const stops = new Map(); // job id → stop following it
  const show = (job, { scroll = false, first = true } = {}) => {
    const card = jobCard(job, stops);
    if (first) list.prepend(card);
    else list.append(card);
    jobs.hidden = false;
    if (scroll) card.scrollIntoView({ block: "start", behavior: "smooth" });
    return card;
  };

  // This tab's earlier jobs, newest first; a job just started elsewhere ("More like this")
  // is scrolled to.
  const followId = query.get("follow");
  for (const id of rememberedJobs()) {
    try {
      show(await api(`/v1/generations/${encodeURIComponent(id)}`), { first: false, scroll: id === followId });
    } catch (err) {
      if (err instanceof ApiProblem && err.status === 404) forgetJob(id);
      else throw err;
    }
  }

  let submitting = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submitting) return; // one request at a time: a second click while sending does nothing
    error.replaceChildren();
    promptError.replaceChildren();
    const text = prompt.value.trim();
    const problem = !text ? { code: "empty_prompt" } : length() > maxChars ? { code: "prompt_too_long" } : null;
    if (problem) {
      promptError.replaceChildren(h("p", {}, explain(problem)));
      prompt.focus();
      return;
    }
    const aspect = ASPECTS.find((a) => a.name === chosen(form, "aspect")) || ASPECTS[0];
    const body = {
      identity_id: identity.value, prompt: text, n: Number(n.value || 1), style: chosen(form, "style"), ...sizeOf(aspect, limits),
    };
    if (seed.value !== "") body.seed = Number(seed.value);
    submitting = true;
    submit.disabled = true;
    sending.textContent = "Sending…";
    try {
      const accepted = await api("/v1/generations", { method: "POST", json: body });
      rememberJob(accepted.id);
      flashLine?.remove();
      show(await api(`/v1/generations/${accepted.id}`), { scroll: true });
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      const parts = [h("p", {}, explain(err)), h("p", { class: "detail" }, `Details: ${err.code}: ${err.message}`)];
      const aboutPrompt = ["prompt_rejected", "prompt_too_long", "invalid_prompt", "empty_prompt"].includes(err.code);
      (aboutPrompt ? promptError : error).replaceChildren(...parts);
      if (aboutPrompt) prompt.focus();
    } finally {
      submitting = false;
      submit.disabled = false;
      sending.textContent = "";
    }
  });
  return () => stops.forEach((stop) => stop());
}

// Where a new image starts from: "Edit prompt" on an image (?from=IMAGE_ID) fills the form
// with its prompt, face, style, shape and seed.
async function startingPoint(query) {
  const imageId = query.get("from");
  if (!imageId) return null;
  try {
    const record = await api(`/v1/images/${encodeURIComponent(imageId)}/metadata`);
    const job = await api(`/v1/generations/${encodeURIComponent(record.generation_id)}`);
    const [width, height] = String(record.metadata.size || "").split("x").map(Number);
    return { identity_id: job.identity_id, prompt: record.metadata.prompt, style: record.metadata.style, seed: record.metadata.seed, width, height };
  } catch {
    return null; // deleted meanwhile: an empty form
  }
}

// One job as a card: its prompt, what the image model was given, progress, cancel, and a
// place for each image. Follows the job's events until it ends.
function jobCard(job, stops) {
  const progress = h("progress", { class: "job-progress", max: "100", value: "0", "aria-label": `Progress of “${job.prompt}”` });
  const text = h("p", { class: "progress-text", role: "status", "aria-live": "polite" });
  const cancel = h("button", { type: "button", class: "secondary cancel" }, "Cancel");
  const notes = h("ul", { class: "notes" });
  const outcome = h("div", { class: "outcome" });
  const tiles = h("ul", { class: "grid tiles", "aria-label": `Images of “${job.prompt}”` },
    Array.from({ length: job.n }, (_, i) => h("li", { class: "placeholder" }, h("span", {}, `Image ${i + 1} of ${job.n}`))),
  );
  // Each place has the shape of the image that will fill it (CSSOM: no inline style markup).
  const shaped = (tile) => { tile.style.aspectRatio = `${job.width} / ${job.height}`; return tile; };
  for (const tile of tiles.children) shaped(tile);
  const card = h("li", { class: "card job", id: `job-${job.id}` },
    h("p", { class: "job-prompt" }, `“${job.prompt}”`),
    h("div", { class: "progress" }, progress, text, cancel),
    tiles,
    outcome,
    expanded(job),
    notes,
  );
  const setNotes = (warnings) => notes.replaceChildren(...notesFor(warnings).map((note) => h("li", {}, note)));
  setNotes(job.expanded?.warnings || []);

  const perImage = job.n ? Math.round(job.total_steps / job.n) : 0;
  const show = (state) => {
    const percent = Math.round((state.progress || 0) * 100);
    const finishing = state.status === "running" && state.total_steps && state.step >= state.total_steps;
    if (finishing || state.status === "queued") progress.removeAttribute("value"); // busy, no measure
    else progress.value = state.status === "succeeded" ? 100 : percent;
    const making = `Making ${plural(job.n, "image")}: ${percent}%`;
    text.textContent = {
      queued: "Queued: waiting for the image maker…",
      running: finishing
        ? "Almost done: checking the images for safety and marking them as made by AI…"
        : perImage ? `${making} (${perImage} denoising steps each)` : making,
      succeeded: `Done: ${plural(state.images?.length ?? job.n, "image")} ready.`,
      cancelled: "Cancelled.",
      failed: "Failed.",
    }[state.status] || state.status;
  };
  const finish = (final) => {
    events?.close();
    stops.delete(job.id);
    show(final);
    cancel.hidden = true;
    setNotes([...(final.expanded?.warnings || []), ...final.warnings]);
    const made = new Map(final.images.map((i) => [i.index, i]));
    [...tiles.children].forEach((tile, index) => {
      const image = made.get(index);
      if (image) tile.replaceWith(thumbnail({ ...image, prompt: final.prompt }));
      else if (final.status === "succeeded") tile.replaceWith(shaped(h("li", { class: "placeholder withheld" }, h("span", {}, `Image ${index + 1} was withheld by the safety check`))));
      else tile.remove();
    });
    if (!tiles.children.length) tiles.remove();
    outcome.replaceChildren(...result(final));
  };

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    text.textContent = "Cancelling…";
    try {
      await api(`/v1/generations/${job.id}/cancel`, { method: "POST" });
    } catch (err) {
      text.textContent = explain(err); // not_cancellable: it finished first
    }
  });

  show(job);
  let events = null;
  if (["succeeded", "failed", "cancelled"].includes(job.status)) {
    finish(job);
    return card;
  }
  events = new EventSource(`/v1/generations/${encodeURIComponent(job.id)}/events`);
  stops.set(job.id, () => events.close());
  events.addEventListener("progress", (e) => show(JSON.parse(e.data)));
  events.addEventListener("done", (e) => finish(JSON.parse(e.data)));
  events.addEventListener("error", async (e) => {
    if (e.data || events.readyState === EventSource.CLOSED) {
      // erased while we watched, or the stream was refused: say where the job stands
      events.close();
      try {
        finish(await api(`/v1/generations/${job.id}`));
      } catch (err) {
        outcome.replaceChildren(h("p", { class: "error", role: "alert" }, explain(err)));
      }
    } // otherwise the browser reconnects by itself
  });
  return card;
}

// What the expander added, in view; the whole prompt the image model is given, one click away.
function expanded(job) {
  const e = job.expanded;
  if (!e) return null;
  return h("div", { class: "expanded" },
    e.added.length
      ? h("p", { class: "added-line" }, `${styleLabel(e.style)} style added: `,
          h("span", { class: "chips added" }, e.added.map((a) => h("span", { class: "chip" }, a))))
      : h("p", { class: "added-line" }, `${styleLabel(e.style)} style: nothing was added to your words.`),
    h("details", {},
      h("summary", {}, "The full prompt the image model is given"),
      h("p", { class: "expanded-prompt" }, e.prompt),
    ),
  );
}

function result(job) {
  if (job.status === "failed") {
    const err = job.error || { code: "generation_failed" };
    return [h("p", { class: "error", role: "alert" }, explain(err)), h("p", { class: "detail" }, `Details: ${err.code}: ${err.message || ""}`)];
  }
  if (job.status === "cancelled") return [h("p", {}, "The generation was cancelled. Nothing was kept.")];
  const parts = [];
  if (job.withheld.length) {
    const count = job.withheld.length === 1 ? "One image was" : `${job.withheld.length} images were`;
    parts.push(h("p", { class: "info", role: "note" }, `${count} withheld by the safety check and not kept.`));
  }
  parts.push(h("p", {}, h("a", { href: "/gallery" }, "See all your images in the gallery")));
  return parts;
}
