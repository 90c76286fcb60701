#!/usr/bin/env python3
"""Two Shoebox instances against one, both sharing a 3-node Garage cluster (the blobs) and
PostgreSQL (the records), behind nginx on loopback; with Shoebox on its own disk and Garage
itself in the same run, for reference.

Run it through `benches/instances.sh`, which builds Shoebox and the upload client in release
mode first. In one run:

- a Garage cluster of 3 nodes (replication 3), as `benches/cluster.py` starts it, with a bucket
  `blobs` for the shared store and `bench` for Garage's own figures;
- a PostgreSQL server of the machine's (initdb, pg_ctl; as the `postgres` user when run as
  root) on 127.0.0.1, with fsync on;
- two Shoebox instances with `--blob-store` (instance A through Garage node 0, B through node
  1) and `--database-url` on the same database, and two nginx front ends: one sending every
  request to A, one sharing them between A and B round-robin (keep-alive upstreams, no request
  or response buffering). The two front ends measure one instance against two through the
  same proxy;
- Shoebox on its own disk (the default), and Garage through node 0 (presigned GETs, boto3
  uploads), for reference;
- each round, for each target in an order that rotates: small GETs (4 KiB, 64 connections),
  1 MiB Range GETs of a 64 MiB file (8 connections), 200 distinct 256 KiB uploads 8 at a time,
  one 256 MiB upload: the workloads of `benches/cluster.py`.

Every loop is bounded in count and time (`--deadline`), and everything started here is stopped
and its files removed at exit, on failure or on SIGINT/SIGTERM too.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import harness  # noqa: E402

HOST = harness.HOST
KIB, MIB = harness.KIB, harness.MIB
log = harness.log
SECRET_KEY = "a-bench-key-of-more-than-32-characters-000000"


class Postgres:
    """The machine's PostgreSQL on 127.0.0.1, in a directory of its own."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="shoebox-bench-pg-")
        # PostgreSQL refuses to run as root: as root, it runs as `postgres`, which must reach
        # its directory.
        self.as_root = os.geteuid() == 0
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.port = harness.free_port()

    def run(self, *args):
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {out.stdout} {out.stderr}")

    def start(self):
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--locale=C", "--no-sync")  # fmt: skip
        opts = f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c max_connections=200"
        self.run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"), "-o", opts,
                 "-w", "start")  # fmt: skip
        self.run("createdb", "-h", HOST, "-p", str(self.port), "-U", "postgres", "shoebox")

    def url(self):
        return f"postgres://postgres@{HOST}:{self.port}/shoebox"

    def stop(self):
        try:
            self.run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except Exception as e:  # noqa: BLE001 - stopping is best effort
            log(f"stopping PostgreSQL: {e}")
        shutil.rmtree(self.root, ignore_errors=True)


class Instance(cluster.ShoeboxGarage):
    """A Shoebox instance of the shared store: blobs on Garage through `node`, records in
    PostgreSQL."""

    def __init__(self, name, port, workdir, binary, garage, node, pg):
        self.name = name
        self.node, self.pg = node, pg
        super().__init__(port, workdir, binary, garage)

    def env(self):
        env = super().env()
        env["SHOEBOX_DATABASE_URL"] = self.pg.url()
        env["SHOEBOX_SECRET_KEY"] = SECRET_KEY
        return env

    def command(self):
        q = urllib.parse.urlencode({"endpoint": self.garage.endpoint(self.node), "region": "garage"})
        return harness.Shoebox.command(self) + ["--blob-store", f"s3://blobs?{q}"]


class Front(harness.Server):
    """nginx in front of some instances, round-robin; the URLs are those of the shared
    store's files, which every instance serves."""

    def __init__(self, name, label, port, workdir, upstreams, hashes):
        self.name, self.label = name, label
        self.upstreams, self.hashes = upstreams, hashes
        super().__init__(port, workdir)

    def command(self):
        servers = "\n".join(f"    server {HOST}:{p};" for p in self.upstreams)
        conf = harness.nginx_conf(self.dir, 2, f"""
  upstream shoebox {{
{servers}
    keepalive 128;
  }}
  server {{
    listen {HOST}:{self.port};
    client_max_body_size 0;
    location / {{
      proxy_pass http://shoebox;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }}
  }}""")
        return ["nginx", "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")]

    def ready_path(self):
        return "/api/health"

    def small_url(self):
        return f"http://{HOST}:{self.port}/f/{self.hashes['small.bin']}"

    def large_url(self):
        return f"http://{HOST}:{self.port}/f/{self.hashes['large.bin']}"

    def peak_rss_mib(self):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the shoebox release binary")
    ap.add_argument("--client", required=True, help="the bench-client binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per timed wrk run")
    ap.add_argument("--small-size", type=int, default=4 * KIB)
    ap.add_argument("--large-size", type=int, default=64 * MIB)
    ap.add_argument("--many-count", type=int, default=200)
    ap.add_argument("--many-size", type=int, default=256 * KIB)
    ap.add_argument("--many-parallel", type=int, default=8)
    ap.add_argument("--upload-size", type=int, default=256 * MIB)
    ap.add_argument("--only", default="", help="comma list of workloads: small,range,many,upload")
    ap.add_argument("--deadline", type=int, default=1200,
                    help="seconds for the rounds: no round starts after it")  # fmt: skip
    a = ap.parse_args()
    if a.large_size < 2 * MIB or a.rounds < 1:
        ap.error("--large-size must be at least 2 MiB, --rounds at least 1")
    cfg = cluster.configure(a)
    only = set(filter(None, a.only.split(",")))
    workloads = [(n, f) for n, f in cluster.WORKLOADS
                 if n != "nocache" and (not only or n in only)]  # fmt: skip
    for tool in ("garage", "wrk", "nginx", "initdb", "pg_ctl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not on PATH (benches/instances.sh says how to get it)")

    harness.unwind_on_term()

    cfg.work = tempfile.mkdtemp(prefix="shoebox-instances-bench-")
    garage = pg = None
    servers = []
    started = time.monotonic()
    try:
        cluster.make_sources(cfg, a)
        garage, g = cluster.ready_garage(cfg.work, ["blobs", "bench"])
        pg = Postgres()
        pg.start()
        log(f"garage ready; PostgreSQL on port {pg.port}")

        a_inst = Instance("instance-a", harness.free_port(), cfg.work, cfg.binary, garage, 0, pg)
        servers.append(a_inst)
        a_inst.start()
        b_inst = Instance("instance-b", harness.free_port(), cfg.work, cfg.binary, garage, 1, pg)
        servers.append(b_inst)
        b_inst.start()
        for name in ("small.bin", "large.bin"):
            a_inst.publish(cfg.files[name], name)
        one = Front("one", "one instance", harness.free_port(), cfg.work,
                    [a_inst.port], a_inst.hashes)  # fmt: skip
        two = Front("two", "two instances", harness.free_port(), cfg.work,
                    [a_inst.port, b_inst.port], a_inst.hashes)  # fmt: skip
        disk = cluster.ShoeboxDisk(harness.free_port(), cfg.work, cfg.binary)
        for s in (one, two, disk):
            servers.append(s)
            s.start()
        for name in ("small.bin", "large.bin"):
            disk.publish(cfg.files[name], name)
        g.publish(cfg.files["g-small.bin"], "small.bin")
        g.publish(cfg.files["g-large.bin"], "large.bin")
        targets = [one, two, disk, g]
        for t in targets:
            p = "g-" if t is g else ""
            cluster.verify_gets(t, {n: cfg.files[p + n] for n in ("small.bin", "large.bin")})
        log("targets ready; GETs verified through every one")

        samples = {t.name: {} for t in targets}
        stop_at = time.monotonic() + a.deadline
        rounds_run = 0
        for rnd in range(a.rounds):
            if time.monotonic() > stop_at:
                log(f"deadline reached: {rounds_run} round(s) run")
                break
            order = targets[rnd % len(targets):] + targets[: rnd % len(targets)]
            log(f"round {rnd + 1}/{a.rounds}: {', '.join(t.label for t in order)}")
            for wname, fn in workloads:
                for t in order:
                    if rnd == 0 and wname in ("small", "range"):
                        harness.run_wrk(t.large_url() if wname == "range" else t.small_url(), 2, 8, 1)
                    res = fn(t, cfg, rnd)
                    for k, v in res.items():
                        samples[t.name].setdefault(k, []).append(v)
                    log(f"  {wname:7} {t.label:16} " + "  ".join(f"{k}={v:.1f}" for k, v in res.items()))
            rounds_run += 1
        for s in servers:
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited with {s.proc.returncode}")
        report(targets, samples, a, rounds_run, time.monotonic() - started, cfg)
    finally:
        for s in servers:
            s.stop()
        if garage:
            garage.stop()
        if pg:
            pg.stop()
        shutil.rmtree(cfg.work, ignore_errors=True)


def report(targets, samples, a, rounds, elapsed, cfg):
    rows_def = [
        ("small_rps", f"small GETs {cluster.size_label(a.small_size)}, 64 conns", "req/s"),
        ("small_p99", "  p99 latency", "ms"),
        ("range_mib_s", f"1 MiB Range GETs of {cluster.size_label(a.large_size)}, 8 conns", "MiB/s"),
        ("many_s", f"uploads {a.many_count} x {cluster.size_label(a.many_size)}, "
                   f"{a.many_parallel} conc.", "uploads/s"),
        ("upload_mib_s", f"upload {cluster.size_label(a.upload_size)}", "MiB/s"),
    ]  # fmt: skip
    out = ["", f"Shoebox instances sharing Garage and PostgreSQL, behind nginx: {rounds} round(s), "
               f"{cfg.duration} s per wrk run, {elapsed / 60:.1f} min in all",
           f"machine: {harness.machine()}", "figures: median over the rounds (min–max)", ""]  # fmt: skip
    labels = {"one": "one instance", "two": "two instances",
              "shoebox-disk": "Shoebox on disk", "garage": "Garage itself"}  # fmt: skip
    head = ["workload", "unit"] + [labels[t.name] for t in targets]
    rows = []
    for key, label, unit in rows_def:
        if not any(key in samples[t.name] for t in targets):
            continue
        rows.append([label, unit] + [cluster.spread(samples[t.name][key], unit)
                                     if key in samples[t.name] else "—" for t in targets])  # fmt: skip
    out += harness.table(head, rows)
    out.append("")
    out.append("two instances / one instance (medians; target ≥ 0.9×, lower is better for p99):")
    for key, label, unit in rows_def:
        one, two = samples["one"].get(key), samples["two"].get(key)
        if one and two:
            out.append(f"  {label.strip():45} {statistics.median(two) / statistics.median(one):.2f}×")
    out.append("")
    out.append("Everything shares the machine's cores: the load generator, nginx, both instances, "
               "the 3 Garage nodes and PostgreSQL.")  # fmt: skip
    print("\n".join(out))


if __name__ == "__main__":
    main()
