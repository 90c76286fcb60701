#!/usr/bin/env python3
"""Side-by-side benchmark of Shoebox against nginx, dufs and miniserve, on loopback.

Run it through `benches/run.sh`, which builds Shoebox in release mode and installs the
references first. Every server gets its own port on 127.0.0.1 and its own temporary directory
holding the same generated files; every workload runs against each server in turn, several
rounds, alternating the order (A B C, B C A, ...); the table shows medians, the min-max spread
and Shoebox/peer ratios. Every loop is bounded in count and time, and everything started here
is stopped and removed on exit.

Like with like:
- GETs: nginx, dufs and miniserve serve `/small.bin` and `/large.bin` from their directory;
  Shoebox serves the same bytes at `/f/{sha256}` after they were uploaded through its API (the
  lookup that decides whether the blob is public and what its type is runs on every request).
- Uploads: Shoebox takes a raw body (`POST /api/media?filename=`, bearer token); dufs a raw
  `PUT /path`; miniserve a multipart `POST /upload?path=/`. Shoebox hashes and fsyncs every
  upload (file, directories, record, database) before it answers; the peers do neither.
- nginx gets its best settings for static files (sendfile, no access log); it takes no uploads.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
TOKEN = "bench-token-0123456789abcdef"
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

SMALL_SIZE = 4 * KIB
LARGE_SIZE = 64 * MIB
UPLOAD_SIZE = 256 * MIB
MANY_COUNT, MANY_SIZE, MANY_PARALLEL = 200, 256 * KIB, 8
BIG_UPLOAD_SIZE = 1 * GIB
COLLECTIONS = 10
# Hard ceiling for any single client operation.
IO_TIMEOUT = 120


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Servers


class Server:
    """One server under test: started once, kept for the whole run."""

    name = "?"
    uploads = True

    def __init__(self, port, workdir):
        self.port = port
        self.dir = os.path.join(workdir, self.name)
        self.files = os.path.join(self.dir, "files")
        os.makedirs(self.files)
        self.proc = None
        self.log = open(os.path.join(self.dir, "server.log"), "wb")

    def command(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    def start(self):
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
        )
        wait_ready(self.port, self.ready_path(), self.proc)

    def ready_path(self):
        return "/"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()

    def peak_rss_mib(self):
        """Peak resident memory of the server's processes (all of nginx's)."""
        total = 0
        for pid in process_tree(self.proc.pid):
            total += status_field(pid, "VmHWM")
        return total / KIB

    # URLs of the shared files and the upload API.
    def small_url(self):
        return f"http://{HOST}:{self.port}/small.bin"

    def large_url(self):
        return f"http://{HOST}:{self.port}/large.bin"


class Shoebox(Server):
    name = "shoebox"

    def __init__(self, port, workdir, binary):
        self.binary = binary
        super().__init__(port, workdir)
        self.data = os.path.join(self.dir, "data")
        self.hashes = {}

    def env(self):
        env = dict(os.environ)
        env.pop("RUST_LOG", None)  # its default logging, as deployed
        env["SHOEBOX_ADMIN_TOKEN"] = TOKEN
        # The scrub re-reads blobs in the background; the peers have none, so it is off here.
        env["SHOEBOX_SCRUB_INTERVAL"] = "off"
        return env

    def command(self):
        return [
            self.binary, "serve", "--bind", HOST, "--port", str(self.port),
            "--data-dir", self.data, "--max-upload-bytes", "2GiB",
        ]  # fmt: skip

    def ready_path(self):
        return "/api/media?limit=1"

    def publish(self, path, name):
        """Uploads a shared file through the API; GETs then use its content address."""
        c = http.client.HTTPConnection(HOST, self.port, timeout=IO_TIMEOUT)
        with open(path, "rb") as f:
            c.request(
                "POST",
                "/api/media?filename=" + urllib.parse.quote(name),
                body=f,
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(os.path.getsize(path)),
                },
            )
            r = c.getresponse()
            status, body = r.status, r.read()
        c.close()
        if status != 201:
            raise RuntimeError(f"shoebox refused {name}: {status} {body[:200]!r}")
        self.hashes[name] = json.loads(body)["items"][0]["hash"]

    def small_url(self):
        return f"http://{HOST}:{self.port}/f/{self.hashes['small.bin']}"

    def large_url(self):
        return f"http://{HOST}:{self.port}/f/{self.hashes['large.bin']}"


def unwind_on_term():
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that the caller's `finally` stops every
    server it started."""

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def nginx_conf(directory, workers, http):
    """An nginx configuration whose files all stay in `directory`, with `http` (the lines
    inside `http { }` besides the temporary paths); answers its path."""
    conf = os.path.join(directory, "nginx.conf")
    user = "user root;" if os.geteuid() == 0 else ""
    temps = "\n".join(f"  {kind}_temp_path {directory}/{name};" for kind, name in [
        ("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"),
        ("uwsgi", "uwsgi"), ("scgi", "scgi"),
    ])  # fmt: skip
    with open(conf, "w") as f:
        f.write(f"""
{user}
worker_processes {workers};
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temps}
{http}
}}
""")
    return conf


class Nginx(Server):
    name = "nginx"
    uploads = False

    def command(self):
        conf = nginx_conf(self.dir, "auto", f"""
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  server {{
    listen {HOST}:{self.port};
    root {self.files};
  }}""")
        return ["nginx", "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")]

    def ready_path(self):
        return "/small.bin"


class Dufs(Server):
    name = "dufs"

    def command(self):
        # An empty log format turns its per-request log off.
        return [
            "dufs", self.files, "--bind", HOST, "--port", str(self.port),
            "--allow-upload", "--log-format", "",
        ]  # fmt: skip

    def ready_path(self):
        return "/small.bin"


class Miniserve(Server):
    name = "miniserve"

    def command(self):
        tmp = os.path.join(self.dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        return [
            "miniserve", self.files, "--interfaces", HOST, "--port", str(self.port),
            "--temp-directory", tmp, "--upload-files",
        ]  # fmt: skip

    def ready_path(self):
        return "/small.bin"


def free_port():
    """A loopback port nobody listens on (other programs on the machine may hold fixed ones)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def process_tree(pid):
    pids = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    pids.append(int(p))
            except OSError:
                pass
    return pids


def status_field(pid, key):
    """A /proc/PID/status field in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_ready(port, path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status < 500:
                time.sleep(0.05)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"port {port} answers, but not the server started here")
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s")


# --------------------------------------------------------------------------------------------
# Clients


def run_wrk(url, threads, conns, duration, script=None, script_args=()):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if script_args:
        cmd += ["--", *map(str, script_args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    res = {"raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", out)
    if not m:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    res["requests"] = int(m.group(1))
    secs = float(m.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m.group(3)]
    nbytes = float(m.group(4)) * {"B": 1, "KB": KIB, "MB": MIB, "GB": GIB, "TB": GIB * KIB}[
        m.group(5)
    ]
    res["mib_s"] = nbytes / MIB / secs
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    res["p99_ms"] = float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)] if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["errors"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"not_206 (\d+)", out)
    res["not_206"] = int(m.group(1)) if m else None
    m = re.search(r"exact (\d+) requests (\d+) bytes", out)
    res["exact"] = (int(m.group(1)), int(m.group(2))) if m else None
    return res


def fetch(port, path, headers=None):
    c = http.client.HTTPConnection(HOST, port, timeout=IO_TIMEOUT)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


# --------------------------------------------------------------------------------------------
# Workloads: each returns one sample per metric for one server in one round.


def w_small(server, cfg, _rnd):
    r = run_wrk(server.small_url(), 2, 64, cfg.duration)
    check_wrk(server, r)
    return {"small_rps": r["rps"], "small_p99": r["p99_ms"]}


def w_large(server, cfg, _rnd):
    r = run_wrk(server.large_url(), 2, 4, cfg.duration)
    check_wrk(server, r)
    return {"large_mib_s": r["mib_s"]}


RANGE_CONNS = 8
# More than any server's response headers here; a full (200) response would add 63 MiB.
RANGE_HEADER_MAX = 1024


def w_range(server, cfg, _rnd):
    script = os.path.join(HERE, "range.lua")
    # A short run that checks the status of every response: handing each 1 MiB body to Lua
    # costs wrk as much as the server's work, so it is not the timed run.
    c = run_wrk(server.large_url(), 2, RANGE_CONNS, 1, script, [LARGE_SIZE, "check"])
    check_wrk(server, c)
    if c["not_206"] != 0:
        raise RuntimeError(f"{server.name}: {c['not_206']} range responses were not 206")
    # The timed run: wrk counts errors (4xx, 5xx) itself, and the exact byte count must be
    # 1 MiB of body per response plus headers (plus what was in flight at the end).
    r = run_wrk(server.large_url(), 2, RANGE_CONNS, cfg.duration, script, [LARGE_SIZE])
    check_wrk(server, r)
    n, total = r["exact"]
    span = MIB + RANGE_HEADER_MAX
    if not n * MIB <= total <= n * span + RANGE_CONNS * span:
        raise RuntimeError(
            f"{server.name}: {n} range responses brought {total} bytes, not 1 MiB bodies"
        )
    return {"range_rps": r["rps"]}


def check_wrk(server, r):
    if r["errors"] or r["socket_errors"] or r["requests"] == 0:
        raise RuntimeError(f"{server.name}: wrk saw errors\n{r['raw']}")


def client(cfg, *args):
    """Runs the upload client (benches/client.rs); returns its seconds, after checking that
    every upload succeeded."""
    out = subprocess.run(
        [cfg.client, *map(str, args)], capture_output=True, text=True, timeout=IO_TIMEOUT * 5
    )
    m = re.search(r"seconds=([\d.]+) ok=(\d+) failed=(\d+) first_error=(.*)", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"upload client failed: {out.stdout} {out.stderr}")
    if int(m.group(3)):
        raise RuntimeError(f"{args[1]}: {m.group(3)} uploads failed, first: {m.group(4)}")
    return float(m.group(1))


def w_upload(server, cfg, rnd):
    if not server.uploads:
        return {}
    path = cfg.files["upload.bin"]
    vary(path, f"{server.name}-{rnd}")
    os.sync()  # nobody pays for someone else's writeback
    secs = client(cfg, "file", server.name, server.port, path, f"upload-{rnd}.bin")
    return {"upload_mib_s": UPLOAD_SIZE / MIB / secs}


def w_many(server, cfg, rnd):
    if not server.uploads:
        return {}
    os.sync()
    # A new seed each round: every file is new content, never a duplicate of an earlier one.
    secs = client(cfg, "many", server.name, server.port, MANY_COUNT, MANY_SIZE, MANY_PARALLEL,
                  1000 + rnd)  # fmt: skip
    return {"many_files_s": MANY_COUNT / secs}


def vary(path, tag):
    """Changes the first bytes of a file in place, so each upload is new content."""
    with open(path, "r+b") as f:
        f.write(hashlib.sha256(tag.encode()).digest())


def durable_creates(cfg, rnd):
    """The machine's limit for many small uploads: MANY_COUNT files of MANY_SIZE created
    durably, MANY_PARALLEL at a time, with the least any crash-safe store must do per file
    (write a temp file, fsync it, rename it into place, fsync the directory) and nothing else:
    no hashing, no HTTP, no metadata."""
    base = os.path.join(cfg.work, f"creates-{rnd}")
    os.makedirs(os.path.join(base, "tmp"))
    os.makedirs(os.path.join(base, "final"))
    data = os.urandom(MANY_SIZE)
    names = list(range(MANY_COUNT))
    lock = threading.Lock()

    def worker():
        dfd = os.open(os.path.join(base, "final"), os.O_RDONLY)
        try:
            while True:
                with lock:
                    if not names:
                        return
                    n = names.pop()
                tmp = os.path.join(base, "tmp", str(n))
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, os.path.join(base, "final", str(n)))
                os.fsync(dfd)
        finally:
            os.close(dfd)

    os.sync()
    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(MANY_PARALLEL)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(IO_TIMEOUT)
    rate = MANY_COUNT / (time.perf_counter() - t)
    # The files stay until the run ends. Deleting them here would slow the uploads measured
    # next: on ext4 without a journal (this machine's root filesystem) every new inode is
    # allocated past the inodes freed in the last minutes, one lookup each, and the servers
    # that create more files per upload would pay for it more.
    return {"durable_creates_s": rate}


def protocol_rates(cfg, rnd):
    """The least disk work of Shoebox's write protocol for MANY_COUNT uploads of MANY_SIZE,
    MANY_PARALLEL at a time, with no HTTP, no hashing and no database (benches/protocol.rs):
    as the write protocol in DESIGN.md asks (blob, its directories, a shared metadata log with
    group commit), with Shoebox's record file per upload on top (made durable in batches after
    the upload, as Shoebox does), and as DESIGN.md asks but
    with one syncfs(2) per group of concurrent uploads in place of the fsyncs: the most the
    kernel lets a server batch, so that rate bounds any durable server with this layout."""
    out = {}
    for key, extra in (("protocol_s", []), ("protocol_records_s", ["records"]),
                       ("protocol_syncfs_s", ["syncfs"])):  # fmt: skip
        base = os.path.join(cfg.work, f"protocol-{rnd}-{key}")
        os.sync()
        res = subprocess.run(
            [cfg.protocol, base, str(MANY_COUNT), str(MANY_SIZE), str(MANY_PARALLEL),
             str(2000 + rnd), *extra],
            capture_output=True, text=True, timeout=IO_TIMEOUT,
        )  # fmt: skip
        m = re.search(r"seconds=([\d.]+)", res.stdout)
        if res.returncode != 0 or not m:
            raise RuntimeError(f"bench-protocol failed: {res.stdout} {res.stderr}")
        # Its files stay until the run ends, for the reason given in durable_creates.
        out[key] = MANY_COUNT / float(m.group(1))
    return out


def reference_rates(cfg, rnd):
    """The machine's limits for the large upload: sha256 with openssl, an fsync'd dd."""
    path = cfg.files["upload.bin"]
    t = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", path], check=True, capture_output=True)
    sha = UPLOAD_SIZE / MIB / (time.perf_counter() - t)
    out = os.path.join(cfg.work, f"dd-{rnd}.out")
    os.sync()
    t = time.perf_counter()
    subprocess.run(
        ["dd", f"if={path}", f"of={out}", "bs=1M", "conv=fsync", "status=none"], check=True
    )
    dd = UPLOAD_SIZE / MIB / (time.perf_counter() - t)
    os.remove(out)
    return {"openssl_mib_s": sha, "dd_fsync_mib_s": dd}


# --------------------------------------------------------------------------------------------
# Shoebox only: memory during a 1 GiB upload, and 100k records.


def shoebox_memory(cfg, port):
    s = Shoebox(port, cfg.work + "/mem", cfg.binary)
    s.start()
    try:
        time.sleep(0.5)
        idle = status_field(s.proc.pid, "VmRSS") / KIB
        path = os.path.join(cfg.work, "big.bin")
        make_file(path, BIG_UPLOAD_SIZE, 1)
        os.sync()
        peak = [0.0]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.05):
                peak[0] = max(peak[0], status_field(s.proc.pid, "VmRSS") / KIB)

        th = threading.Thread(target=sample)
        th.start()
        try:
            dt = client(cfg, "file", "shoebox", s.port, path, "big.bin")
        finally:
            stop.set()
            th.join()
            os.remove(path)
        hwm = status_field(s.proc.pid, "VmHWM") / KIB
        return {
            "idle_rss": idle,
            "gib_upload_peak_rss": max(hwm, peak[0]),
            "gib_upload_mib_s": BIG_UPLOAD_SIZE / MIB / dt,
        }
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def shoebox_metadata(cfg, port):
    """`cfg.records` records through the API (multipart, 100 small files a request, 4
    requests at a time), then on that store: collection pages, status and metrics, restarts,
    and a fresh process's memory as it lists records."""
    s = Shoebox(port, cfg.work + "/meta", cfg.binary)
    s.start()
    per_request, parallel = 100, 4
    batches = list(range(cfg.records // per_request))
    lock = threading.Lock()
    failures = []

    def worker():
        conn = http.client.HTTPConnection(HOST, port, timeout=IO_TIMEOUT)
        while True:
            with lock:
                if not batches:
                    break
                b = batches.pop()
            boundary = "----b" + os.urandom(8).hex()
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="collection"\r\n\r\n'
                f"c{b % COLLECTIONS}\r\n".encode()
            ]
            for i in range(per_request):
                n = b * per_request + i
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="r{n}.txt"\r\nContent-Type: text/plain\r\n\r\n'
                    f"record {n}\r\n".encode()
                )
            parts.append(f"--{boundary}--\r\n".encode())
            body = b"".join(parts)
            conn.request(
                "POST",
                "/api/media",
                body=body,
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
            r = conn.getresponse()
            data = r.read()
            if r.status != 201:
                failures.append((r.status, data[:200]))
                break
        conn.close()

    try:
        t = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(parallel)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(600)
        create_s = time.perf_counter() - t
        if failures or batches:
            raise RuntimeError(f"creating records failed: {failures[:3]}")
        log(f"  {cfg.records} records in {create_s:.1f}s ({cfg.records / create_s:.0f}/s)")

        def pages(collection="c0", limit=50, expect=cfg.records // COLLECTIONS):
            # Walk a collection (or, with None, every record) newest first, following the
            # cursor.
            lat = []
            conn = http.client.HTTPConnection(HOST, port, timeout=IO_TIMEOUT)
            cursor, seen = None, 0
            for _ in range(expect // limit + 2):
                q = f"/api/media?limit={limit}"
                if collection:
                    q += "&collection=" + collection
                if cursor:
                    q += "&cursor=" + cursor
                t = time.perf_counter()
                conn.request("GET", q)
                r = conn.getresponse()
                data = r.read()
                lat.append((time.perf_counter() - t) * 1e3)
                if r.status != 200:
                    raise RuntimeError(f"listing answered {r.status} {data[:200]!r}")
                page = json.loads(data)
                seen += len(page["items"])
                cursor = page["next_cursor"]
                if not cursor:
                    break
            conn.close()
            if seen != expect:
                raise RuntimeError(f"walked {seen} records of {collection or 'the store'}")
            return lat

        def status_calls(n=5):
            """Times `n` calls each of /api/status and /metrics, checking their counts."""
            out = {"/api/status": [], "/metrics": []}
            conn = http.client.HTTPConnection(HOST, port, timeout=IO_TIMEOUT)
            for _ in range(n):
                for path in out:
                    t = time.perf_counter()
                    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
                    r = conn.getresponse()
                    data = r.read()
                    out[path].append((time.perf_counter() - t) * 1e3)
                    if r.status != 200:
                        raise RuntimeError(f"{path} answered {r.status} {data[:200]!r}")
                    if path == "/api/status":
                        count = json.loads(data)["media"]["count"]
                    else:
                        m = re.search(rb"^shoebox_media (\d+)", data, re.M)
                        count = int(m.group(1)) if m else None
                    if count != cfg.records:
                        raise RuntimeError(f"{path} counts {count} media, not {cfg.records}")
            conn.close()
            return {k: statistics.median(v) for k, v in out.items()}, max(max(v) for v in out.values())

        pages()  # warm
        lat = sorted(pages())
        rss_loaded = status_field(s.proc.pid, "VmHWM") / KIB
        status_loaded, status_loaded_max = status_calls()
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=60)
        starts = []
        for i in range(3):
            t = time.perf_counter()
            s.proc = subprocess.Popen(
                s.command(), stdout=s.log, stderr=subprocess.STDOUT, env=s.env(),
                start_new_session=True,
            )  # fmt: skip
            wait_ready(port, s.ready_path(), s.proc, timeout=120)
            starts.append(time.perf_counter() - t)
            if i == 2:
                # A fresh process's memory: started, then after walking a collection and
                # answering status and metrics, then after listing every record as well.
                rss_started = status_field(s.proc.pid, "VmRSS") / KIB
                pages()
                status_fresh, status_fresh_max = status_calls()
                rss_walked = status_field(s.proc.pid, "VmRSS") / KIB
                pages(None, 500, cfg.records)
                status_calls()
                rss_fresh = status_field(s.proc.pid, "VmRSS") / KIB
                hwm_fresh = status_field(s.proc.pid, "VmHWM") / KIB
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(timeout=60)
        # After a SIGKILL the start compares every record file with the database.
        s.proc = subprocess.Popen(
            s.command(), stdout=s.log, stderr=subprocess.STDOUT, env=s.env(),
            start_new_session=True,
        )  # fmt: skip
        wait_ready(port, s.ready_path(), s.proc, timeout=120)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait(timeout=60)
        t = time.perf_counter()
        s.proc = subprocess.Popen(
            s.command(), stdout=s.log, stderr=subprocess.STDOUT, env=s.env(),
            start_new_session=True,
        )  # fmt: skip
        wait_ready(port, s.ready_path(), s.proc, timeout=300)
        killed_start = time.perf_counter() - t
        killed_hwm = status_field(s.proc.pid, "VmHWM") / KIB
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=60)
        return {
            "startup_after_kill_s": killed_start,
            "records_per_s": cfg.records / create_s,
            "page_p50_ms": percentile(lat, 50),
            "page_p99_ms": percentile(lat, 99),
            "startup_s": statistics.median(starts),
            "startup_max_s": max(starts),
            "meta_peak_rss": rss_loaded,
            "status_ms": status_loaded["/api/status"],
            "metrics_ms": status_loaded["/metrics"],
            "status_max_ms": max(status_loaded_max, status_fresh_max),
            "status_fresh_ms": status_fresh["/api/status"],
            "metrics_fresh_ms": status_fresh["/metrics"],
            "started_rss": rss_started,
            "walked_rss": rss_walked,
            "fresh_rss": rss_fresh,
            "fresh_peak_rss": hwm_fresh,
            "killed_start_peak_rss": killed_hwm,
        }
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def percentile(sorted_values, p):
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


# --------------------------------------------------------------------------------------------
# Set-up, the run, the table


def make_file(path, size, seed):
    rng = random.Random(seed)
    block = rng.randbytes(MIB)
    with open(path, "wb") as f:
        left = size
        n = 0
        while left > 0:
            chunk = hashlib.sha256(f"{seed}-{n}".encode()).digest() + block[32:]
            f.write(chunk[: min(left, MIB)])
            left -= MIB
            n += 1


class Cfg:
    pass


WORKLOADS = [("small", w_small), ("large", w_large), ("range", w_range),
             ("upload", w_upload), ("many", w_many)]  # fmt: skip

ROWS = [
    # key, label, unit, higher is better
    ("small_rps", "small GETs 4 KiB, 64 conns", "req/s", True),
    ("small_p99", "  p99 latency", "ms", False),
    ("large_mib_s", "large GETs 64 MiB, 4 conns", "MiB/s", True),
    ("range_rps", "Range GETs 1 MiB, 8 conns", "req/s", True),
    ("upload_mib_s", "upload 256 MiB", "MiB/s", True),
    ("many_files_s", "uploads 200 x 256 KiB, 8 conc.", "files/s", True),
    ("peak_rss", "peak RSS over the run", "MiB", False),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the shoebox release binary")
    ap.add_argument("--client", required=True, help="the bench-client binary")
    ap.add_argument("--protocol", help="the bench-protocol binary (default: beside the client)")
    ap.add_argument("--quick", action="store_true", help="1 round, 3 s runs, 20k records")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int, help="seconds per wrk run")
    ap.add_argument("--records", type=int, help="records for the metadata workload")
    ap.add_argument("--port", type=int, help="first of 6 loopback ports (default: free ones)")
    ap.add_argument("--only", default="", help="comma list of servers (default: all)")
    ap.add_argument("--skip", default="", help="comma list: small,large,range,upload,many,memory,meta")
    ap.add_argument("--json", help="also write the raw samples here")
    args = ap.parse_args()

    cfg = Cfg()
    cfg.binary = os.path.abspath(args.binary)
    cfg.client = os.path.abspath(args.client)
    cfg.protocol = os.path.abspath(
        args.protocol or os.path.join(os.path.dirname(cfg.client), "bench-protocol")
    )
    cfg.rounds = args.rounds or (1 if args.quick else 5)
    cfg.duration = args.duration or (3 if args.quick else 5)
    cfg.records = args.records or (20_000 if args.quick else 100_000)
    skip = set(filter(None, args.skip.split(",")))
    cfg.work = tempfile.mkdtemp(prefix="shoebox-bench-")
    servers = []
    started = time.monotonic()
    try:
        log(f"work dir {cfg.work}; generating files")
        src = os.path.join(cfg.work, "src")
        os.makedirs(src)
        cfg.files = {
            "small.bin": os.path.join(src, "small.bin"),
            "large.bin": os.path.join(src, "large.bin"),
            "upload.bin": os.path.join(src, "upload.bin"),
        }
        make_file(cfg.files["small.bin"], SMALL_SIZE, 11)
        make_file(cfg.files["large.bin"], LARGE_SIZE, 12)
        make_file(cfg.files["upload.bin"], UPLOAD_SIZE, 13)

        classes = [Shoebox, Nginx, Dufs, Miniserve]
        only = set(filter(None, args.only.split(",")))
        for i, cls in enumerate(classes):
            if only and cls.name not in only and cls is not Shoebox:
                continue
            port = args.port + i if args.port else free_port()
            s = cls(port, cfg.work, cfg.binary) if cls is Shoebox else cls(port, cfg.work)
            for name in ("small.bin", "large.bin"):
                shutil.copyfile(cfg.files[name], os.path.join(s.files, name))
            s.start()
            if isinstance(s, Shoebox):
                for name in ("small.bin", "large.bin"):
                    s.publish(cfg.files[name], name)
            servers.append(s)
            log(f"  {s.name} on port {port}")
        verify_gets(servers, cfg)

        samples = {s.name: {} for s in servers}
        samples["reference"] = {}
        for rnd in range(cfg.rounds):
            order = servers[rnd % len(servers) :] + servers[: rnd % len(servers)]
            log(f"round {rnd + 1}/{cfg.rounds}: {' '.join(s.name for s in order)}")
            if "upload" not in skip:
                for k, v in reference_rates(cfg, rnd).items():
                    samples["reference"].setdefault(k, []).append(v)
            if "many" not in skip:
                for k, v in durable_creates(cfg, rnd).items():
                    samples["reference"].setdefault(k, []).append(v)
                for k, v in protocol_rates(cfg, rnd).items():
                    samples["reference"].setdefault(k, []).append(v)
            for wname, fn in WORKLOADS:
                if wname in skip:
                    continue
                for s in order:
                    if rnd == 0 and wname in ("small", "large", "range"):
                        run_wrk(s.small_url() if wname == "small" else s.large_url(), 2, 8, 1)
                    res = fn(s, cfg, rnd)
                    for k, v in res.items():
                        samples[s.name].setdefault(k, []).append(v)
                    if res:
                        log(f"  {wname:7} {s.name:10} " + "  ".join(f"{k}={v:.1f}" for k, v in res.items()))
        for s in servers:
            samples[s.name]["peak_rss"] = [s.peak_rss_mib()]

        extra = {}
        if "memory" not in skip:
            log("shoebox: idle memory and a 1 GiB upload")
            extra.update(shoebox_memory(cfg, args.port + 4 if args.port else free_port()))
        if "meta" not in skip:
            log(f"shoebox: {cfg.records} records, collection pages, status, start-up, memory")
            extra.update(shoebox_metadata(cfg, args.port + 5 if args.port else free_port()))
        elapsed = time.monotonic() - started
        report(servers, samples, extra, cfg, elapsed, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"samples": samples, "shoebox": extra}, f, indent=1)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(cfg.work, ignore_errors=True)


def verify_gets(servers, cfg):
    """Every server returns the same bytes for the full files and for a Range."""
    want = {n: open(cfg.files[n], "rb").read() for n in ("small.bin", "large.bin")}
    for s in servers:
        for name, url in (("small.bin", s.small_url()), ("large.bin", s.large_url())):
            path = urllib.parse.urlparse(url).path
            status, _, body = fetch(s.port, path)
            if status != 200 or body != want[name]:
                raise RuntimeError(f"{s.name}: GET {path} gave {status}, {len(body)} bytes")
            status, headers, body = fetch(s.port, path, {"Range": "bytes=1000-2999"})
            if status != 206 or body != want[name][1000:3000]:
                raise RuntimeError(f"{s.name}: a Range GET of {path} gave {status}")


def fmt(v, unit):
    if v is None:
        return "—"
    if unit == "ms":
        return f"{v:.2f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def spread(vals, unit):
    if len(vals) < 2:
        return fmt(vals[0], unit)
    return f"{fmt(statistics.median(vals), unit)} ({fmt(min(vals), unit)}–{fmt(max(vals), unit)})"


# The machine's own limits, printed under the workloads they bound.
REFERENCE_ROWS = [
    ("openssl_mib_s", "  openssl dgst -sha256", "MiB/s"),
    ("dd_fsync_mib_s", "  dd bs=1M conv=fsync", "MiB/s"),
    ("durable_creates_s", "  fsync'd file creations, 8 conc.", "files/s"),
    ("protocol_s", "  write protocol alone, 8 conc.", "files/s"),
    ("protocol_records_s", "  + a record file each, synced after", "files/s"),
    ("protocol_syncfs_s", "  protocol, one syncfs per group", "files/s"),
]


def report(servers, samples, extra, cfg, elapsed, args):
    names = [s.name for s in servers]
    peers = [n for n in names if n != "shoebox"]
    med = {n: {k: statistics.median(v) for k, v in samples[n].items()} for n in samples}
    out = []
    out.append(f"Shoebox benchmark: {cfg.rounds} round(s), {cfg.duration} s per wrk run, "
               f"{elapsed / 60:.1f} min in all")  # fmt: skip
    out.append(f"machine: {machine()}")
    out.append("figures: median over the rounds (min–max); ratios are Shoebox / peer medians")
    out.append("")
    head = ["workload", "unit"] + names + [f"÷{p}" for p in peers]
    rows = []
    for key, label, unit, higher in ROWS:
        if not any(key in samples[n] for n in names):
            continue
        row = [label, unit]
        for n in names:
            row.append(spread(samples[n][key], unit) if key in samples[n] else "—")
        sb = med["shoebox"].get(key)
        for p in peers:
            pv = med[p].get(key)
            row.append(f"{sb / pv:.2f}×" if sb and pv else "—")
        rows.append(row)
    ref = samples["reference"]
    for key, label, unit in REFERENCE_ROWS:
        if key in ref:
            rows.append([label, unit, spread(ref[key], unit)] + [""] * (len(head) - 3))
    out += table(head, rows)
    out.append("")
    if extra:
        out.append("Shoebox alone:")
        labels = [
            ("idle_rss", "idle RSS", "MiB"),
            ("gib_upload_peak_rss", "peak RSS during a 1 GiB upload", "MiB"),
            ("gib_upload_mib_s", "1 GiB upload", "MiB/s"),
            ("records_per_s", f"{cfg.records:,} records created via the API", "records/s"),
            ("page_p50_ms", "collection page (50 of 1/10 of them), p50", "ms"),
            ("page_p99_ms", "collection page, p99", "ms"),
            ("startup_s", "start-up on that store (median of 3)", "s"),
            ("startup_after_kill_s", "start-up after a SIGKILL (every record file read)", "s"),
            ("meta_peak_rss", "peak RSS while creating them and listing", "MiB"),
            ("status_ms", "GET /api/status on that store, median of 5", "ms"),
            ("metrics_ms", "GET /metrics on that store, median of 5", "ms"),
            ("status_fresh_ms", "GET /api/status after a restart, median of 5", "ms"),
            ("metrics_fresh_ms", "GET /metrics after a restart, median of 5", "ms"),
            ("status_max_ms", "slowest of those 20 calls", "ms"),
            ("started_rss", "RSS after a restart", "MiB"),
            ("walked_rss", "  after a collection walk, status and metrics", "MiB"),
            ("fresh_rss", "  after listing every record as well", "MiB"),
            ("fresh_peak_rss", "  peak RSS of that process", "MiB"),
            ("killed_start_peak_rss", "peak RSS of the start after a SIGKILL", "MiB"),
        ]
        out += table(["", "unit", "shoebox"],
                     [[l, u, fmt(extra[k], u)] for k, l, u in labels if k in extra])  # fmt: skip
        out.append("")
    out += targets(med, samples, extra, peers)
    print("\n".join(out))


def targets(med, samples, extra, peers):
    sb = med["shoebox"]
    lines = ["Targets:"]

    def best(key):
        vals = [med[p][key] for p in peers if key in med[p] and p != "nginx"]
        return max(vals) if vals else None

    def check(label, value, goal, ok):
        if value is None or goal is None:
            return
        lines.append(f"  [{'met ' if ok else 'MISS'}] {label}: {value:.2f} (target {goal})")

    def ratio(key, other):
        return sb[key] / other if key in sb and other else None

    r = ratio("small_rps", best("small_rps"))
    check("small GETs ÷ best of dufs/miniserve", r, "≥ 1.0", r is not None and r >= 1.0)
    r = ratio("small_rps", med.get("nginx", {}).get("small_rps"))
    check("small GETs ÷ nginx", r, "≥ 0.8", r is not None and r >= 0.8)
    r = ratio("large_mib_s", med.get("nginx", {}).get("large_mib_s"))
    check("large GETs ÷ nginx", r, "≥ 0.9", r is not None and r >= 0.9)
    vals = [med[p]["range_rps"] for p in peers if "range_rps" in med[p]]
    r = ratio("range_rps", max(vals) if vals else None)
    check("Range GETs ÷ best peer", r, "≥ 1.0", r is not None and r >= 1.0)
    ref = med.get("reference", {})
    if "openssl_mib_s" in ref and "upload_mib_s" in sb:
        limit = min(ref["openssl_mib_s"], ref["dd_fsync_mib_s"])
        r = sb["upload_mib_s"] / limit
        check("upload ÷ min(openssl sha256, dd fsync)", r, "≥ 0.8", r >= 0.8)
    r = ratio("many_files_s", best("many_files_s"))
    check("many uploads ÷ best peer", r, "≥ 1.0", r is not None and r >= 1.0)
    # Not targets: how close the uploads come to the disk's own limits, and whether the best
    # peer (which does not fsync) is above them. The simplest durable file creation bounds any
    # durable store; Shoebox's protocol alone (no HTTP, hashing or database) bounds Shoebox, and
    # a peer above it is out of reach whatever the server code does.
    for key, label in (("durable_creates_s", "fsync'd file creations"),
                       ("protocol_records_s", "Shoebox's write protocol alone")):  # fmt: skip
        if key not in ref or "many_files_s" not in sb:
            continue
        bound = ref[key]
        lines.append(f"  [info] many uploads ÷ {label}: {sb['many_files_s'] / bound:.2f}")
        peer = best("many_files_s")
        if peer:
            lines.append(f"  [info] best peer ÷ {label}: {peer / bound:.2f}")
    # The bound on any durable server with this layout: DESIGN's protocol with the fsyncs of
    # concurrent uploads batched as far as the kernel allows (one syncfs per group). A peer
    # above it is out of reach for a server that makes each upload durable before its 201.
    # (dd's fsync'd rate is no such bound: the host caches a 256 MiB stream differently from
    # many small files, and small files have been made durable faster than dd writes.)
    peer = best("many_files_s")
    if peer and "protocol_syncfs_s" in ref:
        r = peer / ref["protocol_syncfs_s"]
        lines.append(f"  [info] best peer ÷ protocol with one syncfs per group: {r:.2f}"
                     + (" (above 1: out of reach for any durable server)" if r > 1 else ""))
    if "gib_upload_peak_rss" in extra:
        v = extra["gib_upload_peak_rss"]
        check("peak RSS during a 1 GiB upload, MiB", v, "< 64", v < 64)
        v = extra["idle_rss"]
        check("idle RSS, MiB", v, "< 30", v < 30)
    if "page_p99_ms" in extra:
        v = extra["page_p99_ms"]
        check("collection page p99, ms", v, "< 5", v < 5)
        v = extra["startup_s"]
        check("start-up on that store, s", v, "< 1", v < 1)
    if "status_max_ms" in extra:
        v = extra["status_max_ms"]
        check("slowest /api/status or /metrics call, ms", v, "< 50", v < 50)
        v = extra["fresh_peak_rss"]
        check("peak RSS after a restart, listings, status, metrics, MiB", v, "< 96", v < 96)
    return lines


def table(head, rows):
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    cpu = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {os.uname().release}"


if __name__ == "__main__":
    main()
