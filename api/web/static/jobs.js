// The generations started in this browser tab, newest first, so that Create shows every one
// of them (with its own progress) however the user got there: Create, "More like this", or
// coming back from another page. Only ids are kept; the server has the rest.

const KEY = "imagine.jobs";
const KEEP = 12;

export function rememberedJobs() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(KEY) || "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

export function rememberJob(id) {
  const ids = [id, ...rememberedJobs().filter((other) => other !== id)].slice(0, KEEP);
  sessionStorage.setItem(KEY, JSON.stringify(ids));
}

export function forgetJob(id) {
  sessionStorage.setItem(KEY, JSON.stringify(rememberedJobs().filter((other) => other !== id)));
}

export function forgetAllJobs() {
  sessionStorage.removeItem(KEY);
}
