#!/usr/bin/env bash
# Thumbnails side by side: builds Shoebox in release mode, installs the references when they are
# missing (ImageMagick, libvips-tools and wrk from Debian's packages), then runs
# benches/pictures.py, which prints the table.
#
#   benches/pictures.sh               # 3 rounds of 24 photos (about 3 minutes)
#   benches/pictures.sh --help        # every option
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
identify -version 2>/dev/null | grep -q ImageMagick || missing+=(imagemagick)
command -v vipsthumbnail >/dev/null || missing+=(libvips-tools)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release --quiet --bin shoebox
exec python3 benches/pictures.py --binary target/release/shoebox "$@"
