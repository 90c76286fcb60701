#!/usr/bin/env python3
"""Resumable uploads: Shoebox's tus server against its own raw upload and @tus/server, on loopback.

Run it through `benches/tus.sh`, which builds Shoebox in release mode and installs Node's
packages first. What it measures, one upload of `--size` random bytes at a time (256 MiB by
default), each from a fresh file so that no server ever sees a duplicate:

- Shoebox's plain upload, `POST /api/media?filename=` with the raw body: the baseline;
- Shoebox's tus server, `/api/uploads`, in 8 MiB and in 64 MiB chunks: a `POST` that creates
  the upload, then `PATCH`es at the right offsets, timed from the `POST` to the last `204`;
- the reference tus server, `@tus/server` with `@tus/file-store` under Node
  (benches/tus_peer.mjs), in the same chunks, driven by the same client.

The client is Python's http.client on one connection per upload, streaming each body from the
file in 1 MiB blocks. Shoebox fsyncs each chunk before its 204 and stores the media (sha256,
record, fsync) before the last one; @tus/file-store fsyncs nothing. Every Shoebox upload is
checked (the record's sha256 and size against the file's) and so is each file @tus/server
stored, then removed. Each round runs every configuration once, in a rotated order; the table
shows medians. The rounds are bounded in count and time, and everything started here is
stopped and removed on exit.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (the side-by-side benchmark's server and client helpers)

HOST = harness.HOST
MIB = harness.MIB
PEER_SCRIPT = os.path.join(harness.HERE, "tus_peer.mjs")
NODE_MODULES = os.path.join(harness.ROOT, "tests", "clients", "node_modules")
CHUNKS = (8 * MIB, 64 * MIB)
# http.client's read size for a streamed body (its default is 8 KiB).
BLOCK = MIB
AUTH = {"Authorization": f"Bearer {harness.TOKEN}"}
TUS = {"Tus-Resumable": "1.0.0"}


# --------------------------------------------------------------------------------------------
# Servers


class Shoebox(harness.Shoebox):
    """The harness's Shoebox, with room for one upload of `max_upload` bytes."""

    label = "Shoebox"
    tus_path = "/api/uploads"

    def __init__(self, port, workdir, binary, max_upload):
        self.max_upload = max_upload
        super().__init__(port, workdir, binary)

    def command(self):
        cmd = super().command()
        cmd[cmd.index("--max-upload-bytes") + 1] = str(self.max_upload)
        return cmd

    def check_plain(self, body, sha, size):
        record = json.loads(body)["items"][0]
        check_record(record, sha, size)
        self.discard(record["id"])

    def check_tus(self, location, media_id, sha, size):
        """The finished upload's record matches the file; then the media goes."""
        if not media_id:
            raise RuntimeError(f"the last PATCH to {location} carried no Shoebox-Media-Id")
        status, body = call(self.port, "GET", location)
        if status != 200:
            raise RuntimeError(f"GET {location}: {status} {body[:200]!r}")
        record = json.loads(body)["items"][0]
        if record["id"] != media_id:
            raise RuntimeError(f"{location} is media {record['id']}, the PATCH said {media_id}")
        check_record(record, sha, size)
        self.discard(media_id)

    def discard(self, media_id):
        status, body = call(self.port, "DELETE", f"/api/media/{media_id}")
        if status != 204:
            raise RuntimeError(f"DELETE /api/media/{media_id}: {status} {body[:200]!r}")


class TusServer(harness.Server):
    """@tus/server with @tus/file-store under Node, storing under its own directory."""

    name = "tus-server"
    label = "@tus/server (Node)"
    tus_path = "/files"

    def command(self):
        return ["node", PEER_SCRIPT, "--host", HOST, "--port", str(self.port),
                "--directory", self.files]  # fmt: skip

    def ready_path(self):
        return self.tus_path

    def check_tus(self, location, _media_id, sha, size):
        """The stored file is the uploaded one; then it goes, with its JSON sidecar."""
        path = os.path.join(self.files, location.rsplit("/", 1)[1])
        got, got_size = file_sha256(path), os.path.getsize(path)
        if (got, got_size) != (sha, size):
            raise RuntimeError(f"{self.label} stored {got_size} bytes, sha256 {got}")
        os.remove(path)
        os.remove(path + ".json")


def check_record(record, sha, size):
    if record["hash"] != sha or record["size"] != size:
        raise RuntimeError(
            f"media {record['id']} has {record['size']} bytes, sha256 {record['hash']}; "
            f"the file has {size} bytes, sha256 {sha}"
        )


# --------------------------------------------------------------------------------------------
# The client: the same code for every server


class Window:
    """`length` bytes of an open file from `offset`, as a body http.client streams in blocks."""

    def __init__(self, f, offset, length):
        f.seek(offset)
        self.f = f
        self.left = length

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n) if n else b""
        self.left -= len(data)
        return data


def connect(port):
    return http.client.HTTPConnection(HOST, port, timeout=harness.IO_TIMEOUT, blocksize=BLOCK)


def send(conn, method, path, headers, body=None):
    conn.request(method, path, body=body, headers={**AUTH, **headers})
    r = conn.getresponse()
    return r.status, r.headers, r.read()


def call(port, method, path):
    conn = connect(port)
    try:
        status, _, body = send(conn, method, path, {})
    finally:
        conn.close()
    return status, body


def plain_upload(server, path, size):
    """`POST /api/media` with the file as the raw body; returns (seconds, response body)."""
    conn = connect(server.port)
    name = urllib.parse.quote(os.path.basename(path))
    try:
        with open(path, "rb", buffering=0) as f:
            t = time.perf_counter()
            status, _, body = send(
                conn, "POST", f"/api/media?filename={name}",
                {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                Window(f, 0, size),
            )  # fmt: skip
            secs = time.perf_counter() - t
    finally:
        conn.close()
    if status != 201:
        raise RuntimeError(f"{server.label} refused the upload: {status} {body[:200]!r}")
    return secs, body


def tus_upload(server, path, size, chunk):
    """A tus upload: the `POST` that creates it, then one `PATCH` per `chunk` bytes on the same
    connection. Returns (seconds from the POST to the last 204, upload path, the last 204's
    Shoebox-Media-Id)."""
    conn = connect(server.port)
    name = base64.b64encode(os.path.basename(path).encode()).decode()
    try:
        with open(path, "rb", buffering=0) as f:
            t = time.perf_counter()
            status, headers, body = send(
                conn, "POST", server.tus_path,
                {**TUS, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"},
            )  # fmt: skip
            if status != 201 or not headers.get("Location"):
                raise RuntimeError(f"{server.label}: POST {status} {body[:200]!r}")
            location = urllib.parse.urlsplit(headers["Location"]).path
            offset = 0
            while offset < size:
                n = min(chunk, size - offset)
                status, headers, body = send(
                    conn, "PATCH", location,
                    {**TUS, "Content-Type": "application/offset+octet-stream",
                     "Upload-Offset": str(offset), "Content-Length": str(n)},
                    Window(f, offset, n),
                )  # fmt: skip
                if status != 204 or headers.get("Upload-Offset") != str(offset + n):
                    raise RuntimeError(
                        f"{server.label}: PATCH at {offset}: {status}, Upload-Offset "
                        f"{headers.get('Upload-Offset')} {body[:200]!r}"
                    )
                offset += n
            secs = time.perf_counter() - t
    finally:
        conn.close()
    return secs, location, headers.get("Shoebox-Media-Id")


def make_random_file(path, size):
    """`size` random bytes, written a MiB at a time; returns their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, MIB))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


def measure(server, chunk, path, size):
    """One upload of a fresh file; returns MiB/s after checking what the server stored."""
    sha = make_random_file(path, size)
    os.sync()  # nobody pays for someone else's writeback
    try:
        if chunk is None:
            secs, body = plain_upload(server, path, size)
            server.check_plain(body, sha, size)
        else:
            secs, location, media_id = tus_upload(server, path, size, chunk)
            server.check_tus(location, media_id, sha, size)
    finally:
        os.remove(path)
    return size / MIB / secs


# --------------------------------------------------------------------------------------------
# The run, the table


def parse_size(text):
    """A size as Shoebox reads one: 268435456, 256MiB, 1GiB, 500MB."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    units = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": MIB, "mib": MIB, "g": 1 << 30,
             "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9}  # fmt: skip
    if not m or m.group(2).lower() not in units or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 256MiB")
    return int(m.group(1)) * units[m.group(2).lower()]


def human(size):
    return f"{size / MIB:g} MiB" if size % (MIB // 4) == 0 else f"{size:,} bytes"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True, help="the shoebox release binary")
    ap.add_argument("--size", type=parse_size, default=256 * MIB,
                    help="bytes per upload, e.g. 32MiB (default 256MiB)")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every configuration")
    ap.add_argument("--max-minutes", type=float, default=20,
                    help="start no round after this many minutes (default 20)")  # fmt: skip
    args = ap.parse_args()
    if shutil.which("node") is None:
        sys.exit("node is needed (benches/tus.sh installs it)")
    if not os.path.isdir(os.path.join(NODE_MODULES, "@tus", "server")):
        sys.exit("@tus/server is needed: npm ci --prefix tests/clients (benches/tus.sh runs it)")

    workdir = tempfile.mkdtemp(prefix="shoebox-tus-")
    servers = []
    started = time.monotonic()
    try:
        harness.log(f"work dir {workdir}")
        shoebox = Shoebox(harness.free_port(), workdir, os.path.abspath(args.binary),
                          max(2 << 30, args.size))  # fmt: skip
        peer = TusServer(harness.free_port(), workdir)
        for s in (shoebox, peer):
            servers.append(s)
            s.start()
            harness.log(f"  {s.label} on port {s.port}")
        src = os.path.join(workdir, "src")
        os.makedirs(src)

        # key, server, chunk size (None: the plain upload)
        configs = [("plain", shoebox, None)]
        configs += [(f"shoebox-{c // MIB}", shoebox, c) for c in CHUNKS]
        configs += [(f"tus-server-{c // MIB}", peer, c) for c in CHUNKS]
        rates = {key: [] for key, _, _ in configs}
        for rnd in range(args.rounds):
            if rnd and time.monotonic() - started > args.max_minutes * 60:
                harness.log(f"stopping after {rnd} rounds: over {args.max_minutes:g} minutes")
                break
            order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
            harness.log(f"round {rnd + 1}/{args.rounds}: {' '.join(k for k, _, _ in order)}")
            for key, server, chunk in order:
                rate = measure(server, chunk, os.path.join(src, f"{key}-{rnd}.bin"), args.size)
                rates[key].append(rate)
                harness.log(f"  {key:14} {rate:7.1f} MiB/s")
        rss = {s.label: s.peak_rss_mib() for s in servers}
        report(rates, rss, args.size, time.monotonic() - started)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(rates, rss, size, elapsed):
    med = {k: statistics.median(v) for k, v in rates.items()}
    rounds = len(rates["plain"])
    out = [
        f"Resumable uploads: one {human(size)} upload of random bytes at a time (a fresh file "
        f"each), {rounds} round(s) in alternating order, {elapsed / 60:.1f} min in all",
        f"machine: {harness.machine()}",
        "figures: median over the rounds (min–max); Shoebox fsyncs each chunk and stores the "
        "media before the last 204, @tus/file-store fsyncs nothing",
        "",
    ]
    plain = harness.spread(rates["plain"], "MiB/s")
    rows = [["Shoebox, POST /api/media (raw body)", "whole file", plain]]
    for server, label in (("shoebox", "Shoebox, tus /api/uploads"),
                          ("tus-server", "@tus/server + @tus/file-store")):  # fmt: skip
        for c in CHUNKS:
            key = f"{server}-{c // MIB}"
            rows.append([label, human(c), harness.spread(rates[key], "MiB/s")])
    out += harness.table([f"upload {human(size)}", "chunks", "MiB/s"], rows)
    out.append("")

    def ratio(label, num, den, goal=None):
        r = med[num] / med[den]
        if goal is None:
            return [label, f"{r:.2f}×", "", ""]
        return [label, f"{r:.2f}×", f"≥ {goal}", "met" if r >= goal else "MISS"]

    rows = [ratio(f"Shoebox tus {c // MIB} MiB ÷ plain", f"shoebox-{c // MIB}", "plain",
                  0.85 if c == CHUNKS[-1] else None) for c in CHUNKS]  # fmt: skip
    rows += [ratio(f"Shoebox tus ÷ @tus/server, {c // MIB} MiB chunks", f"shoebox-{c // MIB}",
                   f"tus-server-{c // MIB}", 1.0) for c in CHUNKS]  # fmt: skip
    out += harness.table(["ratio of medians", "value", "target", "state"], rows)
    out.append("")
    out += harness.table(["peak RSS (VmHWM) over the run", "MiB"],
                         [[f"{k} process", f"{v:.1f}"] for k, v in rss.items()])  # fmt: skip
    print("\n".join(out))


if __name__ == "__main__":
    main()
