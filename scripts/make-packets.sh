#!/usr/bin/env bash
# Builds the example packets from their sources into DEST (default: packets/ of this checkout).
# DEST/<name> must not exist yet: packet build never overwrites.
#   reference-docs             the documents of ../shared/reference, byte for byte
#   sqlite-rollback-rehearsal  a real rollback rehearsal on a throwaway SQLite database:
#                              the script, its log, its rollback evidence and its RERUN.sh
# Environment: PACKET (the binary; default target/release/packet), REFERENCE (default
# ../shared/reference). Needs python3 with sqlite3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/packets}
packet=${PACKET:-$root/target/release/packet}
reference=${REFERENCE:-$root/../shared/reference}
mkdir -p "$dest"

if [ -d "$reference" ]; then
  "$packet" build "$dest/reference-docs" "$reference"
else
  echo "make-packets: $reference not found; reference-docs not built" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root/rehearsal/sqlite_rollback_rehearsal.py" "$root/rehearsal/RERUN.sh" "$work/"
python3 "$work/sqlite_rollback_rehearsal.py" "$work" > "$work/rehearsal.log"
"$packet" build "$dest/sqlite-rollback-rehearsal" \
  "$work/sqlite_rollback_rehearsal.py" "$work/rehearsal.log" "$work/rollback-evidence.json" "$work/RERUN.sh"
