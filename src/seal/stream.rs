//! Sealing as a stream: the payload is walked in manifest order ([`SortedWalk`]), hashed on
//! the pool a bounded window ahead ([`Runner::map_ordered`]), and every result goes straight
//! into the seal record and the manifest, so memory stays bounded whatever the number of
//! files (1,000,000 files once took 440 MiB held as lists). The seal is either staged beside
//! the payload for [`install`](super::build), or compared with the seal already there without
//! writing anything; [`check`] only walks, to refuse a tree before anything is done to it.

use super::record::{
    RECORD_TAIL, RESERVED_NAMES, SEAL_RECORD_LIMIT, SEAL_RECORD_NAME, SEAL_SCHEMA, record_head,
    record_separator, render_record_line,
};
use crate::digest::{self, Digest};
use crate::manifest::{self, MANIFEST_LIMIT, MANIFEST_NAME, TREE_NAME};
use crate::parallel::{Jobs, Runner};
use crate::profile::{PROFILE_LIMIT, Profile};
use crate::reject::{Error, Reject, RejectCode};
use crate::staging::TEMP_PREFIXES;
use crate::walk::{Found, SortedWalk};
use sha2::Digest as _;
use std::cell::{Cell, RefCell};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

/// What to do with the seal a stream computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Write the three seal files under temporary names in the directory, for installing.
    Stage,
    /// Compare with the seal files already in the directory; write nothing.
    Compare,
}

/// A seal computed by [`seal`].
pub struct Streamed {
    /// The tree hash. In [`Mode::Compare`] only meaningful when `same`.
    pub tree_hash: Digest,
    /// Entries of the manifest (payload files plus `SEAL.json`).
    pub files: usize,
    /// Bytes of the files the manifest lists.
    pub bytes: u64,
    /// [`Mode::Compare`]: the directory already holds exactly this seal, byte for byte.
    pub same: bool,
    /// [`Mode::Stage`]: the staged `SEAL.json`, `HASH_MANIFEST.txt` and `packet_tree.sha256`.
    pub staged: Option<[(&'static str, tempfile::NamedTempFile); 3]>,
}

/// Walks `dir` as [`seal`] would, hashing nothing: the number of payload files, or every
/// reason it cannot be sealed (`PATH_REJECTED`, `FILE_UNREADABLE`, and unless `may_be_empty`
/// `BUILD_REFUSED` for a tree with no payload file).
pub fn check(dir: &Path, may_be_empty: bool) -> Result<usize, Error> {
    let mut rejects = unsealable_names(dir);
    let mut walk = SortedWalk::new(dir, "", true);
    let mut files = 0;
    for f in walk.by_ref() {
        files += usize::from(payload(f, &mut rejects).is_some());
    }
    rejects.splice(0..0, walk.rejects());
    if !rejects.is_empty() {
        return Err(Error::Rejected(rejects));
    }
    if files == 0 && !may_be_empty {
        return Err(empty(dir));
    }
    Ok(files)
}

/// Hashes every payload file of `dir` in path order and renders the seal that seals them,
/// into staged files or compared with the seal there (see [`Mode`]).
///
/// Errors, in this order of precedence (hashing stops at the first; the walk goes on, so every
/// refusal is named): `PATH_REJECTED` and `FILE_UNREADABLE` for what cannot be sealed
/// (symlinks, special files, unsafe or non-NFC names, a seal name that is not a regular file,
/// a temporary file left by an interrupted run); `Error::Io` for the first file that cannot
/// be read; `FILE_CHANGED_WHILE_READ` for every file written while it was read;
/// `BUILD_REFUSED` for no payload file, or a manifest or seal record above the limits verify
/// reads ([`MANIFEST_LIMIT`], [`SEAL_RECORD_LIMIT`]).
pub fn seal(dir: &Path, jobs: Jobs, mode: Mode) -> Result<Streamed, Error> {
    let refusals = RefCell::new(unsealable_names(dir));
    // The root is listed here, before anything is staged in it: staged files are never walked.
    let mut walk = SortedWalk::new(dir, "", true);
    let mut out = match mode {
        Mode::Stage => Outputs::stage(dir)?,
        Mode::Compare => Outputs::compare(dir),
    };
    // Once anything is refused nothing more is hashed: the walk goes on only to name it all.
    let stopped = Cell::new(!refusals.borrow().is_empty());
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut first_io: Option<Error> = None;
    let mut changed = Vec::new();
    let mut over_limit = None;
    {
        let walk = &mut walk;
        let queue = std::iter::from_fn(|| {
            loop {
                let f = walk.next()?;
                let f = payload(f, &mut refusals.borrow_mut());
                if walk.has_rejects() || !refusals.borrow().is_empty() {
                    stopped.set(true);
                }
                let Some(f) = f else { continue };
                if !stopped.get() {
                    return Some(f);
                }
            }
        });
        let runner = Runner::new(jobs, 0, "sealing");
        runner.map_ordered(
            queue,
            |chunk: &[Found]| digest::Opener::ahead(dir, chunk.iter().map(|f| f.rel.as_str())),
            |opener, f| hash(dir, f, opener, &runner),
            |done| {
                if stopped.get() {
                    return;
                }
                let (rel, read) = done;
                let hashed = match read {
                    Ok(h) => h,
                    Err(e) => {
                        match digest::ChangedWhileRead::of(&e) {
                            Some(c) => changed.push(
                                Reject::new(RejectCode::FileChangedWhileRead, c.to_string())
                                    .at_path(rel),
                            ),
                            None => {
                                first_io = Some(Error::io(
                                    format!("reading {}", dir.join(&rel).display()),
                                    e,
                                ));
                                stopped.set(true);
                            }
                        }
                        return;
                    }
                };
                bytes += hashed.len;
                let written = out
                    .record(record_separator(files))
                    .and_then(|_| out.record(&hashed.line))
                    .and_then(|_| out.manifest_line(&hashed.digest, &rel));
                files += 1;
                if let Err(e) = written {
                    first_io = Some(e);
                    stopped.set(true);
                }
                if let Some(limit) = out.over_limit() {
                    over_limit = Some(limit);
                    stopped.set(true);
                }
                if out.differs() {
                    stopped.set(true);
                }
            },
        );
    }
    let mut all = walk.rejects();
    all.append(&mut refusals.into_inner());
    if !all.is_empty() {
        return Err(Error::Rejected(all));
    }
    if let Some(e) = first_io {
        return Err(e);
    }
    if !changed.is_empty() {
        return Err(Error::Rejected(changed));
    }
    if files == 0 {
        return Err(empty(dir));
    }
    if let Some((name, len, limit)) = over_limit {
        return Err(refused(
            format!(
                "{name} would be more than {len} bytes for {} files, above the {limit}-byte limit verify reads: seal the evidence as several packets",
                files + 1
            ),
            dir,
        ));
    }
    out.finish(dir, files + 1, bytes)
}

/// A payload file read: its digest, length and seal-record line.
struct Hashed {
    digest: Digest,
    len: u64,
    line: Vec<u8>,
}

/// Hashes and profiles one payload file, rendering its record line on the worker.
fn hash(
    dir: &Path,
    f: Found,
    opener: &mut digest::Opener,
    runner: &Runner,
) -> (String, io::Result<Hashed>) {
    let read = digest::joined(dir, &f.rel, |path| {
        digest::read_observed(
            opener,
            path,
            PROFILE_LIMIT,
            |bytes, _| Profile::of(bytes),
            &mut |_| {},
        )
    })
    .map(|r| {
        runner.done(r.len);
        Hashed {
            digest: r.digest,
            len: r.len,
            line: render_record_line(&f.rel, r.len, r.seen.as_ref()),
        }
    });
    (f.rel, read)
}

/// `f` if it is a payload file: not one of the seal files at the root, and not a temporary
/// file an interrupted run left (that one is refused into `rejects`).
fn payload(f: Found, rejects: &mut Vec<Reject>) -> Option<Found> {
    if RESERVED_NAMES.contains(&f.rel.as_str()) {
        return None;
    }
    let base = f.rel.rsplit('/').next().unwrap_or(&f.rel);
    if TEMP_PREFIXES.iter().any(|p| base.starts_with(p)) {
        rejects.push(
            Reject::new(
                RejectCode::PathRejected,
                "a temporary file of an interrupted packet run: remove it, it is not evidence"
                    .into(),
            )
            .at_path(f.rel),
        );
        return None;
    }
    Some(f)
}

/// A seal file name at the root taken by something that is not a regular file: a directory
/// named `packet_tree.sha256` would have its contents sealed and break the rename.
fn unsealable_names(dir: &Path) -> Vec<Reject> {
    RESERVED_NAMES
        .iter()
        .filter(|name| fs::symlink_metadata(dir.join(name)).is_ok_and(|m| !m.is_file()))
        .map(|name| {
            Reject::new(
                RejectCode::PathRejected,
                "a seal file name is taken by something that is not a regular file".into(),
            )
            .at_path(name.to_string())
        })
        .collect()
}

fn empty(dir: &Path) -> Error {
    refused(
        "holds no file to seal: an empty packet proves nothing".into(),
        dir,
    )
}

/// Where the seal's bytes go: staged files, or a comparison with the files there.
///
/// The manifest line of `SEAL.json` sits among the others in byte order, but its digest is
/// known only at the end. Staging, the lines after its place go to `tail` and are appended
/// after it then; comparing, the existing line is read at its place and its digest kept, to be
/// compared with the record's at the end.
struct Outputs {
    record: Sink,
    manifest: Sink,
    /// Staging: the manifest lines after `SEAL.json`'s, hashed when appended at the end.
    tail: Option<BufWriter<tempfile::NamedTempFile>>,
    /// The manifest line being rendered, reused.
    line: Vec<u8>,
    record_len: u64,
    manifest_len: u64,
    /// The `SEAL.json` line's place has been passed.
    past_record: bool,
    /// Comparing: the digest the existing manifest gives `SEAL.json` at that place.
    listed_record: Option<Digest>,
}

/// One output stream: its bytes hashed as they go, and written to a staged file or compared
/// with an existing one.
struct Sink {
    hasher: sha2::Sha256,
    to: To,
}

enum To {
    Stage(BufWriter<tempfile::NamedTempFile>),
    /// Compared with `have` (`None`: there is no such file); `differs` once they do not match.
    Compare {
        have: Option<BufReader<File>>,
        differs: bool,
    },
}

impl Sink {
    fn staged(dir: &Path) -> Result<Sink, Error> {
        Ok(Sink {
            hasher: sha2::Sha256::new(),
            to: To::Stage(staged_file(dir)?),
        })
    }

    fn compared(path: &Path) -> Sink {
        Sink {
            hasher: sha2::Sha256::new(),
            to: To::Compare {
                have: digest::open_regular(path, false)
                    .ok()
                    .map(|f| BufReader::with_capacity(1 << 16, f)),
                differs: false,
            },
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.to {
            To::Stage(file) => {
                self.hasher.update(bytes);
                file.write_all(bytes)
            }
            To::Compare { differs: true, .. } => Ok(()),
            To::Compare { have, differs } => {
                // Compared in the reader's own buffer: no copy out of it per line.
                let mut want = bytes;
                while !want.is_empty() {
                    let got = match have.as_mut().map(|r| r.fill_buf()) {
                        Some(Ok(got)) if !got.is_empty() => got,
                        Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                        _ => {
                            *differs = true;
                            break;
                        }
                    };
                    let n = got.len().min(want.len());
                    if got[..n] != want[..n] {
                        *differs = true;
                        break;
                    }
                    self.hasher.update(&want[..n]);
                    have.as_mut().expect("a reader filled").consume(n);
                    want = &want[n..];
                }
                Ok(())
            }
        }
    }

    /// Comparing: reads the existing `n` bytes, hashed, without comparing them.
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        let To::Compare {
            have: Some(r),
            differs: false,
        } = &mut self.to
        else {
            return None;
        };
        let mut got = vec![0; n];
        r.read_exact(&mut got).ok()?;
        self.hasher.update(&got);
        Some(got)
    }

    /// Comparing: every byte matched and the existing file holds nothing more.
    fn matched_whole(&mut self) -> bool {
        match &mut self.to {
            To::Compare {
                have: Some(r),
                differs: false,
            } => r.read(&mut [0u8; 1]).ok() == Some(0),
            _ => false,
        }
    }

    fn differs(&self) -> bool {
        matches!(self.to, To::Compare { differs: true, .. })
    }

    fn digest(&self) -> Digest {
        Digest(self.hasher.clone().finalize().into())
    }

    /// Staging: the file, flushed, made readable and synced.
    fn into_staged(self, dir: &Path, name: &str) -> Result<tempfile::NamedTempFile, Error> {
        let To::Stage(file) = self.to else {
            unreachable!("only staged sinks are installed")
        };
        let file = file
            .into_inner()
            .map_err(|e| staging_error(dir, e.into_error()))?;
        finish_staged(dir, name, file)
    }
}

/// A temporary file in `dir`, named so a sweep knows it, buffered for writing.
fn staged_file(dir: &Path) -> Result<BufWriter<tempfile::NamedTempFile>, Error> {
    let file = tempfile::Builder::new()
        .prefix(&crate::staging::temp_prefix(TEMP_PREFIXES[0]))
        .tempfile_in(dir)
        .map_err(|e| staging_error(dir, e))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// The length of the manifest line of `SEAL.json`.
const RECORD_LINE_LEN: usize = 64 + 2 + SEAL_RECORD_NAME.len() + 1;

impl Outputs {
    fn stage(dir: &Path) -> Result<Outputs, Error> {
        Outputs::new(
            Sink::staged(dir)?,
            Sink::staged(dir)?,
            Some(staged_file(dir)?),
        )
    }

    fn compare(dir: &Path) -> Outputs {
        Outputs::new(
            Sink::compared(&dir.join(SEAL_RECORD_NAME)),
            Sink::compared(&dir.join(MANIFEST_NAME)),
            None,
        )
        .expect("comparing writes nothing")
    }

    fn new(
        record: Sink,
        manifest: Sink,
        tail: Option<BufWriter<tempfile::NamedTempFile>>,
    ) -> Result<Outputs, Error> {
        let mut out = Outputs {
            record,
            manifest,
            tail,
            line: Vec::with_capacity(256),
            record_len: 0,
            manifest_len: 0,
            past_record: false,
            listed_record: None,
        };
        out.record(&record_head(SEAL_SCHEMA))?;
        Ok(out)
    }

    fn record(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.record_len += bytes.len() as u64;
        self.record
            .write(bytes)
            .map_err(|e| Error::io("writing the seal record", e))
    }

    /// Passes the place of the `SEAL.json` line: from here lines go to the tail (staging),
    /// or the existing line is read and its digest kept (comparing).
    fn pass_record(&mut self) {
        self.past_record = true;
        if self.tail.is_none() {
            let listed = self.manifest.take(RECORD_LINE_LEN).and_then(|line| {
                let entry = manifest::standard_line(line.strip_suffix(b"\n")?)?;
                (entry.path == SEAL_RECORD_NAME).then_some(entry.digest)
            });
            if listed.is_none() {
                // Not the line a seal writes there: the seal differs.
                self.manifest.to = To::Compare {
                    have: None,
                    differs: true,
                };
            }
            self.listed_record = listed;
        }
    }

    fn manifest_line(&mut self, digest: &Digest, path: &str) -> Result<(), Error> {
        if !self.past_record && path.as_bytes() > SEAL_RECORD_NAME.as_bytes() {
            self.pass_record();
        }
        self.line.clear();
        manifest::render_line(&mut self.line, digest, path);
        self.manifest_len += self.line.len() as u64;
        match (&mut self.tail, self.past_record) {
            (Some(tail), true) => tail.write_all(&self.line),
            _ => self.manifest.write(&self.line),
        }
        .map_err(|e| Error::io("writing the manifest", e))
    }

    /// The seal file that has grown past the limit verify reads, with its length and limit.
    fn over_limit(&self) -> Option<(&'static str, u64, u64)> {
        if self.record_len + RECORD_TAIL.len() as u64 > SEAL_RECORD_LIMIT {
            return Some((SEAL_RECORD_NAME, self.record_len, SEAL_RECORD_LIMIT));
        }
        if self.manifest_len + RECORD_LINE_LEN as u64 > MANIFEST_LIMIT {
            return Some((MANIFEST_NAME, self.manifest_len, MANIFEST_LIMIT));
        }
        None
    }

    /// Comparing: the seal there already differs from this one.
    fn differs(&self) -> bool {
        self.record.differs() || self.manifest.differs()
    }

    /// Ends the record, places its manifest line, and stages or compares the tree file.
    fn finish(mut self, dir: &Path, files: usize, payload_bytes: u64) -> Result<Streamed, Error> {
        self.record(RECORD_TAIL)?;
        if !self.past_record {
            self.pass_record();
        }
        let bytes = payload_bytes + self.record_len;
        let record_digest = self.record.digest();
        let Some(tail) = self.tail.take() else {
            // Comparing.
            let mut same = self.listed_record == Some(record_digest)
                && self.record.matched_whole()
                && self.manifest.matched_whole();
            let tree_hash = self.manifest.digest();
            let tree = manifest::render_tree_file(&tree_hash);
            same = same
                && matches!(
                    digest::read_regular_bounded(&dir.join(TREE_NAME), tree.len() as u64),
                    Ok(Some(have)) if have == tree
                );
            return Ok(Streamed {
                tree_hash,
                files,
                bytes,
                same,
                staged: None,
            });
        };
        let io_err = |e| Error::io("writing the manifest", e);
        self.line.clear();
        manifest::render_line(&mut self.line, &record_digest, SEAL_RECORD_NAME);
        self.manifest.write(&self.line).map_err(io_err)?;
        let mut lines = tail.into_inner().map_err(|e| io_err(e.into_error()))?;
        lines.rewind().map_err(io_err)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = lines.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            self.manifest.write(&buf[..n]).map_err(io_err)?;
        }
        drop(lines);
        let tree_hash = self.manifest.digest();
        let record = self.record.into_staged(dir, SEAL_RECORD_NAME)?;
        let manifest_file = self.manifest.into_staged(dir, MANIFEST_NAME)?;
        let tree = stage(dir, TREE_NAME, &manifest::render_tree_file(&tree_hash))?;
        Ok(Streamed {
            tree_hash,
            files,
            bytes,
            same: false,
            staged: Some([
                (SEAL_RECORD_NAME, record),
                (MANIFEST_NAME, manifest_file),
                (TREE_NAME, tree),
            ]),
        })
    }
}

fn staging_error(dir: &Path, e: io::Error) -> Error {
    Error::io(format!("writing a seal file in {}", dir.display()), e)
}

/// `BUILD_REFUSED` at `path`, saying why.
pub(super) fn refused(msg: String, path: &Path) -> Error {
    Error::Rejected(vec![
        Reject::new(RejectCode::BuildRefused, msg).at_path(path.display().to_string()),
    ])
}

/// Stages `bytes` as the seal file `name` of `dir` ([`finish_staged`]).
fn stage(dir: &Path, name: &str, bytes: &[u8]) -> Result<tempfile::NamedTempFile, Error> {
    let mut file = staged_file(dir)?;
    file.write_all(bytes).map_err(|e| staging_error(dir, e))?;
    let file = file
        .into_inner()
        .map_err(|e| staging_error(dir, e.into_error()))?;
    finish_staged(dir, name, file)
}

/// A temporary file written with the seal file `name` of `dir`, made readable and synced.
fn finish_staged(
    dir: &Path,
    name: &str,
    tmp: tempfile::NamedTempFile,
) -> Result<tempfile::NamedTempFile, Error> {
    // Temporary files are created 0600; a seal file is as readable as any other payload.
    crate::staging::set_mode(tmp.path(), 0o644).map_err(|e| staging_error(dir, e))?;
    // The fault hook matches the name the file is staged for, not its random temporary name.
    crate::staging::sync_file(tmp.as_file(), &dir.join(name)).map_err(|e| staging_error(dir, e))?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Manifest};
    use crate::seal::{FileRecord, SealRecord};

    /// Names on both sides of `SEAL.json` in byte order, and one that extends it.
    const NAMES: [&str; 7] = [
        "A.txt",
        "SEAL.jso",
        "SEAL.json.bak",
        "Z/deep/x",
        "a b",
        "d.txt",
        "d/e",
    ];

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (i, n) in NAMES.iter().enumerate() {
            let p = dir.path().join(n);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("file {i} \u{2014} {n}\n")).unwrap();
        }
        dir
    }

    fn staged(dir: &Path) -> crate::seal::Sealed {
        crate::seal::seal_dir(dir, Default::default()).unwrap()
    }

    /// The seal built the plain way: every file held, sorted, rendered whole.
    fn held(dir: &Path) -> (Vec<u8>, Vec<u8>) {
        let mut names: Vec<&str> = NAMES.to_vec();
        names.sort();
        let files: Vec<FileRecord> = names
            .iter()
            .map(|n| {
                let bytes = fs::read(dir.join(n)).unwrap();
                FileRecord {
                    path: n.to_string(),
                    bytes: bytes.len() as u64,
                    profile: Some(Profile::of(&bytes)),
                }
            })
            .collect();
        let record = SealRecord {
            schema: SEAL_SCHEMA.into(),
            files,
        }
        .render();
        let mut entries: Vec<Entry> = names
            .iter()
            .map(|n| Entry {
                path: n.to_string(),
                digest: Digest::of(&fs::read(dir.join(n)).unwrap()),
            })
            .collect();
        entries.push(Entry {
            path: SEAL_RECORD_NAME.into(),
            digest: Digest::of(&record),
        });
        (record, Manifest::from_entries(entries).render())
    }

    #[test]
    fn streamed_seal_is_byte_for_byte_the_seal_rendered_whole() {
        let dir = tree();
        let s = staged(dir.path());
        let (record, manifest) = held(dir.path());
        assert_eq!(fs::read(dir.path().join(SEAL_RECORD_NAME)).unwrap(), record);
        let on_disk = fs::read(dir.path().join(MANIFEST_NAME)).unwrap();
        assert_eq!(
            String::from_utf8(on_disk).unwrap(),
            String::from_utf8(manifest.clone()).unwrap()
        );
        assert_eq!(s.tree_hash, Digest::of(&manifest));
        assert_eq!((s.files, s.bytes), (NAMES.len() + 1, dir_bytes(dir.path())));
        // Only the three seal files were added: no staged tail or temporary file is left.
        let mut top: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        top.sort();
        assert_eq!(top, Vec::<String>::new());
    }

    fn dir_bytes(dir: &Path) -> u64 {
        NAMES
            .iter()
            .map(|n| fs::metadata(dir.join(n)).unwrap().len())
            .sum::<u64>()
            + fs::metadata(dir.join(SEAL_RECORD_NAME)).unwrap().len()
    }

    #[test]
    fn comparing_finds_the_seal_there_the_same_or_not_and_writes_nothing() {
        let dir = tree();
        let d = dir.path();
        let sealed = staged(d);
        let listing = || {
            let mut v: Vec<_> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = listing();
        let same = seal(d, Jobs::default(), Mode::Compare).unwrap();
        assert!(same.same);
        assert_eq!(
            (same.tree_hash, same.files, same.bytes),
            (sealed.tree_hash, sealed.files, sealed.bytes)
        );
        // A payload byte, each seal file in turn, and a trailing byte on the manifest.
        let manifest = fs::read(d.join(MANIFEST_NAME)).unwrap();
        let record = fs::read(d.join(SEAL_RECORD_NAME)).unwrap();
        let tree = fs::read(d.join(TREE_NAME)).unwrap();
        let mut other_digest = manifest.clone();
        let at = manifest.windows(9).position(|w| w == b"SEAL.json").unwrap() - 3;
        other_digest[at] = if other_digest[at] == b'0' { b'1' } else { b'0' };
        let cases: [(&str, Vec<u8>); 5] = [
            ("d/e", b"changed\n".to_vec()),
            (SEAL_RECORD_NAME, [&record[..], b" "].concat()),
            (MANIFEST_NAME, other_digest),
            (MANIFEST_NAME, [&manifest[..], b"\n"].concat()),
            (TREE_NAME, tree.to_ascii_uppercase()),
        ];
        for (name, bytes) in cases {
            let was = fs::read(d.join(name)).unwrap();
            fs::write(d.join(name), &bytes).unwrap();
            let s = seal(d, Jobs::default(), Mode::Compare).unwrap();
            assert!(!s.same, "{name} changed, yet the seal compares the same");
            fs::write(d.join(name), was).unwrap();
        }
        assert_eq!(listing(), before);
        assert!(seal(d, Jobs::default(), Mode::Compare).unwrap().same);
    }

    #[test]
    fn every_refusal_is_named_and_no_staged_file_is_left() {
        let dir = tree();
        let d = dir.path();
        std::os::unix::fs::symlink("A.txt", d.join("link")).unwrap();
        fs::write(d.join(format!("{}x", TEMP_PREFIXES[0])), "left over").unwrap();
        fs::create_dir(d.join(TREE_NAME)).unwrap();
        let err = seal(d, Jobs::default(), Mode::Stage).err().unwrap();
        let Error::Rejected(rejects) = err else {
            panic!("{err:?}")
        };
        let mut at: Vec<_> = rejects
            .iter()
            .map(|r| (r.code, r.path.clone().unwrap()))
            .collect();
        at.sort();
        assert_eq!(
            at,
            [
                (RejectCode::PathRejected, format!("{}x", TEMP_PREFIXES[0])),
                (RejectCode::PathRejected, "link".into()),
                (RejectCode::PathRejected, TREE_NAME.into()),
            ]
        );
        assert_eq!(
            check(d, false)
                .err()
                .map(|e| matches!(e, Error::Rejected(r) if r.len() == 3)),
            Some(true)
        );
        // Staged files of the refused seal are gone.
        let left: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(TEMP_PREFIXES[0]) && n != &format!("{}x", TEMP_PREFIXES[0]))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_empty_tree_is_refused_unless_it_may_be() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("only-a-directory")).unwrap();
        let refused =
            |e: Error| matches!(e, Error::Rejected(r) if r[0].code == RejectCode::BuildRefused);
        assert!(refused(
            seal(dir.path(), Jobs::default(), Mode::Stage)
                .err()
                .unwrap()
        ));
        assert!(refused(check(dir.path(), false).err().unwrap()));
        assert_eq!(check(dir.path(), true).unwrap(), 0);
        // Only a stale seal file, which differs from any seal made now: still nothing to
        // seal, and refused naming this directory (not a staging one it would go on to).
        fs::write(dir.path().join(MANIFEST_NAME), "stale\n").unwrap();
        match seal(dir.path(), Jobs::default(), Mode::Compare) {
            Err(Error::Rejected(r)) => {
                assert_eq!(r[0].code, RejectCode::BuildRefused);
                assert_eq!(
                    r[0].path.as_deref(),
                    Some(&*dir.path().display().to_string())
                );
            }
            other => panic!(
                "an empty tree with a differing seal: {:?}",
                other.map(|s| s.same)
            ),
        }
    }
}
