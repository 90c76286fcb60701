// The collections, in the status view (admin only): each with its setting for S3 uploads, and
// a form to add an empty one. From GET /api/collections; a setting is saved with PUT.
import { ApiError, collections } from "./api.js";
import { formatDate, h, toast } from "./util.js";

const $ = (id) => document.getElementById(id);

export class CollectionsPanel {
  constructor({ onSignedOut }) {
    this.onSignedOut = onSignedOut;
    this.generation = 0;
    $("collection-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.add();
    });
  }

  reset() {
    this.generation += 1;
    $("collections-list").replaceChildren();
    $("collection-form").reset();
    this.error(null);
  }

  error(message) {
    const box = $("collection-error");
    box.hidden = !message;
    box.textContent = message ?? "";
  }

  fail(err, what) {
    if (err instanceof ApiError && err.status === 401) {
      this.onSignedOut();
      return;
    }
    this.error(err instanceof ApiError && err.status === 403
      ? "Only admins can change collections."
      : `${what}: ${err.message}`);
  }

  async load() {
    const generation = ++this.generation;
    try {
      const page = await collections.list();
      if (generation !== this.generation) return;
      this.render(page.items ?? []);
    } catch (err) {
      if (generation !== this.generation) return;
      this.fail(err, "Could not load the collections");
    }
  }

  render(items) {
    const list = $("collections-list");
    if (items.length === 0) {
      list.replaceChildren(h("li", { class: "muted" }, "No collections yet."));
      return;
    }
    list.replaceChildren(...items.map((c) => this.row(c)));
  }

  row(c) {
    const box = h("input", { type: "checkbox", checked: c.public });
    box.addEventListener("change", () => this.save(c, box));
    const since = c.created_at
      ? `Added ${formatDate(c.created_at)}`
      : "Made by its media";
    return h("li", { class: "collection-row", dataset: { name: c.name } },
      h("div", { class: "collection-name" },
        h("a", { href: `/c/${encodeURIComponent(c.name)}`, target: "_blank", rel: "noopener" }, c.name),
        h("span", { class: "muted small" }, since)),
      h("label", { class: "choice" }, box, "Public by default for S3 uploads"));
  }

  async save(c, box) {
    const wanted = box.checked;
    box.disabled = true;
    this.error(null);
    try {
      const saved = await collections.save(c.name, { public: wanted });
      Object.assign(c, saved);
      box.checked = saved.public;
      toast(saved.public
        ? `S3 uploads into “${c.name}” are now public by default`
        : `S3 uploads into “${c.name}” are now private by default`);
    } catch (err) {
      box.checked = !wanted;
      this.fail(err, `Could not save “${c.name}”`);
    } finally {
      box.disabled = false;
    }
  }

  async add() {
    const input = $("collection-name");
    const name = input.value.trim();
    if (!name) {
      this.error("Give the collection a name.");
      input.focus();
      return;
    }
    this.error(null);
    const button = $("collection-add");
    button.disabled = true;
    try {
      const page = await collections.list();
      const known = (page.items ?? []).find((c) => c.name === name);
      // Saving an existing collection keeps its setting; a new one starts private.
      await collections.save(name, { public: known?.public ?? false });
      input.value = "";
      toast(known ? `“${name}” is already a collection` : `Added “${name}”`);
      await this.load();
    } catch (err) {
      this.fail(err, `Could not add “${name}”`);
    } finally {
      button.disabled = false;
    }
  }
}
