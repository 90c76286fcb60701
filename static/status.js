// The status panel and the persistent-disk banner, from GET /api/status (admin only). Servers
// without that route, and failures, leave the rest of the page working.
import { ApiError, status } from "./api.js";
import { formatBytes, formatDuration, h, icon } from "./util.js";

const $ = (id) => document.getElementById(id);

function stat(label, value, detail) {
  return h("div", { class: "stat" },
    h("p", { class: "stat-label" }, label),
    h("p", { class: "stat-value" }, value),
    detail ? h("p", { class: "stat-detail muted" }, detail) : null);
}

function diskCard(disk) {
  const total = disk?.total_bytes;
  const free = disk?.free_bytes;
  if (typeof total !== "number" || typeof free !== "number" || total <= 0) {
    return stat("Free space", "–", "Not reported");
  }
  const used = Math.max(total - free, 0);
  const pct = Math.round((used / total) * 100);
  const low = typeof disk.reserve_bytes === "number" && free <= disk.reserve_bytes * 2;
  return h("div", { class: `stat wide${low ? " warn" : ""}` },
    h("p", { class: "stat-label" }, "Free space"),
    h("p", { class: "stat-value" }, formatBytes(free)),
    h("progress", { class: "meter", max: "100", value: String(pct), "aria-label": `Disk ${pct}% used` }),
    h("p", { class: "stat-detail muted" },
      `${pct}% of ${formatBytes(total)} used`,
      typeof disk.reserve_bytes === "number" && disk.reserve_bytes > 0
        ? ` · uploads stop ${formatBytes(disk.reserve_bytes)} before full`
        : ""));
}

export class StatusPanel {
  constructor() {
    $("status-refresh").addEventListener("click", () => this.load());
  }

  async load() {
    const body = $("status-body");
    if (!body.hasChildNodes()) body.append(h("p", { class: "muted" }, "Loading…"));
    try {
      this.render(await status());
    } catch (err) {
      this.banner(null);
      if (err instanceof ApiError && err.status === 404) {
        body.replaceChildren(h("div", { class: "notice" },
          h("p", {}, h("strong", {}, "Storage status is not available from this server.")),
          h("p", { class: "muted" }, "Upgrade Shoebox to see free space, counts and whether the data directory is on a persistent disk.")));
      } else if (err instanceof ApiError && err.status === 403) {
        body.replaceChildren(h("div", { class: "notice" },
          h("p", {}, "Storage status is shown to admins only.")));
      } else {
        body.replaceChildren(h("div", { class: "notice error", role: "alert" },
          h("p", {}, `Could not load the status: ${err.message}`)));
      }
    }
  }

  /** The loud banner when the data directory is not on a persistent disk. */
  banner(persistent) {
    const banner = $("disk-banner");
    if (!persistent || persistent.persistent !== false) {
      banner.hidden = true;
      return;
    }
    banner.replaceChildren(icon("alert"),
      h("div", {},
        h("strong", {}, "Uploads are not on a persistent disk. "),
        "They will be lost when the server restarts or is redeployed. ",
        persistent.reason ? h("span", { class: "banner-reason" }, persistent.reason) : null),
      h("a", { href: "#status", class: "banner-link" }, "Details"));
    banner.hidden = false;
  }

  render(s) {
    const persistent = s.persistent ?? {};
    this.banner(persistent);
    const media = s.media ?? {};
    const blobs = s.blobs ?? {};
    const saved = typeof media.bytes === "number" && typeof blobs.bytes === "number"
      ? media.bytes - blobs.bytes
      : 0;
    const disk = persistent.persistent === true
      ? h("span", { class: "pill ok" }, icon("check"), "Persistent disk")
      : persistent.persistent === false
        ? h("span", { class: "pill bad" }, icon("alert"), "Not persistent")
        : h("span", { class: "pill" }, "Unknown");
    $("status-body").replaceChildren(
      h("div", { class: "stat wide" },
        h("p", { class: "stat-label" }, "Data directory"),
        h("p", { class: "stat-value mono" }, s.data_dir ?? "–"),
        h("p", { class: "stat-detail" }, disk,
          persistent.fs_type ? h("span", { class: "muted" }, ` ${persistent.fs_type}`) : null),
        persistent.reason ? h("p", { class: "stat-detail muted" }, persistent.reason) : null),
      diskCard(s.disk),
      stat("Media", String(media.count ?? "–"), `${formatBytes(media.bytes)} as uploaded`),
      stat("Stored files", String(blobs.count ?? "–"),
        `${formatBytes(blobs.bytes)} on disk${saved > 0 ? ` · ${formatBytes(saved)} saved by deduplication` : ""}`),
      stat("Metadata", formatBytes(s.meta_bytes)),
      stat("Uploads in progress", String(s.partial_uploads?.count ?? "–"),
        `${formatBytes(s.partial_uploads?.bytes)} received, resumable`),
      stat("Version", s.version ?? "–", `up ${formatDuration(s.uptime_seconds)}`));
  }
}
