#!/usr/bin/env python3
"""Rollback rehearsal on a throwaway SQLite database, written as packet rollback evidence.

Usage: sqlite_rollback_rehearsal.py OUT_DIR

Creates a fresh database in a new temporary directory (deleted afterwards; nothing else is
touched), seeds it, then for each mutation: takes the logical state digest, applies the
mutation inside a transaction, digests again (same connection: the applied state), rolls
back, and digests again from a new connection (the durable state after rollback). Writes
OUT_DIR/rollback-evidence.json (schema packet.rollback-evidence/1) and prints a log.

The logical state digest is SHA-256 over lines of JSON, not over the database file (whose
bytes change with page reuse even when the data does not):
  ["schema", type, name, tbl_name, sql]        for each sqlite_master object, by (type, name)
  ["row", table, value, ...]                   for each row, by table name, then all columns
Values are JSON: integers and text as themselves, REAL as JSON numbers, BLOB as
{"blob": "<hex>"}, NULL as null. Output is deterministic: no times, no paths, no versions.

Exits 1, after writing the evidence, if any apply did not mutate the state or any rollback
did not restore it: the rehearsal itself fails closed.
"""
import hashlib
import json
import os
import sqlite3
import sys
import tempfile

SCHEMA = "packet.rollback-evidence/1"

SEED = [
    ("ops-vn", 125000, "Phí vận hành — tháng 6"),
    ("ops-eu", 98050, "Operating fee – June"),
    ("reserve", 500000, "Reserve “do not touch”"),
]

MUTATIONS = [
    (
        "RB-SQLITE-INSERT-1",
        "INSERT one ledger row",
        "INSERT INTO ledger (account, amount_cents, note) VALUES ('ops-vn', 4200, 'Hoàn tiền — thử nghiệm')",
    ),
    (
        "RB-SQLITE-UPDATE-1",
        "UPDATE one ledger amount",
        "UPDATE ledger SET amount_cents = amount_cents + 1 WHERE account = 'reserve'",
    ),
    (
        "RB-SQLITE-DELETE-1",
        "DELETE one ledger row",
        "DELETE FROM ledger WHERE account = 'ops-eu'",
    ),
    (
        "RB-SQLITE-DDL-1",
        "CREATE INDEX on ledger(account)",
        "CREATE INDEX ledger_account ON ledger(account)",
    ),
]


def encode(value):
    if isinstance(value, bytes):
        return {"blob": value.hex()}
    return value


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def state_digest(conn):
    h = hashlib.sha256()
    rows = 0
    objects = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    for obj in objects:
        h.update(json.dumps(["schema", *obj], ensure_ascii=False).encode("utf-8") + b"\n")
    for (table,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall():
        cols = [c[1] for c in conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()]
        order = ", ".join(quote(c) for c in cols)
        for row in conn.execute(f"SELECT {order} FROM {quote(table)} ORDER BY {order}"):
            rows += 1
            line = ["row", table, *[encode(v) for v in row]]
            h.update(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest(), rows


def main():
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    entries = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="packet-sqlite-rehearsal-") as tmp:
        db = os.path.join(tmp, "throwaway.sqlite")
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute(
            "CREATE TABLE ledger (id INTEGER PRIMARY KEY, account TEXT NOT NULL, "
            "amount_cents INTEGER NOT NULL, note TEXT)"
        )
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO ledger (account, amount_cents, note) VALUES (?, ?, ?)", SEED)
        conn.execute("COMMIT")
        print(f"seeded throwaway database: ledger with {len(SEED)} rows")
        for entry_id, operation, sql in MUTATIONS:
            before, rows_before = state_digest(conn)
            conn.execute("BEGIN")
            conn.execute(sql)
            after_apply, rows_apply = state_digest(conn)
            conn.execute("ROLLBACK")
            fresh = sqlite3.connect(db, isolation_level=None)
            after_rollback, rows_rollback = state_digest(fresh)
            fresh.close()
            mutated = after_apply != before
            restored = after_rollback == before
            ok = ok and mutated and restored
            print(f"{entry_id}: {operation}")
            print(f"  sql            {sql}")
            print(f"  before         {before} ({rows_before} rows)")
            print(f"  after apply    {after_apply} ({rows_apply} rows) mutated={'yes' if mutated else 'NO'}")
            print(f"  after rollback {after_rollback} ({rows_rollback} rows) restored={'yes' if restored else 'NO'}")
            entries.append(
                {
                    "id": entry_id,
                    "operation": operation,
                    "sql": sql,
                    "before_hash": before,
                    "after_apply_hash": after_apply,
                    "after_rollback_hash": after_rollback,
                    "rows_before": rows_before,
                    "rows_after_apply": rows_apply,
                    "rows_after_rollback": rows_rollback,
                }
            )
        conn.close()
    evidence = {
        "schema": SCHEMA,
        "subject": "rollback rehearsal on a throwaway SQLite database (deleted after the run)",
        "state_digest": "SHA-256 of JSON lines: schema objects by (type, name), then rows by table and all columns",
        "entries": entries,
    }
    with open(os.path.join(out_dir, "rollback-evidence.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(evidence, ensure_ascii=False, indent=2) + "\n")
    print(f"wrote rollback-evidence.json: {len(entries)} entries; every apply mutated and every rollback restored: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
