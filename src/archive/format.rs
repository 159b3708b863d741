//! One-file packets: the deterministic tar form of a packet (optionally gzip-compressed), and
//! reading an archive as a stream of checked entries in which every hostile construction
//! (escaping or rewritten paths, links, special files, shadowing and colliding names, size and
//! count bombs) becomes a reject code.
//!
//! The format is POSIX ustar (POSIX.1-1988 as extended by POSIX.1-2001, `pax` in the Open Group
//! Base Specifications): 512-byte headers with octal fields, name/prefix path split, two zero
//! blocks at the end. Gzip is RFC 1952. [`pack`](crate::pack) writes archives; verifying and
//! unpacking them live in [`crate::archive::check_archive`] and [`crate::unpack`].

use crate::drift::fold_name;
use crate::manifest::{MANIFEST_NAME, TREE_NAME, check_safe};
use crate::reject::Reject;
use crate::reject::RejectCode;
use crate::seal::SEAL_RECORD_NAME;
use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Default for [`Limits::max_entry_bytes`]: 16 GiB.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 16 << 30;

/// Default for [`Limits::max_entries`]: one million headers.
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// Largest PAX extended header read, in bytes; real ones are a few hundred.
pub const PAX_HEADER_LIMIT: u64 = 1 << 20;

/// Zero padding accepted after the end-of-archive marker, in bytes (GNU tar pads to 10 KiB
/// records; anything else after the marker is data a lenient reader would still extract).
pub const TRAILING_ZERO_LIMIT: u64 = 16 << 20;

/// The tar block size, in bytes (POSIX ustar).
pub const BLOCK: u64 = 512;

/// The seal files, first in every packed archive (in this order) so a single streaming pass
/// knows the seal before it meets the payload.
pub const SEAL_FIRST: [&str; 3] = [MANIFEST_NAME, TREE_NAME, SEAL_RECORD_NAME];

/// Bounds on what reading an archive accepts. Both are checked from headers, before any data
/// is read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest entry, in bytes (`ARCHIVE_ENTRY_TOO_LARGE` above it).
    pub max_entry_bytes: u64,
    /// Most headers, counting directories and extension headers (`ARCHIVE_TOO_MANY_ENTRIES`
    /// above it).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// How an archive's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// A tar inside gzip (RFC 1952).
    Gzip,
}

impl Compression {
    /// From an output name: `.tar` is plain, `.tar.gz` and `.tgz` are gzip; anything else is
    /// `None` (the caller refuses to guess).
    pub fn from_name(path: &Path) -> Option<Compression> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Compression::Gzip)
        } else if name.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

/// Splits `name` into the ustar `prefix` and `name` fields (at most 155 and 100 bytes, joined
/// by a `/` that is not stored), choosing the shortest prefix that fits. `None` when no split
/// fits: such a path needs a PAX or GNU extension, which packed archives never use.
pub fn ustar_split(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    name.match_indices('/')
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .find(|(p, n)| p.len() <= 155 && n.len() <= 100 && !n.is_empty() && !p.is_empty())
}

/// The header of one packed entry: ustar, the path split into prefix and name (a directory's
/// with a trailing `/`, as GNU tar writes it), mode 0644 for files and 0755 for directories,
/// uid and gid 0 with empty user and group names, device numbers 0, modification time
/// `mtime` (seconds since the Unix epoch). No field depends on the machine or the clock.
/// Errors when the path does not fit ustar (see [`ustar_split`]).
pub fn ustar_header(
    path: &str,
    is_dir: bool,
    size: u64,
    mtime: u64,
) -> Result<tar::Header, String> {
    let stored = if is_dir {
        format!("{path}/")
    } else {
        path.to_string()
    };
    let (prefix, name) = ustar_split(&stored).ok_or_else(|| {
        format!(
            "path of {} bytes does not fit a ustar header (name 100, prefix 155, split at a `/`)",
            stored.len()
        )
    })?;
    let mut h = tar::Header::new_ustar();
    {
        let u = h.as_ustar_mut().expect("a new ustar header is ustar");
        u.name[..name.len()].copy_from_slice(name.as_bytes());
        u.prefix[..prefix.len()].copy_from_slice(prefix.as_bytes());
    }
    h.set_entry_type(if is_dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if is_dir { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(if is_dir { 0 } else { size });
    h.set_mtime(mtime);
    h.set_device_major(0).map_err(|e| e.to_string())?;
    h.set_device_minor(0).map_err(|e| e.to_string())?;
    h.set_cksum();
    Ok(h)
}

/// One regular file as it streams out of an archive: its checked path, its size from the
/// header, and its bytes (exactly `size` of them, read once).
pub struct FileEntry<'r> {
    /// Packet-relative path, `/`-separated, checked by [`check_safe`] (an NFD name is read,
    /// then diagnosed as a renamed or colliding file, as in a directory).
    pub path: &'r str,
    /// Size in bytes, from the header (within [`Limits::max_entry_bytes`]).
    pub size: u64,
    /// The entry's bytes.
    pub data: &'r mut dyn Read,
}

/// What a pass over an archive found besides the files it handed out.
#[derive(Debug, Default)]
pub struct Streamed {
    /// Every hostile or malformed entry, in archive order.
    pub rejects: Vec<Reject>,
    /// Headers read (files, directories, extension headers).
    pub entries: u64,
    /// Regular files handed out.
    pub files: u64,
    /// Whether the archive was gzip-compressed.
    pub gzip: bool,
    /// False when reading stopped early (malformed data, too many entries): the files handed
    /// out are then not the whole archive.
    pub complete: bool,
}

/// Reads the archive at `archive` (plain or gzip, told by its first bytes) in one pass and
/// calls `on_file` for every regular file whose header passed every check, in archive order.
/// Directories are checked but not handed out; they are implied by the files' paths.
///
/// Hostile entries are skipped and reported: `ARCHIVE_PATH_UNSAFE`, `ARCHIVE_LINK`,
/// `ARCHIVE_SPECIAL_ENTRY`, `ARCHIVE_DUPLICATE_PATH`, `ARCHIVE_PATH_COLLISION`,
/// `ARCHIVE_PATH_REWRITE`, `ARCHIVE_ENTRY_TOO_LARGE`; `ARCHIVE_TOO_MANY_ENTRIES` and
/// `ARCHIVE_MALFORMED` (bad checksum, truncation, bad gzip, data after the end marker) stop
/// the pass. Errors only when `on_file` fails for a reason other than reading the archive
/// (e.g. the disk it writes to is full).
pub fn stream(
    archive: &Path,
    limits: &Limits,
    on_file: &mut dyn FnMut(FileEntry<'_>) -> io::Result<()>,
) -> io::Result<Streamed> {
    let mut out = Streamed::default();
    let label = archive.display().to_string();
    let file = match crate::digest::open_regular(archive, true) {
        Ok(f) => f,
        Err(e) => {
            out.rejects.push(
                Reject::new(
                    RejectCode::ArchiveMalformed,
                    format!("cannot open the archive: {e}"),
                )
                .at_path(label),
            );
            return Ok(out);
        }
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, file);
    let head = match buffered.fill_buf() {
        Ok(h) => h,
        Err(e) => {
            out.rejects
                .push(malformed(&label, format!("cannot read: {e}")));
            return Ok(out);
        }
    };
    if head.is_empty() {
        out.rejects
            .push(malformed(&label, "empty file: not a tar archive".into()));
        return Ok(out);
    }
    out.gzip = head.starts_with(&[0x1f, 0x8b]);
    // A multi-member decoder reads what `gzip -d` reads: a second member appended to the
    // first must not hide entries that GNU tar would extract.
    let reader: Box<dyn Read> = if out.gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let failed = Cell::new(false);
    let mut tar = tar::Archive::new(Tracked {
        inner: reader,
        failed: &failed,
    });
    let mut names = Names::default();
    let mut stopped = false;
    {
        let entries = match tar.entries() {
            Ok(e) => e.raw(true),
            Err(e) => {
                out.rejects.push(malformed(&label, e.to_string()));
                return Ok(out);
            }
        };
        for item in entries {
            let mut entry = match item {
                Ok(e) => e,
                Err(e) => {
                    out.rejects
                        .push(malformed(&label, format!("entry {}: {e}", out.entries + 1)));
                    stopped = true;
                    break;
                }
            };
            out.entries += 1;
            if out.entries > limits.max_entries {
                out.rejects.push(
                    Reject::new(
                        RejectCode::ArchiveTooManyEntries,
                        format!(
                            "more than {} entries (the --max-entries limit); reading stopped",
                            limits.max_entries
                        ),
                    )
                    .at_path(label.clone()),
                );
                stopped = true;
                break;
            }
            let index = out.entries;
            if let Err(why) = known_format(entry.header()) {
                out.rejects
                    .push(malformed(&label, format!("entry {index}: {why}")));
                stopped = true;
                break;
            }
            let raw_bytes = entry.path_bytes().into_owned();
            let utf8 = std::str::from_utf8(&raw_bytes).is_ok();
            let raw_path = String::from_utf8_lossy(&raw_bytes).into_owned();
            let kind = entry.header().entry_type();
            let size = match entry.header().entry_size() {
                Ok(s) => s,
                Err(e) => {
                    out.rejects
                        .push(malformed(&label, format!("entry {index}: {e}")));
                    stopped = true;
                    break;
                }
            };
            let reject = |code, why: String| {
                Reject::new(code, format!("entry {index}: {why}")).at_path(raw_path.clone())
            };
            use tar::EntryType as T;
            let is_dir = match kind {
                T::Regular => false,
                T::Directory => true,
                T::GNULongName | T::GNULongLink => {
                    out.rejects.push(reject(
                        RejectCode::ArchivePathRewrite,
                        "GNU long-name header: it replaces the next entry's path with one the ustar header does not show".into(),
                    ));
                    continue;
                }
                T::XHeader | T::XGlobalHeader => {
                    match pax_rewrites(&mut entry, size) {
                        Ok(None) => {}
                        Ok(Some(key)) => out.rejects.push(reject(
                            RejectCode::ArchivePathRewrite,
                            format!("PAX extended header sets `{key}`: it rewrites what the ustar header says"),
                        )),
                        Err(why) => {
                            if failed.get() {
                                out.rejects.push(malformed(&label, format!("entry {index}: {why}")));
                                stopped = true;
                                break;
                            }
                            out.rejects.push(reject(RejectCode::ArchiveMalformed, why));
                        }
                    }
                    continue;
                }
                T::Symlink | T::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let what = if kind == T::Symlink {
                        "symlink"
                    } else {
                        "hard link"
                    };
                    out.rejects.push(reject(
                        RejectCode::ArchiveLink,
                        format!(
                            "a {what} to {target:?}: packets hold bytes, not links that can point anywhere"
                        ),
                    ));
                    continue;
                }
                T::Char | T::Block | T::Fifo => {
                    let what = match kind {
                        T::Char => "character device",
                        T::Block => "block device",
                        _ => "fifo",
                    };
                    out.rejects.push(reject(
                        RejectCode::ArchiveSpecialEntry,
                        format!("a {what}: only regular files and directories are unpacked"),
                    ));
                    continue;
                }
                other => {
                    out.rejects.push(reject(
                        RejectCode::ArchiveSpecialEntry,
                        format!(
                            "entry type {:?} ({other:?}) is neither a regular file nor a directory",
                            other.as_byte() as char
                        ),
                    ));
                    continue;
                }
            };
            let path = match entry_path(&raw_path, is_dir, utf8) {
                Ok(Some(p)) => p,
                Ok(None) => continue, // the archive's root directory, `./`
                Err(why) => {
                    out.rejects
                        .push(reject(RejectCode::ArchivePathUnsafe, why.to_string()));
                    continue;
                }
            };
            if is_dir && size > 0 {
                // Readers differ on whether a directory's data is skipped or read as content.
                out.rejects.push(reject(
                    RejectCode::ArchiveMalformed,
                    format!("a directory entry with {size} bytes of data"),
                ));
                continue;
            }
            if !is_dir && size > limits.max_entry_bytes {
                out.rejects.push(reject(
                    RejectCode::ArchiveEntryTooLarge,
                    format!(
                        "{size} bytes, above the {}-byte --max-entry-bytes limit",
                        limits.max_entry_bytes
                    ),
                ));
                continue;
            }
            if let Err((code, why)) = names.claim(&path, is_dir) {
                out.rejects.push(reject(code, why));
                continue;
            }
            if is_dir {
                continue;
            }
            let mut exact = Exact {
                inner: &mut entry,
                left: size,
                failed: &failed,
            };
            match on_file(FileEntry {
                path: &path,
                size,
                data: &mut exact,
            }) {
                Ok(()) => out.files += 1,
                Err(e) if failed.get() => {
                    out.rejects.push(malformed(
                        &label,
                        format!("entry {index} ({path:?}) cannot be read: {e}"),
                    ));
                    stopped = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    if !stopped {
        // Past the end marker: only zero padding, and reading to the end checks the gzip
        // trailer (CRC-32 and length) too.
        let mut rest = tar.into_inner();
        if let Err(why) = zero_tail(&mut rest) {
            out.rejects.push(malformed(&label, why));
            stopped = true;
        }
    }
    out.complete = !stopped;
    Ok(out)
}

fn malformed(label: &str, why: String) -> Reject {
    Reject::new(RejectCode::ArchiveMalformed, why).at_path(label.to_string())
}

/// Accepts the header formats whose path every reader agrees on: POSIX ustar (magic
/// `ustar\0`, version `00`: the path is `prefix/name`), GNU (`ustar ` and ` \0`: `name` only)
/// and v7 (no magic: `name` only). A `ustar\0` magic with another version is read as ustar by
/// GNU tar but not by every library, so the same bytes would name two different paths.
fn known_format(header: &tar::Header) -> Result<(), String> {
    let raw = header.as_bytes();
    let (magic, version) = (&raw[257..263], &raw[263..265]);
    let ok = (magic == b"ustar\0" && version == b"00")
        || (magic == b"ustar " && version == b" \0")
        || raw[257..265].iter().all(|&b| b == 0);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unknown header format (magic {:?}, version {:?}): readers would disagree on its path",
            String::from_utf8_lossy(magic),
            String::from_utf8_lossy(version)
        ))
    }
}

/// The packet path an entry stands for: a leading `./` (as `tar -C dir .` writes) is dropped,
/// and a directory's trailing `/`. `None` for the root directory itself.
fn entry_path(raw: &str, is_dir: bool, utf8: bool) -> Result<Option<String>, &'static str> {
    if !utf8 {
        return Err("name is not valid UTF-8");
    }
    let mut p = raw.strip_prefix("./").unwrap_or(raw);
    if is_dir {
        p = p.strip_suffix('/').unwrap_or(p);
        if p.is_empty() || p == "." {
            return Ok(None);
        }
    }
    if raw.starts_with('/') {
        return Err("absolute path: it would be written outside the directory");
    }
    check_safe(p)?;
    Ok(Some(p.to_string()))
}

/// The first PAX key that changes what an entry is (its path, link target or size, or GNU
/// sparse maps), if any; readers that honour it and readers that do not would see different
/// archives.
fn pax_rewrites(
    entry: &mut tar::Entry<'_, impl Read>,
    size: u64,
) -> Result<Option<String>, String> {
    if size > PAX_HEADER_LIMIT {
        return Err(format!(
            "PAX extended header of {size} bytes, above the {PAX_HEADER_LIMIT}-byte limit"
        ));
    }
    let Some(exts) = entry.pax_extensions().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    for ext in exts {
        let ext = ext.map_err(|e| format!("unreadable PAX record: {e}"))?;
        let key = ext.key().map_err(|_| "PAX key is not UTF-8".to_string())?;
        if matches!(key, "path" | "linkpath" | "size") || key.starts_with("GNU.sparse") {
            return Ok(Some(key.to_string()));
        }
    }
    Ok(None)
}

/// Reads `rest` to its end, requiring zero bytes only, at most [`TRAILING_ZERO_LIMIT`].
fn zero_tail(rest: &mut impl Read) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = 0u64;
    loop {
        let n = match rest.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("after the last entry: {e}")),
        };
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(
                "data after the end-of-archive marker (hidden entries a lenient reader would extract)"
                    .into(),
            );
        }
        seen += n as u64;
        if seen > TRAILING_ZERO_LIMIT {
            return Err(format!(
                "more than {TRAILING_ZERO_LIMIT} bytes of padding after the end-of-archive marker"
            ));
        }
    }
}

/// A reader that remembers whether it failed, so an error while a caller consumes an entry
/// can be told apart from the caller's own (its disk, say).
struct Tracked<'f, R> {
    inner: R,
    failed: &'f Cell<bool>,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

/// An entry's data that ends early is the archive's failure (truncation), not the reader's.
struct Exact<'e, 'f, R> {
    inner: &'e mut R,
    left: u64,
    failed: &'f Cell<bool>,
}

impl<R: Read> Read for Exact<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.failed.set(true);
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("truncated: {} bytes of the entry missing", self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What a name in the archive already is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    /// A directory with its own entry.
    Dir,
    /// A directory implied by a path under it.
    ImpliedDir,
}

/// The names an archive has claimed, exactly and folded (NFC, lowercase): the namespace of
/// the directory it unpacks into, on any file system.
#[derive(Default)]
pub(crate) struct Names {
    exact: HashMap<String, Kind>,
    folded: HashMap<String, String>,
}

impl Names {
    /// Claims `path` (and its parent directories) or says which rule it breaks.
    pub(crate) fn claim(&mut self, path: &str, is_dir: bool) -> Result<(), (RejectCode, String)> {
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        for dir in &parents {
            match self.exact.get(*dir) {
                Some(Kind::File) => {
                    return Err((
                        RejectCode::ArchivePathCollision,
                        format!(
                            "{dir:?} is a file in this archive, and this entry needs it to be a directory"
                        ),
                    ));
                }
                Some(_) => {}
                None => self.check_fold(dir)?,
            }
        }
        match (self.exact.get(path), is_dir) {
            (Some(Kind::File), false) => {
                return Err((
                    RejectCode::ArchiveDuplicatePath,
                    "a second entry with this path: extracting it would shadow the first".into(),
                ));
            }
            (Some(Kind::Dir), true) => {
                return Err((
                    RejectCode::ArchiveDuplicatePath,
                    "a second directory entry with this path".into(),
                ));
            }
            (Some(Kind::File), true) | (Some(Kind::Dir | Kind::ImpliedDir), false) => {
                return Err((
                    RejectCode::ArchivePathCollision,
                    "this path is both a file and a directory in this archive".into(),
                ));
            }
            (Some(Kind::ImpliedDir), true) | (None, _) => {}
        }
        if !self.exact.contains_key(path) {
            self.check_fold(path)?;
        }
        for dir in parents {
            if let Slot::Vacant(v) = self.exact.entry(dir.to_string()) {
                v.insert(Kind::ImpliedDir);
                self.folded.insert(fold_name(dir), dir.to_string());
            }
        }
        self.exact.insert(
            path.to_string(),
            if is_dir { Kind::Dir } else { Kind::File },
        );
        self.folded.insert(fold_name(path), path.to_string());
        Ok(())
    }

    fn check_fold(&self, path: &str) -> Result<(), (RejectCode, String)> {
        match self.folded.get(&fold_name(path)) {
            Some(other) if other != path => Err((
                RejectCode::ArchivePathCollision,
                format!(
                    "collides with {other:?}: the same name on a case-insensitive or normalization-insensitive file system (macOS, Windows)"
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_checked_and_normalized() {
        assert_eq!(
            entry_path("./a/b.txt", false, true),
            Ok(Some("a/b.txt".into()))
        );
        assert_eq!(entry_path("sub/", true, true), Ok(Some("sub".into())));
        assert_eq!(entry_path("./", true, true), Ok(None));
        assert!(entry_path("/etc/passwd", false, true).is_err());
        assert!(entry_path("a/../../x", false, true).is_err());
        assert!(entry_path("../x", false, true).is_err());
        assert!(entry_path("a//b", false, true).is_err());
        assert!(entry_path("a/", false, true).is_err());
        assert!(entry_path("bad", false, false).is_err());
    }

    #[test]
    fn names_refuse_duplicates_collisions_and_file_dir_clashes() {
        let mut n = Names::default();
        assert!(n.claim("sub", true).is_ok());
        assert!(n.claim("sub/a.txt", false).is_ok());
        let code = |r: Result<(), (RejectCode, String)>| r.unwrap_err().0;
        assert_eq!(
            code(n.claim("sub/a.txt", false)),
            RejectCode::ArchiveDuplicatePath
        );
        assert_eq!(
            code(n.claim("sub/A.txt", false)),
            RejectCode::ArchivePathCollision
        );
        assert_eq!(
            code(n.claim("SUB/b.txt", false)),
            RejectCode::ArchivePathCollision
        );
        assert_eq!(
            code(n.claim("sub/a.txt/x", false)),
            RejectCode::ArchivePathCollision
        );
        assert_eq!(
            code(n.claim("sub", false)),
            RejectCode::ArchivePathCollision
        );
        assert_eq!(code(n.claim("sub", true)), RejectCode::ArchiveDuplicatePath);
        // NFC and NFD spellings of one name.
        assert!(n.claim("caf\u{e9}.txt", false).is_ok());
        assert_eq!(
            code(n.claim("cafe\u{301}.txt", false)),
            RejectCode::ArchivePathCollision
        );
        // A directory entry after files under it is fine, once.
        assert!(n.claim("deep/x", false).is_ok());
        assert!(n.claim("deep", true).is_ok());
        assert!(n.claim("sub/b.txt", false).is_ok());
    }

    #[test]
    fn compression_follows_the_name() {
        assert_eq!(
            Compression::from_name(Path::new("p.tar")),
            Some(Compression::None)
        );
        assert_eq!(
            Compression::from_name(Path::new("p.TAR.GZ")),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_name(Path::new("p.tgz")),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_name(Path::new("p.zip")), None);
    }
}
