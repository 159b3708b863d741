//! Checking every sealed file against what a walk (or an archive) found: digests and lengths,
//! drift diagnosis, renamed files, missing and unsealed ones, and the rollback evidence among
//! them.

use super::run::{Hashed, Run, Seal, Target, is_seal_file, mismatch, unsealed};
use super::{FileResult, FileState};
use crate::digest::{self};
use crate::drift::{self, DIAGNOSE_LIMIT, pair_renamed};
use crate::manifest::{self, Manifest};
use crate::reject::{Reject, RejectCode};
use crate::report::FileLine;
use crate::seal::{Records, SEAL_RECORD_NAME};
use crate::walk;
use std::collections::BTreeSet;

impl Run<'_> {
    /// Checks every sealed file against what `scan` found. `hash` is phase 1: given the
    /// manifest, the records and where each entry stands (its own path, or a drifted name),
    /// it returns one outcome per entry (`None` where nothing stands in for it).
    pub(crate) fn check_files(
        &mut self,
        seal: &Seal,
        scan: walk::Scan,
        keep_rebuilt: bool,
        hash: impl FnOnce(
            &Manifest,
            Option<&Records>,
            &[Option<Target<'_>>],
        ) -> Vec<Option<std::io::Result<Hashed>>>,
    ) -> Vec<FileResult> {
        self.scan_rejected = scan.rejects.iter().filter_map(|r| r.path.clone()).collect();
        for r in scan.rejects {
            self.file_reject(r);
        }
        // Membership both ways in one merge of the two sorted lists.
        let on_disk: Vec<&str> = scan.files.iter().map(|f| f.rel.as_str()).collect();
        let manifest = &seal.manifest;
        let sealed: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        let entry_on_disk = manifest::listed_in(&sealed, &on_disk);
        let disk_sealed = manifest::listed_in(&on_disk, &sealed);

        // Sealed names missing on disk, paired with unsealed names equal to them up to
        // Unicode normalization or case: one renamed file, not a missing plus an extra one.
        let missing: Vec<&str> = sealed
            .iter()
            .zip(&entry_on_disk)
            .filter(|(_, on)| !**on)
            .map(|(p, _)| *p)
            .collect();
        let extra: Vec<&str> = on_disk
            .iter()
            .zip(&disk_sealed)
            .filter(|(p, listed)| !**listed && !is_seal_file(p))
            .map(|(p, _)| *p)
            .collect();
        let renamed = pair_renamed(&missing, &extra);

        let targets: Vec<Option<Target>> = manifest
            .entries
            .iter()
            .zip(&entry_on_disk)
            .map(|(entry, on)| {
                if *on {
                    Some((entry.path.as_str(), None))
                } else {
                    renamed
                        .get(entry.path.as_str())
                        .map(|(other, how)| (*other, Some((*other, *how))))
                }
            })
            .collect();
        // Each entry's record, found in one merge too (both lists are sorted).
        let record_of = seal.records.as_ref().map(|r| r.aligned(&sealed));

        // Phase 1: hash every file found (the caller knows where bytes come from).
        let records = seal.records.as_ref();
        let outcomes = hash(manifest, records, &targets);

        // Phase 2, in manifest order: rejects, counts and results.
        let mut results = Vec::with_capacity(if keep_rebuilt {
            manifest.entries.len()
        } else {
            0
        });
        for (i, ((entry, target), outcome)) in manifest
            .entries
            .iter()
            .zip(&targets)
            .zip(outcomes)
            .enumerate()
        {
            // Per-file results are kept only for restore.
            let mut push = |result: &dyn Fn() -> FileResult| {
                if keep_rebuilt {
                    results.push(result());
                }
            };
            let (Some((abs, renamed_from)), Some(outcome)) = (target, outcome) else {
                // Only an original's record is kept to stand in (see `load_seal`).
                let state = self.missing(entry, seal.record_bytes.as_deref());
                push(&|| FileResult {
                    path: entry.path.clone(),
                    found: None,
                    state: state.clone(),
                });
                continue;
            };
            let found = || self.dir.join(abs);
            let sealed_len = record_of.as_ref().and_then(|r| r[i]).map(|r| r.bytes);
            let state = self.settle(entry, sealed_len, *renamed_from, outcome);
            push(&|| FileResult {
                path: entry.path.clone(),
                found: Some(found()),
                state: state.clone(),
            });
        }

        let renamed_targets: BTreeSet<&str> = renamed.values().map(|(other, _)| *other).collect();
        for (f, listed) in scan.files.iter().zip(&disk_sealed) {
            if !is_seal_file(&f.rel) && !listed && !renamed_targets.contains(f.rel.as_str()) {
                self.file_reject(unsealed(self.place, f.rel.clone()));
            }
        }
        results
    }

    /// Settles one sealed file from what was read for it (under its own name, or under the
    /// drifted name `renamed_from` gives): counts, rejects and drift diagnosis, and the
    /// rollback evidence it holds. `sealed_len` is its length in the seal record, if any.
    /// A file that could not be read is `FILE_UNREADABLE` (or `FILE_CHANGED_WHILE_READ`)
    /// and counts as missing.
    pub(crate) fn settle(
        &mut self,
        entry: &manifest::Entry,
        sealed_len: Option<u64>,
        renamed_from: Option<(&str, drift::NameDrift)>,
        outcome: std::io::Result<Hashed>,
    ) -> FileState {
        let mut hashed = match outcome {
            Ok(h) => h,
            Err(e) => {
                let reject = match digest::ChangedWhileRead::of(&e) {
                    Some(changed) => {
                        Reject::new(RejectCode::FileChangedWhileRead, changed.to_string())
                    }
                    None => Reject::new(RejectCode::FileUnreadable, format!("cannot read: {e}")),
                };
                self.file_reject(reject.at_path(entry.path.clone()));
                return FileState::Missing;
            }
        };
        self.counts.bytes += hashed.len;
        let state = if hashed.digest == entry.digest {
            self.counts.intact_files += 1;
            if let Some(rec_len) = sealed_len.filter(|&n| n != hashed.len) {
                self.seal_reject(
                    Reject::new(
                        RejectCode::SealInconsistent,
                        format!(
                            "seal record says {rec_len} bytes, the file has {} with the sealed digest",
                            hashed.len
                        ),
                    )
                    .at_path(entry.path.clone()),
                );
            }
            match renamed_from {
                Some((other, how)) => {
                    let d = drift::Diagnosis::path_only(&entry.path, other, how);
                    self.push_renamed(entry, other, how, d);
                    FileState::Renamed
                }
                None => {
                    self.line(|| FileLine::new(&entry.path, "byte-exact"));
                    FileState::Intact
                }
            }
        } else {
            let (mut reject, rebuilt) = mismatch(entry, sealed_len, &mut hashed);
            match renamed_from {
                Some((other, how)) => {
                    let mut d = reject.diagnosis.take().expect("mismatch always diagnoses");
                    d.causes
                        .insert(0, drift::Cause::path(&entry.path, other, how));
                    self.push_renamed(entry, other, how, d);
                }
                None => {
                    self.line(|| FileLine::drifted(&entry.path, None, reject.diagnosis.as_ref()));
                    self.file_reject(reject);
                }
            }
            FileState::Drifted { rebuilt }
        };
        if let Some(checked) = hashed.evidence {
            self.counts.rollback_documents += 1;
            self.counts.rollback_entries += checked.entries;
            for r in checked.rejects {
                self.file_reject(r);
            }
        } else if hashed.suspect {
            self.counts.rollback_documents += 1;
            self.file_reject(
                Reject::new(
                    RejectCode::RollbackEvidenceMalformed,
                    format!(
                        "looks like rollback evidence but is {} bytes, above the {DIAGNOSE_LIMIT}-byte limit for validating it",
                        hashed.len
                    ),
                )
                .at_path(entry.path.clone()),
            );
        }
        state
    }

    /// A sealed file that is not on disk under any name. `stand_in` is the seal record's
    /// authenticated bytes from an original, which stand in for a copy's missing `SEAL.json`.
    pub(crate) fn missing(
        &mut self,
        entry: &manifest::Entry,
        stand_in: Option<&[u8]>,
    ) -> FileState {
        if entry.path == SEAL_RECORD_NAME
            && let Some(bytes) = stand_in
        {
            self.notes.push(format!(
                "{SEAL_RECORD_NAME} is not in the copy; the original's was used"
            ));
            self.counts.intact_files += 1;
            return FileState::FromSeal(bytes.to_vec());
        }
        let already = self.scan_rejected.contains(&entry.path);
        if !already {
            self.file_reject(
                Reject::new(
                    RejectCode::FileMissing,
                    format!("sealed with digest {}, not {}", entry.digest, self.place),
                )
                .at_path(entry.path.clone()),
            );
        }
        self.line(|| FileLine::new(&entry.path, "missing"));
        FileState::Missing
    }
}
