// The upload view: a drop zone and file picker feeding a queue; each file is its own request,
// so each has real progress, its own error and its own cancel.
import { ApiError, upload } from "./api.js";
import { absolute, copyButton, formatBytes, h, icon, kindOf } from "./util.js";

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
    }
    this.update();
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
        statusText.textContent = pct >= 100 ? "Saving…" : `Uploading… ${pct}%`;
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
    this.paint(item);
    this.update();
    const request = upload(item.file, item.send, (loaded) => {
      item.loaded = loaded;
      this.paint(item);
    });
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
    for (const item of [...this.items]) this.remove(item);
  }
}
