#!/usr/bin/env bash
# Two Shoebox instances against one, sharing a 3-node Garage cluster and PostgreSQL behind
# nginx, with Shoebox on its own disk and Garage itself in the same run: builds Shoebox and the
# upload client in release mode (in their own target directory), installs wrk, nginx and boto3
# when they are missing, then runs benches/instances.py, which prints the table. Garage must be
# on PATH (cargo install garage --locked --version 2.5.0), and PostgreSQL's initdb and pg_ctl.
#
#   benches/instances.sh                # 3 rounds
#   benches/instances.sh --rounds 1 --duration 2 --large-size 8388608 --many-count 40 \
#       --upload-size 33554432          # a quick check
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v garage >/dev/null; then
  echo "garage is not on PATH: cargo install garage --locked --version 2.5.0" >&2
  exit 1
fi
for tool in initdb pg_ctl; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is not on PATH: install PostgreSQL's server" >&2
    exit 1
  fi
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
for pkg in wrk nginx; do
  if ! command -v "$pkg" >/dev/null; then
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "$pkg" >/dev/null
  fi
done
if ! python3 -c 'import boto3' >/dev/null 2>&1; then
  python3 -m pip install --quiet boto3 || python3 -m pip install --quiet --user --break-system-packages boto3
fi
target="${BENCH_TARGET_DIR:-/tmp/bench-target}"
cargo build --release --quiet --bin shoebox --example bench-client --target-dir "$target"
exec python3 benches/instances.py --binary "$target/release/shoebox" \
  --client "$target/release/examples/bench-client" "$@"
