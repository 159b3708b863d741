//! Claims: the exact surfaces a no-touch proof is about, in the shape of a proof matrix
//! (NT-1 … NT-8 in the reference documents). A claims file names, per claim, an `id`, a
//! `title`, a `table`, an optional `where` filter and an optional column list; a snapshot
//! evaluates each, inside its one read transaction, to a row count and a content digest (the
//! same multiset digest as a table's, over the chosen columns of the chosen rows).
//!
//! ```toml
//! [[claim]]
//! id = "NT-1"
//! title = "birth_registry rows with inspect_status set"
//! table = "birth_registry"
//! where = "inspect_status IS NOT NULL"
//! columns = ["id", "inspect_status"]
//! ```

use crate::digest::Digest;
use crate::reject::{Reject, RejectCode};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest claims file read, in bytes.
pub const CLAIMS_LIMIT: u64 = 1024 * 1024;

/// One claim as written in the claims file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// A short stable name, unique in the file, e.g. `NT-1`.
    pub id: String,
    /// What the claim says, for people.
    pub title: String,
    /// The table it is about.
    pub table: String,
    /// An SQL condition on the table's rows (one expression, evaluated read-only).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The columns that count, in order; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

/// A claim evaluated: its definition, row count and content digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimState {
    /// As in [`Claim`].
    pub id: String,
    /// As in [`Claim`].
    pub title: String,
    /// As in [`Claim`].
    pub table: String,
    /// As in [`Claim`].
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// As in [`Claim`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Rows that satisfy it.
    pub rows: u64,
    /// The multiset digest of those rows' chosen columns.
    pub digest: Digest,
}

impl ClaimState {
    /// The claim `c` evaluated to `rows` rows whose multiset digest is `digest`.
    pub fn of(c: &Claim, rows: u64, digest: Digest) -> ClaimState {
        ClaimState {
            id: c.id.clone(),
            title: c.title.clone(),
            table: c.table.clone(),
            filter: c.filter.clone(),
            columns: c.columns.clone(),
            rows,
            digest,
        }
    }

    /// The claim's definition, without its figures.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id.clone(),
            title: self.title.clone(),
            table: self.table.clone(),
            filter: self.filter.clone(),
            columns: self.columns.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    claim: Vec<Claim>,
}

fn malformed(path: &Path, why: String) -> Box<Reject> {
    Box::new(Reject::new(RejectCode::ClaimsMalformed, why).at_path(path.display().to_string()))
}

/// Reads a claims file: TOML with one `[[claim]]` table per claim, each with the members of
/// [`Claim`] and no others, ids non-empty and unique. Errors: `CLAIMS_MALFORMED`.
pub fn read(path: &Path) -> Result<Vec<Claim>, Box<Reject>> {
    let bytes = match crate::digest::read_regular_bounded(path, CLAIMS_LIMIT) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(malformed(
                path,
                format!("above the {CLAIMS_LIMIT}-byte limit"),
            ));
        }
        Err(e) => return Err(malformed(path, format!("cannot read: {e}"))),
    };
    let text = String::from_utf8(bytes).map_err(|_| malformed(path, "not UTF-8".into()))?;
    let file: File =
        toml::from_str(&text).map_err(|e| malformed(path, format!("not a claims file: {e}")))?;
    let mut seen = std::collections::BTreeSet::new();
    for c in &file.claim {
        if c.id.trim().is_empty() {
            return Err(malformed(path, "a claim has an empty id".into()));
        }
        if !seen.insert(c.id.as_str()) {
            return Err(malformed(
                path,
                format!("two claims share the id {:?}", c.id),
            ));
        }
        if c.columns.as_ref().is_some_and(|v| v.is_empty()) {
            return Err(malformed(
                path,
                format!("claim {:?} lists no columns", c.id),
            ));
        }
    }
    if file.claim.is_empty() {
        return Err(malformed(
            path,
            "no [[claim]]: an empty proof matrix proves nothing".into(),
        ));
    }
    Ok(file.claim)
}

/// The SQL that selects a claim's rows: the chosen columns (quoted) of its table, filtered.
pub fn select(c: &Claim) -> String {
    let quote = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    let cols = match &c.columns {
        Some(cols) => cols.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", "),
        None => "*".into(),
    };
    let mut sql = format!("SELECT {cols} FROM {}", quote(&c.table));
    if let Some(w) = &c.filter {
        sql.push_str(&format!(" WHERE ({w})"));
    }
    sql
}
