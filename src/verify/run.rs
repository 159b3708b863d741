//! One verification run: the state it accumulates (rejects, counts, notes, the tree hashes it
//! saw), how rejects are capped per code, and how it finishes into a [`Report`]. Loading the
//! seal is in `load`, checking the files in `files`; a directory check and an archive check
//! share all of it and differ only in where bytes come from.

use super::{Against, Checked, FileResult, REJECTS_LISTED_PER_CODE, SealFiles, VerifyOptions};
use crate::digest::Digest;
use crate::drift::{self, NameDrift};
use crate::manifest::{self, MANIFEST_NAME, Manifest, TREE_NAME};
use crate::pin::Pin;
use crate::reject::{Reject, RejectCode};
use crate::report::{Counts, FileLine, Report, TreeHashes};
use crate::rollback;
use crate::seal::Records;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// The seal as loaded: the manifest, the records, and the authenticated bytes if any.
pub(crate) struct Seal {
    pub(crate) manifest: Manifest,
    pub(crate) records: Option<Records>,
    /// The record's authenticated bytes (for a copy that lacks `SEAL.json`).
    pub(crate) record_bytes: Option<Vec<u8>>,
    pub(crate) authentic: Option<SealFiles>,
}

pub(crate) struct Run<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) opts: &'a VerifyOptions,
    pub(crate) seal_rejects: Vec<Reject>,
    pub(crate) file_rejects: Vec<Reject>,
    /// Rejects listed so far, and left out past [`REJECTS_LISTED_PER_CODE`], per code.
    pub(crate) listed: HashMap<RejectCode, (usize, usize)>,
    pub(crate) counts: Counts,
    pub(crate) notes: Vec<String>,
    pub(crate) tree: TreeHashes,
    pub(crate) lines: Vec<FileLine>,
    /// Paths the scan already rejected (symlinks, special files): not also "missing".
    pub(crate) scan_rejected: BTreeSet<String>,
    /// Keep the authentic seal files' bytes (restore writes them).
    pub(crate) keep_seal: bool,
    /// Where files are looked for, for messages: `on disk` or `in the archive`.
    pub(crate) place: &'static str,
    /// The packet's own seal record, read ahead (see [`super::RecordPrefetch`]).
    pub(crate) record_prefetch: Option<std::sync::mpsc::Receiver<super::RecordPrefetch>>,
}

impl<'a> Run<'a> {
    pub(crate) fn new(dir: &'a Path, opts: &'a VerifyOptions) -> Run<'a> {
        let pins = opts.pins();
        let tree = TreeHashes {
            expected: (!pins.is_empty()).then(|| {
                pins.iter()
                    .map(|p| p.given())
                    .collect::<Vec<_>>()
                    .join(" and ")
            }),
            pin_hex_digits_checked: pins.iter().map(|p| p.hex_digits()).max().unwrap_or(0),
            ..TreeHashes::default()
        };
        Run {
            dir,
            opts,
            seal_rejects: Vec::new(),
            file_rejects: Vec::new(),
            listed: HashMap::new(),
            counts: Counts::default(),
            notes: Vec::new(),
            tree,
            lines: Vec::new(),
            scan_rejected: BTreeSet::new(),
            keep_seal: false,
            place: "on disk",
            record_prefetch: None,
        }
    }

    /// Whether another reject of `code` is listed (true) or only counted.
    pub(crate) fn list(&mut self, code: RejectCode) -> bool {
        let (listed, left_out) = self.listed.entry(code).or_default();
        if *listed < REJECTS_LISTED_PER_CODE {
            *listed += 1;
            true
        } else {
            *left_out += 1;
            false
        }
    }

    pub(crate) fn seal_reject(&mut self, r: Reject) {
        if self.list(r.code) {
            self.seal_rejects.push(r);
        }
    }

    pub(crate) fn file_reject(&mut self, r: Reject) {
        if self.list(r.code) {
            self.file_rejects.push(r);
        }
    }

    pub(crate) fn pins(&self) -> Vec<&'a Pin> {
        self.opts.pins()
    }

    pub(crate) fn finish(mut self, files: Vec<FileResult>, seal: Option<SealFiles>) -> Checked {
        let pinned = !self.pins().is_empty();
        self.file_rejects.sort_by(|a, b| a.path.cmp(&b.path));
        let mut all = self.seal_rejects;
        all.extend(self.file_rejects);
        let mut report = Report::new(self.dir.display().to_string(), all, self.counts);
        report.tree_hash = Some(self.tree);
        report.notes = self.notes;
        let mut left_out: Vec<(RejectCode, usize)> = self
            .listed
            .iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(code, (_, n))| (*code, *n))
            .collect();
        left_out.sort();
        for (code, n) in left_out {
            report.counts.rejects += n;
            report.notes.push(format!(
                "{n} more {code} rejects not listed (the first {REJECTS_LISTED_PER_CODE} are)"
            ));
        }
        if pinned {
            report.scope = "pinned".into();
        }
        if self.opts.against != Against::Itself {
            report.files = self.lines;
        }
        Checked {
            report,
            files,
            seal,
        }
    }

    /// The checked path is not a packet at all.
    pub(crate) fn no_packet(&mut self, why: &str) {
        self.seal_reject(
            Reject::new(RejectCode::ManifestMissing, why.into())
                .at_path(self.dir.display().to_string()),
        );
        if !self.pins().is_empty() {
            self.seal_reject(pin_unprovable());
        }
    }

    /// Records a per-file line; only a check against an original lists them.
    pub(crate) fn line(&mut self, make: impl FnOnce() -> FileLine) {
        if self.opts.against != Against::Itself {
            self.lines.push(make());
        }
    }

    pub(crate) fn push_renamed(
        &mut self,
        entry: &manifest::Entry,
        other: &str,
        how: NameDrift,
        d: drift::Diagnosis,
    ) {
        self.line(|| FileLine::drifted(&entry.path, Some(other), Some(&d)));
        self.file_reject(Reject {
            diagnosis: Some(d),
            ..Reject::new(
                RejectCode::FileRenamed,
                format!(
                    "sealed under this name, found as {other:?} (same name up to {})",
                    how.label()
                ),
            )
            .at_path(entry.path.clone())
        });
    }
}

/// The seal files at the root of a packet, never payload.
pub(crate) fn is_seal_file(rel: &str) -> bool {
    rel == MANIFEST_NAME || rel == TREE_NAME
}

/// `FILE_UNSEALED` for `path`, found `place` (`on disk`, `in the archive`).
pub(crate) fn unsealed(place: &str, path: String) -> Reject {
    Reject::new(
        RejectCode::FileUnsealed,
        format!("{place} but not in the manifest: added after sealing"),
    )
    .at_path(path)
}

/// `SEAL_INCONSISTENT` for a manifest entry that `SEAL.json` has no record of.
pub(crate) fn not_recorded(path: String) -> Reject {
    Reject::new(
        RejectCode::SealInconsistent,
        format!(
            "in the manifest but not in {}",
            crate::seal::SEAL_RECORD_NAME
        ),
    )
    .at_path(path)
}

/// `SEAL_INCONSISTENT` for a record in `SEAL.json` that the manifest does not list.
pub(crate) fn not_listed(path: String) -> Reject {
    Reject::new(
        RejectCode::SealInconsistent,
        format!(
            "in {} but not in the manifest",
            crate::seal::SEAL_RECORD_NAME
        ),
    )
    .at_path(path)
}

pub(crate) fn pin_unprovable() -> Reject {
    Reject::new(
        RejectCode::PinMismatch,
        "no manifest, so no tree hash to hold against the pin".into(),
    )
    .at_path(TREE_NAME.into())
}

/// Where a sealed file is on disk, and the sealed name it drifted from when it was renamed.
pub(crate) type Target<'a> = (&'a str, Option<(&'a str, NameDrift)>);

/// One file as hashed by a worker: digest and length, the drift finding if it mismatched
/// (and was small enough to diagnose), and its rollback-evidence check if it claims to be
/// evidence.
pub(crate) struct Hashed {
    pub(crate) digest: Digest,
    pub(crate) len: u64,
    // Boxed: rare, and every file's result is held until the manifest-order pass.
    pub(crate) finding: Option<Box<drift::Finding>>,
    pub(crate) evidence: Option<Box<rollback::Checked>>,
    /// Too large to validate, but looks like rollback evidence.
    pub(crate) suspect: bool,
}

/// The reject for a sealed file whose digest no longer matches, with its drift diagnosis, and
/// the rebuilt original bytes when the drift is proven (and they were kept).
pub(crate) fn mismatch(
    entry: &manifest::Entry,
    sealed_len: Option<u64>,
    hashed: &mut Hashed,
) -> (Reject, Option<Vec<u8>>) {
    let (code, message) = match sealed_len {
        Some(rec) if rec != hashed.len => (
            RejectCode::ByteLengthMismatch,
            format!(
                "sealed {} bytes, now {} ({:+}); digest {} sealed, {} now",
                rec,
                hashed.len,
                hashed.len as i128 - rec as i128,
                entry.digest.abbreviated(8),
                hashed.digest.abbreviated(8)
            ),
        ),
        _ => (
            RejectCode::Sha256Mismatch,
            format!(
                "digest {} sealed, {} now ({} bytes)",
                entry.digest.abbreviated(8),
                hashed.digest.abbreviated(8),
                hashed.len
            ),
        ),
    };
    let (diagnosis, rebuilt) = match hashed.finding.take().map(|f| *f) {
        Some(f) => (f.diagnosis, f.rebuilt),
        None => (drift::too_large(hashed.len), None),
    };
    let reject = Reject {
        diagnosis: Some(diagnosis),
        ..Reject::new(code, message).at_path(entry.path.clone())
    };
    (reject, rebuilt)
}
