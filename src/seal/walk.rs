//! Walking a packet or source tree without following anything: regular files are listed by
//! their `/`-separated relative path; symlinks, sockets, devices, fifos and names that are not
//! UTF-8 or not safe (see [`crate::manifest::check_safe`]) become `PATH_REJECTED`; for
//! sealing, [`scan`] and [`SortedWalk`] also refuse names that are not NFC.

use crate::manifest::{check_path, check_safe};
use crate::reject::Reject;
use crate::reject::RejectCode;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Scans `root` recursively. `prefix` (empty, or ending in `/`) is prepended to every relative
/// path, so a source directory can be scanned as it will be named inside a packet; `sealing`
/// also refuses names that are not NFC ([`check_path`]): what `build` seals has one spelling.
///
/// Directories are listed in parallel on the current rayon pool, one task per directory. An
/// entry's type comes from its directory entry (`d_type` on Linux), so no file is stat'ed;
/// the order is fixed by the sort at the end, so the result is the same whatever the thread
/// count. A directory whose name is not UTF-8 is rejected once and not entered.
pub fn scan(root: &Path, prefix: &str, sealing: bool) -> Scan {
    let found = Mutex::new(Scan::default());
    rayon::scope(|s| {
        list_dir(
            s,
            root.to_path_buf(),
            String::new(),
            prefix,
            sealing,
            &found,
        )
    });
    let mut out = found.into_inner().unwrap_or_else(|e| e.into_inner());
    // Relative paths are unique: an unstable sort gives the one order.
    out.files
        .sort_unstable_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    out
}

/// Lists the directory `dir` (relative path `rel_dir`: empty for the root, else ending in
/// `/`), spawning a task for each subdirectory, and adds its files and rejects to `found`.
fn list_dir<'s>(
    s: &rayon::Scope<'s>,
    dir: PathBuf,
    rel_dir: String,
    prefix: &'s str,
    sealing: bool,
    found: &'s Mutex<Scan>,
) {
    let mut out = Scan::default();
    list(
        &dir,
        prefix,
        &rel_dir,
        sealing,
        &mut out.rejects,
        |name, is_dir| {
            if is_dir {
                let (path, sub) = (dir.join(name), format!("{rel_dir}{name}"));
                s.spawn(move |s| list_dir(s, path, sub, prefix, sealing, found));
            } else {
                out.files.push(Found {
                    rel: format!("{prefix}{rel_dir}{name}"),
                });
            }
        },
    );
    let mut all = found.lock().unwrap_or_else(|e| e.into_inner());
    all.files.append(&mut out.files);
    all.rejects.append(&mut out.rejects);
}

/// Lists the directory `dir` (relative path `rel_dir`: empty for the root, else ending in
/// `/`; `prefix` before it in every reject): calls `each` with every subdirectory's name
/// ending in `/` (`true`) and every acceptable regular file's name (`false`), and refuses into
/// `rejects` what cannot be read, names that are not UTF-8, symlinks, special files and unsafe
/// names ([`check_path`] when `sealing`, else [`check_safe`]). Unchecked, a directory that
/// cannot be listed would drop its whole subtree from the walk (and from a seal) without a
/// word.
fn list(
    dir: &Path,
    prefix: &str,
    rel_dir: &str,
    sealing: bool,
    rejects: &mut Vec<Reject>,
    mut each: impl FnMut(&str, bool),
) {
    let here = || {
        let rel = format!("{prefix}{rel_dir}");
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        }
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            rejects.push(
                Reject::new(
                    RejectCode::FileUnreadable,
                    format!("directory cannot be read: {e}"),
                )
                .at_path(here()),
            );
            return;
        }
    };
    let mut whole = String::new();
    for item in entries {
        let entry = match item {
            Ok(e) => e,
            Err(e) => {
                rejects.push(
                    Reject::new(RejectCode::FileUnreadable, format!("cannot read: {e}"))
                        .at_path(here()),
                );
                break;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            rejects.push(
                Reject::new(RejectCode::PathRejected, "name is not valid UTF-8".into())
                    .at_path(format!("{prefix}{rel_dir}{}", name.to_string_lossy())),
            );
            continue;
        };
        let rel = || format!("{prefix}{rel_dir}{name}");
        let refusal = match entry.file_type() {
            Ok(ft) if ft.is_dir() => {
                each(&format!("{name}/"), true);
                continue;
            }
            Ok(ft) if ft.is_file() => {
                // The whole path is checked (a name is safe or not by where it starts), in
                // one buffer reused from file to file.
                whole.clear();
                whole.push_str(prefix);
                whole.push_str(rel_dir);
                whole.push_str(name);
                let checked = if sealing {
                    check_path(&whole)
                } else {
                    check_safe(&whole)
                };
                match checked {
                    Ok(()) => {
                        each(name, false);
                        continue;
                    }
                    Err(why) => (RejectCode::PathRejected, format!("unsafe name: {why}")),
                }
            }
            Ok(ft) if ft.is_symlink() => (
                RejectCode::PathRejected,
                "is a symlink (packets hold bytes, not links that can point anywhere)".into(),
            ),
            Ok(_) => (
                RejectCode::PathRejected,
                "is not a regular file (socket, device or fifo)".into(),
            ),
            Err(e) => (RejectCode::FileUnreadable, format!("cannot read: {e}")),
        };
        rejects.push(Reject::new(refusal.0, refusal.1).at_path(rel()));
    }
}

/// The regular files under a root one at a time, in the byte order of their relative paths
/// (the manifest's order), holding only the directories on the current path: memory grows
/// with the widest directory and the depth, never with the number of files. Siblings are
/// sorted with a directory's name taken as `name/`, which makes a depth-first walk come out in
/// byte order of whole paths. Rejects are collected as [`scan`] makes them (with [`check_path`]
/// when walking for sealing), for [`SortedWalk::rejects`] once the walk is over.
pub struct SortedWalk {
    root: PathBuf,
    prefix: String,
    sealing: bool,
    /// Per open directory: its relative path (empty or ending in `/`) and its entries not yet
    /// taken, sorted in reverse so the next is popped from the end.
    stack: Vec<(String, Vec<(String, bool)>)>,
    rejects: Vec<Reject>,
}

impl SortedWalk {
    /// A walk of `root`, `prefix` (empty, or ending in `/`) before every relative path;
    /// `sealing` also refuses names that are not NFC ([`check_path`]).
    pub fn new(root: &Path, prefix: &str, sealing: bool) -> SortedWalk {
        let mut walk = SortedWalk {
            root: root.to_path_buf(),
            prefix: prefix.to_string(),
            sealing,
            stack: Vec::new(),
            rejects: Vec::new(),
        };
        walk.open(String::new());
        walk
    }

    /// Whether anything has been refused so far.
    pub fn has_rejects(&self) -> bool {
        !self.rejects.is_empty()
    }

    /// Everything refused so far; complete once the walk has ended.
    pub fn rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    fn open(&mut self, rel_dir: String) {
        let mut listed = Vec::new();
        list(
            &self.root.join(&rel_dir),
            &self.prefix,
            &rel_dir,
            self.sealing,
            &mut self.rejects,
            |name, is_dir| listed.push((name.to_string(), is_dir)),
        );
        listed.sort_unstable_by(|a, b| b.0.as_bytes().cmp(a.0.as_bytes()));
        self.stack.push((rel_dir, listed));
    }
}

impl Iterator for SortedWalk {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        loop {
            let (rel_dir, entries) = self.stack.last_mut()?;
            let Some((name, is_dir)) = entries.pop() else {
                self.stack.pop();
                continue;
            };
            if is_dir {
                let rel = format!("{rel_dir}{name}");
                self.open(rel);
                continue;
            }
            // One allocation per file: the path as the manifest will hold it.
            let mut rel = String::with_capacity(self.prefix.len() + rel_dir.len() + name.len());
            rel.push_str(&self.prefix);
            rel.push_str(rel_dir);
            rel.push_str(&name);
            return Some(Found { rel });
        }
    }
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
        let s = scan(root, "p/", false);
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
        let s = scan(dir.path(), "", false);
        assert!(s.files.is_empty());
        assert_eq!(s.rejects.len(), 2);
        assert!(s.rejects.iter().all(|r| r.code == RejectCode::PathRejected));
    }

    #[test]
    fn sorted_walk_gives_the_scans_files_in_manifest_order_and_its_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // `d.txt` < `d/…` < `d0` in bytes ('.' < '/' < '0'): a walk that sorted directory
        // names without their `/` would put `d/…` first.
        for f in ["d.txt", "d/x", "d/y/z", "d0", "D", "a b/c"] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        std::os::unix::fs::symlink("d0", root.join("link")).unwrap();
        fs::write(root.join("cafe\u{301}"), "nfd").unwrap();
        let mut walk = SortedWalk::new(root, "p/", true);
        let rels: Vec<String> = walk.by_ref().map(|f| f.rel).collect();
        let scanned: Vec<String> = scan(root, "p/", true)
            .files
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(rels, scanned);
        assert_eq!(
            rels,
            ["p/D", "p/a b/c", "p/d.txt", "p/d/x", "p/d/y/z", "p/d0"]
        );
        let mut rejected: Vec<_> = walk
            .rejects()
            .into_iter()
            .map(|r| r.path.unwrap())
            .collect();
        rejected.sort();
        assert_eq!(rejected, ["p/cafe\u{301}", "p/link"]);
    }
}
