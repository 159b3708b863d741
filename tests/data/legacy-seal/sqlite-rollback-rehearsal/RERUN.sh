#!/bin/sh
# Re-runs the SQLite rollback rehearsal in a fresh temporary directory and compares its output
# with the sealed evidence and log byte for byte, then checks the seal with sha256sum.
# Needs python3 (with its sqlite3 module) and GNU coreutils. Exits non-zero on any difference.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/sqlite_rollback_rehearsal.py" "$tmp" > "$tmp/rehearsal.log"
cmp "$tmp/rollback-evidence.json" "$here/rollback-evidence.json"
cmp "$tmp/rehearsal.log" "$here/rehearsal.log"
(cd "$here" && sha256sum -c --strict --quiet HASH_MANIFEST.txt && sha256sum -c --strict --quiet packet_tree.sha256)
echo "RERUN PASS: rehearsal reproduced byte for byte; seal intact"
