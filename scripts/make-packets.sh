#!/usr/bin/env bash
# Builds the example packets from their sources into DEST (default: packets/ of this checkout).
# DEST/<name> must not exist yet: packet build never overwrites.
#   reference-docs             the documents of ../shared/reference, byte for byte
#   sqlite-rollback-rehearsal  a real rollback rehearsal by `packet rehearse` on a throwaway
#                              SQLite database: the database and its seed.sql, four changes,
#                              the evidence of each, the log and a RERUN.sh, rebuilt by
#                              rehearsing the changes sealed in packets/ again
# Environment: PACKET (the binary; default target/release/packet), REFERENCE (default
# ../shared/reference).
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

# The rehearsal's inputs (the seed database, its seed.sql, the changes) and its RERUN.sh have
# one source of truth: the sealed copies in the committed packet (verified first, so a changed
# input is refused rather than rebuilt from). Rebuilding rehearses every change again with
# `packet rehearse` and must reproduce the sealed evidence and log.
committed=$root/packets/sqlite-rollback-rehearsal
"$packet" verify "$committed" --quiet >/dev/null || {
  echo "make-packets: $committed does not verify; not rebuilding from it" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/changes" "$work/evidence"
cp -p "$committed/ledger.db" "$committed/seed.sql" "$committed/RERUN.sh" "$work/"
cp -p "$committed"/changes/*.sql "$work/changes/"
(
  cd "$work"
  for change in changes/*.sql; do
    id=$(basename "$change" .sql)
    "$packet" rehearse sqlite:ledger.db --apply "$change" -o "evidence/$id.json"
  done > rehearsal.log
)
"$packet" build "$dest/sqlite-rollback-rehearsal" \
  "$work/ledger.db" "$work/seed.sql" "$work/changes" "$work/evidence" "$work/rehearsal.log" "$work/RERUN.sh"
