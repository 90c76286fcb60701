#!/usr/bin/env python3
"""Thumbnails: Shoebox's in-process variants against vipsthumbnail and ImageMagick, on loopback.

Run it through `benches/pictures.sh`, which builds Shoebox in release mode and installs the
references first. What it measures, on the same 12-megapixel JPEGs (4000x3000, made by
ImageMagick):

- cold `w=320` thumbnails per second: Shoebox makes each variant on its first request (decode,
  resize, encode, write under variants/); `vipsthumbnail` and `convert -thumbnail` make the
  same thumbnail from the same file, one process per file. Both sides run PARALLEL at a time.
- warm variant GETs per second (wrk, the variant already made) against a plain 4 KiB blob GET;
- Shoebox's peak RSS while 4 of those photos are resized at once.

Every loop is bounded in count and time; everything started here is stopped and removed.
"""

import argparse
import concurrent.futures
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (the side-by-side benchmark's server and client helpers)

HOST = harness.HOST
PARALLEL = 2


def make_photos(workdir, count):
    """`count` distinct 4000x3000 JPEGs, from one ImageMagick render and a changed pixel each."""
    base = os.path.join(workdir, "base.jpg")
    subprocess.run(
        ["convert", "-size", "4000x3000", "plasma:fractal", "-blur", "0x1", "-quality", "90", base],
        check=True, timeout=300,
    )  # fmt: skip
    photos = []
    for i in range(count):
        path = os.path.join(workdir, f"photo-{i:03}.jpg")
        subprocess.run(
            ["convert", base, "-fill", f"rgb({i % 256},{(i * 7) % 256},9)",
             "-draw", f"point {i},{i}", "-quality", "90", path],
            check=True, timeout=120,
        )  # fmt: skip
        photos.append(path)
    return photos


def timed_parallel(jobs):
    """Runs the callables `PARALLEL` at a time; returns (seconds, results)."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda job: job(), jobs))
    return time.monotonic() - start, results


def get(port, path, headers=None):
    c = http.client.HTTPConnection(HOST, port, timeout=harness.IO_TIMEOUT)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
    return body


def shoebox_cold(server, photos):
    paths = [f"/f/{server.hashes[os.path.basename(p)]}?w=320&format=jpeg" for p in photos]
    return timed_parallel([lambda p=p: get(server.port, p) for p in paths])[0]


def tool_cold(command, photos, outdir):
    os.makedirs(outdir, exist_ok=True)

    def job(photo):
        out = os.path.join(outdir, os.path.basename(photo))
        subprocess.run(command(photo, out), check=True, timeout=120, capture_output=True)

    return timed_parallel([lambda p=p: job(p) for p in photos])[0]


def peak_while_resizing(server, photos):
    """Peak RSS of a fresh Shoebox process while 4 large photos are resized at once."""
    paths = [f"/f/{server.hashes[os.path.basename(p)]}?w=1920&format=webp" for p in photos[:4]]
    before = harness.status_field(server.proc.pid, "VmHWM") / 1024
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: get(server.port, p), paths))
    return before, harness.status_field(server.proc.pid, "VmHWM") / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True, help="the shoebox release binary")
    ap.add_argument("--photos", type=int, default=24, help="photos per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = ap.parse_args()
    for tool in ["convert", "vipsthumbnail", "wrk"]:
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (benches/pictures.sh installs it)")

    workdir = tempfile.mkdtemp(prefix="shoebox-pictures-")
    servers = []
    try:
        harness.log(f"work dir {workdir}; making {args.photos * args.rounds + 4} photos")
        photos = make_photos(workdir, args.photos * args.rounds + 4)
        small = os.path.join(workdir, "small.bin")
        harness.make_file(small, harness.SMALL_SIZE, 7)
        rates = {"shoebox": [], "vipsthumbnail": [], "convert": []}
        for r in range(args.rounds):
            batch = photos[r * args.photos:(r + 1) * args.photos]
            server = harness.Shoebox(harness.free_port(), os.path.join(workdir, f"r{r}"), args.binary)
            servers.append(server)
            server.start()
            for p in batch:
                server.publish(p, os.path.basename(p))
            order = ["shoebox", "vipsthumbnail", "convert"]
            order = order[r % 3:] + order[:r % 3]
            for name in order:
                if name == "shoebox":
                    secs = shoebox_cold(server, batch)
                elif name == "vipsthumbnail":
                    secs = tool_cold(
                        lambda src, dst: ["vipsthumbnail", src, "--size", "320x", "-o", dst + "[Q=82]"],
                        batch, os.path.join(workdir, f"vips{r}"))  # fmt: skip
                else:
                    secs = tool_cold(
                        lambda src, dst: ["convert", src, "-auto-orient", "-thumbnail", "320x",
                                          "-quality", "82", dst],
                        batch, os.path.join(workdir, f"magick{r}"))  # fmt: skip
                rates[name].append(len(batch) / secs)
                harness.log(f"  round {r + 1}: {name:14} {len(batch) / secs:7.1f} thumbnails/s")
            server.stop()

        # Warm GETs, and memory, on a fresh server.
        server = harness.Shoebox(harness.free_port(), os.path.join(workdir, "warm"), args.binary)
        servers.append(server)
        server.start()
        rest = photos[args.photos * args.rounds:]
        for p in rest:
            server.publish(p, os.path.basename(p))
        server.publish(small, "small.bin")
        before, peak = peak_while_resizing(server, rest)
        variant = f"/f/{server.hashes[os.path.basename(rest[0])]}?w=320&format=jpeg"
        get(server.port, variant)
        warm, blob = [], []
        for _ in range(args.rounds):
            for url, out in [(variant, warm), (f"/f/{server.hashes['small.bin']}", blob)]:
                res = harness.run_wrk(f"http://{HOST}:{server.port}{url}", 2, 64, args.duration)
                if res["errors"] or res["socket_errors"]:
                    raise RuntimeError(f"wrk saw errors on {url}: {res['raw']}")
                out.append(res["rps"])
        server.stop()

        med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
        print(f"\nThumbnails: {args.photos} photos of 4000x3000 per round, {args.rounds} rounds, "
              f"{PARALLEL} at a time; medians (min-max)")  # fmt: skip
        print(f"machine: {harness.machine()}\n")
        print("| w=320 from a 12 MP JPEG, cold | thumbnails/s | Shoebox ÷ it |")
        print("|---|---|---|")
        for name in ["shoebox", "vipsthumbnail", "convert"]:
            v = rates[name]
            ratio = "" if name == "shoebox" else f"{med['shoebox'] / med[name]:.2f}×"
            print(f"| {name} | {med[name]:.1f} ({min(v):.1f}–{max(v):.1f}) | {ratio} |")
        w, b = sorted(warm)[len(warm) // 2], sorted(blob)[len(blob) // 2]
        print(f"\n| warm GETs, 64 conns | req/s |\n|---|---|")
        print(f"| w=320 variant, made before | {w:,.0f} |")
        print(f"| 4 KiB blob | {b:,.0f} |")
        print(f"| variant ÷ blob | {w / b:.2f}× |")
        print(f"\n| Shoebox peak RSS | MiB |\n|---|---|")
        print(f"| after start and uploads | {before:.1f} |")
        print(f"| while 4 photos are resized to w=1920 at once | {peak:.1f} |")
        print("\nTargets:")
        for name, target in [("convert", 1.0), ("vipsthumbnail", 0.5)]:
            ratio = med["shoebox"] / med[name]
            state = "met " if ratio >= target else "MISS"
            print(f"  [{state}] cold thumbnails ÷ {name}: {ratio:.2f} (target ≥ {target})")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
