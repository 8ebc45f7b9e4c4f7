// Create: prompt, style, number of images and seed; then the expanded prompt, live progress
// from the server-sent events, cancel, and the images.

import { ApiProblem, api } from "../api.js";
import { append, clear, field, formatDate, h } from "../dom.js";
import { explain } from "../messages.js";
import { SMOKE_NOTICE, thumbnail } from "./gallery.js";

export const title = "Create";

export async function render(root, { flash }) {
  const [identities, styles, limits] = await Promise.all([
    api("/v1/identities"), api("/v1/styles"), api("/v1/limits"),
  ]);
  root.append(h("h1", {}, "Create images of you"));
  if (flash) root.append(h("p", { class: "info", role: "status" }, flash));
  if (!identities.length) {
    root.append(h("p", {}, "First enroll your face: ", h("a", { href: "/onboarding" }, "upload a photo of you"), "."));
    return null;
  }

  const identity = h("select", { name: "identity_id" },
    identities.map((i) => h("option", { value: i.id }, `Enrolled ${formatDate(i.created_at)} (${i.photos.length} photo${i.photos.length === 1 ? "" : "s"})`)),
  );
  const identityField = field("identity", "Which face data", identity);
  identityField.hidden = identities.length < 2;
  const prompt = h("textarea", { name: "prompt", rows: "3", maxlength: "500", required: true, placeholder: "me as an astronaut on Mars" });
  const style = h("select", { name: "style" },
    styles.styles.map((s) => h("option", { value: s.name, selected: s.name === styles.default }, `${s.name}: ${s.description}`)),
  );
  const n = h("input", { type: "number", name: "n", min: "1", max: String(limits.generation.max_images), value: "1", inputmode: "numeric" });
  const seed = h("input", { type: "number", name: "seed", min: "0", max: "4294967295", inputmode: "numeric" });
  const error = h("div", { class: "error", role: "alert", id: "create-error" });
  const submit = h("button", { type: "submit" }, "Create");
  const form = h("form", { id: "create", class: "card" },
    identityField,
    field("prompt", "Describe the image", prompt, "Say “me” for yourself, e.g. “me hiking in the Alps at sunrise”."),
    field("style", "Style", style),
    h("div", { class: "row" },
      field("n", "Number of images", n),
      field("seed", "Seed (optional)", seed, "The same prompt and seed make the same image again."),
    ),
    error,
    submit,
  );
  const job = h("section", { id: "job", "aria-labelledby": "job-title", hidden: true });
  root.append(form, job);

  let stop = () => {};
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.replaceChildren();
    const body = { identity_id: identity.value, prompt: prompt.value.trim(), n: Number(n.value || 1), style: style.value };
    if (seed.value !== "") body.seed = Number(seed.value);
    if (!body.prompt) {
      error.replaceChildren(h("p", {}, explain({ code: "empty_prompt" })));
      prompt.focus();
      return;
    }
    submit.disabled = true;
    try {
      const accepted = await api("/v1/generations", { method: "POST", json: body });
      stop();
      stop = follow(job, await api(`/v1/generations/${accepted.id}`));
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      error.replaceChildren(h("p", {}, explain(err)), h("p", { class: "detail" }, `Details: ${err.code}: ${err.message}`));
      prompt.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return () => stop();
}

// Show one job and follow its events until it ends; returns a function that stops following.
function follow(section, job) {
  const progress = h("progress", { id: "progress", max: "100", value: "0", "aria-labelledby": "progress-label" });
  const text = h("p", { id: "progress-text", role: "status", "aria-live": "polite" }, "Queued…");
  const cancel = h("button", { type: "button", id: "cancel", class: "secondary" }, "Cancel");
  const outcome = h("div", { id: "outcome" });
  append(clear(section), [
    h("h2", { id: "job-title" }, "Your images"),
    expanded(job),
    h("div", { class: "progress" }, h("span", { id: "progress-label" }, "Progress"), progress, text, cancel),
    outcome,
  ]);
  section.hidden = false;

  const show = (state) => {
    const percent = Math.round((state.progress || 0) * 100);
    progress.value = percent;
    const steps = state.total_steps ? ` (step ${state.step} of ${state.total_steps})` : "";
    const finishing = state.status === "running" && state.total_steps && state.step >= state.total_steps;
    text.textContent = {
      queued: "Queued: waiting for the image maker…",
      running: finishing ? "Finishing: safety check and provenance marks…" : `Making your images: ${percent}%${steps}`,
      succeeded: "Done: 100%.",
      cancelled: "Cancelled.",
      failed: "Failed.",
    }[state.status] || state.status;
  };
  const finish = (final) => {
    events.close();
    show(final);
    cancel.hidden = true;
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
  const events = new EventSource(`/v1/generations/${encodeURIComponent(job.id)}/events`);
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
  return () => events.close();
}

function expanded(job) {
  const e = job.expanded;
  if (!e) return null;
  return h("div", { class: "expanded card" },
    h("h3", {}, "What the image model is given"),
    h("p", { id: "expanded-prompt" }, e.prompt),
    e.added.length
      ? h("div", {}, h("p", {}, `Added to your words (${e.style} style, by the ${e.backend} expander):`),
          h("ul", { class: "chips", id: "added" }, e.added.map((a) => h("li", {}, a))))
      : h("p", {}, "Nothing was added to your words."),
    e.warnings.length ? h("ul", { class: "warnings" }, e.warnings.map((w) => h("li", {}, w))) : null,
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
  if (job.profile_is_noise) parts.push(h("p", { class: "notice", role: "note" }, SMOKE_NOTICE));
  parts.push(h("ul", { class: "grid", "aria-label": "Images just made" }, job.images.map((i) => thumbnail({ ...i, prompt: job.prompt }))));
  parts.push(h("p", {}, h("a", { href: "/gallery" }, "See all your images in the gallery")));
  if (job.warnings.length) parts.push(h("ul", { class: "warnings" }, job.warnings.map((w) => h("li", {}, w))));
  return parts;
}
