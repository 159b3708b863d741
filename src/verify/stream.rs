//! Verification as a stream, for a packet checked against its own seal (plain `verify`, or
//! `--expect-tree`): the manifest, the seal record and a walk in manifest order
//! ([`SortedWalk`]) are read in step, one line and one directory at a time, and the files are
//! hashed on the pool a bounded window ahead ([`Runner::map_ordered`]). Memory grows with the
//! widest directory, the window and the problems found, never with the number of files
//! (except with `--against` a tree hash, whose report lists every file).
//!
//! It runs only where its answer is the whole check's answer, byte for byte: a manifest in
//! the one form packet writes (every line `<64 hex>  <path>`, sorted, no BOM or CRLF, final
//! newline) whose digest is its tree file's and every pin's, and a `SEAL.json` in the one
//! layout packet writes (see [`crate::seal::record::record_head`]) whose digest is the manifest's.
//! Each seal file is read once and hashed as it is read, so the digest proven is the digest of
//! the very bytes the lines were split from. Seal files within [`HOLD_LIMIT`] bytes (both
//! together, or the smaller one alone) are read whole first, so a held manifest that does not
//! hash to the tree (and, both held, a record that does not hash to the manifest's line for it)
//! stops the stream before any file is hashed. Any other seal file is streamed from its
//! descriptor a block at a time, and its digest is known only at its end: the merge's results
//! are kept only if it holds then. Anything else (a seal file that drifted, a foreign or
//! damaged manifest, a record another tool wrote, a streamed seal file that changed while read)
//! gives `None` before anything is reported, and the whole check, which diagnoses it, runs
//! instead. Files hashed before the stream was given up are hashed again then: the price of a
//! seal no packet wrote or one that drifted, paid only by such seals (for a streamed seal,
//! every file; reading a seal of a million files twice to learn this first cost about 6 % of
//! the passing check's time).

use super::run::{Run, is_seal_file, not_listed, not_recorded, unsealed};
use super::{Checked, VerifyOptions, hash_one};
use crate::digest::{self, Digest};
use crate::drift::pair_renamed;
use crate::manifest::{self, Entry, MANIFEST_LIMIT, MANIFEST_NAME, TREE_NAME};
use crate::parallel::Runner;
use crate::reject::{Reject, RejectCode};
use crate::seal::record::record_head;
use crate::seal::{LazyFile, SEAL_RECORD_LIMIT, SEAL_RECORD_NAME, SEAL_SCHEMA};
use crate::strict;
use crate::walk::{Found, SortedWalk};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::Seek;
use std::path::Path;

/// Bytes read from a seal file at a time, when it is streamed.
const READ_BUFFER: usize = 256 * 1024;

/// Most bytes of seal files held in memory between the passes, both files together (16 MiB:
/// the manifest and `SEAL.json` of a packet of about 100,000 binary files). Where both do not
/// fit, the smaller one is held if it fits alone; the rest are streamed twice, so what verify
/// adds to its memory for holding stays within this whatever the packet's size.
const HOLD_LIMIT: u64 = 16 * 1024 * 1024;

/// Which seal files to hold within `budget` bytes, given their sizes: both when their sum
/// fits, else the smaller one when it fits alone, else neither. `(manifest, record)`.
fn held_within(budget: u64, manifest: u64, record: u64) -> (bool, bool) {
    if manifest.saturating_add(record) <= budget {
        (true, true)
    } else if manifest.min(record) > budget {
        (false, false)
    } else {
        (manifest <= record, manifest > record)
    }
}

/// Verifies `dir` against its own seal as a stream, or `None` when the seal is not in the
/// form the stream reads (see the module doc); nothing has been reported then.
pub(crate) fn check(dir: &Path, opts: &VerifyOptions) -> Option<Checked> {
    check_holding(dir, opts, HOLD_LIMIT)
}

/// [`check`], holding in memory seal files of at most `hold` bytes in all ([`held_within`]).
fn check_holding(dir: &Path, opts: &VerifyOptions, hold: u64) -> Option<Checked> {
    let expected = expect(dir, opts, hold)?;
    let mut run = Run::new(dir, opts);
    run.tree.computed = Some(expected.tree.to_hex());
    run.tree.recorded = Some(expected.tree.to_hex());
    stream(&mut run, dir, opts, expected)?;
    Some(run.finish(Vec::new(), None))
}

/// What the seal files must hash to, and the files open to be read once.
struct Expected {
    /// The tree hash the tree file records and every pin names: the manifest's digest.
    tree: Digest,
    manifest: Lines,
    record: Lines,
}

/// What the stream must find (see the module doc), or `None` where it is already seen not to
/// hold: a tree file that drifted, a pin that names another tree, a held manifest that does
/// not hash to the tree, or (both held) a record that does not hash to the manifest's line for
/// `SEAL.json`. Streamed seal files are only opened here; their digests are settled at the end.
fn expect(dir: &Path, opts: &VerifyOptions, hold: u64) -> Option<Expected> {
    // The tree file and the pins first: they are a few bytes, and where they disagree the
    // seal files need not be read at all.
    let recorded = super::read_regular(&dir.join(TREE_NAME)).ok()?;
    let recorded = manifest::parse_tree_file(&recorded).ok()?;
    let tree = recorded.digest;
    if recorded.drift.is_some() || !opts.pins().iter().all(|p| p.matches(&tree)) {
        return None;
    }
    let (manifest, _) = super::load::open_seal_file(&dir.join(MANIFEST_NAME)).ok()?;
    let (record, _) = super::load::open_seal_file(&dir.join(SEAL_RECORD_NAME)).ok()?;
    let size = |f: &File| f.metadata().map(|m| m.len()).ok();
    let (hold_manifest, hold_record) = held_within(hold, size(&manifest)?, size(&record)?);
    let (manifest, record) = std::thread::scope(|s| {
        let record = s.spawn(|| Lines::open(record, SEAL_RECORD_LIMIT, hold_record).ok());
        let manifest = Lines::open(manifest, MANIFEST_LIMIT, hold_manifest).ok();
        (manifest, record.join().ok().flatten())
    });
    let (manifest, record) = (manifest?, record?);
    if let Some((bytes, digest)) = manifest.held() {
        if digest != tree {
            return None;
        }
        if let Some((_, held_record)) = record.held()
            && sealed_record(bytes)? != held_record
        {
            return None;
        }
    }
    Some(Expected {
        tree,
        manifest,
        record,
    })
}

/// The digest the manifest bytes `bytes` list for `SEAL.json` on the first line naming it (a
/// second is a duplicate, which the merge refuses); `None` when no line names it.
fn sealed_record(bytes: &[u8]) -> Option<Digest> {
    // From newline to newline by memchr, as `Lines::next` reads: this runs on every check of
    // a held seal, over 8 MB for 100,000 files.
    let mut rest = bytes;
    while let Some(n) = memchr::memchr(b'\n', rest) {
        let line = &rest[..n];
        if line.len() == 66 + SEAL_RECORD_NAME.len() && line.ends_with(SEAL_RECORD_NAME.as_bytes())
        {
            return manifest::standard_line(line).map(|e| e.digest);
        }
        rest = &rest[n + 1..];
    }
    None
}

/// The merge of manifest entries, seal records and the sorted walk, the hashing, and what
/// only the end can settle (renamed, missing and unsealed files). `None` abandons the stream,
/// before anything is reported: a line not in packet's own form, or a seal file that does not
/// hash as [`Expected`] says (the whole check then reads what is there now).
fn stream(run: &mut Run<'_>, dir: &Path, opts: &VerifyOptions, expected: Expected) -> Option<()> {
    let mut seal = Merged {
        manifest: ManifestLines::new(expected.manifest),
        records: RecordLines::new(expected.record).ok()?,
        entries: 0,
        sealed_record: None,
        next_record: None,
        walk: SortedWalk::new(dir, "", false),
        next_file: None,
        abandoned: false,
        not_recorded: Bucket::default(),
        not_listed: Bucket::default(),
        missing: Vec::new(),
        extra: Vec::new(),
    };
    seal.next_record = seal.take_record();
    seal.next_file = seal.walk.next();
    let runner = Runner::new(opts.jobs, 0, "verifying");
    runner.map_ordered(
        std::iter::from_fn(|| seal.next_on_disk()),
        |chunk: &[(Entry, Option<LazyFile>)]| {
            digest::Opener::ahead(dir, chunk.iter().map(|(e, _)| e.path.as_str()))
        },
        |opener, (entry, record): (Entry, Option<LazyFile>)| {
            let out = digest::joined(dir, &entry.path, |path| {
                hash_one(opener, path, &entry, &|| record.as_ref(), false)
            });
            runner.done(out.as_ref().map_or(0, |h| h.len));
            // Back to the thread that allocated them: freed there, they stay in its cache
            // and take no allocator lock the reading thread is holding.
            (entry, record, out)
        },
        |(entry, record, out)| {
            run.settle(&entry, record.as_ref().map(|r| r.bytes), None, out);
        },
    );
    drop(runner);
    // The walk and the seal record run on past the last entry.
    while let Some(f) = seal.next_file.take() {
        seal.extra_file(f);
        seal.next_file = seal.walk.next();
    }
    while let Some(r) = seal.next_record.take() {
        seal.unlisted(r);
        seal.next_record = seal.take_record();
    }
    // Every record is read by now, up to the end of the file: `take_record` gave `None`
    // only there, or abandoned the stream.
    if seal.abandoned {
        return None;
    }
    // Both seal files are read to their ends: what they hash to settles whether anything
    // the merge found stands.
    let (manifest, records) = (seal.manifest.finish(), seal.records.finish());
    if manifest != expected.tree || seal.sealed_record != Some(records) {
        return None;
    }
    run.counts.sealed_files = seal.entries;

    // Now the walk is over: what it refused, and what no sealed name was found for.
    let walk_rejects = seal.walk.rejects();
    run.scan_rejected = walk_rejects.iter().filter_map(|r| r.path.clone()).collect();
    for r in walk_rejects {
        run.file_reject(r);
    }
    let missing: Vec<&str> = seal.missing.iter().map(|(e, _)| e.path.as_str()).collect();
    let extra: Vec<&str> = seal.extra.iter().map(String::as_str).collect();
    let renamed = pair_renamed(&missing, &extra);
    let mut opener = digest::Opener::default();
    for (entry, record) in &seal.missing {
        match renamed.get(entry.path.as_str()) {
            Some(&(other, how)) => {
                let out = hash_one(
                    &mut opener,
                    &dir.join(other),
                    entry,
                    &|| record.as_ref(),
                    false,
                );
                run.settle(
                    entry,
                    record.as_ref().map(|r| r.bytes),
                    Some((other, how)),
                    out,
                );
            }
            None => {
                run.missing(entry, None);
            }
        }
    }
    // The renamed files' lengths are in `seal_rejects` now too.
    settle_seal_inconsistent(run, seal.not_recorded, seal.not_listed);
    // Per-file lines (`--against` a tree hash) in manifest order, as the whole check has them:
    // the missing and renamed came last.
    run.lines
        .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let renamed_to: std::collections::BTreeSet<&str> =
        renamed.values().map(|(other, _)| *other).collect();
    for f in &seal.extra {
        if !renamed_to.contains(f.as_str()) {
            run.file_reject(unsealed(run.place, f.clone()));
        }
    }
    Some(())
}

/// `SEAL_INCONSISTENT` in the order the whole check reports it: entries without a record,
/// records without an entry, then the lengths [`Run::settle`] found wrong (already in
/// `seal_rejects`, the only seal rejects made while streaming, put in manifest order), under
/// one per-code cap.
fn settle_seal_inconsistent(run: &mut Run<'_>, first: Bucket, second: Bucket) {
    let code = RejectCode::SealInconsistent;
    let mut lengths = std::mem::take(&mut run.seal_rejects);
    // Those of renamed files were made after the others: manifest order is path order.
    lengths.sort_by(|a, b| a.path.cmp(&b.path));
    let (_, lengths_left_out) = run.listed.remove(&code).unwrap_or_default();
    for bucket in [first, second] {
        for r in bucket.listed {
            run.seal_reject(r);
        }
        run.listed.entry(code).or_default().1 += bucket.left_out;
    }
    for r in lengths {
        run.seal_reject(r);
    }
    if lengths_left_out > 0 {
        run.listed.entry(code).or_default().1 += lengths_left_out;
    }
}

/// Rejects of one kind held until the end, the first [`super::REJECTS_LISTED_PER_CODE`]
/// kept and the rest counted.
#[derive(Default)]
struct Bucket {
    listed: Vec<Reject>,
    left_out: usize,
}

impl Bucket {
    fn push(&mut self, r: Reject) {
        if self.listed.len() < super::REJECTS_LISTED_PER_CODE {
            self.listed.push(r);
        } else {
            self.left_out += 1;
        }
    }
}

/// The three sorted streams and what their merge leaves for the end.
struct Merged {
    manifest: ManifestLines,
    records: RecordLines,
    /// Entries read so far.
    entries: usize,
    /// The digest the manifest lists for `SEAL.json` (the merge refuses a second line for it).
    sealed_record: Option<Digest>,
    next_record: Option<LazyFile>,
    walk: SortedWalk,
    next_file: Option<Found>,
    /// A seal line is not in packet's own form: the stream stops and is not used.
    abandoned: bool,
    not_recorded: Bucket,
    not_listed: Bucket,
    /// Sealed files not found under their name, with their records.
    missing: Vec<(Entry, Option<LazyFile>)>,
    /// Files found that no entry names (the seal files among them left out).
    extra: Vec<String>,
}

impl Merged {
    fn take_record(&mut self) -> Option<LazyFile> {
        if self.abandoned {
            return None;
        }
        self.records.next().unwrap_or_else(|()| {
            self.abandoned = true;
            None
        })
    }

    fn unlisted(&mut self, r: LazyFile) {
        self.not_listed.push(not_listed(r.path));
    }

    fn extra_file(&mut self, f: Found) {
        if !is_seal_file(&f.rel) {
            self.extra.push(f.rel);
        }
    }

    /// The next entry found on disk under its own name, with its record; everything passed
    /// on the way is sorted into the buckets.
    fn next_on_disk(&mut self) -> Option<(Entry, Option<LazyFile>)> {
        loop {
            if self.abandoned {
                return None;
            }
            let entry = match self.manifest.next() {
                Ok(Some(e)) => e,
                Ok(None) => return None,
                Err(()) => {
                    self.abandoned = true;
                    return None;
                }
            };
            self.entries += 1;
            if entry.path == SEAL_RECORD_NAME {
                self.sealed_record = Some(entry.digest);
            }
            let key = entry.path.as_bytes();
            while let Some(r) = self.next_record.take_if(|r| r.path.as_bytes() < key) {
                self.unlisted(r);
                self.next_record = self.take_record();
            }
            let record = match self.next_record.take_if(|r| r.path.as_bytes() == key) {
                Some(r) => {
                    self.next_record = self.take_record();
                    Some(r)
                }
                None => {
                    if entry.path != SEAL_RECORD_NAME {
                        self.not_recorded.push(not_recorded(entry.path.clone()));
                    }
                    None
                }
            };
            while let Some(f) = self.next_file.take_if(|f| f.rel.as_bytes() < key) {
                self.extra_file(f);
                self.next_file = self.walk.next();
            }
            if self
                .next_file
                .take_if(|f| f.rel.as_bytes() == key)
                .is_some()
            {
                self.next_file = self.walk.next();
                return Some((entry, record));
            }
            self.missing.push((entry, record));
        }
    }
}

/// A seal file read line by line, within its size limit: held in memory whole when
/// [`held_within`] says so, hashed once as it is read in; streamed from its descriptor
/// otherwise, each block hashed as it is read into the buffer the lines are then split from.
/// Either way what is hashed is what is parsed; lines are slices of that buffer, not copies.
enum Lines {
    Held {
        bytes: Vec<u8>,
        /// Where the next line starts.
        at: usize,
        digest: Digest,
    },
    Streamed {
        file: File,
        /// Read and hashed, not yet given out as lines: `buf[start..end]`.
        buf: Vec<u8>,
        start: usize,
        end: usize,
        /// The file's end was read.
        eof: bool,
        hasher: Sha256,
        read: u64,
        limit: u64,
    },
}

impl Lines {
    /// Reads `file` from its start: held whole when `hold`, else streamed; an error for a
    /// read error or (held) more bytes than `limit`.
    fn open(mut file: File, limit: u64, hold: bool) -> std::io::Result<Lines> {
        use std::io::Read;
        file.rewind()?;
        if !hold {
            return Ok(Lines::streamed(file, limit));
        }
        // Sized to the file at once: grown by doubling, the 8 MB manifest of 100,000 files was
        // copied and faulted in again at every step. A file that grew since its size was read
        // is still held whole, within its limit.
        let size = file.metadata()?.len().min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(size).map_or(0, |n| n + 1));
        (&mut file).take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        let digest = Digest(Sha256::digest(&bytes).into());
        Ok(Lines::Held {
            bytes,
            at: 0,
            digest,
        })
    }

    /// Streams `file` from where its offset is.
    fn streamed(file: File, limit: u64) -> Lines {
        Lines::streamed_in(file, limit, READ_BUFFER)
    }

    /// [`Lines::streamed`] with a first buffer of `buffer` bytes (tests use a few, so that
    /// lines cross blocks and outgrow the buffer).
    fn streamed_in(file: File, limit: u64, buffer: usize) -> Lines {
        Lines::Streamed {
            file,
            buf: vec![0; buffer.max(1)],
            start: 0,
            end: 0,
            eof: false,
            hasher: Sha256::new(),
            read: 0,
            limit,
        }
    }

    /// The next line without its newline, `None` at the end; `Err` for a read error, a last
    /// line with no newline, or more bytes than the limit.
    fn next(&mut self) -> Result<Option<&[u8]>, ()> {
        match self {
            Lines::Held { bytes, at, .. } => {
                let rest = &bytes[*at..];
                if rest.is_empty() {
                    return Ok(None);
                }
                let n = memchr::memchr(b'\n', rest).ok_or(())?;
                *at += n + 1;
                Ok(Some(&rest[..n]))
            }
            Lines::Streamed {
                file,
                buf,
                start,
                end,
                eof,
                hasher,
                read,
                limit,
            } => loop {
                if let Some(n) = memchr::memchr(b'\n', &buf[*start..*end]) {
                    let line = *start..*start + n;
                    *start += n + 1;
                    return Ok(Some(&buf[line]));
                }
                if *eof {
                    // Bytes after the last newline are a last line without one.
                    return if start == end { Ok(None) } else { Err(()) };
                }
                // The partial line moves to the front and the next block is read after it;
                // a line longer than the buffer grows it (within the limit, checked below).
                buf.copy_within(*start..*end, 0);
                *end -= *start;
                *start = 0;
                if *end == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
                let n = loop {
                    match std::io::Read::read(file, &mut buf[*end..]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(()),
                    }
                };
                // Never much more than the limit into memory, even from a file that grew after
                // its size was checked and holds no newline.
                *read += n as u64;
                if *read > *limit {
                    return Err(());
                }
                hasher.update(&buf[*end..*end + n]);
                *end += n;
                *eof = n == 0;
            },
        }
    }

    /// The digest of every byte read (of the whole file, when held).
    fn finish(self) -> Digest {
        match self {
            Lines::Held { digest, .. } => digest,
            Lines::Streamed { hasher, .. } => Digest(hasher.finalize().into()),
        }
    }

    /// The digest of what was read, with the file set to be read again from its start (only
    /// tests read a seal file twice).
    #[cfg(test)]
    fn again(&mut self) -> std::io::Result<Digest> {
        match self {
            Lines::Held { at, digest, .. } => {
                *at = 0;
                Ok(*digest)
            }
            Lines::Streamed {
                file,
                start,
                end,
                eof,
                hasher,
                read,
                ..
            } => {
                file.rewind()?;
                (*start, *end, *eof, *read) = (0, 0, false, 0);
                Ok(Digest(hasher.finalize_reset().into()))
            }
        }
    }

    /// A held file's bytes and digest (known as soon as it is read), `None` for a streamed one.
    fn held(&self) -> Option<(&[u8], Digest)> {
        match self {
            Lines::Held { bytes, digest, .. } => Some((bytes, *digest)),
            Lines::Streamed { .. } => None,
        }
    }
}

/// `HASH_MANIFEST.txt` read as entries, each line in the one form packet writes and sorted
/// after the one before; `Err` for any other line.
struct ManifestLines {
    lines: Lines,
    last: Vec<u8>,
}

impl ManifestLines {
    fn new(lines: Lines) -> ManifestLines {
        ManifestLines {
            lines,
            last: Vec::new(),
        }
    }

    fn next(&mut self) -> Result<Option<Entry>, ()> {
        let Some(line) = self.lines.next()? else {
            return Ok(None);
        };
        let entry = manifest::standard_line(line).ok_or(())?;
        if !self.last.is_empty() && self.last.as_slice() >= entry.path.as_bytes() {
            return Err(());
        }
        self.last.clear();
        self.last.extend_from_slice(entry.path.as_bytes());
        Ok(Some(entry))
    }

    fn finish(self) -> Digest {
        self.lines.finish()
    }
}

/// `SEAL.json` read as records, in the layout [`crate::seal::SealRecord::render`] writes:
/// the head line, one record per line (each but the last ending in `,`), then `]}`. Each
/// record is checked as [`crate::seal::Records::parse`] checks the whole, and sorted after
/// the one before; `Err` for anything else.
struct RecordLines {
    lines: Lines,
    /// The last record ended without a comma: only the tail may follow.
    last: bool,
    /// Records read so far, and the path of the last one.
    records: usize,
    last_path: String,
}

impl RecordLines {
    fn new(mut lines: Lines) -> std::io::Result<RecordLines> {
        let head = record_head(SEAL_SCHEMA);
        if lines.next() != Ok(Some(head.as_slice())) {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        Ok(RecordLines {
            lines,
            last: false,
            records: 0,
            last_path: String::new(),
        })
    }

    fn next(&mut self) -> Result<Option<LazyFile>, ()> {
        // A file that ends before its tail is no record.
        let line = self.lines.next()?.ok_or(())?;
        if line == b"]}" {
            // After a record that ended in a comma, the tail makes a trailing comma, which
            // JSON (and so the whole check) refuses.
            if self.records > 0 && !self.last {
                return Err(());
            }
            // Nothing may follow the tail.
            return match self.lines.next()? {
                None => Ok(None),
                Some(_) => Err(()),
            };
        }
        if self.last {
            return Err(());
        }
        let json = match line.strip_suffix(b",") {
            Some(json) => json,
            None => {
                self.last = true;
                line
            }
        };
        let record = record_of(json)?;
        if self.records > 0 && self.last_path.as_bytes() >= record.path.as_bytes() {
            return Err(());
        }
        self.records += 1;
        self.last_path.clear();
        self.last_path.push_str(&record.path);
        Ok(Some(record))
    }

    /// The digest of every byte read.
    fn finish(self) -> Digest {
        self.lines.finish()
    }
}

/// One record line (without its comma) checked as [`crate::seal::Records::parse`] checks
/// the whole record; `Err` where that would refuse it.
fn record_of(json: &[u8]) -> Result<LazyFile, ()> {
    let Some((path, bytes, profile)) = packet_line(json) else {
        return record_by_serde(json);
    };
    let profile = match profile {
        // The profile of every binary file, known valid: a copy of it spares the checks and
        // the parse below on each such record.
        Some(raw) if raw == BINARY_PROFILE.as_bytes() => Some(binary_profile()),
        // Path and length cannot nest, carry no escape and are valid as read: only the
        // profile is left to check.
        Some(raw) => {
            strict::check_text(raw).map_err(drop)?;
            if 1 + strict::max_depth(raw) + 2 > strict::MAX_DEPTH {
                return Err(());
            }
            let raw = std::str::from_utf8(raw).map_err(drop)?;
            Some(serde_json::value::RawValue::from_string(raw.to_owned()).map_err(drop)?)
        }
        None => None,
    };
    Ok(LazyFile::new(path.to_owned(), bytes, profile))
}

/// The profile packet renders for a binary file, byte for byte.
const BINARY_PROFILE: &str = r#"{"encoding":"binary"}"#;

/// [`BINARY_PROFILE`] as a raw value, parsed once per thread.
fn binary_profile() -> Box<serde_json::value::RawValue> {
    thread_local! {
        static RAW: Box<serde_json::value::RawValue> =
            serde_json::value::RawValue::from_string(BINARY_PROFILE.to_owned())
                .expect("the binary profile is JSON");
    }
    RAW.with(Clone::clone)
}

/// [`record_of`] by the general parser, for a line not in packet's own form.
fn record_by_serde(json: &[u8]) -> Result<LazyFile, ()> {
    // The whole record nests two deeper than one of its lines (its object and array).
    strict::check_text(json).map_err(drop)?;
    if strict::max_depth(json) + 2 > strict::MAX_DEPTH {
        return Err(());
    }
    serde_json::from_slice(json).map_err(drop)
}

/// A record line in the one form packet renders, `{"path":"P","bytes":N}` or
/// `{"path":"P","bytes":N,"profile":{...}}`, as its path, length and raw profile (not yet
/// checked); `None` for any other line, which serde_json then reads (so an escape in a path,
/// a `null` profile or another member order is read exactly as the whole check reads it).
/// It spares the general parser the line every sealed file has.
fn packet_line(json: &[u8]) -> Option<(&str, u64, Option<&[u8]>)> {
    let rest = json.strip_prefix(br#"{"path":""#)?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[end] == b'"').then_some(())?;
    let path = std::str::from_utf8(&rest[..end]).ok()?;
    // JSON strings hold no raw control character (RFC 8259 §7): serde_json refuses those.
    if path.bytes().any(|b| b < 0x20) {
        return None;
    }
    let rest = rest[end + 1..].strip_prefix(br#","bytes":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, rest) = rest.split_at(digits);
    // JSON has no leading zero (§6); an overflow is serde_json's to refuse.
    if number.is_empty() || (number.len() > 1 && number[0] == b'0') {
        return None;
    }
    let bytes = std::str::from_utf8(number).ok()?.parse().ok()?;
    if rest == b"}" {
        return Some((path, bytes, None));
    }
    let profile = rest.strip_prefix(br#","profile":"#)?.strip_suffix(b"}")?;
    profile
        .starts_with(b"{")
        .then_some((path, bytes, Some(profile)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::manifest::{Manifest, render_tree_file};
    use crate::seal::SealRecord;
    use crate::selftest;
    use crate::verify::{Against, check_as};
    use std::fs;

    /// The report with the stream allowed and without it, and whether the stream ran. The
    /// stream's answer is asserted to be the same whether the seal files are held in memory
    /// or streamed twice, so every case below covers both ways of reading them.
    fn both(dir: &Path, opts: &VerifyOptions) -> (String, String, bool) {
        let report = |c: Checked| serde_json::to_string_pretty(&c.report).expect("serializes");
        let held = check(dir, opts).map(report);
        let unheld = check_holding(dir, opts, 0).map(report);
        assert_eq!(
            held, unheld,
            "held and twice-streamed seal files read alike"
        );
        // A budget that fits only the smaller file: one held, the other streamed twice.
        let size = |name| fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        let smaller = size(MANIFEST_NAME).min(size(SEAL_RECORD_NAME));
        let one_held = check_holding(dir, opts, smaller).map(report);
        assert_eq!(
            held, one_held,
            "one file held, the other streamed, read alike"
        );
        let streamed = held.is_some();
        let json = |may_stream| {
            serde_json::to_string_pretty(&check_as(dir, opts, false, may_stream).report)
                .expect("a report serializes")
        };
        (json(true), json(false), streamed)
    }

    /// One pass over a seal file: its lines and the digest of what was read, or `Err`.
    type Pass = Result<(Vec<Vec<u8>>, Digest), ()>;

    /// Lines and digest of `bytes` read as [`Lines`] do: held, or streamed through a buffer
    /// of `buffer` bytes, twice (the second after [`Lines::again`]).
    fn read_lines(bytes: &[u8], limit: u64, hold: Option<usize>) -> Vec<Pass> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut lines = match hold {
            None => match Lines::open(file, limit, true) {
                Ok(lines) => lines,
                Err(_) => return vec![Err(()), Err(())],
            },
            Some(buffer) => Lines::streamed_in(file, limit, buffer),
        };
        let mut passes = Vec::new();
        for _ in 0..2 {
            let mut got = Vec::new();
            let pass = loop {
                match lines.next() {
                    Ok(Some(line)) => got.push(line.to_vec()),
                    Ok(None) => break Ok(got),
                    Err(()) => break Err(()),
                }
            };
            let digest = lines.again();
            passes.push(pass.and_then(|got| Ok((got, digest.map_err(drop)?))));
        }
        passes
    }

    proptest::proptest! {
        /// A streamed seal file gives the lines and the digest a held one gives, on both
        /// passes, whatever the buffer size (lines across blocks, lines longer than the
        /// buffer), and refuses what it refuses: a last line without a newline, more bytes
        /// than the limit.
        #[test]
        fn streamed_lines_are_the_held_lines(
            bytes in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', 0xE2, b'\r']), 0..200),
            buffer in 1usize..40,
            limit in 0u64..220,
        ) {
            let held = read_lines(&bytes, limit, None);
            proptest::prop_assert_eq!(read_lines(&bytes, limit, Some(buffer)), held.clone());
            let whole = bytes.is_empty() || bytes.ends_with(b"\n");
            if bytes.len() as u64 <= limit && whole {
                let expect: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let expect = expect[..expect.len().saturating_sub(1)].to_vec();
                proptest::prop_assert_eq!(&held[0], &Ok((expect, Digest::of(&bytes))));
            } else {
                proptest::prop_assert_eq!(&held[0], &Err(()));
            }
        }
    }

    #[test]
    fn the_hold_budget_covers_both_seal_files_together() {
        assert_eq!(held_within(100, 60, 40), (true, true));
        assert_eq!(held_within(100, 60, 41), (false, true), "the smaller alone");
        assert_eq!(held_within(100, 41, 60), (true, false), "the smaller alone");
        assert_eq!(held_within(100, 101, 101), (false, false));
        assert_eq!(held_within(0, 1, 1), (false, false));
        assert_eq!(
            held_within(u64::MAX - 1, u64::MAX, 1),
            (false, true),
            "no overflow"
        );
    }

    /// Rewrites `SEAL.json` with `f` and seals that record into the manifest and tree file,
    /// as a tool that rewrote the whole seal would: every digest agrees again.
    fn rewrite_record(dir: &Path, render: impl FnOnce(SealRecord) -> Vec<u8>) {
        let record: SealRecord =
            serde_json::from_slice(&fs::read(dir.join(SEAL_RECORD_NAME)).unwrap()).unwrap();
        let bytes = render(record);
        fs::write(dir.join(SEAL_RECORD_NAME), &bytes).unwrap();
        rewrite_manifest(dir, |m| {
            m.entries
                .iter_mut()
                .find(|e| e.path == SEAL_RECORD_NAME)
                .unwrap()
                .digest = Digest::of(&bytes);
            m.render()
        });
    }

    /// Rewrites the manifest with `f` and records its new digest in the tree file.
    fn rewrite_manifest(dir: &Path, f: impl FnOnce(&mut Manifest) -> Vec<u8>) {
        let (mut manifest, rejects) = Manifest::parse(&fs::read(dir.join(MANIFEST_NAME)).unwrap());
        assert!(rejects.is_empty());
        let bytes = f(&mut manifest);
        fs::write(dir.join(MANIFEST_NAME), &bytes).unwrap();
        fs::write(dir.join(TREE_NAME), render_tree_file(&Digest::of(&bytes))).unwrap();
    }

    const DOC: &str = "reference/001_d6b50f88b93da72f.txt";

    #[test]
    fn every_selftest_failure_reports_as_the_whole_check_does() {
        let tmp = tempfile::tempdir().unwrap();
        let wrong_pin: crate::pin::Pin = Digest::of(b"another").to_hex().parse().unwrap();
        let mut streamed = Vec::new();
        for (i, probe) in selftest::probes().into_iter().enumerate() {
            let dir = tmp.path().join(format!("p{i}"));
            selftest::sealed_fixtures(&dir).unwrap();
            (probe.mutate)(&dir)
                .unwrap_or_else(|e| panic!("probe {:?} not set up: {e}", probe.name));
            if probe.reseal {
                let opts = crate::seal::SealOptions {
                    reseal: true,
                    ..Default::default()
                };
                crate::seal::seal_dir(&dir, opts).unwrap();
            }
            let opts = VerifyOptions {
                expect_tree: probe.wrong_pin.then(|| wrong_pin.clone()),
                ..VerifyOptions::default()
            };
            let (stream, whole, used) = both(&dir, &opts);
            assert_eq!(stream, whole, "probe {:?}", probe.name);
            assert!(!stream.contains("\"PASS\""), "probe {:?}", probe.name);
            if used {
                streamed.push(probe.name);
            }
        }
        // The stream reads every probe that leaves the seal files as packet wrote them.
        for name in [
            "digest mismatch at equal length",
            "byte-length mismatch",
            "UTF-8 BOM added",
            "file name turned NFD",
            "file name case changed",
            "symlink in a packet",
        ] {
            assert!(
                streamed.contains(&name),
                "{name} not streamed: {streamed:?}"
            );
        }
        for name in ["tree hash mismatch", "manifest rewritten to hide an edit"] {
            assert!(!streamed.contains(&name), "{name} streamed");
        }
    }

    /// One case: a mutation of freshly sealed fixtures, and whether the stream reads it.
    type Case = (&'static str, fn(&Path), bool);

    #[test]
    fn seal_and_payload_damage_reports_as_the_whole_check_does() {
        let cases: &[Case] = &[
            ("untouched", |_| {}, true),
            (
                "record length off by one",
                |d| {
                    rewrite_record(d, |mut r| {
                        r.files.iter_mut().find(|f| f.path == DOC).unwrap().bytes += 1;
                        r.render()
                    })
                },
                true,
            ),
            (
                "a record dropped, one added",
                |d| {
                    rewrite_record(d, |mut r| {
                        r.files.retain(|f| f.path != DOC);
                        r.files.push(crate::seal::FileRecord {
                            path: "reference/zz-never-sealed.txt".into(),
                            bytes: 3,
                            profile: None,
                        });
                        r.files.push(crate::seal::FileRecord {
                            path: "~after-everything".into(),
                            bytes: 3,
                            profile: None,
                        });
                        r.files.sort_by(|a, b| a.path.cmp(&b.path));
                        r.render()
                    })
                },
                true,
            ),
            (
                "a record with a trailing comma",
                |d| {
                    rewrite_record(d, |r| {
                        let text = String::from_utf8(r.render()).unwrap();
                        let text = text.strip_suffix("\n]}\n").unwrap().to_string() + ",\n]}\n";
                        text.into_bytes()
                    })
                },
                false,
            ),
            (
                "lengths off for a renamed file and a later one",
                |d| {
                    rewrite_record(d, |mut r| {
                        for f in r.files.iter_mut() {
                            if f.path == "evidence.json" || f.path == "notes.md" {
                                f.bytes += 1;
                            }
                        }
                        r.render()
                    });
                    fs::rename(d.join("evidence.json"), d.join("Evidence.json")).unwrap();
                },
                true,
            ),
            (
                "records out of order",
                |d| {
                    rewrite_record(d, |mut r| {
                        r.files.swap(0, 1);
                        r.render()
                    })
                },
                false,
            ),
            (
                "record re-indented",
                |d| rewrite_record(d, |r| serde_json::to_vec_pretty(&r).unwrap()),
                false,
            ),
            (
                // The manifest still lists the record's old digest: a streamed record is
                // seen not to hash to it only at its end, after every file was hashed.
                "record edited, seal not renewed",
                |d| {
                    let path = d.join(SEAL_RECORD_NAME);
                    let text = String::from_utf8(fs::read(&path).unwrap()).unwrap();
                    fs::write(&path, text.replacen("\"bytes\":", "\"bytes\":1", 1)).unwrap();
                },
                false,
            ),
            (
                "manifest out of order",
                |d| {
                    rewrite_manifest(d, |m| {
                        let mut lines: Vec<String> = String::from_utf8(m.render())
                            .unwrap()
                            .lines()
                            .map(|l| format!("{l}\n"))
                            .collect();
                        lines.swap(0, 1);
                        lines.concat().into_bytes()
                    })
                },
                false,
            ),
            (
                "sealed file replaced by a symlink",
                |d| {
                    fs::remove_file(d.join(DOC)).unwrap();
                    std::os::unix::fs::symlink("000_f85dc3b6917de17c.txt", d.join(DOC)).unwrap();
                },
                true,
            ),
            (
                "sealed file replaced by a directory",
                |d| {
                    fs::remove_file(d.join("notes.md")).unwrap();
                    fs::create_dir(d.join("notes.md")).unwrap();
                    fs::write(d.join("notes.md/inside.md"), "x").unwrap();
                },
                true,
            ),
            (
                "many at once",
                |d| {
                    fs::remove_file(d.join("evidence.json")).unwrap();
                    fs::write(d.join("a-first.txt"), "new").unwrap();
                    fs::write(d.join("zz-last.txt"), "new").unwrap();
                    fs::write(d.join("reference/between.txt"), "new").unwrap();
                    let doc = fs::read(d.join(DOC)).unwrap();
                    fs::write(d.join(DOC), [b"\xEF\xBB\xBF".as_slice(), &doc].concat()).unwrap();
                    fs::rename(d.join("tiếng-việt.txt"), d.join("TIẾNG-VIỆT.txt")).unwrap();
                    fs::remove_file(d.join(SEAL_RECORD_NAME)).unwrap();
                },
                false,
            ),
            (
                "many at once, seal record kept",
                |d| {
                    fs::remove_file(d.join("evidence.json")).unwrap();
                    fs::write(d.join("a-first.txt"), "new").unwrap();
                    fs::write(d.join("zz-last.txt"), "new").unwrap();
                    fs::create_dir(d.join("zz-dir")).unwrap();
                    fs::write(d.join("zz-dir/deep.txt"), "new").unwrap();
                    let doc = fs::read(d.join(DOC)).unwrap();
                    fs::write(d.join(DOC), [b"\xEF\xBB\xBF".as_slice(), &doc].concat()).unwrap();
                    fs::rename(d.join("tiếng-việt.txt"), d.join("TIẾNG-VIỆT.txt")).unwrap();
                },
                true,
            ),
        ];
        let tmp = tempfile::tempdir().unwrap();
        for (i, (name, mutate, streams)) in cases.iter().enumerate() {
            let dir = tmp.path().join(format!("c{i}"));
            let tree = selftest::sealed_fixtures(&dir).unwrap();
            mutate(&dir);
            let (stream, whole, used) = both(&dir, &VerifyOptions::default());
            assert_eq!(stream, whole, "{name}");
            assert_eq!(used, *streams, "{name}: streamed");
            // Against the published tree hash the report lists every file, in manifest order.
            let against = VerifyOptions {
                against: Against::Tree(tree.to_hex().parse().unwrap()),
                ..VerifyOptions::default()
            };
            let (listed, listed_whole, _) = both(&dir, &against);
            assert_eq!(listed, listed_whole, "{name}, against its tree hash");
            // Another layout of a record with the same meaning is still a good seal.
            let good = ["untouched", "records out of order", "record re-indented"];
            assert_eq!(
                stream.contains("\"PASS\""),
                good.contains(name),
                "{name}: {stream}"
            );
            if *name == "untouched" {
                // A pin, given or as the seal: still the stream, still the whole's answer.
                let pin: crate::pin::Pin = tree.to_hex()[..16].parse().unwrap();
                for opts in [
                    VerifyOptions {
                        expect_tree: Some(pin.clone()),
                        ..VerifyOptions::default()
                    },
                    VerifyOptions {
                        against: Against::Tree(pin.clone()),
                        ..VerifyOptions::default()
                    },
                ] {
                    let (stream, whole, used) = both(&dir, &opts);
                    assert!(used && stream == whole && stream.contains("\"pinned\""));
                }
            }
        }
    }

    /// One change to a sealed tree, by index into its sorted file list.
    #[derive(Debug, Clone)]
    enum Change {
        Delete(usize),
        Add(String),
        Flip(usize, usize),
        Bom(usize),
        Upper(usize),
        Nfd(usize),
        RecordLength(usize),
        DirInstead(usize),
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        prop_oneof![
            any::<usize>().prop_map(Change::Delete),
            "[a-zé ]{1,8}(/[a-zé]{1,4})?".prop_map(Change::Add),
            (any::<usize>(), any::<usize>()).prop_map(|(i, at)| Change::Flip(i, at)),
            any::<usize>().prop_map(Change::Bom),
            any::<usize>().prop_map(Change::Upper),
            any::<usize>().prop_map(Change::Nfd),
            any::<usize>().prop_map(Change::RecordLength),
            any::<usize>().prop_map(Change::DirInstead),
        ]
    }

    fn apply(dir: &Path, change: &Change) {
        use unicode_normalization::UnicodeNormalization;
        let mut files: Vec<String> = crate::walk::scan(dir, "", false)
            .files
            .into_iter()
            .map(|f| f.rel)
            .filter(|r| !is_seal_file(r) && r != SEAL_RECORD_NAME)
            .collect();
        files.sort();
        if files.is_empty() {
            return;
        }
        let pick = |i: usize| files[i % files.len()].clone();
        match change {
            Change::Delete(i) => fs::remove_file(dir.join(pick(*i))).unwrap(),
            Change::Add(name) => {
                let path = dir.join(name);
                if fs::create_dir_all(path.parent().unwrap()).is_ok() && !path.exists() {
                    let _ = fs::write(path, b"added after sealing\n");
                }
            }
            Change::Flip(i, at) => {
                let path = dir.join(pick(*i));
                let mut bytes = fs::read(&path).unwrap();
                if bytes.is_empty() {
                    bytes.push(b'x');
                } else {
                    let at = at % bytes.len();
                    bytes[at] ^= 0x20;
                }
                fs::write(path, bytes).unwrap();
            }
            Change::Bom(i) => {
                let path = dir.join(pick(*i));
                let bytes = fs::read(&path).unwrap();
                fs::write(path, [b"\xEF\xBB\xBF".as_slice(), &bytes].concat()).unwrap();
            }
            Change::Upper(i) | Change::Nfd(i) => {
                let rel = pick(*i);
                let (parent, name) = rel.rsplit_once('/').unwrap_or(("", &rel));
                let name: String = match change {
                    Change::Upper(_) => name.to_uppercase(),
                    _ => name.nfd().collect(),
                };
                let to = dir.join(parent).join(name);
                if !to.exists() {
                    fs::rename(dir.join(&rel), to).unwrap();
                }
            }
            Change::RecordLength(i) => {
                let rel = pick(*i);
                rewrite_record(dir, |mut r| {
                    if let Some(f) = r.files.iter_mut().find(|f| f.path == rel) {
                        f.bytes += 1;
                    }
                    r.render()
                })
            }
            Change::DirInstead(i) => {
                let path = dir.join(pick(*i));
                fs::remove_file(&path).unwrap();
                fs::create_dir(&path).unwrap();
                fs::write(path.join("inside"), b"x").unwrap();
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Whatever happens to a sealed tree, the stream's report is the whole check's.
        #[test]
        fn any_damage_reports_as_the_whole_check_does(
            files in proptest::collection::btree_map(
                "[a-zé]{1,6}(/[a-zé ]{1,6})?",
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                1..8,
            ),
            changes in proptest::collection::vec(change(), 0..4),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("p");
            for (rel, bytes) in &files {
                let path = dir.join(rel);
                if fs::create_dir_all(path.parent().unwrap()).is_err() || path.is_dir() {
                    continue;
                }
                let _ = fs::write(path, bytes);
            }
            let sealed = crate::seal::seal_dir(&dir, crate::seal::SealOptions::default());
            proptest::prop_assume!(sealed.is_ok());
            let tree = sealed.unwrap().tree_hash;
            for c in &changes {
                apply(&dir, c);
            }
            for opts in [
                VerifyOptions::default(),
                VerifyOptions {
                    against: Against::Tree(tree.to_hex().parse().unwrap()),
                    ..VerifyOptions::default()
                },
            ] {
                let (stream, whole, used) = both(&dir, &opts);
                proptest::prop_assert_eq!(stream, whole, "{:?}", changes);
                // Payload damage leaves the seal as packet wrote it: the stream must read it,
                // or the comparison above compared the whole check with itself.
                let seal_untouched = !changes.iter().any(|c| matches!(c, Change::RecordLength(_)));
                if seal_untouched && opts.against == Against::Itself {
                    proptest::prop_assert!(used, "not streamed: {:?}", changes);
                }
            }
        }
    }

    #[test]
    fn a_record_line_reads_alike_by_the_fast_form_and_by_serde() {
        let n = crate::strict::MAX_DEPTH;
        let deep = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let rendered = crate::seal::record::render_record_line("d/a.bin", 4096, None);
        let lines: Vec<String> = vec![
            String::from_utf8(rendered).unwrap(),
            r#"{"path":"d/a.bin","bytes":4096,"profile":{"encoding":"binary"}}"#.into(),
            r#"{"path":"Tài liệu — ghi chú.md","bytes":0,"profile":{"encoding":"utf-8","x":[1,{"y":2}]}}"#.into(),
            r#"{"path":"a\"b","bytes":1}"#.into(),
            r#"{"path":"a\u00e9","bytes":1}"#.into(),
            "{\"path\":\"a\tb\",\"bytes\":1}".into(),
            r#"{"path":"a","bytes":01}"#.into(),
            r#"{"path":"a","bytes":99999999999999999999}"#.into(),
            r#"{"path":"a","bytes":-1}"#.into(),
            r#"{"path":"a","bytes":1.0}"#.into(),
            r#"{"path":"a","bytes":1,"profile":null}"#.into(),
            r#"{"path":"a","bytes":1,"profile":{}}}"#.into(),
            r#"{"path":"a","bytes":1,"profile":{"a":1} }"#.into(),
            r#"{"path":"a","bytes":1,"profile":{"a":"\ud800"}}"#.into(),
            r#"{"path":"a","bytes":1,"profile":{"a":"\ud83d\ude00"}}"#.into(),
            format!(r#"{{"path":"a","bytes":1,"profile":{{"a":{deep}}}}}"#),
            r#"{"path":"a","bytes":1,"profile":{"a":1},"more":2}"#.into(),
            r#"{"path":"a","bytes":1,"profile":{"a":}}"#.into(),
            r#"{"path":"a","bytes":1,"bytes":2}"#.into(),
            r#"{"bytes":1,"path":"a"}"#.into(),
        ];
        let mut fast_form = 0;
        for line in &lines {
            let json = line.as_bytes();
            fast_form += usize::from(packet_line(json).is_some());
            let read = |r: Result<LazyFile, ()>| r.map(|f| (f.path.clone(), f.bytes, f.profile()));
            assert_eq!(read(record_of(json)), read(record_by_serde(json)), "{line}");
        }
        // The cases that matter went through the fast form, not around it.
        assert!(fast_form >= 10, "{fast_form}");
        assert!(record_of(lines[1].as_bytes()).is_ok());
        assert!(record_of(lines[13].as_bytes()).is_err());
        assert!(record_of(lines[15].as_bytes()).is_err());
        // The constant is what packet renders for a binary file.
        assert_eq!(
            serde_json::to_string(&crate::seal::profile::Profile::Binary).unwrap(),
            BINARY_PROFILE
        );
    }
}
