#!/usr/bin/env bash
# Resumable uploads side by side: builds Shoebox in release mode, installs Node when it is
# missing (Debian's nodejs and npm) and the reference tus server (@tus/server, @tus/file-store,
# pinned in tests/clients/package.json) when tests/clients/node_modules is missing, then runs
# benches/tus.py, which prints the table.
#
#   benches/tus.sh                           # 5 rounds of one 256 MiB upload per configuration
#   benches/tus.sh --size 32MiB --rounds 1   # a quick check
#   benches/tus.sh --help                    # every option
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs npm" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
[ -d tests/clients/node_modules ] || npm ci --prefix tests/clients --no-audit --no-fund >&2

cargo build --release --quiet --bin shoebox
exec python3 benches/tus.py --binary target/release/shoebox "$@"
