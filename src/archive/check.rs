//! Verifying a packet archive in one streaming pass, without extracting it: each entry is
//! hashed as it passes, checked exactly as the directory's file would be (same codes, same
//! diagnosis, same tree hash), and, for `unpack`, written out as it streams.

use crate::digest::Digest;
use crate::drift::{self, DIAGNOSE_LIMIT};
use crate::manifest::{MANIFEST_NAME, TREE_NAME};
use crate::report::Report;
use crate::rollback;
use crate::seal::SEAL_RECORD_NAME;
use crate::verify::{
    Against, Hashed, Run, Seal, Unread, VerifyOptions, evidence, finding, is_seal_file,
    seal_file_limit,
};
use crate::walk;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// Bytes of payload an archive check holds while it has not yet met the seal (or for names
/// the manifest does not list), so that a file that turns out to mismatch can still be
/// diagnosed. Archives `packet pack` writes put the seal first and need none of it.
pub const ARCHIVE_RETAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// One archive entry as hashed while it streamed past.
struct Streamed {
    hashed: Hashed,
    /// Its bytes, kept when the seal was not known yet (within [`ARCHIVE_RETAIN_LIMIT`]).
    kept: Option<Vec<u8>>,
    /// Small enough to diagnose, but not kept: a mismatch cannot be diagnosed.
    unkept: bool,
}

/// Verifies `packet` as `packet verify PACKET` does: an archive (a regular file) in one
/// streaming pass ([`check_archive`]), anything else as a packet directory
/// ([`crate::verify::verify`]). Never fails: an archive that cannot be read is a reject.
pub fn verify_path(
    packet: &Path,
    opts: &crate::verify::VerifyOptions,
    limits: &crate::archive::Limits,
) -> Report {
    if !fs::metadata(packet).is_ok_and(|m| m.is_file()) {
        return crate::verify::verify(packet, opts);
    }
    check_archive(packet, opts, limits, None).unwrap_or_else(|e| {
        let at = packet.display().to_string();
        Report::new(
            at.clone(),
            vec![
                crate::reject::Reject::new(
                    crate::reject::RejectCode::ArchiveMalformed,
                    format!("cannot read: {e}"),
                )
                .at_path(at),
            ],
            Default::default(),
        )
    })
}

/// Verifies a packet archive (`.tar`, or gzip-compressed) in one streaming pass, without
/// extracting it, and reports exactly as [`crate::verify::verify`] does for the directory: same reject codes,
/// same drift diagnosis, same tree hash, plus the `ARCHIVE_*` codes of [`crate::archive`] for
/// hostile or malformed entries.
///
/// Memory is bounded whatever the archive size: each entry is hashed as it passes, and only
/// entries up to [`DIAGNOSE_LIMIT`] are held, one at a time, for diagnosis (plus at most
/// [`ARCHIVE_RETAIN_LIMIT`] of entries met before the seal, and the seal files).
///
/// With `unpack_into`, every accepted file is also written below that (fresh, empty)
/// directory as it streams: that is how [`crate::unpack`] extracts. Errors only when writing
/// there fails; every problem with the archive is a reject in the report.
pub fn check_archive(
    archive: &Path,
    opts: &VerifyOptions,
    limits: &crate::archive::Limits,
    unpack_into: Option<&Path>,
) -> std::io::Result<Report> {
    check_archive_with(archive, opts, limits, unpack_into, ARCHIVE_RETAIN_LIMIT)
}

/// [`check_archive`] with the budget for bytes met before the seal as a parameter.
fn check_archive_with(
    archive: &Path,
    opts: &VerifyOptions,
    limits: &crate::archive::Limits,
    unpack_into: Option<&Path>,
    retain_limit: u64,
) -> std::io::Result<Report> {
    use crate::archive::{self, FileEntry};
    let mut run = Run::new(archive, opts);
    run.place = "in the archive";
    let own_seal = matches!(opts.against, Against::Itself | Against::Tree(_));
    // A seal file's bytes, or why they were not kept.
    let mut seal_files: HashMap<&'static str, Result<Vec<u8>, Unread>> = HashMap::new();
    // None: not loaded yet; Some(None): loading failed (the report says why).
    let mut seal: Option<Option<Seal>> = None;
    let mut got: HashMap<String, Streamed> = HashMap::new();
    let mut found: Vec<String> = Vec::new();
    let mut retained = 0u64;
    let lookup = |files: &HashMap<&'static str, Result<Vec<u8>, Unread>>, name: &str| match files
        .get(name)
    {
        Some(Ok(b)) => Ok(b.clone()),
        Some(Err(unread)) => Err(unread.clone()),
        None => Err(Unread::absent("absent from the archive")),
    };

    let streamed = archive::stream(archive, limits, &mut |f: FileEntry<'_>| {
        let seal_name = [MANIFEST_NAME, TREE_NAME, SEAL_RECORD_NAME]
            .into_iter()
            .find(|n| *n == f.path);
        let keep_limit = match seal_name {
            Some(name) => seal_file_limit(name),
            None => DIAGNOSE_LIMIT,
        };
        let mut sink = match unpack_into {
            Some(root) => Some(create_new_file(root, f.path)?),
            None => None,
        };
        let read = read_entry(f.data, f.size, keep_limit, sink.as_mut())?;
        if let Some(file) = sink {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            crate::staging::sync_file(&file, Path::new(f.path))?;
        }
        if let Some(name) = seal_name {
            let kept = match &read.bytes {
                Some(b) => Ok(b.clone()),
                None => Err(Unread::too_large(read.len, keep_limit)),
            };
            seal_files.insert(name, kept);
        }
        found.push(f.path.to_string());
        if is_seal_file(f.path) {
            return Ok(());
        }
        if seal.is_none() && own_seal && seal_ready(&seal_files) {
            seal = Some(run.load_seal(&|n| lookup(&seal_files, n)));
        }
        let (evidence, suspect) = match &read.bytes {
            Some(b) => (evidence(b, f.path), false),
            None => (None, read.claims_schema),
        };
        let entry = seal
            .as_ref()
            .and_then(|s| s.as_ref())
            .and_then(|s| s.manifest.entry(f.path).map(|e| (e, s.records.as_ref())));
        let mut kept = None;
        let mut unkept = false;
        let finding = match (entry, &read.bytes) {
            (Some((entry, records)), Some(b)) => finding(entry, records, b, &read.digest, false),
            (Some(_), None) => None,
            // Not known yet (or a drifted name): keep the bytes for a diagnosis later.
            (None, Some(b)) => {
                if retained + b.len() as u64 <= retain_limit {
                    retained += b.len() as u64;
                    kept = read.bytes;
                } else {
                    unkept = true;
                }
                None
            }
            (None, None) => None,
        };
        got.insert(
            f.path.to_string(),
            Streamed {
                hashed: Hashed {
                    digest: read.digest,
                    len: read.len,
                    finding,
                    evidence,
                    suspect,
                },
                kept,
                unkept,
            },
        );
        Ok(())
    })?;

    let complete = streamed.complete;
    let seal = match seal {
        Some(s) => s,
        None => run.load_seal(&|n| lookup(&seal_files, n)),
    };
    if !complete {
        run.notes.push(format!(
            "reading stopped after entry {}: entries after it were not checked",
            streamed.entries
        ));
    }
    let Some(seal) = seal else {
        for r in streamed.rejects {
            run.file_reject(r);
        }
        return Ok(run.finish(Vec::new(), None).report);
    };
    found.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let scan = walk::Scan {
        files: found.into_iter().map(|rel| walk::Found { rel }).collect(),
        rejects: streamed.rejects,
    };
    run.check_files(&seal, scan, false, |manifest, records, targets| {
        targets
            .iter()
            .zip(&manifest.entries)
            .map(|(target, entry)| {
                let (rel, _) = (*target)?;
                let s = got.remove(rel)?;
                let mut hashed = s.hashed;
                if hashed.digest != entry.digest && hashed.finding.is_none() {
                    hashed.finding = match (&s.kept, s.unkept) {
                        (Some(b), _) => finding(entry, records, b, &hashed.digest, false),
                        (None, true) => Some(Box::new(drift::not_tried(format!(
                            "not diagnosed: the archive holds it before its seal, past the {retain_limit}-byte budget for such files (verify the unpacked directory to diagnose it)"
                        )).into())),
                        (None, false) => None,
                    };
                }
                Some(Ok(hashed))
            })
            .collect()
    });
    Ok(run.finish(Vec::new(), None).report)
}

/// True once an archive has shown the seal files a streaming check needs before payload:
/// the manifest, the tree file and, when the manifest lists it, the seal record.
fn seal_ready(files: &HashMap<&'static str, Result<Vec<u8>, Unread>>) -> bool {
    let manifest = match files.get(MANIFEST_NAME) {
        None => return false,
        // Unusable: loading now reports it.
        Some(Err(_)) => return true,
        Some(Ok(m)) => m,
    };
    let lists_record =
        memchr::memmem::find(manifest, format!("  {SEAL_RECORD_NAME}\n").as_bytes()).is_some();
    files.contains_key(TREE_NAME) && (!lists_record || files.contains_key(SEAL_RECORD_NAME))
}

/// An archive entry as read: digest and length of every byte, the whole content when it was
/// at most the keep limit, and otherwise whether its bytes claim the rollback-evidence schema.
struct EntryRead {
    digest: Digest,
    len: u64,
    bytes: Option<Vec<u8>>,
    claims_schema: bool,
}

/// Reads one archive entry of `size` bytes in a single pass, hashing as it goes and copying
/// to `sink` when given; holds it whole only when `size <= keep_limit`.
fn read_entry(
    data: &mut dyn std::io::Read,
    size: u64,
    keep_limit: u64,
    mut sink: Option<&mut std::io::BufWriter<fs::File>>,
) -> std::io::Result<EntryRead> {
    use sha2::Digest as _;
    use std::io::{Read, Write};
    let mut hasher = sha2::Sha256::new();
    let keep = size <= keep_limit;
    // Grown as bytes arrive: a header may claim more than the archive holds.
    let mut bytes = Vec::with_capacity(if keep { size.min(1 << 20) as usize } else { 0 });
    let mut scan = rollback::SchemaScan::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    let mut data = data.take(size);
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        if let Some(w) = sink.as_mut() {
            w.write_all(chunk)?;
        }
        if keep {
            bytes.extend_from_slice(chunk);
        } else {
            scan.feed(chunk);
        }
        len += n as u64;
    }
    Ok(EntryRead {
        digest: Digest(hasher.finalize().into()),
        len,
        bytes: keep.then_some(bytes),
        claims_schema: !keep && scan.claims(),
    })
}

/// Creates `root/rel` (and its parent directories) for writing; never follows a link and never
/// replaces a file. `rel` has passed [`manifest::check_safe`].
fn create_new_file(root: &Path, rel: &str) -> std::io::Result<std::io::BufWriter<fs::File>> {
    let dest = root.join(rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o644).custom_flags(libc::O_NOFOLLOW);
    }
    Ok(std::io::BufWriter::with_capacity(
        256 * 1024,
        opts.open(dest)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Limits;
    use crate::drift::Proof;
    use crate::reject::RejectCode;
    use crate::seal::{SealOptions, seal_dir};
    use std::path::PathBuf;

    /// A packet whose one text file then went through a CRLF conversion, archived payload
    /// first and seal last (as a foreign tool may order it).
    fn seal_last_archive(tmp: &Path) -> PathBuf {
        let dir = tmp.join("p");
        fs::create_dir_all(&dir).unwrap();
        let text = "line — one\nline two\n".repeat(50);
        fs::write(dir.join("notes.txt"), &text).unwrap();
        seal_dir(&dir, SealOptions::default()).unwrap();
        fs::write(dir.join("notes.txt"), text.replace('\n', "\r\n")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        for name in [
            "notes.txt",
            "SEAL.json",
            "HASH_MANIFEST.txt",
            "packet_tree.sha256",
        ] {
            let bytes = fs::read(dir.join(name)).unwrap();
            let h = crate::archive::ustar_header(name, false, bytes.len() as u64, 0).unwrap();
            b.append(&h, &bytes[..]).unwrap();
        }
        let path = tmp.join("seal-last.tar");
        fs::write(&path, b.into_inner().unwrap()).unwrap();
        path
    }

    fn diagnosis(report: &Report) -> &drift::Diagnosis {
        let r = report
            .rejects
            .iter()
            .find(|r| r.path.as_deref() == Some("notes.txt"))
            .expect("notes.txt rejected");
        assert_eq!(r.code, RejectCode::ByteLengthMismatch);
        r.diagnosis.as_ref().unwrap()
    }

    #[test]
    fn payload_before_the_seal_is_kept_for_diagnosis_within_the_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = seal_last_archive(tmp.path());
        let opts = VerifyOptions::default();
        let kept = check_archive(&archive, &opts, &Limits::default(), None).unwrap();
        let d = diagnosis(&kept);
        assert_eq!(d.proof, Proof::Proven);
        assert_eq!(d.codes(), [RejectCode::DriftCrlf]);

        // Past the budget the verdict is the same; only the diagnosis is not tried.
        let unkept = check_archive_with(&archive, &opts, &Limits::default(), None, 0).unwrap();
        assert!(!unkept.passed());
        let d = diagnosis(&unkept);
        assert_eq!(d.proof, Proof::NotTried);
        assert!(d.summary.contains("before its seal"), "{}", d.summary);
    }
}
