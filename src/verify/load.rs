//! Loading the seal a run checks against: the manifest and tree file (with their own drift
//! undone where it is proven), the pin, and the seal record, each read within its size limit
//! from the packet itself or from the original it is a copy of.

use super::run::{Run, Seal, not_listed, not_recorded, pin_unprovable};
use super::{Against, SealFiles};
use crate::digest::{self, Digest};
use crate::drift::{self, Proof};
use crate::manifest::{self, MANIFEST_NAME, Manifest, TREE_NAME};
use crate::reject::{Reject, RejectCode};
use crate::seal::{Records, SEAL_RECORD_NAME};
use std::fs;
use std::path::{Path, PathBuf};

/// Why a seal file was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unread {
    /// A phrase that completes "<name> is …".
    pub(crate) why: String,
    /// What kind of failure it was, which decides the reject code.
    pub(crate) kind: UnreadKind,
}

/// The three ways a seal file is not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnreadKind {
    /// Not there at all.
    Absent,
    /// There, but not a regular file or not readable.
    Unusable,
    /// Above its size limit ([`seal_file_limit`]): refused unread.
    TooLarge,
}

impl Unread {
    fn new(kind: UnreadKind, why: impl Into<String>) -> Unread {
        Unread {
            why: why.into(),
            kind,
        }
    }

    /// Absent from where it was looked for.
    pub(crate) fn absent(why: impl Into<String>) -> Unread {
        Unread::new(UnreadKind::Absent, why)
    }

    /// Refused unread: `len` bytes (or more) against the `limit`.
    pub(crate) fn too_large(len: u64, limit: u64) -> Unread {
        Unread::new(
            UnreadKind::TooLarge,
            format!(
                "larger than the {limit}-byte limit for a seal file ({len} bytes or more): refused unread"
            ),
        )
    }
}

/// Reads a seal file that must be a regular file, no more than the limit for its name
/// ([`seal_file_limit`]): a seal file above it is refused unread, so a 2 GiB sparse manifest
/// costs no memory.
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>, Unread> {
    let (file, limit) = open_seal_file(path)?;
    let mut bytes = Vec::new();
    let read = std::io::Read::read_to_end(&mut std::io::Read::take(file, limit + 1), &mut bytes);
    match read {
        Ok(_) if bytes.len() as u64 > limit => Err(Unread::too_large(limit + 1, limit)),
        Ok(_) => Ok(bytes),
        Err(e) => Err(Unread::new(
            UnreadKind::Unusable,
            format!("unreadable: {e}"),
        )),
    }
}

/// Opens a seal file that must be a regular file (not a link) no larger than the limit for
/// its name ([`seal_file_limit`]), with that limit: a file above it is refused unopened.
pub(crate) fn open_seal_file(path: &Path) -> Result<(fs::File, u64), Unread> {
    let limit = seal_file_limit(&path.file_name().unwrap_or_default().to_string_lossy());
    match fs::symlink_metadata(path) {
        Err(_) => Err(Unread::absent("absent")),
        Ok(m) if !m.is_file() => Err(Unread::new(UnreadKind::Unusable, "not a regular file")),
        Ok(m) if m.len() > limit => Err(Unread::too_large(m.len(), limit)),
        Ok(_) => digest::open_regular(path, false)
            .map(|f| (f, limit))
            .map_err(|e| Unread::new(UnreadKind::Unusable, format!("unreadable: {e}"))),
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

/// Reads one of the checked packet's own seal files by name (from its directory, or from an
/// archive's entries).
pub(crate) type LocalRead<'l> = &'l dyn Fn(&str) -> Result<Vec<u8>, Unread>;

impl Run<'_> {
    /// Reads the manifest (and tree file, pin, seal record) from where the options say: the
    /// checked packet's own seal files through `local`, or an original's from disk.
    pub(crate) fn load_seal(&mut self, local: LocalRead<'_>) -> Option<Seal> {
        let own = self.opts.against.own_seal();
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
            Err(unread) => {
                let code = if unread.kind == UnreadKind::TooLarge {
                    RejectCode::ManifestMalformed
                } else {
                    RejectCode::ManifestMissing
                };
                self.seal_reject(
                    Reject::new(code, format!("{MANIFEST_NAME} is {}", unread.why))
                        .at_path(manifest_label),
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
            match read(tree_path).and_then(|b| {
                manifest::parse_tree_file(&b).map_err(|why| Unread::new(UnreadKind::Unusable, why))
            }) {
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
                Err(Unread {
                    why,
                    kind: UnreadKind::Absent,
                }) => self.seal_reject(
                    Reject::new(RejectCode::TreeHashMissing, format!("{TREE_NAME} is {why}"))
                        .at_path(label),
                ),
                Err(Unread { why, .. }) => {
                    self.seal_reject(Reject::new(RejectCode::TreeHashMalformed, why).at_path(label))
                }
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
    pub(crate) fn load_records(
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
        // Read and parsed while the manifest was; a reader thread that died (a bug, not an
        // input) leaves the ordinary read below.
        let (mut prefetched_read, prefetched_parse) =
            match self.record_prefetch.take().and_then(|r| r.recv().ok()) {
                Some(p) => (Some(p.bytes), p.parsed),
                None => (None, None),
            };
        // The original's record first, then the checked packet's own.
        let from_original = || {
            original
                .as_ref()
                .and_then(|d| read_regular(&d.join(SEAL_RECORD_NAME)).ok())
        };
        for from_copy in [false, true] {
            let found = if from_copy {
                let read = prefetched_read
                    .take()
                    .unwrap_or_else(|| local(SEAL_RECORD_NAME));
                match read {
                    Ok(b) => Some(b),
                    Err(unread) => {
                        if unread.kind == UnreadKind::TooLarge {
                            self.seal_reject(
                                Reject::new(
                                    RejectCode::SealInconsistent,
                                    format!("{SEAL_RECORD_NAME} is {}", unread.why),
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
            // The prefetched bytes were hashed on their thread already.
            let digest = match &prefetched_parse {
                Some((d, _)) if from_copy => *d,
                _ => Digest::of(&found),
            };
            if digest == entry.digest {
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
        // The parse made ahead is of the same bytes when they have the sealed digest.
        let parsed = match prefetched_parse {
            Some((digest, parsed)) if digest == entry.digest => parsed,
            _ => Records::parse(&bytes),
        };
        let map = match parsed {
            Ok(r) => r,
            Err(why) => {
                self.seal_reject(
                    Reject::new(RejectCode::SealInconsistent, why).at_path(SEAL_RECORD_NAME.into()),
                );
                return (None, None);
            }
        };
        let sealed: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        let recorded: Vec<&str> = map.paths().collect();
        for (e, record) in manifest.entries.iter().zip(map.aligned(&sealed)) {
            if e.path != SEAL_RECORD_NAME && record.is_none() {
                self.seal_reject(not_recorded(e.path.clone()));
            }
        }
        for (path, listed) in recorded.iter().zip(manifest::listed_in(&recorded, &sealed)) {
            if !listed {
                self.seal_reject(not_listed(path.to_string()));
            }
        }
        (Some(map), Some(bytes))
    }
}
