#!/usr/bin/env bash
# Builds the example packets from their sources into DEST (default: packets/ of this checkout).
# DEST/<name> must not exist yet: packet build never overwrites.
#   reference-docs             the documents of ../shared/reference, byte for byte
#   sqlite-rollback-rehearsal  a real rollback rehearsal on a throwaway SQLite database:
#                              the script, its log, its rollback evidence and its RERUN.sh,
#                              rebuilt by running the script sealed in packets/ again
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

# The rehearsal script and its RERUN.sh have one source of truth: the sealed copies in the
# committed packet (verified first, so a changed script is refused rather than rebuilt from).
# Rebuilding runs the script again and must reproduce its log and evidence byte for byte.
committed=$root/packets/sqlite-rollback-rehearsal
"$packet" verify "$committed" --quiet >/dev/null || {
  echo "make-packets: $committed does not verify; not rebuilding from it" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -p "$committed/sqlite_rollback_rehearsal.py" "$committed/RERUN.sh" "$work/"
python3 "$work/sqlite_rollback_rehearsal.py" "$work" > "$work/rehearsal.log"
"$packet" build "$dest/sqlite-rollback-rehearsal" \
  "$work/sqlite_rollback_rehearsal.py" "$work/rehearsal.log" "$work/rollback-evidence.json" "$work/RERUN.sh"
