// The gallery: newest first, filtered, loaded page by page as you scroll; a details dialog to
// edit or delete one item.
import { ApiError, media } from "./api.js";
import {
  absolute, copyButton, debounce, extensionOf, formatBytes, formatDate, h, icon, toast,
} from "./util.js";

const $ = (id) => document.getElementById(id);
const PAGE = 30;

/** The details dialog's text fields, read-only for records this session may not change. */
const EDITABLE = ["details-title", "details-description", "details-alt", "details-tags", "details-collection"];

/** Remembers collections and tags seen, to suggest them in the inputs. */
const known = { collections: new Set(), tags: new Set() };

function remember(record) {
  let changed = false;
  if (record.collection && !known.collections.has(record.collection)) {
    known.collections.add(record.collection);
    changed = true;
  }
  for (const tag of record.tags ?? []) {
    if (!known.tags.has(tag)) {
      known.tags.add(tag);
      changed = true;
    }
  }
  if (!changed) return;
  const fill = (id, values) =>
    $(id).replaceChildren(...[...values].sort().map((v) => h("option", { value: v })));
  fill("known-collections", known.collections);
  fill("known-tags", known.tags);
}

function displayName(record) {
  return record.title || record.filename || "Untitled";
}

/** Image types a browser shows as they are, which the server makes no variants of. */
const SHOWN_AS_IS = new Set([
  "image/svg+xml", "image/avif", "image/bmp", "image/x-icon", "image/vnd.microsoft.icon",
]);

/**
 * The preview that fits the kind: picture, player, or a document card. Pictures come as
 * variants the server sizes (`srcset`), a tile's worth in the grid, up to 1280 pixels wide in
 * the details dialog; the original is only fetched when asked for.
 */
function preview(record, { large = false } = {}) {
  const url = record.url;
  switch (record.kind) {
    case "image":
      // A picture with no variants that browsers cannot show either (HEIC, TIFF): a neutral
      // tile, rather than downloading the original to find out.
      if (!record.thumbnail_url && !SHOWN_AS_IS.has(record.content_type)) {
        return h("div", { class: "audio-preview" }, icon("image", "icon big"));
      }
      return h("img", {
        src: record.thumbnail_url || url,
        srcset: record.srcset,
        sizes: large ? "(max-width: 1280px) 100vw, 1280px" : "(max-width: 600px) 50vw, 320px",
        // A picture the server cannot size (or the browser cannot show) becomes a neutral tile.
        onerror: (event) => event.target.replaceWith(icon("image", "icon big")),
        alt: record.alt || "",
        loading: "lazy",
        decoding: "async",
        width: record.width,
        height: record.height,
      });
    case "video":
      return h("video", {
        src: url, poster: record.poster_url, controls: true, preload: "metadata", playsinline: true,
      });
    case "audio":
      return h("div", { class: "audio-preview" }, icon("audio", "icon big"),
        h("audio", { src: url, controls: true, preload: "metadata" }));
    default:
      return h("a", { class: "doc-preview", href: `${url}?download=1`, download: record.filename || true },
        h("span", { class: "doc-icon" }, extensionOf(record.filename)),
        h("span", { class: "doc-label" }, icon("download"), `Download ${formatBytes(record.size)}`));
  }
}

export class Gallery {
  constructor({ onSignedOut }) {
    this.onSignedOut = onSignedOut;
    this.records = new Map();
    this.cursor = null;
    this.loading = false;
    this.loaded = false;
    this.stale = true;
    this.generation = 0;
    this.grid = $("grid");
    this.role = null;
    this.scope = null;
    this.details = new Details(this);

    const filters = $("filters");
    // Typing fires "input", leaving the field fires "change": reload only when the filters
    // really changed, so a late "change" does not rebuild the grid under the user.
    const refilter = debounce(() => {
      if (JSON.stringify(this.filters()) !== this.shown) this.reload();
    }, 250);
    filters.addEventListener("input", refilter);
    filters.addEventListener("change", refilter);
    filters.addEventListener("submit", (e) => {
      e.preventDefault();
      this.reload();
    });
    $("load-more").addEventListener("click", () => this.more());
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !$("view-gallery").hidden) this.more();
    }, { rootMargin: "600px" });
    this.observer.observe($("gallery-sentinel"));
  }

  /** Called when the view is shown: reload only when something changed. */
  open() {
    if (this.stale) this.reload();
  }

  markStale() {
    this.stale = true;
    if (!$("view-gallery").hidden) this.reload();
  }

  reset() {
    this.records.clear();
    this.grid.replaceChildren();
    this.stale = true;
  }

  /** Who is signed in: the session's role ("admin", "token_<id>") and scope. */
  setSession(role, scope) {
    if (role !== this.role || scope !== this.scope) this.reset();
    this.role = role;
    this.scope = scope;
  }

  /**
   * Whether this session may change a record, as the server decides: admins change anything,
   * upload tokens only what they uploaded (the record's owner is the token's id).
   */
  canEdit(record) {
    if (this.scope === "admin") return true;
    return this.scope === "upload" && !!record.owner && this.role === `token_${record.owner}`;
  }

  filters() {
    const params = {};
    for (const [key, value] of new FormData($("filters")).entries()) {
      if (value.trim()) params[key] = value.trim();
    }
    return params;
  }

  async reload() {
    this.stale = false;
    this.shown = JSON.stringify(this.filters());
    this.generation += 1;
    this.cursor = null;
    this.loaded = false;
    this.records.clear();
    this.grid.replaceChildren();
    this.grid.setAttribute("aria-busy", "true");
    await this.fetchPage();
  }

  more() {
    if (!this.loading && !this.loaded && this.cursor) this.fetchPage();
  }

  async fetchPage() {
    const generation = this.generation;
    this.loading = true;
    $("load-more").hidden = true;
    $("gallery-error").hidden = true;
    const params = { ...this.filters(), limit: String(PAGE) };
    if (this.cursor) params.cursor = this.cursor;
    try {
      const page = await media.list(params);
      // A newer search started while this one was in flight: drop this answer.
      if (generation !== this.generation) return;
      for (const record of page.items) this.add(record);
      this.cursor = page.next_cursor;
      this.loaded = !page.next_cursor;
      this.showState();
      // The observer fires only when the sentinel comes into view; if a short page left it in
      // view, keep going.
      const sentinel = $("gallery-sentinel").getBoundingClientRect();
      if (!this.loaded && !$("view-gallery").hidden && sentinel.top < window.innerHeight + 600) {
        setTimeout(() => this.more(), 0);
      }
    } catch (err) {
      if (generation !== this.generation) return;
      if (err instanceof ApiError && err.status === 401) {
        this.onSignedOut();
        return;
      }
      const box = $("gallery-error");
      box.textContent = `Could not load the gallery: ${err.message}`;
      box.hidden = false;
      $("load-more").hidden = false;
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.grid.removeAttribute("aria-busy");
      }
    }
  }

  showState() {
    const count = this.records.size;
    const filtered = Object.keys(this.filters()).length > 0;
    $("gallery-count").textContent = count === 0
      ? ""
      : `${count}${this.loaded ? "" : "+"} ${count === 1 ? "item" : "items"}${filtered ? " match" : ""}`;
    const empty = $("gallery-empty");
    empty.hidden = count > 0;
    if (count === 0) {
      empty.replaceChildren(filtered
        ? h("p", {}, "Nothing matches these filters.")
        : h("div", {}, icon("image", "icon big"),
          h("p", { class: "empty-title" }, "Nothing here yet"),
          h("p", { class: "muted" }, "Files you upload appear here, newest first."),
          this.scope === "read" ? null : h("a", { class: "button primary", href: "#upload" }, "Upload files")));
    }
    $("load-more").hidden = this.loaded;
  }

  card(record) {
    const open = () => this.details.open(record.id);
    const top = record.kind === "image"
      // The title button is the keyboard's way in; the picture is a larger target for pointers.
      ? h("button", { type: "button", class: "card-preview", onclick: open, tabindex: "-1", "aria-label": `Open ${displayName(record)}` }, preview(record))
      : h("div", { class: "card-preview" }, preview(record));
    const badges = [];
    if (record.visibility === "private") {
      badges.push(h("span", { class: "badge private", title: "Private" }, icon("lock"), "Private"));
    }
    if (record.collection) badges.push(h("span", { class: "badge" }, record.collection));
    return h("li", { class: `card kind-${record.kind}`, dataset: { id: record.id } },
      top,
      h("div", { class: "card-body" },
        h("button", { type: "button", class: "card-title", onclick: open }, displayName(record)),
        h("p", { class: "card-meta" },
          h("span", {}, formatBytes(record.size)),
          h("span", { "aria-hidden": "true" }, "·"),
          h("time", { datetime: record.created_at }, formatDate(record.created_at))),
        badges.length ? h("div", { class: "card-badges" }, badges) : null,
        this.canEdit(record)
          ? h("button", { type: "button", class: "card-edit icon-button", onclick: open, tabindex: "-1", "aria-label": `Edit ${displayName(record)}` }, icon("edit"))
          : null));
  }

  add(record) {
    if (this.records.has(record.id)) return;
    this.records.set(record.id, record);
    remember(record);
    this.grid.append(this.card(record));
  }

  replace(record) {
    this.records.set(record.id, record);
    remember(record);
    const old = this.grid.querySelector(`[data-id="${CSS.escape(record.id)}"]`);
    if (old) old.replaceWith(this.card(record));
  }

  removeRecord(id) {
    this.records.delete(id);
    this.grid.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
    this.showState();
  }
}

/** The details dialog: edit the fields of one record, copy its link, delete it. */
class Details {
  constructor(gallery) {
    this.gallery = gallery;
    this.dialog = $("details");
    this.form = $("details-form");
    this.record = null;
    this.editable = false;
    this.opener = null;
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    $("details-close").addEventListener("click", () => this.close());
    this.dialog.addEventListener("close", () => this.closed());
    // A click on the backdrop (the dialog itself, outside the form) closes it.
    this.dialog.addEventListener("click", (e) => {
      if (e.target === this.dialog) this.close();
    });
    $("details-delete").addEventListener("click", () => this.askDelete());
    $("confirm-cancel").addEventListener("click", () => this.cancelDelete());
    $("confirm-yes").addEventListener("click", () => this.remove());
  }

  open(id) {
    const record = this.gallery.records.get(id);
    if (!record) return;
    this.record = record;
    this.opener = document.activeElement;
    const link = absolute(record.url);
    $("details-heading").textContent = displayName(record);
    $("details-meta").textContent = [
      record.filename, formatBytes(record.size), record.content_type,
      record.width && record.height ? `${record.width} × ${record.height}` : null,
      `added ${formatDate(record.created_at, true)}`,
      record.stripped?.length ? `removed: ${record.stripped.join(", ")}` : null,
    ].filter(Boolean).join(" · ");
    $("details-preview").replaceChildren(preview(record, { large: true }));
    $("details-original").href = record.url;
    const linkInput = $("details-link");
    linkInput.value = link;
    $("details-copy").replaceChildren(copyButton(() => link, linkInput, "Copy"));
    $("details-download").href = `${record.url}?download=1`;
    $("details-title").value = record.title;
    $("details-description").value = record.description;
    $("details-alt").value = record.alt;
    $("details-tags").value = (record.tags ?? []).join(", ");
    $("details-collection").value = record.collection ?? "";
    for (const radio of this.form.elements.visibility) radio.checked = radio.value === record.visibility;
    this.editable = this.gallery.canEdit(record);
    // Fields stay readable and selectable when they cannot be changed.
    for (const id of EDITABLE) $(id).readOnly = !this.editable;
    for (const radio of this.form.elements.visibility) radio.disabled = !this.editable;
    const note = $("details-readonly");
    note.hidden = this.editable;
    note.textContent = this.gallery.scope === "upload"
      ? "Uploaded by someone else: you can view, copy and download it, but not change or delete it."
      : "Your token can read media but not change or delete it.";
    $("details-error").hidden = true;
    $("confirm-delete").hidden = true;
    this.busy(false);
    this.dialog.showModal();
    if (this.editable) {
      $("details-title").focus();
    } else {
      // Nothing to change: start on the link, shown from its beginning.
      linkInput.focus();
      linkInput.setSelectionRange(0, 0);
      linkInput.scrollLeft = 0;
    }
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  closed() {
    // Stop a playing video or song when its dialog goes away.
    $("details-preview").replaceChildren();
    if (this.opener && document.contains(this.opener)) this.opener.focus();
    this.record = null;
  }

  busy(on) {
    for (const id of ["details-save", "details-delete", "confirm-yes"]) {
      $(id).disabled = on || !this.editable;
    }
  }

  fail(err) {
    if (err instanceof ApiError && err.status === 401) {
      this.close();
      this.gallery.onSignedOut();
      return;
    }
    const box = $("details-error");
    box.textContent = err.message;
    box.hidden = false;
  }

  async save() {
    const record = this.record;
    if (!record || !this.editable) return;
    const collection = $("details-collection").value.trim();
    const fields = {
      title: $("details-title").value,
      description: $("details-description").value,
      alt: $("details-alt").value,
      tags: $("details-tags").value.split(",").map((t) => t.trim()).filter(Boolean),
      collection: collection || null,
      visibility: this.form.elements.visibility.value || record.visibility,
    };
    this.busy(true);
    $("details-error").hidden = true;
    try {
      const updated = await media.update(record.id, fields);
      this.gallery.replace(updated);
      this.opener = this.gallery.grid.querySelector(`[data-id="${CSS.escape(updated.id)}"] .card-title`);
      this.close();
      toast("Saved");
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy(false);
    }
  }

  askDelete() {
    const record = this.record;
    if (!record || !this.editable) return;
    $("confirm-text").textContent =
      `Delete “${displayName(record)}”? Its link stops working and this cannot be undone.`;
    $("confirm-delete").hidden = false;
    $("confirm-cancel").focus();
  }

  cancelDelete() {
    $("confirm-delete").hidden = true;
    $("details-delete").focus();
  }

  async remove() {
    const record = this.record;
    if (!record || !this.editable) return;
    this.busy(true);
    try {
      await media.remove(record.id);
      this.gallery.removeRecord(record.id);
      this.opener = $("filter-q");
      this.close();
      toast("Deleted");
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy(false);
    }
  }
}
