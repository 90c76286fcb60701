// Talking to Shoebox: JSON requests with the session cookie, and uploads with real progress.
// The session cookie is HttpOnly, so no token is ever kept by this page.

/** An error from the server (or the network) with a message fit to show a person. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(res) {
  let code = "http_" + res.status;
  let message = res.statusText || `The server answered ${res.status}.`;
  try {
    const body = await res.json();
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    // Not JSON (a proxy's error page, say): keep the status text.
  }
  return new ApiError(res.status, code, message);
}

/** fetch() for the JSON API: resolves to the parsed body (or null for 204), rejects with ApiError. */
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "Could not reach Shoebox. Check your connection and try again.");
  }
  if (!res.ok) throw await errorFrom(res);
  return res.status === 204 ? null : res.json();
}

export const session = {
  current: () => api("GET", "/api/session"),
  signIn: (token) => api("POST", "/api/session", { token }),
  signOut: () => api("DELETE", "/api/session"),
};

export const media = {
  list: (params) => api("GET", "/api/media?" + new URLSearchParams(params)),
  update: (id, fields) => api("PATCH", `/api/media/${encodeURIComponent(id)}`, fields),
  remove: (id) => api("DELETE", `/api/media/${encodeURIComponent(id)}`),
};

export const status = () => api("GET", "/api/status");

/** Collections: anyone lists them; saving a setting (which makes a missing one) is for admins. */
export const collections = {
  list: () => api("GET", "/api/collections"),
  save: (name, fields) => api("PUT", `/api/collections/${encodeURIComponent(name)}`, fields),
};

/** API tokens (admin only). A created token's value is in the creation answer only. */
export const tokens = {
  list: () => api("GET", "/api/tokens"),
  create: (fields) => api("POST", "/api/tokens", fields),
  revoke: (id) => api("DELETE", `/api/tokens/${encodeURIComponent(id)}`),
};

/**
 * Uploads one file with its fields through XMLHttpRequest, whose upload events give real
 * progress. Returns { promise, abort }; the promise resolves to the created record.
 */
export function upload(file, fields, onProgress) {
  const xhr = new XMLHttpRequest();
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null && value !== "") form.append(name, value);
  }
  form.append("file", file, file.name);
  const promise = new Promise((resolve, reject) => {
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // handled below
      }
      if (xhr.status === 201 && body?.items?.length) {
        resolve(body.items[0]);
      } else {
        reject(new ApiError(xhr.status, body?.error?.code ?? "http_" + xhr.status,
          body?.error?.message ?? `The server answered ${xhr.status}.`));
      }
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, "network", "The connection was lost during the upload.")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "cancelled", "Cancelled.")));
    xhr.open("POST", "/api/media");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
