#!/bin/sh
# Re-runs the rollback rehearsal with packet itself: copies the sealed seed database and
# changes into a fresh temporary directory, rehearses every change there as
# `packet rehearse sqlite:ledger.db --apply changes/ID.sql -o evidence/ID.json` (on a copy
# that packet makes with SQLite's backup API, in a transaction it rolls back), compares the
# evidence and the log with the sealed ones byte for byte, checks every evidence file with
# `packet check-rollback`, and checks the seal with sha256sum. The tool's version and the
# SQLite version it bundles, recorded in the evidence, are left out of the comparison: a newer
# packet must reproduce the same digests, not the same version strings.
# Needs packet (PACKET, else on PATH) and GNU coreutils. Exits non-zero on any difference.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
packet=${PACKET:-packet}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/changes" "$tmp/evidence"
cp "$here/ledger.db" "$tmp/"
cp "$here"/changes/*.sql "$tmp/changes/"
cd "$tmp"
for change in changes/*.sql; do
  id=$(basename "$change" .sql)
  "$packet" rehearse sqlite:ledger.db --apply "$change" -o "evidence/$id.json"
done > rehearsal.log
cmp rehearsal.log "$here/rehearsal.log"
for f in evidence/*.json; do
  grep -v -e '"tool":' -e '"engine_version":' "$f" > "$f.cmp"
  grep -v -e '"tool":' -e '"engine_version":' "$here/$f" | cmp - "$f.cmp"
done
"$packet" check-rollback --quiet "$here"/evidence/*.json
(cd "$here" && sha256sum -c --strict --quiet HASH_MANIFEST.txt && sha256sum -c --strict --quiet packet_tree.sha256)
echo "RERUN PASS: rehearsal reproduced by packet rehearse; evidence checked; seal intact"
