//! Verification: re-checks a packet's seal against its bytes and reports every problem, not
//! just the first: manifest and tree hash, pin, seal record, each sealed file (digest, length,
//! drift diagnosis), file-name drift, unsealed and unsafe entries, and every rollback-evidence
//! document. The seal may come from the packet itself or, for a copy that went through a
//! knowledge base, mail or an editor, from the original (`--against`).

use crate::digest::{self, Digest};
use crate::drift::{self, DIAGNOSE_LIMIT, NameDrift, Proof, pair_renamed};
use crate::manifest::{self, MANIFEST_NAME, Manifest, TREE_NAME};
use crate::parallel::Runner;
use crate::pin::Pin;
use crate::reject::RejectCode;
use crate::report::{Counts, FileLine, Reject, Report, TreeHashes};
use crate::rollback;
use crate::seal::{Records, SEAL_RECORD_NAME};
use crate::walk;
use std::collections::{BTreeSet, HashMap};
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

/// Reads a seal file that must be a regular file. The error says why and whether the file
/// was there at all.
/// Reads no more than the limit for its name ([`seal_file_limit`]): a seal file above it is
/// refused unread, so a 2 GiB sparse manifest costs no memory.
fn read_regular(path: &Path) -> Result<Vec<u8>, (String, bool)> {
    let limit = seal_file_limit(&path.file_name().unwrap_or_default().to_string_lossy());
    match fs::symlink_metadata(path) {
        Err(_) => Err(("absent".into(), false)),
        Ok(m) if !m.is_file() => Err(("not a regular file".into(), true)),
        Ok(m) if m.len() > limit => Err((too_large(m.len(), limit), true)),
        Ok(_) => match digest::read_regular_bounded(path, limit) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err((too_large(limit + 1, limit), true)),
            Err(e) => Err((format!("unreadable: {e}"), true)),
        },
    }
}

/// The largest seal file `packet` reads, by name, in bytes: `HASH_MANIFEST.txt`
/// [`manifest::MANIFEST_LIMIT`], `packet_tree.sha256` [`manifest::TREE_FILE_LIMIT`], and
/// `SEAL.json` (or any other name) [`crate::seal::SEAL_RECORD_LIMIT`].
pub fn seal_file_limit(name: &str) -> u64 {
    match name {
        MANIFEST_NAME => manifest::MANIFEST_LIMIT,
        TREE_NAME => manifest::TREE_FILE_LIMIT,
        _ => crate::seal::SEAL_RECORD_LIMIT,
    }
}

/// The start of every "too large" reason a seal file is refused with.
const TOO_LARGE: &str = "larger than";

fn too_large(len: u64, limit: u64) -> String {
    format!(
        "{TOO_LARGE} the {limit}-byte limit for a seal file ({len} bytes or more): refused unread"
    )
}

/// Reads one of the checked packet's own seal files by name (from its directory, or from an
/// archive's entries). The error says why, and whether the file was there at all.
type LocalRead<'l> = &'l dyn Fn(&str) -> Result<Vec<u8>, (String, bool)>;

/// Verifies the packet directory `dir`. Never fails: every problem is a reject in the report.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Report {
    check(dir, opts, false).report
}

/// Verifies `dir` against the seal `opts` names and returns the report with per-file
/// results. With `keep_rebuilt`, proven drift keeps the rebuilt original bytes (for restore).
pub fn check(dir: &Path, opts: &VerifyOptions, keep_rebuilt: bool) -> Checked {
    let mut run = Run::new(dir, opts);
    run.keep_seal = keep_rebuilt;
    if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        run.no_packet("no packet directory here");
        return run.finish(Vec::new(), None);
    }
    let local = |name: &str| read_regular(&dir.join(name));
    // The walk does not depend on the seal: it runs while the seal is read and parsed.
    let (seal, scan) = std::thread::scope(|s| {
        let walking = s.spawn(|| walk::scan(dir, ""));
        let seal = run.load_seal(&local);
        (seal, walking.join())
    });
    let scan = match scan {
        Ok(scan) => scan,
        Err(_) => {
            // The walker thread died (a bug, not an input): fail closed on the calling thread.
            walk::scan(dir, "")
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
    let outcomes = runner.map(&indices, |&i| {
        let (rel, _) = targets[i]?;
        let abs = &dir.join(rel);
        let entry = &manifest.entries[i];
        // Too large to parse: whether it is evidence is decided over all of its bytes as they
        // stream past, so padding cannot move the schema out of sight.
        let mut scan = rollback::SchemaScan::new();
        let read = digest::read_observed(
            abs,
            DIAGNOSE_LIMIT,
            |bytes, d| {
                let finding = finding(entry, records, bytes, d, keep_rebuilt);
                let evidence = evidence(bytes, &entry.path);
                (finding, evidence)
            },
            &mut |chunk| scan.feed(chunk),
        );
        let out = read.map(|r| {
            let suspect = r.seen.is_none() && scan.claims();
            let (finding, evidence) = r.seen.unwrap_or((None, None));
            Hashed {
                digest: r.digest,
                len: r.len,
                finding,
                evidence,
                suspect,
            }
        });
        runner.done(out.as_ref().map_or(0, |h| h.len));
        Some(out)
    });
    drop(runner);
    outcomes
}

/// The drift finding for a file whose digest `now` is not the sealed one (`None` when it is).
fn finding(
    entry: &manifest::Entry,
    records: Option<&Records>,
    bytes: &[u8],
    now: &Digest,
    keep_rebuilt: bool,
) -> Option<Box<drift::Finding>> {
    (*now != entry.digest).then(|| {
        let profile = records
            .and_then(|r| r.get(&entry.path))
            .and_then(|r| r.profile());
        let mut f = drift::examine(&entry.digest, profile.as_ref(), bytes);
        if !keep_rebuilt {
            f.rebuilt = None;
        }
        Box::new(f)
    })
}

/// The rollback-evidence check of a file that claims the evidence schema.
fn evidence(bytes: &[u8], label: &str) -> Option<Box<rollback::Checked>> {
    rollback::claims_schema(bytes).then(|| Box::new(rollback::check(bytes, label)))
}

/// The seal as loaded: the manifest, the records, and the authenticated bytes if any.
struct Seal {
    manifest: Manifest,
    records: Option<Records>,
    /// The record's authenticated bytes (for a copy that lacks `SEAL.json`).
    record_bytes: Option<Vec<u8>>,
    authentic: Option<SealFiles>,
}

struct Run<'a> {
    dir: &'a Path,
    opts: &'a VerifyOptions,
    seal_rejects: Vec<Reject>,
    file_rejects: Vec<Reject>,
    /// Rejects listed so far, and left out past [`REJECTS_LISTED_PER_CODE`], per code.
    listed: HashMap<RejectCode, (usize, usize)>,
    counts: Counts,
    notes: Vec<String>,
    tree: TreeHashes,
    lines: Vec<FileLine>,
    /// Paths the scan already rejected (symlinks, special files): not also "missing".
    scan_rejected: BTreeSet<String>,
    /// Keep the authentic seal files' bytes (restore writes them).
    keep_seal: bool,
    /// Where files are looked for, for messages: `on disk` or `in the archive`.
    place: &'static str,
}

impl<'a> Run<'a> {
    fn new(dir: &'a Path, opts: &'a VerifyOptions) -> Run<'a> {
        let pins: Vec<&Pin> = opts
            .expect_tree
            .iter()
            .chain(match &opts.against {
                Against::Tree(p) => Some(p),
                _ => None,
            })
            .collect();
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
        }
    }

    /// Whether another reject of `code` is listed (true) or only counted.
    fn list(&mut self, code: RejectCode) -> bool {
        let (listed, left_out) = self.listed.entry(code).or_default();
        if *listed < REJECTS_LISTED_PER_CODE {
            *listed += 1;
            true
        } else {
            *left_out += 1;
            false
        }
    }

    fn seal_reject(&mut self, r: Reject) {
        if self.list(r.code) {
            self.seal_rejects.push(r);
        }
    }

    fn file_reject(&mut self, r: Reject) {
        if self.list(r.code) {
            self.file_rejects.push(r);
        }
    }

    fn pins(&self) -> Vec<&'a Pin> {
        let against = match &self.opts.against {
            Against::Tree(p) => Some(p),
            _ => None,
        };
        self.opts.expect_tree.iter().chain(against).collect()
    }

    fn finish(mut self, files: Vec<FileResult>, seal: Option<SealFiles>) -> Checked {
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
    fn no_packet(&mut self, why: &str) {
        self.seal_reject(
            Reject::new(RejectCode::ManifestMissing, why.into())
                .at_path(self.dir.display().to_string()),
        );
        if !self.pins().is_empty() {
            self.seal_reject(pin_unprovable());
        }
    }

    /// Reads the manifest (and tree file, pin, seal record) from where the options say: the
    /// checked packet's own seal files through `local`, or an original's from disk.
    fn load_seal(&mut self, local: LocalRead<'_>) -> Option<Seal> {
        let own = matches!(self.opts.against, Against::Itself | Against::Tree(_));
        let (seal_dir, manifest_path, tree_path): (Option<PathBuf>, PathBuf, Option<PathBuf>) =
            match &self.opts.against {
                Against::Itself | Against::Tree(_) => (
                    None,
                    PathBuf::from(MANIFEST_NAME),
                    Some(PathBuf::from(TREE_NAME)),
                ),
                Against::Packet(p) => (
                    Some(p.clone()),
                    p.join(MANIFEST_NAME),
                    Some(p.join(TREE_NAME)),
                ),
                Against::Manifest(f) => {
                    let parent = f.parent().map(Path::to_path_buf).unwrap_or_default();
                    (Some(parent), f.clone(), None)
                }
            };
        let read = |p: &Path| {
            if own {
                local(&p.to_string_lossy())
            } else {
                read_regular(p)
            }
        };
        let shown = |p: &Path| p.display().to_string();
        let manifest_label = shown(&manifest_path);
        let bytes = match read(&manifest_path) {
            Ok(b) => b,
            Err((why, _)) => {
                let code = if why.starts_with(TOO_LARGE) {
                    RejectCode::ManifestMalformed
                } else {
                    RejectCode::ManifestMissing
                };
                self.seal_reject(
                    Reject::new(code, format!("{MANIFEST_NAME} is {why}")).at_path(manifest_label),
                );
                if !self.pins().is_empty() {
                    self.seal_reject(pin_unprovable());
                }
                return None;
            }
        };
        let computed = Digest::of(&bytes);
        self.tree.computed = Some(computed.to_hex());

        // The tree file: recorded digest, and whether the manifest (perhaps after undoing a
        // proven drift) hashes to it.
        // Which bytes are the manifest as sealed: the ones found, ones rebuilt from a proven
        // drift, or none (not authenticated).
        enum Authentic {
            Found,
            Rebuilt(Vec<u8>),
            Unproven,
        }
        let mut authentic = Authentic::Unproven;
        let mut recorded_digest = None;
        if let Some(tree_path) = &tree_path {
            let label = shown(tree_path);
            match read(tree_path)
                .and_then(|b| manifest::parse_tree_file(&b).map_err(|why| (why, true)))
            {
                Ok(recorded) => {
                    self.tree.recorded = Some(recorded.digest.to_hex());
                    recorded_digest = Some(recorded.digest);
                    if let Some(drift) = recorded.drift {
                        self.seal_reject(
                            Reject::new(RejectCode::TreeHashMalformed, drift)
                                .at_path(label.clone()),
                        );
                    }
                    if computed == recorded.digest {
                        authentic = Authentic::Found;
                    } else {
                        let finding = drift::examine(&recorded.digest, None, &bytes);
                        let reject = Reject::new(
                            RejectCode::TreeHashMismatch,
                            format!(
                                "{MANIFEST_NAME} hashes to {computed}, but {TREE_NAME} records {}",
                                recorded.digest
                            ),
                        )
                        .at_path(label);
                        let proven = finding.diagnosis.proof == Proof::Proven;
                        self.seal_reject(Reject {
                            diagnosis: proven.then_some(finding.diagnosis),
                            ..reject
                        });
                        if let Some(original) = finding.rebuilt {
                            authentic = Authentic::Rebuilt(original);
                        }
                    }
                }
                Err((why, true)) => self
                    .seal_rejects
                    .push(Reject::new(RejectCode::TreeHashMalformed, why).at_path(label)),
                Err((why, false)) => self.seal_reject(
                    Reject::new(RejectCode::TreeHashMissing, format!("{TREE_NAME} is {why}"))
                        .at_path(label),
                ),
            }
        } else {
            // A manifest given on its own authenticates itself only through a pin.
            authentic = Authentic::Found;
        }
        let authentic_tree = match &authentic {
            Authentic::Found => Some(computed),
            Authentic::Rebuilt(_) => recorded_digest,
            Authentic::Unproven => None,
        };
        for pin in self.pins() {
            if pin.matches(&computed) {
                continue;
            }
            let mut reject = Reject::new(
                RejectCode::PinMismatch,
                format!(
                    "tree hash {computed} does not match the pin {pin} ({} hex digits checked)",
                    pin.hex_digits()
                ),
            )
            .at_path(TREE_NAME.into());
            // A manifest that only drifted in transit still matches once the drift is undone.
            if let (Authentic::Rebuilt(_), Some(rec)) = (&authentic, recorded_digest)
                && pin.matches(&rec)
            {
                reject.diagnosis = Some(drift::diagnose(&rec, None, &bytes));
            }
            self.seal_reject(reject);
        }
        let pinned_ok = authentic_tree.is_some_and(|t| self.pins().iter().all(|p| p.matches(&t)));
        if !pinned_ok {
            authentic = Authentic::Unproven;
        }

        let (manifest, rejects) = Manifest::parse(&bytes);
        for r in rejects {
            let r = match &self.opts.against {
                Against::Packet(_) | Against::Manifest(_) => {
                    let path = r.path.clone().map(|p| {
                        format!(
                            "{}{}",
                            manifest_path.display(),
                            p.trim_start_matches(MANIFEST_NAME)
                        )
                    });
                    Reject { path, ..r }
                }
                _ => r,
            };
            self.seal_reject(r);
        }
        // Rebuilt bytes, when there are any, are the manifest as sealed.
        let manifest = match &authentic {
            Authentic::Rebuilt(a) => Manifest::parse(a).0,
            _ => manifest,
        };
        self.counts.sealed_files = manifest.entries.len();

        let (records, record_bytes) = self.load_records(&manifest, seal_dir, local);
        // The record's bytes stand in for a copy's missing SEAL.json only against an original.
        let against_other = matches!(self.opts.against, Against::Packet(_) | Against::Manifest(_));
        let record_bytes = record_bytes.filter(|_| against_other);
        let seal_files = match (authentic, authentic_tree) {
            _ if !self.keep_seal => None,
            (Authentic::Found, Some(tree)) => Some(SealFiles {
                manifest: bytes,
                tree,
            }),
            (Authentic::Rebuilt(m), Some(tree)) => Some(SealFiles { manifest: m, tree }),
            _ => None,
        };
        Some(Seal {
            manifest,
            records,
            record_bytes,
            authentic: seal_files,
        })
    }

    /// Loads `SEAL.json` from the first of `dirs` whose record matches the manifest's digest
    /// for it (or is proven to have, before drifting); reports disagreements with the
    /// manifest as `SEAL_INCONSISTENT`.
    fn load_records(
        &mut self,
        manifest: &Manifest,
        original: Option<PathBuf>,
        local: LocalRead<'_>,
    ) -> (Option<Records>, Option<Vec<u8>>) {
        let Some(entry) = manifest.entries.iter().find(|e| e.path == SEAL_RECORD_NAME) else {
            self.notes.push(format!(
                "no {SEAL_RECORD_NAME} in the manifest (sealed by another tool?): byte lengths are not checked and drift diagnosis is limited"
            ));
            return (None, None);
        };
        let mut bytes = None;
        // The original's record first, then the checked packet's own.
        let from_original = || {
            original
                .as_ref()
                .and_then(|d| read_regular(&d.join(SEAL_RECORD_NAME)).ok())
        };
        for from_copy in [false, true] {
            let found = if from_copy {
                match local(SEAL_RECORD_NAME) {
                    Ok(b) => Some(b),
                    Err((why, _)) => {
                        if why.starts_with(TOO_LARGE) {
                            self.seal_reject(
                                Reject::new(
                                    RejectCode::SealInconsistent,
                                    format!("{SEAL_RECORD_NAME} is {why}"),
                                )
                                .at_path(SEAL_RECORD_NAME.into()),
                            );
                        }
                        None
                    }
                }
            } else {
                from_original()
            };
            let Some(found) = found else {
                continue;
            };
            if Digest::of(&found) == entry.digest {
                bytes = Some(found);
                break;
            }
            // The record drifts in transit like any text; if the drift is proven, its original
            // bytes are rebuilt (and their digest checked), so they can be trusted as sealed.
            if let Some(original) = drift::examine(&entry.digest, None, &found).rebuilt {
                self.notes.push(format!(
                    "{SEAL_RECORD_NAME} drifted, but its sealed bytes were rebuilt exactly and are used"
                ));
                bytes = Some(original);
                break;
            }
        }
        let Some(bytes) = bytes else {
            self.notes.push(format!(
                "{SEAL_RECORD_NAME} does not match its digest, so its lengths and profiles are not used"
            ));
            return (None, None);
        };
        let map = match Records::parse(&bytes) {
            Ok(r) => r,
            Err(why) => {
                self.seal_reject(
                    Reject::new(RejectCode::SealInconsistent, why).at_path(SEAL_RECORD_NAME.into()),
                );
                return (None, None);
            }
        };
        for e in &manifest.entries {
            if e.path != SEAL_RECORD_NAME && map.get(&e.path).is_none() {
                self.seal_reject(
                    Reject::new(
                        RejectCode::SealInconsistent,
                        format!("in the manifest but not in {SEAL_RECORD_NAME}"),
                    )
                    .at_path(e.path.clone()),
                );
            }
        }
        for path in map.paths() {
            if !manifest.contains(path) {
                self.seal_reject(
                    Reject::new(
                        RejectCode::SealInconsistent,
                        format!("in {SEAL_RECORD_NAME} but not in the manifest"),
                    )
                    .at_path(path.to_string()),
                );
            }
        }
        (Some(map), Some(bytes))
    }

    /// Checks every sealed file against what `scan` found. `hash` is phase 1: given the
    /// manifest, the records and where each entry stands (its own path, or a drifted name),
    /// it returns one outcome per entry (`None` where nothing stands in for it).
    fn check_files(
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
        // The scan is sorted by path bytes: membership is a binary search.
        let on_disk: Vec<&str> = scan.files.iter().map(|f| f.rel.as_str()).collect();
        let is_on_disk = |p: &str| {
            on_disk
                .binary_search_by(|d| d.as_bytes().cmp(p.as_bytes()))
                .is_ok()
        };
        let manifest = &seal.manifest;
        let against_other = matches!(self.opts.against, Against::Packet(_) | Against::Manifest(_));

        // Sealed names missing on disk, paired with unsealed names equal to them up to
        // Unicode normalization or case: one renamed file, not a missing plus an extra one.
        let missing: Vec<&str> = manifest
            .entries
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| !is_on_disk(p))
            .collect();
        let extra: Vec<&str> = on_disk
            .iter()
            .copied()
            .filter(|p| !manifest.contains(p) && !is_seal_file(p))
            .collect();
        let renamed = pair_renamed(&missing, &extra);

        let targets: Vec<Option<Target>> = manifest
            .entries
            .iter()
            .map(|entry| {
                if is_on_disk(&entry.path) {
                    Some((entry.path.as_str(), None))
                } else {
                    renamed
                        .get(entry.path.as_str())
                        .map(|(other, how)| (*other, Some((*other, *how))))
                }
            })
            .collect();

        // Phase 1: hash every file found (the caller knows where bytes come from).
        let records = seal.records.as_ref();
        let outcomes = hash(manifest, records, &targets);

        // Phase 2, in manifest order: rejects, counts and results.
        let mut results = Vec::with_capacity(if keep_rebuilt {
            manifest.entries.len()
        } else {
            0
        });
        for ((entry, target), outcome) in manifest.entries.iter().zip(&targets).zip(outcomes) {
            // Per-file results are kept only for restore.
            let mut push = |result: &dyn Fn() -> FileResult| {
                if keep_rebuilt {
                    results.push(result());
                }
            };
            let (Some((abs, renamed_from)), Some(outcome)) = (target, outcome) else {
                let state = self.missing(entry, against_other, seal);
                push(&|| FileResult {
                    path: entry.path.clone(),
                    found: None,
                    state: state.clone(),
                });
                continue;
            };
            let (abs, renamed_from) = (&self.dir.join(abs), *renamed_from);
            let mut hashed = match outcome {
                Ok(h) => h,
                Err(e) => {
                    let reject = match digest::ChangedWhileRead::of(&e) {
                        Some(changed) => {
                            Reject::new(RejectCode::FileChangedWhileRead, changed.to_string())
                        }
                        None => {
                            Reject::new(RejectCode::FileUnreadable, format!("cannot read: {e}"))
                        }
                    };
                    self.file_reject(reject.at_path(entry.path.clone()));
                    push(&|| FileResult {
                        path: entry.path.clone(),
                        found: Some(abs.clone()),
                        state: FileState::Missing,
                    });
                    continue;
                }
            };
            self.counts.bytes += hashed.len;
            let sealed_len = records.and_then(|r| r.get(&entry.path)).map(|r| r.bytes);
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
                        self.line(|| {
                            FileLine::drifted(&entry.path, None, reject.diagnosis.as_ref())
                        });
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
            push(&|| FileResult {
                path: entry.path.clone(),
                found: Some(abs.clone()),
                state: state.clone(),
            });
        }

        let renamed_targets: BTreeSet<&str> = renamed.values().map(|(other, _)| *other).collect();
        for f in &scan.files {
            if !is_seal_file(&f.rel)
                && !manifest.contains(&f.rel)
                && !renamed_targets.contains(f.rel.as_str())
            {
                self.file_reject(
                    Reject::new(
                        RejectCode::FileUnsealed,
                        format!(
                            "{} but not in the manifest: added after sealing",
                            self.place
                        ),
                    )
                    .at_path(f.rel.clone()),
                );
            }
        }
        results
    }

    /// A sealed file that is not on disk under any name.
    fn missing(&mut self, entry: &manifest::Entry, against_other: bool, seal: &Seal) -> FileState {
        if entry.path == SEAL_RECORD_NAME
            && against_other
            && let Some(bytes) = &seal.record_bytes
        {
            self.notes.push(format!(
                "{SEAL_RECORD_NAME} is not in the copy; the original's was used"
            ));
            self.counts.intact_files += 1;
            return FileState::FromSeal(bytes.clone());
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

    /// Records a per-file line; only a check against an original lists them.
    fn line(&mut self, make: impl FnOnce() -> FileLine) {
        if self.opts.against != Against::Itself {
            self.lines.push(make());
        }
    }

    fn push_renamed(
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
fn is_seal_file(rel: &str) -> bool {
    rel == MANIFEST_NAME || rel == TREE_NAME
}

fn pin_unprovable() -> Reject {
    Reject::new(
        RejectCode::PinMismatch,
        "no manifest, so no tree hash to hold against the pin".into(),
    )
    .at_path(TREE_NAME.into())
}

/// Where a sealed file is on disk, and the sealed name it drifted from when it was renamed.
type Target<'a> = (&'a str, Option<(&'a str, NameDrift)>);

/// One file as hashed by a worker: digest and length, the drift finding if it mismatched
/// (and was small enough to diagnose), and its rollback-evidence check if it claims to be
/// evidence.
struct Hashed {
    digest: Digest,
    len: u64,
    // Boxed: rare, and every file's result is held until the manifest-order pass.
    finding: Option<Box<drift::Finding>>,
    evidence: Option<Box<rollback::Checked>>,
    /// Too large to validate, but looks like rollback evidence.
    suspect: bool,
}

/// The reject for a sealed file whose digest no longer matches, with its drift diagnosis, and
/// the rebuilt original bytes when the drift is proven (and they were kept).
fn mismatch(
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

/// Verifies a packet archive (`.tar`, or gzip-compressed) in one streaming pass, without
/// extracting it, and reports exactly as [`verify`] does for the directory: same reject codes,
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
    let mut seal_files: HashMap<&'static str, Result<Vec<u8>, String>> = HashMap::new();
    // None: not loaded yet; Some(None): loading failed (the report says why).
    let mut seal: Option<Option<Seal>> = None;
    let mut got: HashMap<String, Streamed> = HashMap::new();
    let mut found: Vec<String> = Vec::new();
    let mut retained = 0u64;
    let lookup = |files: &HashMap<&'static str, Result<Vec<u8>, String>>, name: &str| match files
        .get(name)
    {
        Some(Ok(b)) => Ok(b.clone()),
        Some(Err(why)) => Err((why.clone(), true)),
        None => Err(("absent from the archive".to_string(), false)),
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
        if let Some(mut file) = sink {
            std::io::Write::flush(&mut file)?;
        }
        if let Some(name) = seal_name {
            let kept = match &read.bytes {
                Some(b) => Ok(b.clone()),
                None => Err(too_large(read.len, keep_limit)),
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
fn seal_ready(files: &HashMap<&'static str, Result<Vec<u8>, String>>) -> bool {
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
/// replaces a file. `rel` has passed [`manifest::check_path`].
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
    use crate::seal::{SealOptions, seal_dir};

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
