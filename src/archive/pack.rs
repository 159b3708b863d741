//! `packet pack`: a packet that verifies, written as one byte-reproducible archive (`.tar`, or
//! `.tar.gz`). The same packet packs to the same bytes on any machine: the seal files first
//! (`HASH_MANIFEST.txt`, `packet_tree.sha256`, `SEAL.json`), so a streaming verifier meets the
//! seal before the payload, then every other file and the directories that hold them, sorted
//! by path bytes; headers as [`archive::ustar_header`] writes them; gzip with no name, time 0
//! and OS byte 255 (unknown).

use crate::archive::{self, Compression, SEAL_FIRST};
use crate::digest::{self, Digest};
use crate::manifest::{self, MANIFEST_NAME, Manifest, TREE_NAME};
use crate::reject::RejectCode;
use crate::report::{Reject, Report, Verdict, mask_pass, plural, shown};
use crate::verify::{self, VerifyOptions};
use serde::Serialize;
use sha2::Digest as _;
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Options for [`pack`].
#[derive(Clone, Debug)]
pub struct PackOptions {
    /// How the packet is verified first (a pin, threads).
    pub verify: VerifyOptions,
    /// The modification time every header carries, in seconds since the Unix epoch: 0, or
    /// `SOURCE_DATE_EPOCH` (see [`source_date_epoch`]).
    pub mtime: u64,
    /// Plain tar or gzip.
    pub compression: Compression,
}

/// The outcome of [`pack`] (schema `packet.pack-report/1`).
#[derive(Clone, Debug, Serialize)]
pub struct PackReport {
    /// Always `packet.pack-report/1`.
    pub schema: String,
    /// The packet directory.
    pub packet: String,
    /// The archive written (or not).
    pub archive: String,
    /// PASS only when the archive was written.
    pub verdict: Verdict,
    /// The packet's tree hash (what `packet verify ARCHIVE --expect-tree` checks).
    pub tree_hash: Option<String>,
    /// SHA-256 of the archive file's bytes, to pin the file itself.
    pub archive_sha256: Option<String>,
    /// Size of the archive file, in bytes.
    pub archive_bytes: Option<u64>,
    /// Regular files packed (payload and seal files).
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    /// Why nothing was written; for a packet that does not verify, verify's rejects.
    pub rejects: Vec<Reject>,
    /// The packet's verification, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Report>,
}

impl PackReport {
    /// True when the archive was written.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// Text: on success one `PACKED` line; otherwise the packet's verification (if it
    /// failed) or the rejects, then a `FAIL pack` line. A failure never shows a PASS token.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if self.passed() {
            out.push_str(&format!(
                "PACKED {} -> {}: {} files with the seal files, {} bytes; tree {}; archive sha256 {} ({} bytes)\n",
                shown(&self.packet),
                shown(&self.archive),
                self.files,
                self.bytes,
                self.tree_hash.as_deref().unwrap_or(""),
                self.archive_sha256.as_deref().unwrap_or(""),
                self.archive_bytes.unwrap_or(0),
            ));
            return out;
        }
        match &self.verify {
            Some(v) => out.push_str(&v.render_text()),
            None => {
                for r in &self.rejects {
                    out.push_str(&r.render());
                    out.push('\n');
                }
            }
        }
        out.push_str(&format!(
            "FAIL pack {}: {}; nothing written\n",
            shown(&self.packet),
            plural(self.rejects.len(), "reject")
        ));
        mask_pass(&out, false)
    }

    /// One JSON document with a final newline.
    pub fn to_json(&self) -> String {
        crate::report::json_document(self, self.passed())
    }
}

/// The modification time packed headers carry: `SOURCE_DATE_EPOCH` when set (a whole number
/// of seconds, per reproducible-builds.org), else 0. Errors when it is set but not such a
/// number.
pub fn source_date_epoch() -> Result<u64, String> {
    epoch_from(std::env::var_os("SOURCE_DATE_EPOCH").as_deref())
}

fn epoch_from(value: Option<&std::ffi::OsStr>) -> Result<u64, String> {
    let Some(value) = value else {
        return Ok(0);
    };
    let text = value.to_string_lossy();
    if text.is_empty() {
        return Ok(0);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "SOURCE_DATE_EPOCH={text:?} is not a whole number of seconds since 1970"
        ));
    }
    text.parse::<u64>()
        .map_err(|_| format!("SOURCE_DATE_EPOCH={text:?} is out of range"))
}

/// One archive member: its packet path, whether it is a directory, and the digest its bytes
/// must have (files only).
struct Member {
    path: String,
    is_dir: bool,
    expect: Option<Digest>,
}

/// The archive's members in packed order: the seal files first, then files and their
/// directories sorted by the bytes of the name stored (`dir/` for a directory).
fn members(manifest: &Manifest, tree: &Digest) -> Vec<Member> {
    let tree_file = Digest::of(&manifest::render_tree_file(tree));
    let mut out = vec![
        Member {
            path: MANIFEST_NAME.into(),
            is_dir: false,
            expect: Some(*tree),
        },
        Member {
            path: TREE_NAME.into(),
            is_dir: false,
            expect: Some(tree_file),
        },
    ];
    let first: BTreeSet<&str> = SEAL_FIRST.into_iter().collect();
    if let Some(e) = manifest.entry(SEAL_FIRST[2]) {
        out.push(Member {
            path: e.path.clone(),
            is_dir: false,
            expect: Some(e.digest),
        });
    }
    let mut rest: Vec<(String, Member)> = Vec::new();
    let mut dirs = BTreeSet::new();
    for e in manifest
        .entries
        .iter()
        .filter(|e| !first.contains(e.path.as_str()))
    {
        for (i, _) in e.path.match_indices('/') {
            dirs.insert(e.path[..i].to_string());
        }
        rest.push((
            e.path.clone(),
            Member {
                path: e.path.clone(),
                is_dir: false,
                expect: Some(e.digest),
            },
        ));
    }
    rest.extend(dirs.into_iter().map(|d| {
        (
            format!("{d}/"),
            Member {
                path: d,
                is_dir: true,
                expect: None,
            },
        )
    }));
    rest.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.extend(rest.into_iter().map(|(_, m)| m));
    out
}

/// Why packing stopped: a reject (nothing written) or the file system.
enum Stop {
    Reject(Box<Reject>),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

/// Packs the packet directory `packet` into the new file `out`.
///
/// The packet is verified first (with `opts.verify`: a pin, if given, must match) and refused
/// if it does not verify. The archive is written to a temporary file beside `out`, every file
/// re-hashed as it is copied and checked against its sealed digest, and only then moved to
/// `out`, which must not exist (and may not lie inside the packet). Nothing is left behind
/// on any reject. Errors only on I/O failure (nothing is left behind then either).
pub fn pack(packet: &Path, out: &Path, opts: &PackOptions) -> io::Result<PackReport> {
    let mut report = PackReport {
        schema: "packet.pack-report/1".into(),
        packet: packet.display().to_string(),
        archive: out.display().to_string(),
        verdict: Verdict::Fail,
        tree_hash: None,
        archive_sha256: None,
        archive_bytes: None,
        files: 0,
        bytes: 0,
        rejects: Vec::new(),
        verify: None,
    };
    let refuse = |why: &str| {
        Reject::new(RejectCode::PackRefused, why.to_string()).at_path(out.display().to_string())
    };
    if fs::symlink_metadata(out).is_ok() {
        report
            .rejects
            .push(refuse("already exists; pack never overwrites"));
        return Ok(report);
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let (Ok(pk), Ok(pa)) = (fs::canonicalize(packet), fs::canonicalize(&parent))
        && pa.starts_with(&pk)
    {
        report.rejects.push(refuse(
            "lies inside the packet: it would become an unsealed file of the packet it packs",
        ));
        return Ok(report);
    }
    let checked = verify::check(packet, &opts.verify, true);
    let seal = match checked.seal {
        Some(seal) if checked.report.passed() => seal,
        _ => {
            report.rejects = checked.report.rejects.clone();
            report.verify = Some(checked.report);
            return Ok(report);
        }
    };
    let (manifest, _) = Manifest::parse(&seal.manifest);
    report.tree_hash = Some(seal.tree.to_hex());

    let staging = tempfile::Builder::new()
        .prefix(&crate::staging::temp_prefix(
            crate::staging::TEMP_PREFIXES[3],
        ))
        .tempfile_in(&parent)?;
    let file = staging.as_file().try_clone()?;
    let mut sink = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: sha2::Sha256::new(),
        bytes: 0,
    };
    let members = members(&manifest, &seal.tree);
    // What unpack would refuse, pack does not write: names one file system tells apart and
    // another does not (`A.txt` and `a.txt`, NFC and NFD) would shadow each other there.
    let mut names = archive::Names::default();
    for m in &members {
        if let Err((_, why)) = names.claim(&m.path, m.is_dir) {
            report.rejects.push(
                Reject::new(
                    RejectCode::PackRefused,
                    format!("{why}; rename one of them and reseal"),
                )
                .at_path(m.path.clone()),
            );
        }
    }
    if !report.rejects.is_empty() {
        return Ok(report);
    }
    let written = match opts.compression {
        Compression::None => write_tar(&mut sink, packet, &members, opts.mtime),
        Compression::Gzip => {
            let mut gz = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(&mut sink, flate2::Compression::new(6));
            write_tar(&mut gz, packet, &members, opts.mtime)
                .and_then(|w| gz.finish().map(|_| w).map_err(Stop::Io))
        }
    };
    let (files, bytes) = match written {
        Ok(w) => w,
        Err(Stop::Reject(r)) => {
            report.rejects.push(*r);
            return Ok(report);
        }
        Err(Stop::Io(e)) => return Err(e),
    };
    sink.inner.flush()?;
    // A temporary file is private (0600); an archive is for sharing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        staging
            .as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    crate::staging::sync_file(staging.as_file(), out)?;
    let digest = Digest(sink.hasher.finalize().into());
    if let Err(e) = staging.persist_noclobber(out) {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            report
                .rejects
                .push(refuse("appeared while packing; pack never overwrites"));
            return Ok(report);
        }
        return Err(e.error);
    }
    crate::staging::sync_dir(&parent)?;
    report.files = files;
    report.bytes = bytes;
    report.archive_sha256 = Some(digest.to_hex());
    report.archive_bytes = Some(sink.bytes);
    report.verdict = Verdict::Pass;
    Ok(report)
}

/// Writes every member as a tar stream into `w` and ends the archive; returns the files and
/// bytes packed. A file whose bytes no longer hash to their sealed digest stops it.
fn write_tar(
    w: &mut dyn Write,
    packet: &Path,
    members: &[Member],
    mtime: u64,
) -> Result<(usize, u64), Stop> {
    let mut builder = tar::Builder::new(w);
    let (mut files, mut bytes) = (0usize, 0u64);
    for m in members {
        let reject = |code, why: String| {
            Stop::Reject(Box::new(Reject::new(code, why).at_path(m.path.clone())))
        };
        if m.is_dir {
            let h = archive::ustar_header(&m.path, true, 0, mtime)
                .map_err(|why| reject(RejectCode::PackRefused, why))?;
            builder.append(&h, io::empty())?;
            continue;
        }
        let file = digest::open_regular(&packet.join(&m.path), false)?;
        let size = file.metadata()?.len();
        let h = archive::ustar_header(&m.path, false, size, mtime)
            .map_err(|why| reject(RejectCode::PackRefused, why))?;
        let mut reader = HashingReader {
            inner: file.take(size),
            hasher: sha2::Sha256::new(),
            bytes: 0,
        };
        builder.append(&h, &mut reader)?;
        let got = Digest(reader.hasher.finalize().into());
        if reader.bytes != size || Some(got) != m.expect {
            return Err(reject(
                RejectCode::PackRefused,
                format!(
                    "changed while packing: sealed digest {}, now {} ({} bytes)",
                    m.expect.map(|d| d.abbreviated(8)).unwrap_or_default(),
                    got.abbreviated(8),
                    reader.bytes
                ),
            ));
        }
        files += 1;
        bytes += size;
    }
    builder.into_inner()?;
    Ok((files, bytes))
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl crate::report::Outcome for PackReport {
    fn passed(&self) -> bool {
        PackReport::passed(self)
    }
    fn render_text(&self) -> String {
        PackReport::render_text(self)
    }
    fn to_json(&self) -> String {
        PackReport::to_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_put_the_seal_first_then_sort_by_stored_name() {
        let d = |s: &str| Digest::of(s.as_bytes());
        let manifest = Manifest::from_entries(vec![
            manifest::Entry {
                path: "SEAL.json".into(),
                digest: d("s"),
            },
            manifest::Entry {
                path: "a.txt".into(),
                digest: d("a"),
            },
            manifest::Entry {
                path: "a/b.txt".into(),
                digest: d("b"),
            },
            manifest::Entry {
                path: "0.log".into(),
                digest: d("0"),
            },
        ]);
        let order: Vec<String> = members(&manifest, &d("tree"))
            .iter()
            .map(|m| format!("{}{}", m.path, if m.is_dir { "/" } else { "" }))
            .collect();
        assert_eq!(
            order,
            [
                "HASH_MANIFEST.txt",
                "packet_tree.sha256",
                "SEAL.json",
                "0.log",
                "a.txt",
                "a/",
                "a/b.txt"
            ]
        );
    }

    #[test]
    fn source_date_epoch_must_be_whole_seconds() {
        let os = |s: &str| Some(std::ffi::OsStr::new(s).to_owned());
        assert_eq!(epoch_from(None), Ok(0));
        assert_eq!(epoch_from(os("").as_deref()), Ok(0));
        assert_eq!(epoch_from(os("1700000000").as_deref()), Ok(1_700_000_000));
        for bad in ["1.5", "-1", " 12", "yesterday", "99999999999999999999999"] {
            assert!(epoch_from(os(bad).as_deref()).is_err(), "{bad}");
        }
    }
}
