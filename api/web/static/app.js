// The gallery's shell: session, navigation and a small client-side router over one HTML page.

import { api, loadSession, onSignedOut, signOut } from "./api.js";
import { clear, h } from "./dom.js";
import { forgetAllJobs } from "./jobs.js";
import * as create from "./pages/create.js";
import * as gallery from "./pages/gallery.js";
import * as image from "./pages/image.js";
import * as onboarding from "./pages/onboarding.js";
import * as signin from "./pages/signin.js";

const ROUTES = [
  { pattern: /^\/signin$/, page: signin, public: true },
  { pattern: /^\/onboarding$/, page: onboarding },
  { pattern: /^\/create$/, page: create },
  { pattern: /^\/gallery$/, page: gallery },
  { pattern: /^\/images\/([A-Za-z0-9_-]+)$/, page: image },
  { pattern: /^\/$/, page: { title: "Imagine Me", render: home } },
];

const main = document.getElementById("main");
let session = null;
let cleanup = null;
let flash = null; // a message for the next page, e.g. "Your session has ended"

export function navigate(path, { replace = false, message = null } = {}) {
  flash = message;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return show();
}

async function home() {
  const identities = await api("/v1/identities");
  return navigate(identities.length ? "/create" : "/onboarding", { replace: true });
}

async function show() {
  if (cleanup) cleanup();
  cleanup = null;
  const path = location.pathname;
  const route = ROUTES.find((r) => r.pattern.test(path));
  if (!route) {
    return render({ title: "Not found", render: notFound }, []);
  }
  if (!route.public && !session) {
    // back to the page asked for once signed in
    const next = path === "/" ? "" : `?next=${encodeURIComponent(path + location.search)}`;
    return navigate(`/signin${next}`, { replace: true, message: flash });
  }
  return render(route.page, path.match(route.pattern).slice(1));
}

async function render(page, params) {
  setNav();
  document.title = page.title === "Imagine Me" ? page.title : `${page.title} · Imagine Me`;
  clear(main);
  const context = { params, session, navigate, flash, setSession };
  flash = null;
  try {
    cleanup = (await page.render(main, context)) || null;
  } catch (err) {
    clear(main).append(
      h("h1", { tabindex: "-1" }, "Something went wrong"),
      h("p", { role: "alert" }, err.message || String(err)),
    );
  }
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function notFound(root) {
  root.append(
    h("h1", {}, "Page not found"),
    h("p", {}, `There is no page at ${location.pathname}. It may have moved, or the link may be mistyped.`),
    h("p", {}, h("a", { href: "/" }, "Go to the start page")),
  );
}

function setSession(value) {
  session = value;
  setNav();
}

function setNav() {
  const nav = document.getElementById("nav");
  nav.hidden = !session;
  document.getElementById("who").textContent = session ? `Signed in as ${session.user}` : "";
  for (const link of nav.querySelectorAll("a")) {
    if (link.pathname === location.pathname) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// Same-origin page links go through the router; API, static and download links do not.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (link.origin !== location.origin || link.hasAttribute("download") || link.target) return;
  if (link.pathname.startsWith("/v1/") || link.pathname.startsWith("/static/")) return;
  if (link.getAttribute("href").startsWith("#")) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});

window.addEventListener("popstate", show);

document.getElementById("signout").addEventListener("click", async () => {
  try {
    await signOut();
  } finally {
    forgetAllJobs();
    setSession(null);
    navigate("/signin", { message: "You have signed out." });
  }
});

onSignedOut(() => {
  if (!session) return;
  setSession(null);
  const next = encodeURIComponent(location.pathname + location.search);
  navigate(`/signin?next=${next}`, { message: "Your session has ended. Please sign in again." });
});

session = await loadSession().catch(() => null);
show();
