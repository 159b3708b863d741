//! State proofs: evidence computed from real databases. [`snapshot`] is the document (the
//! digests of what a database held at one instant), [`encode`] the canonical encoding those
//! digests are over, [`sqlite`] the SQLite engine, and [`diff`] the no-touch proof that
//! compares two snapshots. These depend on the seal format and the reject codes; nothing
//! that seals or verifies packets depends on them.
//!
//! [`rehearse`] applies a change where it cannot reach the database (a copy, a transaction
//! that is always rolled back, or a scratch database) and writes rollback evidence from three
//! snapshots. [`postgres`] is the PostgreSQL engine; [`claims`] and [`scope`] say what a
//! snapshot covers.

pub mod claims;
pub mod diff;
pub mod encode;
pub mod postgres;
pub mod rehearse;
pub mod scan;
pub mod scope;
pub mod snapshot;
pub mod sqlite;

pub use diff::{DiffReport, diff_files};
pub use snapshot::{Snapshot, write_new};

use crate::reject::{Reject, RejectCode};
use std::path::Path;

/// A database to snapshot, as named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `sqlite:PATH`.
    Sqlite(std::path::PathBuf),
    /// A `postgres://` or `postgresql://` URL, as given (libpq's environment variables fill
    /// in what it leaves out: [`postgres::config`]).
    Postgres(String),
}

impl std::fmt::Display for Target {
    /// The target as named on the command line, with any password shown as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Target::Postgres(url) => f.write_str(&postgres::redacted(url)),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("sqlite: needs a path, as in sqlite:app.db".into());
            }
            return Ok(Target::Sqlite(path.into()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            postgres::config(s)?;
            return Ok(Target::Postgres(s.into()));
        }
        Err(format!(
            "{s:?} is not a database target: give sqlite:PATH or postgres://user@host:port/db"
        ))
    }
}

/// How to take a snapshot.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// Which tables count.
    pub scope: scope::Scope,
    /// SQLite: open the file as immutable.
    pub immutable: bool,
    /// Connections scanning tables at once (0: one per CPU): for PostgreSQL joined through an
    /// exported snapshot; for SQLite only where a rollback journal's shared lock or an
    /// immutable file makes them read one instant.
    pub connections: usize,
}

fn pg_config(url: &str, shown: &str) -> Result<tokio_postgres::Config, Box<Reject>> {
    postgres::config(url).map_err(|why| {
        Box::new(Reject::new(RejectCode::SnapshotSourceUnreadable, why).at_path(shown.into()))
    })
}

/// Snapshots `target` and writes the document to the new file `out`. Errors: the engine's
/// `SNAPSHOT_SOURCE_UNREADABLE`, or `SNAPSHOT_REFUSED` when `out` exists or cannot be
/// written; nothing is written then.
pub fn snapshot_to(
    target: &Target,
    shown: &str,
    out: &Path,
    opts: &SnapshotOptions,
    claims: &[claims::Claim],
) -> Result<Snapshot, Box<Reject>> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(Box::new(
            Reject::new(
                RejectCode::SnapshotRefused,
                "already exists; a snapshot never overwrites".into(),
            )
            .at_path(out.display().to_string()),
        ));
    }
    let snap = match target {
        Target::Sqlite(path) => sqlite::snapshot(
            path,
            shown,
            sqlite::SqliteOptions {
                immutable: opts.immutable,
                scope: opts.scope.clone(),
                connections: opts.connections,
            },
            claims,
        )?,
        Target::Postgres(url) => postgres::snapshot(
            &pg_config(url, shown)?,
            shown,
            &postgres::PostgresOptions {
                scope: opts.scope.clone(),
                connections: opts.connections,
            },
            claims,
        )?,
    };
    write_new(out, &snap.render()).map_err(|e| {
        Box::new(
            Reject::new(RejectCode::SnapshotRefused, format!("cannot write: {e}"))
                .at_path(out.display().to_string()),
        )
    })?;
    Ok(snap)
}

/// Rehearses the change in the file `apply` (and the rollback in `rollback`, if given) on a
/// copy of `target`, and writes the evidence to the new file `out`, also when its check
/// rejects it (a change that mutated nothing is evidence of that). Errors
/// (`REHEARSAL_FAILED`, nothing written): unreadable SQL files, an existing `out`, and the
/// engine's errors.
pub fn rehearse_to(
    target: &Target,
    shown: &str,
    apply: &Path,
    rollback: Option<&Path>,
    out: &Path,
) -> Result<rehearse::Rehearsal, Box<Reject>> {
    let failed = |why: String, at: &Path| {
        Box::new(Reject::new(RejectCode::RehearsalFailed, why).at_path(at.display().to_string()))
    };
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(failed(
            "already exists; rehearse never overwrites".into(),
            out,
        ));
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| failed(format!("cannot read the SQL: {e}"), p))
    };
    let change = read(apply)?;
    let undo = rollback.map(read).transpose()?;
    let name = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let (change_name, undo_name) = (name(apply), rollback.map(name));
    let done = match target {
        Target::Sqlite(path) => rehearse::sqlite(
            path,
            shown,
            (&change_name, &change),
            undo_name.as_deref().zip(undo.as_deref()),
        )?,
        Target::Postgres(url) => rehearse::postgres(
            &pg_config(url, shown)?,
            shown,
            (&change_name, &change),
            undo_name.as_deref().zip(undo.as_deref()),
        )?,
    };
    write_new(out, &done.evidence).map_err(|e| failed(format!("cannot write: {e}"), out))?;
    Ok(done)
}
