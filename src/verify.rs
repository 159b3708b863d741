//! Verification: re-checks a packet's seal against its bytes and reports every problem, not
//! just the first: manifest and tree hash, pin, seal record, each sealed file (digest, length,
//! drift diagnosis), unsealed and unsafe entries, and every rollback-evidence document.

use crate::digest::{self, Digest};
use crate::drift::{self, DIAGNOSE_LIMIT};
use crate::manifest::{self, MANIFEST_NAME, Manifest, TREE_NAME};
use crate::pin::Pin;
use crate::reject::RejectCode;
use crate::report::{Counts, Reject, Report, TreeHashes};
use crate::rollback;
use crate::seal::{FileRecord, SEAL_RECORD_NAME, SealRecord};
use crate::walk;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Options for [`verify`].
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The tree hash the packet must have, published elsewhere.
    pub expect_tree: Option<Pin>,
}

/// Largest rollback-evidence file `check-rollback` reads, in bytes.
pub const EVIDENCE_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads a seal file at the packet root that must be a regular file.
/// The error says why and whether the file was there at all.
fn read_root_file(dir: &Path, name: &str) -> Result<Vec<u8>, (String, bool)> {
    let path = dir.join(name);
    match fs::symlink_metadata(&path) {
        Err(_) => Err(("absent".into(), false)),
        Ok(m) if !m.is_file() => Err(("not a regular file".into(), true)),
        Ok(_) => fs::read(&path).map_err(|e| (format!("unreadable: {e}"), true)),
    }
}

/// Verifies the packet directory `dir`. Never fails: every problem is a reject in the report.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Report {
    let subject = dir.display().to_string();
    let mut seal_rejects: Vec<Reject> = Vec::new();
    let mut file_rejects: Vec<Reject> = Vec::new();
    let mut counts = Counts::default();
    let mut notes = Vec::new();
    let mut tree = TreeHashes {
        expected: opts.expect_tree.as_ref().map(|p| p.given().to_string()),
        pin_hex_digits_checked: opts.expect_tree.as_ref().map_or(0, Pin::hex_digits),
        ..TreeHashes::default()
    };
    let finish = |seal_rejects: Vec<Reject>, mut file_rejects: Vec<Reject>, counts, tree, notes| {
        file_rejects.sort_by(|a: &Reject, b: &Reject| a.path.cmp(&b.path));
        let mut all = seal_rejects;
        all.extend(file_rejects);
        let mut report = Report::new(subject.clone(), all, counts);
        report.tree_hash = Some(tree);
        report.notes = notes;
        if opts.expect_tree.is_some() {
            report.scope = "pinned".into();
        }
        report
    };

    if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        seal_rejects.push(
            Reject::new(
                RejectCode::ManifestMissing,
                "no packet directory here".into(),
            )
            .at_path(subject.clone()),
        );
        if opts.expect_tree.is_some() {
            seal_rejects.push(pin_unprovable());
        }
        return finish(seal_rejects, file_rejects, counts, tree, notes);
    }

    // Manifest and tree hash.
    let manifest = match read_root_file(dir, MANIFEST_NAME) {
        Ok(bytes) => {
            let computed = Digest::of(&bytes);
            tree.computed = Some(computed.to_hex());
            let (manifest, rejects) = Manifest::parse(&bytes);
            seal_rejects.extend(rejects);
            Some((manifest, computed, bytes))
        }
        Err((why, _)) => {
            seal_rejects.push(
                Reject::new(
                    RejectCode::ManifestMissing,
                    format!("{MANIFEST_NAME} is {why}"),
                )
                .at_path(MANIFEST_NAME.into()),
            );
            None
        }
    };
    match read_root_file(dir, TREE_NAME)
        .and_then(|b| manifest::parse_tree_file(&b).map_err(|why| (why, true)))
    {
        Ok(recorded) => {
            tree.recorded = Some(recorded.digest.to_hex());
            if let Some(drift) = recorded.drift {
                seal_rejects.push(
                    Reject::new(RejectCode::TreeHashMalformed, drift).at_path(TREE_NAME.into()),
                );
            }
            if let Some((_, computed, bytes)) = &manifest
                && *computed != recorded.digest
            {
                // The manifest may only have drifted in transit (CRLF, BOM): say so, with proof.
                let diagnosis = drift::diagnose(&recorded.digest, None, bytes);
                let reject = Reject::new(
                    RejectCode::TreeHashMismatch,
                    format!(
                        "{MANIFEST_NAME} hashes to {computed}, but {TREE_NAME} records {}",
                        recorded.digest
                    ),
                )
                .at_path(TREE_NAME.into());
                seal_rejects.push(Reject {
                    diagnosis: (diagnosis.proof == drift::Proof::Proven).then_some(diagnosis),
                    ..reject
                });
            }
        }
        Err((why, true)) => seal_rejects
            .push(Reject::new(RejectCode::TreeHashMalformed, why).at_path(TREE_NAME.into())),
        Err((why, false)) => seal_rejects.push(
            Reject::new(RejectCode::TreeHashMissing, format!("{TREE_NAME} is {why}"))
                .at_path(TREE_NAME.into()),
        ),
    }
    if let Some(pin) = &opts.expect_tree {
        match &manifest {
            Some((_, computed, _)) if !pin.matches(computed) => seal_rejects.push(
                Reject::new(
                    RejectCode::PinMismatch,
                    format!(
                        "tree hash {computed} does not match the pin {pin} ({} hex digits checked)",
                        pin.hex_digits()
                    ),
                )
                .at_path(TREE_NAME.into()),
            ),
            Some(_) => {}
            None => seal_rejects.push(pin_unprovable()),
        }
    }

    let scan = walk::scan(dir, "");
    file_rejects.extend(scan.rejects);
    let on_disk: BTreeMap<&str, &PathBuf> = scan
        .files
        .iter()
        .map(|f| (f.rel.as_str(), &f.abs))
        .collect();
    let Some((manifest, _, _)) = manifest else {
        return finish(seal_rejects, file_rejects, counts, tree, notes);
    };
    counts.sealed_files = manifest.entries.len();

    // Seal record: used only when its own bytes are intact.
    let records = load_records(&manifest, &on_disk, &mut seal_rejects, &mut notes);

    for entry in &manifest.entries {
        let Some(abs) = on_disk.get(entry.path.as_str()) else {
            let already = file_rejects
                .iter()
                .any(|r| r.path.as_deref() == Some(entry.path.as_str()));
            if !already {
                file_rejects.push(
                    Reject::new(
                        RejectCode::FileMissing,
                        format!("sealed with digest {}, not on disk", entry.digest),
                    )
                    .at_path(entry.path.clone()),
                );
            }
            continue;
        };
        let read = match digest::read_file(abs, DIAGNOSE_LIMIT) {
            Ok(r) => r,
            Err(e) => {
                file_rejects.push(
                    Reject::new(RejectCode::FileUnreadable, format!("cannot read: {e}"))
                        .at_path(entry.path.clone()),
                );
                continue;
            }
        };
        counts.bytes += read.len;
        let record = records.as_ref().and_then(|r| r.get(entry.path.as_str()));
        if read.digest == entry.digest {
            counts.intact_files += 1;
            if let Some(rec) = record.filter(|r| r.bytes != read.len) {
                seal_rejects.push(
                    Reject::new(
                        RejectCode::SealInconsistent,
                        format!(
                            "seal record says {} bytes, the file has {} with the sealed digest",
                            rec.bytes, read.len
                        ),
                    )
                    .at_path(entry.path.clone()),
                );
            }
        } else {
            file_rejects.push(mismatch(entry, record, &read));
        }
        if let Some(bytes) = &read.bytes
            && rollback::declares_schema(bytes)
        {
            let checked = rollback::check(bytes, &entry.path);
            counts.rollback_documents += 1;
            counts.rollback_entries += checked.entries;
            file_rejects.extend(checked.rejects);
        }
    }

    for f in &scan.files {
        let is_seal_file = f.rel == MANIFEST_NAME || f.rel == TREE_NAME;
        let sealed = manifest
            .entries
            .binary_search_by(|e| e.path.as_bytes().cmp(f.rel.as_bytes()))
            .is_ok();
        if !is_seal_file && !sealed {
            file_rejects.push(
                Reject::new(
                    RejectCode::FileUnsealed,
                    "on disk but not in the manifest: added after sealing".into(),
                )
                .at_path(f.rel.clone()),
            );
        }
    }
    finish(seal_rejects, file_rejects, counts, tree, notes)
}

fn pin_unprovable() -> Reject {
    Reject::new(
        RejectCode::PinMismatch,
        "no manifest, so no tree hash to hold against the pin".into(),
    )
    .at_path(TREE_NAME.into())
}

/// Loads `SEAL.json` when the manifest seals it and its bytes match; reports disagreements
/// with the manifest as `SEAL_INCONSISTENT`.
fn load_records(
    manifest: &Manifest,
    on_disk: &BTreeMap<&str, &PathBuf>,
    seal_rejects: &mut Vec<Reject>,
    notes: &mut Vec<String>,
) -> Option<BTreeMap<String, FileRecord>> {
    let Some(entry) = manifest.entries.iter().find(|e| e.path == SEAL_RECORD_NAME) else {
        notes.push(format!(
            "no {SEAL_RECORD_NAME} in the manifest (sealed by another tool?): byte lengths are not checked and drift diagnosis is limited"
        ));
        return None;
    };
    let mut bytes = fs::read(on_disk.get(SEAL_RECORD_NAME)?).ok()?;
    if Digest::of(&bytes) != entry.digest {
        // The record drifts in transit like any text; if the drift is proven, its original
        // bytes are rebuilt (and their digest checked), so they can be trusted as sealed.
        match drift::examine(&entry.digest, None, &bytes).rebuilt {
            Some(original) => {
                notes.push(format!(
                    "{SEAL_RECORD_NAME} drifted, but its sealed bytes were rebuilt exactly and are used"
                ));
                bytes = original;
            }
            None => {
                notes.push(format!(
                    "{SEAL_RECORD_NAME} does not match its digest, so its lengths and profiles are not used"
                ));
                return None;
            }
        }
    }
    let record = match SealRecord::parse(&bytes) {
        Ok(r) => r,
        Err(why) => {
            seal_rejects.push(
                Reject::new(RejectCode::SealInconsistent, why).at_path(SEAL_RECORD_NAME.into()),
            );
            return None;
        }
    };
    let map: BTreeMap<String, FileRecord> = record
        .files
        .into_iter()
        .map(|f| (f.path.clone(), f))
        .collect();
    for e in &manifest.entries {
        if e.path != SEAL_RECORD_NAME && !map.contains_key(&e.path) {
            seal_rejects.push(
                Reject::new(
                    RejectCode::SealInconsistent,
                    format!("in the manifest but not in {SEAL_RECORD_NAME}"),
                )
                .at_path(e.path.clone()),
            );
        }
    }
    for path in map.keys() {
        if manifest
            .entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .is_err()
        {
            seal_rejects.push(
                Reject::new(
                    RejectCode::SealInconsistent,
                    format!("in {SEAL_RECORD_NAME} but not in the manifest"),
                )
                .at_path(path.clone()),
            );
        }
    }
    Some(map)
}

/// The reject for a sealed file whose digest no longer matches, with its drift diagnosis.
fn mismatch(
    entry: &manifest::Entry,
    record: Option<&FileRecord>,
    read: &digest::FileRead,
) -> Reject {
    let (code, message) = match record {
        Some(rec) if rec.bytes != read.len => (
            RejectCode::ByteLengthMismatch,
            format!(
                "sealed {} bytes, now {} ({:+}); digest {} sealed, {} now",
                rec.bytes,
                read.len,
                read.len as i128 - rec.bytes as i128,
                entry.digest.abbreviated(8),
                read.digest.abbreviated(8)
            ),
        ),
        _ => (
            RejectCode::Sha256Mismatch,
            format!(
                "digest {} sealed, {} now ({} bytes)",
                entry.digest.abbreviated(8),
                read.digest.abbreviated(8),
                read.len
            ),
        ),
    };
    let diagnosis = match &read.bytes {
        Some(bytes) => drift::diagnose(
            &entry.digest,
            record.and_then(|r| r.profile.as_ref()),
            bytes,
        ),
        None => drift::too_large(read.len),
    };
    Reject {
        diagnosis: Some(diagnosis),
        ..Reject::new(code, message).at_path(entry.path.clone())
    }
}

/// `packet check-rollback FILE...`: validates rollback-evidence documents on their own.
pub fn check_rollback(files: &[PathBuf]) -> Report {
    let mut rejects = Vec::new();
    let mut counts = Counts::default();
    for f in files {
        let label = f.display().to_string();
        let bytes = match fs::metadata(f) {
            Ok(m) if m.len() > EVIDENCE_LIMIT => {
                rejects.push(
                    Reject::new(
                        RejectCode::RollbackEvidenceMalformed,
                        format!(
                            "{} bytes is above the {EVIDENCE_LIMIT}-byte evidence limit",
                            m.len()
                        ),
                    )
                    .at_path(label),
                );
                continue;
            }
            Ok(_) => fs::read(f),
            Err(e) => Err(e),
        };
        match bytes {
            Ok(bytes) => {
                let checked = rollback::check(&bytes, &label);
                counts.rollback_documents += 1;
                counts.rollback_entries += checked.entries;
                rejects.extend(checked.rejects);
            }
            Err(e) => rejects.push(
                Reject::new(RejectCode::FileMissing, format!("cannot read: {e}")).at_path(label),
            ),
        }
    }
    let subject = if files.len() == 1 {
        files[0].display().to_string()
    } else {
        format!("{} evidence files", files.len())
    };
    Report::new(subject, rejects, counts)
}
