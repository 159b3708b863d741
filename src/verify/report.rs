//! Reports: what a run found, as serde data first (the `--json` form, schema
//! `packet.verify-report/1`) and rendered as text second. A failing report never renders the
//! `PASS` token.

use crate::reject::{Diagnosis, RejectCode};
pub use crate::reject::{Reject, is_bidi_control, shown};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Schema name written in every JSON report.
pub const REPORT_SCHEMA: &str = "packet.verify-report/1";

/// One sealed file's outcome, listed when a copy is checked against its original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLine {
    /// The sealed path.
    pub path: String,
    /// `byte-exact`, `drifted` or `missing`.
    pub status: String,
    /// The name the file was found under, when only its name drifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_as: Option<String>,
    /// For drifted files: how well the diagnosis is proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<crate::reject::Proof>,
    /// For drifted files: the `DRIFT_*` causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<RejectCode>,
}

impl FileLine {
    /// A line with a status and nothing else.
    pub fn new(path: &str, status: &str) -> FileLine {
        FileLine {
            path: path.to_string(),
            status: status.to_string(),
            found_as: None,
            proof: None,
            causes: Vec::new(),
        }
    }

    /// A drifted file's line.
    pub fn drifted(path: &str, found_as: Option<&str>, d: Option<&Diagnosis>) -> FileLine {
        FileLine {
            found_as: found_as.map(str::to_string),
            proof: d.map(|d| d.proof),
            causes: d.map(Diagnosis::codes).unwrap_or_default(),
            ..FileLine::new(path, "drifted")
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Every check passed.
    #[serde(rename = "PASS")]
    Pass,
    /// At least one reject.
    #[serde(rename = "FAIL")]
    Fail,
}

/// The tree hashes a verification saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHashes {
    /// SHA-256 of `HASH_MANIFEST.txt` as found, if it could be read.
    pub computed: Option<String>,
    /// The digest `packet_tree.sha256` records, if it could be parsed.
    pub recorded: Option<String>,
    /// The pin given with `--expect-tree`, as given.
    pub expected: Option<String>,
    /// How many of the 64 hex digits the pin checked (0 without a pin).
    pub pin_hex_digits_checked: usize,
}

/// Counts over a verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Files the manifest lists.
    pub sealed_files: usize,
    /// Sealed files whose bytes match their digest.
    pub intact_files: usize,
    /// Bytes read from sealed files.
    pub bytes: u64,
    /// Rollback-evidence documents validated.
    pub rollback_documents: usize,
    /// Rollback entries validated.
    pub rollback_entries: usize,
    /// Rejects found.
    pub rejects: usize,
}

/// A verification report (`packet verify`, `packet check-rollback`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`].
    pub schema: String,
    /// What was checked: the packet directory or the evidence files.
    pub subject: String,
    /// PASS only when `rejects` is empty.
    pub verdict: Verdict,
    /// `pinned` when a pin was given (`--expect-tree`, or `--against` a tree hash; a pin that
    /// does not match is a `PIN_MISMATCH` reject, so a PASS that says `pinned` matched it),
    /// otherwise `internal-consistency-only`: the packet agrees with its own seal, which
    /// anyone who could change the files could also have rewritten.
    pub scope: String,
    /// Tree hashes (absent for `check-rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_hash: Option<TreeHashes>,
    /// Counts.
    pub counts: Counts,
    /// Every reject, in path order.
    pub rejects: Vec<Reject>,
    /// Remarks that are not rejects (e.g. no seal record, so lengths and drift diagnosis were
    /// unavailable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Per sealed file, when a copy is checked against its original (`verify --against`,
    /// `restore`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileLine>,
}

impl Report {
    /// A report over `subject` from its rejects; the verdict follows from them.
    pub fn new(subject: String, rejects: Vec<Reject>, counts: Counts) -> Report {
        let verdict = if rejects.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        let counts = Counts {
            rejects: rejects.len(),
            ..counts
        };
        Report {
            schema: REPORT_SCHEMA.to_string(),
            subject,
            verdict,
            scope: "internal-consistency-only".to_string(),
            tree_hash: None,
            counts,
            rejects,
            notes: Vec::new(),
            files: Vec::new(),
        }
    }

    /// True when the verdict is PASS.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// One JSON document, pretty-printed, with a final newline.
    pub fn to_json(&self) -> String {
        json_document(self, self.passed())
    }

    /// The text form: one line per reject (plus diagnosis lines), notes, then one verdict line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for f in self.files.iter().filter(|f| f.status == "byte-exact") {
            let _ = writeln!(out, "ok     {}: byte-exact", shown(&f.path));
        }
        for r in &self.rejects {
            out.push_str(&r.render());
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let c = &self.counts;
        let tree = self.tree_hash.as_ref();
        let mut what = if tree.is_some() {
            format!("{} sealed files, {} bytes", c.sealed_files, c.bytes)
        } else {
            format!("{} rollback entries", c.rollback_entries)
        };
        if tree.is_some() && c.rollback_documents > 0 {
            let docs = plural(c.rollback_documents, "evidence document");
            let _ = write!(what, ", {} rollback entries in {docs}", c.rollback_entries);
        }
        match self.verdict {
            Verdict::Pass => {
                let _ = write!(out, "PASS {}: {what}", shown(&self.subject));
                if let Some(t) = tree {
                    let computed = t.computed.as_deref().unwrap_or("");
                    let _ = write!(out, "; tree {computed}");
                    if t.expected.is_some() {
                        let _ = write!(
                            out,
                            "; pin matched ({} of 64 hex digits checked)",
                            t.pin_hex_digits_checked
                        );
                    } else {
                        out.push_str(
                            "; internal consistency only: no pin given (--expect-tree proves identity)",
                        );
                    }
                }
            }
            Verdict::Fail => {
                let _ = write!(
                    out,
                    "FAIL {}: {}; {what}",
                    shown(&self.subject),
                    plural(c.rejects, "reject")
                );
                if let Some(t) = tree
                    && let Some(computed) = &t.computed
                {
                    let _ = write!(out, "; tree {computed}");
                }
            }
        }
        out.push('\n');
        if self.passed() {
            out
        } else {
            mask_pass(&out, false)
        }
    }
}

/// What a command prints: its text form or one JSON document, and whether it passed (exit 0).
pub trait Outcome {
    /// True when the command passed.
    fn passed(&self) -> bool;
    /// The text form; a failing one holds no PASS token.
    fn render_text(&self) -> String;
    /// One JSON document with a final newline; a failing one holds no PASS token.
    fn to_json(&self) -> String;
}

impl Outcome for Report {
    fn passed(&self) -> bool {
        Report::passed(self)
    }
    fn render_text(&self) -> String {
        Report::render_text(self)
    }
    fn to_json(&self) -> String {
        Report::to_json(self)
    }
}

/// `value` as one pretty-printed JSON document with a final newline, masked by [`mask_pass`]
/// unless `passed`.
pub fn json_document<T: Serialize>(value: &T, passed: bool) -> String {
    let s = serde_json::to_string_pretty(value).expect("reports serialize") + "\n";
    if passed { s } else { mask_pass(&s, true) }
}

/// True when `text` holds `PASS` as a whole word (not inside `PASSWORD`).
pub fn has_pass_token(text: &str) -> bool {
    pass_tokens(text).next().is_some()
}

fn pass_tokens(text: &str) -> impl Iterator<Item = usize> + '_ {
    let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let bytes = text.as_bytes();
    text.match_indices("PASS")
        .map(|(i, _)| i)
        .filter(move |&i| {
            !word(i.checked_sub(1).and_then(|j| bytes.get(j))) && !word(bytes.get(i + 4))
        })
}

/// A failing run prints no `PASS` token: where user data (a file named `PASS`, an entry id)
/// would put one in, it is written `P\x41SS` in text and `P\u0041SS` in JSON (which still
/// decodes to the exact name).
pub fn mask_pass(text: &str, json: bool) -> String {
    let hits: Vec<usize> = pass_tokens(text).collect();
    if hits.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + hits.len() * 5);
    let mut last = 0;
    for i in hits {
        out.push_str(&text[last..i]);
        out.push_str(if json { "P\\u0041SS" } else { "P\\x41SS" });
        last = i + 4;
    }
    out.push_str(&text[last..]);
    out
}

/// `1 reject`, `2 rejects`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_report_never_renders_pass() {
        let r = Report::new(
            "p".into(),
            vec![Reject::new(RejectCode::FileMissing, "gone".into()).at_path("a".into())],
            Counts::default(),
        );
        let text = r.render_text();
        assert!(!text.contains("PASS"), "{text}");
        assert!(text.starts_with("REJECT FILE_MISSING a: gone\n"), "{text}");
        assert!(text.contains("FAIL p: 1 reject;"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["verdict"], "FAIL");
        assert_eq!(json["rejects"][0]["code"], "FILE_MISSING");
    }

    #[test]
    fn rollback_rejects_print_code_with_entry() {
        let r = Reject::new(RejectCode::RollbackNotRestored, "x".into())
            .at_entry("RB-1".into())
            .at_path("e.json".into());
        assert_eq!(r.render(), "REJECT ROLLBACK_NOT_RESTORED:RB-1 e.json: x");
    }

    #[test]
    fn user_data_cannot_inject_a_pass_line_or_token() {
        let r = Report::new(
            "p".into(),
            vec![
                Reject::new(RejectCode::PathRejected, "unsafe name".into())
                    .at_path("x\nPASS p: all good".into()),
                Reject::new(RejectCode::FileMissing, "gone".into()).at_path("PASS".into()),
                Reject::new(RejectCode::FileMissing, "gone".into()).at_path("PASSWORDS.md".into()),
            ],
            Counts::default(),
        );
        let text = r.render_text();
        assert!(!has_pass_token(&text), "{text}");
        assert!(
            text.contains("REJECT PATH_REJECTED x\\nPASS p: all good"),
            "{text}"
        );
        assert!(
            text.contains("REJECT FILE_MISSING P\\x41SS: gone"),
            "{text}"
        );
        assert!(text.contains("PASSWORDS.md"), "not a token: left alone");
        assert_eq!(text.lines().count(), 4, "{text}");
        let json = r.to_json();
        assert!(!has_pass_token(&json), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back["rejects"][1]["path"], "PASS",
            "the JSON still decodes to the exact name"
        );
    }

    #[test]
    fn pass_tokens_are_whole_words() {
        assert!(has_pass_token("PASS x"));
        assert!(has_pass_token("a.PASS"));
        assert!(!has_pass_token("PASSWORD BYPASS PASS_1"));
    }

    #[test]
    fn empty_report_passes() {
        let r = Report::new("p".into(), vec![], Counts::default());
        assert!(r.passed());
        assert!(r.render_text().starts_with("PASS p"));
    }
}
