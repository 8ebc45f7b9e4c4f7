// Sign in with an API key; the server answers with a session cookie the page never sees.

import { ApiProblem, signIn } from "../api.js";
import { append, field, h } from "../dom.js";
import { explain } from "../messages.js";

export const title = "Sign in";

export function render(root, { session, navigate, flash, setSession }) {
  if (session) return navigate(nextPage(), { replace: true });
  const key = h("input", { type: "password", name: "api_key", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert", id: "signin-error" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "signin-title" },
    field("api-key", "API key", key, "The key you were given, starting with imk_. It is sent once and exchanged for a sign-in cookie."),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!key.value.trim()) {
      error.textContent = "Enter your API key.";
      key.setAttribute("aria-invalid", "true");
      key.focus();
      return;
    }
    submit.disabled = true;
    try {
      setSession(await signIn(key.value.trim()));
      navigate(nextPage());
    } catch (err) {
      error.textContent = err instanceof ApiProblem ? explain(err) : String(err);
      key.setAttribute("aria-invalid", "true");
      key.focus();
    } finally {
      submit.disabled = false;
    }
  });
  append(root, [
    h("h1", { id: "signin-title" }, "Sign in to Imagine Me"),
    flash ? h("p", { class: "info", role: "status" }, flash) : null,
    h("p", {}, "Imagine Me makes pictures of you from a few photos of your face and a short description."),
    form,
  ]);
}

// The page that sent the visitor here (?next=), if it is a page of this site.
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}
