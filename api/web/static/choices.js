// Styles and sizes as people know them: a preset with a small swatch, and an aspect ratio
// (square, portrait, landscape) turned into pixels the service accepts (GET /v1/limits).

import { h } from "./dom.js";

export const ASPECTS = [
  { name: "square", label: "Square", ratio: [1, 1] },
  { name: "portrait", label: "Portrait", ratio: [3, 4] },
  { name: "landscape", label: "Landscape", ratio: [4, 3] },
];

// The pixel size of an aspect: about the profile's default area, each side a multiple of
// `side_multiple` within the service's bounds.
export function sizeOf(aspect, limits) {
  const { width, height } = limits.defaults;
  const { min_side: low, max_side: high, side_multiple: step } = limits.generation;
  const [w, h] = aspect.ratio;
  const side = Math.sqrt((width * height) / (w * h));
  const fit = (x) => Math.min(high, Math.max(low, Math.round(x / step) * step));
  return aspect.name === "square" ? { width: fit(width), height: fit(height) } : { width: fit(side * w), height: fit(side * h) };
}

// The aspect a stored size reads as ("256x256" or {width, height}).
export function aspectOf(width, height) {
  if (Math.abs(width - height) <= Math.max(width, height) * 0.05) return ASPECTS[0];
  return width < height ? ASPECTS[1] : ASPECTS[2];
}

export function styleLabel(name) {
  const text = name.replace(/_/g, " ");
  return text === "3d render" ? "3D render" : text.charAt(0).toUpperCase() + text.slice(1);
}

export function swatch(styleName) {
  return h("span", { class: `swatch swatch-${styleName.replace(/[^a-z0-9_]/gi, "")}`, "aria-hidden": "true" });
}

// A radio group as a row of cards: [{value, label, hint, picture}], `chosen` checked.
export function choiceGroup(name, legend, options, chosen, describedBy) {
  return h("fieldset", { class: "choices", id: `${name}-choices`, "aria-describedby": describedBy },
    h("legend", {}, legend),
    h("div", { class: "choice-row" },
      options.map((o) =>
        h("label", { class: "choice", title: o.hint || null },
          h("input", { type: "radio", name, value: o.value, checked: o.value === chosen }),
          o.picture, h("span", { class: "choice-name" }, o.label),
          o.hint ? h("span", { class: "choice-hint" }, o.hint) : null,
        ),
      ),
    ),
  );
}

export function chosen(form, name) {
  return form.querySelector(`input[name="${name}"]:checked`)?.value ?? null;
}
