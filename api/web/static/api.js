// The JSON API, called with the session cookie. State-changing calls carry the session's
// CSRF token (X-CSRF-Token), which only pages of this origin can read from GET /v1/session.

let csrfToken = null;
let signedOutHandler = () => {};

export class ApiProblem extends Error {
  constructor(status, error = {}, retryAfter = null) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "unknown_error";
    this.reason = error.reason ?? null; // region_unavailable: why the region gate said no
    this.photo = error.photo ?? null; // enrollment: 0-based index of the photo refused
    this.category = error.category ?? null; // prompt_rejected: the moderation category
    this.step = error.step ?? null; // capture_failed: the check of a camera capture that failed
    this.retryAfter = retryAfter ? Number(retryAfter) : null;
  }
}

export function onSignedOut(handler) {
  signedOutHandler = handler;
}

export async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // multipart: the browser sets the boundary
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch (err) {
    throw new ApiProblem(0, { code: "network_error", message: String(err) });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const problem = new ApiProblem(response.status, data?.error, response.headers.get("Retry-After"));
    if (response.status === 401 && path !== "/v1/session") {
      csrfToken = null;
      signedOutHandler();
    }
    throw problem;
  }
  return data;
}

// The signed-in session ({user, csrf_token, expires_at}), or null.
export async function loadSession() {
  try {
    const session = await api("/v1/session");
    csrfToken = session.csrf_token;
    return session;
  } catch (err) {
    if (err instanceof ApiProblem && err.status === 401) return null;
    throw err;
  }
}

export async function signIn(apiKey) {
  const session = await api("/v1/session", { method: "POST", json: { api_key: apiKey } });
  csrfToken = session.csrf_token;
  return session;
}

export async function signOut() {
  try {
    await api("/v1/session", { method: "DELETE" });
  } finally {
    csrfToken = null;
  }
}

// An image's file to save. Downloads are where the visible "Imagined with AI" label will be
// added when provenance marking lands (the server then sends the labelled copy).
export function downloadUrl(imageId) {
  return `/v1/images/${encodeURIComponent(imageId)}?download=true`;
}
