//! Small files read in batches: the open, first read and close of up to [`BATCH`] files go to
//! the kernel in one `io_uring_enter(2)` (Linux io_uring, through the `io-uring` crate), not
//! three system calls each.
//!
//! Why: on 100,000 files of 4 KiB, the kernel's share of a seal was ~60%, each file one
//! `openat`, one `read` and one `close`; on this project's 2-core VM a system call costs
//! ~250 ns before any work (`getppid` in a loop), so entries alone were ~0.08 s of CPU. A C
//! program doing only the work a seal needs measured 0.47–0.49 s with the three calls and
//! 0.36–0.42 s through a ring, both on 2 threads.
//!
//! This is only a faster way to do the small-file read [`super::digest::read_observed`] does:
//! open with `O_NOFOLLOW | O_NONBLOCK` relative to the directory, one read of
//! [`FIRST_READ`] bytes from offset 0, close. A read that comes back shorter is the whole file,
//! as for that read. Anything else (a file of [`FIRST_READ`] bytes or more, any error, a ring
//! the kernel refuses) is served by the ordinary path, which opens the file again, so every
//! error, reject and stamp check is that path's. The ring's descriptors are direct descriptors
//! (in the ring's own table), never in the process's file table.
//!
//! Off elsewhere than 64-bit Linux, where the kernel refuses io_uring (seccomp, the sysctl
//! `kernel.io_uring_disabled`, kernels before 5.19), and when the environment sets
//! `PACKET_IO_URING=off`.

/// Bytes read per file, the same first read as `digest::FIRST_READ` (which is defined as this,
/// so the two cannot part and imports run one way, digest to here).
pub const FIRST_READ: usize = 64 * 1024;
use std::path::{Path, PathBuf};

/// Files per submission: 3 × 32 entries fit the ring, and 32 buffers of [`FIRST_READ`] bytes
/// are 2 MiB per thread.
pub const BATCH: usize = 32;

/// The environment variable that turns batched reads off (`off`), to compare or to rule the
/// ring out.
pub const SWITCH: &str = "PACKET_IO_URING";

/// Whether this thread reads through a ring (starting one if it has not tried yet): false
/// where the platform, the kernel or [`SWITCH`] rules it out.
pub fn available() -> bool {
    imp::available()
}

/// The files one worker will read next, in order, batched through its thread's ring as they
/// are asked for. Created for a run of neighbouring files (a chunk of the pool's work); the
/// relative paths are kept in one string, so reading ahead allocates nothing per file.
#[derive(Default)]
pub struct Ahead {
    id: u64,
    base: PathBuf,
    /// The relative paths, `/`-separated, one after another; `ends[i]` is where the `i`th ends.
    rels: String,
    ends: Vec<usize>,
    /// The next path expected.
    next: usize,
    /// The paths the ring holds results for, while it holds this `Ahead`'s.
    batch: std::ops::Range<usize>,
}

impl Ahead {
    /// The files `base.join(rel)` for every `rel`, in the order they will be asked for.
    pub fn new<'r>(base: &Path, rels: impl IntoIterator<Item = &'r str>) -> Ahead {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut ahead = Ahead {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            base: base.to_path_buf(),
            ..Ahead::default()
        };
        for rel in rels {
            ahead.rels.push_str(rel);
            ahead.ends.push(ahead.rels.len());
        }
        ahead
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The `i`th relative path.
    fn rel(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.rels[start..self.ends[i]]
    }

    /// When `path` is the next path given and the ring read it whole (fewer than
    /// [`FIRST_READ`] bytes), calls `whole` with its bytes and returns true. False when the
    /// caller must read it itself: out of order, no ring, an error, or a larger file.
    pub fn take(&mut self, path: &Path, whole: &mut dyn FnMut(&[u8])) -> bool {
        if self.next >= self.len() || !joined_is(&self.base, self.rel(self.next), path) {
            return false;
        }
        let at = self.next;
        self.next += 1;
        imp::take(self, at, whole)
    }
}

/// Whether `path` is `base.join(rel)`, byte for byte, without building it.
fn joined_is(base: &Path, rel: &str, path: &Path) -> bool {
    let (base, path) = (
        base.as_os_str().as_encoded_bytes(),
        path.as_os_str().as_encoded_bytes(),
    );
    if base.is_empty() {
        return path == rel.as_bytes();
    }
    let Some(rest) = path.strip_prefix(base) else {
        return false;
    };
    let rest = if base.ends_with(b"/") {
        rest
    } else {
        match rest.strip_prefix(b"/") {
            Some(rest) => rest,
            None => return false,
        }
    };
    rest == rel.as_bytes()
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use super::{Ahead, BATCH, FIRST_READ, SWITCH};
    use io_uring::{IoUring, opcode, squeue, types};
    use std::cell::RefCell;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::{Path, PathBuf};

    /// One thread's ring, its buffers and the results of its last batch.
    struct Ring {
        ring: IoUring,
        /// `BATCH` buffers of `FIRST_READ` bytes, reused from batch to batch (their pages stay
        /// mapped).
        slots: Vec<u8>,
        /// Per file of the batch: the read's byte count, or a negative errno of the first
        /// step that failed.
        got: [i32; BATCH],
        /// The `Ahead` the batch was read for.
        owner: u64,
        /// Directories of the batch's files, the last one kept for the next batch.
        dirs: Vec<(PathBuf, OwnedFd)>,
        /// The batch's file names, each ended by a NUL, reused from batch to batch.
        names: Vec<u8>,
    }

    enum State {
        Untried,
        Ready(Box<Ring>),
        Off,
    }

    thread_local! {
        static RING: RefCell<State> = const { RefCell::new(State::Untried) };
    }

    const OPEN: u64 = 0;
    const READ: u64 = 1;
    const CLOSE: u64 = 2;

    pub(super) fn available() -> bool {
        RING.with(|cell| {
            let mut state = cell.borrow_mut();
            started(&mut state);
            matches!(*state, State::Ready(_))
        })
    }

    fn started(state: &mut State) {
        if let State::Untried = *state {
            *state = match start() {
                Some(ring) => State::Ready(Box::new(ring)),
                None => State::Off,
            };
        }
    }

    pub(super) fn take(ahead: &mut Ahead, at: usize, whole: &mut dyn FnMut(&[u8])) -> bool {
        RING.with(|cell| {
            let mut state = cell.borrow_mut();
            started(&mut state);
            let State::Ready(ring) = &mut *state else {
                return false;
            };
            if ring.owner != ahead.id || !ahead.batch.contains(&at) {
                let end = (at + BATCH).min(ahead.len());
                if !fill(ring, ahead, at..end) {
                    // The ring failed in a way that leaves its reads in doubt: its memory is
                    // never reused or freed, and this thread reads without it from now on.
                    if let State::Ready(ring) = std::mem::replace(&mut *state, State::Off) {
                        Box::leak(ring);
                    }
                    return false;
                }
                ring.owner = ahead.id;
                ahead.batch = at..end;
            }
            let i = at - ahead.batch.start;
            match usize::try_from(ring.got[i]) {
                Ok(n) if n < FIRST_READ => {
                    whole(&ring.slots[i * FIRST_READ..i * FIRST_READ + n]);
                    true
                }
                _ => false,
            }
        })
    }

    /// A ring with `BATCH` direct-descriptor slots, or `None` where the kernel or the
    /// environment refuses one.
    fn start() -> Option<Ring> {
        if std::env::var_os(SWITCH).is_some_and(|v| v == "off") {
            return None;
        }
        let entries = (4 * BATCH) as u32;
        // One thread submits and reaps; completions are run when it waits (kernel 6.1), which
        // spares an interrupt per request. Older kernels take the plain ring.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries))
            .ok()?;
        ring.submitter().register_files_sparse(BATCH as u32).ok()?;
        Some(Ring {
            ring,
            slots: vec![0; BATCH * FIRST_READ],
            got: [0; BATCH],
            owner: 0,
            dirs: Vec::new(),
            names: Vec::with_capacity(BATCH * 64),
        })
    }

    /// Opens, reads and closes the files `files` of `ahead` (at most `BATCH`) through the ring,
    /// leaving each outcome in `got`. False when the ring failed with requests possibly still
    /// in flight.
    fn fill(r: &mut Ring, ahead: &Ahead, files: std::ops::Range<usize>) -> bool {
        r.owner = 0;
        r.got = [-libc::ECANCELED; BATCH];
        if let Some(last) = r.dirs.pop() {
            r.dirs.clear();
            r.dirs.push(last);
        }
        // Every name goes into `names` before a pointer into it is taken: it must not move
        // until the kernel has read them all, at the end of this call.
        r.names.clear();
        let mut named: Vec<(usize, libc::c_int, usize)> = Vec::with_capacity(files.len());
        for (i, at) in files.enumerate() {
            let rel = ahead.rel(at);
            let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            if name.is_empty() || name.contains('\0') {
                r.got[i] = -libc::EINVAL;
                continue;
            }
            let Some(dirfd) = dir_fd(&mut r.dirs, &ahead.base, dir) else {
                r.got[i] = -libc::ENOENT;
                continue;
            };
            named.push((i, dirfd, r.names.len()));
            r.names.extend_from_slice(name.as_bytes());
            r.names.push(0);
        }
        let base = r.slots.as_mut_ptr();
        let mut pushed = 0;
        {
            let mut sq = r.ring.submission();
            for &(i, dirfd, name) in &named {
                let slot = i as u32;
                let Ok(dest) = types::DestinationSlot::try_from_slot_target(slot) else {
                    continue;
                };
                let ops = [
                    opcode::OpenAt::new(types::Fd(dirfd), r.names[name..].as_ptr().cast())
                        .flags(libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
                        .file_index(Some(dest))
                        .build()
                        .flags(squeue::Flags::IO_LINK)
                        .user_data(OPEN | (i as u64) << 2),
                    // SAFETY (of the pointer): slot `i` is `FIRST_READ` bytes inside `slots`,
                    // which this call does not touch until every request has completed.
                    opcode::Read::new(
                        types::Fixed(slot),
                        unsafe { base.add(i * FIRST_READ) },
                        FIRST_READ as u32,
                    )
                    .build()
                    // Hard: the close runs even when the read fails or comes back short.
                    .flags(squeue::Flags::IO_HARDLINK)
                    .user_data(READ | (i as u64) << 2),
                    opcode::Close::new(types::Fixed(slot))
                        .build()
                        .user_data(CLOSE | (i as u64) << 2),
                ];
                // SAFETY: the name and the buffer outlive the requests (all are reaped below
                // before this returns, or the ring's memory is leaked); the queue has room for
                // 4 × BATCH entries and is empty at the start of every batch.
                if unsafe { sq.push_multiple(&ops) }.is_err() {
                    return false;
                }
                pushed += ops.len();
            }
        }
        let want = pushed;
        let mut seen = 0;
        while seen < want {
            match r.ring.submit_and_wait(want - seen) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => return false,
            }
            for cqe in r.ring.completion() {
                seen += 1;
                let (kind, i) = (cqe.user_data() & 3, (cqe.user_data() >> 2) as usize);
                let Some(got) = r.got.get_mut(i) else {
                    return false;
                };
                // A failed open cancels its read: the read's result tells either.
                if kind == READ {
                    *got = cqe.result();
                }
            }
        }
        true
    }

    /// A descriptor of the directory `rel` under `base`, opened once per batch.
    fn dir_fd(dirs: &mut Vec<(PathBuf, OwnedFd)>, base: &Path, rel: &str) -> Option<libc::c_int> {
        let known = |p: &PathBuf| {
            if rel.is_empty() {
                p == base
            } else {
                super::joined_is(base, rel, p)
            }
        };
        if let Some((_, fd)) = dirs.iter().find(|(p, _)| known(p)) {
            return Some(fd.as_raw_fd());
        }
        let dir = if rel.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rel)
        };
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let raw = fd.as_raw_fd();
        dirs.push((
            if rel.is_empty() {
                base.to_path_buf()
            } else {
                dir
            },
            fd,
        ));
        Some(raw)
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    use super::Ahead;

    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn take(_: &mut Ahead, _: usize, _: &mut dyn FnMut(&[u8])) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The ring must be there when CI says so (`PACKET_REQUIRE_IO_URING=1` in `.ci/run`), so
    /// these tests cannot pass by never taking the batched path; elsewhere a refusing kernel
    /// leaves only the fallback to test.
    fn ring_or_skip() -> bool {
        let here = available();
        if !here {
            assert!(
                std::env::var_os("PACKET_REQUIRE_IO_URING").is_none(),
                "io_uring was refused on a machine that must have it (kernel.io_uring_disabled, seccomp?)"
            );
            eprintln!("io_uring refused here: only the fallback is tested");
        }
        here
    }

    /// What `take` gave for each path, in order: `Some(bytes)` when read whole by the ring.
    fn taken(ahead: &mut Ahead, paths: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
        paths
            .iter()
            .map(|p| {
                let mut got = None;
                ahead
                    .take(p, &mut |b| got = Some(b.to_vec()))
                    .then(|| got.expect("whole was called"))
            })
            .collect()
    }

    #[test]
    fn small_files_come_whole_and_everything_else_is_left_to_the_caller() {
        if !ring_or_skip() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        // Over two batches, in two directories, of every size around the first read.
        let mut rels = Vec::new();
        let mut want = Vec::new();
        for i in 0..(BATCH + 7) {
            let len = [0, 1, 4096, FIRST_READ - 1, FIRST_READ, FIRST_READ + 1][i % 6];
            let bytes: Vec<u8> = (0..len).map(|k| (k * 31 + i) as u8).collect();
            let rel = if i % 2 == 0 {
                format!("sub/f{i}")
            } else {
                format!("f{i}")
            };
            fs::write(root.join(&rel), &bytes).unwrap();
            rels.push(rel);
            want.push((len < FIRST_READ).then_some(bytes));
        }
        // A missing file, a symlink (never followed) and a directory are left to the caller.
        std::os::unix::fs::symlink(root.join("f1"), root.join("link")).unwrap();
        for odd in ["missing", "link", "sub"] {
            rels.push(odd.to_string());
            want.push(None);
        }
        let paths: Vec<PathBuf> = rels.iter().map(|r| root.join(r)).collect();
        let mut ahead = Ahead::new(root, rels.iter().map(String::as_str));
        assert_eq!(taken(&mut ahead, &paths), want);
    }

    #[test]
    fn a_joined_path_is_recognised_without_building_it() {
        for (base, rel) in [("", "a/b"), ("/t", "a"), ("/t/", "a/b"), ("t", "x y/z")] {
            let path = Path::new(base).join(rel);
            assert!(joined_is(Path::new(base), rel, &path), "{base} + {rel}");
            assert!(!joined_is(Path::new(base), "a/c", &path), "{base} + a/c");
        }
        assert!(!joined_is(Path::new("/t"), "a", Path::new("/ta")));
    }

    #[test]
    fn a_path_out_of_order_or_another_aheads_batch_is_never_served() {
        if !ring_or_skip() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str| {
            let p = dir.path().join(name);
            fs::write(&p, name).unwrap();
            p
        };
        let (a, b, c, d) = (mk("a"), mk("b"), mk("c"), mk("d"));
        let mut first = Ahead::new(dir.path(), ["a", "b"]);
        let mut second = Ahead::new(dir.path(), ["c", "d"]);
        // Out of order: not served, and the expected path stays the next one.
        assert!(!first.take(&b, &mut |_| panic!("b is not next")));
        assert_eq!(
            taken(&mut first, std::slice::from_ref(&a)),
            [Some(b"a".to_vec())]
        );
        // The ring now holds `second`'s batch; `first` must read its own again, not `d`.
        assert_eq!(
            taken(&mut second, std::slice::from_ref(&c)),
            [Some(b"c".to_vec())]
        );
        assert_eq!(
            taken(&mut first, std::slice::from_ref(&b)),
            [Some(b"b".to_vec())]
        );
        assert_eq!(
            taken(&mut second, std::slice::from_ref(&d)),
            [Some(b"d".to_vec())]
        );
        // A file rewritten after its batch was read is read again by the caller's next Ahead.
        fs::write(&a, "changed").unwrap();
        let mut again = Ahead::new(dir.path(), ["a"]);
        assert_eq!(taken(&mut again, &[a]), [Some(b"changed".to_vec())]);
    }
}
