// The gallery: your images with their prompt and date, newest first, loaded page by page as
// you scroll, filtered by face; several at once can be selected and deleted. Below, your face
// data: add photos to an identity or replace them, rename it, or erase it with everything
// made from it.

import { ApiProblem, api } from "../api.js";
import { append, confirmDialog, confirmingButton, field, formatDate, formatDateTime, h, identityLabel, plural } from "../dom.js";
import { MESSAGES, explain } from "../messages.js";
import { photoPicker } from "../photos.js";

export const title = "Gallery";
export const SMOKE_NOTICE =
  "Smoke profile: these images are noise from tiny random-weight models. The service runs for testing, not with a real image model.";
const PAGE = 24;

// An image tile linking to its page; with `caption`, its prompt and date under it.
export function thumbnail(image, { caption = false } = {}) {
  return h("li", { class: "tile", "data-id": image.id },
    h("a", { href: `/images/${image.id}`, class: "thumb" },
      h("img", {
        src: image.url,
        alt: `${image.prompt} (image ${image.index + 1}, seed ${image.seed})`,
        width: image.width,
        height: image.height,
        loading: "lazy",
      }),
    ),
    caption
      ? h("p", { class: "caption" },
          h("span", { class: "caption-prompt" }, image.prompt),
          h("time", { datetime: image.created_at }, formatDate(image.created_at)))
      : null,
  );
}

export async function render(root, { flash }) {
  const [identities, limits] = await Promise.all([api("/v1/identities"), api("/v1/limits")]);
  const notice = h("p", { class: "notice", role: "note", id: "smoke-notice", hidden: true }, SMOKE_NOTICE);
  const grid = h("ul", { class: "grid gallery", id: "gallery", "aria-label": "Your images, newest first" });
  const empty = h("p", { id: "gallery-empty", hidden: true });
  const more = h("button", { type: "button", id: "more", class: "secondary", hidden: true }, "Load more images");
  const status = h("p", { role: "status", id: "gallery-status" });
  const faces = h("section", { "aria-labelledby": "faces-title", class: "card", id: "face-data" });

  const filter = h("select", { name: "identity" },
    h("option", { value: "" }, "All faces"),
    identities.map((i) => h("option", { value: i.id }, identityLabel(i))),
  );
  const filterField = field("filter", "Show images of", filter);
  filterField.hidden = identities.length < 2;

  // Selecting several images to delete them together.
  const selecting = h("button", { type: "button", class: "secondary", id: "select-mode", "aria-pressed": "false" }, "Select images");
  const deleteSelected = h("button", { type: "button", class: "danger", id: "delete-selected", hidden: true, disabled: true }, "Delete selected");
  const toolbar = h("div", { class: "toolbar" }, filterField, h("div", { class: "actions" }, selecting, deleteSelected));

  append(root, [
    h("h1", {}, "Your gallery"),
    flash ? h("p", { class: "info", role: "status" }, flash) : null,
    notice, toolbar, status, grid, empty, more, faces,
  ]);

  let cursor = null;
  let loading = false;
  let generation = 0; // a new filter starts over; pages of the old one are dropped
  const selected = () => [...grid.querySelectorAll("input.pick:checked")];
  const countSelected = () => {
    const count = selected().length;
    deleteSelected.disabled = count === 0;
    deleteSelected.textContent = count ? `Delete ${plural(count, "image")}` : "Delete selected";
  };
  const addPick = (tile) => {
    const img = tile.querySelector("img");
    tile.prepend(h("input", { type: "checkbox", class: "pick", "aria-label": `Select ${img.alt}`, onchange: countSelected }));
  };
  const tile = (image) => {
    const li = thumbnail(image, { caption: true });
    if (grid.classList.contains("selecting")) addPick(li);
    return li;
  };
  const load = async () => {
    if (loading) return;
    loading = true;
    more.disabled = true;
    const mine = generation;
    try {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (cursor) query.set("cursor", cursor);
      if (filter.value) query.set("identity_id", filter.value);
      const page = await api(`/v1/gallery?${query}`);
      if (mine !== generation) return;
      grid.append(...page.items.map(tile));
      if (page.items.some((i) => i.profile_is_noise)) notice.hidden = false;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      const none = grid.children.length === 0;
      empty.hidden = !none;
      empty.replaceChildren(...(filter.value
        ? ["No images of this face yet. ", h("a", { href: "/create" }, "Create some"), "."]
        : ["No images yet. ", h("a", { href: "/create" }, "Create some"), "."]));
      selecting.hidden = none;
      status.textContent = none ? "" : cursor ? `Showing the newest ${grid.children.length}.` : `${plural(grid.children.length, "image")}, newest first.`;
    } catch (err) {
      status.textContent = explain(err);
    } finally {
      loading = false;
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  // Infinite scroll: the next page loads as the "Load more" button comes into view.
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && cursor) load();
  });
  observer.observe(more);

  const reload = async () => {
    generation += 1;
    loading = false;
    cursor = null;
    grid.replaceChildren();
    notice.hidden = true;
    await load();
  };
  filter.addEventListener("change", reload);

  selecting.addEventListener("click", () => {
    const on = !grid.classList.contains("selecting");
    grid.classList.toggle("selecting", on);
    selecting.setAttribute("aria-pressed", String(on));
    selecting.textContent = on ? "Done selecting" : "Select images";
    deleteSelected.hidden = !on;
    for (const li of grid.children) {
      if (on) addPick(li);
      else li.querySelector("input.pick")?.remove();
    }
    countSelected();
  });
  deleteSelected.addEventListener("click", async () => {
    const picks = selected();
    const sure = await confirmDialog({
      title: `Delete ${plural(picks.length, "image")}?`,
      text: "The selected images are deleted for good. Your face data and your other images stay.",
      confirm: `Delete ${plural(picks.length, "image")}`,
    });
    if (!sure) return;
    deleteSelected.disabled = true;
    let gone = 0;
    for (const pick of picks) {
      const li = pick.closest("li");
      try {
        await api(`/v1/images/${encodeURIComponent(li.dataset.id)}`, { method: "DELETE" });
        li.remove();
        gone += 1;
      } catch (err) {
        status.textContent = explain(err);
      }
    }
    countSelected();
    status.textContent = `${plural(gone, "image")} deleted.`;
    if (!grid.children.length) await reload();
  });

  // The face data's changes: an identity's new photo count shows in the filter too.
  const relabel = (identity) => {
    const option = [...filter.options].find((o) => o.value === identity.id);
    if (option) option.textContent = identityLabel(identity);
  };
  const ctx = { section: faces, limits, relabel, refresh: null };
  const refresh = async () => {
    await Promise.all([reload(), drawFaces(ctx)]);
  };
  ctx.refresh = refresh;
  await refresh();
  return () => observer.disconnect();
}

async function drawFaces(ctx, message = "") {
  const identities = await api("/v1/identities");
  // Messages about the face data sit under this section's heading, not under one identity.
  const status = h("p", { role: "status", id: "face-status" }, message);
  ctx.status = status;
  ctx.section.replaceChildren(
    h("h2", { id: "faces-title", tabindex: "-1" }, "Your face data"),
    status,
    identities.length
      ? h("ul", { class: "identities" }, identities.map((i) => identityItem(i, ctx)))
      : h("p", { id: "no-face-data" }, "No face data is stored for you. ", h("a", { href: "/onboarding" }, "Enroll your face"), " to create images."),
    identities.length ? h("p", {}, h("a", { href: "/onboarding" }, "Enroll your face again")) : null,
  );
}

function identityItem(identity, ctx, note = "") {
  const { status, refresh } = ctx;
  const erase = confirmingButton(
    "Delete this face data",
    {
      title: "Delete this face data?",
      text: `This erases “${identityLabel(identity)}” (the encrypted face embedding) and every image made from it, and stops any image still being made. It cannot be undone.`,
    },
    async () => {
      try {
        await api(`/v1/identities/${identity.id}`, { method: "DELETE" });
        await refresh();
        await drawFaces(ctx, `“${identity.name || "Your face data"}” and every image made from it were deleted.`);
        document.getElementById("faces-title").focus();
      } catch (err) {
        status.textContent = explain(err);
      }
    },
  );
  const nameInput = h("input", { type: "text", maxlength: "80", value: identity.name || "" });
  const renameForm = h("form", { class: "rename", hidden: true },
    field(`name-${identity.id}`, "New name", nameInput),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save name"), h("button", { type: "button", class: "secondary", onclick: () => { renameForm.hidden = true; rename.hidden = false; } }, "Cancel")),
  );
  const rename = h("button", { type: "button", class: "secondary" }, "Rename");
  rename.addEventListener("click", () => {
    renameForm.hidden = false;
    rename.hidden = true;
    nameInput.focus();
  });
  renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`/v1/identities/${identity.id}`, { method: "PATCH", json: { name: nameInput.value } });
      await drawFaces(ctx, "The name was saved.");
    } catch (err) {
      status.textContent = explain(err);
    }
  });

  // Adding photos, or replacing them: one form at a time, in place of the buttons' row.
  const heading = h("h3", { tabindex: "-1" }, identity.name || `Enrolled ${formatDateTime(identity.created_at)}`);
  const slot = h("div", { class: "photos-slot" });
  const item = h("li", { class: "identity", "data-id": identity.id });
  const uploads = !ctx.limits.require_live_capture; // else faces come from the camera only
  const open = (mode, opener) => {
    slot.replaceChildren(photosForm(identity, mode, ctx.limits.max_enroll_photos, {
      close: () => {
        slot.replaceChildren();
        opener.focus();
      },
      done: (updated, message) => {
        const fresh = identityItem(updated, ctx, message);
        item.replaceWith(fresh);
        ctx.relabel(updated);
        fresh.querySelector("h3").focus();
      },
    }));
    slot.querySelector("input[type=file]")?.focus();
  };
  const addPhotos = h("button", { type: "button", class: "secondary", onclick: () => open("add", addPhotos) }, "Add photos");
  const replacePhotos = h("button", { type: "button", class: "secondary", onclick: () => open("replace", replacePhotos) }, "Replace photos");

  return append(item, [
    heading,
    h("p", { class: "meta" },
      [
        plural(identity.photos.length, "photo"),
        identity.capture ? captureText(identity.capture) : null,
        `enrolled ${formatDate(identity.created_at)}`,
        `residence ${identity.residence}`,
        `consent ${identity.consent_version}`,
        `erased automatically on ${formatDate(identity.retention_until)} unless you use it again`,
      ].filter(Boolean).join(" · "),
    ),
    h("p", { class: "info face-note", role: "status", hidden: !note }, note),
    renameForm,
    h("div", { class: "actions" },
      h("a", { class: "button secondary", href: `/create?identity=${encodeURIComponent(identity.id)}` }, "Create with this face"),
      uploads ? addPhotos : null, uploads ? replacePhotos : null, rename, erase),
    slot,
  ]);
}

// The form that adds photos to an identity ("add") or replaces them ("replace"): the photos
// picked or dropped as at enrollment, sent together; the button is disabled while they are
// checked, and a refused photo is marked with the server's reason.
function photosForm(identity, mode, limit, { close, done }) {
  const adding = mode === "add";
  const held = identity.photos.length;
  const room = adding ? limit - held : limit;
  const prefix = `${mode}-${identity.id}-`;
  const error = h("div", { class: "error", role: "alert", id: `${prefix}error` });
  const status = h("p", { role: "status", id: `${prefix}status` });
  const cancel = h("button", { type: "button", class: "secondary", onclick: close }, "Cancel");
  const title = h("h4", { id: `${prefix}title` }, adding ? "Add photos to this face" : "Replace this face's photos");
  if (room < 1) {
    return h("div", { class: "photos-form" }, title,
      h("p", {}, `This face has ${plural(held, "photo")}, the most one face holds. Use “Replace photos” to start again from new ones.`),
      h("div", { class: "actions" }, cancel));
  }
  const hint = h("p", { class: "hint", id: `${prefix}hint` }, adding
    ? `Up to ${plural(room, "more photo")} of the same person (JPEG, PNG or WebP): the face data becomes the average of all its photos. Photos are analysed and discarded, never stored.`
    : `1 to ${limit} photos of the same person (JPEG, PNG or WebP): the face data is made afresh from them alone, and the images you made stay. Photos are analysed and discarded, never stored.`);
  const photos = photoPicker({
    prefix,
    max: room,
    label: adding ? `Photos to add, 1 to ${room}` : `New photos, 1 to ${limit}`,
    hint: hint.id,
    tooMany: adding ? `This face can take ${plural(room, "more photo")}.` : `One face holds at most ${limit}.`,
    problem: (message) => error.replaceChildren(h("p", {}, message)),
    adding: () => error.replaceChildren(),
    enabled: () => !submit.disabled,
  });
  const submit = h("button", { type: "submit" }, adding ? "Add these photos" : "Replace with these photos");
  const form = h("form", { class: "photos-form", "aria-labelledby": title.id, novalidate: true },
    title, hint, ...photos.parts, error, h("div", { class: "actions" }, submit, cancel, status));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.replaceChildren();
    const files = photos.files();
    if (!files.length) {
      error.replaceChildren(h("p", {}, MESSAGES.photos_required));
      photos.picker.focus();
      return;
    }
    const body = new FormData();
    for (const file of files) body.append("photos", file, file.name);
    const label = submit.textContent;
    submit.disabled = cancel.disabled = true;
    submit.textContent = adding ? "Adding photos…" : "Replacing photos…";
    status.textContent = "Checking your photos…";
    try {
      const updated = await api(`/v1/identities/${encodeURIComponent(identity.id)}/photos`, { method: adding ? "POST" : "PUT", form: body });
      photos.dispose();
      const count = plural(updated.photos.length, "photo");
      done(updated, adding ? `${plural(files.length, "photo")} added: this face now has ${count}.` : `The photos were replaced: this face now has ${count}.`);
    } catch (err) {
      status.textContent = "";
      if (!(err instanceof ApiProblem)) throw err;
      error.replaceChildren(...photos.refusal(err));
      photos.picker.focus();
    } finally {
      submit.disabled = cancel.disabled = false;
      submit.textContent = label;
    }
  });
  return form;
}

// How an identity's face was captured (issue 19), as the face data list says it.
function captureText(capture) {
  return capture === "live" ? "taken with your camera (live capture)" : "uploaded";
}
