//! File-name drift: a sealed name that came back in another Unicode normalization form or
//! letter case (macOS, Windows, a knowledge base), paired with the name it drifted from so it
//! is one renamed file, not a missing plus an extra one.

use crate::reject::{Cause, Diagnosis, Proof, RejectCode};
use std::collections::{BTreeMap, BTreeSet};
use unicode_normalization::UnicodeNormalization;

/// How two file names are the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameDrift {
    /// Equal after Unicode NFC normalization (a macOS or KB round trip turned NFC into NFD).
    Normalization,
    /// Equal after normalization and lowercasing (a case-insensitive file system or tool).
    Case,
}

impl NameDrift {
    /// Words for reports.
    pub fn label(self) -> &'static str {
        match self {
            NameDrift::Normalization => "Unicode normalization (NFC/NFD)",
            NameDrift::Case => "letter case",
        }
    }
}

/// A name as a case-insensitive, normalization-insensitive file system sees it: NFC, then
/// lowercase. Two names with one fold are one file on macOS (APFS) or Windows (NTFS).
pub fn fold_name(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
}

/// Pairs each missing sealed path with the one unsealed path equal to it up to normalization
/// (preferred) or case. Ambiguous pairings are left unpaired.
pub fn pair_renamed<'p>(
    missing: &[&'p str],
    extra: &[&'p str],
) -> BTreeMap<&'p str, (&'p str, NameDrift)> {
    let nfc = |s: &str| s.nfc().collect::<String>();
    let mut out = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for how in [NameDrift::Normalization, NameDrift::Case] {
        let key = |s: &str| match how {
            NameDrift::Normalization => nfc(s),
            NameDrift::Case => fold_name(s),
        };
        for m in missing {
            if out.contains_key(m) {
                continue;
            }
            let k = key(m);
            let hits: Vec<&str> = extra
                .iter()
                .copied()
                .filter(|e| !taken.contains(e) && key(e) == k)
                .collect();
            if let [one] = hits[..] {
                out.insert(*m, (one, how));
                taken.insert(one);
            }
        }
    }
    out
}

impl Cause {
    /// The cause for a file found under a drifted name.
    pub fn path(sealed: &str, found: &str, how: NameDrift) -> Cause {
        Cause {
            code: RejectCode::DriftPathNormalization,
            detail: format!("file name {sealed:?} became {found:?} ({})", how.label()),
        }
    }
}

impl Diagnosis {
    /// The diagnosis of a file whose bytes are intact but whose name drifted: proven, since
    /// the bytes under the new name hash to the sealed digest.
    pub fn path_only(sealed: &str, found: &str, how: NameDrift) -> Diagnosis {
        Diagnosis::new(
            Proof::Proven,
            vec![Cause::path(sealed, found, how)],
            "only the name drifted: the bytes found under the new name hash to the sealed digest"
                .into(),
        )
    }
}
