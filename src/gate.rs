//! The CI gate: a pins file names every packet of a repository with the tree hash it was
//! published with (in a ticket, a review, a release note), and [`verify_pins`] verifies each
//! one pinned to it, so a job or a pre-commit hook fails on a packet that drifted, was
//! resealed, or is gone (`packet verify --pins FILE`).
//!
//! A pins file is UTF-8 text, one packet per line: the tree hash as `--expect-tree` takes it
//! (64 hex digits, or abbreviated `PREFIX…SUFFIX`), spaces or tabs, then the packet's path (a
//! directory or a `.tar`/`.tar.gz` archive), relative to the pins file's directory. Blank
//! lines and lines starting with `#` are skipped; a CRLF line end is read as LF (the file is
//! configuration, not sealed evidence). The lines `packet build` prints after `pin it:` give
//! the values.

use crate::archive::{self, Limits};
use crate::parallel::Jobs;
use crate::pin::Pin;
use crate::reject::{Reject, RejectCode, shown};
use crate::report::{Outcome, Report, Verdict, json_document, mask_pass, plural};
use crate::verify::{Against, VerifyOptions};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Largest pins file read, in bytes: far above a repository's packets, far below harm.
pub const PINS_LIMIT: u64 = 1024 * 1024;

/// The schema of a [`PinsReport`].
pub const PINS_REPORT_SCHEMA: &str = "packet.pins-report/1";

/// One line of a pins file: a packet and the tree hash it must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedPacket {
    /// 1-based line number in the pins file.
    pub line: usize,
    /// The published tree hash.
    pub pin: Pin,
    /// The packet as written in the pins file.
    pub given: String,
    /// Where it is: `given`, relative to the pins file's directory.
    pub path: PathBuf,
}

/// Parses a pins file's bytes; relative paths are taken from `base`. Every malformed line is
/// a `PINS_MALFORMED` reject naming it (`FILE:LINE`), as is a file that names no packet (a
/// gate that checks nothing must not pass) or one packet twice.
pub fn parse(bytes: &[u8], label: &str, base: &Path) -> (Vec<PinnedPacket>, Vec<Reject>) {
    let malformed =
        |at: String, why: String| Reject::new(RejectCode::PinsMalformed, why).at_path(at);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (
            Vec::new(),
            vec![malformed(label.into(), "not UTF-8 text".into())],
        );
    };
    let (mut pinned, mut rejects) = (Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.trim_end().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{label}:{}", i + 1);
        let (pin, given) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let given = given.trim_start_matches([' ', '\t']);
        let pin: Pin = match pin.parse() {
            Ok(p) => p,
            Err(e) => {
                rejects.push(malformed(at, format!("{}: {e}", shown(pin))));
                continue;
            }
        };
        if given.is_empty() {
            rejects.push(malformed(
                at,
                "expected `<tree hash>  <packet path>`: no packet path after the tree hash".into(),
            ));
            continue;
        }
        if !seen.insert(given.to_string()) {
            rejects.push(malformed(
                at,
                format!("{} is pinned twice: one packet, one pin", shown(given)),
            ));
            continue;
        }
        pinned.push(PinnedPacket {
            line: i + 1,
            pin,
            given: given.to_string(),
            path: base.join(given),
        });
    }
    if pinned.is_empty() && rejects.is_empty() {
        rejects.push(malformed(
            label.into(),
            "names no packet: a gate that checks nothing proves nothing".into(),
        ));
    }
    (pinned, rejects)
}

/// One pinned packet's verification.
#[derive(Clone, Debug, Serialize)]
pub struct PinnedReport {
    /// Its line in the pins file.
    pub line: usize,
    /// The pin as written there.
    pub pin: String,
    /// The packet as written there.
    pub packet: String,
    /// Its `packet.verify-report/1`, pinned.
    pub report: Report,
}

/// The gate's outcome: every pinned packet's report, and what was wrong with the pins file.
#[derive(Clone, Debug, Serialize)]
pub struct PinsReport {
    /// Always [`PINS_REPORT_SCHEMA`].
    pub schema: String,
    /// The pins file.
    pub pins: String,
    /// PASS only when the pins file is well-formed and every packet passed pinned.
    pub verdict: Verdict,
    /// `PINS_MALFORMED` rejects (the packets of well-formed lines are still verified).
    pub rejects: Vec<Reject>,
    /// One per packet line, in file order.
    pub packets: Vec<PinnedReport>,
}

/// Verifies every packet `pins` names, each pinned to its tree hash (a directory as `verify
/// DIR --expect-tree PIN` does, an archive as `verify FILE.tar.gz --expect-tree PIN`). Never
/// fails: an unreadable pins file or archive is a reject in the report.
pub fn verify_pins(pins: &Path, jobs: Jobs, limits: &Limits) -> PinsReport {
    let label = pins.display().to_string();
    let base = pins.parent().map(Path::to_path_buf).unwrap_or_default();
    let (pinned, rejects) = match crate::digest::read_regular_bounded(pins, PINS_LIMIT) {
        Ok(Some(bytes)) => parse(&bytes, &label, &base),
        Ok(None) => (
            Vec::new(),
            vec![
                Reject::new(
                    RejectCode::PinsMalformed,
                    format!("larger than the {PINS_LIMIT}-byte limit for a pins file"),
                )
                .at_path(label.clone()),
            ],
        ),
        Err(e) => (
            Vec::new(),
            vec![
                Reject::new(RejectCode::PinsMalformed, format!("cannot read: {e}"))
                    .at_path(label.clone()),
            ],
        ),
    };
    let packets: Vec<PinnedReport> = pinned
        .into_iter()
        .map(|p| {
            let opts = VerifyOptions {
                expect_tree: Some(p.pin.clone()),
                against: Against::Itself,
                jobs,
            };
            let report = archive::verify_path(&p.path, &opts, limits);
            PinnedReport {
                line: p.line,
                pin: p.pin.given().to_string(),
                packet: p.given,
                report,
            }
        })
        .collect();
    let passed = rejects.is_empty() && packets.iter().all(|p| p.report.passed());
    PinsReport {
        schema: PINS_REPORT_SCHEMA.into(),
        pins: label,
        verdict: if passed { Verdict::Pass } else { Verdict::Fail },
        rejects,
        packets,
    }
}

impl Outcome for PinsReport {
    fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// Each packet's report, the pins file's rejects, then one verdict line; a failing gate
    /// masks every PASS token, the passing packets' verdict lines included.
    fn render_text(&self) -> String {
        let mut out = String::new();
        for p in &self.packets {
            out.push_str(&p.report.render_text());
        }
        for r in &self.rejects {
            out.push_str(&r.render());
            out.push('\n');
        }
        let n = plural(self.packets.len(), "packet");
        if self.passed() {
            let _ = writeln!(
                out,
                "PASS pins {}: {n}, each pinned to its published tree hash",
                shown(&self.pins)
            );
            out
        } else {
            let failed = self.packets.iter().filter(|p| !p.report.passed()).count();
            let _ = write!(
                out,
                "FAIL pins {}: {failed} of {n} rejected",
                shown(&self.pins)
            );
            if !self.rejects.is_empty() {
                let _ = write!(
                    out,
                    ", and the pins file has {}",
                    plural(self.rejects.len(), "reject")
                );
            }
            out.push('\n');
            mask_pass(&out, false)
        }
    }

    fn to_json(&self) -> String {
        json_document(self, self.passed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_files_parse_strictly_and_name_every_bad_line() {
        let hex = "72b24b8a".repeat(8);
        let text = format!(
            "# published in REL-7\n\n{hex}  packets/a\r\n72b24b8a…787bb2\tpackets/b.tar.gz\nnot-a-pin packets/c\n{hex}\n{hex}  packets/a\n"
        );
        let (pinned, rejects) = parse(text.as_bytes(), "PINS", Path::new("/repo"));
        let paths: Vec<_> = pinned.iter().map(|p| (p.line, p.path.clone())).collect();
        assert_eq!(
            paths,
            [
                (3, PathBuf::from("/repo/packets/a")),
                (4, PathBuf::from("/repo/packets/b.tar.gz"))
            ]
        );
        let at: Vec<_> = rejects.iter().map(|r| r.path.clone().unwrap()).collect();
        assert_eq!(at, ["PINS:5", "PINS:6", "PINS:7"], "{rejects:?}");
        assert!(rejects.iter().all(|r| r.code == RejectCode::PinsMalformed));
        let (none, rejects) = parse(b"# nothing yet\n", "PINS", Path::new("."));
        assert!(none.is_empty() && rejects.len() == 1, "{rejects:?}");
        let (_, rejects) = parse(b"\xff\n", "PINS", Path::new("."));
        assert_eq!(rejects.len(), 1);
    }
}
