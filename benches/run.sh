#!/usr/bin/env bash
# One command for the side-by-side benchmark: builds Shoebox in release mode, installs the
# references when they are missing (nginx and wrk from Debian's packages, dufs and miniserve
# with cargo install), then runs benches/harness.py, which prints the table.
#
#   benches/run.sh            # full run: 5 rounds, 100k records (about 12 minutes)
#   benches/run.sh --quick    # 1 round, 20k records (about 3 minutes)
#   benches/run.sh --help     # every option (rounds, durations, servers, workloads)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:${CARGO_HOME:-$HOME/.cargo}/bin"
for peer in dufs miniserve; do
  command -v "$peer" >/dev/null || cargo install --locked "$peer"
done

cargo build --release --quiet --bin shoebox --example bench-client --example bench-protocol
exec python3 benches/harness.py --binary target/release/shoebox \
  --client target/release/examples/bench-client "$@"
