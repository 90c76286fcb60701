#!/usr/bin/env bash
# Quick performance check of a release build on loopback: one large upload against the
# machine's sha256 and fsync'd-write rates, many small uploads, small GETs, and peak memory.
# Bounded: every step has a fixed size or duration. Usage: benches/quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "installing $2"; apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need curl curl
need openssl openssl

cargo build --release --quiet
BIN=target/release/shoebox
WORK=$(mktemp -d)
PORT=${BENCH_PORT:-18080}
TOKEN=bench-token-0123456789abcdef
BASE=http://127.0.0.1:$PORT
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

RUST_LOG=warn SHOEBOX_ADMIN_TOKEN=$TOKEN "$BIN" serve --bind 127.0.0.1 --port "$PORT" \
  --data-dir "$WORK/data" --max-upload-bytes 2GiB >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "$BASE/api/health" >/dev/null && break; sleep 0.1; done

rss() { awk -v k="$1:" '$1 == k { print int($2 / 1024) " MiB" }' "/proc/$PID/status"; }
echo "idle RSS: $(rss VmRSS)"

# 1. One 256 MiB upload, next to openssl sha256 and an fsync'd dd of the same size.
head -c $((256 << 20)) /dev/urandom >"$WORK/big.bin"
sha=$( { /usr/bin/time -f %e openssl dgst -sha256 "$WORK/big.bin" >/dev/null; } 2>&1 )
ddt=$( { /usr/bin/time -f %e dd if="$WORK/big.bin" of="$WORK/dd.out" bs=1M conv=fsync status=none; } 2>&1 )
rm -f "$WORK/dd.out"
up=$(curl -sf -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" \
  --data-binary @"$WORK/big.bin" "$BASE/api/media?filename=big.bin")
awk -v t="$up" -v s="$sha" -v d="$ddt" 'BEGIN {
  printf "256 MiB upload: %.0f MiB/s   (openssl sha256: %.0f MiB/s, dd conv=fsync: %.0f MiB/s)\n", 256/t, 256/s, 256/d }'
echo "peak RSS after the 256 MiB upload: $(rss VmHWM)"

# 2. 200 distinct files of 256 KiB, 8 at a time.
python3 - "$BASE" "$TOKEN" <<'PY'
import http.client, os, sys, threading, time
base, token = sys.argv[1], sys.argv[2]
host, port = base.split("//")[1].split(":")
files = [os.urandom(256 * 1024) for _ in range(200)]
lock = threading.Lock(); todo = list(range(200)); failures = []
def worker():
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    while True:
        with lock:
            if not todo: break
            i = todo.pop()
        conn.request("POST", f"/api/media?filename=f{i}.bin", body=files[i],
                     headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse(); r.read()
        if r.status != 201: failures.append(r.status)
start = time.time()
threads = [threading.Thread(target=worker) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
elapsed = time.time() - start
print(f"200 x 256 KiB uploads, 8 concurrent: {200 / elapsed:.0f} files/s ({len(failures)} failures)")
PY

# 3. Small GETs of a 4 KiB file.
head -c 4096 /dev/urandom >"$WORK/small.bin"
hash=$(curl -sf -H "Authorization: Bearer $TOKEN" --data-binary @"$WORK/small.bin" \
  "$BASE/api/media?filename=small.bin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["hash"])')
for c in 1 64; do
  t=$(( c < 2 ? 1 : 2 ))
  wrk -t"$t" -c"$c" -d5s --latency "$BASE/f/$hash" >"$WORK/wrk.txt"
  rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")
  echo "small GETs (4 KiB), $c connection(s): $rps req/s, p99 $p99"
done
echo "peak RSS over the run: $(rss VmHWM)"
