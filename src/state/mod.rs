//! State proofs: evidence computed from real databases. [`snapshot`] is the document (the
//! digests of what a database held at one instant), [`encode`] the canonical encoding those
//! digests are over, [`sqlite`] the SQLite engine, and [`diff`] the no-touch proof that
//! compares two snapshots. These depend on the seal format and the reject codes; nothing
//! that seals or verifies packets depends on them.
//!
//! Issue 12 in progress: PostgreSQL, claims files, `rehearse` and the benchmark are still to
//! come.

pub mod diff;
pub mod encode;
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
            return Err(
                "PostgreSQL targets are not supported yet (issue 12 in progress); use sqlite:PATH"
                    .into(),
            );
        }
        Err(format!("{s:?} is not a database target: give sqlite:PATH"))
    }
}

/// Snapshots `target` and writes the document to the new file `out`. Errors: the engine's
/// `SNAPSHOT_SOURCE_UNREADABLE`, or `SNAPSHOT_REFUSED` when `out` exists or cannot be
/// written; nothing is written then.
pub fn snapshot_to(
    target: &Target,
    shown: &str,
    out: &Path,
    immutable: bool,
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
        Target::Sqlite(path) => sqlite::snapshot(path, shown, sqlite::SqliteOptions { immutable })?,
    };
    write_new(out, &snap.render()).map_err(|e| {
        Box::new(
            Reject::new(RejectCode::SnapshotRefused, format!("cannot write: {e}"))
                .at_path(out.display().to_string()),
        )
    })?;
    Ok(snap)
}
