#!/usr/bin/env python3
"""Writes the self-test's JSON fixtures, the way producers of evidence write them.

evidence.json: json.dumps(..., ensure_ascii=False, indent=2) -- non-ASCII stays raw, so
the self-test's ensure_ascii probe has something to escape.
rollback-evidence.json: a packet.rollback-evidence/1 document with two valid entries; the
digests are SHA-256 of small state descriptions so they are real digests, not filler.
Run from the repository root: python3 selftest/make_fixtures.py
"""
import hashlib
import json


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


evidence = {
    "run": "R2-B2 no-production-touch rehearsal",
    "verdict_note": "không chạm production — before/after counts identical",
    "counts": {"before": 4182, "after": 4182},
    "surfaces_untouched": ["birth_registry", "universal_edges", "provenance"],
    "arrow": "ABSENT → rev1",
}
rollback = {
    "schema": "packet.rollback-evidence/1",
    "subject": "self-test fixture: two mutations, each applied and rolled back",
    "entries": [
        {
            "id": "RB-FIXTURE-1",
            "operation": "INSERT one ledger row",
            "before_hash": sha("ledger: 3 rows"),
            "after_apply_hash": sha("ledger: 4 rows"),
            "after_rollback_hash": sha("ledger: 3 rows"),
        },
        {
            "id": "RB-FIXTURE-2",
            "operation": "UPDATE one ledger amount",
            "before_hash": sha("ledger: 3 rows"),
            "after_apply_hash": sha("ledger: 3 rows, row 2 amount 990"),
            "after_rollback_hash": sha("ledger: 3 rows"),
        },
    ],
}
for name, doc in [("evidence.json", evidence), ("rollback-evidence.json", rollback)]:
    with open(f"selftest/{name}", "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
