//! SHA-256 digests (FIPS 180-4): the 32-byte value, its 64-lowercase-hex text form (the form
//! `sha256sum` prints), and hashing of files in bounded memory.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The first read of every file, in bytes: a file shorter than this is read whole by it, with
/// no separate stat (a third of the small-file time when measured).
pub const FIRST_READ: usize = 64 * 1024;

/// Files of at least this many bytes are mapped rather than read (faster, and no copy).
pub const MAP_MIN: u64 = 4 * 1024 * 1024;

/// Large files are hashed through maps of at most this many bytes, unmapped as they go, so
/// resident memory stays bounded whatever the file size.
pub const MAP_WINDOW: u64 = 16 * 1024 * 1024;

/// A SHA-256 digest. Displays and serializes as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex digits, the only form the seal format writes.
    /// Returns `None` for any other length, an uppercase digit or a non-hex character.
    pub fn from_hex(text: &str) -> Option<Digest> {
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Digest(out))
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

thread_local! {
    /// Each worker thread's first-read buffer, reused from file to file.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each worker thread's buffer for files below `MAP_MIN` (at most 4 MiB).
    static MEDIUM: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hashes the regular file at `path` (not following a symlink) with one open, and when it
/// holds at most `keep_limit` bytes calls `inspect` with its whole content and digest.
///
/// A file shorter than [`FIRST_READ`] is read whole by the first read, with no stat. A larger
/// one is stat'ed through its open descriptor: below [`MAP_MIN`] it is read whole into the
/// thread's reused buffer; from [`MAP_MIN`] it is mapped (whole when `inspect` needs it,
/// otherwise in [`MAP_WINDOW`] pieces, unmapped as they go). Memory per thread is bounded by
/// `max(keep_limit, MAP_WINDOW)`, whatever the file size.
pub fn read_with<R>(
    path: &Path,
    keep_limit: u64,
    inspect: impl FnOnce(&[u8], &Digest) -> R,
) -> io::Result<Inspected<R>> {
    // The walk already saw a regular file; O_NOFOLLOW and O_NONBLOCK keep a swapped-in link
    // or fifo from being followed or hanging, and the stat below guards the large-file paths.
    let mut file = open_nofollow(path, false)?;
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() != FIRST_READ {
            buf.resize(FIRST_READ, 0);
        }
        // A regular file's read comes back short only at its end: one read sees a small
        // file whole.
        let n = loop {
            match file.read(&mut buf[..]) {
                Ok(k) => break k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n < FIRST_READ {
            return Ok(whole(&buf[..n], keep_limit, inspect));
        }
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let size = meta.len();
        if size < MAP_MIN {
            // Medium files go into a second per-thread buffer whose pages stay mapped from
            // file to file (a fresh allocation would fault every page in again).
            return MEDIUM.with(|cell| {
                let mut all = cell.borrow_mut();
                all.clear();
                all.extend_from_slice(&buf[..n]);
                drop(buf);
                file.read_to_end(&mut all)?;
                Ok(whole(&all, keep_limit, inspect))
            });
        }
        drop(buf);
        map_file(&file, size, keep_limit, inspect)
    })
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

fn map_file<R>(
    file: &File,
    size: u64,
    keep_limit: u64,
    inspect: impl FnOnce(&[u8], &Digest) -> R,
) -> io::Result<Inspected<R>> {
    use memmap2::{Advice, MmapOptions};
    // The map is read-only and private to this call; a file truncated under it by another
    // process is the one case it cannot guard against (SIGBUS), as with any mapped read.
    // MAP_POPULATE faults a window's pages in with one call, not one fault per page.
    if size <= keep_limit {
        let map = unsafe { MmapOptions::new().len(size as usize).populate().map(file)? };
        let _ = map.advise(Advice::Sequential);
        return Ok(whole(&map, keep_limit, inspect));
    }
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    while offset < size {
        let len = (size - offset).min(MAP_WINDOW);
        let map = unsafe {
            MmapOptions::new()
                .offset(offset)
                .len(len as usize)
                .populate()
                .map(file)?
        };
        let _ = map.advise(Advice::Sequential);
        hasher.update(&map[..]);
        offset += len;
    }
    Ok(Inspected {
        digest: Digest(hasher.finalize().into()),
        len: size,
        seen: None,
    })
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

/// The first `n` bytes of the regular file at `path` (fewer if it is shorter).
pub fn read_head(path: &Path, n: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    open_regular(path, false)?.take(n).read_to_end(&mut out)?;
    Ok(out)
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
    }

    #[test]
    fn every_read_path_gives_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        // Small (one read), medium (read whole), mapped whole, mapped in windows.
        for size in [
            0usize,
            10,
            FIRST_READ - 1,
            FIRST_READ,
            FIRST_READ + 1,
            3 << 20,
            (MAP_MIN as usize) + 7,
            (MAP_WINDOW as usize) * 2 + 3,
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
}
