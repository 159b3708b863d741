//! SHA-256 digests (FIPS 180-4): the 32-byte value, its 64-lowercase-hex text form (the form
//! `sha256sum` prints), and hashing of files in bounded memory.

use super::batched::Ahead;
use super::mapped::{self, Mapped};
use super::prefetch;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The first read of every file, in bytes: a file shorter than this is read whole by it, with
/// no separate stat (a third of the small-file time when measured).
pub const FIRST_READ: usize = super::batched::FIRST_READ;

/// Files above the keep limit are hashed in reads of this many bytes through one per-thread
/// buffer, so memory stays bounded whatever the file size (and the chunk stays in cache
/// between the copy and the hash).
pub const CHUNK: usize = 1024 * 1024;

/// Files below this many bytes are read into a per-thread buffer reused from file to file;
/// larger ones (up to the keep limit) into a buffer freed after use. 16 MiB, the keep limit
/// build and verify use (`PROFILE_LIMIT`, `DIAGNOSE_LIMIT`), so that no file they keep whole
/// takes a fresh allocation: glibc keeps freed large blocks resident in its thread arenas,
/// and with a 4 MiB bound peak memory was 43 MiB on a tree of files up to 10 MiB and up to
/// 64.5 MiB verifying the Rust sysroot, against 30 and 49 MiB with this one, in the same time.
pub const REUSE_MAX: u64 = 16 * 1024 * 1024;

/// A SHA-256 digest. Displays and serializes as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The SHA-256 of `bytes` (FIPS 180-4). Large inputs are hashed slice by slice with the
    /// next pages touched ahead ([`prefetch::in_slices`]): a file read whole into a buffer is
    /// mostly out of cache by the time it is hashed.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut hasher = Sha256::new();
        prefetch::in_slices(bytes, prefetch::SLICE, |part| hasher.update(part));
        Digest(hasher.finalize().into())
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex digits, the only form the seal format writes.
    /// Returns `None` for any other length, an uppercase digit or a non-hex character.
    pub fn from_hex(text: &str) -> Option<Digest> {
        let hex = text.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        // A table and one check at the end: a manifest line is parsed on every verify, and
        // branching per digit cost more than hashing a small file's manifest line.
        const INVALID: u8 = 0x10;
        const NIBBLE: [u8; 256] = {
            let mut t = [INVALID; 256];
            let mut i = 0;
            while i < 10 {
                t[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                t[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            t
        };
        let mut out = [0u8; 32];
        let mut bad = 0u8;
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
            bad |= hi | lo;
            *o = hi << 4 | (lo & 0x0f);
        }
        (bad & INVALID == 0).then_some(Digest(out))
    }

    /// The form documents cite: the first and last `n` hex digits around an ellipsis.
    pub fn abbreviated(&self, n: usize) -> String {
        let hex = self.to_hex();
        let n = n.min(32);
        format!("{}…{}", &hex[..n], &hex[64 - n..])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

/// A file as hashed by [`read_with`]: digest, length, and what the inspector returned.
pub struct Inspected<R> {
    /// SHA-256 of every byte.
    pub digest: Digest,
    /// Length in bytes.
    pub len: u64,
    /// The inspector's result, when the file was at most the `keep_limit` given.
    pub seen: Option<R>,
}

/// The error inside an [`io::Error`] from [`read_with`] when the file's length or
/// modification time on its open handle differed after the read from before it, or when pages
/// of a mapped window vanished while it was read (see [`mapped`]): another process wrote,
/// truncated or extended it meanwhile (or, for a vanished page, the storage failed), so the
/// digest is of no one state.
#[derive(Debug)]
pub struct ChangedWhileRead {
    /// Length (bytes) and modification time (ns since the epoch) before the read.
    pub before: (u64, i128),
    /// The same after the read.
    pub after: (u64, i128),
    /// Bytes read; for a mapped read cut short, the offset of the first page that vanished.
    pub read: u64,
}

impl fmt::Display for ChangedWhileRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.after.0 != self.before.0 {
            format!(
                "its length went from {} to {} bytes",
                self.before.0, self.after.0
            )
        } else if self.after.1 != self.before.1 {
            "its modification time moved".to_string()
        } else {
            // Same stamps, yet pages gone: truncated and regrown, or an I/O error under the
            // mapping.
            "its pages vanished while mapped, though its length and time are as before".to_string()
        };
        write!(
            f,
            "the file changed while it was read ({what}; {} bytes read): its digest is of no one state",
            self.read
        )
    }
}

impl std::error::Error for ChangedWhileRead {}

impl ChangedWhileRead {
    /// The [`ChangedWhileRead`] inside `e`, if that is what `e` is.
    pub fn of(e: &io::Error) -> Option<&ChangedWhileRead> {
        e.get_ref()?.downcast_ref()
    }
}

thread_local! {
    /// Each worker thread's first-read buffer, reused from file to file.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each worker thread's buffer for files below `REUSE_MAX`, and the chunk buffer of
    /// larger ones.
    static MEDIUM: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each worker thread's path buffer for [`joined`].
    static JOINED: std::cell::RefCell<std::path::PathBuf> =
        const { std::cell::RefCell::new(std::path::PathBuf::new()) };
}

/// Calls `f` with `base.join(rel)` built in a buffer this thread reuses, so a worker going
/// through many files allocates no path per file (as `join` would); a nested call builds its
/// own.
pub fn joined<R>(base: &Path, rel: &str, f: impl FnOnce(&Path) -> R) -> R {
    JOINED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut path) => {
            let buf = path.as_mut_os_string();
            buf.clear();
            buf.push(base.as_os_str());
            path.push(rel);
            f(&path)
        }
        Err(_) => f(&base.join(rel)),
    })
}

/// Hashes the regular file at `path` (not following a symlink) with one open, and when it
/// holds at most `keep_limit` bytes calls `inspect` with its whole content and digest.
///
/// A file shorter than [`FIRST_READ`] is read whole by the first read, with no stat. A larger
/// one is stat'ed through its open descriptor before and after it is read: below
/// [`REUSE_MAX`] it is read whole into the thread's reused buffer, up to `keep_limit` whole
/// into a fresh one, and above that in slices, each passed to `observe` as well: slices of
/// [`prefetch::SLICE`] bytes from read-only mappings of [`mapped::WINDOW`] bytes (no copy out of
/// the page cache; a truncation while mapped is caught, not a fault), or of [`CHUNK`] bytes
/// from reads where mapping is refused. Memory per thread is bounded by the first-read buffer, the
/// reused buffer (up to `max(REUSE_MAX, CHUNK)`), one fresh buffer of at most `keep_limit`,
/// and one mapped window (its pages count in the resident set), whatever the file size.
///
/// Errors: the open's and read's, `InvalidInput`
/// for a file that is not regular, and [`ChangedWhileRead`] (kind `Other`) when the length or
/// modification time on the handle differs after the read from before it.
pub fn read_with<R>(
    path: &Path,
    keep_limit: u64,
    inspect: impl FnOnce(&[u8], &Digest) -> R,
) -> io::Result<Inspected<R>> {
    read_observed(
        &mut Opener::default(),
        path,
        keep_limit,
        inspect,
        &mut |_| {},
    )
}

/// Opens files for [`read_observed`] through a descriptor of their directory, kept from one
/// file to the next while they share it: the kernel then resolves one name per file, not
/// every component of its path (on 100,000 small files, path lookup was a fifth of the
/// time). One opener serves one worker over one run; it holds at most one directory open.
///
/// An opener made by [`Opener::ahead`] knows the files it will read, in order, and reads the
/// small ones in batches (see [`super::batched`]).
#[derive(Default)]
pub struct Opener {
    #[cfg(unix)]
    dir: Option<(std::path::PathBuf, std::os::fd::OwnedFd)>,
    ahead: Ahead,
}

impl Opener {
    /// An opener that will be asked for `base.join(rel)` for every `rel`, in this order
    /// (others may be asked for too, and are opened one by one).
    pub fn ahead<'r>(base: &Path, rels: impl IntoIterator<Item = &'r str>) -> Opener {
        Opener {
            ahead: Ahead::new(base, rels),
            ..Opener::default()
        }
    }

    /// Opens `path` read-only, refusing a symlink as its last component and never blocking
    /// on a fifo (see [`open_regular`]).
    pub fn open(&mut self, path: &Path) -> io::Result<File> {
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return open_nofollow(path, false);
            };
            if parent.as_os_str().is_empty() {
                return open_nofollow(path, false);
            }
            let fresh = !matches!(&self.dir, Some((p, _)) if p == parent);
            if fresh {
                self.dir = None;
                let fd = rustix::fs::open(
                    parent,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.dir = Some((parent.to_path_buf(), fd));
            }
            let Some((_, dir)) = &self.dir else {
                return open_nofollow(path, false);
            };
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(File::from(fd))
        }
        #[cfg(not(unix))]
        {
            open_nofollow(path, false)
        }
    }
}

/// [`read_with`], also passing every chunk of a file above `keep_limit` to `observe`, in
/// order (what cannot be inspected whole can still be scanned as it streams past).
pub fn read_observed<R>(
    opener: &mut Opener,
    path: &Path,
    keep_limit: u64,
    inspect: impl FnOnce(&[u8], &Digest) -> R,
    observe: &mut dyn FnMut(&[u8]),
) -> io::Result<Inspected<R>> {
    let mut inspect = Some(inspect);
    let mut batched = None;
    if opener.ahead.take(path, &mut |bytes| {
        let inspect = inspect.take().expect("a batched file is taken once");
        let seen = whole(bytes, keep_limit, inspect);
        if seen.seen.is_none() {
            observe(bytes);
        }
        batched = Some(seen);
    }) {
        return Ok(batched.expect("taken files were inspected"));
    }
    let inspect = inspect.expect("a file not taken is still to be inspected");
    // The walk already saw a regular file; O_NOFOLLOW and O_NONBLOCK keep a swapped-in link
    // or fifo from being followed or hanging, and the stat below guards the larger reads.
    let mut file = opener.open(path)?;
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() != FIRST_READ {
            buf.resize(FIRST_READ, 0);
        }
        // A regular file's read comes back short only at its end: one read sees a small
        // file whole.
        let n = read_retrying(&mut file, &mut buf[..])?;
        if n < FIRST_READ {
            let seen = whole(&buf[..n], keep_limit, inspect);
            if seen.seen.is_none() {
                observe(&buf[..n]);
            }
            return Ok(seen);
        }
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let before = stamp(&meta);
        let size = meta.len();
        if size <= keep_limit {
            let read = |all: &mut Vec<u8>| -> io::Result<Inspected<R>> {
                all.clear();
                all.extend_from_slice(&buf[..n]);
                (&file)
                    .take((size + 1).saturating_sub(n as u64))
                    .read_to_end(all)?;
                unchanged(&file, before, all.len() as u64)?;
                Ok(whole(all, keep_limit, inspect))
            };
            // Medium files go into a per-thread buffer whose pages stay mapped from file to
            // file (a fresh allocation would fault every page in again).
            if size < REUSE_MAX {
                return MEDIUM.with(|cell| read(&mut cell.borrow_mut()));
            }
            return read(&mut Vec::with_capacity(size as usize + 1));
        }
        let mut hasher = Sha256::new();
        hasher.update(&buf[..n]);
        observe(&buf[..n]);
        let mut len = n as u64;
        drop(buf);
        // The rest through mappings, which spare the copy a read makes; where they are
        // refused, or the first read ended off a page boundary, through reads.
        let mapped = if mapped::can_start_at(len) {
            let mut feed = |bytes: &[u8]| {
                hasher.update(bytes);
                observe(bytes);
            };
            mapped::each_slice(&file, len, size, prefetch::SLICE, &mut feed)?
        } else {
            Mapped::Refused
        };
        match mapped {
            Mapped::Read {
                truncated_at: Some(at),
            } => {
                return Err(io::Error::other(ChangedWhileRead {
                    before,
                    after: stamp(&file.metadata()?),
                    read: at,
                }));
            }
            // Bytes appended after the stat are past the mapping: the stamp taken after it
            // still sees the longer file.
            Mapped::Read { truncated_at: None } => len = size,
            Mapped::Refused => {
                MEDIUM.with(|cell| {
                    let mut chunk = cell.borrow_mut();
                    if chunk.len() < CHUNK {
                        chunk.resize(CHUNK, 0);
                    }
                    loop {
                        let k = read_retrying(&mut file, &mut chunk[..CHUNK])?;
                        if k == 0 {
                            break;
                        }
                        hasher.update(&chunk[..k]);
                        observe(&chunk[..k]);
                        len += k as u64;
                    }
                    Ok::<_, io::Error>(())
                })?;
            }
        }
        unchanged(&file, before, len)?;
        Ok(Inspected {
            digest: Digest(hasher.finalize().into()),
            len,
            seen: None,
        })
    })
}

fn read_retrying(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Ok(k) => return Ok(k),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Length and modification time (ns) of a file, to tell whether it changed.
fn stamp(meta: &std::fs::Metadata) -> (u64, i128) {
    #[cfg(unix)]
    let mtime = {
        use std::os::unix::fs::MetadataExt;
        meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
    };
    #[cfg(not(unix))]
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    (meta.len(), mtime)
}

/// Fails with [`ChangedWhileRead`] when the file's stamp differs from `before`, or when the
/// bytes read differ from the length it had throughout.
fn unchanged(file: &File, before: (u64, i128), read: u64) -> io::Result<()> {
    let after = stamp(&file.metadata()?);
    if after != before || read != before.0 {
        return Err(io::Error::other(ChangedWhileRead {
            before,
            after,
            read,
        }));
    }
    Ok(())
}

fn whole<R>(
    bytes: &[u8],
    keep_limit: u64,
    inspect: impl FnOnce(&[u8], &Digest) -> R,
) -> Inspected<R> {
    let digest = Digest::of(bytes);
    let len = bytes.len() as u64;
    Inspected {
        digest,
        len,
        seen: (len <= keep_limit).then(|| inspect(bytes, &digest)),
    }
}

/// Opens `path` for reading only if it is a regular file. With `follow` false the last
/// component may not be a symlink (`O_NOFOLLOW`): a file swapped for a link between a scan and
/// the read is refused, not followed. `O_NONBLOCK` keeps a file swapped for a fifo from
/// hanging the open. Errors of kind `InvalidInput` name a file that is not regular.
pub fn open_regular(path: &Path, follow: bool) -> io::Result<File> {
    let file = open_nofollow(path, follow)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

fn open_nofollow(path: &Path, follow: bool) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        opts.custom_flags(nofollow | libc::O_NONBLOCK);
    }
    opts.open(path)
}

/// The whole content of the regular file at `path` (symlinks followed), or `None` when it
/// holds more than `limit` bytes; never reads more than `limit + 1` bytes.
pub fn read_regular_bounded(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    open_regular(path, true)?
        .take(limit + 1)
        .read_to_end(&mut out)?;
    Ok((out.len() as u64 <= limit).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_paths_are_join_s_byte_for_byte_from_call_to_call() {
        for (base, rel) in [
            ("/tmp/p", "a/b.txt"),
            ("/tmp/p/", "c"),
            ("", "d/e"),
            ("rel", "x"),
        ] {
            let want = Path::new(base).join(rel);
            assert_eq!(joined(Path::new(base), rel, |p| p.to_path_buf()), want);
            // A nested call may not clobber the outer path.
            joined(Path::new(base), rel, |outer| {
                let inner = joined(Path::new("/other"), "z", |p| p.to_path_buf());
                assert_eq!(inner, Path::new("/other/z"));
                assert_eq!(outer, want);
            });
        }
    }

    #[test]
    fn known_answer_fips_180_4() {
        // "abc" from FIPS 180-4, appendix B.1.
        assert_eq!(
            Digest::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip_and_strictness() {
        let d = Digest::of(b"");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), None);
        assert_eq!(Digest::from_hex(&d.to_hex()[1..]), None);
        assert_eq!(Digest::from_hex(&format!("{}g", &d.to_hex()[1..])), None);
        // Every byte, in a high and a low nibble's place: only 0-9 and a-f are digits.
        let hex = d.to_hex().into_bytes();
        for b in 0..=255u8 {
            for at in [0, 63] {
                let mut h = hex.clone();
                h[at] = b;
                let Ok(text) = std::str::from_utf8(&h) else {
                    continue;
                };
                let digit = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                assert_eq!(
                    Digest::from_hex(text).is_some(),
                    digit,
                    "byte {b:#x} at {at}"
                );
                if digit {
                    assert_eq!(Digest::from_hex(text).unwrap().to_hex().as_bytes(), &h[..]);
                }
            }
        }
    }

    #[test]
    fn every_read_path_gives_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        // Small (one read), medium (reused buffer), large (fresh buffer), chunked.
        for size in [
            0usize,
            10,
            FIRST_READ - 1,
            FIRST_READ,
            FIRST_READ + 1,
            3 << 20,
            (REUSE_MAX as usize) + 7,
            CHUNK * 3 + 3,
            mapped::WINDOW * 2 + 4097,
        ] {
            let path = dir.path().join(format!("f{size}"));
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let expected = Digest::of(&data);
            let kept = read_with(&path, u64::MAX, |b, d| (b.to_vec(), *d)).unwrap();
            assert_eq!((kept.digest, kept.len), (expected, size as u64), "{size}");
            let (bytes, d) = kept.seen.unwrap();
            assert_eq!((bytes.len(), d), (size, expected));
            let streamed = read_with(&path, 0, |_, _| ()).unwrap();
            assert_eq!(streamed.digest, expected, "{size}");
            assert_eq!(streamed.seen.is_some(), size == 0);
        }
    }

    #[test]
    fn a_batched_read_is_the_same_read() {
        // Through an opener that reads ahead (small files in batches) and one that does not:
        // the same digest, length, inspected bytes and observed bytes, for either keep limit.
        let dir = tempfile::tempdir().unwrap();
        let sizes = [0usize, 1, 4096, FIRST_READ - 1, FIRST_READ, 3 << 20];
        let rels: Vec<String> = sizes.iter().map(|size| format!("f{size}")).collect();
        let paths: Vec<_> = rels.iter().map(|r| dir.path().join(r)).collect();
        for (path, &size) in paths.iter().zip(&sizes) {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
            std::fs::write(path, &data).unwrap();
        }
        for keep in [u64::MAX, 0] {
            let mut plain = Opener::default();
            let mut ahead = Opener::ahead(dir.path(), rels.iter().map(String::as_str));
            for path in &paths {
                let read = |opener: &mut Opener| {
                    let mut observed = Vec::new();
                    let r = read_observed(opener, path, keep, |b, d| (b.to_vec(), *d), &mut |c| {
                        observed.extend_from_slice(c)
                    })
                    .unwrap();
                    (r.digest, r.len, r.seen, observed)
                };
                let (want, got) = (read(&mut plain), read(&mut ahead));
                assert!(want == got, "{} keep {keep}", path.display());
                assert_eq!(want.0, Digest::of(&std::fs::read(path).unwrap()));
            }
        }
    }

    #[test]
    fn special_files_and_links_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // The walk classifies files before they are read; a fifo swapped in after it must
        // not hang the read (O_NONBLOCK: no writer reads as empty), and a whole-file read
        // of it is refused.
        let swapped = read_with(&fifo, 10, |_, _| ()).unwrap();
        assert_eq!(swapped.len, 0);
        assert_eq!(
            open_regular(&fifo, false).err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
        assert!(read_regular_bounded(&fifo, 10).is_err());
        let target = dir.path().join("t");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(
            read_with(&link, 10, |_, _| ()).is_err(),
            "O_NOFOLLOW refuses a symlink"
        );
        assert_eq!(
            read_regular_bounded(&link, 10).unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(read_regular_bounded(&target, 0).unwrap(), None);
        assert!(read_regular_bounded(dir.path(), 10).is_err());
    }

    #[test]
    fn abbreviation_is_prefix_and_suffix() {
        let d = Digest::of(b"abc");
        assert_eq!(d.abbreviated(8), "ba7816bf…f20015ad");
    }

    #[test]
    fn a_file_truncated_while_read_is_an_error_not_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinks");
        // The observer runs between two reads of the open file: another process truncating
        // it then is exactly the attack. Call 0 sees the first read, before anything is
        // mapped; call 1 sees the first mapped slice, so the cut lands inside a mapping.
        for at_call in [0, 1] {
            std::fs::write(&path, vec![7u8; CHUNK * 6]).unwrap();
            let mut calls = 0;
            let err = read_observed(&mut Opener::default(), &path, 0, |_, _| (), &mut |_| {
                if calls == at_call {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .unwrap()
                        .set_len(10)
                        .unwrap();
                }
                calls += 1;
            })
            .err()
            .expect("a truncated read is refused");
            let changed = ChangedWhileRead::of(&err).expect("named as a change during the read");
            assert_eq!(changed.before.0, (CHUNK * 6) as u64, "call {at_call}");
            assert_eq!(changed.after.0, 10, "call {at_call}");
            assert!(changed.read < (CHUNK * 6) as u64, "call {at_call}");
            assert!(changed.to_string().contains("changed while it was read"));
        }
    }

    #[test]
    fn a_file_grown_while_mapped_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grows");
        std::fs::write(&path, vec![3u8; CHUNK * 6]).unwrap();
        let mut first = true;
        let err = read_observed(&mut Opener::default(), &path, 0, |_, _| (), &mut |_| {
            if first {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(b"appended").unwrap();
                first = false;
            }
        })
        .err()
        .expect("bytes appended past the mapped length are not silently left out");
        let changed = ChangedWhileRead::of(&err).unwrap();
        assert_eq!(changed.after.0, (CHUNK * 6 + 8) as u64);
    }

    #[test]
    fn a_file_rewritten_in_place_at_the_same_length_is_caught_by_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rewritten");
        std::fs::write(&path, vec![1u8; CHUNK * 2]).unwrap();
        let mut first = true;
        let err = read_observed(&mut Opener::default(), &path, 0, |_, _| (), &mut |_| {
            if first {
                use std::io::{Seek, Write};
                let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.seek(io::SeekFrom::Start(5)).unwrap();
                f.write_all(b"edit").unwrap();
                // Coarse-timestamp file systems: make sure the time moves.
                f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
                    .unwrap();
                first = false;
            }
        })
        .err()
        .expect("an in-place edit during the read is refused");
        assert!(ChangedWhileRead::of(&err).is_some());
    }
}
