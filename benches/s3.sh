#!/usr/bin/env bash
# The S3 API side by side with Shoebox's own upload and download, and with Garage when a
# `garage` binary is on PATH (`cargo install garage --locked`): builds Shoebox in release mode,
# installs boto3 when it is missing, then runs benches/s3.py, which prints the table.
#
#   benches/s3.sh                            # 3 rounds, one 256 MiB object each
#   benches/s3.sh --size 33554432 --rounds 1 # a quick check
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import boto3' >/dev/null 2>&1; then
  python3 -m pip install --quiet boto3 || python3 -m pip install --quiet --user --break-system-packages boto3
fi
cargo build --release --quiet --bin shoebox
exec python3 benches/s3.py --binary target/release/shoebox "$@"
