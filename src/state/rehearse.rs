//! `rehearse`: a change applied to a disposable copy of a database, never to the database
//! itself, recorded as rollback evidence (`packet.rollback-evidence/1`) whose three hashes are
//! state digests the tool computed: before, after the apply, after the rollback.
//!
//! SQLite: the source is opened read-only and copied with the SQLite backup API into a private
//! temporary directory; everything runs on the copy. Without `--rollback`, the change runs in
//! one transaction that is snapshotted from inside and then rolled back; with it, the change
//! is committed and the rollback script run and committed after it. The source is snapshotted
//! before and after the rehearsal, and its bytes and modification time compared: the
//! rehearsal's own no-touch proof.

use super::snapshot::Snapshot;
use super::sqlite;
use crate::reject::{Reject, RejectCode};
use crate::rollback::{self, ROLLBACK_SCHEMA};
use serde::Serialize;
use std::path::Path;

/// A finished rehearsal: the evidence document, and what checking it found.
#[derive(Debug)]
pub struct Rehearsal {
    /// The evidence, as written.
    pub evidence: Vec<u8>,
    /// The three state digests.
    pub before: String,
    /// After the apply.
    pub after_apply: String,
    /// After the rollback.
    pub after_rollback: String,
    /// Tables the apply changed (rows, content or schema).
    pub applied_to: Vec<String>,
    /// Tables the rollback left different from before.
    pub not_restored: Vec<String>,
    /// Rejects of the evidence's own check (`ROLLBACK_APPLY_DID_NOT_MUTATE`,
    /// `ROLLBACK_NOT_RESTORED`), with the tables named.
    pub rejects: Vec<Reject>,
}

#[derive(Serialize)]
struct Entry<'a> {
    id: &'a str,
    before_hash: &'a str,
    after_apply_hash: &'a str,
    after_rollback_hash: &'a str,
    change: &'a str,
    rollback: &'a str,
    tables_changed_by_apply: &'a [String],
    tables_not_restored: &'a [String],
    counters_moved: Vec<super::diff::CounterDiff>,
}

#[derive(Serialize)]
struct Isolation<'a> {
    method: &'a str,
    copy: String,
    source_state_before: String,
    source_state_after: String,
    source_bytes_and_mtime_unchanged: bool,
}

#[derive(Serialize)]
struct Evidence<'a> {
    schema: &'a str,
    tool: &'a str,
    target: &'a str,
    entries: [Entry<'a>; 1],
    isolation: Isolation<'a>,
    snapshots: Snapshots<'a>,
}

#[derive(Serialize)]
struct Snapshots<'a> {
    before: &'a Snapshot,
    after_apply: &'a Snapshot,
    after_rollback: &'a Snapshot,
}

fn failed(target: &str, why: String) -> Box<Reject> {
    Box::new(Reject::new(RejectCode::RehearsalFailed, why).at_path(target.to_string()))
}

/// Tables whose rows, content or schema differ between two snapshots, or that exist in one.
fn differing(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    super::diff::table_diffs(a, b)
        .into_iter()
        .filter(|d| d.status != "identical")
        .map(|d| d.name)
        .collect()
}

/// The source's SHA-256, length and modification time: streamed in bounded memory, whatever
/// the database's size.
fn stamp(path: &Path) -> Option<(crate::digest::Digest, u64, std::time::SystemTime)> {
    let read = crate::digest::read_with(path, 0, |_, _| ()).ok()?;
    let mtime = std::fs::metadata(path).ok()?.modified().ok()?;
    Some((read.digest, read.len, mtime))
}

/// Rehearses `change` (SQL text, named `change_name`) on a copy of the SQLite database at
/// `path`, with `rollback` (SQL text and name) if given. Errors (`REHEARSAL_FAILED`, nothing
/// written): the source cannot be read or copied, or the SQL fails (with SQLite's message).
pub fn sqlite(
    path: &Path,
    target: &str,
    change: (&str, &str),
    rollback_sql: Option<(&str, &str)>,
) -> Result<Rehearsal, Box<Reject>> {
    let source_before = sqlite::snapshot(path, target, sqlite::SqliteOptions::default(), &[])?;
    let stamp_before = stamp(path);
    let dir = tempfile::Builder::new()
        .prefix("packet-rehearsal-")
        .tempdir()
        .map_err(|e| failed(target, format!("cannot make a private directory: {e}")))?;
    let copy = dir.path().join("copy.db");
    {
        let src = sqlite::open_read_only(path, false)
            .map_err(|e| failed(target, format!("cannot open: {e}")))?;
        src.backup(
            rusqlite::MAIN_DB,
            &copy,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(|e| failed(target, format!("cannot copy with the backup API: {e}")))?;
    }
    let conn = rusqlite::Connection::open(&copy)
        .map_err(|e| failed(target, format!("cannot open the copy: {e}")))?;
    let snap = |what: &str| {
        sqlite::of_connection(&conn, target, &[], &Default::default())
            .map_err(|e| failed(target, format!("cannot snapshot the copy {what}: {e}")))
    };
    let sql_failed = |name: &str, e: rusqlite::Error| failed(target, format!("{name} failed: {e}"));
    let before = snap("before the change")?;
    let (after_apply, after_rollback) = match rollback_sql {
        None => {
            conn.execute_batch("BEGIN")
                .map_err(|e| sql_failed("BEGIN", e))?;
            if let Err(e) = conn.execute_batch(change.1) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(sql_failed(change.0, e));
            }
            let applied = snap("after the change")?;
            conn.execute_batch("ROLLBACK")
                .map_err(|e| sql_failed("ROLLBACK", e))?;
            (applied, snap("after the rollback")?)
        }
        Some((name, sql)) => {
            let run = |label: &str, sql: &str| -> Result<(), Box<Reject>> {
                conn.execute_batch("BEGIN")
                    .map_err(|e| sql_failed("BEGIN", e))?;
                if let Err(e) = conn.execute_batch(sql) {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(sql_failed(label, e));
                }
                conn.execute_batch("COMMIT")
                    .map_err(|e| sql_failed(label, e))
            };
            run(change.0, change.1)?;
            let applied = snap("after the change")?;
            run(name, sql)?;
            (applied, snap("after the rollback")?)
        }
    };
    drop(conn);
    let source_after = sqlite::snapshot(path, target, sqlite::SqliteOptions::default(), &[])?;
    let untouched = stamp_before.is_some() && stamp(path) == stamp_before;
    if source_after.state_digest != source_before.state_digest || !untouched {
        return Err(failed(
            target,
            "the source changed during the rehearsal (another writer?): the rehearsal proves nothing about it".into(),
        ));
    }
    let applied_to = differing(&before, &after_apply);
    let not_restored = differing(&before, &after_rollback);
    // "after" is after the rollback: what no rollback restored.
    let counters_moved = super::diff::counter_diffs(&before, &after_rollback);
    let (b, a, r) = (
        before.state_digest.to_hex(),
        after_apply.state_digest.to_hex(),
        after_rollback.state_digest.to_hex(),
    );
    let doc = Evidence {
        schema: ROLLBACK_SCHEMA,
        tool: concat!("packet ", env!("CARGO_PKG_VERSION"), " rehearse"),
        target,
        entries: [Entry {
            id: change.0,
            before_hash: &b,
            after_apply_hash: &a,
            after_rollback_hash: &r,
            change: change.0,
            rollback: rollback_sql.map_or("the change's own transaction, rolled back", |r| r.0),
            tables_changed_by_apply: &applied_to,
            tables_not_restored: &not_restored,
            counters_moved,
        }],
        isolation: Isolation {
            method: "SQLite backup API",
            // Not the temporary path itself: evidence of one rehearsal is the same bytes
            // every time it is run, so it seals to the same tree.
            copy: "copy.db in a private temporary directory (mode 0700), removed afterwards".into(),
            source_state_before: source_before.state_digest.to_hex(),
            source_state_after: source_after.state_digest.to_hex(),
            source_bytes_and_mtime_unchanged: untouched,
        },
        snapshots: Snapshots {
            before: &before,
            after_apply: &after_apply,
            after_rollback: &after_rollback,
        },
    };
    let mut evidence = serde_json::to_vec_pretty(&doc).expect("evidence serializes");
    evidence.push(b'\n');
    let mut rejects = rollback::check(&evidence, target).rejects;
    for r in &mut rejects {
        if r.code == RejectCode::RollbackNotRestored {
            r.message = format!(
                "{}; tables that differ from before: {}",
                r.message,
                not_restored.join(", ")
            );
        }
    }
    Ok(Rehearsal {
        evidence,
        before: b,
        after_apply: a,
        after_rollback: r,
        applied_to,
        not_restored,
        rejects,
    })
}
