//! Sealing: sealing a directory as it stands, and `build`, which copies sources into a packet
//! and seals it.
//!
//! Writes are all-or-nothing: a packet is assembled in a temporary directory beside its
//! destination, sealed, and renamed into place (or exchanged with the packet it reseals).
//! Seal files are written under temporary names and renamed.

use super::record::RESERVED_NAMES;
use super::stream::{self, refused};
use crate::digest::Digest;
use crate::manifest;
use crate::parallel::Jobs;
use crate::reject::{Error, Reject, RejectCode};
use crate::walk;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Options for sealing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SealOptions {
    /// Replace an existing seal instead of refusing.
    pub reseal: bool,
    /// Worker threads and progress.
    pub jobs: Jobs,
}

/// A finished seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sealed {
    /// The packet directory.
    pub packet: PathBuf,
    /// The tree hash: SHA-256 of `HASH_MANIFEST.txt`.
    pub tree_hash: Digest,
    /// Files the manifest lists (payload files plus `SEAL.json`).
    pub files: usize,
    /// Total bytes of the files the manifest lists.
    pub bytes: u64,
    /// True when a reseal found the packet already sealed exactly so (the same three seal
    /// files, byte for byte) and wrote nothing.
    pub unchanged: bool,
}

fn has_seal(dir: &Path) -> bool {
    RESERVED_NAMES
        .iter()
        .any(|n| fs::symlink_metadata(dir.join(n)).is_ok())
}

/// Seals `dir` as it stands: writes `SEAL.json`, `HASH_MANIFEST.txt` and `packet_tree.sha256`.
///
/// Errors: `BUILD_REFUSED` when `dir` is not a directory, already holds a seal file (unless
/// `reseal`) or holds no file; `PATH_REJECTED` for every symlink, special file or unsafe name
/// in it (nothing is written then); `Error::Io` when reading or writing fails.
pub fn seal_dir(dir: &Path, opts: SealOptions) -> Result<Sealed, Error> {
    refuse_unless_sealable(dir, opts.reseal, false)?;
    let mut seal = stream::seal(dir, opts.jobs, stream::Mode::Stage)?;
    let staged = seal.staged.take().expect("staging stages the seal files");
    // Stage all three, then rename; a failed rename puts every old seal file back.
    install(dir, staged)?;
    Ok(sealed(dir, &seal, false))
}

fn sealed(dir: &Path, seal: &stream::Streamed, unchanged: bool) -> Sealed {
    Sealed {
        packet: dir.to_path_buf(),
        tree_hash: seal.tree_hash,
        files: seal.files,
        bytes: seal.bytes,
        unchanged,
    }
}

/// Refuses, with `BUILD_REFUSED` naming `dir`, a `dir` that is not a directory, or one that is
/// already sealed unless `reseal`. `adding`: sources are to be copied in (it says so).
fn refuse_unless_sealable(dir: &Path, reseal: bool, adding: bool) -> Result<(), Error> {
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        let why = if adding {
            "exists and is not a directory"
        } else {
            "not a directory (a packet is a directory)"
        };
        return Err(refused(why.into(), dir));
    }
    if has_seal(dir) && !reseal {
        let why = if adding {
            "already sealed (holds a seal file); pass --reseal to add sources and reseal"
        } else {
            "already sealed (holds a seal file); pass --reseal to replace the seal"
        };
        return Err(refused(why.into(), dir));
    }
    Ok(())
}

pub use crate::staging::TEMP_PREFIXES;

/// Renames the staged seal files into place. The old ones are first kept under temporary
/// hard links; if any rename fails, the renamed ones are taken back and the old ones restored,
/// so the directory holds either the whole old seal or the whole new one.
fn install(dir: &Path, staged: [(&str, tempfile::NamedTempFile); 3]) -> Result<(), Error> {
    let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
    let mut backups: Vec<(PathBuf, Option<tempfile::TempPath>)> = Vec::new();
    for (name, _) in &staged {
        let dest = dir.join(name);
        let backup = if dest.is_file() {
            let path = tempfile::Builder::new()
                .prefix(&crate::staging::temp_prefix(TEMP_PREFIXES[0]))
                .make_in(dir, |p| fs::hard_link(&dest, p))
                .map_err(|e| Error::io(ctx("keeping the old seal file", &dest), e))?
                .into_temp_path();
            Some(path)
        } else {
            None
        };
        backups.push((dest, backup));
    }
    crate::staging::crash_point("seal:staged");
    let mut done = 0;
    let mut failure = None;
    for (name, tmp) in staged {
        let dest = dir.join(name);
        if done > 0 {
            crate::staging::crash_point(&format!("seal:renamed-{done}"));
        }
        match tmp.persist(&dest) {
            Ok(_) => done += 1,
            Err(e) => {
                failure = Some(Error::io(ctx("renaming a seal file into", &dest), e.error));
                break;
            }
        }
    }
    if let Some(err) = failure {
        for (dest, backup) in backups.iter().take(done + 1) {
            match backup {
                Some(old) => {
                    let _ = fs::rename(old, dest);
                }
                None => {
                    let _ = fs::remove_file(dest);
                }
            }
        }
        return Err(err);
    }
    // Dropping the backups' TempPaths removes the old files' extra links.
    drop(backups);
    crate::staging::sync_dir(dir).map_err(|e| Error::io(ctx("syncing", dir), e))?;
    Ok(())
}

/// One file to copy: source on disk, destination relative to the packet root.
struct Copy {
    src: PathBuf,
    rel: String,
}

/// Plans copying `sources` into a packet: a file under its own name, a directory with its whole
/// tree under its own name. Every refusal is collected before anything is written.
fn plan(out: &Path, sources: &[PathBuf]) -> Result<Vec<Copy>, Error> {
    let mut rejects = Vec::new();
    let mut copies = Vec::new();
    // Where the packet will be, even before it exists (to refuse a packet inside its source).
    let out_abs = fs::canonicalize(out).ok().or_else(|| {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Some(fs::canonicalize(parent).ok()?.join(out.file_name()?))
    });
    for src in sources {
        let shown = src.display().to_string();
        let meta = match fs::symlink_metadata(src) {
            Ok(m) => m,
            Err(e) => {
                rejects.push(
                    Reject::new(RejectCode::FileMissing, format!("cannot read source: {e}"))
                        .at_path(shown),
                );
                continue;
            }
        };
        let Some(name) = src
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| manifest::check_path(n).is_ok())
        else {
            rejects.push(
                Reject::new(
                    RejectCode::PathRejected,
                    "source has no usable UTF-8 file name to copy it under".into(),
                )
                .at_path(shown),
            );
            continue;
        };
        if RESERVED_NAMES.contains(&name) {
            rejects.push(
                Reject::new(
                    RejectCode::PathRejected,
                    format!("{name} is a seal file name; it cannot be a source"),
                )
                .at_path(shown),
            );
            continue;
        }
        if meta.is_file() {
            copies.push(Copy {
                src: src.clone(),
                rel: name.to_string(),
            });
        } else if meta.is_dir() {
            if let (Some(out_abs), Ok(src_abs)) = (&out_abs, fs::canonicalize(src))
                && out_abs.starts_with(&src_abs)
            {
                rejects.push(
                    Reject::new(
                        RejectCode::BuildRefused,
                        "the packet directory lies inside this source; it would copy itself".into(),
                    )
                    .at_path(shown),
                );
                continue;
            }
            let scan = walk::scan(src, &format!("{name}/"), true);
            rejects.extend(scan.rejects);
            copies.extend(scan.files.into_iter().map(|f| Copy {
                src: src.join(&f.rel[name.len() + 1..]),
                rel: f.rel,
            }));
        } else {
            let kind = if meta.file_type().is_symlink() {
                "a symlink"
            } else {
                "not a regular file or directory"
            };
            rejects.push(
                Reject::new(RejectCode::PathRejected, format!("source is {kind}")).at_path(shown),
            );
        }
    }
    copies.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    for pair in copies.windows(2) {
        if pair[0].rel == pair[1].rel {
            rejects.push(
                Reject::new(
                    RejectCode::BuildRefused,
                    format!("two sources would both be copied to {}", pair[0].rel),
                )
                .at_path(pair[1].src.display().to_string()),
            );
        }
    }
    // A file that is also a directory of another copy (`d` and `d/f`).
    let dirs: BTreeSet<&str> = copies
        .iter()
        .flat_map(|c| c.rel.match_indices('/').map(|(i, _)| &c.rel[..i]))
        .collect();
    for c in copies.iter().filter(|c| dirs.contains(c.rel.as_str())) {
        rejects.push(
            Reject::new(
                RejectCode::BuildRefused,
                "one source is a file and another a directory under this name".into(),
            )
            .at_path(c.rel.clone()),
        );
    }
    // Into an existing packet: nothing may be overwritten, and every directory a copy goes
    // through must be a real directory (never a symlink that leads out of the packet).
    for d in &dirs {
        if fs::symlink_metadata(out.join(d)).is_ok_and(|m| !m.is_dir()) {
            rejects.push(
                Reject::new(
                    RejectCode::BuildRefused,
                    "exists in the packet as a symlink or file where a directory is needed".into(),
                )
                .at_path((*d).to_string()),
            );
        }
    }
    for c in &copies {
        if fs::symlink_metadata(out.join(&c.rel)).is_ok() {
            rejects.push(
                Reject::new(
                    RejectCode::BuildRefused,
                    "already exists in the packet; build never overwrites".into(),
                )
                .at_path(c.rel.clone()),
            );
        }
    }
    if rejects.is_empty() {
        Ok(copies)
    } else {
        Err(Error::Rejected(rejects))
    }
}

/// Copies planned files under `root`, a staging directory of this run's own: nothing needs
/// undoing on failure, the whole directory is removed.
fn copy_all(root: &Path, copies: &[Copy]) -> Result<(), Error> {
    for c in copies {
        let dest = root.join(&c.rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        // create_new: never overwrite, even if something appeared since planning.
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
        let mut input = fs::File::open(&c.src)
            .map_err(|e| Error::io(format!("reading {}", c.src.display()), e))?;
        std::io::copy(&mut input, &mut out)
            .map_err(|e| Error::io(format!("copying to {}", dest.display()), e))?;
        // Keep the mode (a RERUN.sh stays executable); the seal itself covers bytes only.
        let perms = input
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", c.src.display()), e))?
            .permissions();
        fs::set_permissions(&dest, perms)
            .map_err(|e| Error::io(format!("setting mode of {}", dest.display()), e))?;
        crate::staging::sync_file(&out, &dest)
            .map_err(|e| Error::io(format!("writing {}", dest.display()), e))?;
    }
    Ok(())
}

/// Recreates the tree of the existing packet `from` in the empty directory `to`: directories
/// with their modes, every file as a hard link to the same bytes (a copy where the file
/// system refuses links), the seal files at the root left out (they are written anew).
/// `from` has passed [`sealable_files`]: it holds only directories and regular files.
/// Subdirectories are linked in parallel on the current rayon pool: a link is a metadata
/// write that waits on the file system, and 100,000 of them one after another were most of
/// a reseal's time.
fn link_tree(from: &Path, to: &Path, root: bool) -> Result<(), Error> {
    use rayon::prelude::*;
    let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
    let entries = fs::read_dir(from).map_err(|e| Error::io(ctx("reading", from), e))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(ctx("reading", from), e))?;
        let name = entry.file_name();
        if root && RESERVED_NAMES.iter().any(|n| name == *n) {
            continue;
        }
        let (src, dest) = (entry.path(), to.join(&name));
        // The directory entry's type serves; only a directory's mode needs its inode.
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(ctx("reading", &src), e))?;
        if kind.is_dir() {
            let meta =
                fs::symlink_metadata(&src).map_err(|e| Error::io(ctx("reading", &src), e))?;
            fs::create_dir(&dest).map_err(|e| Error::io(ctx("creating", &dest), e))?;
            dirs.push((src, dest, meta.permissions()));
        } else if kind.is_file() {
            if fs::hard_link(&src, &dest).is_err() {
                fs::copy(&src, &dest)
                    .and_then(|_| crate::staging::sync_file(&fs::File::open(&dest)?, &dest))
                    .map_err(|e| Error::io(ctx("copying", &src), e))?;
            }
        } else {
            // The scan refused these already; something appeared since.
            return Err(Error::Rejected(vec![
                Reject::new(
                    RejectCode::PathRejected,
                    "appeared while resealing and is not a regular file or directory".into(),
                )
                .at_path(src.display().to_string()),
            ]));
        }
    }
    dirs.into_par_iter().try_for_each(|(src, dest, perms)| {
        link_tree(&src, &dest, false)?;
        // Set last: a read-only directory could not have been filled.
        fs::set_permissions(&dest, perms).map_err(|e| Error::io(ctx("setting mode of", &dest), e))
    })
}

/// `packet build OUT [SOURCE...]`: copies each source into `out` and seals it; with no source,
/// seals `out` as it stands.
///
/// Atomic as a whole, whatever kills the process when: the new packet is assembled in a
/// temporary directory beside `out` (for an existing `out`, its tree hard-linked there
/// first), sealed, and then renamed to a new `out`, or exchanged with the existing one in one
/// step (`renameat2(RENAME_EXCHANGE)`), after which the old tree is removed. Until that step
/// `out` is untouched and verifies under its old seal; after it, under the new one. A killed
/// run's temporary directory carries its process id and is removed by the next run
/// ([`crate::staging::sweep`]). Errors: as [`seal_dir`], plus `BUILD_REFUSED` for an existing
/// destination file, two sources with one name, or a packet inside its own source;
/// `PATH_REJECTED` for symlinks, special files and unusable names among the sources;
/// `FILE_MISSING` for a source that does not exist.
pub fn build(out: &Path, sources: &[PathBuf], opts: SealOptions) -> Result<Sealed, Error> {
    let exists = fs::symlink_metadata(out).is_ok();
    if !exists && sources.is_empty() {
        return seal_dir(out, opts);
    }
    let mut mode = None;
    if exists {
        refuse_unless_sealable(out, opts.reseal, !sources.is_empty())?;
        // A reseal of what is already sealed exactly so writes nothing: hashing in place
        // costs a read per file, staging a link and an unlink per file more. When the seal
        // differs, the staged links are hashed again below on purpose: a file renamed over
        // between this read and its link would otherwise be sealed with another file's digest.
        if sources.is_empty() && has_seal(out) {
            let seal = stream::seal(out, opts.jobs, stream::Mode::Compare)?;
            if seal.same {
                return Ok(sealed(out, &seal, true));
            }
        } else {
            // What is already there must be sealable too; refuse before copying anything.
            stream::check(out, !sources.is_empty())?;
        }
        let meta = fs::symlink_metadata(out).map_err(|e| Error::io("reading the packet", e))?;
        mode = Some(meta.permissions());
    }
    let copies = plan(out, sources)?;
    let parent = crate::staging::parent_of(out);
    let staging = tempfile::Builder::new()
        .prefix(&crate::staging::temp_prefix(TEMP_PREFIXES[1]))
        .tempdir_in(&parent)
        .map_err(|e| {
            Error::io(
                format!("creating a staging directory in {}", parent.display()),
                e,
            )
        })?;
    if exists {
        crate::parallel::in_pool(opts.jobs, || link_tree(out, staging.path(), true))?;
    }
    copy_all(staging.path(), &copies)?;
    crate::staging::crash_point("build:copied");
    let sealed = seal_dir(
        staging.path(),
        SealOptions {
            reseal: false,
            ..opts
        },
    )?;
    // The staging directory was created private (0700); the packet keeps the mode the
    // existing one had, and a new one is an ordinary directory.
    let ctx = |p: &Path| format!("setting mode of {}", p.display());
    match mode {
        Some(perms) => fs::set_permissions(staging.path(), perms),
        None => crate::staging::set_mode(staging.path(), 0o755),
    }
    .map_err(|e| Error::io(ctx(staging.path()), e))?;
    crate::staging::sync_tree(staging.path())
        .map_err(|e| Error::io(format!("syncing {}", staging.path().display()), e))?;
    crate::staging::crash_point("build:sealed");
    let staged = staging.keep();
    let moved = if exists {
        crate::staging::exchange(&staged, out)
    } else {
        crate::staging::rename_noreplace(&staged, out)
    };
    if let Err(e) = moved {
        let _ = fs::remove_dir_all(&staged);
        return Err(Error::io(
            format!("moving the sealed packet to {}", out.display()),
            e,
        ));
    }
    let _ = crate::staging::sync_dir(&parent);
    if exists {
        crate::staging::crash_point("build:exchanged");
        // `staged` now holds the old tree; a failure to remove it leaves it for the next
        // run's sweep, and the packet is sealed either way.
        crate::parallel::in_pool(opts.jobs, || crate::staging::remove_tree(&staged));
    }
    Ok(Sealed {
        packet: out.to_path_buf(),
        ..sealed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_is_deterministic_and_refuses_reseal() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            fs::create_dir(d.join("sub")).unwrap();
            fs::write(d.join("sub/x.json"), "{\"k\": \"Việt\"}\n").unwrap();
            fs::write(d.join("log.txt"), "line\n").unwrap();
        }
        let sa = seal_dir(a.path(), SealOptions::default()).unwrap();
        let sb = seal_dir(b.path(), SealOptions::default()).unwrap();
        assert_eq!(sa.tree_hash, sb.tree_hash);
        assert_eq!(sa.files, 3);
        let again = seal_dir(a.path(), SealOptions::default());
        assert!(
            matches!(again, Err(Error::Rejected(ref r)) if r[0].code == RejectCode::BuildRefused)
        );
        let resealed = seal_dir(
            a.path(),
            SealOptions {
                reseal: true,
                ..SealOptions::default()
            },
        )
        .unwrap();
        assert_eq!(resealed.tree_hash, sa.tree_hash);
        let leftovers: Vec<_> = fs::read_dir(a.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".packet"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn build_refuses_overwrite_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("notes.txt");
        fs::write(&src, "x").unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("notes.txt"), "already").unwrap();
        let err = build(&out, &[src], SealOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Rejected(ref r) if r[0].code == RejectCode::BuildRefused));
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
        assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"already");
    }

    #[test]
    fn build_with_a_bad_source_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("good.txt");
        fs::write(&good, "x").unwrap();
        let dir = tmp.path().join("d");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let out = tmp.path().join("out");
        let err = build(&out, &[good, dir], SealOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::Rejected(ref r) if r.iter().any(|r| r.code == RejectCode::PathRejected))
        );
        assert!(!out.exists());
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
