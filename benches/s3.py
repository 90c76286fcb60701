#!/usr/bin/env python3
"""The S3 API against Shoebox's own upload and download, and against Garage, on loopback.

Run it through `benches/s3.sh`, which builds Shoebox in release mode first. In one run, each
round runs every workload once (rounds bounded in count and time), and the table shows medians:

- PUT of one `--size` object (256 MiB by default), each round a fresh file so that nothing is
  deduplicated: Shoebox's raw upload (`POST /api/media?filename=`, http.client streaming the
  file), boto3 `put_object` (one request; over plain HTTP boto3 reads the file twice before it
  sends a byte, for the sha256 it signs and a CRC32, and the server checks both and computes
  the MD5 that is the object's ETag) and
  boto3 `upload_file` (its managed transfer: 8 MiB parts, 10 at a time, then the completion);
- GET of the same object: `GET /f/{sha256}` read to the end with urllib3 (boto3's HTTP
  client), and boto3 `get_object`;
- 200 small PUTs (256 KiB), 8 at a time: the raw upload, and boto3 `put_object`.

Two rows send S3 requests with the raw upload's own client (http.client), through presigned
PUT URLs made beforehand: the client does the same work as for the raw upload, so these rows
show what the S3 path costs on the server alone (its MD5, the object's ETag, computed before
the `200`; the raw upload defers it).

The raw upload's MD5 is computed after its `201`, in the background, once uploads have been
quiet for two seconds. The run waits for it after each raw upload, so that it does not take
its CPU from the next workload; the time it took is shown as its own row.

When nginx is on PATH, it runs as a sink that reads and discards every body and answers 200:
boto3's figures against it are the client's own ceiling on this machine, the most any server
could reach with it (boto3 is pure Python, and over plain HTTP it hashes the whole body before
it sends it).

Shoebox acknowledges every upload only once it is durable (fsyncs). Garage runs with its
defaults, `metadata_fsync` and `data_fsync` off: it writes but does not fsync. When a
`garage` binary is on PATH (`cargo install garage --locked`), a single-node Garage runs beside
Shoebox on loopback and boto3 runs the same workloads against it.
"""

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import boto3  # noqa: E402
import urllib3  # noqa: E402  (boto3's HTTP client)
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config  # noqa: E402

HOST = harness.HOST
MIB = harness.MIB
SMALL, SMALL_COUNT, SMALL_PARALLEL = 256 * 1024, 200, 8
POOL = urllib3.PoolManager(timeout=harness.IO_TIMEOUT)
CEILING = "boto3's ceiling: nginx discarding"  # put_object only: it keeps and lists nothing


def s3_client(endpoint, key, secret, region="us-east-1"):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      max_pool_connections=16),
    )  # fmt: skip


class Shoebox(harness.Shoebox):
    def __init__(self, port, workdir, binary, s3_port):
        self.s3_port = s3_port
        super().__init__(port, workdir, binary)

    def command(self):
        return super().command() + ["--s3-port", str(self.s3_port)]

    def s3_key(self):
        c = http.client.HTTPConnection(HOST, self.port, timeout=30)
        c.request("POST", "/api/tokens", body=json.dumps({"name": "bench", "scope": "admin", "s3": True}),
                  headers={"Authorization": f"Bearer {harness.TOKEN}", "Content-Type": "application/json"})  # fmt: skip
        r = c.getresponse()
        v = json.loads(r.read())
        return v["access_key_id"], v["secret_access_key"]

    def raw_put(self, path, name):
        c = http.client.HTTPConnection(HOST, self.port, timeout=harness.IO_TIMEOUT)
        with open(path, "rb") as f:
            c.request("POST", "/api/media?filename=" + urllib.parse.quote(name), body=f,
                      headers={"Authorization": f"Bearer {harness.TOKEN}",
                               "Content-Length": str(os.path.getsize(path))})  # fmt: skip
            r = c.getresponse()
            status, body = r.status, r.read()
        c.close()
        if status != 201:
            raise RuntimeError(f"raw upload: {status} {body[:200]!r}")
        return json.loads(body)["items"][0]

    def wait_md5(self, s3, record, timeout=120):
        """Waits until the raw upload `record` has its MD5 (its ETag is no longer of the
        multipart form); returns the seconds waited."""
        key = f"{record['id']}/{record['filename']}"
        began = time.perf_counter()
        while time.perf_counter() - began < timeout:
            if "-" not in s3.head_object(Bucket="default", Key=key)["ETag"]:
                return time.perf_counter() - began
            time.sleep(0.05)
        raise RuntimeError(f"{key} got no MD5 within {timeout} s")

    def raw_get(self, hash_):
        """GET /f/{hash} read to the end with urllib3, the HTTP client boto3 reads with, in
        1 MiB reads as `boto_get` does, so that the two GETs differ only in the server."""
        r = POOL.request("GET", f"http://{HOST}:{self.port}/f/{hash_}", preload_content=False,
                         headers={"Authorization": f"Bearer {harness.TOKEN}"})  # fmt: skip
        n = sum(len(chunk) for chunk in r.stream(MIB))
        r.release_conn()
        if r.status != 200:
            raise RuntimeError(f"GET /f/{hash_}: {r.status}")
        return n


class Garage:
    """A single-node Garage on loopback, with a key and a bucket for the benchmark."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "garage")
        os.makedirs(self.dir)
        self.s3_port, rpc, admin = harness.free_port(), harness.free_port(), harness.free_port()
        self.conf = os.path.join(self.dir, "garage.toml")
        with open(self.conf, "w") as f:
            f.write(f"""metadata_dir = "{self.dir}/meta"
data_dir = "{self.dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_secret = "{os.urandom(32).hex()}"
rpc_bind_addr = "{HOST}:{rpc}"
rpc_public_addr = "{HOST}:{rpc}"
[s3_api]
api_bind_addr = "{HOST}:{self.s3_port}"
s3_region = "garage"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "{HOST}:{admin}"
""")
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(["garage", "-c", self.conf, "server"], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        node = self.cli("node", "id", "-q").split("@")[0].strip()
        self.cli("layout", "assign", "-z", "dc1", "-c", "10G", node)
        self.cli("layout", "apply", "--version", "1")
        self.cli("bucket", "create", "bench")
        out = self.cli("key", "create", "bench")
        self.key = re.search(r"Key ID:\s*(\S+)", out).group(1)
        self.secret = re.search(r"Secret key:\s*(\S+)", out).group(1)
        self.cli("bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench")

    def cli(self, *args):
        deadline = time.time() + 60
        while True:
            r = subprocess.run(["garage", "-c", self.conf, *args], capture_output=True, text=True)
            if r.returncode == 0:
                return r.stdout
            if time.time() > deadline:
                raise RuntimeError(f"garage {args}: {r.stderr}")
            time.sleep(0.5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.log.close()


class Sink:
    """nginx reading and discarding every request body: boto3's ceiling on this machine."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "sink")
        os.makedirs(self.dir)
        self.port = harness.free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        user = "user root;" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(f"""{user}
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/body;
  server {{
    listen {HOST}:{self.port};
    client_max_body_size 0;
    location / {{ add_header ETag '"sink"'; return 200 ''; }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        harness.wait_ready(self.port, "/", self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


def timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def fresh_file(workdir, size, tag):
    path = os.path.join(workdir, f"object-{tag}.bin")
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n
    # Written back now, so that the kernel's writeback does not compete with the first timed
    # upload.
    os.sync()
    return path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def presigned_put(url, body):
    """A PUT to a presigned URL with http.client, as the raw upload sends its body."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=harness.IO_TIMEOUT)
    size = os.fstat(body.fileno()).st_size if hasattr(body, "fileno") else len(body)
    c.request("PUT", f"{u.path}?{u.query}", body=body, headers={"Content-Length": str(size)})
    r = c.getresponse()
    status, text = r.status, r.read()
    c.close()
    if status != 200:
        raise RuntimeError(f"presigned PUT: {status} {text[:200]!r}")


def presign(s3, bucket, key):
    return s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)


def boto_put(s3, bucket, key, path):
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f)


def boto_get(s3, bucket, key):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    n = 0
    while chunk := body.read(MIB):
        n += len(chunk)
    return n


def many(f):
    """SMALL_COUNT calls of f(i), SMALL_PARALLEL at a time; objects a second."""
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(SMALL_PARALLEL) as pool:
        list(pool.map(f, range(SMALL_COUNT)))
    return SMALL_COUNT / (time.perf_counter() - t)


def wait_quiet(s3, timeout=120):
    """Waits until every raw upload has its MD5."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        pending = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="default"):
            pending += sum("-" in o["ETag"] for o in page.get("Contents", []))
        if not pending:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the small raw uploads got no MD5s within {timeout} s")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--size", type=int, default=256 * MIB)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--deadline", type=int, default=1800, help="seconds for the whole run")
    a = p.parse_args()
    stop_at = time.time() + a.deadline
    workdir = tempfile.mkdtemp(prefix="shoebox-s3-bench-")
    sb = Shoebox(harness.free_port(), workdir, a.binary, harness.free_port())
    garage = sink = None
    results = {}

    def note(name, value):
        results.setdefault(name, []).append(value)

    try:
        sb.start()
        key, secret = sb.s3_key()
        s3 = s3_client(f"http://{HOST}:{sb.s3_port}", key, secret)
        s3.create_bucket(Bucket="bench")
        targets = [("Shoebox", s3, sb)]
        if shutil.which("garage"):
            garage = Garage(workdir)
            g = s3_client(f"http://{HOST}:{garage.s3_port}", garage.key, garage.secret, "garage")
            deadline = time.time() + 60
            while True:  # a new layout takes a moment
                try:
                    g.put_object(Bucket="bench", Key="probe", Body=b"x")
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(1)
            targets.append(("Garage", g, None))
        else:
            harness.log("garage is not on PATH: its figures are left out (cargo install garage --locked)")
        if shutil.which("nginx"):
            sink = Sink(workdir)
            # Any key signs: the sink checks nothing.
            targets.append((CEILING, s3_client(f"http://{HOST}:{sink.port}", "sink", "sink"), None))
        else:
            harness.log("nginx is not on PATH: boto3's ceiling is left out")
        small = os.urandom(SMALL)
        for r in range(a.rounds):
            if time.time() > stop_at:
                harness.log("deadline reached")
                break
            harness.log(f"round {r + 1}/{a.rounds}")
            path = fresh_file(workdir, a.size, r)
            mib = a.size / MIB
            want = sha256_file(path)
            t, record = timed(lambda: sb.raw_put(path, f"raw-{r}.bin"))
            assert record["hash"] == want
            note("PUT raw (Shoebox REST)", mib / t)
            note("  then its MD5, after 2 s of quiet: seconds waited", sb.wait_md5(s3, record))
            url = presign(s3, "bench", f"presigned-{r}.bin")
            with open(path, "rb") as f:
                t, _ = timed(lambda: presigned_put(url, f))
            note("PUT presigned URL, http.client (Shoebox S3)", mib / t)
            assert s3.head_object(Bucket="bench", Key=f"presigned-{r}.bin")["ContentLength"] == a.size
            for label, client, _ in targets:
                t, _ = timed(lambda: boto_put(client, "bench", f"put-{r}.bin", path))
                note(f"PUT boto3 put_object ({label})", mib / t)
                if label == CEILING:
                    continue
                t, _ = timed(lambda: client.upload_file(path, "bench", f"mp-{r}.bin",
                                                        Config=TransferConfig()))  # fmt: skip
                note(f"PUT boto3 upload_file, multipart ({label})", mib / t)
            # Uploads bypass the page cache (O_DIRECT); a file being served is read from it. Each
            # GET is timed on its second read, from memory, as a served file usually is.
            sb.raw_get(record["hash"])
            t, n = timed(lambda: sb.raw_get(record["hash"]))
            assert n == a.size
            note("GET /f/{hash} (Shoebox REST)", mib / t)
            for label, client, _ in targets:
                if label == CEILING:
                    continue
                boto_get(client, "bench", f"put-{r}.bin")
                t, n = timed(lambda: boto_get(client, "bench", f"put-{r}.bin"))
                assert n == a.size
                note(f"GET boto3 get_object ({label})", mib / t)
            os.remove(path)
            # Small objects: each distinct, so nothing is deduplicated.
            tag = os.urandom(4).hex()

            def raw_small(i):
                body = small[:-16] + f"{tag}{i:08d}".encode()
                c = http.client.HTTPConnection(HOST, sb.port, timeout=60)
                c.request("POST", f"/api/media?filename=s{i}.bin", body=body,
                          headers={"Authorization": f"Bearer {harness.TOKEN}"})  # fmt: skip
                resp = c.getresponse()
                resp.read()
                c.close()
                assert resp.status == 201, resp.status

            note("200 small PUTs x8, raw (Shoebox REST), objects/s", many(raw_small))
            wait_quiet(s3)
            urls = [presign(s3, "bench", f"small/{tag}/p{i}") for i in range(SMALL_COUNT)]

            def presigned_small(i):
                presigned_put(urls[i], small[:-16] + f"{tag}p{i:07d}".encode())

            note("200 small PUTs x8, presigned, http.client (Shoebox S3), objects/s", many(presigned_small))
            for label, client, _ in targets:
                def boto_small(i, client=client):
                    body = small[:-16] + f"{tag}{i:08d}".encode()
                    client.put_object(Bucket="bench", Key=f"small/{tag}/{i}", Body=body)

                note(f"200 small PUTs x8, boto3 ({label}), objects/s", many(boto_small))
        rss = sb.peak_rss_mib()
    finally:
        sb.stop()
        if garage:
            garage.stop()
        if sink:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'workload':<64} {'median':>10} {'min':>9} {'max':>9}")
    for name, values in results.items():
        unit = "" if "objects/s" in name else " s" if "seconds" in name else " MiB/s"
        print(f"{name:<64} {statistics.median(values):>10.1f} {min(values):>9.1f} {max(values):>9.1f}{unit}")
    med = {k: statistics.median(v) for k, v in results.items()}
    print("\nratios (S3 / native):")
    for s3_name, native in [
        ("PUT boto3 put_object (Shoebox)", "PUT raw (Shoebox REST)"),
        ("PUT boto3 upload_file, multipart (Shoebox)", "PUT raw (Shoebox REST)"),
        ("GET boto3 get_object (Shoebox)", "GET /f/{hash} (Shoebox REST)"),
        ("200 small PUTs x8, boto3 (Shoebox), objects/s", "200 small PUTs x8, raw (Shoebox REST), objects/s"),
        ("PUT presigned URL, http.client (Shoebox S3)", "PUT raw (Shoebox REST)"),
        ("200 small PUTs x8, presigned, http.client (Shoebox S3), objects/s",
         "200 small PUTs x8, raw (Shoebox REST), objects/s"),
    ]:
        if s3_name in med and native in med:
            print(f"  {s3_name:<50} {med[s3_name] / med[native]:.2f}x")
    print(f"\nratios (Shoebox / {CEILING}):")
    for name in ["PUT boto3 put_object", "200 small PUTs x8, boto3"]:
        ours = next((v for k, v in med.items() if k.startswith(name) and "(Shoebox)" in k), None)
        top = next((v for k, v in med.items() if k.startswith(name) and CEILING in k), None)
        if ours and top:
            print(f"  {name:<50} {ours / top:.2f}x")
    print(f"\nShoebox peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
