//! `snapshot-diff`: the no-touch proof. Two snapshots of one database are compared table by
//! table; the report always carries the figures (rows and digests before and after, for
//! every table, also the identical ones), names every table that changed in count, content
//! or schema and nothing that did not, and reports moved counters without counting them as
//! state. Snapshots of different engines or encodings are refused, not compared.

use super::snapshot::Snapshot;
use crate::reject::{Reject, RejectCode, shown};
use crate::report::{Outcome, Verdict, json_document, mask_pass, plural};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Schema name of the diff report.
pub const DIFF_SCHEMA: &str = "packet.snapshot-diff/1";

/// One table, before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableDiff {
    /// The table.
    pub name: String,
    /// `identical`, `changed`, `added` or `removed`.
    pub status: String,
    /// What changed: any of `rows`, `content`, `schema`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Rows before (absent for an added table).
    pub rows_before: Option<u64>,
    /// Rows after (absent for a removed table).
    pub rows_after: Option<u64>,
    /// Content digest before.
    pub digest_before: Option<String>,
    /// Content digest after.
    pub digest_after: Option<String>,
}

/// One claim, before and after: its figures always, also when identical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClaimDiff {
    /// The claim's id.
    pub id: String,
    /// What it says.
    pub title: String,
    /// `identical` or `changed`.
    pub status: String,
    /// Rows that satisfied it before.
    pub rows_before: u64,
    /// Rows that satisfy it after.
    pub rows_after: u64,
    /// Digest before.
    pub digest_before: String,
    /// Digest after.
    pub digest_after: String,
}

/// A counter, before and after (reported; never a reject: no rollback restores counters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterDiff {
    /// The counter.
    pub name: String,
    /// Value before.
    pub before: Option<i64>,
    /// Value after.
    pub after: Option<i64>,
}

/// The diff report (schema `packet.snapshot-diff/1`); sealable evidence.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    /// Always [`DIFF_SCHEMA`].
    pub schema: String,
    /// The first snapshot file.
    pub before: String,
    /// The second snapshot file.
    pub after: String,
    /// PASS only when every table is identical.
    pub verdict: Verdict,
    /// State digests before and after, when both snapshots were read.
    pub state_before: Option<String>,
    /// See `state_before`.
    pub state_after: Option<String>,
    /// Every table of either snapshot, by name.
    pub tables: Vec<TableDiff>,
    /// Every claim, in the claims file's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimDiff>,
    /// Every counter of either snapshot that moved or exists in one only.
    pub counters: Vec<CounterDiff>,
    /// One reject per changed table, or why the snapshots were not compared.
    pub rejects: Vec<Reject>,
}

/// Compares the snapshot files `before` and `after`.
pub fn diff_files(before: &Path, after: &Path) -> DiffReport {
    let mut report = DiffReport {
        schema: DIFF_SCHEMA.into(),
        before: before.display().to_string(),
        after: after.display().to_string(),
        verdict: Verdict::Fail,
        state_before: None,
        state_after: None,
        tables: Vec::new(),
        claims: Vec::new(),
        counters: Vec::new(),
        rejects: Vec::new(),
    };
    let (b, a) = match (Snapshot::read(before), Snapshot::read(after)) {
        (Ok(b), Ok(a)) => (b, a),
        (b, a) => {
            report.rejects.extend(b.err().map(|r| *r));
            report.rejects.extend(a.err().map(|r| *r));
            return report;
        }
    };
    if (b.engine.as_str(), b.encoding.as_str()) != (a.engine.as_str(), a.encoding.as_str()) {
        report.rejects.push(
            Reject::new(
                RejectCode::SnapshotIncomparable,
                format!(
                    "{} snapshot ({}) against {} snapshot ({}): different engines or encodings are not compared",
                    b.engine, b.encoding, a.engine, a.encoding
                ),
            )
            .at_path(report.after.clone()),
        );
        return report;
    }
    if b.scope != a.scope {
        report.rejects.push(
            Reject::new(
                RejectCode::SnapshotIncomparable,
                "the snapshots cover different tables (--table/--exclude-table): take both with one scope".into(),
            )
            .at_path(report.after.clone()),
        );
        return report;
    }
    let defs = |s: &Snapshot| s.claims.iter().map(|c| c.claim()).collect::<Vec<_>>();
    if defs(&b) != defs(&a) {
        report.rejects.push(
            Reject::new(
                RejectCode::SnapshotIncomparable,
                "the snapshots evaluated different claims (ids, tables, filters or columns): take both with one claims file".into(),
            )
            .at_path(report.after.clone()),
        );
        return report;
    }
    report.state_before = Some(b.state_digest.to_hex());
    report.state_after = Some(a.state_digest.to_hex());
    compare(&b, &a, &mut report);
    if report.rejects.is_empty() {
        report.verdict = Verdict::Pass;
    }
    report
}

/// Every table of either snapshot, by name, with its figures and what changed.
pub fn table_diffs(b: &Snapshot, a: &Snapshot) -> Vec<TableDiff> {
    let before: BTreeMap<&str, _> = b.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let after: BTreeMap<&str, _> = a.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut names: Vec<&str> = before.keys().chain(after.keys()).copied().collect();
    names.sort();
    names.dedup();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let (tb, ta) = (before.get(name), after.get(name));
        let mut changed = Vec::new();
        let status = match (tb, ta) {
            (Some(x), Some(y)) => {
                if x.rows != y.rows {
                    changed.push("rows".to_string());
                }
                if x.digest != y.digest {
                    changed.push("content".to_string());
                }
                if x.schema_digest != y.schema_digest {
                    changed.push("schema".to_string());
                }
                if changed.is_empty() {
                    "identical"
                } else {
                    "changed"
                }
            }
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (None, None) => unreachable!("a name from one of the two maps"),
        };
        out.push(TableDiff {
            name: name.to_string(),
            status: status.to_string(),
            changed,
            rows_before: tb.map(|t| t.rows),
            rows_after: ta.map(|t| t.rows),
            digest_before: tb.map(|t| t.digest.to_hex()),
            digest_after: ta.map(|t| t.digest.to_hex()),
        });
    }
    out
}

/// Every counter of either snapshot whose value differs (or that exists in one only).
pub fn counter_diffs(b: &Snapshot, a: &Snapshot) -> Vec<CounterDiff> {
    let values = |s: &Snapshot| -> BTreeMap<String, i64> {
        s.counters
            .iter()
            .map(|c| (c.name.clone(), c.value))
            .collect()
    };
    let (cb, ca) = (values(b), values(a));
    let mut names: Vec<&String> = cb.keys().chain(ca.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (x, y) = (cb.get(name).copied(), ca.get(name).copied());
            (x != y).then(|| CounterDiff {
                name: name.clone(),
                before: x,
                after: y,
            })
        })
        .collect()
}

fn compare(b: &Snapshot, a: &Snapshot, report: &mut DiffReport) {
    for d in table_diffs(b, a) {
        if d.status != "identical" {
            let what = match d.status.as_str() {
                "changed" => format!(
                    "{} changed: rows {} -> {}, content {} -> {}",
                    d.changed.join(" and "),
                    d.rows_before.unwrap_or(0),
                    d.rows_after.unwrap_or(0),
                    short(&d.digest_before),
                    short(&d.digest_after)
                ),
                "added" => format!("added, with {} rows", d.rows_after.unwrap_or(0)),
                _ => format!("removed; it had {} rows", d.rows_before.unwrap_or(0)),
            };
            report.rejects.push(
                Reject::new(RejectCode::StateChanged, format!("table {what}"))
                    .at_path(d.name.clone()),
            );
        }
        report.tables.push(d);
    }
    for (x, y) in b.claims.iter().zip(&a.claims) {
        let same = x.rows == y.rows && x.digest == y.digest;
        let d = ClaimDiff {
            id: x.id.clone(),
            title: x.title.clone(),
            status: if same { "identical" } else { "changed" }.into(),
            rows_before: x.rows,
            rows_after: y.rows,
            digest_before: x.digest.to_hex(),
            digest_after: y.digest.to_hex(),
        };
        if !same {
            report.rejects.push(
                Reject::new(
                    RejectCode::StateChanged,
                    format!(
                        "claim {:?} changed: rows {} -> {}, digest {}… -> {}…",
                        x.title,
                        x.rows,
                        y.rows,
                        &d.digest_before[..12],
                        &d.digest_after[..12]
                    ),
                )
                .at_path(format!("claim {}", x.id)),
            );
        }
        report.claims.push(d);
    }
    report.counters = counter_diffs(b, a);
}

fn short(d: &Option<String>) -> String {
    d.as_deref()
        .map_or("-".into(), |h| format!("{}…", &h[..12]))
}

impl DiffReport {
    /// True when every table is identical.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// One line per table with its figures, moved counters, rejects, then the verdict.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let _ = writeln!(
                out,
                "{:<9} {}: rows {} -> {}, digest {} -> {}",
                t.status,
                shown(&t.name),
                t.rows_before.map_or("-".into(), |n| n.to_string()),
                t.rows_after.map_or("-".into(), |n| n.to_string()),
                short(&t.digest_before),
                short(&t.digest_after)
            );
        }
        for c in &self.claims {
            let _ = writeln!(
                out,
                "{:<9} claim {} ({}): rows {} -> {}, digest {}… -> {}…",
                c.status,
                shown(&c.id),
                shown(&c.title),
                c.rows_before,
                c.rows_after,
                &c.digest_before[..12],
                &c.digest_after[..12]
            );
        }
        for c in &self.counters {
            let v = |x: Option<i64>| x.map_or("-".into(), |n| n.to_string());
            let _ = writeln!(
                out,
                "counter   {}: {} -> {} (moved; no rollback restores a counter, so it is not state)",
                shown(&c.name),
                v(c.before),
                v(c.after)
            );
        }
        for r in &self.rejects {
            out.push_str(&r.render());
            out.push('\n');
        }
        let states = match (&self.state_before, &self.state_after) {
            (Some(b), Some(a)) if b == a => format!("; state {b}"),
            (Some(b), Some(a)) => format!("; state {} -> {}", &b[..16], &a[..16]),
            _ => String::new(),
        };
        let tables = plural(self.tables.len(), "table");
        if self.passed() {
            let _ = writeln!(
                out,
                "PASS snapshot-diff {} {}: {tables} identical{states}",
                shown(&self.before),
                shown(&self.after)
            );
            out
        } else {
            let _ = writeln!(
                out,
                "FAIL snapshot-diff {} {}: {}; {tables}{states}",
                shown(&self.before),
                shown(&self.after),
                plural(self.rejects.len(), "reject")
            );
            mask_pass(&out, false)
        }
    }
}

impl Outcome for DiffReport {
    fn passed(&self) -> bool {
        DiffReport::passed(self)
    }
    fn render_text(&self) -> String {
        DiffReport::render_text(self)
    }
    fn to_json(&self) -> String {
        json_document(self, self.passed())
    }
}
