//! Drift diagnosis: for a sealed file whose bytes no longer match, name the cause (BOM, line
//! ends, Unicode form or typographic folding, JSON `ensure_ascii` escapes) and say how well it
//! is proven, using only the current bytes and the profile sealed at build time.
//!
//! Proof levels: `proven` when undoing the named causes on the current bytes gives back the
//! sealed SHA-256 exactly; `consistent` when the normalized-text digest (`norm/1`) sealed at
//! build time matches the current one, so the text is the same up to cosmetic drift but the
//! exact bytes cannot be rebuilt; otherwise the content changed.

use crate::digest::Digest;
use crate::profile::{self, BOM, LineEnds, Profile, TextProfile};
use crate::reject::RejectCode;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use unicode_normalization::UnicodeNormalization;

/// Files larger than this, in bytes, are not diagnosed; the report says so.
pub const DIAGNOSE_LIMIT: u64 = profile::PROFILE_LIMIT;

/// How well a diagnosis is proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    /// Undoing the causes on the current bytes reproduces the sealed SHA-256 exactly.
    Proven,
    /// The sealed normalized-text digest equals the current one: same text up to the named
    /// cosmetic causes, exact bytes not rebuildable.
    Consistent,
    /// The text itself changed; no cosmetic cause explains it.
    ContentChanged,
    /// Diagnosis was not attempted (file too large, binary, or no seal profile to compare).
    NotTried,
}

impl Proof {
    fn label(self) -> &'static str {
        match self {
            Proof::Proven => "proven",
            Proof::Consistent => "consistent",
            Proof::ContentChanged => "content changed",
            Proof::NotTried => "not tried",
        }
    }
}

/// One diagnosed cause of drift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// A `DRIFT_*` code.
    pub code: RejectCode,
    /// What moved, e.g. `line ends LF -> CRLF`.
    pub detail: String,
}

/// The diagnosis of one mismatched file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// How well the causes are proven.
    pub proof: Proof,
    /// The causes (empty for `content-changed` and `not-tried`).
    pub causes: Vec<Cause>,
    /// One sentence for people.
    pub summary: String,
}

impl Diagnosis {
    fn new(proof: Proof, causes: Vec<Cause>, summary: String) -> Diagnosis {
        Diagnosis {
            proof,
            causes,
            summary,
        }
    }

    /// Codes of the causes, in order.
    pub fn codes(&self) -> Vec<RejectCode> {
        self.causes.iter().map(|c| c.code).collect()
    }

    /// Text lines, each prefixed with `indent`: `diagnosis: <proof>: <summary>` then one
    /// `<CODE>: <detail>` per cause.
    pub fn render(&self, indent: &str) -> String {
        let mut out = format!(
            "{indent}diagnosis ({}): {}",
            self.proof.label(),
            self.summary
        );
        for c in &self.causes {
            let _ = write!(out, "\n{indent}  {}: {}", c.code, c.detail);
        }
        out
    }
}

/// One reversible transformation tried on the current bytes to rebuild the sealed ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Undo {
    Unescape,
    Normalize { nfc: bool },
    LineEnds(LineEnds),
    Bom { add: bool },
}

impl Undo {
    fn apply(self, text: &str) -> String {
        match self {
            Undo::Unescape => profile::unescape_non_ascii(text),
            Undo::Normalize { nfc: true } => text.nfc().collect(),
            Undo::Normalize { nfc: false } => text.nfd().collect(),
            Undo::LineEnds(target) => {
                let lf = text.replace("\r\n", "\n").replace('\r', "\n");
                match target {
                    LineEnds::Crlf => lf.replace('\n', "\r\n"),
                    LineEnds::Cr => lf.replace('\n', "\r"),
                    _ => lf,
                }
            }
            Undo::Bom { add: true } => format!("\u{FEFF}{text}"),
            Undo::Bom { add: false } => text.strip_prefix('\u{FEFF}').unwrap_or(text).to_string(),
        }
    }

    /// The cause this undo reverses, described from what was sealed to what is there now.
    fn cause(self, now: &TextProfile) -> Cause {
        match self {
            Undo::Unescape => Cause {
                code: RejectCode::DriftJsonAsciiEscape,
                detail: format!(
                    "JSON re-encoded with ensure_ascii: {} \\uXXXX escapes now stand for non-ASCII characters",
                    now.u_escapes
                ),
            },
            Undo::Normalize { nfc } => Cause {
                code: RejectCode::DriftUnicode,
                detail: if nfc {
                    "Unicode normalization NFC -> NFD (decomposed accents)".into()
                } else {
                    "Unicode normalization changed to NFC (composed accents)".into()
                },
            },
            Undo::LineEnds(target) => Cause {
                code: RejectCode::DriftCrlf,
                detail: format!("line ends {} -> {}", eol_name(target), eol_name(now.eol)),
            },
            Undo::Bom { add } => Cause {
                code: RejectCode::DriftBom,
                detail: if add {
                    "UTF-8 BOM (EF BB BF) removed".into()
                } else {
                    "UTF-8 BOM (EF BB BF) added".into()
                },
            },
        }
    }
}

fn eol_name(e: LineEnds) -> &'static str {
    match e {
        LineEnds::None => "none",
        LineEnds::Lf => "LF",
        LineEnds::Crlf => "CRLF",
        LineEnds::Cr => "CR",
        LineEnds::Mixed => "mixed",
    }
}

/// Undos suggested by how the sealed profile and the current one differ. Without a sealed
/// profile (a packet sealed by another tool), every undo the current text makes plausible.
fn candidate_undos(sealed: Option<&TextProfile>, now: &TextProfile) -> Vec<Undo> {
    let mut undos = Vec::new();
    match sealed {
        Some(s) => {
            if now.u_escapes > s.u_escapes {
                undos.push(Undo::Unescape);
            }
            if s.nfc != now.nfc {
                undos.push(Undo::Normalize { nfc: s.nfc });
            }
            if s.eol != now.eol && matches!(s.eol, LineEnds::Lf | LineEnds::Crlf | LineEnds::Cr) {
                undos.push(Undo::LineEnds(s.eol));
            }
            if s.bom != now.bom {
                undos.push(Undo::Bom { add: s.bom });
            }
        }
        None => {
            if now.u_escapes > 0 {
                undos.push(Undo::Unescape);
            }
            if !now.nfc {
                undos.push(Undo::Normalize { nfc: true });
            }
            if matches!(now.eol, LineEnds::Crlf | LineEnds::Cr | LineEnds::Mixed) {
                undos.push(Undo::LineEnds(LineEnds::Lf));
            }
            if now.bom {
                undos.push(Undo::Bom { add: false });
            }
        }
    }
    undos
}

/// A diagnosis, with the sealed bytes rebuilt from the current ones when it is proven (their
/// SHA-256 has been checked against the sealed digest).
#[derive(Clone, Debug)]
pub struct Finding {
    /// The diagnosis.
    pub diagnosis: Diagnosis,
    /// The original bytes, for a proven diagnosis only.
    pub rebuilt: Option<Vec<u8>>,
}

impl From<Diagnosis> for Finding {
    fn from(diagnosis: Diagnosis) -> Finding {
        Finding {
            diagnosis,
            rebuilt: None,
        }
    }
}

/// Diagnoses a sealed file whose bytes no longer match; see [`examine`].
pub fn diagnose(sealed_digest: &Digest, sealed: Option<&Profile>, current: &[u8]) -> Diagnosis {
    examine(sealed_digest, sealed, current).diagnosis
}

/// Diagnoses a sealed file whose bytes no longer match, and rebuilds the sealed bytes when
/// the diagnosis is proven.
///
/// `sealed_digest` is the manifest's digest; `sealed` the seal record's profile, if any;
/// `current` the file's bytes now. Subsets of the candidate undos are tried smallest first, so
/// the causes named are the fewest that rebuild the sealed bytes.
pub fn examine(sealed_digest: &Digest, sealed: Option<&Profile>, current: &[u8]) -> Finding {
    if current.len() as u64 > DIAGNOSE_LIMIT {
        return too_large(current.len() as u64).into();
    }
    let sealed_text = match sealed {
        Some(Profile::Binary) => {
            let summary = "binary file: its bytes changed".into();
            return Diagnosis::new(Proof::ContentChanged, vec![], summary).into();
        }
        Some(Profile::Text(t)) => Some(t),
        None => None,
    };
    let now_profile = Profile::of(current);
    let (Some(text), Profile::Text(now)) = (std::str::from_utf8(current).ok(), &now_profile) else {
        let (proof, summary) = if sealed_text.is_some() {
            (
                Proof::ContentChanged,
                "content changed: sealed as UTF-8 text, now binary (not valid UTF-8 or holds NUL)",
            )
        } else {
            (Proof::NotTried, "not diagnosed: the file is not UTF-8 text")
        };
        return Diagnosis::new(proof, vec![], summary.into()).into();
    };

    let undos = candidate_undos(sealed_text, now);
    for size in 1..=undos.len() {
        for mask in 0u32..(1 << undos.len()) {
            if mask.count_ones() as usize != size {
                continue;
            }
            let chosen: Vec<Undo> = (0..undos.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| undos[i])
                .collect();
            let rebuilt = chosen.iter().fold(text.to_string(), |t, u| u.apply(&t));
            if Digest::of(rebuilt.as_bytes()) == *sealed_digest {
                let causes: Vec<Cause> = chosen.iter().map(|u| u.cause(now)).collect();
                let names: Vec<String> = causes.iter().map(|c| c.code.to_string()).collect();
                let summary = format!(
                    "undoing {} on the current bytes gives back the sealed SHA-256 exactly",
                    names.join(" + ")
                );
                return Finding {
                    diagnosis: Diagnosis::new(Proof::Proven, causes, summary),
                    rebuilt: Some(rebuilt.into_bytes()),
                };
            }
        }
    }

    let Some(s) = sealed_text else {
        let summary = "no seal profile for this file (sealed by another tool?) and no simple undo rebuilds it";
        return Diagnosis::new(Proof::NotTried, vec![], summary.into()).into();
    };
    if s.norm_sha256 == now.norm_sha256 {
        let causes = observed_causes(s, now);
        let summary = if causes.is_empty() {
            "same text up to whitespace; the exact sealed bytes cannot be rebuilt"
        } else {
            "same text up to these cosmetic causes (normalized digest matches); the exact sealed bytes cannot be rebuilt"
        };
        return Diagnosis::new(Proof::Consistent, causes, summary.into()).into();
    }
    Diagnosis::new(Proof::ContentChanged, vec![], content_summary(s, now)).into()
}

/// The diagnosis of a file above [`DIAGNOSE_LIMIT`]: not tried, and saying why.
pub fn too_large(len: u64) -> Diagnosis {
    Diagnosis::new(
        Proof::NotTried,
        vec![],
        format!("not diagnosed: {len} bytes is above the {DIAGNOSE_LIMIT}-byte diagnosis limit"),
    )
}

/// Causes visible in the profile differences, for a consistent diagnosis.
fn observed_causes(s: &TextProfile, now: &TextProfile) -> Vec<Cause> {
    let mut causes: Vec<Cause> = candidate_undos(Some(s), now)
        .into_iter()
        .map(|u| u.cause(now))
        .collect();
    if s.eol != now.eol && !causes.iter().any(|c| c.code == RejectCode::DriftCrlf) {
        causes.push(Cause {
            code: RejectCode::DriftCrlf,
            detail: format!("line ends {} -> {}", eol_name(s.eol), eol_name(now.eol)),
        });
    }
    if now.typographic < s.typographic {
        causes.push(Cause {
            code: RejectCode::DriftUnicode,
            detail: format!(
                "typographic characters folded to ASCII: {} sealed (em-dash, curly quotes, ellipsis, ...), {} now",
                s.typographic, now.typographic
            ),
        });
    } else if now.typographic > s.typographic {
        causes.push(Cause {
            code: RejectCode::DriftUnicode,
            detail: format!(
                "ASCII turned typographic (smart punctuation): {} typographic characters sealed, {} now",
                s.typographic, now.typographic
            ),
        });
    }
    causes.sort_by_key(|c| c.code);
    causes.dedup_by(|a, b| a.code == b.code && a.detail == b.detail);
    causes
}

/// Says plainly how the content moved, from the profile counts.
fn content_summary(s: &TextProfile, now: &TextProfile) -> String {
    let mut out =
        "content changed: the normalized text differs, so this is not cosmetic drift".to_string();
    let mut moved = Vec::new();
    if s.lines != now.lines {
        let d = now.lines as i64 - s.lines as i64;
        moved.push(format!("lines {} -> {} ({d:+})", s.lines, now.lines));
    }
    if s.non_ascii != now.non_ascii {
        moved.push(format!(
            "non-ASCII characters {} -> {}",
            s.non_ascii, now.non_ascii
        ));
    }
    if s.json != now.json {
        moved.push(if s.json {
            "no longer parses as JSON".into()
        } else {
            "now parses as JSON".into()
        });
    }
    if !moved.is_empty() {
        let _ = write!(out, " ({})", moved.join("; "));
    }
    out
}

/// Bytes with a BOM added, for making drift in tests and the self-test.
pub fn add_bom(bytes: &[u8]) -> Vec<u8> {
    [BOM, bytes].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "Plan — R2 “gate”\nTiếng Việt: không chạm production…\n";
    const JSON: &str = "{\n  \"note\": \"em — dash, Việt\",\n  \"n\": 1\n}\n";

    fn sealed(text: &str) -> (Digest, Profile) {
        (Digest::of(text.as_bytes()), Profile::of(text.as_bytes()))
    }

    fn diag(original: &str, now: &[u8]) -> Diagnosis {
        let (d, p) = sealed(original);
        diagnose(&d, Some(&p), now)
    }

    #[test]
    fn bom_is_proven() {
        let d = diag(DOC, &add_bom(DOC.as_bytes()));
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Proven, vec![RejectCode::DriftBom])
        );
    }

    #[test]
    fn proven_findings_rebuild_the_sealed_bytes() {
        let (digest, profile) = sealed(JSON);
        let now = add_bom(
            profile::escape_non_ascii(JSON)
                .replace('\n', "\r\n")
                .as_bytes(),
        );
        let f = examine(&digest, Some(&profile), &now);
        assert_eq!(f.diagnosis.proof, Proof::Proven);
        assert_eq!(f.rebuilt.as_deref(), Some(JSON.as_bytes()));
        let f = examine(&digest, Some(&profile), JSON.replace('1', "2").as_bytes());
        assert!(f.rebuilt.is_none());
    }

    #[test]
    fn removed_bom_is_proven() {
        let original = format!("\u{FEFF}{DOC}");
        let d = diag(&original, DOC.as_bytes());
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Proven, vec![RejectCode::DriftBom])
        );
        assert!(d.causes[0].detail.contains("removed"));
    }

    #[test]
    fn crlf_is_proven_both_ways() {
        let crlf = DOC.replace('\n', "\r\n");
        let d = diag(DOC, crlf.as_bytes());
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Proven, vec![RejectCode::DriftCrlf])
        );
        let d = diag(&crlf, DOC.as_bytes());
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Proven, vec![RejectCode::DriftCrlf])
        );
    }

    #[test]
    fn bom_plus_crlf_is_proven_as_both() {
        let now = add_bom(DOC.replace('\n', "\r\n").as_bytes());
        let d = diag(DOC, &now);
        assert_eq!(d.proof, Proof::Proven);
        assert_eq!(d.codes(), vec![RejectCode::DriftCrlf, RejectCode::DriftBom]);
    }

    #[test]
    fn ensure_ascii_is_proven() {
        let d = diag(JSON, profile::escape_non_ascii(JSON).as_bytes());
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Proven, vec![RejectCode::DriftJsonAsciiEscape])
        );
    }

    #[test]
    fn nfd_is_proven() {
        let nfd: String = DOC.nfd().collect();
        let d = diag(DOC, nfd.as_bytes());
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Proven, vec![RejectCode::DriftUnicode])
        );
    }

    #[test]
    fn em_dash_fold_is_consistent() {
        let d = diag(DOC, DOC.replace('—', "-").as_bytes());
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Consistent, vec![RejectCode::DriftUnicode])
        );
        assert!(d.causes[0].detail.contains("1 now") || d.causes[0].detail.contains("folded"));
    }

    #[test]
    fn fold_plus_crlf_is_consistent_with_both() {
        let now = profile::fold_typographic(DOC).replace('\n', "\r\n");
        let d = diag(DOC, now.as_bytes());
        assert_eq!(d.proof, Proof::Consistent);
        assert_eq!(
            d.codes(),
            vec![RejectCode::DriftCrlf, RejectCode::DriftUnicode]
        );
    }

    #[test]
    fn content_edit_is_never_cosmetic() {
        let d = diag(JSON, JSON.replace("\"n\": 1", "\"n\": 2").as_bytes());
        assert_eq!(d.proof, Proof::ContentChanged);
        assert!(d.causes.is_empty());
        let d = diag(DOC, DOC.lines().next().unwrap().as_bytes());
        assert_eq!(d.proof, Proof::ContentChanged);
        assert!(d.summary.contains("lines 2 -> 1"), "{}", d.summary);
        // A content edit hidden under a BOM is still a content change.
        let d = diag(DOC, &add_bom(DOC.replace("R2", "R3").as_bytes()));
        assert_eq!(d.proof, Proof::ContentChanged);
    }

    #[test]
    fn without_seal_profile_simple_undos_still_prove() {
        let digest = Digest::of(DOC.as_bytes());
        let now = add_bom(DOC.replace('\n', "\r\n").as_bytes());
        let d = diagnose(&digest, None, &now);
        assert_eq!(d.proof, Proof::Proven);
        let d = diagnose(&digest, None, b"other");
        assert_eq!(d.proof, Proof::NotTried);
    }

    #[test]
    fn binary_changes_are_content_changes() {
        let d = diagnose(
            &Digest::of(b"\xff\x00"),
            Some(&Profile::Binary),
            b"\xff\x01",
        );
        assert_eq!(d.proof, Proof::ContentChanged);
        let d = diag(DOC, b"\xff\xfe");
        assert_eq!(d.proof, Proof::ContentChanged);
    }
}
