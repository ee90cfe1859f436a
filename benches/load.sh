#!/usr/bin/env bash
# The side-by-side load benchmark (see benches/load.py): installs Postfix
# from Debian for smtp-source, smtp-sink and the instance to compare with
# (its own service stays off), builds postern in release mode, and runs
# both MTAs under the same load on loopback. Needs root. Arguments go to
# load.py: --runs N, --cases 4k,4k-reuse,100k,10rcpt,4k-tls,lat-200,lat-1000, --scale F.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix python3
fi
cargo build --release --locked
exec python3 benches/load.py "$@"
