// Big files go through tus (https://tus.io/protocols/resumable-upload), so that a dropped
// connection or a reload costs at most the chunk in flight, not the whole file.
//
// tus-js-client (static/vendor/, see its README) is a classic script that defines window.tus.
// It remembers each upload's URL in localStorage under a fingerprint of the file (name, type,
// size, modification time and endpoint), which is how a file chosen again finds its upload.
import { ApiError, api } from "./api.js";

/** Files above this size go through tus; smaller ones are quicker as one multipart request. */
export const RESUMABLE_ABOVE = 8 * 1024 * 1024;

/** One PATCH per chunk: what a cut connection can cost at most. */
const CHUNK_SIZE = 8 * 1024 * 1024;

/**
 * Waits before each retry, in ms. Any progress starts the list again, so an upload gives up
 * only after about four minutes without a byte getting through.
 */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 30000, 30000, 30000, 30000, 30000];

/** The form's fields that the server takes as tus metadata (see the tus contract). */
const FIELDS = ["title", "description", "alt", "tags", "collection", "visibility", "custom"];

/** Uploads that are running now, so that the browser coming back online can hurry them. */
const running = new Set();

// When the connection comes back, an upload waiting out a long retry delay tries at once.
window.addEventListener("online", () => {
  for (const job of running) job.hurry();
});

/** Whether tus-js-client loaded and this browser can run it. */
export function available() {
  return typeof window.tus !== "undefined" && window.tus.isSupported;
}

/** tus-js-client resolves the Location header against the endpoint, so it must be absolute. */
function endpoint() {
  return new URL("/api/uploads", location.origin).href;
}

function metadataFor(file, fields) {
  const metadata = { filename: file.name };
  if (file.type) metadata.filetype = file.type;
  for (const key of FIELDS) {
    const value = fields[key];
    if (value !== undefined && value !== null && value !== "") metadata[key] = String(value);
  }
  return metadata;
}

/** An ApiError, like the multipart path's, from what tus-js-client reports. */
function apiError(err) {
  const res = err?.originalResponse;
  if (!res) {
    return err?.originalRequest
      ? new ApiError(0, "network", "The connection was lost during the upload.")
      : new ApiError(0, "client", err?.message ?? "The upload failed.");
  }
  const status = res.getStatus();
  let code = "http_" + status;
  let message = status < 300
    ? "The server's answer was not understood."
    : `The server answered ${status}.`;
  try {
    const body = JSON.parse(res.getBody());
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    // Not JSON: keep the status.
  }
  return new ApiError(status, code, message);
}

/** Client errors other than 409 (offset moved) and 423 (locked) will not mend by retrying. */
function worthRetrying(err) {
  const status = err?.originalResponse?.getStatus() ?? 0;
  return !(status >= 400 && status < 500) || status === 409 || status === 423;
}

function wait(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The finished upload's media record; retried like the upload, since the bytes are safe. */
async function recordOf(uploadUrl) {
  const path = new URL(uploadUrl).pathname;
  for (let attempt = 0; ; attempt += 1) {
    try {
      const body = await api("GET", path);
      if (body?.items?.length) return body.items[0];
      throw new ApiError(200, "no_record", "The server did not return the uploaded file.");
    } catch (err) {
      const transient = err.status === 0 || err.status >= 500;
      if (!transient || attempt >= RETRY_DELAYS.length) throw err;
      await wait(RETRY_DELAYS[attempt]);
    }
  }
}

function newest(found) {
  const time = (u) => Date.parse(u.creationTime) || 0;
  return [...found].sort((a, b) => time(b) - time(a))[0] ?? null;
}

/** The newest unfinished upload of this very file that this browser started, or null. */
export async function previousUpload(file) {
  if (!available()) return null;
  const probe = new window.tus.Upload(file, { endpoint: endpoint() });
  return newest(await probe.findPreviousUploads());
}

/**
 * Uploads one file through tus, resuming `previous` (from previousUpload); when that is
 * undefined, it resumes this file's newest unfinished upload if there is one.
 * Returns { promise, abort, stop }: the promise resolves to the created record; abort()
 * cancels and deletes the partial upload on the server; stop() only pauses it, so that it can
 * be resumed later (from this page or after a reload).
 * `onStalled(true)` says the connection is lost and retries are under way; any progress ends it.
 */
export function uploadResumable(file, fields, { previous, onProgress, onStalled }) {
  let upload;
  let retryPending = false;
  let settled = false;
  let rejectWith;
  const job = {
    hurry() {
      if (!retryPending || settled) return;
      retryPending = false;
      upload.abort();
      upload.start();
    },
  };
  const promise = new Promise((resolve, reject) => {
    const finish = (fn) => (value) => {
      if (settled) return;
      settled = true;
      running.delete(job);
      fn(value);
    };
    rejectWith = finish(reject);
    const resolveWith = finish(resolve);
    upload = new window.tus.Upload(file, {
      endpoint: endpoint(),
      // Resuming keeps what the upload was created with, in case it has to start over.
      metadata: previous?.metadata ?? metadataFor(file, fields),
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      // Unlike the default, this keeps retrying while the browser says it is offline: the
      // delays above are how long we wait for it to come back.
      onShouldRetry: (err) => {
        const retry = worthRetrying(err);
        if (retry) {
          retryPending = true;
          onStalled(true);
        }
        return retry;
      },
      onBeforeRequest: () => {
        retryPending = false;
      },
      onProgress: (sent, total) => {
        onStalled(false);
        onProgress(sent, total);
      },
      onError: (err) => rejectWith(apiError(err)),
      onSuccess: () => {
        onStalled(false);
        recordOf(upload.url).then(resolveWith, rejectWith);
      },
    });
    const begin = (from) => {
      if (settled) return;
      if (from) upload.resumeFromPreviousUpload(from);
      running.add(job);
      upload.start();
    };
    if (previous !== undefined) begin(previous);
    else upload.findPreviousUploads().then((found) => begin(newest(found)), () => begin(null));
  });
  return {
    promise,
    abort: () => {
      upload.abort(true).catch(() => {
        // Not deleted now (offline, say): the server lets it expire.
      });
      rejectWith(new ApiError(0, "cancelled", "Cancelled."));
    },
    stop: () => {
      upload.abort(false);
      rejectWith(new ApiError(0, "cancelled", "Cancelled."));
    },
  };
}

/**
 * Uploads this browser started and did not finish, as far as the server still has them:
 * [{ key, name, size, offset, uploadUrl }]. Ones the server no longer knows are forgotten;
 * ones that cannot be checked now are listed with an unknown offset.
 */
export async function unfinishedUploads() {
  if (!available()) return [];
  const storage = window.tus.defaultOptions.urlStorage;
  const base = endpoint() + "/";
  const stored = (await storage.findAllUploads())
    .filter((u) => typeof u.uploadUrl === "string" && u.uploadUrl.startsWith(base));
  const checked = await Promise.all(stored.map(async (u) => {
    const entry = {
      key: u.urlStorageKey,
      name: u.metadata?.filename ?? u.metadata?.name ?? "Unnamed file",
      size: Number(u.size) || 0,
      offset: null,
      uploadUrl: u.uploadUrl,
    };
    let res;
    try {
      res = await fetch(u.uploadUrl, {
        method: "HEAD",
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Tus-Resumable": "1.0.0" },
      });
    } catch {
      return entry;
    }
    // Gone (finished, deleted or expired): nothing to resume. A 404 is also what another
    // user's upload answers; that user loses only the offer, not the file.
    if (res.status === 404 || res.status === 410) {
      await storage.removeUpload(u.urlStorageKey);
      return null;
    }
    if (!res.ok) return entry;
    const offset = Number.parseInt(res.headers.get("Upload-Offset"), 10);
    const length = Number.parseInt(res.headers.get("Upload-Length"), 10);
    if (Number.isFinite(length)) entry.size = length;
    if (Number.isFinite(offset)) entry.offset = offset;
    if (Number.isFinite(offset) && offset === length) {
      // Complete: the file is stored already, only the page did not hear so.
      await storage.removeUpload(u.urlStorageKey);
      return null;
    }
    return entry;
  }));
  return checked.filter(Boolean);
}

/** Deletes an unfinished upload on the server and forgets it. */
export async function discardUpload(entry) {
  try {
    await window.tus.Upload.terminate(entry.uploadUrl, { retryDelays: [0, 1000, 3000] });
  } catch (err) {
    const e = apiError(err);
    if (e.status !== 404 && e.status !== 410) throw e;
  }
  await window.tus.defaultOptions.urlStorage.removeUpload(entry.key);
}
