//! Staging: results are assembled under a temporary name beside their target and moved into
//! place only when complete, never replacing anything that is there (or, for a reseal,
//! exchanged with it in one step), so a run killed at any moment leaves the target as it was
//! or complete. Temporary names carry the writing process's id, so a later run can tell a
//! dead run's leftovers ([`sweep`]) from a live one's work.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Name prefixes of the temporary files and directories `packet` writes, by what writes them:
/// seal files, a packet being built or resealed, restored, packed, unpacked.
pub const TEMP_PREFIXES: [&str; 5] = [
    ".packet-seal-",
    ".packet-build-",
    ".packet-restore-",
    ".packet-pack-",
    ".packet-unpack-",
];

/// The prefix for a temporary name of kind `kind` (an entry of [`TEMP_PREFIXES`]) written by
/// this process: `.packet-build-<pid>-`, followed by random characters.
pub fn temp_prefix(kind: &str) -> String {
    format!("{kind}{}-", std::process::id())
}

/// What [`sweep`] did with one leftover temporary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// Its path.
    pub path: PathBuf,
    /// True when it was removed (its process is gone); false when it was left alone (its
    /// process is alive, or its name carries no process id: an older `packet`'s leftover),
    /// with the reason in `note`.
    pub removed: bool,
    /// One sentence for the user.
    pub note: String,
}

/// Removes the temporaries that killed runs of `packet` left directly in `dir`: names of
/// [`TEMP_PREFIXES`] whose process id is no longer running. Others with those prefixes are
/// reported, not touched: a live run's work, or a leftover without a process id, which the
/// user removes. Never follows a link; errors reading `dir` give an empty list.
pub fn sweep(dir: &Path) -> Vec<Leftover> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(kind) = TEMP_PREFIXES.iter().find(|p| name.starts_with(*p)) else {
            continue;
        };
        let path = entry.path();
        let pid = name[kind.len()..]
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let left_alone = match pid {
            Some(pid) if pid == std::process::id() || alive(pid) => Some(format!(
                "{} belongs to a running packet (pid {pid}); left alone",
                path.display()
            )),
            Some(_) => None,
            None => Some(format!(
                "{} looks like a temporary of an interrupted packet run of an older version; remove it",
                path.display()
            )),
        };
        if let Some(note) = left_alone {
            out.push(Leftover {
                path,
                removed: false,
                note,
            });
            continue;
        }
        let note = format!(
            "removed {}, left by an interrupted packet run (pid {}, no longer running)",
            path.display(),
            pid.unwrap_or_default()
        );
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let gone = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        out.push(match gone {
            Ok(()) => Leftover {
                path,
                removed: true,
                note,
            },
            Err(e) => Leftover {
                note: format!("{} could not be removed: {e}", path.display()),
                path,
                removed: false,
            },
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// True when a process with this id exists (kill with signal 0: ESRCH means it does not).
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The directory a path's temporaries go in: its parent, or `.`.
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Swaps `a` and `b` in one step (Linux `renameat2(RENAME_EXCHANGE)`): every observer, and a
/// kill at any moment, sees either both old or both new. Where the system lacks it, the
/// error is returned (kind `Unsupported`); callers do not fall back to a non-atomic swap.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let Err(e) = renameat2(a, b, libc::RENAME_EXCHANGE) else {
            return Ok(());
        };
        if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("this file system cannot exchange two directories atomically: {e}"),
            ));
        }
        Err(e)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "atomic directory exchange needs Linux renameat2",
        ))
    }
}

/// `renameat2(2)` with `flags`, both paths relative to the working directory.
#[cfg(target_os = "linux")]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (f, t) = (c_path(from)?, c_path(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn c_path(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Flushes a directory's entries to disk (after a rename into it), so the rename survives a
/// power loss as well as a kill. A no-op where directories cannot be opened.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Flushes every directory of a staged tree (`root` included) to disk, deepest last. The
/// files in it were fsynced as they were written ([`sync_file`]); with their directory
/// entries flushed too, renaming `root` into place publishes a tree that a power loss cannot
/// leave with a name whose bytes never reached the disk. Errors: the first directory that
/// cannot be read or flushed.
pub fn sync_tree(root: &Path) -> io::Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Removes the tree at `root` (a replaced packet's old tree, a staging directory), its
/// directories in parallel on the current rayon pool (`remove_dir_all`'s parallel remover):
/// one unlink after another, 100,000 of them took longer than hashing the files. Best effort:
/// what cannot be removed is left for the next run's [`sweep`].
pub fn remove_tree(root: &Path) {
    let _ = remove_dir_all::RemoverBuilder::new()
        .parallel()
        .build()
        .remove_dir_all(root);
}

/// Flushes a file written through `file` (data and metadata) before it is renamed or its
/// directory published, and turns the test hook's injected fault into an error: when
/// `PACKET_TEST_FAIL_WRITE` is set, the write of a file whose name ends with its value fails
/// here with `ENOSPC`, as a full disk would, so the tests can check that no half-written
/// result is left (see also the real full-disk test on a small tmpfs).
pub fn sync_file(file: &fs::File, path: &Path) -> io::Result<()> {
    injected_fault(path)?;
    file.sync_all()
}

/// The `PACKET_TEST_FAIL_WRITE` hook of [`sync_file`], for writers that sync elsewhere.
pub fn injected_fault(path: &Path) -> io::Result<()> {
    if let Some(suffix) = std::env::var_os("PACKET_TEST_FAIL_WRITE") {
        let suffix = suffix.to_string_lossy();
        if !suffix.is_empty() && path.to_string_lossy().ends_with(&*suffix) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (injected by PACKET_TEST_FAIL_WRITE)",
            ));
        }
    }
    Ok(())
}

/// Test hook: when the environment variable `PACKET_TEST_CRASH_AT` names `point`, the process
/// kills itself with SIGKILL here, as an operator's `kill -9` or the OOM killer would. Lets
/// the tests stop a run deterministically between two steps of a write (between the renames
/// of the seal files, say) and check what a kill there leaves.
pub fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("PACKET_TEST_CRASH_AT").ok());
    if at.as_deref() == Some(point) {
        #[cfg(unix)]
        // SAFETY: raising a signal on our own process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// Renames `from` to `to`, failing with `AlreadyExists` rather than replacing anything at
/// `to` (on Linux `renameat2(RENAME_NOREPLACE)`; elsewhere, or where the file system lacks
/// it, a check just before a plain rename).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Err(e) = renameat2(from, to, libc::RENAME_NOREPLACE) {
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(e);
        }
    } else {
        return Ok(());
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", to.display()),
        ));
    }
    fs::rename(from, to)
}

#[cfg(unix)]
/// Gives a staged directory (created 0700) the mode of an ordinary one, 0755.
pub fn set_dir_mode(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
/// Gives a staged directory the mode of an ordinary one (nothing to do here).
pub fn set_dir_mode(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
/// Sets the permission bits of `path` to `mode` (nothing to do off Unix).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
/// Sets the permission bits of `path` to `mode` (nothing to do off Unix).
pub fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_swaps_two_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("from-a"), "a").unwrap();
        fs::write(b.join("from-b"), "b").unwrap();
        exchange(&a, &b).unwrap();
        assert!(a.join("from-b").exists() && b.join("from-a").exists());
        assert!(exchange(&a, &tmp.path().join("absent")).is_err());
    }

    #[test]
    fn sweep_removes_only_dead_runs_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        // A pid far above any pid_max (2^22) is never running.
        let dead = tmp.path().join(".packet-build-999999999-x1");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("f"), "x").unwrap();
        let ours = tmp
            .path()
            .join(format!("{}x2", temp_prefix(TEMP_PREFIXES[3])));
        fs::write(&ours, "x").unwrap();
        let old = tmp.path().join(".packet-seal-abc");
        fs::write(&old, "x").unwrap();
        let other = tmp.path().join("evidence.txt");
        fs::write(&other, "x").unwrap();
        let swept = sweep(tmp.path());
        let removed: Vec<_> = swept
            .iter()
            .filter(|l| l.removed)
            .map(|l| &l.path)
            .collect();
        assert_eq!(removed, [&dead]);
        assert!(!dead.exists() && ours.exists() && old.exists() && other.exists());
        assert_eq!(swept.len(), 3, "{swept:?}");
        assert!(swept.iter().any(|l| l.note.contains("older version")));
    }

    #[test]
    fn rename_noreplace_never_replaces_an_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::write(a.join("f"), "x").unwrap();
        fs::create_dir(&b).unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(a.join("f").exists() && !b.join("f").exists());
        fs::remove_dir(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(fs::read(b.join("f")).unwrap(), b"x");
    }
}
