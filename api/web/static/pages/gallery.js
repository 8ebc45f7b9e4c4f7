// The gallery: your images, newest first, loaded page by page as you scroll; and your face
// data, which "Delete my face data" erases with everything made from it.

import { api } from "../api.js";
import { append, confirmingButton, formatDate, h } from "../dom.js";
import { explain } from "../messages.js";

export const title = "Gallery";
export const SMOKE_NOTICE =
  "Smoke profile: these images are noise from tiny random-weight models. The service runs for testing, not with a real image model.";
const PAGE = 24;

export function thumbnail(image) {
  return h("li", {},
    h("a", { href: `/images/${image.id}`, class: "thumb" },
      h("img", {
        src: image.url,
        alt: `${image.prompt} (image ${image.index + 1}, seed ${image.seed})`,
        width: image.width,
        height: image.height,
        loading: "lazy",
      }),
    ),
  );
}

export async function render(root, { flash }) {
  const notice = h("p", { class: "notice", role: "note", id: "smoke-notice", hidden: true }, SMOKE_NOTICE);
  const grid = h("ul", { class: "grid", id: "gallery", "aria-label": "Your images, newest first" });
  const empty = h("p", { id: "gallery-empty", hidden: true }, "No images yet. ", h("a", { href: "/create" }, "Create some"), ".");
  const more = h("button", { type: "button", id: "more", class: "secondary", hidden: true }, "Load more images");
  const status = h("p", { role: "status", id: "gallery-status" });
  const faces = h("section", { "aria-labelledby": "faces-title", class: "card", id: "face-data" });
  append(root, [
    h("h1", {}, "Your gallery"),
    flash ? h("p", { class: "info", role: "status" }, flash) : null,
    notice, grid, empty, more, status, faces,
  ]);;

  let cursor = null;
  let loading = false;
  const load = async () => {
    if (loading) return;
    loading = true;
    more.disabled = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (cursor) query.set("cursor", cursor);
      const page = await api(`/v1/gallery?${query}`);
      grid.append(...page.items.map(thumbnail));
      if (page.items.some((i) => i.profile_is_noise)) notice.hidden = false;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = grid.children.length > 0;
      status.textContent = cursor ? "" : `${grid.children.length} image${grid.children.length === 1 ? "" : "s"}.`;
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

  const refresh = async () => {
    cursor = null;
    grid.replaceChildren();
    notice.hidden = true;
    await Promise.all([load(), drawFaces(faces, refresh)]);
  };
  await refresh();
  return () => observer.disconnect();
}

async function drawFaces(section, refresh) {
  const identities = await api("/v1/identities");
  const status = h("p", { role: "status", id: "face-status" });
  section.replaceChildren(
    h("h2", { id: "faces-title", tabindex: "-1" }, "Your face data"),
    identities.length
      ? h("ul", { class: "identities" }, identities.map((i) => identityItem(i, status, refresh)))
      : h("p", { id: "no-face-data" }, "No face data is stored for you. ", h("a", { href: "/onboarding" }, "Enroll your face"), " to create images."),
    status,
  );
}

function identityItem(identity, status, refresh) {
  const erase = confirmingButton(
    "Delete my face data",
    {
      title: "Delete your face data?",
      text: "This erases your face data (the encrypted face embedding) and every image made from it, and stops any image still being made. It cannot be undone.",
    },
    async () => {
      try {
        await api(`/v1/identities/${identity.id}`, { method: "DELETE" });
        await refresh();
        document.getElementById("face-status").textContent =
          "Your face data and every image made from it were deleted.";
        document.getElementById("faces-title").focus();
      } catch (err) {
        status.textContent = explain(err);
      }
    },
  );
  return h("li", {},
    h("p", {},
      `Enrolled ${formatDate(identity.created_at)} ${identity.capture === "live" ? "with your camera (live capture)" : `from ${identity.photos.length} uploaded photo${identity.photos.length === 1 ? "" : "s"}`} · residence ${identity.residence} · consent ${identity.consent_version} · erased automatically on ${formatDate(identity.retention_until)} unless you use it again`,
    ),
    erase,
  );
}
