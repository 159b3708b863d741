//! PostgreSQL snapshots: one `REPEATABLE READ READ ONLY` transaction, so every table is read
//! at one instant; tables scanned in parallel by further connections that join it through an
//! exported snapshot (`pg_export_snapshot`, `SET TRANSACTION SNAPSHOT`); rows streamed as text
//! from `COPY (SELECT …) TO STDOUT` and digested by [`super::encode`], never loaded whole.
//!
//! Why text COPY and never binary: binary COPY encodes arrays, enums and composites with type
//! OIDs, which a dump and restore renumber. Text output is fixed by the session settings in
//! [`SESSION`], so another session `TimeZone` or `DateStyle` cannot change a digest. Integers
//! (`int2`, `int4`, `int8`) are encoded as 64-bit integers, `float8` as its exact bits (parsed
//! back from the shortest-exact output that `extra_float_digits = 3` gives), `float4` as the
//! exact `f32` widened, `bytea` as its bytes; everything else (numeric with its scale, text
//! never normalized, timestamptz in UTC, jsonb, arrays, booleans) as the text PostgreSQL prints.
//!
//! What counts as state: ordinary tables and partitions outside `pg_catalog`,
//! `information_schema`, TOAST and temporary schemas, named `schema.table`. Sequences are
//! counters (no rollback restores them). A table's schema digest covers its columns (name,
//! type, NOT NULL, default, generated expression) and its constraints, indexes and triggers,
//! as PostgreSQL prints their definitions; never owners, grants, OIDs, statistics or
//! tablespaces, which a restore into another database may change without changing the data.

use super::claims::{Claim, ClaimState};
use super::encode::{Multiset, RowEncoder, Value};
use super::scope::Scope;
use super::snapshot::{Counter, SNAPSHOT_SCHEMA, Snapshot, TableState, state_digest};
use crate::digest::Digest;
use crate::reject::{Reject, RejectCode};
use sha2::{Digest as _, Sha256};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

/// Settings every snapshot session runs under, so that text output depends on the values
/// alone. `search_path = ''` makes every name outside `pg_catalog` print schema-qualified;
/// `row_security = off` makes a table whose row-level security policy would hide rows from
/// this role an error, never a digest of the rows it happens to see.
pub const SESSION: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
    SET IntervalStyle = 'postgres'; SET bytea_output = 'hex'; SET extra_float_digits = 3; \
    SET client_encoding = 'UTF8'; SET lc_monetary = 'C'; SET search_path = ''; \
    SET row_security = off";

/// Seconds to wait for a server before the target is called unreachable.
pub const CONNECT_TIMEOUT_SECS: u64 = 10;

fn unreadable(target: &str, why: String) -> Box<Reject> {
    Box::new(Reject::new(RejectCode::SnapshotSourceUnreadable, why).at_path(target.to_string()))
}

/// The connection settings of a `postgres://` or `postgresql://` URL, with what it leaves out
/// taken from libpq's environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
/// `PGDATABASE`) and then libpq's defaults (the Unix socket in `/var/run/postgresql` or
/// `/tmp` when one is there, else `localhost`; port 5432; the user running the process;
/// a database named after the user). Errors name what cannot be parsed.
pub fn config(url: &str) -> Result<tokio_postgres::Config, String> {
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if cfg.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(h) if h.starts_with('/') => {
                cfg.host_path(h);
            }
            Some(h) => {
                cfg.host(&h);
            }
            None => {
                match ["/var/run/postgresql", "/tmp"]
                    .into_iter()
                    .find(|d| std::path::Path::new(d).join(".s.PGSQL.5432").exists())
                {
                    Some(d) => cfg.host_path(d),
                    None => cfg.host("localhost"),
                };
            }
        }
    }
    if cfg.get_ports().is_empty()
        && let Some(p) = env("PGPORT")
    {
        cfg.port(
            p.parse()
                .map_err(|_| format!("PGPORT {p:?} is not a port"))?,
        );
    }
    if cfg.get_user().is_none()
        && let Some(u) = env("PGUSER")
    {
        cfg.user(&u);
    }
    if cfg.get_password().is_none()
        && let Some(p) = env("PGPASSWORD")
    {
        cfg.password(p);
    }
    if cfg.get_dbname().is_none()
        && let Some(d) = env("PGDATABASE")
    {
        cfg.dbname(&d);
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(CONNECT_TIMEOUT_SECS));
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("packet");
    }
    Ok(cfg)
}

/// `url` with any password replaced by `***` (in the user part and in a `password=` query
/// parameter): what documents and messages show of a target.
pub fn redacted(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let auth_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..auth_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

/// One connection, driven from synchronous code: a single-threaded Tokio runtime and the
/// `tokio-postgres` client on it. Every call runs the runtime until its answer is in; a COPY
/// stream is consumed inside one such run, so rows cost no runtime entry each (the
/// synchronous `postgres` crate enters it once per row, which cost more than hashing them).
pub struct Session {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Session {
    /// Runs `sql` (one or more statements, simple protocol), discarding any rows.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    /// Runs one statement with parameters and returns its rows.
    pub fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.rt.block_on(self.client.query(sql, params))
    }

    /// Runs one statement that returns exactly one row.
    pub fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
        self.rt.block_on(self.client.query_one(sql, params))
    }

    /// Runs one statement with parameters and returns the rows it affected.
    pub fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.rt.block_on(self.client.execute(sql, params))
    }

    /// Runs `COPY … TO STDOUT` and hands every complete line (its newline removed) to `row`,
    /// whatever the server's message boundaries. A final line without its newline is an error.
    fn copy_lines(
        &mut self,
        copy: &str,
        mut row: impl FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        use futures_util::StreamExt;
        let client = &self.client;
        self.rt.block_on(async {
            let stream = client.copy_out(copy).await?;
            futures_util::pin_mut!(stream);
            let mut lines = Lines::default();
            while let Some(chunk) = stream.next().await {
                lines.feed(&chunk?, &mut row)?;
            }
            lines.finish()
        })
    }
}

/// Complete lines out of chunks cut anywhere: a line inside one chunk is handed on where it
/// lies, one cut across chunks is joined first.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn feed(
        &mut self,
        mut chunk: &[u8],
        row: &mut impl FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            if self.pending.is_empty() {
                row(&chunk[..end])?;
            } else {
                self.pending.extend_from_slice(&chunk[..end]);
                row(&self.pending)?;
                self.pending.clear();
            }
            chunk = &chunk[end + 1..];
        }
        self.pending.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(Failure::Read("COPY output ended inside a row".into()))
        }
    }
}

/// Opens a session under [`SESSION`].
pub fn connect(cfg: &tokio_postgres::Config) -> Result<Session, tokio_postgres::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("a single-threaded runtime starts");
    let (client, connection) = rt.block_on(cfg.connect(NoTls))?;
    // The connection task runs whenever a call runs the runtime; it ends with the client.
    rt.spawn(connection);
    let mut session = Session { rt, client };
    session.batch_execute(SESSION)?;
    Ok(session)
}

/// A PostgreSQL error as the server gave it: severity, message, detail and hint, without the
/// client library's wrapping.
pub fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let t = s.to_string();
                if !m.contains(&t) {
                    m.push_str(": ");
                    m.push_str(&t);
                }
                source = s.source();
            }
            m
        }
    }
}

/// How a column's text output becomes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer,
    Float4,
    Float8,
    Bytea,
    Text,
}

impl Kind {
    fn of(type_oid: u32) -> Kind {
        match type_oid {
            20 | 21 | 23 => Kind::Integer,
            700 => Kind::Float4,
            701 => Kind::Float8,
            17 => Kind::Bytea,
            _ => Kind::Text,
        }
    }
}

/// One table as the catalog describes it.
#[derive(Clone, Debug)]
struct Table {
    oid: u32,
    name: String,
    bare: String,
    quoted: String,
    columns: Vec<(String, Kind)>,
    schema: Sha256,
    /// The relation's size in blocks when the catalog was read: how it is split.
    blocks: i64,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn schema_part(h: &mut Sha256, parts: &[&str]) {
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
}

/// A sequence: its name (`schema.seq`) and how SQL names it (quoted).
type Sequence = (String, String);

/// Why a read failed: the database could not be read, or a claim does not fit it.
enum Failure {
    Read(String),
    Claim(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Read(message(&e))
    }
}

/// The tables in scope with their schema digests in progress, sorted by name; and the
/// sequences in scope.
fn catalog(client: &mut Session, scope: &Scope) -> Result<(Vec<Table>, Vec<Sequence>), Failure> {
    let user = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";
    let admits = |schema: &str, name: &str| {
        let full = format!("{schema}.{name}");
        if schema == "public" {
            scope.admits_any(&[&full, name])
        } else {
            scope.admits_any(&[&full])
        }
    };
    let mut tables = Vec::new();
    for r in client.query(
        &format!(
            "SELECT c.oid, n.nspname::text, c.relname::text, \
             pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::int8 \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND {user}"
        ),
        &[],
    )? {
        let (oid, schema, name): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        if !admits(&schema, &name) {
            continue;
        }
        let mut h = Sha256::new();
        h.update(super::encode::ENCODING.as_bytes());
        h.update(b"\0schema\0postgresql\0");
        tables.push(Table {
            oid,
            name: format!("{schema}.{name}"),
            quoted: format!("{}.{}", quote(&schema), quote(&name)),
            bare: name,
            columns: Vec::new(),
            schema: h,
            blocks: r.get(3),
        });
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let index: std::collections::HashMap<u32, usize> =
        oids.iter().enumerate().map(|(i, o)| (*o, i)).collect();
    // Columns in their order, then constraints, indexes and triggers by name: each part is
    // length-prefixed, so no two schemas hash alike.
    for r in client.query(
        "SELECT a.attrelid, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
         a.atttypid, a.attnotnull::text, a.attgenerated::text, \
         COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '') \
         FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d \
         ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
        &[&oids],
    )? {
        let t = &mut tables[index[&r.get::<_, u32>(0)]];
        let (name, ty, notnull, generated, default): (String, String, String, String, String) =
            (r.get(1), r.get(2), r.get(4), r.get(5), r.get(6));
        schema_part(
            &mut t.schema,
            &["column", &name, &ty, &notnull, &generated, &default],
        );
        t.columns.push((name, Kind::of(r.get(3))));
    }
    for (kind, sql) in [
        (
            "constraint",
            "SELECT conrelid, conname::text, pg_catalog.pg_get_constraintdef(oid) \
             FROM pg_catalog.pg_constraint WHERE conrelid = ANY($1) ORDER BY 1, 2",
        ),
        (
            "index",
            "SELECT i.indrelid, c.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid) \
             FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = ANY($1) ORDER BY 1, 2",
        ),
        (
            "trigger",
            "SELECT tgrelid, tgname::text, pg_catalog.pg_get_triggerdef(oid) \
             FROM pg_catalog.pg_trigger WHERE tgrelid = ANY($1) AND NOT tgisinternal \
             ORDER BY 1, 2",
        ),
    ] {
        for r in client.query(sql, &[&oids])? {
            let t = &mut tables[index[&r.get::<_, u32>(0)]];
            let (name, def): (String, String) = (r.get(1), r.get(2));
            schema_part(&mut t.schema, &[kind, &name, &def]);
        }
    }
    let mut sequences = Vec::new();
    for r in client.query(
        &format!(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' AND {user} ORDER BY 1, 2"
        ),
        &[],
    )? {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        if admits(&schema, &name) {
            sequences.push((
                format!("{schema}.{name}"),
                format!("{}.{}", quote(&schema), quote(&name)),
            ));
        }
    }
    Ok((tables, sequences))
}

/// Decodes one field of COPY's text format (the PostgreSQL manual, "COPY", "Text Format"):
/// backslash escapes `\b \f \n \r \t \v \\`, octal `\NNN` and hex `\xHH`.
fn unescape<'a>(field: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let Some(first) = memchr::memchr(b'\\', field) else {
        return field;
    };
    scratch.clear();
    scratch.extend_from_slice(&field[..first]);
    let mut i = first;
    while i < field.len() {
        // Copy the run up to the next backslash at once.
        let run = memchr::memchr(b'\\', &field[i..]).unwrap_or(field.len() - i);
        scratch.extend_from_slice(&field[i..i + run]);
        i += run;
        if i == field.len() {
            break;
        }
        i += 1;
        if i == field.len() {
            scratch.push(b'\\');
            break;
        }
        let c = field[i];
        i += 1;
        match c {
            b'b' => scratch.push(8),
            b'f' => scratch.push(12),
            b'n' => scratch.push(b'\n'),
            b'r' => scratch.push(b'\r'),
            b't' => scratch.push(b'\t'),
            b'v' => scratch.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                scratch.push(v as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d as u8;
                            i += 1;
                        }
                        None => break,
                    }
                }
                scratch.push(v);
            }
            other => scratch.push(other),
        }
    }
    scratch
}

/// The value of one decoded field of a column of `kind`. Errors say what did not parse (a
/// server that printed what its type cannot print).
fn value<'a>(kind: Kind, text: &'a [u8], bytes: &'a mut Vec<u8>) -> Result<Value<'a>, String> {
    let s = || std::str::from_utf8(text).map_err(|_| "not UTF-8".to_string());
    Ok(match kind {
        Kind::Integer => Value::Integer(s()?.parse().map_err(|_| format!("integer {text:?}"))?),
        Kind::Float8 => Value::Real(s()?.parse().map_err(|_| format!("float8 {text:?}"))?),
        Kind::Float4 => Value::Real(f64::from(
            s()?.parse::<f32>()
                .map_err(|_| format!("float4 {text:?}"))?,
        )),
        Kind::Bytea => {
            let hex = text
                .strip_prefix(b"\\x")
                .ok_or_else(|| "bytea not in hex output".to_string())?;
            bytes.clear();
            bytes.resize(hex.len() / 2, 0);
            if hex.len() % 2 != 0 || faster_hex::hex_decode(hex, bytes).is_err() {
                return Err("bytea hex output that is not hex".into());
            }
            Value::Blob(bytes)
        }
        Kind::Text => Value::Text(text),
    })
}

/// Streams `SELECT columns FROM … [WHERE …]` through COPY text output: its row count and the
/// multiset digest of its rows.
fn digest_copy(client: &mut Session, select: &str, kinds: &[Kind]) -> Result<Multiset, Failure> {
    let mut set = Multiset::default();
    let (mut buf, mut scratch, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let bad = |why: String| Failure::Read(format!("COPY output of {select:?}: {why}"));
    client.copy_lines(&format!("COPY ({select}) TO STDOUT"), |line| {
        let mut row = RowEncoder::begin(&mut buf, kinds.len());
        let mut fields = line.split(|b| *b == b'\t');
        for kind in kinds {
            let field = fields
                .next()
                .ok_or_else(|| bad("fewer fields than columns".into()))?;
            if field == b"\\N" {
                row.push(&Value::Null);
                continue;
            }
            // bytea's hex output reaches COPY as `\\x` and hex digits, which need no
            // unescaping: decoded straight from the line.
            if *kind == Kind::Bytea
                && let Some(hex) = field.strip_prefix(b"\\\\x")
            {
                bytes.clear();
                bytes.resize(hex.len() / 2, 0);
                if hex.len() % 2 != 0 || faster_hex::hex_decode(hex, &mut bytes).is_err() {
                    return Err(bad("bytea hex output that is not hex".into()));
                }
                row.push(&Value::Blob(&bytes));
                continue;
            }
            let text = unescape(field, &mut scratch);
            row.push(&value(*kind, text, &mut bytes).map_err(bad)?);
        }
        if !kinds.is_empty() && fields.next().is_some() || kinds.is_empty() && !line.is_empty() {
            return Err(bad("more fields than columns".into()));
        }
        set.add(row.finish())
            .map_err(|e| Failure::Read(format!("cannot spill row digests: {e}")))
    })?;
    Ok(set)
}

fn finish(set: Multiset) -> Result<(u64, Digest), Failure> {
    let rows = set.rows();
    let digest = set
        .finish()
        .map_err(|e| Failure::Read(format!("cannot merge row digests: {e}")))?;
    Ok((rows, digest))
}

/// The rows of `t` in the block range `[from, to)` (`to` open when `None`): physical ranges
/// partition a table, so parts read by several connections add up to the whole.
fn select_part(t: &Table, part: Part) -> String {
    let cols: Vec<String> = t.columns.iter().map(|(n, _)| quote(n)).collect();
    let mut sql = format!("SELECT {} FROM ONLY {}", cols.join(", "), t.quoted);
    match part {
        Part::Whole => {}
        Part::Blocks(from, Some(to)) => {
            sql.push_str(&format!(
                " WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid"
            ));
        }
        Part::Blocks(from, None) => sql.push_str(&format!(" WHERE ctid >= '({from},0)'::tid")),
    }
    sql
}

/// A share of one table's rows.
#[derive(Clone, Copy, Debug)]
enum Part {
    Whole,
    /// Blocks from the first up to (not including) the second; the last part is open-ended,
    /// so rows in blocks added after the catalog was read are never missed.
    Blocks(i64, Option<i64>),
}

/// Tables smaller than this many blocks (8 KiB each by default) are read whole.
const SPLIT_BLOCKS: i64 = 2048;

/// The work of a snapshot: every table, the large ones split into block ranges for
/// `connections` connections (PostgreSQL 14 and later scan a `ctid` range by itself), largest
/// first so no connection is left with a large table at the end.
fn parts(tables: &[Table], connections: usize, tid_range_scans: bool) -> Vec<(usize, Part)> {
    let mut work = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let n = if connections > 1 && tid_range_scans && t.blocks >= SPLIT_BLOCKS {
            (connections as i64 * 2).min(t.blocks / (SPLIT_BLOCKS / 2))
        } else {
            1
        };
        if n <= 1 {
            work.push((i, Part::Whole, t.blocks));
            continue;
        }
        let step = (t.blocks + n - 1) / n;
        for k in 0..n {
            let to = (k + 1 < n).then_some((k + 1) * step);
            work.push((i, Part::Blocks(k * step, to), step));
        }
    }
    work.sort_by_key(|w| std::cmp::Reverse(w.2));
    work.into_iter().map(|(i, p, _)| (i, p)).collect()
}

/// Options of a PostgreSQL snapshot.
#[derive(Clone, Debug, Default)]
pub struct PostgresOptions {
    /// Which tables count.
    pub scope: Scope,
    /// Connections scanning tables at once (0: one per CPU). Each joins the first one's
    /// transaction through an exported snapshot, so all read one instant.
    pub connections: usize,
}

/// Snapshots the database `cfg` connects to; `target` is how it was named (password
/// redacted), for the document.
///
/// Errors: `SNAPSHOT_SOURCE_UNREADABLE` (an unreachable server, a refused login, a read that
/// fails, with the server's message), `CLAIMS_MALFORMED` (a claim naming a table or column
/// that is not there, or a filter that does not compile).
pub fn snapshot(
    cfg: &tokio_postgres::Config,
    target: &str,
    opts: &PostgresOptions,
    claims: &[Claim],
) -> Result<Snapshot, Box<Reject>> {
    let mut client =
        connect(cfg).map_err(|e| unreadable(target, format!("cannot connect: {}", message(&e))))?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .map_err(|e| unreadable(target, message(&e)))?;
    let result = read_in_transaction(&mut client, Some(cfg), target, opts, claims);
    let _ = client.batch_execute("ROLLBACK");
    result.map_err(|f| match f {
        Failure::Read(why) => unreadable(target, format!("cannot read: {why}")),
        Failure::Claim(why) => {
            Box::new(Reject::new(RejectCode::ClaimsMalformed, why).at_path(target.to_string()))
        }
    })
}

/// Snapshots what `client` sees inside the transaction it has open (a rehearsal reads its own
/// uncommitted change this way), on that one connection.
pub fn of_transaction(
    client: &mut Session,
    target: &str,
    scope: &Scope,
) -> Result<Snapshot, String> {
    let opts = PostgresOptions {
        scope: scope.clone(),
        connections: 1,
    };
    read_in_transaction(client, None, target, &opts, &[]).map_err(|f| match f {
        Failure::Read(why) | Failure::Claim(why) => why,
    })
}

/// Reads every table in scope, the sequences and the claims inside `client`'s open
/// transaction. With `join` (the connection settings), further connections join it through
/// an exported snapshot and scan tables too.
fn read_in_transaction(
    client: &mut Session,
    join: Option<&tokio_postgres::Config>,
    target: &str,
    opts: &PostgresOptions,
    claims: &[Claim],
) -> Result<Snapshot, Failure> {
    let version: String = client.query_one("SHOW server_version", &[])?.get(0);
    let (tables, sequences) = catalog(client, &opts.scope)?;
    let wanted = match opts.connections {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let version_num: i64 = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int8",
            &[],
        )?
        .get(0);
    let work = parts(
        &tables,
        if join.is_some() { wanted } else { 1 },
        version_num >= 140000,
    );
    let wanted = wanted.min(work.len());
    let exported: Option<String> = match join {
        Some(_) if wanted > 1 => Some(
            client
                .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])?
                .get(0),
        ),
        _ => None,
    };
    let merged = super::scan::parts(
        tables.len(),
        &work,
        client,
        if exported.is_some() { wanted } else { 1 },
        || {
            // A helper that cannot connect or join the snapshot leaves its share to others.
            let (cfg, id) = (join?, exported.as_ref()?);
            let mut helper = connect(cfg).ok()?;
            helper
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                     SET TRANSACTION SNAPSHOT '{id}'"
                ))
                .ok()?;
            Some(helper)
        },
        |client, i, part| {
            let t = &tables[i];
            let kinds: Vec<Kind> = t.columns.iter().map(|c| c.1).collect();
            digest_copy(client, &select_part(t, *part), &kinds)
        },
        |e| Failure::Read(format!("cannot spill row digests: {e}")),
    );
    let mut states = Vec::with_capacity(tables.len());
    for (t, set) in tables.iter().zip(merged) {
        let (rows, digest) = finish(set?)?;
        states.push(TableState {
            name: t.name.clone(),
            rows,
            digest,
            schema_digest: Digest(t.schema.clone().finalize().into()),
        });
    }
    let mut counters = Vec::with_capacity(sequences.len());
    for (name, quoted) in &sequences {
        let r = client.query_one(
            &format!("SELECT last_value, is_called, (SELECT seqincrement FROM pg_catalog.pg_sequence WHERE seqrelid = '{}'::regclass) FROM {quoted}", quoted.replace('\'', "''")),
            &[],
        )?;
        let (last, called, step): (i64, bool, i64) = (r.get(0), r.get(1), r.get(2));
        counters.push(Counter {
            name: name.clone(),
            // The last value handed out; before the first nextval, one step before the start.
            value: if called {
                last
            } else {
                last.saturating_sub(step)
            },
        });
    }
    let claims = evaluate(client, &tables, claims)?;
    Ok(Snapshot {
        schema: SNAPSHOT_SCHEMA.into(),
        encoding: super::encode::ENCODING.into(),
        engine: "postgresql".into(),
        engine_version: version,
        target: target.into(),
        state_digest: state_digest(&states),
        tables: states,
        counters,
        claims,
        scope: opts.scope.clone(),
    })
}

/// Each claim's row count and digest, read in the open transaction. A claim's table is
/// `schema.table`, or a bare name that names one table.
fn evaluate(
    client: &mut Session,
    tables: &[Table],
    claims: &[Claim],
) -> Result<Vec<ClaimState>, Failure> {
    let mut out = Vec::with_capacity(claims.len());
    for c in claims {
        let bad = |why: String| Failure::Claim(format!("claim {:?}: {why}", c.id));
        let matches: Vec<&Table> = match tables.iter().find(|t| t.name == c.table) {
            Some(t) => vec![t],
            None => tables.iter().filter(|t| t.bare == c.table).collect(),
        };
        let t = match matches[..] {
            [t] => t,
            [] => {
                return Err(bad(format!(
                    "no table {:?} in the database (or outside --table/--exclude-table)",
                    c.table
                )));
            }
            _ => {
                return Err(bad(format!(
                    "{:?} names tables in several schemas; write schema.table",
                    c.table
                )));
            }
        };
        let columns: Vec<(String, Kind)> = match &c.columns {
            None => t.columns.clone(),
            Some(names) => {
                let mut v = Vec::with_capacity(names.len());
                for n in names {
                    let col = t
                        .columns
                        .iter()
                        .find(|(name, _)| name == n)
                        .ok_or_else(|| bad(format!("no column {n:?} in table {:?}", t.name)))?;
                    v.push(col.clone());
                }
                v
            }
        };
        let cols: Vec<String> = columns.iter().map(|(n, _)| quote(n)).collect();
        let mut select = format!("SELECT {} FROM ONLY {}", cols.join(", "), t.quoted);
        if let Some(w) = &c.filter {
            select.push_str(&format!(" WHERE ({w})"));
        }
        let kinds: Vec<Kind> = columns.iter().map(|c| c.1).collect();
        let (rows, digest) = digest_copy(client, &select, &kinds)
            .and_then(finish)
            .map_err(|f| match f {
                Failure::Read(why) | Failure::Claim(why) => {
                    bad(format!("its filter does not run: {why}"))
                }
            })?;
        out.push(ClaimState::of(c, rows, digest));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_decode() {
        let mut s = Vec::new();
        assert_eq!(unescape(b"plain", &mut s), b"plain");
        assert_eq!(unescape(b"a\\tb\\nc\\\\d", &mut s), b"a\tb\nc\\d");
        assert_eq!(unescape(b"\\101\\x42\\b\\v", &mut s), b"AB\x08\x0b");
        assert_eq!(unescape(b"\\\\x0aff", &mut s), b"\\x0aff");
    }

    #[test]
    fn lines_are_whole_however_the_chunks_are_cut() {
        let text = b"1\ta\n22\tbb\n\n333\tccc\n";
        for cut in [1, 2, 3, 5, 7, text.len()] {
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut lines = Lines::default();
            for chunk in text.chunks(cut) {
                assert!(
                    lines
                        .feed(chunk, &mut |l: &[u8]| {
                            got.push(l.to_vec());
                            Ok(())
                        })
                        .is_ok()
                );
            }
            assert!(lines.finish().is_ok());
            assert_eq!(
                got,
                [&b"1\ta"[..], b"22\tbb", b"", b"333\tccc"],
                "cut {cut}"
            );
        }
        let mut lines = Lines::default();
        assert!(lines.feed(b"1\n2", &mut |_: &[u8]| Ok(())).is_ok());
        assert!(lines.finish().is_err(), "a row without its newline");
    }

    #[test]
    fn values_keep_their_type_and_bits() {
        let mut b = Vec::new();
        assert_eq!(
            value(Kind::Integer, b"-42", &mut b),
            Ok(Value::Integer(-42))
        );
        assert_eq!(
            value(Kind::Float8, b"0.30000000000000004", &mut b),
            Ok(Value::Real(0.1 + 0.2))
        );
        let Ok(Value::Real(z)) = value(Kind::Float8, b"-0", &mut b) else {
            panic!()
        };
        assert!(z == 0.0 && z.is_sign_negative());
        assert!(
            matches!(value(Kind::Float8, b"-Infinity", &mut b), Ok(Value::Real(f)) if f == f64::NEG_INFINITY)
        );
        assert_eq!(
            value(Kind::Float4, b"0.1", &mut b),
            Ok(Value::Real(f64::from(0.1f32)))
        );
        assert_eq!(
            value(Kind::Bytea, b"\\x00ff", &mut b),
            Ok(Value::Blob(&[0, 255]))
        );
        assert!(value(Kind::Bytea, b"\\000", &mut b).is_err());
        assert!(value(Kind::Integer, b"1.5", &mut b).is_err());
        assert_eq!(value(Kind::Text, b"1.50", &mut b), Ok(Value::Text(b"1.50")));
    }

    #[test]
    fn large_tables_split_into_block_ranges_that_cover_them() {
        let table = |blocks| Table {
            oid: 0,
            name: String::new(),
            bare: String::new(),
            quoted: String::new(),
            columns: Vec::new(),
            schema: Sha256::new(),
            blocks,
        };
        let tables = [table(10), table(100_000), table(SPLIT_BLOCKS)];
        let work = parts(&tables, 2, true);
        // The large table in four ranges, from block 0 to an open end, without gaps; the
        // small one whole; largest first.
        let ranges: Vec<(i64, Option<i64>)> = work
            .iter()
            .filter(|w| w.0 == 1)
            .map(|w| match w.1 {
                Part::Blocks(a, b) => (a, b),
                Part::Whole => panic!("not split"),
            })
            .collect();
        let mut sorted = ranges.clone();
        sorted.sort();
        assert_eq!(sorted.len(), 4);
        assert_eq!(sorted[0].0, 0);
        assert_eq!(sorted[3].1, None);
        assert!(sorted.windows(2).all(|w| w[0].1 == Some(w[1].0)));
        assert!(matches!(work.last(), Some((0, Part::Whole))));
        assert_eq!(work.iter().filter(|w| w.0 == 2).count(), 2);
        // One connection, or a server without TID range scans: every table whole.
        for w in parts(&tables, 1, true)
            .into_iter()
            .chain(parts(&tables, 4, false))
        {
            assert!(matches!(w.1, Part::Whole));
        }
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("postgres://alice:s3cret@db:5432/app"),
            "postgres://alice:***@db:5432/app"
        );
        assert_eq!(
            redacted("postgresql://alice@db/app"),
            "postgresql://alice@db/app"
        );
        assert_eq!(
            redacted("postgres:///app?user=bob&password=x&sslmode=disable"),
            "postgres:///app?user=bob&password=***&sslmode=disable"
        );
    }
}
