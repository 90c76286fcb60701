#!/usr/bin/env python3
"""Shoebox with its blobs on a 3-node Garage cluster, side by side with Shoebox on its own disk
and with Garage itself, on loopback.

Run it through `benches/cluster.sh`, which builds Shoebox and the upload client in release mode
and installs boto3 first. In one run:

- a Garage cluster of 3 nodes on 127.0.0.1 (replication 3, so quorum 2, Garage's defaults
  otherwise: sqlite metadata, 1 MiB blocks, zstd level 1, no fsync of data or metadata), with a
  bucket `blobs` for Shoebox and a bucket `bench` for Garage's own figures, one key on both;
- Shoebox with its blobs on its data disk (the default), and Shoebox with `--blob-store` on the
  cluster through node 0;
- each round (their order rotating from round to round), for each target:
  small GETs of a 4 KiB file (wrk, 2 threads, 64 connections), random 1 MiB Range GETs of a
  64 MiB file (wrk and benches/range.lua, 2 threads, 8 connections), 200 distinct 256 KiB
  uploads 8 at a time, and one 256 MiB upload. Shoebox gets `GET /f/{hash}` and its raw upload
  (`POST /api/media?filename=`, from the bench-client); Garage gets the same wrk runs against a
  presigned (SigV4, path-style) GET URL made with boto3, the Range header added by range.lua
  (it is not signed: a presigned URL signs only the host), and boto3 `put_object` for the
  uploads (8 threads for the small ones, one call for the large one);
- the peak RSS of each Shoebox (and of each Garage node, for information).

Garage's figures are the floor of what Shoebox adds on top of it, with two limits: its uploads
are driven by boto3, a Python client that hashes each body (sha256 for the signature, a CRC32
checksum) before it sends it, on the same two cores, so they bound Garage's rate from below;
and Shoebox's 256 MiB upload to the bucket is a multipart upload (16 MiB parts) where boto3's
`put_object` is one PUT.

All blobs are new content each round (Garage deduplicates its blocks cluster-wide). Every loop
is bounded in count and time (`--deadline`), and everything started here is stopped and its
files removed at exit, on failure or on SIGINT/SIGTERM too.
"""

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib

sys.dont_write_bytecode = True  # no __pycache__ beside the benches
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

HOST = harness.HOST
KIB, MIB = harness.KIB, harness.MIB
log = harness.log
REGION = "garage"
NODES = 3
# Ceiling for any wait on Garage (a node's CLI, the layout reaching a node, a bucket's key).
READY = 60
# Response headers over this (per 1 MiB Range response) mean a body that is not 1 MiB.
RANGE_HEADER_MAX = 2048


# --------------------------------------------------------------------------------------------
# Garage


class GarageCluster:
    """NODES Garage nodes on loopback, joined and laid out the way crates/testkit/src/garage.rs
    does it, with buckets and one key allowed on them."""

    def __init__(self, workdir, nodes=NODES):
        self.dir = os.path.join(workdir, "garage")
        os.makedirs(self.dir)
        self.rpc_secret = os.urandom(32).hex()
        self.admin_token = os.urandom(32).hex()
        self.nodes = []
        for i in range(nodes):
            d = os.path.join(self.dir, f"node{i}")
            os.makedirs(os.path.join(d, "meta"))
            os.makedirs(os.path.join(d, "data"))
            rpc, s3, admin = harness.free_port(), harness.free_port(), harness.free_port()
            conf = os.path.join(d, "garage.toml")
            with open(conf, "w") as f:
                f.write(f"""metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = {nodes}
rpc_secret = "{self.rpc_secret}"
rpc_bind_addr = "{HOST}:{rpc}"
rpc_public_addr = "{HOST}:{rpc}"

[s3_api]
api_bind_addr = "{HOST}:{s3}"
s3_region = "{REGION}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "{HOST}:{admin}"
admin_token = "{self.admin_token}"
""")
            self.nodes.append({"dir": d, "conf": conf, "s3": s3, "admin": admin, "proc": None,
                               "log": open(os.path.join(d, "garage.log"), "wb")})  # fmt: skip
        self.key = self.secret = None

    def env(self):
        # No GARAGE_* variable of the caller's (they override the config file); Garage's own
        # default log level, as deployed.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GARAGE_")}
        env["RUST_LOG"] = "netapp=info,garage=info"
        return env

    def start(self, buckets):
        for n in self.nodes:
            n["proc"] = subprocess.Popen(
                ["garage", "-c", n["conf"], "server"], stdout=n["log"], stderr=subprocess.STDOUT,
                env=self.env(), cwd=n["dir"], start_new_session=True,
            )  # fmt: skip
        addresses = [self.cli(i, "node", "id", "-q").strip() for i in range(len(self.nodes))]
        for i, n in enumerate(self.nodes):
            n["address"] = addresses[i]
            n["id"] = addresses[i].split("@")[0]
        for n in self.nodes[1:]:
            self.cli(0, "node", "connect", n["address"])
        for n in self.nodes:
            self.cli(0, "layout", "assign", "-z", "dc1", "-c", "1G", n["id"])
        self.cli(0, "layout", "apply", "--version", "1", retry=False)
        for i in range(len(self.nodes)):
            self.wait(f"node {i} healthy",
                      lambda i=i: '"status":"healthy"' in self.admin(i, "/v2/GetClusterHealth"))  # fmt: skip
        for i in range(len(self.nodes)):
            if not self.alive(i):
                raise RuntimeError(f"garage node {i} exited\n{self.tail(i)}")
        out = self.cli(0, "key", "create", "shoebox-bench", retry=False)
        self.key = re.search(r"Key ID:\s*(\S+)", out).group(1)
        self.secret = re.search(r"Secret key:\s*(\S+)", out).group(1)
        for b in buckets:
            self.cli(0, "bucket", "create", b, retry=False)
            self.cli(0, "bucket", "allow", "--read", "--write", "--owner", b, "--key", self.key,
                     retry=False)  # fmt: skip
        for i in range(len(self.nodes)):
            for b in buckets:
                self.wait(f"node {i} lists the key on bucket {b}",
                          lambda i=i, b=b: self.key in self.cli_once(i, "bucket", "info", b)[1])  # fmt: skip

    def alive(self, i):
        p = self.nodes[i]["proc"]
        return p is not None and p.poll() is None

    def wait(self, what, ok, timeout=READY):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.alive(i) for i in range(len(self.nodes))) and ok():
                return
            if not all(self.alive(i) for i in range(len(self.nodes))):
                dead = [i for i in range(len(self.nodes)) if not self.alive(i)]
                raise RuntimeError(f"garage node {dead[0]} exited\n{self.tail(dead[0])}")
            time.sleep(0.5)
        raise RuntimeError(f"garage: not {what} after {timeout}s\n{self.tail(0)}")

    def cli_once(self, i, *args):
        try:
            r = subprocess.run(["garage", "-c", self.nodes[i]["conf"], *args], capture_output=True,
                               text=True, env=self.env(), timeout=30)  # fmt: skip
        except subprocess.TimeoutExpired:
            return False, "", "timed out"
        return r.returncode == 0, r.stdout, r.stderr

    def cli(self, i, *args, retry=True):
        """`garage -c NODE.toml ARGS`, retried for up to READY seconds when `retry` (a node not
        up yet, a peer not known yet)."""
        deadline = time.monotonic() + (READY if retry else 0)
        while True:
            ok, out, err = self.cli_once(i, *args)
            if ok:
                return out
            if time.monotonic() >= deadline:
                raise RuntimeError(f"garage {' '.join(args)} on node {i}: {out}{err}\n{self.tail(i)}")
            time.sleep(0.5)

    def admin(self, i, path):
        try:
            c = http.client.HTTPConnection(HOST, self.nodes[i]["admin"], timeout=5)
            c.request("GET", path, headers={"Authorization": f"Bearer {self.admin_token}"})
            r = c.getresponse()
            body = r.read().decode(errors="replace")
            c.close()
            return "".join(body.split())
        except OSError as e:
            return str(e)

    def tail(self, i, lines=30):
        try:
            self.nodes[i]["log"].flush()
            with open(os.path.join(self.nodes[i]["dir"], "garage.log"), "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def endpoint(self, i=0):
        return f"http://{HOST}:{self.nodes[i]['s3']}"

    def peak_rss_mib(self):
        return [harness.status_field(n["proc"].pid, "VmHWM") / KIB if n["proc"] else 0
                for n in self.nodes]  # fmt: skip

    def stop(self):
        for n in self.nodes:
            p = n["proc"]
            if p is not None and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for n in self.nodes:
            p = n["proc"]
            if p is not None:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=5)
            n["log"].close()


def s3_client(endpoint, key, secret):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 1}, max_pool_connections=16,
                      connect_timeout=10, read_timeout=harness.IO_TIMEOUT),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Targets


class ShoeboxDisk(harness.Shoebox):
    name = "shoebox-disk"
    label = "Shoebox on disk"

    def __init__(self, port, workdir, binary, cached=True):
        # Without its file cache (small files kept in memory once served), every GET of the
        # small file reads the blob: the page cache on disk, a GET to the bucket on Garage.
        self.cached = cached
        if not cached:
            self.name += "-nocache"
        super().__init__(port, workdir, binary)

    def env(self):
        env = super().env()
        if not self.cached:
            env["SHOEBOX_FILE_CACHE"] = "0"
        return env


class ShoeboxGarage(ShoeboxDisk):
    name = "shoebox-garage"
    label = "Shoebox on Garage"

    def __init__(self, port, workdir, binary, garage, bucket="blobs", cached=True):
        self.garage = garage
        self.bucket = bucket
        super().__init__(port, workdir, binary, cached)

    def env(self):
        env = super().env()
        # The key in the environment, as the README advises, not on the command line.
        env["SHOEBOX_BLOB_STORE_ACCESS_KEY_ID"] = self.garage.key
        env["SHOEBOX_BLOB_STORE_SECRET_ACCESS_KEY"] = self.garage.secret
        return env

    def command(self):
        q = urllib.parse.urlencode({"endpoint": self.garage.endpoint(0), "region": REGION})
        return super().command() + ["--blob-store", f"s3://{self.bucket}?{q}"]


class GarageTarget:
    """Garage itself, through node 0: presigned GET URLs for wrk, boto3 for the uploads."""

    name = "garage"
    label = "Garage itself"

    def __init__(self, garage):
        self.garage = garage
        self.port = garage.nodes[0]["s3"]
        self.s3 = s3_client(garage.endpoint(0), garage.key, garage.secret)
        self.urls = {}

    def publish(self, path, name):
        with open(path, "rb") as f:
            self.s3.put_object(Bucket="bench", Key=name, Body=f)
        self.urls[name] = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": "bench", "Key": name}, ExpiresIn=6 * 3600
        )

    def small_url(self):
        return self.urls["small.bin"]

    def large_url(self):
        return self.urls["large.bin"]


# --------------------------------------------------------------------------------------------
# Workloads: each returns {metric: value} for one target in one round.


def get(url, headers=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=harness.IO_TIMEOUT)
    c.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def verify_gets(t, files):
    """Full bodies and a Range, byte for byte, before anything is timed."""
    for name, url in (("small.bin", t.small_url()), ("large.bin", t.large_url())):
        with open(files[name], "rb") as f:
            want = f.read()
        status, body = get(url)
        if status != 200 or body != want:
            raise RuntimeError(f"{t.label}: GET {name} gave {status}, {len(body)} bytes")
        status, body = get(url, {"Range": "bytes=1000-2999"})
        if status != 206 or body != want[1000:3000]:
            raise RuntimeError(f"{t.label}: a Range GET of {name} gave {status}")


def check_wrk(t, r):
    if r["errors"] or r["socket_errors"] or r["requests"] == 0:
        raise RuntimeError(f"{t.label}: wrk saw errors\n{r['raw']}")


def w_small(t, cfg, _rnd):
    r = harness.run_wrk(t.small_url(), 2, 64, cfg.duration)
    check_wrk(t, r)
    return {"small_rps": r["rps"], "small_p99": r["p99_ms"]}


def w_small_nocache(t, cfg, _rnd):
    r = harness.run_wrk(t.small_url(), 2, 64, cfg.duration)
    check_wrk(t, r)
    return {"small_nocache_rps": r["rps"], "small_nocache_p99": r["p99_ms"]}


def w_range(t, cfg, _rnd):
    script = os.path.join(harness.HERE, "range.lua")
    # A short run that checks every status (handing 1 MiB bodies to Lua costs wrk too much for
    # the timed run), then the timed run, whose exact byte count must add up to 1 MiB bodies.
    c = harness.run_wrk(t.large_url(), 2, 8, 1, script, [cfg.large_size, "check"])
    check_wrk(t, c)
    if c["not_206"] != 0:
        raise RuntimeError(f"{t.label}: {c['not_206']} range responses were not 206")
    r = harness.run_wrk(t.large_url(), 2, 8, cfg.duration, script, [cfg.large_size])
    check_wrk(t, r)
    n, total = r["exact"]
    span = MIB + RANGE_HEADER_MAX
    if not n * MIB <= total <= n * span + 8 * span:
        raise RuntimeError(f"{t.label}: {n} range responses brought {total} bytes")
    return {"range_mib_s": r["rps"]}  # 1 MiB bodies: requests/s is MiB/s of body


def client(cfg, *args):
    out = subprocess.run([cfg.client, *map(str, args)], capture_output=True, text=True,
                         timeout=harness.IO_TIMEOUT * 5)  # fmt: skip
    m = re.search(r"seconds=([\d.]+) ok=(\d+) failed=(\d+) first_error=(.*)", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"upload client failed: {out.stdout} {out.stderr}")
    if int(m.group(3)):
        raise RuntimeError(f"{args[0]}: {m.group(3)} uploads failed, first: {m.group(4)}")
    return float(m.group(1))


def fresh(path, size):
    """New random bytes: nothing Garage or Shoebox holds already (Garage deduplicates blocks)."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def w_many(t, cfg, rnd):
    # A seed of each target's own, so that no two targets upload the same bytes.
    seed = 1000 + 10 * rnd + zlib.crc32(t.name.encode()) % 10_000 * 100
    os.sync()
    if isinstance(t, GarageTarget):
        body = os.urandom(cfg.many_size)
        tag = f"{seed:016x}"

        def put(i):
            # Distinct bytes for each object, as the bench-client sends them.
            head = f"{tag}{i:016x}".encode()
            t.s3.put_object(Bucket="bench", Key=f"many/{seed}/{i}", Body=head + body[len(head):])

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(cfg.many_parallel) as pool:
            futures = [pool.submit(put, i) for i in range(cfg.many_count)]
            for f in concurrent.futures.as_completed(futures, timeout=harness.IO_TIMEOUT * 5):
                f.result()
        secs = time.perf_counter() - start
    else:
        secs = client(cfg, "many", "shoebox", t.port, cfg.many_count, cfg.many_size,
                      cfg.many_parallel, seed)  # fmt: skip
    return {"many_s": cfg.many_count / secs}


def w_upload(t, cfg, rnd):
    path = cfg.files["upload.bin"]
    fresh(path, cfg.upload_size)
    os.sync()  # nobody pays for someone else's writeback
    if isinstance(t, GarageTarget):
        start = time.perf_counter()
        with open(path, "rb") as f:
            t.s3.put_object(Bucket="bench", Key=f"upload-{rnd}.bin", Body=f)
        secs = time.perf_counter() - start
    else:
        secs = client(cfg, "file", "shoebox", t.port, path, f"upload-{rnd}.bin")
    return {"upload_mib_s": cfg.upload_size / MIB / secs}


WORKLOADS = [("small", w_small), ("nocache", w_small_nocache), ("range", w_range),
             ("many", w_many), ("upload", w_upload)]  # fmt: skip


# --------------------------------------------------------------------------------------------
# The run and the table


class Cfg:
    pass


def fmt(v, unit):
    if v is None:
        return "—"
    if unit == "ms":
        return f"{v:.2f}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def spread(vals, unit):
    if len(vals) < 2:
        return fmt(vals[0], unit)
    return f"{fmt(statistics.median(vals), unit)} ({fmt(min(vals), unit)}–{fmt(max(vals), unit)})"


def configure(a):
    """The run's settings, from the arguments that every cluster bench takes."""
    cfg = Cfg()
    cfg.binary, cfg.client = os.path.abspath(a.binary), os.path.abspath(a.client)
    cfg.duration, cfg.large_size, cfg.upload_size = a.duration, a.large_size, a.upload_size
    cfg.many_count, cfg.many_size, cfg.many_parallel = a.many_count, a.many_size, a.many_parallel
    return cfg


def make_sources(cfg, a):
    """The files served and uploaded, under cfg.work/src: Garage's copies are other bytes than
    Shoebox's, so that no block is shared."""
    src = os.path.join(cfg.work, "src")
    os.makedirs(src)
    cfg.files = {n: os.path.join(src, n) for n in
                 ("small.bin", "large.bin", "g-small.bin", "g-large.bin", "upload.bin")}  # fmt: skip
    harness.make_file(cfg.files["small.bin"], a.small_size, 11)
    harness.make_file(cfg.files["large.bin"], a.large_size, 12)
    harness.make_file(cfg.files["g-small.bin"], a.small_size, 21)
    harness.make_file(cfg.files["g-large.bin"], a.large_size, 22)


def ready_garage(work, buckets):
    """A Garage cluster with these buckets, once a PUT works in each of them (the buckets and
    the key can be read at quorum everywhere; a first PUT may still wait for the new layout:
    tried for up to a minute), and Garage as a target. Stopped again if it never gets there."""
    t0 = time.monotonic()
    garage = GarageCluster(work)
    try:
        garage.start(buckets)
        g = GarageTarget(garage)
        deadline = time.monotonic() + READY
        while True:
            try:
                for b in buckets:
                    g.s3.put_object(Bucket=b, Key="probe", Body=b"probe")
                    g.s3.delete_object(Bucket=b, Key="probe")
                break
            except Exception as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"garage refuses a PUT: {e}\n{garage.tail(0)}")
                time.sleep(1)
    except BaseException:
        garage.stop()
        raise
    log(f"garage: {NODES} nodes ready in {time.monotonic() - t0:.1f}s "
        f"(S3 of node 0 on port {garage.nodes[0]['s3']})")  # fmt: skip
    return garage, g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the shoebox release binary")
    ap.add_argument("--client", required=True, help="the bench-client binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per timed wrk run")
    ap.add_argument("--small-size", type=int, default=4 * KIB, help="bytes of the small GET")
    ap.add_argument("--large-size", type=int, default=64 * MIB,
                    help="bytes of the file read in 1 MiB ranges (at least 2 MiB)")  # fmt: skip
    ap.add_argument("--many-count", type=int, default=200, help="small uploads per round")
    ap.add_argument("--many-size", type=int, default=256 * KIB, help="bytes of each small upload")
    ap.add_argument("--many-parallel", type=int, default=8)
    ap.add_argument("--upload-size", type=int, default=256 * MIB, help="bytes of the large upload")
    ap.add_argument("--only", default="", help="comma list of workloads: small,nocache,range,many,upload")
    ap.add_argument("--deadline", type=int, default=900,
                    help="seconds for the rounds: no round starts after it")  # fmt: skip
    ap.add_argument("--json", help="also write the raw samples here")
    a = ap.parse_args()
    if a.large_size < 2 * MIB or a.many_size < 64 or a.rounds < 1:
        ap.error("--large-size must be at least 2 MiB, --many-size 64 bytes, --rounds 1")

    cfg = configure(a)
    only = set(filter(None, a.only.split(",")))
    workloads = [(n, f) for n, f in WORKLOADS if not only or n in only]
    for tool in ("garage", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not on PATH (benches/cluster.sh says how to get it)")

    harness.unwind_on_term()

    cfg.work = tempfile.mkdtemp(prefix="shoebox-cluster-bench-")
    garage = None
    shoeboxes = []
    started = time.monotonic()
    try:
        log(f"work dir {cfg.work}")
        make_sources(cfg, a)
        garage, g = ready_garage(cfg.work, ["blobs", "blobs-nocache", "bench"])

        disk = ShoeboxDisk(harness.free_port(), cfg.work, cfg.binary)
        shoeboxes.append(disk)
        disk.start()
        bucket = ShoeboxGarage(harness.free_port(), cfg.work, cfg.binary, garage)
        shoeboxes.append(bucket)
        bucket.start()
        # The same two without their file cache, for the small GETs only (their own bucket:
        # two stores do not share one).
        uncached = {}
        if "nocache" in dict(workloads):
            uncached["shoebox-disk"] = ShoeboxDisk(harness.free_port(), cfg.work, cfg.binary,
                                                   cached=False)  # fmt: skip
            uncached["shoebox-garage"] = ShoeboxGarage(harness.free_port(), cfg.work, cfg.binary,
                                                       garage, "blobs-nocache", cached=False)  # fmt: skip
        for s in uncached.values():
            shoeboxes.append(s)
            s.start()
        for s in shoeboxes:
            for name in ("small.bin", "large.bin"):
                s.publish(cfg.files[name], name)
        g.publish(cfg.files["g-small.bin"], "small.bin")
        g.publish(cfg.files["g-large.bin"], "large.bin")
        targets = [disk, bucket, g]
        for t in targets + list(uncached.values()):
            p = "g-" if t is g else ""
            verify_gets(t, {n: cfg.files[p + n] for n in ("small.bin", "large.bin")})
        # Shoebox on Garage must really keep its blobs in the bucket.
        for name in ("small.bin", "large.bin"):
            head = g.s3.head_object(Bucket="blobs", Key=f"blobs/{bucket.hashes[name]}")
            size = os.path.getsize(cfg.files[name])
            if head["ContentLength"] != size:
                raise RuntimeError(f"blobs/{bucket.hashes[name]}: {head['ContentLength']} bytes")
        log(f"targets: {disk.label} :{disk.port}, {bucket.label} :{bucket.port}, "
            f"{g.label} :{g.port}; GETs verified")  # fmt: skip

        samples = {t.name: {} for t in targets}
        stop_at = time.monotonic() + a.deadline
        rounds_run = 0
        for rnd in range(a.rounds):
            if time.monotonic() > stop_at:
                log(f"deadline of {a.deadline}s reached: {rounds_run} round(s) run")
                break
            order = targets[rnd % 3 :] + targets[: rnd % 3]
            log(f"round {rnd + 1}/{a.rounds}: {', '.join(t.label for t in order)}")
            for wname, fn in workloads:
                for t in order:
                    # The uncached Shoeboxes stand in for the others; Garage has no cache.
                    run = uncached.get(t.name, t) if wname == "nocache" else t
                    if wname == "nocache" and run is t:
                        continue
                    if rnd == 0 and wname in ("small", "nocache", "range"):  # warm-up
                        harness.run_wrk(run.large_url() if wname == "range" else run.small_url(),
                                        2, 8, 1)  # fmt: skip
                    res = fn(run, cfg, rnd)
                    for k, v in res.items():
                        samples[t.name].setdefault(k, []).append(v)
                    log(f"  {wname:7} {t.label:18} " + "  ".join(f"{k}={v:.1f}" for k, v in res.items()))
            rounds_run += 1
        for s in (disk, bucket):
            samples[s.name]["peak_rss"] = [s.peak_rss_mib()]
        garage_rss = garage.peak_rss_mib()
        # Every Shoebox and Garage node still runs: nothing crashed under the load.
        for s in shoeboxes:
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.label} exited with {s.proc.returncode}")
        for i in range(NODES):
            if not garage.alive(i):
                raise RuntimeError(f"garage node {i} exited\n{garage.tail(i)}")
        elapsed = time.monotonic() - started
        report(targets, samples, garage_rss, cfg, a, rounds_run, elapsed)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"samples": samples, "garage_peak_rss": garage_rss}, f, indent=1)
    finally:
        for s in shoeboxes:
            s.stop()
        if garage:
            garage.stop()
        shutil.rmtree(cfg.work, ignore_errors=True)


def size_label(n):
    if n % MIB == 0:
        return f"{n // MIB} MiB"
    if n % KIB == 0:
        return f"{n // KIB} KiB"
    return f"{n} B"


NOTES = """Notes:
- Shoebox keeps files up to 256 KiB in memory once served (--file-cache, 16 MiB by default): its
  small GETs do not reach the bucket, on Garage either. The "file cache off" row runs a second
  pair of Shoeboxes with SHOEBOX_FILE_CACHE=0, where each small GET reads the blob (the page
  cache on disk, a GET to Garage on Garage); Garage's one small-GET figure is the floor of both.
- Garage itself: the GETs are the same wrk runs as Shoebox's, against a presigned (SigV4,
  path-style) URL of node 0 made with boto3; the Range rows are wrk with range.lua adding the
  Range header to that URL (not boto3).
- Garage's uploads are boto3 put_object (8 threads for the small ones, one PUT for the large
  one): boto3 is a Python client that hashes every body (sha256 for SigV4, a CRC32) before it
  sends it, on the same cores, so these figures bound Garage's own from below. Shoebox's uploads
  come from the Rust bench-client.
- Shoebox on Garage sends uploads above 8 MiB as a multipart upload (8 MiB parts, 2 in
  flight, each with x-amz-checksum-sha256), after staging and hashing them in its tmp/; boto3's
  put_object is one PUT. Garage runs with its defaults: no fsync of data or metadata, zstd level
  1, 1 MiB blocks, every block written {nodes} times (replication {nodes}, one disk).
- Everything shares the 2 cores: wrk or the upload client, the Shoebox measured and the {nodes}
  Garage nodes (which stay up, idle, while the Shoebox on disk is measured)."""


def report(targets, samples, garage_rss, cfg, a, rounds, elapsed):
    rows_def = [
        ("small_rps", f"small GETs {size_label(a.small_size)}, 64 conns", "req/s", True),
        ("small_p99", "  p99 latency", "ms", False),
        ("small_nocache_rps", "  the same, Shoebox's file cache off", "req/s", True),
        ("small_nocache_p99", "  p99 latency, file cache off", "ms", False),
        ("range_mib_s", f"1 MiB Range GETs of {size_label(a.large_size)}, 8 conns", "MiB/s", True),
        ("many_s", f"uploads {a.many_count} x {size_label(a.many_size)}, {a.many_parallel} conc.",
         "uploads/s", True),
        ("upload_mib_s", f"upload {size_label(a.upload_size)}", "MiB/s", True),
        ("peak_rss", "Shoebox peak RSS over the run", "MiB", False),
    ]  # fmt: skip
    med = {t.name: {k: statistics.median(v) for k, v in samples[t.name].items()} for t in targets}
    out = [
        "",
        f"Shoebox on a {NODES}-node Garage cluster (replication {NODES}, loopback): {rounds} "
        f"round(s), {cfg.duration} s per wrk run, {elapsed / 60:.1f} min in all",
        f"machine: {harness.machine()}",
        "figures: median over the rounds (min–max)",
        "",
    ]
    head = ["workload", "unit"] + [t.label for t in targets]
    rows = []
    for key, label, unit, _ in rows_def:
        if not any(key in samples[t.name] for t in targets):
            continue
        rows.append([label, unit] + [spread(samples[t.name][key], unit)
                                     if key in samples[t.name] else "—" for t in targets])  # fmt: skip
    out += harness.table(head, rows)
    out.append("")
    out.append("ratios of medians (above 1 is more, below 1 is less; for latency and RSS lower is better):")
    rhead = ["workload", "Shoebox on Garage / Shoebox on disk", "Shoebox on Garage / Garage itself"]
    rrows = []
    for key, label, unit, _ in rows_def:
        b = med["shoebox-garage"].get(key)
        d = med["shoebox-disk"].get(key)
        # Garage has no file cache: its one small-GET figure is the floor for both rows.
        g = med["garage"].get(key.replace("_nocache", ""))
        if b is None:
            continue
        rrows.append([label.strip(), f"{b / d:.2f}×" if d else "—", f"{b / g:.2f}×" if g else "—"])
    out += harness.table(rhead, rrows)
    out.append("")
    out.append("Garage nodes' peak RSS over the run, MiB: "
               + ", ".join(f"node {i} {v:.0f}" for i, v in enumerate(garage_rss)))  # fmt: skip
    out.append("")
    out.append(NOTES.format(nodes=NODES))
    print("\n".join(out))


if __name__ == "__main__":
    main()
