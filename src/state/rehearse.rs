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
    /// The state digest before the apply.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    source_bytes_and_mtime_unchanged: Option<bool>,
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
    source_unchanged(target, &source_before, &source_after, untouched)?;
    finish(
        target,
        change.0,
        rollback_sql.map(|r| r.0),
        Isolation {
            method: "SQLite backup API",
            // Not the temporary path itself: evidence of one rehearsal is the same bytes
            // every time it is run, so it seals to the same tree.
            copy: "copy.db in a private temporary directory (mode 0700), removed afterwards".into(),
            source_state_before: source_before.state_digest.to_hex(),
            source_state_after: source_after.state_digest.to_hex(),
            source_bytes_and_mtime_unchanged: Some(untouched),
        },
        [&before, &after_apply, &after_rollback],
    )
}

/// The rehearsal's own no-touch proof: the source's state digest after equals the one before
/// (and, for a file, its bytes and mtime are unchanged: `untouched`), or `REHEARSAL_FAILED`.
fn source_unchanged(
    target: &str,
    before: &Snapshot,
    after: &Snapshot,
    untouched: bool,
) -> Result<(), Box<Reject>> {
    if after.state_digest != before.state_digest || !untouched {
        return Err(failed(
            target,
            "the source changed during the rehearsal (another writer?): the rehearsal proves nothing about it".into(),
        ));
    }
    Ok(())
}

/// The evidence of a rehearsal from its three snapshots (`[before, after apply, after
/// rollback]`), checked as `check-rollback` checks it.
fn finish(
    target: &str,
    change: &str,
    rollback_name: Option<&str>,
    isolation: Isolation<'_>,
    [before, after_apply, after_rollback]: [&Snapshot; 3],
) -> Result<Rehearsal, Box<Reject>> {
    let applied_to = differing(before, after_apply);
    let not_restored = differing(before, after_rollback);
    // "after" is after the rollback: what no rollback restored.
    let counters_moved = super::diff::counter_diffs(before, after_rollback);
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
            id: change,
            before_hash: &b,
            after_apply_hash: &a,
            after_rollback_hash: &r,
            change,
            rollback: rollback_name.unwrap_or("the change's own transaction, rolled back"),
            tables_changed_by_apply: &applied_to,
            tables_not_restored: &not_restored,
            counters_moved,
        }],
        isolation,
        snapshots: Snapshots {
            before,
            after_apply,
            after_rollback,
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

/// Runs `sql` inside the open transaction of `client`, under the database's and role's own
/// settings (`RESET ALL`: the change runs as it would in production, not under the pinned
/// snapshot settings, which are set again after it), through a PL/pgSQL `EXECUTE`, where
/// PostgreSQL refuses `COMMIT` and `ROLLBACK` ("invalid transaction termination"): a change
/// that ends the transaction itself can never commit to the source. The helper function
/// lives in the session's temporary schema and goes with the transaction's rollback.
fn execute_uncommittable(
    client: &mut super::postgres::Session,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("RESET ALL")?;
    client.batch_execute(
        "CREATE FUNCTION pg_temp.packet_rehearse(change text) RETURNS void \
         LANGUAGE plpgsql AS $packet$ BEGIN EXECUTE change; END $packet$",
    )?;
    client.execute("SELECT pg_temp.packet_rehearse($1)", &[&sql])?;
    client.batch_execute(super::postgres::SESSION)
}

/// Rehearses `change` (SQL text, named `change_name`) on the PostgreSQL database `cfg` names.
///
/// Without `rollback_sql`: snapshot, then in one `REPEATABLE READ` transaction the change, a
/// snapshot of what it sees, and `ROLLBACK`, then a snapshot again: nothing is ever
/// committed. With `rollback_sql`: a scratch database is created from the source
/// (`CREATE DATABASE … TEMPLATE`, which needs the `CREATEDB` privilege and no other session on
/// the source), the change and the rollback are committed there, and it is dropped
/// afterwards; the source is never connected to while they run.
///
/// Errors (`REHEARSAL_FAILED`, nothing written): the server cannot be reached, the SQL fails
/// (with the server's message), the scratch database cannot be made, or the source changed
/// during the rehearsal.
pub fn postgres(
    cfg: &tokio_postgres::Config,
    target: &str,
    change: (&str, &str),
    rollback_sql: Option<(&str, &str)>,
) -> Result<Rehearsal, Box<Reject>> {
    use super::postgres as pg;
    let pg_failed = |what: &str, e: tokio_postgres::Error| {
        failed(target, format!("{what}: {}", pg::message(&e)))
    };
    let read = |cfg: &tokio_postgres::Config| {
        pg::snapshot(cfg, target, &pg::PostgresOptions::default(), &[])
            .map_err(|e| failed(target, e.message.clone()))
    };
    let source_before = read(cfg)?;
    let (method, copy, before, after_apply, after_rollback) = match rollback_sql {
        None => {
            let mut client = pg::connect(cfg).map_err(|e| pg_failed("cannot connect", e))?;
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                .map_err(|e| pg_failed("BEGIN", e))?;
            let inside = |client: &mut super::postgres::Session| {
                pg::of_transaction(client, target, &Default::default()).map_err(|why| {
                    failed(
                        target,
                        format!("cannot snapshot inside the transaction: {why}"),
                    )
                })
            };
            let outcome = inside(&mut client).and_then(|before| {
                execute_uncommittable(&mut client, change.1).map_err(|e| {
                    let ends_transaction = e.code().is_some_and(|c| {
                        *c == tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED
                            || *c == tokio_postgres::error::SqlState::INVALID_TRANSACTION_TERMINATION
                    }) && pg::message(&e).contains("transaction");
                    if ends_transaction {
                        failed(target, format!(
                            "{} ends the transaction itself (COMMIT or ROLLBACK): without --rollback a change runs in one transaction that is always rolled back, so it may not end it ({})",
                            change.0, pg::message(&e)
                        ))
                    } else {
                        pg_failed(&format!("{} failed", change.0), e)
                    }
                })?;
                Ok((before, inside(&mut client)?))
            });
            client
                .batch_execute("ROLLBACK")
                .map_err(|e| pg_failed("ROLLBACK", e))?;
            drop(client);
            let (before, applied) = outcome?;
            (
                "one REPEATABLE READ transaction, always rolled back",
                "none: the change ran in a transaction that was rolled back, never committed"
                    .to_string(),
                before,
                applied,
                read(cfg)?,
            )
        }
        Some((name, sql)) => {
            let scratch = Scratch::create(cfg, target)?;
            let outcome = (|| {
                let mut scfg = cfg.clone();
                scfg.dbname(&scratch.name);
                let mut client = pg::connect(&scfg)
                    .map_err(|e| pg_failed("cannot connect to the scratch database", e))?;
                let here: String = client
                    .query_one("SELECT pg_catalog.current_database()::text", &[])
                    .map_err(|e| pg_failed("current_database()", e))?
                    .get(0);
                if here != scratch.name || Some(here.as_str()) == cfg.get_dbname() {
                    return Err(failed(
                        target,
                        format!(
                            "refused: connected to {here:?}, not the scratch database; a rollback rehearsal never runs on the source"
                        ),
                    ));
                }
                let snap =
                    |client: &mut super::postgres::Session| -> Result<Snapshot, Box<Reject>> {
                        client
                            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                            .map_err(|e| pg_failed("BEGIN", e))?;
                        let s = pg::of_transaction(client, target, &Default::default()).map_err(
                            |why| {
                                failed(
                                    target,
                                    format!("cannot snapshot the scratch database: {why}"),
                                )
                            },
                        );
                        client
                            .batch_execute("ROLLBACK")
                            .map_err(|e| pg_failed("ROLLBACK", e))?;
                        s
                    };
                let run = |client: &mut super::postgres::Session,
                           label: &str,
                           sql: &str|
                 -> Result<(), Box<Reject>> {
                    client
                        .batch_execute("BEGIN; RESET ALL")
                        .map_err(|e| pg_failed("BEGIN", e))?;
                    if let Err(e) = client.batch_execute(sql) {
                        let _ = client.batch_execute("ROLLBACK");
                        return Err(pg_failed(&format!("{label} failed"), e));
                    }
                    // A script that ended the transaction itself leaves nothing to commit.
                    client
                        .batch_execute("COMMIT")
                        .map_err(|e| pg_failed(label, e))?;
                    client
                        .batch_execute(pg::SESSION)
                        .map_err(|e| pg_failed("SET", e))
                };
                let before = snap(&mut client)?;
                run(&mut client, change.0, change.1)?;
                let applied = snap(&mut client)?;
                run(&mut client, name, sql)?;
                let restored = snap(&mut client)?;
                Ok((before, applied, restored))
            })();
            scratch.drop_now()?;
            let (before, applied, restored) = outcome?;
            (
                "a scratch database made with CREATE DATABASE … TEMPLATE, dropped afterwards",
                "a scratch database created from the source and dropped afterwards".to_string(),
                before,
                applied,
                restored,
            )
        }
    };
    let source_after = read(cfg)?;
    source_unchanged(target, &source_before, &source_after, true)?;
    finish(
        target,
        change.0,
        rollback_sql.map(|r| r.0),
        Isolation {
            method,
            copy,
            source_state_before: source_before.state_digest.to_hex(),
            source_state_after: source_after.state_digest.to_hex(),
            source_bytes_and_mtime_unchanged: None,
        },
        [&before, &after_apply, &after_rollback],
    )
}

/// A scratch database made from the source, dropped by [`Scratch::drop_now`] or, if that is
/// never reached, when it goes out of scope.
struct Scratch {
    admin: tokio_postgres::Config,
    name: String,
    dropped: bool,
}

impl Scratch {
    /// Creates `packet_rehearsal_<pid>_<nanos>` from the source through a connection to the
    /// `postgres` maintenance database (`template1` when that is missing or is the source).
    fn create(cfg: &tokio_postgres::Config, target: &str) -> Result<Scratch, Box<Reject>> {
        use super::postgres as pg;
        let source = cfg
            .get_dbname()
            .map(str::to_string)
            .or_else(|| cfg.get_user().map(str::to_string))
            .ok_or_else(|| failed(target, "the URL names no database".into()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("packet_rehearsal_{}_{nanos}", std::process::id());
        let mut last = None;
        // Never the source itself: CREATE DATABASE … TEMPLATE refuses a source with any
        // session on it, this one included.
        for admin_db in ["postgres", "template1"]
            .into_iter()
            .filter(|d| *d != source)
        {
            let mut admin = cfg.clone();
            admin.dbname(admin_db);
            let mut client = match pg::connect(&admin) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let sql = format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"",
                source.replace('"', "\"\"")
            );
            return match client.batch_execute(&sql) {
                Ok(()) => Ok(Scratch {
                    admin,
                    name,
                    dropped: false,
                }),
                Err(e) => Err(failed(
                    target,
                    format!(
                        "cannot create the scratch database from {source:?}: {} (it needs CREATEDB and no other session connected to the source)",
                        pg::message(&e)
                    ),
                )),
            };
        }
        Err(failed(
            target,
            format!(
                "cannot reach a maintenance database (postgres, template1) to create the scratch database: {}",
                last.map_or_else(String::new, |e| pg::message(&e))
            ),
        ))
    }

    fn drop_database(&mut self) -> Result<(), String> {
        use super::postgres as pg;
        self.dropped = true;
        let mut client = pg::connect(&self.admin).map_err(|e| pg::message(&e))?;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .map_err(|e| pg::message(&e))
    }

    /// Drops the scratch database; an error names it, so it can be dropped by hand.
    fn drop_now(mut self) -> Result<(), Box<Reject>> {
        let name = self.name.clone();
        self.drop_database().map_err(|why| {
            Box::new(Reject::new(
                RejectCode::RehearsalFailed,
                format!("cannot drop the scratch database {name:?}: {why}; drop it by hand"),
            ))
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.dropped {
            let _ = self.drop_database();
        }
    }
}
