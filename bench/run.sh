#!/usr/bin/env bash
# One command: installs the peers a fresh machine lacks (Debian: rhash, hashdeep, b3sum, GNU
# time; PyPI: bagit), builds packet and the small-file floor (examples/read_floor.rs) in
# release mode, and runs bench/run.py with any arguments given (e.g. --rounds 3 --only small).
# A peer that cannot be installed is skipped and named.
set -uo pipefail
cd "$(dirname "$0")/.."
need=()
for t in rhash hashdeep b3sum; do command -v "$t" >/dev/null 2>&1 || need+=("$t"); done
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}") >/dev/null 2>&1 \
    || echo "could not install ${need[*]}; those peers are skipped"
fi
command -v bagit.py >/dev/null 2>&1 || python3 -m pip install -q bagit >/dev/null 2>&1 || echo "could not install bagit; skipped"
cargo build --release --quiet || exit 1
# The small-file floor (Linux): the reads and hashes alone, the measure files/s is judged by.
cargo build --release --quiet --example read_floor || echo "read_floor did not build; its row is skipped"
exec python3 bench/run.py "$@"
