//! Verification: re-checks a packet's seal against its bytes and reports every problem, not
//! just the first: manifest and tree hash, pin, seal record, each sealed file (digest, length,
//! drift diagnosis), file-name drift, unsealed and unsafe entries, and every rollback-evidence
//! document. The seal may come from the packet itself or, for a copy that went through a
//! knowledge base, mail or an editor, from the original (`--against`).

pub mod report;

mod files;
mod load;
mod run;
mod stream;

pub use load::seal_file_limit;
pub(crate) use load::{Unread, read_regular};
pub(crate) use run::{Hashed, Run, Seal, Target, is_seal_file};

use crate::digest::{self, Digest};
use crate::drift::{self, DIAGNOSE_LIMIT};
use crate::manifest::{self, Manifest};
use crate::parallel::Runner;
use crate::pin::Pin;
use crate::reject::{Reject, RejectCode};
use crate::report::{Counts, Report};
use crate::rollback;
use crate::seal::Records;
use crate::walk;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the seal a directory is checked against comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Against {
    /// The directory's own seal files (plain `verify`).
    #[default]
    Itself,
    /// Another sealed packet directory: its manifest, tree file and seal record.
    Packet(PathBuf),
    /// A `HASH_MANIFEST.txt` kept apart from the copy.
    Manifest(PathBuf),
    /// A published tree hash: the copy's own manifest must hash to it, or be proven to have
    /// before it drifted.
    Tree(Pin),
}

impl Against {
    /// Whether the seal is the checked packet's own seal files (plain `verify`, or against a
    /// published tree hash), not an original's.
    pub(crate) fn own_seal(&self) -> bool {
        matches!(self, Against::Itself | Against::Tree(_))
    }
}

/// Options for [`verify`] and [`check`].
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The tree hash the packet must have, published elsewhere.
    pub expect_tree: Option<Pin>,
    /// Where the seal comes from.
    pub against: Against,
    /// Worker threads and progress.
    pub jobs: crate::parallel::Jobs,
}

impl VerifyOptions {
    /// Every pin the tree hash must match: `--expect-tree`, and `--against` a tree hash.
    pub(crate) fn pins(&self) -> Vec<&Pin> {
        let against = match &self.against {
            Against::Tree(p) => Some(p),
            _ => None,
        };
        self.expect_tree.iter().chain(against).collect()
    }
}

/// Rejects of one code listed in a report; past this many they are counted (in
/// `counts.rejects` and a note), not listed, so that memory and output stay bounded
/// whatever the input (a million junk manifest lines, a million missing files).
pub const REJECTS_LISTED_PER_CODE: usize = 1000;

/// Largest rollback-evidence file `check-rollback` reads, in bytes.
pub const EVIDENCE_LIMIT: u64 = 64 * 1024 * 1024;

/// What became of one sealed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Its bytes match the seal.
    Intact,
    /// Its bytes differ; `rebuilt` holds the sealed bytes when the drift is proven (and they
    /// were asked for).
    Drifted {
        /// The original bytes, rebuilt and checked against the sealed digest.
        rebuilt: Option<Vec<u8>>,
    },
    /// Its bytes match the seal, but it was found under a drifted name (`found`).
    Renamed,
    /// Not in the checked directory (and no renamed file stands in for it).
    Missing,
    /// Not in the checked directory, but the seal itself supplies its authenticated bytes
    /// (the seal record, when checking a copy against its original).
    FromSeal(Vec<u8>),
}

/// One sealed file's result.
#[derive(Clone, Debug)]
pub struct FileResult {
    /// The sealed path.
    pub path: String,
    /// The file on disk that was checked for it (under another name if it was renamed).
    pub found: Option<PathBuf>,
    /// What became of it.
    pub state: FileState,
}

/// The seal files as they were sealed, when the manifest could be authenticated by its tree
/// hash (and the pin, if any): what `restore` writes.
#[derive(Clone, Debug)]
pub struct SealFiles {
    /// The exact bytes of `HASH_MANIFEST.txt`.
    pub manifest: Vec<u8>,
    /// The tree hash they hash to.
    pub tree: Digest,
}

/// A verification: the report, and per sealed file what was found.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The report.
    pub report: Report,
    /// One result per manifest entry, in manifest order.
    pub files: Vec<FileResult>,
    /// The authenticated seal, if any.
    pub seal: Option<SealFiles>,
}

/// The packet's own `SEAL.json` read and parsed on another thread while the manifest is:
/// the read's outcome and, when it was read, its digest and parse.
pub(crate) struct RecordPrefetch {
    pub(crate) bytes: Result<Vec<u8>, Unread>,
    pub(crate) parsed: Option<(Digest, Result<Records, String>)>,
}

impl RecordPrefetch {
    /// Reads and parses `SEAL.json` through `local`.
    pub(crate) fn read(local: load::LocalRead<'_>) -> RecordPrefetch {
        let bytes = local(crate::seal::SEAL_RECORD_NAME);
        let parsed = bytes
            .as_ref()
            .ok()
            .map(|b| (Digest::of(b), Records::parse(b)));
        RecordPrefetch { bytes, parsed }
    }
}

/// Verifies the packet directory `dir`. Never fails: every problem is a reject in the report.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Report {
    check(dir, opts, false).report
}

/// Verifies `dir` against the seal `opts` names and returns the report with per-file
/// results. With `keep_rebuilt`, proven drift keeps the rebuilt original bytes (for restore).
pub fn check(dir: &Path, opts: &VerifyOptions, keep_rebuilt: bool) -> Checked {
    check_as(dir, opts, keep_rebuilt, true)
}

/// [`check`], streamed where it can be only when `may_stream` (the whole check is what the
/// stream's answers are tested against).
pub(crate) fn check_as(
    dir: &Path,
    opts: &VerifyOptions,
    keep_rebuilt: bool,
    may_stream: bool,
) -> Checked {
    let mut run = Run::new(dir, opts);
    run.keep_seal = keep_rebuilt;
    if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        run.no_packet("no packet directory here");
        return run.finish(Vec::new(), None);
    }
    if may_stream
        && !keep_rebuilt
        && opts.against.own_seal()
        && let Some(checked) = stream::check(dir, opts)
    {
        return checked;
    }
    check_whole(dir, opts, keep_rebuilt, run)
}

/// [`check`] holding the whole seal and walk in memory: for what the stream does not read
/// (a seal that drifted or is not in packet's own form, a check against an original, and
/// restore, which needs every file's result).
fn check_whole(dir: &Path, opts: &VerifyOptions, keep_rebuilt: bool, mut run: Run<'_>) -> Checked {
    let local = |name: &str| read_regular(&dir.join(name));
    // The walk does not depend on the seal: it runs while the seal is read and parsed.
    let (seal, scan) = std::thread::scope(|s| {
        let walking = s.spawn(|| walk::scan(dir, "", false));
        // So is the seal record, the other large seal file.
        if opts.against.own_seal() {
            let (send, receive) = std::sync::mpsc::sync_channel(1);
            s.spawn(move || send.send(RecordPrefetch::read(&local)));
            run.record_prefetch = Some(receive);
        }
        let seal = run.load_seal(&local);
        (seal, walking.join())
    });
    let scan = match scan {
        Ok(scan) => scan,
        Err(_) => {
            // The walker thread died (a bug, not an input): fail closed on the calling thread.
            walk::scan(dir, "", false)
        }
    };
    let Some(seal) = seal else {
        return run.finish(Vec::new(), None);
    };
    let jobs = opts.jobs;
    let files = run.check_files(&seal, scan, keep_rebuilt, |manifest, records, targets| {
        hash_on_disk(dir, jobs, manifest, records, targets, keep_rebuilt)
    });
    let authentic = seal.authentic.clone();
    run.finish(files, authentic)
}

/// Phase 1 of a directory check, in parallel: hashes every file found, and diagnoses (in the
/// worker, while its bytes are at hand) only those that mismatch or look like rollback
/// evidence. One outcome per target, `None` where nothing stands in for the entry.
fn hash_on_disk(
    dir: &Path,
    jobs: crate::parallel::Jobs,
    manifest: &Manifest,
    records: Option<&Records>,
    targets: &[Option<Target<'_>>],
    keep_rebuilt: bool,
) -> Vec<Option<std::io::Result<Hashed>>> {
    let runner = Runner::new(jobs, targets.len(), "verifying");
    let indices: Vec<usize> = (0..targets.len()).collect();
    let outcomes = runner.map_init(&indices, digest::Opener::default, |opener, &i| {
        let (rel, _) = targets[i]?;
        let entry = &manifest.entries[i];
        let record = || records.and_then(|r| r.get(&entry.path));
        let out = hash_one(opener, &dir.join(rel), entry, &record, keep_rebuilt);
        runner.done(out.as_ref().map_or(0, |h| h.len));
        Some(out)
    });
    drop(runner);
    outcomes
}

/// Hashes the file at `abs` that stands in for `entry`, diagnosing it (while its bytes are at
/// hand) only when it mismatches, and checking it as rollback evidence when it claims to be.
/// `record` gives the entry's seal record, looked up only for a mismatch.
pub(crate) fn hash_one<'r>(
    opener: &mut digest::Opener,
    abs: &Path,
    entry: &manifest::Entry,
    record: &dyn Fn() -> Option<&'r crate::seal::LazyFile>,
    keep_rebuilt: bool,
) -> std::io::Result<Hashed> {
    // Too large to parse: whether it is evidence is decided over all of its bytes as they
    // stream past, so padding cannot move the schema out of sight.
    let mut scan = rollback::SchemaScan::new();
    let read = digest::read_observed(
        opener,
        abs,
        DIAGNOSE_LIMIT,
        |bytes, d| {
            let finding = finding_of(entry, record, bytes, d, keep_rebuilt);
            let evidence = evidence(bytes, &entry.path);
            (finding, evidence)
        },
        &mut |chunk| scan.feed(chunk),
    );
    read.map(|r| {
        let suspect = r.seen.is_none() && scan.claims();
        let (finding, evidence) = r.seen.unwrap_or((None, None));
        Hashed {
            digest: r.digest,
            len: r.len,
            finding,
            evidence,
            suspect,
        }
    })
}

/// The drift finding for a file whose digest `now` is not the sealed one (`None` when it is).
pub(crate) fn finding(
    entry: &manifest::Entry,
    records: Option<&Records>,
    bytes: &[u8],
    now: &Digest,
    keep_rebuilt: bool,
) -> Option<Box<drift::Finding>> {
    finding_of(
        entry,
        &|| records.and_then(|r| r.get(&entry.path)),
        bytes,
        now,
        keep_rebuilt,
    )
}

/// [`finding`], given where the file's own seal record is: looked up only for a mismatch.
pub(crate) fn finding_of<'r>(
    entry: &manifest::Entry,
    record: &dyn Fn() -> Option<&'r crate::seal::LazyFile>,
    bytes: &[u8],
    now: &Digest,
    keep_rebuilt: bool,
) -> Option<Box<drift::Finding>> {
    (*now != entry.digest).then(|| {
        let profile = record().and_then(|r| r.profile());
        let mut f = drift::examine(&entry.digest, profile.as_ref(), bytes);
        if !keep_rebuilt {
            f.rebuilt = None;
        }
        Box::new(f)
    })
}

/// The rollback-evidence check of a file that claims the evidence schema.
pub(crate) fn evidence(bytes: &[u8], label: &str) -> Option<Box<rollback::Checked>> {
    rollback::claims_schema(bytes).then(|| Box::new(rollback::check(bytes, label)))
}

/// `packet check-rollback FILE...`: validates rollback-evidence documents on their own.
pub fn check_rollback(files: &[PathBuf]) -> Report {
    let mut rejects = Vec::new();
    let mut counts = Counts::default();
    for f in files {
        let label = f.display().to_string();
        let bytes = match digest::read_regular_bounded(f, EVIDENCE_LIMIT) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => {
                rejects.push(
                    Reject::new(
                        RejectCode::RollbackEvidenceMalformed,
                        format!("above the {EVIDENCE_LIMIT}-byte evidence limit"),
                    )
                    .at_path(label),
                );
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                rejects.push(
                    Reject::new(RejectCode::RollbackEvidenceMalformed, e.to_string())
                        .at_path(label),
                );
                continue;
            }
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
