// Choosing photos to send: a drop zone with "Add photos…", a preview of each photo chosen with
// its own "Remove", and how many there are against the most that may be sent. Photos are
// added one at a time or several, from the picker or dropped on the zone. Used by enrollment
// (onboarding) and by adding or replacing an identity's photos (gallery).

import { h, plural } from "./dom.js";
import { MESSAGES, explain } from "./messages.js";

export const ACCEPT = "image/jpeg,image/png,image/webp";

// `prefix` keeps ids apart when a page has several pickers; `label` names the file input;
// `hint` is the id of a hint the input is described by; `tooMany` follows MESSAGES'
// too_many_photos when more are chosen than fit; `problem(text)` shows what was refused
// here, `adding()` hears of photos being added (before it); `enabled()` says whether a drop
// is taken now.
export function photoPicker({ prefix = "", max, label, hint, tooMany, problem, adding = () => {}, enabled = () => true }) {
  const id = (name) => `${prefix}${name}`;
  let chosen = []; // [{file, url}]
  const picker = h("input", {
    type: "file", name: "photos", multiple: true, accept: ACCEPT, class: "picker", id: id("photos"),
    "aria-label": label, "aria-describedby": [hint, id("photo-count")].filter(Boolean).join(" "),
  });
  const previews = h("ul", { class: "previews", "aria-label": "Photos you chose" });
  const count = h("p", { class: "hint", id: id("photo-count"), role: "status" });
  const drop = h("div", { class: "drop", id: id("drop-zone") },
    h("p", { class: "drop-title" }, "Drop photos here"),
    h("p", { class: "hint" }, "or"),
    h("label", { for: id("photos"), class: "button secondary" }, "Add photos…"),
    picker,
  );

  const draw = () => {
    previews.replaceChildren(
      ...chosen.map(({ file, url }, i) =>
        h("li", { id: id(`photo-${i}`) },
          h("img", { src: url, alt: `Preview of photo ${i + 1}: ${file.name}` }),
          h("span", { class: "name" }, `${i + 1}. ${file.name}`),
          h("span", { class: "photo-error", id: id(`photo-${i}-error`) }),
          h("button", { type: "button", class: "secondary small", "aria-label": `Remove photo ${i + 1}: ${file.name}`, onclick: () => remove(i) }, "Remove"),
        ),
      ),
    );
    count.textContent = chosen.length
      ? `${plural(chosen.length, "photo")} of at most ${max}.`
      : `No photos yet: add 1 to ${max}.`;
    drop.classList.toggle("full", chosen.length >= max);
  };
  const add = (files) => {
    adding();
    const images = [...files].filter((f) => ACCEPT.split(",").includes(f.type) || !f.type);
    const room = max - chosen.length;
    chosen.push(...images.slice(0, Math.max(room, 0)).map((file) => ({ file, url: URL.createObjectURL(file) })));
    draw();
    if (images.length > room) problem(`${MESSAGES.too_many_photos} ${tooMany}`);
    else if (images.length < files.length) problem(MESSAGES.unsupported_format);
  };
  const remove = (index) => {
    URL.revokeObjectURL(chosen[index].url);
    chosen.splice(index, 1);
    draw();
    picker.focus();
  };
  picker.addEventListener("change", () => {
    add(picker.files);
    picker.value = ""; // the same file can be added again after a removal
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (enabled()) add(e.dataTransfer.files);
  });
  draw();

  return {
    parts: [drop, count, previews],
    picker,
    files: () => chosen.map(({ file }) => file),
    // A refusal of the photos sent (an ApiProblem) as paragraphs to show: which photo, what
    // it means for a person, the server's exact words; the refused photo is marked too.
    refusal(err) {
      const parts = [h("p", {}, explain(err))];
      const refused = err.photo !== null ? chosen[err.photo] : null;
      const li = refused ? previews.querySelector(`#${CSS.escape(id(`photo-${err.photo}`))}`) : null;
      if (li) {
        li.classList.add("refused");
        li.querySelector(".photo-error").textContent = explain(err);
      }
      if (refused) parts.unshift(h("p", { class: "which" }, `Photo ${err.photo + 1} (${refused.file.name}):`));
      parts.push(h("p", { class: "detail" }, `Details: ${err.code}: ${err.message}`));
      return parts;
    },
    dispose: () => chosen.forEach(({ url }) => URL.revokeObjectURL(url)),
  };
}
