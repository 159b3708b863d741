//! The snapshot document (schema `packet.snapshot/1`, docs/FORMAT.md): what a database held at
//! one instant, as digests: per table its row count, content digest and schema digest, the
//! counters no rollback restores, and one `state_digest` over the tables.

use super::encode::ENCODING;
use crate::digest::Digest;
use crate::reject::{Reject, RejectCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// Schema name of the snapshot document.
pub const SNAPSHOT_SCHEMA: &str = "packet.snapshot/1";

/// Largest snapshot document read by `snapshot-diff`, in bytes.
pub const SNAPSHOT_LIMIT: u64 = 64 * 1024 * 1024;

/// One table's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableState {
    /// The table's name, as the database spells it.
    pub name: String,
    /// Rows in the table.
    pub rows: u64,
    /// The content digest: the sorted multiset of row digests ([`super::encode`]).
    pub digest: Digest,
    /// SHA-256 of the table's schema: its definition and those of its indexes and triggers.
    pub schema_digest: Digest,
}

/// A counter that no rollback restores (SQLite's `sqlite_sequence`, PostgreSQL sequences):
/// reported, never part of the state digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    /// What counts (for `sqlite_sequence`, the table whose AUTOINCREMENT it is).
    pub name: String,
    /// Its value.
    pub value: i64,
}

/// A snapshot of one database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always [`SNAPSHOT_SCHEMA`].
    pub schema: String,
    /// The canonical encoding version ([`ENCODING`]).
    pub encoding: String,
    /// `sqlite` or `postgresql`.
    pub engine: String,
    /// The engine's version, as it reports it.
    pub engine_version: String,
    /// What was read, as given (never part of the state digest: a copy under another name
    /// holds the same state).
    pub target: String,
    /// Tables, sorted by name.
    pub tables: Vec<TableState>,
    /// Counters, sorted by name.
    #[serde(default)]
    pub counters: Vec<Counter>,
    /// The tables covered, when not all (`--table`, `--exclude-table`).
    #[serde(default, skip_serializing_if = "super::scope::Scope::is_everything")]
    pub scope: super::scope::Scope,
    /// The claims evaluated, in the claims file's order (not part of the state digest: each
    /// is a view of the tables; `snapshot-diff` compares them one by one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<super::claims::ClaimState>,
    /// SHA-256 over the encoding version and every table's name, rows, digest and schema
    /// digest, in name order ([`state_digest`]).
    pub state_digest: Digest,
}

/// The state digest of `tables` (sorted by name): SHA-256 of [`ENCODING`], then per table its
/// name (8-byte big-endian length and bytes), row count (8 bytes), content and schema digests.
pub fn state_digest(tables: &[TableState]) -> Digest {
    let mut h = Sha256::new();
    h.update(ENCODING.as_bytes());
    h.update(b"\0state\0");
    h.update((tables.len() as u64).to_be_bytes());
    for t in tables {
        h.update((t.name.len() as u64).to_be_bytes());
        h.update(t.name.as_bytes());
        h.update(t.rows.to_be_bytes());
        h.update(t.digest.0);
        h.update(t.schema_digest.0);
    }
    Digest(h.finalize().into())
}

impl Snapshot {
    /// Total rows over all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// The document as written: pretty JSON with a final newline.
    pub fn render(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("snapshots serialize");
        out.push(b'\n');
        out
    }

    /// Reads a snapshot document strictly: duplicate or unknown members, another schema or
    /// encoding, or a `state_digest` that does not match its tables are each
    /// `SNAPSHOT_MALFORMED`, naming `label`.
    pub fn parse(bytes: &[u8], label: &str) -> Result<Snapshot, Box<Reject>> {
        let bad = |why: String| {
            Box::new(Reject::new(RejectCode::SnapshotMalformed, why).at_path(label.into()))
        };
        crate::strict::check(bytes).map_err(|e| bad(format!("not strict JSON: {e}")))?;
        let s: Snapshot =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a snapshot: {e}")))?;
        if s.schema != SNAPSHOT_SCHEMA || s.encoding != ENCODING {
            return Err(bad(format!(
                "schema {:?} with encoding {:?}; this packet reads {SNAPSHOT_SCHEMA:?} with {ENCODING:?}",
                s.schema, s.encoding
            )));
        }
        if s.tables.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(bad(
                "tables are not sorted by name, or one is listed twice".into()
            ));
        }
        let computed = state_digest(&s.tables);
        if computed != s.state_digest {
            return Err(bad(format!(
                "state_digest {} does not match its tables, which give {computed}: edited by hand?",
                s.state_digest
            )));
        }
        Ok(s)
    }

    /// Reads the snapshot document at `path` (at most [`SNAPSHOT_LIMIT`] bytes).
    pub fn read(path: &Path) -> Result<Snapshot, Box<Reject>> {
        let label = path.display().to_string();
        match crate::digest::read_regular_bounded(path, SNAPSHOT_LIMIT) {
            Ok(Some(bytes)) => Snapshot::parse(&bytes, &label),
            Ok(None) => Err(Box::new(
                Reject::new(
                    RejectCode::SnapshotMalformed,
                    format!("above the {SNAPSHOT_LIMIT}-byte limit for a snapshot"),
                )
                .at_path(label),
            )),
            Err(e) => Err(Box::new(
                Reject::new(RejectCode::SnapshotMalformed, format!("cannot read: {e}"))
                    .at_path(label),
            )),
        }
    }
}

/// Writes `bytes` to the new file `out`: to a temporary file beside it, fsynced, then linked
/// into place without replacing anything (an existing `out` is `AlreadyExists`), and the
/// directory fsynced.
pub fn write_new(out: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let parent = crate::staging::parent_of(out);
    let mut tmp = tempfile::Builder::new()
        .prefix(&crate::staging::temp_prefix(
            crate::staging::TEMP_PREFIXES[0],
        ))
        .tempfile_in(&parent)?;
    tmp.write_all(bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    crate::staging::sync_file(tmp.as_file(), out)?;
    tmp.persist_noclobber(out).map_err(|e| e.error)?;
    crate::staging::sync_dir(&parent)
}
