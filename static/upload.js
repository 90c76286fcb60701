// The upload view: a drop zone and file picker feeding a queue; each file is its own request,
// so each has real progress, its own error and its own cancel. Big files go through tus
// (resumable.js): a lost connection is retried, and after a reload the page offers to resume.
import { ApiError, upload } from "./api.js";
import {
  RESUMABLE_ABOVE,
  available as resumableAvailable,
  discardUpload,
  previousUpload,
  unfinishedUploads,
  uploadResumable,
} from "./resumable.js";
import { absolute, copyButton, formatBytes, h, icon, kindOf, toast } from "./util.js";

const $ = (id) => document.getElementById(id);

/** Files sent at once: enough to keep a connection busy, few enough to finish in order. */
const PARALLEL = 2;

/** A file's own fields; empty ones fall back to the shared ones. */
const PER_FILE = [
  ["title", "Title", "input"],
  ["description", "Description", "textarea"],
  ["alt", "Alt text", "input"],
  ["tags", "Tags (comma separated)", "input"],
  ["collection", "Collection", "input"],
  ["visibility", "Visibility", "select"],
];

function perFileControl(name, tag, id) {
  if (tag === "select") {
    return h("select", { id, name },
      h("option", { value: "" }, "As for every file"),
      h("option", { value: "public" }, "Public"),
      h("option", { value: "private" }, "Private"));
  }
  return h(tag, {
    id,
    name,
    type: tag === "input" ? "text" : undefined,
    rows: tag === "textarea" ? "2" : undefined,
    list: { tags: "known-tags", collection: "known-collections" }[name],
    autocomplete: name === "tags" || name === "collection" ? "off" : undefined,
  });
}

/** A message for a failed upload that says what to do next. */
function explain(err, limit) {
  switch (err.code === "network" ? "network" : err.status) {
    case 413:
      return `Too large: this server accepts files up to ${formatBytes(limit)}.`;
    case 415:
      return `This type of file is not allowed. ${err.message}`;
    case 507:
      return "The server's disk is full. Free some space, then retry.";
    case 401:
      return "Your session has ended. Sign in again, then retry.";
    case 404:
      // Only resumable uploads meet this: deleted, expired, or never this user's.
      return "The server no longer has this upload. Retry to send the file again.";
    case "network":
      return "The network connection was lost. Check your connection, then retry.";
    default:
      return err.message || "The upload failed.";
  }
}

let nextId = 1;

export class Uploader {
  constructor({ onUploaded, onSignedOut }) {
    this.items = [];
    this.limit = 0;
    /** Unfinished resumable uploads from before a reload: see restore(). */
    this.unfinished = [];
    this.onUploaded = onUploaded;
    this.onSignedOut = onSignedOut;
    this.queue = $("queue");

    const input = $("file-input");
    input.addEventListener("change", () => {
      this.add(input.files);
      input.value = "";
    });
    const zone = $("dropzone");
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => {
        e.preventDefault();
        zone.classList.add("dragging");
      });
    }
    for (const type of ["dragleave", "drop"]) {
      zone.addEventListener(type, () => zone.classList.remove("dragging"));
    }
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      this.add(e.dataTransfer.files);
    });
    // A file dropped beside the zone should not replace the page.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    $("start-upload").addEventListener("click", () => this.start());
    $("clear-finished").addEventListener("click", () => this.clearFinished());
  }

  setLimit(bytes) {
    this.limit = bytes ?? 0;
  }

  add(files) {
    for (const file of files) {
      const item = { id: nextId++, file, state: "ready", fields: {}, error: "", loaded: 0 };
      if (this.limit && file.size > this.limit) {
        item.state = "error";
        item.error = `Too large: this server accepts files up to ${formatBytes(this.limit)}.`;
      }
      item.el = this.render(item);
      this.items.push(item);
      this.queue.append(item.el);
      if (item.state === "ready" && this.resumable(item)) this.resumeIfKnown(item);
    }
    this.update();
  }

  /** Whether a file goes through tus rather than one multipart request. */
  resumable(item) {
    return item.file.size > RESUMABLE_ABOVE && resumableAvailable();
  }

  /** A file this browser was uploading before, chosen again, carries on at once. */
  async resumeIfKnown(item) {
    let previous = null;
    try {
      previous = await previousUpload(item.file);
    } catch {
      // No storage (private mode, say): it is simply a new upload.
    }
    if (!previous || item.state !== "ready" || !this.items.includes(item)) return;
    item.previous = previous;
    // The server has its fields from when it was created.
    item.send = {};
    item.resuming = true;
    item.state = "waiting";
    this.forget(previous.urlStorageKey);
    this.paint(item);
    this.update();
    this.pump();
  }

  shared() {
    const form = $("shared-fields");
    const data = new FormData(form);
    return Object.fromEntries(data.entries());
  }

  render(item) {
    const { file } = item;
    const kind = kindOf(file.type);
    const thumb = h("div", { class: `thumb kind-${kind}` });
    if (kind === "image" && file.size < 50_000_000) {
      const url = URL.createObjectURL(file);
      const img = h("img", { src: url, alt: "" });
      img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
      img.addEventListener("error", () => {
        URL.revokeObjectURL(url);
        img.replaceWith(icon(kind));
      }, { once: true });
      thumb.append(img);
    } else {
      thumb.append(icon(kind));
    }

    const progress = h("progress", { max: "100", value: "0", "aria-label": `Progress of ${file.name}` });
    const statusText = h("span", { class: "item-status" });
    const actions = h("div", { class: "item-actions" });
    const result = h("div", { class: "item-result" });
    const detailsId = `file-fields-${item.id}`;
    const toggle = h("button", {
      type: "button",
      class: "button subtle small",
      "aria-expanded": "false",
      "aria-controls": detailsId,
    }, "Details");
    const panel = h("div", { class: "item-fields", id: detailsId, hidden: true },
      PER_FILE.map(([name, label, tag]) => {
        const id = `file-${item.id}-${name}`;
        const control = perFileControl(name, tag, id);
        const keep = () => {
          item.fields[name] = control.value;
        };
        control.addEventListener("input", keep);
        control.addEventListener("change", keep);
        return h("div", { class: "field" }, h("label", { for: id }, label), control);
      }));
    toggle.addEventListener("click", () => {
      const open = panel.hidden;
      panel.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
    });

    const el = h("li", { class: "upload-item", dataset: { state: item.state } },
      thumb,
      h("div", { class: "item-main" },
        h("div", { class: "item-line" },
          h("span", { class: "item-name", title: file.name }, file.name),
          h("span", { class: "item-size" }, formatBytes(file.size))),
        progress,
        h("div", { class: "item-line" }, statusText, actions),
        result,
        panel));
    Object.assign(item, { progress, statusText, actions, result, toggle, panel });
    this.paint(item);
    return el;
  }

  /** Brings one row in line with its item's state. */
  paint(item) {
    const { el, progress, statusText, actions } = item;
    if (el) el.dataset.state = item.state;
    statusText.classList.toggle("error", item.state === "error");
    // Buttons are rebuilt only when the state changes, so progress never steals their focus.
    const rebuild = item.shown !== item.state;
    item.shown = item.state;
    if (rebuild) actions.replaceChildren();
    const add = (...nodes) => rebuild && actions.append(...nodes);
    const button = (label, onclick, cls = "button subtle small") =>
      h("button", { type: "button", class: cls, onclick }, label);
    switch (item.state) {
      case "ready":
        progress.value = 0;
        statusText.textContent = "Ready";
        add(item.toggle, button("Remove", () => this.remove(item)));
        break;
      case "waiting":
        statusText.textContent = "Waiting…";
        add(button("Cancel", () => this.cancel(item)));
        break;
      case "uploading": {
        const pct = item.file.size ? Math.floor((item.loaded / item.file.size) * 100) : 0;
        progress.value = Math.min(pct, 100);
        if (item.stalled) statusText.textContent = `Connection lost: retrying… ${pct}%`;
        else if (pct >= 100) statusText.textContent = "Saving…";
        else if (item.resuming && item.loaded === 0) statusText.textContent = "Resuming…";
        else statusText.textContent = `Uploading… ${pct}%`;
        add(button("Cancel", () => this.cancel(item)));
        break;
      }
      case "done":
        progress.value = 100;
        statusText.textContent = "Done";
        add(button("Remove", () => this.remove(item)));
        break;
      case "error":
        statusText.textContent = item.error;
        if (!(this.limit && item.file.size > this.limit)) {
          add(button("Retry", () => this.retry(item)));
        }
        add(button("Remove", () => this.remove(item)));
        break;
      case "cancelled":
        progress.value = 0;
        statusText.textContent = "Cancelled";
        add(button("Retry", () => this.retry(item)), button("Remove", () => this.remove(item)));
        break;
    }
    if (item.state === "done" && item.record && !item.result.hasChildNodes()) {
      const link = absolute(item.record.url);
      const input = h("input", { type: "text", readonly: true, value: link, "aria-label": `Link to ${item.file.name}` });
      item.result.append(input, copyButton(() => link, input),
        h("a", { class: "button subtle small", href: link, target: "_blank", rel: "noopener" }, icon("external"), "Open"));
    }
    if (item.state !== "ready") {
      item.panel.hidden = true;
      item.toggle.setAttribute("aria-expanded", "false");
    }
  }

  update() {
    const counts = { ready: 0, waiting: 0, uploading: 0, done: 0, error: 0, cancelled: 0 };
    for (const item of this.items) counts[item.state] += 1;
    $("queue-bar").hidden = this.items.length === 0;
    const start = $("start-upload");
    start.hidden = counts.ready === 0;
    start.textContent = counts.ready > 0
      ? `Upload ${counts.ready} ${counts.ready === 1 ? "file" : "files"}`
      : "Upload";
    const parts = [];
    if (counts.uploading + counts.waiting) parts.push(`${counts.uploading + counts.waiting} uploading`);
    if (counts.done) parts.push(`${counts.done} done`);
    if (counts.error) parts.push(`${counts.error} failed`);
    if (counts.ready) parts.push(`${counts.ready} ready`);
    if (counts.cancelled) parts.push(`${counts.cancelled} cancelled`);
    $("queue-summary").textContent = parts.join(" · ");
    $("clear-finished").hidden = counts.done + counts.error + counts.cancelled === 0;
  }

  start() {
    const shared = this.shared();
    for (const item of this.items) {
      if (item.state !== "ready") continue;
      // A file's own non-empty fields win over the shared ones.
      const own = Object.fromEntries(Object.entries(item.fields).filter(([, v]) => v.trim() !== ""));
      item.send = { ...shared, ...own };
      item.state = "waiting";
      this.paint(item);
    }
    this.update();
    this.pump();
  }

  pump() {
    let active = this.items.filter((i) => i.state === "uploading").length;
    for (const item of this.items) {
      if (active >= PARALLEL) break;
      if (item.state !== "waiting") continue;
      active += 1;
      this.send(item);
    }
  }

  async send(item) {
    item.state = "uploading";
    item.loaded = 0;
    item.stalled = false;
    this.paint(item);
    this.update();
    const onProgress = (loaded) => {
      item.loaded = loaded;
      this.paint(item);
    };
    let request;
    if (this.resumable(item)) {
      request = uploadResumable(item.file, item.send, {
        // Unset (a retry, say): it looks for an unfinished upload of this file itself.
        previous: item.previous,
        onProgress,
        onStalled: (stalled) => {
          if (item.stalled === stalled) return;
          item.stalled = stalled;
          if (item.state === "uploading") this.paint(item);
        },
      });
      // Pausing (on sign-out) keeps the upload on the server, to be resumed later.
      item.stop = () => {
        item.abort = null;
        item.stop = null;
        request.stop();
      };
    } else {
      request = upload(item.file, item.send, onProgress);
    }
    item.previous = undefined;
    item.abort = request.abort;
    try {
      item.record = await request.promise;
      item.state = "done";
      this.onUploaded(item.record);
    } catch (err) {
      if (err instanceof ApiError && err.code === "cancelled") {
        item.state = "cancelled";
      } else {
        item.state = "error";
        item.error = explain(err, this.limit);
        if (err.status === 401) this.onSignedOut();
      }
    }
    item.abort = null;
    item.stop = null;
    item.stalled = false;
    item.resuming = false;
    this.paint(item);
    this.update();
    this.pump();
  }

  cancel(item) {
    if (item.abort) {
      item.abort();
    } else if (item.state === "waiting") {
      item.state = "cancelled";
      this.paint(item);
      this.update();
    }
  }

  retry(item) {
    item.state = "waiting";
    item.error = "";
    if (!item.send) item.send = this.shared();
    this.paint(item);
    this.update();
    this.pump();
  }

  remove(item) {
    this.cancel(item);
    item.el.remove();
    this.items = this.items.filter((i) => i !== item);
    this.update();
  }

  clearFinished() {
    for (const item of [...this.items]) {
      if (["done", "error", "cancelled"].includes(item.state)) this.remove(item);
    }
  }

  cancelAll() {
    // Big uploads are paused, not deleted: after signing in again they can be resumed.
    for (const item of this.items) item.stop?.();
    for (const item of [...this.items]) this.remove(item);
    this.unfinished = [];
    this.paintNotice();
  }

  /**
   * Offers to resume the uploads this browser left unfinished (a reload, a closed tab). A page
   * cannot reopen a file by itself, so the notice asks for the same file again; choosing it
   * resumes where the server stopped. Each can also be discarded.
   */
  async restore() {
    try {
      this.unfinished = await unfinishedUploads();
    } catch {
      this.unfinished = [];
    }
    // Files chosen meanwhile may have resumed some already.
    const resumed = new Set(this.items.map((i) => i.resumedKey).filter(Boolean));
    this.unfinished = this.unfinished.filter((e) => !resumed.has(e.key));
    this.paintNotice();
  }

  forget(key) {
    this.unfinished = this.unfinished.filter((e) => e.key !== key);
    for (const item of this.items) if (item.previous?.urlStorageKey === key) item.resumedKey = key;
    this.paintNotice();
  }

  paintNotice() {
    $("resume-notice").hidden = this.unfinished.length === 0;
    $("resume-list").replaceChildren(...this.unfinished.map((entry) => this.noticeRow(entry)));
  }

  noticeRow(entry) {
    const pct = entry.offset !== null && entry.size
      ? Math.floor((entry.offset / entry.size) * 100)
      : null;
    const done = pct === null ? "Progress unknown" : `${pct}% done`;
    const status = h("span", { class: "item-status" }, done);
    const choose = h("button", {
      type: "button",
      class: "button subtle small",
      onclick: () => $("file-input").click(),
    }, "Choose file");
    const discard = h("button", { type: "button", class: "button subtle small" }, "Discard");
    discard.addEventListener("click", async () => {
      discard.disabled = true;
      choose.disabled = true;
      status.classList.remove("error");
      status.textContent = "Discarding…";
      try {
        await discardUpload(entry);
        this.forget(entry.key);
        toast(`Discarded the unfinished upload of ${entry.name}.`);
      } catch (err) {
        status.classList.add("error");
        status.textContent = explain(err, this.limit);
        discard.disabled = false;
        choose.disabled = false;
        if (err.status === 401) this.onSignedOut();
      }
    });
    return h("li", { class: "resume-item", dataset: { key: entry.key } },
      h("div", { class: "item-line" },
        h("span", { class: "item-name", title: entry.name }, entry.name),
        h("span", { class: "item-size" }, formatBytes(entry.size))),
      h("div", { class: "item-line" }, status, h("div", { class: "item-actions" }, choose, discard)));
  }
}
