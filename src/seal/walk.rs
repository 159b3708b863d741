//! Walking a packet or source tree without following anything: regular files are listed by
//! their `/`-separated relative path; symlinks, sockets, devices, fifos and names that are not
//! UTF-8 or not safe (see [`crate::manifest::check_safe`]) become `PATH_REJECTED`; for
//! sealing, [`Scan::for_sealing`] also refuses names that are not NFC.

use crate::manifest::{check_path, check_safe};
use crate::reject::Reject;
use crate::reject::RejectCode;
use std::path::Path;

/// A regular file found by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Path relative to the scanned root, `/`-separated, with the scan's prefix in front.
    /// (Only this is kept: 100,000 files cost 10 MB less than with their full paths too.)
    pub rel: String,
}

/// The regular files under a root, sorted by the bytes of their relative path, and a reject for
/// every entry that cannot be sealed.
#[derive(Debug, Default)]
pub struct Scan {
    /// Regular files, sorted by `rel` bytes.
    pub files: Vec<Found>,
    /// `PATH_REJECTED` (and `FILE_UNREADABLE` for unreadable directories), with paths relative
    /// to the root and `prefix` prepended.
    pub rejects: Vec<Reject>,
}

impl Scan {
    /// Moves the files whose names may be verified but not sealed (not NFC: see
    /// [`check_path`]) to `rejects`, as `PATH_REJECTED`: what `build` seals has one spelling.
    pub fn for_sealing(mut self) -> Scan {
        let (keep, refused): (Vec<Found>, Vec<Found>) = std::mem::take(&mut self.files)
            .into_iter()
            .partition(|f| check_path(&f.rel).is_ok());
        self.files = keep;
        for f in refused {
            let why = check_path(&f.rel).err().unwrap_or_default();
            self.rejects.push(
                Reject::new(RejectCode::PathRejected, format!("unsafe name: {why}")).at_path(f.rel),
            );
        }
        self
    }
}

/// Scans `root` recursively. `prefix` (empty, or ending in `/`) is prepended to every relative
/// path, so a source directory can be scanned as it will be named inside a packet.
pub fn scan(root: &Path, prefix: &str) -> Scan {
    let mut out = Scan::default();
    // Directories are read in parallel (jwalk, on its own rayon pool: no busy-pool timeout
    // that could end a walk early); the order is fixed by the sort below.
    let walker = jwalk::WalkDir::new(root)
        .skip_hidden(false)
        .follow_links(false)
        .sort(false)
        .parallelism(jwalk::Parallelism::RayonNewPool(0));
    for item in walker {
        let entry = match item {
            Ok(e) => e,
            Err(e) => {
                let rel = e
                    .path()
                    .and_then(|p| p.strip_prefix(root).ok())
                    .map(|p| format!("{prefix}{}", p.to_string_lossy()))
                    .unwrap_or_else(|| prefix.trim_end_matches('/').to_string());
                out.rejects.push(
                    Reject::new(RejectCode::FileUnreadable, format!("cannot read: {e}"))
                        .at_path(rel),
                );
                continue;
            }
        };
        let abs = entry.path();
        let rel_os = abs.strip_prefix(root).unwrap_or(&abs);
        // jwalk yields a directory that could not be listed as an ordinary entry and keeps
        // the error beside it: unchecked, its whole subtree would vanish from the walk (and
        // from a seal) without a word.
        if let Some(err) = entry.read_children.as_ref().and_then(|rc| rc.error()) {
            let rel = format!("{prefix}{}", rel_os.to_string_lossy());
            let rel = if rel.is_empty() { ".".to_string() } else { rel };
            out.rejects.push(
                Reject::new(
                    RejectCode::FileUnreadable,
                    format!("directory cannot be read: {err}"),
                )
                .at_path(rel.trim_end_matches('/').to_string()),
            );
            continue;
        }
        if entry.depth() == 0 {
            continue;
        }
        let Some(rel_str) = rel_os.to_str() else {
            out.rejects.push(
                Reject::new(RejectCode::PathRejected, "name is not valid UTF-8".into())
                    .at_path(format!("{prefix}{}", rel_os.to_string_lossy())),
            );
            continue;
        };
        let rel = if std::path::MAIN_SEPARATOR == '/' {
            format!("{prefix}{rel_str}")
        } else {
            format!(
                "{prefix}{}",
                rel_str.replace(std::path::MAIN_SEPARATOR, "/")
            )
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let kind = if ft.is_file() {
            None
        } else if ft.is_symlink() {
            Some("a symlink (packets hold bytes, not links that can point anywhere)")
        } else {
            Some("not a regular file (socket, device or fifo)")
        };
        if let Some(kind) = kind {
            out.rejects
                .push(Reject::new(RejectCode::PathRejected, format!("is {kind}")).at_path(rel));
            continue;
        }
        if let Err(why) = check_safe(&rel) {
            out.rejects.push(
                Reject::new(RejectCode::PathRejected, format!("unsafe name: {why}")).at_path(rel),
            );
            continue;
        }
        out.files.push(Found { rel });
    }
    out.files
        .sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn lists_regular_files_sorted_and_rejects_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("b.txt"), "b").unwrap();
        fs::write(root.join("B.txt"), "B").unwrap();
        fs::write(root.join("sub/deeper/c"), "c").unwrap();
        fs::create_dir(root.join("empty")).unwrap();
        std::os::unix::fs::symlink("b.txt", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("dirlink")).unwrap();
        let s = scan(root, "p/");
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["p/B.txt", "p/b.txt", "p/sub/deeper/c"]);
        let mut rejected: Vec<_> = s
            .rejects
            .iter()
            .map(|r| (r.code, r.path.clone().unwrap()))
            .collect();
        rejected.sort();
        assert_eq!(
            rejected,
            [
                (RejectCode::PathRejected, "p/dirlink".to_string()),
                (RejectCode::PathRejected, "p/link".to_string())
            ]
        );
    }

    #[test]
    fn rejects_non_utf8_and_control_names() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")),
            "x",
        )
        .unwrap();
        fs::write(dir.path().join("new\nline"), "x").unwrap();
        let s = scan(dir.path(), "");
        assert!(s.files.is_empty());
        assert_eq!(s.rejects.len(), 2);
        assert!(s.rejects.iter().all(|r| r.code == RejectCode::PathRejected));
    }
}
