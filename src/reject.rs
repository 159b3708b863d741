//! Reject codes: the stable, documented names of every way a packet, a build input or a piece
//! of rollback evidence can fail. Each code is defined here once; its detection lives in the
//! module named for its concept (manifest, seal, verify, drift, rollback) and its test beside it.
//!
//! Also the data every stage hands on: a [`Reject`] (code, where, why) with the drift
//! [`Diagnosis`] it may carry, and how user-controlled names are printed. This module depends
//! on no other of the crate, so every stage can use it and no import circle runs through it.

use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};

/// Every reject code `packet` emits. The serialized name (SCREAMING_SNAKE_CASE, as printed) is
/// stable: scripts and CI gates match on it. New codes may be added; existing ones never change
/// meaning. `DRIFT_*` codes are never verdicts on their own: they are causes attached to a
/// file-level reject as its diagnosis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectCode {
    // Seal level.
    /// `HASH_MANIFEST.txt` is absent, not a regular file, or the packet directory itself is.
    ManifestMissing,
    /// A manifest line is not `<64 lowercase hex>  <path>`, lines are unsorted or duplicated,
    /// a path is unsafe (absolute, `..`, empty component, control character, backslash), the
    /// final newline is missing, or the manifest lists no file.
    ManifestMalformed,
    /// `packet_tree.sha256` is absent.
    TreeHashMissing,
    /// `packet_tree.sha256` is not exactly `<64 lowercase hex>  HASH_MANIFEST.txt\n`.
    TreeHashMalformed,
    /// The SHA-256 of `HASH_MANIFEST.txt` differs from the digest `packet_tree.sha256` records.
    TreeHashMismatch,
    /// The computed tree hash differs from the pin given with `--expect-tree`.
    PinMismatch,
    /// A pins file (`verify --pins`) that cannot be read, is not UTF-8, has a line that is
    /// not `<tree hash>  <packet path>`, pins one packet twice, or names no packet.
    PinsMalformed,
    /// The seal record (`SEAL.json`) is unreadable, of an unknown schema, or lists a different
    /// set of files than the manifest.
    SealInconsistent,

    // File level.
    /// A sealed file's bytes have the sealed length but not the sealed SHA-256.
    Sha256Mismatch,
    /// A sealed file's length differs from the length in the seal record (so its digest
    /// differs too).
    ByteLengthMismatch,
    /// A file the manifest lists is not on disk.
    FileMissing,
    /// A regular file on disk that the manifest does not list.
    FileUnsealed,
    /// A sealed file is missing, and a file whose name differs from it only by Unicode
    /// normalization (NFC/NFD) or letter case stands in its place; diagnosed with
    /// `DRIFT_PATH_NORMALIZATION` instead of a missing file plus an unsealed one.
    FileRenamed,
    /// A file that exists but could not be read (permissions, I/O error).
    FileUnreadable,
    /// A file whose length or modification time on its open handle differed after it was
    /// read from before (another process wrote, truncated or extended it meanwhile): its
    /// digest is of no one state, so it is neither sealed nor passed.
    FileChangedWhileRead,
    /// A symlink, socket, device or fifo, a non-UTF-8 name, a name with a control character or
    /// backslash, a reserved seal file name, or a path that would escape the packet.
    PathRejected,
    /// `packet build` was asked to overwrite an existing file or to seal an already sealed
    /// directory without `--reseal`, or given nothing to seal.
    BuildRefused,

    // Drift causes (attached to a file-level reject as its diagnosis).
    /// A UTF-8 byte order mark (EF BB BF) was added or removed.
    DriftBom,
    /// Line ends changed between LF, CRLF and lone CR.
    DriftCrlf,
    /// Typographic characters (em-dash, en-dash, curly quotes, ellipsis, non-breaking space,
    /// arrows) were folded to ASCII, or ASCII turned typographic. (Normalization changes have
    /// their own code, `DRIFT_UNICODE_NORMALIZATION`.)
    DriftUnicode,
    /// JSON re-encoded with `ensure_ascii`: non-ASCII characters became `\uXXXX` escapes.
    DriftJsonAsciiEscape,
    /// The final newline was added or removed.
    DriftFinalNewline,
    /// Trailing spaces or tabs were stripped from lines.
    DriftTrailingWhitespace,
    /// Tabs were expanded to spaces.
    DriftTabs,
    /// The text's Unicode normalization form changed (NFC to NFD or back).
    DriftUnicodeNormalization,
    /// UTF-8 was decoded as Windows-1252 or Latin-1 and encoded again, once or more
    /// (`Ã©` for `é`, `â€”` for `—`).
    DriftMojibake,
    /// JSON with an equal value but other whitespace, indentation or key order.
    DriftJsonReformat,
    /// A file name changed only by Unicode normalization or letter case.
    DriftPathNormalization,

    // Archives.
    /// An archive that cannot be read to its end as tar (or gzip): a bad header checksum, a
    /// truncated entry or stream, a bad gzip trailer, an empty file, or anything but zero padding
    /// after the end-of-archive marker. Reading stops there.
    ArchiveMalformed,
    /// An archive entry whose path is absolute, climbs out with `..`, is not UTF-8, or breaks
    /// another packet path rule ([`crate::manifest::check_path`]).
    ArchivePathUnsafe,
    /// An archive entry that is a symlink or a hard link.
    ArchiveLink,
    /// An archive entry that is a device, a fifo, or any other type than a regular file or a
    /// directory (GNU sparse, contiguous, volume label, ...).
    ArchiveSpecialEntry,
    /// A second archive entry with a path already seen: extracting it would shadow the first.
    ArchiveDuplicatePath,
    /// An archive entry whose path equals an earlier one's up to letter case or Unicode
    /// normalization (they would be one file on macOS or Windows), or that is a file where
    /// another entry needs a directory.
    ArchivePathCollision,
    /// A GNU long-name or long-link header, or a PAX extended header that sets `path`,
    /// `linkpath`, `size` or GNU sparse keys: readers that honour it and readers that do not
    /// would see different archives.
    ArchivePathRewrite,
    /// An archive entry larger than the `--max-entry-bytes` limit.
    ArchiveEntryTooLarge,
    /// An archive with more headers than the `--max-entries` limit. Reading stops there.
    ArchiveTooManyEntries,
    /// `packet pack` would not write: the output exists or lies inside the packet, two names
    /// collide by case or normalization (the archive could not be unpacked everywhere), a
    /// path does not fit a ustar header, or a file changed between verifying and packing it.
    PackRefused,
    /// `packet unpack` would not write: the target directory exists already.
    UnpackRefused,

    // Restore.
    /// `packet restore` would not write a file whose original bytes it could not rebuild and
    /// check against the seal.
    RestoreRefused,

    // Rollback evidence.
    /// A rollback-evidence document is not JSON, not an object, or has no `entries` array.
    RollbackEvidenceMalformed,
    /// The evidence has no entries: an empty proof is no proof.
    RollbackNoEntries,
    /// An entry lacks a non-empty string `id` or a 64-hex `before_hash`, `after_apply_hash`
    /// or `after_rollback_hash`.
    RollbackEntryMalformed,
    /// Two entries share an `id`.
    RollbackDuplicateId,
    /// `after_apply_hash` equals `before_hash`: the apply never mutated anything, so the
    /// rollback proves nothing.
    RollbackApplyDidNotMutate,
    /// `after_rollback_hash` differs from `before_hash`: the rollback did not restore the state.
    RollbackNotRestored,

    // State proofs.
    /// The database to snapshot cannot be read: a missing file (a snapshot never creates
    /// one), a file that is not a database, a read that fails.
    SnapshotSourceUnreadable,
    /// `packet snapshot` would not write: the output exists or cannot be written.
    SnapshotRefused,
    /// A snapshot document that is not one: not strict JSON, unknown members, another schema
    /// or encoding, unsorted tables, or a `state_digest` that does not match its tables.
    SnapshotMalformed,
    /// Two snapshots of different engines or encodings: not compared.
    SnapshotIncomparable,
    /// `snapshot-diff`: a table changed in rows, content or schema, or was added or removed.
    StateChanged,
    /// `rehearse` could not run: the source cannot be read or copied, the SQL failed (with the
    /// database's message), the source changed meanwhile, or the evidence cannot be written.
    RehearsalFailed,
    /// A claims file that is not one (not TOML, unknown members, an empty or repeated id, no
    /// claim), or a claim naming a table or column the database does not have.
    ClaimsMalformed,
}

impl RejectCode {
    /// Every code, in the order of the README's table.
    pub const ALL: &'static [RejectCode] = &[
        RejectCode::ManifestMissing,
        RejectCode::ManifestMalformed,
        RejectCode::TreeHashMissing,
        RejectCode::TreeHashMalformed,
        RejectCode::TreeHashMismatch,
        RejectCode::PinMismatch,
        RejectCode::PinsMalformed,
        RejectCode::SealInconsistent,
        RejectCode::Sha256Mismatch,
        RejectCode::ByteLengthMismatch,
        RejectCode::FileMissing,
        RejectCode::FileUnsealed,
        RejectCode::FileRenamed,
        RejectCode::FileUnreadable,
        RejectCode::FileChangedWhileRead,
        RejectCode::PathRejected,
        RejectCode::BuildRefused,
        RejectCode::DriftBom,
        RejectCode::DriftCrlf,
        RejectCode::DriftUnicode,
        RejectCode::DriftJsonAsciiEscape,
        RejectCode::DriftFinalNewline,
        RejectCode::DriftTrailingWhitespace,
        RejectCode::DriftTabs,
        RejectCode::DriftUnicodeNormalization,
        RejectCode::DriftMojibake,
        RejectCode::DriftJsonReformat,
        RejectCode::DriftPathNormalization,
        RejectCode::ArchiveMalformed,
        RejectCode::ArchivePathUnsafe,
        RejectCode::ArchiveLink,
        RejectCode::ArchiveSpecialEntry,
        RejectCode::ArchiveDuplicatePath,
        RejectCode::ArchivePathCollision,
        RejectCode::ArchivePathRewrite,
        RejectCode::ArchiveEntryTooLarge,
        RejectCode::ArchiveTooManyEntries,
        RejectCode::PackRefused,
        RejectCode::UnpackRefused,
        RejectCode::RestoreRefused,
        RejectCode::RollbackEvidenceMalformed,
        RejectCode::RollbackNoEntries,
        RejectCode::RollbackEntryMalformed,
        RejectCode::RollbackDuplicateId,
        RejectCode::RollbackApplyDidNotMutate,
        RejectCode::RollbackNotRestored,
        RejectCode::SnapshotSourceUnreadable,
        RejectCode::SnapshotRefused,
        RejectCode::SnapshotMalformed,
        RejectCode::SnapshotIncomparable,
        RejectCode::StateChanged,
        RejectCode::RehearsalFailed,
        RejectCode::ClaimsMalformed,
    ];

    /// The stable name, e.g. `SHA256_MISMATCH`.
    pub fn name(self) -> &'static str {
        match self {
            RejectCode::ManifestMissing => "MANIFEST_MISSING",
            RejectCode::ManifestMalformed => "MANIFEST_MALFORMED",
            RejectCode::TreeHashMissing => "TREE_HASH_MISSING",
            RejectCode::TreeHashMalformed => "TREE_HASH_MALFORMED",
            RejectCode::TreeHashMismatch => "TREE_HASH_MISMATCH",
            RejectCode::PinMismatch => "PIN_MISMATCH",
            RejectCode::PinsMalformed => "PINS_MALFORMED",
            RejectCode::SealInconsistent => "SEAL_INCONSISTENT",
            RejectCode::Sha256Mismatch => "SHA256_MISMATCH",
            RejectCode::ByteLengthMismatch => "BYTE_LENGTH_MISMATCH",
            RejectCode::FileMissing => "FILE_MISSING",
            RejectCode::FileUnsealed => "FILE_UNSEALED",
            RejectCode::FileRenamed => "FILE_RENAMED",
            RejectCode::FileUnreadable => "FILE_UNREADABLE",
            RejectCode::FileChangedWhileRead => "FILE_CHANGED_WHILE_READ",
            RejectCode::PathRejected => "PATH_REJECTED",
            RejectCode::BuildRefused => "BUILD_REFUSED",
            RejectCode::DriftBom => "DRIFT_BOM",
            RejectCode::DriftCrlf => "DRIFT_CRLF",
            RejectCode::DriftUnicode => "DRIFT_UNICODE",
            RejectCode::DriftJsonAsciiEscape => "DRIFT_JSON_ASCII_ESCAPE",
            RejectCode::DriftFinalNewline => "DRIFT_FINAL_NEWLINE",
            RejectCode::DriftTrailingWhitespace => "DRIFT_TRAILING_WHITESPACE",
            RejectCode::DriftTabs => "DRIFT_TABS",
            RejectCode::DriftUnicodeNormalization => "DRIFT_UNICODE_NORMALIZATION",
            RejectCode::DriftMojibake => "DRIFT_MOJIBAKE",
            RejectCode::DriftJsonReformat => "DRIFT_JSON_REFORMAT",
            RejectCode::DriftPathNormalization => "DRIFT_PATH_NORMALIZATION",
            RejectCode::ArchiveMalformed => "ARCHIVE_MALFORMED",
            RejectCode::ArchivePathUnsafe => "ARCHIVE_PATH_UNSAFE",
            RejectCode::ArchiveLink => "ARCHIVE_LINK",
            RejectCode::ArchiveSpecialEntry => "ARCHIVE_SPECIAL_ENTRY",
            RejectCode::ArchiveDuplicatePath => "ARCHIVE_DUPLICATE_PATH",
            RejectCode::ArchivePathCollision => "ARCHIVE_PATH_COLLISION",
            RejectCode::ArchivePathRewrite => "ARCHIVE_PATH_REWRITE",
            RejectCode::ArchiveEntryTooLarge => "ARCHIVE_ENTRY_TOO_LARGE",
            RejectCode::ArchiveTooManyEntries => "ARCHIVE_TOO_MANY_ENTRIES",
            RejectCode::PackRefused => "PACK_REFUSED",
            RejectCode::UnpackRefused => "UNPACK_REFUSED",
            RejectCode::RestoreRefused => "RESTORE_REFUSED",
            RejectCode::RollbackEvidenceMalformed => "ROLLBACK_EVIDENCE_MALFORMED",
            RejectCode::RollbackNoEntries => "ROLLBACK_NO_ENTRIES",
            RejectCode::RollbackEntryMalformed => "ROLLBACK_ENTRY_MALFORMED",
            RejectCode::RollbackDuplicateId => "ROLLBACK_DUPLICATE_ID",
            RejectCode::RollbackApplyDidNotMutate => "ROLLBACK_APPLY_DID_NOT_MUTATE",
            RejectCode::RollbackNotRestored => "ROLLBACK_NOT_RESTORED",
            RejectCode::SnapshotSourceUnreadable => "SNAPSHOT_SOURCE_UNREADABLE",
            RejectCode::SnapshotRefused => "SNAPSHOT_REFUSED",
            RejectCode::SnapshotMalformed => "SNAPSHOT_MALFORMED",
            RejectCode::SnapshotIncomparable => "SNAPSHOT_INCOMPARABLE",
            RejectCode::StateChanged => "STATE_CHANGED",
            RejectCode::RehearsalFailed => "REHEARSAL_FAILED",
            RejectCode::ClaimsMalformed => "CLAIMS_MALFORMED",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem found: a reject code, where it was found and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// The stable reject code.
    pub code: RejectCode,
    /// The packet-relative path (or `HASH_MANIFEST.txt:<line>`) the reject is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The rollback entry id the reject is about (`#<index>` when the entry has no usable id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// A sentence saying what was expected and what was found.
    pub message: String,
    /// For a file whose bytes drifted: the diagnosed causes and how well they are proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

impl Reject {
    /// A reject with a code and message, not yet tied to a path or entry.
    pub fn new(code: RejectCode, message: String) -> Reject {
        Reject {
            code,
            path: None,
            entry: None,
            message,
            diagnosis: None,
        }
    }

    /// Ties the reject to a packet-relative path.
    pub fn at_path(mut self, path: String) -> Reject {
        self.path = Some(path);
        self
    }

    /// Ties the reject to a rollback entry id.
    pub fn at_entry(mut self, entry: String) -> Reject {
        self.entry = Some(entry);
        self
    }

    /// The code as printed: `CODE`, or `CODE:<entry>` for rollback entries.
    pub fn code_token(&self) -> String {
        match &self.entry {
            Some(e) => format!("{}:{}", self.code, shown(e)),
            None => self.code.to_string(),
        }
    }

    /// The text line `REJECT <CODE> <path or entry>: <message>`, followed by one indented line
    /// per diagnosed drift cause.
    pub fn render(&self) -> String {
        let mut out = format!("REJECT {}", self.code_token());
        if let Some(p) = &self.path {
            let _ = write!(out, " {}", shown(p));
        }
        let _ = write!(out, ": {}", shown(&self.message));
        if let Some(d) = &self.diagnosis {
            out.push('\n');
            out.push_str(&d.render("  "));
        }
        out
    }
}

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
    /// The level as printed: `proven`, `consistent`, `content changed`, `not tried`.
    pub fn label(self) -> &'static str {
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
    /// A diagnosis from its parts.
    pub fn new(proof: Proof, causes: Vec<Cause>, summary: String) -> Diagnosis {
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

/// A user-controlled string (a path, an entry id) as printed: control characters escaped
/// (`\n`, `\u{1b}`), so a name cannot start a line of its own, and the Unicode bidirectional
/// controls too (`\u{202e}`), so a name cannot make a line read in another order than it says
/// (the "Trojan Source" characters of CVE-2021-42574, listed in [`is_bidi_control`]), and the
/// line and paragraph separators U+2028 and U+2029.
pub fn shown(s: &str) -> String {
    // U+2028/2029 break lines where a terminal or viewer honours them.
    let as_unicode = |c: char| is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}');
    let hidden = |c: char| c.is_control() || as_unicode(c);
    if !s.chars().any(hidden) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else if as_unicode(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The characters that reorder displayed text (Unicode Standard Annex #9): the embeddings and
/// overrides U+202A–U+202E, the isolates U+2066–U+2069, and the marks U+200E, U+200F, U+061C.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Why a command that writes (`build`, `seal`) did not finish. Nothing was left half-written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input was refused; every problem found is listed.
    #[error("refused with {} rejects", .0.len())]
    Rejected(Vec<Reject>),
    /// The filesystem failed under us (disk full, permissions on the output).
    // The cause is part of the message and deliberately not a `source`: printed as a chain
    // (`{:#}`) it would appear twice.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        cause: std::io::Error,
    },
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            cause: source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for code in RejectCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.name()));
            assert!(seen.insert(code.name()), "duplicate {}", code.name());
        }
    }
}
