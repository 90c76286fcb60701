// The tokens view (admins only): every API token with its scope and state, a form that creates
// one (with S3 credentials if asked) and shows its value once, and revoking with a confirmation.
import { ApiError, tokens } from "./api.js";
import { copyButton, formatDate, h, toast } from "./util.js";

const $ = (id) => document.getElementById(id);

const MAX_DAYS = 3650;

const SCOPES = {
  upload: {
    label: "Upload",
    hint: "Uploads, and edits or deletes only what it uploaded. For apps and people who add media.",
  },
  read: {
    label: "Read",
    hint: "Sees and downloads private media; changes nothing.",
  },
  admin: {
    label: "Admin",
    hint: "Everything the admin token can do, managing tokens included.",
  },
};

const STATES = {
  active: { label: "Active", pill: "pill ok" },
  expired: { label: "Expired", pill: "pill" },
  revoked: { label: "Revoked", pill: "pill bad" },
};

/** "active", "expired" or "revoked", as of now. */
function stateOf(token, now = Date.now()) {
  if (token.revoked_at) return "revoked";
  if (token.expires_at && new Date(token.expires_at).getTime() <= now) return "expired";
  return "active";
}

function when(iso) {
  return h("time", { datetime: iso, title: formatDate(iso, true) }, formatDate(iso));
}

export class TokensPanel {
  constructor({ onSignedOut }) {
    this.onSignedOut = onSignedOut;
    this.items = [];
    this.generation = 0;
    this.pending = null;
    this.opener = null;

    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.create();
    });
    $("token-scope").addEventListener("change", () => this.hint());
    $("token-reveal-done").addEventListener("click", () => this.hideReveal(true));
    $("revoke-cancel").addEventListener("click", () => $("revoke-dialog").close());
    $("revoke-yes").addEventListener("click", () => this.revoke());
    $("revoke-dialog").addEventListener("close", () => this.revokeClosed());
    this.hint();
  }

  /** Forgets everything shown, the new token's value above all (on sign-out). */
  reset() {
    this.generation += 1;
    this.items = [];
    this.hideReveal(false);
    $("token-form").reset();
    this.hint();
    this.formError(null);
    $("tokens-list").replaceChildren();
    $("tokens-count").textContent = "";
    $("tokens-error").hidden = true;
    if ($("revoke-dialog").open) $("revoke-dialog").close();
  }

  hint() {
    $("token-scope-hint").textContent = SCOPES[$("token-scope").value]?.hint ?? "";
  }

  fail(err, box) {
    if (err instanceof ApiError && err.status === 401) {
      this.onSignedOut();
      return;
    }
    box.textContent = err instanceof ApiError && err.status === 403
      ? "Only admins can manage tokens."
      : err.message;
    box.hidden = false;
  }

  async load() {
    const generation = ++this.generation;
    const list = $("tokens-list");
    if (!list.hasChildNodes()) list.append(h("p", { class: "muted" }, "Loading…"));
    $("tokens-error").hidden = true;
    try {
      const page = await tokens.list();
      if (generation !== this.generation) return;
      this.items = page.items ?? [];
      this.render();
    } catch (err) {
      if (generation !== this.generation) return;
      list.replaceChildren();
      const box = $("tokens-error");
      this.fail(err, box);
      if (!box.hidden) box.textContent = `Could not load the tokens: ${box.textContent}`;
    }
  }

  render() {
    const items = [...this.items].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
    const active = items.filter((t) => stateOf(t) === "active").length;
    $("tokens-count").textContent = items.length === 0
      ? ""
      : `${items.length} ${items.length === 1 ? "token" : "tokens"} · ${active} active`;
    const list = $("tokens-list");
    if (items.length === 0) {
      list.replaceChildren(h("div", { class: "empty" },
        h("p", { class: "empty-title" }, "No tokens yet"),
        h("p", { class: "muted" },
          "Create one for each app or person that uploads, so that each can be revoked on its own.")));
      return;
    }
    list.replaceChildren(h("table", { class: "token-table" },
      h("caption", { class: "visually-hidden" }, "API tokens, newest first"),
      h("thead", {}, h("tr", {},
        ["Name", "Scope", "Created", "Expires", "Status"].map((c) => h("th", { scope: "col" }, c)),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, items.map((t) => this.row(t)))));
  }

  row(t) {
    const state = stateOf(t);
    const scope = SCOPES[t.scope]?.label ?? t.scope;
    const revoke = state === "active"
      ? h("button", {
        type: "button",
        class: "button danger-subtle small",
        "aria-label": `Revoke ${t.name}`,
        onclick: (e) => this.askRevoke(t, e.currentTarget),
      }, "Revoke")
      : null;
    // Cells hold a div each: a cell that is itself a grid or flex box stops being a cell.
    return h("tr", { class: `token-row state-${state}`, dataset: { id: t.id, state } },
      h("th", { scope: "row", class: "token-name" },
        h("div", {},
          h("span", { class: "token-title" }, t.name),
          h("span", { class: "token-id mono", title: "Token id: the owner of the media it uploads" }, t.id),
          t.access_key_id
            ? h("span", { class: "token-key", title: "S3 access key id" },
              h("span", { class: "badge" }, "S3"), h("span", { class: "mono" }, t.access_key_id))
            : null)),
      h("td", { class: "token-field", "data-label": "Scope" },
        h("div", {}, h("span", { class: `badge scope-${t.scope}` }, scope))),
      h("td", { class: "token-field", "data-label": "Created" }, h("div", {}, when(t.created_at))),
      h("td", { class: "token-field", "data-label": "Expires" },
        h("div", {}, t.expires_at ? when(t.expires_at) : h("span", { class: "muted" }, "Never"))),
      h("td", { class: "token-state" },
        h("div", {},
          h("span", { class: STATES[state].pill }, STATES[state].label),
          state === "revoked" ? h("span", { class: "token-since muted" }, when(t.revoked_at)) : null)),
      h("td", { class: "token-actions" }, revoke));
  }

  formError(message, field) {
    const box = $("token-form-error");
    box.hidden = !message;
    box.textContent = message ?? "";
    for (const id of ["token-name", "token-expiry"]) {
      if (id === field) $(id).setAttribute("aria-invalid", "true");
      else $(id).removeAttribute("aria-invalid");
    }
    if (field) $(field).focus();
  }

  async create() {
    const name = $("token-name").value.trim();
    const days = $("token-expiry").value.trim();
    if (!name) {
      this.formError("Give the token a name, such as the app or person that will use it.", "token-name");
      return;
    }
    const body = { name, scope: $("token-scope").value };
    if ($("token-s3").checked) body.s3 = true;
    if (days) {
      const n = Number(days);
      if (!Number.isInteger(n) || n < 1 || n > MAX_DAYS) {
        this.formError(`Expiry is a whole number of days from 1 to ${MAX_DAYS}, or empty for never.`, "token-expiry");
        return;
      }
      body.expires_in_days = n;
    }
    this.formError(null);
    const button = $("token-create");
    button.disabled = true;
    button.textContent = "Creating…";
    try {
      const created = await tokens.create(body);
      const { token: value, secret_access_key: secret, ...listed } = created;
      this.items.push(listed);
      this.render();
      $("token-name").value = "";
      $("token-expiry").value = "";
      $("token-s3").checked = false;
      this.reveal(listed, value, secret);
    } catch (err) {
      this.fail(err, $("token-form-error"));
    } finally {
      button.disabled = false;
      button.textContent = "Create token";
    }
  }

  /**
   * Shows a new token's value, and the secret access key of its S3 credentials, the only time
   * either is ever available.
   */
  reveal(token, value, secret) {
    const input = $("new-token-value");
    input.value = value;
    const s3 = Boolean(token.access_key_id && secret);
    $("new-token-label").textContent = s3 ? "Token" : `Token for ${token.name}`;
    $("new-token-label").classList.toggle("visually-hidden", !s3);
    $("token-warning-lead").textContent = s3
      ? "Copy them now: you will not see this token or its secret access key again."
      : "Copy it now: you will not see this token again.";
    // The secret is kept whole (S3 signatures need it), but never shown again.
    $("token-warning-rest").textContent = s3
      ? "If either is lost, revoke the token and create another."
      : "Shoebox keeps only a fingerprint of it. If it is lost, revoke it and create another.";
    $("token-reveal-heading").textContent = `“${token.name}” is ready`;
    $("new-token-copy").replaceChildren(copyButton(() => input.value, input, "Copy"));
    const keyId = $("new-access-key-id");
    const keySecret = $("new-secret-key");
    keyId.value = s3 ? token.access_key_id : "";
    keySecret.value = s3 ? secret : "";
    // Three buttons say "Copy": each names what it copies to a screen reader.
    const copy = (input, what) => {
      if (!s3) return [];
      const button = copyButton(() => input.value, input, "Copy");
      button.setAttribute("aria-label", `Copy the ${what}`);
      return [button];
    };
    $("new-access-key-copy").replaceChildren(...copy(keyId, "access key id"));
    $("new-secret-key-copy").replaceChildren(...copy(keySecret, "secret access key"));
    $("new-s3").hidden = !s3;
    const box = $("token-reveal");
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
    input.focus();
    input.select();
  }

  hideReveal(focus) {
    $("token-reveal").hidden = true;
    $("new-token-value").value = "";
    $("new-token-copy").replaceChildren();
    $("new-s3").hidden = true;
    $("new-access-key-id").value = "";
    $("new-secret-key").value = "";
    $("new-access-key-copy").replaceChildren();
    $("new-secret-key-copy").replaceChildren();
    if (focus) $("token-name").focus();
  }

  askRevoke(token, button) {
    this.pending = token;
    this.opener = button;
    $("revoke-text").textContent =
      `Apps and browsers using “${token.name}” stop working at once. This cannot be undone.`;
    $("revoke-error").hidden = true;
    $("revoke-yes").disabled = false;
    $("revoke-dialog").showModal();
    $("revoke-cancel").focus();
  }

  async revoke() {
    const token = this.pending;
    if (!token) return;
    $("revoke-yes").disabled = true;
    $("revoke-error").hidden = true;
    try {
      await tokens.revoke(token.id);
      token.revoked_at = new Date().toISOString();
      this.opener = null;
      $("revoke-dialog").close();
      this.render();
      $("tokens-list").focus();
      toast(`Revoked “${token.name}”`);
      // The server's own times.
      this.load();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        // Revoked meanwhile (another tab, the command line): show the truth.
        $("revoke-dialog").close();
        toast(`“${token.name}” was already revoked`);
        this.load();
        return;
      }
      if (err instanceof ApiError && err.status === 401) $("revoke-dialog").close();
      this.fail(err, $("revoke-error"));
    } finally {
      $("revoke-yes").disabled = false;
    }
  }

  revokeClosed() {
    this.pending = null;
    if (this.opener && document.contains(this.opener)) this.opener.focus();
    this.opener = null;
  }
}
