// Building DOM without innerHTML: every text from the server or the user is a text node.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A field with its label (and an optional hint read by screen readers with the control).
export function field(id, label, control, hint) {
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    control.setAttribute("aria-describedby", `${id}-hint`);
    parts.push(h("p", { class: "hint", id: `${id}-hint` }, hint));
  }
  return h("div", { class: "field" }, parts);
}

// A modal confirmation; resolves true when confirmed. Focus starts on "Cancel" (the safe
// choice), Escape cancels, and focus returns to whatever had it before.
export function confirmDialog({ title, text, confirm }) {
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const cancelButton = h("button", { type: "button", class: "secondary", value: "cancel" }, "Cancel");
    const confirmButton = h("button", { type: "button", class: "danger", value: "confirm" }, confirm);
    const dialog = h(
      "dialog",
      { "aria-labelledby": "dialog-title", "aria-describedby": "dialog-text" },
      h("h2", { id: "dialog-title" }, title),
      h("p", { id: "dialog-text" }, text),
      h("div", { class: "actions" }, cancelButton, confirmButton),
    );
    cancelButton.addEventListener("click", () => dialog.close("cancel"));
    confirmButton.addEventListener("click", () => dialog.close("confirm"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
    cancelButton.focus();
  });
}

// A destructive button that asks first: `action` runs only once the dialog is confirmed.
export function confirmingButton(label, { title, text }, action, attrs = {}) {
  const button = h("button", { type: "button", class: "danger", ...attrs }, label);
  button.addEventListener("click", async () => {
    if (!(await confirmDialog({ title, text, confirm: label }))) return;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export function formatDate(iso) {
  return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" });
}

export function formatDateTime(iso) {
  return new Date(iso).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

// How an identity reads in menus and lists: its name (or, without one, when it was enrolled),
// its number of photos, and how it was captured (uploaded, or live from the camera).
export function identityLabel(identity) {
  const name = identity.name || `Enrolled ${formatDateTime(identity.created_at)}`;
  const count = identity.photos.length;
  const parts = [name, `${count} photo${count === 1 ? "" : "s"}`];
  if (identity.capture) parts.push(identity.capture === "live" ? "live capture" : "uploaded");
  return parts.join(" · ");
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}
