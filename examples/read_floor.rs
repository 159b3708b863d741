//! The small-file floor of this machine: the least work any sealer must do on a tree of small
//! files, with none of a seal's. `bench/run.py` runs it beside `packet build` so that an
//! absolute files/s target can be judged against what the machine can do at all in the same
//! run, as the large-file rows are judged against `openssl speed`.
//!
//! What it does: lists the tree (`read_dir`, names sorted per directory, on one thread), then on
//! `THREADS` threads (default: the cores) opens, reads and closes each file through a Linux
//! io_uring, 32 files per `io_uring_enter(2)` with direct descriptors (the same I/O as
//! `packet build`'s batched path, `src/seal/batched.rs`), and SHA-256s the bytes (`sha2`, the
//! same code as packet's). What it leaves out, all of which a seal needs: no manifest, no
//! stamp or length checks, no symlink or special-file rules, no profile of text, no tree hash,
//! no comparison with an old seal, no error handling beyond stopping.
//!
//! Usage: `read_floor DIR [THREADS]`. Prints `files N bytes B xor X` (X: the XOR of the
//! first 8 bytes of every digest, so the hashing cannot be skipped). The three seal files at
//! the top of DIR are left out, as `packet build` leaves them out of the payload. Files of
//! 64 KiB or more are read again in full with `read(2)`: the floor is meant for small files.
//! Linux only; elsewhere it says so and exits with 2.

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("read_floor: Linux only (io_uring)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use io_uring::{IoUring, opcode, squeue, types};
    use sha2::{Digest, Sha256};
    use std::ffi::CString;
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    const BATCH: usize = 32;
    const FIRST_READ: usize = 64 * 1024;
    const SEAL_FILES: [&str; 3] = ["HASH_MANIFEST.txt", "packet_tree.sha256", "SEAL.json"];

    /// One directory and its regular files' names, sorted.
    struct Dir {
        path: PathBuf,
        names: Vec<CString>,
    }

    fn fail(what: &str, e: impl std::fmt::Display) -> ! {
        eprintln!("read_floor: {what}: {e}");
        std::process::exit(1);
    }

    pub fn main() {
        let mut args = std::env::args_os().skip(1);
        let Some(root) = args.next().map(PathBuf::from) else {
            fail("usage", "read_floor DIR [THREADS]");
        };
        let threads = args
            .next()
            .map(|t| t.to_string_lossy().parse::<usize>().unwrap_or(0))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let dirs = list(&root);
        // A job is up to BATCH neighbouring files of one directory, as packet's chunks are.
        let jobs: Vec<(usize, usize)> = dirs
            .iter()
            .enumerate()
            .flat_map(|(d, dir)| (0..dir.names.len()).step_by(BATCH).map(move |s| (d, s)))
            .collect();
        let next = AtomicUsize::new(0);
        let (files, bytes, xor) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let (f, b, x) = work(&dirs, &jobs, &next);
                    files.fetch_add(f, Ordering::Relaxed);
                    bytes.fetch_add(b, Ordering::Relaxed);
                    xor.fetch_xor(x, Ordering::Relaxed);
                });
            }
        });
        println!(
            "files {} bytes {} xor {:016x}",
            files.into_inner(),
            bytes.into_inner(),
            xor.into_inner()
        );
    }

    fn list(root: &Path) -> Vec<Dir> {
        let mut dirs = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(path) = stack.pop() {
            let mut names = Vec::new();
            let entries = std::fs::read_dir(&path).unwrap_or_else(|e| fail("read_dir", e));
            for entry in entries {
                let entry = entry.unwrap_or_else(|e| fail("read_dir", e));
                let kind = entry.file_type().unwrap_or_else(|e| fail("file type", e));
                let name = entry.file_name();
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file()
                    && !(path == root && SEAL_FILES.iter().any(|s| name.as_bytes() == s.as_bytes()))
                {
                    names.push(CString::new(name.as_bytes()).unwrap_or_else(|e| fail("name", e)));
                }
            }
            names.sort();
            dirs.push(Dir { path, names });
        }
        dirs
    }

    /// Takes jobs until none are left; returns (files, bytes, xor of digests' first 8 bytes).
    fn work(dirs: &[Dir], jobs: &[(usize, usize)], next: &AtomicUsize) -> (u64, u64, u64) {
        let mut ring: IoUring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(4 * BATCH as u32)
            .unwrap_or_else(|e| fail("io_uring", e));
        ring.submitter()
            .register_files_sparse(BATCH as u32)
            .unwrap_or_else(|e| fail("io_uring files", e));
        let mut slots = vec![0u8; BATCH * FIRST_READ];
        let (mut files, mut bytes, mut xor) = (0u64, 0u64, 0u64);
        let mut open_dir: Option<(usize, OwnedFd)> = None;
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(d, start)) = jobs.get(j) else {
                break;
            };
            let dir = &dirs[d];
            if open_dir.as_ref().is_none_or(|(at, _)| *at != d) {
                let fd = std::fs::File::open(&dir.path).unwrap_or_else(|e| fail("open dir", e));
                open_dir = Some((d, fd.into()));
            }
            let dirfd = open_dir.as_ref().map_or(-1, |(_, fd)| fd.as_raw_fd());
            let names = &dir.names[start..(start + BATCH).min(dir.names.len())];
            let got = read_batch(&mut ring, &mut slots, dirfd, names);
            for (i, name) in names.iter().enumerate() {
                let n = usize::try_from(got[i]).unwrap_or_else(|_| fail("read", got[i]));
                let digest = if n < FIRST_READ {
                    bytes += n as u64;
                    Sha256::digest(&slots[i * FIRST_READ..i * FIRST_READ + n])
                } else {
                    let path = dir.path.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
                    let (digest, n) = whole(&path);
                    bytes += n;
                    digest
                };
                let first: [u8; 8] = digest[..8].try_into().unwrap_or([0; 8]);
                xor ^= u64::from_le_bytes(first);
                files += 1;
            }
        }
        (files, bytes, xor)
    }

    /// Open, read FIRST_READ bytes and close each name through the ring; each file's read
    /// result (bytes or a negative errno).
    fn read_batch(
        ring: &mut IoUring,
        slots: &mut [u8],
        dirfd: i32,
        names: &[CString],
    ) -> [i32; BATCH] {
        let mut got = [-libc::ECANCELED; BATCH];
        let base = slots.as_mut_ptr();
        {
            let mut sq = ring.submission();
            for (i, name) in names.iter().enumerate() {
                let slot = i as u32;
                let dest = types::DestinationSlot::try_from_slot_target(slot)
                    .unwrap_or_else(|_| fail("slot", slot));
                let ops = [
                    opcode::OpenAt::new(types::Fd(dirfd), name.as_ptr())
                        .flags(libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
                        .file_index(Some(dest))
                        .build()
                        .flags(squeue::Flags::IO_LINK)
                        .user_data((i as u64) << 2),
                    // SAFETY (of the pointer): slot i is FIRST_READ bytes inside `slots`, not
                    // touched until every request has completed below.
                    opcode::Read::new(
                        types::Fixed(slot),
                        unsafe { base.add(i * FIRST_READ) },
                        FIRST_READ as u32,
                    )
                    .build()
                    .flags(squeue::Flags::IO_HARDLINK)
                    .user_data(1 | (i as u64) << 2),
                    opcode::Close::new(types::Fixed(slot))
                        .build()
                        .user_data(2 | (i as u64) << 2),
                ];
                // SAFETY: names and buffers outlive the requests, all reaped before return;
                // the queue (4 × BATCH) is empty at the start of every batch.
                unsafe { sq.push_multiple(&ops) }.unwrap_or_else(|e| fail("queue", e));
            }
        }
        let (want, mut seen) = (3 * names.len(), 0);
        while seen < want {
            if let Err(e) = ring.submit_and_wait(want - seen)
                && e.raw_os_error() != Some(libc::EINTR)
            {
                fail("io_uring_enter", e);
            }
            for cqe in ring.completion() {
                seen += 1;
                if cqe.user_data() & 3 == 1 {
                    got[(cqe.user_data() >> 2) as usize] = cqe.result();
                }
            }
        }
        got
    }

    fn whole(path: &Path) -> (sha2::digest::Output<Sha256>, u64) {
        let mut file = std::fs::File::open(path).unwrap_or_else(|e| fail("open", e));
        let (mut hasher, mut buf, mut n) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    hasher.update(&buf[..k]);
                    n += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => fail("read", e),
            }
        }
        (hasher.finalize(), n)
    }
}
