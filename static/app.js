// Shoebox web app: sign in, then upload, browse and edit media, manage tokens, and watch the
// store's health. What is shown follows the session's scope; the server enforces it anyway.
import { ApiError, session } from "./api.js";
import { CollectionsPanel } from "./collections.js";
import { Gallery } from "./gallery.js";
import { StatusPanel } from "./status.js";
import { TokensPanel } from "./tokens.js";
import { Uploader } from "./upload.js";
import { formatBytes, h, icon } from "./util.js";

const $ = (id) => document.getElementById(id);

const views = ["upload", "gallery", "tokens", "status"];

/** The views each scope may use: tokens and status are admin-only, reading is not uploading. */
const SCOPES = {
  admin: { label: "Admin", views },
  upload: { label: "Uploader", views: ["upload", "gallery"] },
  read: { label: "Reader", views: ["gallery"] },
};

let current = null;
let allowed = ["gallery"];
const sessionEnded = () => showSignIn("Your session has ended. Sign in again.");
const gallery = new Gallery({ onSignedOut: sessionEnded });
const statusPanel = new StatusPanel();
const collectionsPanel = new CollectionsPanel({ onSignedOut: sessionEnded });
const tokensPanel = new TokensPanel({ onSignedOut: sessionEnded });
const uploader = new Uploader({
  onUploaded: () => gallery.markStale(),
  onSignedOut: sessionEnded,
});

function show(view) {
  if (!allowed.includes(view)) {
    view = "gallery";
    // A bookmark or link to a view this session cannot use lands on the gallery, and says so.
    if (location.hash && location.hash !== "#gallery") history.replaceState(null, "", "#gallery");
  }
  for (const name of views) {
    $(`view-${name}`).hidden = name !== view;
    const link = document.querySelector(`.tabs a[data-view="${name}"]`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "gallery") gallery.open();
  if (view === "status") {
    statusPanel.load();
    collectionsPanel.load();
  }
  if (view === "tokens") tokensPanel.load();
  if (current !== null && current !== view) $("main").focus({ preventScroll: true });
  current = view;
}

function route() {
  show(location.hash.slice(1) || "gallery");
}

function showSignIn(message) {
  $("loading").hidden = true;
  $("app").hidden = true;
  $("sign-in").hidden = false;
  // Nothing of the last session stays on the page, a new token's value least of all.
  tokensPanel.reset();
  collectionsPanel.reset();
  const error = $("sign-in-error");
  error.hidden = !message;
  error.textContent = message ?? "";
  $("token").focus();
}

function showApp(me) {
  $("loading").hidden = true;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  // Servers from before scoped tokens name only the role.
  const scope = SCOPES[me.scope] ? me.scope : me.role === "admin" ? "admin" : "upload";
  allowed = SCOPES[scope].views;
  for (const name of views) {
    document.querySelector(`.tabs a[data-view="${name}"]`).hidden = !allowed.includes(name);
  }
  const role = $("role");
  role.replaceChildren(h("span", { class: "visually-hidden" }, "Signed in as "), SCOPES[scope].label);
  role.dataset.scope = scope;
  gallery.setSession(me.role, scope);
  uploader.setLimit(me.max_upload_bytes);
  // Uploads left unfinished in this browser, offered for resuming where this session may upload.
  if (allowed.includes("upload")) uploader.restore();
  $("upload-limit").textContent = me.max_upload_bytes
    ? `Up to ${formatBytes(me.max_upload_bytes)} per file`
    : "";
  // Status is admin-only: other sessions would only be refused.
  if (scope === "admin") statusPanel.load();
  else statusPanel.banner(null);
  route();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("token");
  const button = $("sign-in-button");
  const error = $("sign-in-error");
  const token = input.value.trim();
  if (!token) {
    error.textContent = "Enter your token.";
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    const me = await session.signIn(token);
    input.value = "";
    input.removeAttribute("aria-invalid");
    error.hidden = true;
    showApp(me);
  } catch (err) {
    error.textContent = err instanceof ApiError && err.status === 401
      ? "That token is not valid. Check it and try again."
      : err.message;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.select();
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

async function signOut() {
  try {
    await session.signOut();
  } catch {
    // Signed out locally either way.
  }
  uploader.cancelAll();
  gallery.reset();
  showSignIn();
}

async function start() {
  $("dropzone").querySelector(".dropzone-icon").append(icon("upload"));
  $("details-close").append(icon("close"));
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  try {
    showApp(await session.current());
  } catch (err) {
    showSignIn(err instanceof ApiError && err.status === 401 ? null : err.message);
  }
}

start();
