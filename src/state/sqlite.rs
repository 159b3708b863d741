//! SQLite snapshots: the database opened read-only (never a journal, a WAL or the file itself
//! created; `immutable` only when asked), every table read in one read transaction, rows
//! streamed and digested by [`super::encode`], never loaded whole.
//!
//! What counts as state: every table but SQLite's own (`sqlite_stat*` statistics are never
//! state; `sqlite_sequence` is a counter). A table's schema digest covers its `CREATE`
//! statement as stored and those of its indexes and triggers, so a new index is a schema
//! change; rowids are never read, so a `VACUUM` that renumbers them changes nothing.

use super::claims::{self, Claim, ClaimState};
use super::encode::{Multiset, RowEncoder, Value};
use super::scope::Scope;
use super::snapshot::{Counter, SNAPSHOT_SCHEMA, Snapshot, TableState, state_digest};
use crate::digest::Digest;
use crate::reject::{Reject, RejectCode};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// How to open the database.
#[derive(Clone, Debug, Default)]
pub struct SqliteOptions {
    /// Which tables count.
    pub scope: Scope,
    /// Open with `immutable=1`: SQLite then takes no locks and assumes nothing changes the
    /// file, which is right only for a copy nobody writes (a backup on read-only media).
    pub immutable: bool,
    /// Connections reading at once (0: one per CPU). Further connections are opened only
    /// where they are sure to read the same instant as the first: a database in a rollback
    /// journal mode, where the first one's shared lock keeps every writer from committing
    /// until all have read, or an immutable one. A WAL database is read on one connection.
    pub connections: usize,
}

fn unreadable(target: &str, why: String) -> Box<Reject> {
    Box::new(Reject::new(RejectCode::SnapshotSourceUnreadable, why).at_path(target.to_string()))
}

/// Snapshots the SQLite database at `path`; `target` is how it was named, for the document.
///
/// Errors (`SNAPSHOT_SOURCE_UNREADABLE`): a missing file (never an empty new database), a file
/// that is not a database, or a read that fails.
pub fn snapshot(
    path: &Path,
    target: &str,
    opts: SqliteOptions,
    claims: &[Claim],
) -> Result<Snapshot, Box<Reject>> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Err(unreadable(
            target,
            "no such database file (a snapshot never creates one)".into(),
        ));
    }
    let conn = open_read_only(path, opts.immutable)
        .map_err(|e| unreadable(target, format!("cannot open: {e}")))?;
    let join = Join {
        path,
        immutable: opts.immutable,
        connections: opts.connections,
    };
    let read = || -> Result<Snapshot, StateError> {
        let mut snap = read_in_transaction(&conn, target, &opts.scope, Some(&join))?;
        snap.claims = evaluate(&conn, &snap, claims)?;
        Ok(snap)
    };
    let outcome = conn
        .execute_batch("BEGIN")
        .map_err(StateError::from)
        .and_then(|()| {
            let r = read();
            let _ = conn.execute_batch("COMMIT");
            r
        });
    outcome.map_err(|e| match e {
        StateError::Read(e) => unreadable(target, format!("cannot read: {e}")),
        StateError::Claim(why) => {
            Box::new(Reject::new(RejectCode::ClaimsMalformed, why).at_path(target.to_string()))
        }
    })
}

/// Why a snapshot of a connection failed.
#[derive(Debug)]
pub enum StateError {
    /// The database could not be read.
    Read(rusqlite::Error),
    /// A claim names a table or column that is not there, or its filter does not compile.
    Claim(String),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Read(e) => e.fmt(f),
            StateError::Claim(why) => f.write_str(why),
        }
    }
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> StateError {
        StateError::Read(e)
    }
}

/// Opens `path` read-only through a URI (`mode=ro`, and `immutable=1` when asked): SQLite then
/// never creates the file, a journal or a WAL.
pub fn open_read_only(path: &Path, immutable: bool) -> rusqlite::Result<Connection> {
    let mut uri = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        // Percent-encode what a URI path cannot hold as is.
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str(if immutable {
        "?mode=ro&immutable=1"
    } else {
        "?mode=ro"
    });
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(&uri, flags)
}

/// Snapshots what `conn` sees: inside its open transaction if it has one (a rehearsal reads
/// its own uncommitted change), else inside a read transaction of its own.
pub fn of_connection(
    conn: &Connection,
    target: &str,
    claims: &[Claim],
    scope: &Scope,
) -> Result<Snapshot, StateError> {
    let read = || -> Result<Snapshot, StateError> {
        let mut snap = read_in_transaction(conn, target, scope, None)?;
        snap.claims = evaluate(conn, &snap, claims)?;
        Ok(snap)
    };
    if !conn.is_autocommit() {
        return read();
    }
    conn.execute_batch("BEGIN")?;
    let result = read();
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Each claim's row count and digest, read in the caller's transaction.
fn evaluate(
    conn: &Connection,
    snap: &Snapshot,
    claims: &[Claim],
) -> Result<Vec<ClaimState>, StateError> {
    let mut out = Vec::with_capacity(claims.len());
    let mut buf = Vec::new();
    for c in claims {
        let bad = |why: String| StateError::Claim(format!("claim {:?}: {why}", c.id));
        if !snap.tables.iter().any(|t| t.name == c.table) {
            return Err(bad(format!(
                "no table {:?} in the database (or outside --table/--exclude-table)",
                c.table
            )));
        }
        let present: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_xinfo({})",
                sql_string(&c.table)
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for col in c.columns.iter().flatten() {
            if !present.contains(col) {
                return Err(bad(format!("no column {col:?} in table {:?}", c.table)));
            }
        }
        let mut stmt = conn
            .prepare(&claims::select(c))
            .map_err(|e| bad(format!("its filter does not compile: {e}")))?;
        let (rows, digest) = digest_rows(&mut stmt, &mut buf)?;
        out.push(ClaimState::of(c, rows, digest));
    }
    Ok(out)
}

/// Streams every row `stmt` returns through the canonical encoding: its row count and the
/// multiset digest of its rows. `buf` is scratch space reused from row to row.
fn digest_rows(
    stmt: &mut rusqlite::Statement<'_>,
    buf: &mut Vec<u8>,
) -> rusqlite::Result<(u64, Digest)> {
    finish(rows_of(stmt, buf)?)
}

fn spill(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn finish(set: Multiset) -> rusqlite::Result<(u64, Digest)> {
    let rows = set.rows();
    Ok((rows, set.finish().map_err(spill)?))
}

/// The multiset of the row digests `stmt` returns.
fn rows_of(stmt: &mut rusqlite::Statement<'_>, buf: &mut Vec<u8>) -> rusqlite::Result<Multiset> {
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut set = Multiset::default();
    while let Some(row) = rows.next()? {
        let mut encoder = RowEncoder::begin(buf, columns);
        for i in 0..columns {
            encoder.push(&value(row.get_ref(i)?));
        }
        set.add(encoder.finish()).map_err(spill)?;
    }
    Ok(set)
}

/// `s` as an SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn value(v: ValueRef<'_>) -> Value<'_> {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(t),
        ValueRef::Blob(b) => Value::Blob(b),
    }
}

/// The connection a part is read on: the caller's, or a helper's own.
enum Reader<'a> {
    Borrowed(&'a Connection),
    Owned(Connection),
}

impl Reader<'_> {
    fn conn(&self) -> &Connection {
        match self {
            Reader::Borrowed(c) => c,
            Reader::Owned(c) => c,
        }
    }
}

/// Where further connections may come from, for a snapshot that is not inside a change.
struct Join<'a> {
    path: &'a Path,
    immutable: bool,
    connections: usize,
}

impl Join<'_> {
    /// True when connections opened now read what `conn` reads: an immutable file, or a
    /// rollback-journal database on which `conn` holds its shared lock (taken by reading the
    /// journal mode inside its transaction), so no writer can commit until every reader is done.
    fn may_join(&self, conn: &Connection) -> rusqlite::Result<bool> {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        let _: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        Ok(self.immutable || !mode.eq_ignore_ascii_case("wal"))
    }

    /// A further connection with its own read transaction and shared lock taken, or `None`
    /// when it cannot get them at once (a writer waiting for its exclusive lock).
    fn helper(&self) -> Option<Connection> {
        let c = open_read_only(self.path, self.immutable).ok()?;
        c.execute_batch("BEGIN").ok()?;
        let locked: rusqlite::Result<i64> =
            c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0));
        locked.ok().map(|_| c)
    }
}

/// Rows a part should hold at least before a table is split by rowid range.
const SPLIT_ROWS: i64 = 65_536;

/// The statements that read table `i` (quoted name `quoted`): one for the whole table, or,
/// for a rowid table spanning enough rowids with several connections, contiguous rowid
/// ranges, the first and last open-ended so that together they cover every row.
fn parts(
    conn: &Connection,
    i: usize,
    name: &str,
    quoted: &str,
    connections: usize,
) -> rusqlite::Result<Vec<(usize, String)>> {
    let whole = vec![(i, format!("SELECT * FROM {quoted}"))];
    if connections < 2 {
        return Ok(whole);
    }
    // A WITHOUT ROWID table has none; a table may also have a column named like each alias.
    let columns: Vec<String> = conn
        .prepare(&format!(
            "SELECT name FROM pragma_table_xinfo({})",
            sql_string(name)
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let Some(alias) = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|a| !columns.iter().any(|c| c.eq_ignore_ascii_case(a)))
    else {
        return Ok(whole);
    };
    let range: rusqlite::Result<(Option<i64>, Option<i64>)> = conn.query_row(
        &format!("SELECT min({alias}), max({alias}) FROM {quoted}"),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    let (lo, hi) = match range {
        Ok((Some(lo), Some(hi))) => (lo, hi),
        // No rowid (WITHOUT ROWID), or an empty table.
        _ => return Ok(whole),
    };
    let span = hi.saturating_sub(lo);
    let n = (connections as i64 * 2).min(span / SPLIT_ROWS);
    if n < 2 {
        return Ok(whole);
    }
    let step = span / n + 1;
    Ok((0..n)
        .map(|k| {
            let from = lo + k * step;
            let cond = match k {
                0 => format!("{alias} < {}", from + step),
                k if k == n - 1 => format!("{alias} >= {from}"),
                _ => format!("{alias} >= {from} AND {alias} < {}", from + step),
            };
            (i, format!("SELECT * FROM {quoted} WHERE {cond}"))
        })
        .collect())
}

fn read_in_transaction(
    conn: &Connection,
    target: &str,
    scope: &Scope,
    join: Option<&Join<'_>>,
) -> rusqlite::Result<Snapshot> {
    let version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
    // Every schema object, to give each table the digest of its definition, indexes and
    // triggers. Autoindexes have no SQL; their name and table are enough.
    let mut objects: Vec<(String, String, String, Option<String>)> = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    objects.sort();
    let mut names: Vec<String> = objects
        .iter()
        .filter(|(kind, name, _, _)| {
            kind == "table" && !name.starts_with("sqlite_") && scope.admits(name)
        })
        .map(|(_, name, _, _)| name.clone())
        .collect();
    names.sort();
    let mut metas = Vec::with_capacity(names.len());
    for name in &names {
        let mut schema = Sha256::new();
        schema.update(b"packet.state/1\0schema\0");
        for (kind, obj, tbl, sql) in objects.iter().filter(|o| &o.2 == name) {
            for part in [kind.as_str(), obj, tbl, sql.as_deref().unwrap_or("\0null")] {
                schema.update((part.len() as u64).to_be_bytes());
                schema.update(part.as_bytes());
            }
        }
        metas.push((
            format!("\"{}\"", name.replace('"', "\"\"")),
            Digest(schema.finalize().into()),
        ));
    }
    let helpers = match join {
        Some(j) if j.may_join(conn)? => match j.connections {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        },
        _ => 1,
    };
    let mut work = Vec::new();
    for (i, (quoted, _)) in metas.iter().enumerate() {
        work.extend(parts(conn, i, &names[i], quoted, helpers)?);
    }
    let merged = super::scan::parts(
        names.len(),
        &work,
        &mut Reader::Borrowed(conn),
        if join.is_some() { helpers } else { 1 },
        // A helper that cannot open or lock leaves its share to the others.
        || join.and_then(Join::helper).map(Reader::Owned),
        |reader, _, sql: &String| {
            let mut stmt = reader.conn().prepare(sql)?;
            rows_of(&mut stmt, &mut Vec::new())
        },
        spill,
    );
    let mut tables = Vec::with_capacity(names.len());
    for ((name, (_, schema_digest)), set) in names.iter().zip(metas).zip(merged) {
        let (rows, digest) = finish(set?)?;
        tables.push(TableState {
            name: name.clone(),
            rows,
            digest,
            schema_digest,
        });
    }
    let mut counters = Vec::new();
    if objects
        .iter()
        .any(|o| o.0 == "table" && o.1 == "sqlite_sequence")
    {
        let mut stmt = conn.prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")?;
        let found = stmt.query_map([], |r| {
            Ok(Counter {
                name: format!("sqlite_sequence.{}", r.get::<_, String>(0)?),
                value: r.get(1)?,
            })
        })?;
        for c in found {
            counters.push(c?);
        }
    }
    Ok(Snapshot {
        schema: SNAPSHOT_SCHEMA.into(),
        encoding: super::encode::ENCODING.into(),
        engine: "sqlite".into(),
        engine_version: version,
        target: target.into(),
        state_digest: state_digest(&tables),
        tables,
        counters,
        claims: Vec::new(),
        scope: scope.clone(),
    })
}
