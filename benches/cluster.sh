#!/usr/bin/env bash
# Shoebox with its blobs on a 3-node Garage cluster, side by side with Shoebox on its own disk
# and with Garage itself, on loopback: builds Shoebox and the upload client in release mode (in
# their own target directory, so that a run never replaces target/'s binaries), installs wrk
# and boto3 when they are missing, then runs benches/cluster.py, which prints the table.
# Garage must be on PATH (cargo install garage --locked --version 2.5.0).
#
#   benches/cluster.sh                  # 3 rounds (about 4 minutes on 2 cores)
#   benches/cluster.sh --rounds 1 --duration 2 --large-size 8388608 --many-count 40 \
#       --upload-size 33554432          # a quick check
#   benches/cluster.sh --help           # every option
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v garage >/dev/null; then
  echo "garage is not on PATH: cargo install garage --locked --version 2.5.0" >&2
  exit 1
fi
if ! command -v wrk >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq wrk >/dev/null
fi
if ! python3 -c 'import boto3' >/dev/null 2>&1; then
  python3 -m pip install --quiet boto3 || python3 -m pip install --quiet --user --break-system-packages boto3
fi
target="${BENCH_TARGET_DIR:-/tmp/bench-target}"
cargo build --release --quiet --bin shoebox --example bench-client --target-dir "$target"
exec python3 benches/cluster.py --binary "$target/release/shoebox" \
  --client "$target/release/examples/bench-client" "$@"
