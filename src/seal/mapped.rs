//! Reading a large file through read-only mappings, so hashing sees the page cache itself and
//! not a copy of it: on 256 MiB files the copy a `read` makes cost a fifth of the time per
//! byte, and it lands on the cores the hashing needs.
//!
//! A mapped file that another process truncates faults its reader with SIGBUS where a `read`
//! would just end early. A process-wide SIGBUS handler, installed on first use, therefore turns
//! a fault inside the window the faulting thread is reading into zero-filled pages and records
//! where it happened (the technique of EFL's `eina_mmap` safety and Sapling's indexedlog); the
//! caller refuses that digest as changed while read. A SIGBUS anywhere else goes to the handler
//! that was there before (Rust's own, or the default: the process dies as it would have).
//!
//! Memory stays bounded: one window of [`WINDOW`] bytes is mapped at a time per thread, and
//! unmapped before the next, so mapped pages never add more than that per thread to the
//! resident set.
//!
//! Only on 64-bit Linux: there file offsets fit `off_t` and thread-locals are plain TLS that a
//! signal handler may touch. Elsewhere every file is read.

use super::prefetch;
use std::io;

/// Bytes mapped at once. Large enough that the map and unmap calls cost nothing per byte,
/// small enough that the mapped pages (counted in the resident set) stay a few MiB per thread.
pub const WINDOW: usize = 4 * 1024 * 1024;

/// How reading through mappings ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Mapped {
    /// The first window could not be mapped (a file system that does not map, no address
    /// space): nothing was passed on, so the caller reads the file instead.
    Refused,
    /// Every byte up to the end given was passed on; `truncated_at` is the file offset from
    /// which the pages were gone (the file was truncated while mapped) and zeros were passed
    /// in their place, when that happened.
    Read {
        /// First offset (bytes from the start of the file) whose page faulted.
        truncated_at: Option<u64>,
    },
}

/// Whether a mapping can start at file offset `offset`: mapping is supported here and the
/// offset is a multiple of the page size.
pub fn can_start_at(offset: u64) -> bool {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        offset.is_multiple_of(rustix::param::page_size() as u64)
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    {
        let _ = offset;
        false
    }
}

/// Passes the bytes of `file` from offset `from` (a multiple of the page size) up to `to` to
/// `each`, in order, in slices of at most `slice` bytes, reading them through mappings of
/// [`WINDOW`] bytes. Errors: a window after the first that cannot be mapped (the bytes before
/// it were passed on already, so there is no falling back to a read).
pub fn each_slice(
    file: &std::fs::File,
    from: u64,
    to: u64,
    slice: usize,
    each: &mut dyn FnMut(&[u8]),
) -> io::Result<Mapped> {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        if !imp::install() {
            return Ok(Mapped::Refused);
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(file);
        let mut offset = from;
        let mut truncated_at = None;
        while offset < to {
            let len = (to - offset).min(WINDOW as u64) as usize;
            let window = match imp::Window::map(fd, offset, len) {
                Ok(w) => w,
                Err(_) if offset == from => return Ok(Mapped::Refused),
                Err(e) => return Err(e),
            };
            prefetch::in_slices(window.bytes(), slice, &mut *each);
            if let (None, Some(at)) = (truncated_at, window.fault()) {
                truncated_at = Some(offset + at as u64);
            }
            drop(window);
            offset += len as u64;
        }
        Ok(Mapped::Read { truncated_at })
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    {
        let _ = (file, from, to, slice, each);
        Ok(Mapped::Refused)
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::io;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering, compiler_fence};

    /// No fault recorded.
    const NONE: usize = usize::MAX;

    thread_local! {
        // Read and written by the signal handler, so atomics (a plain cell written there is
        // undefined behaviour, and the compiler could fold its read), const-initialised with
        // no destructor: on 64-bit Linux that is a plain TLS access, no lazy set-up, no malloc.
        /// First address and length of the window this thread is reading; length 0 for none.
        static START: AtomicUsize = const { AtomicUsize::new(0) };
        static LEN: AtomicUsize = const { AtomicUsize::new(0) };
        /// Offset in the active window of its first faulting page, [`NONE`] if none faulted.
        static FAULT: AtomicUsize = const { AtomicUsize::new(NONE) };
    }

    /// The SIGBUS disposition before ours, to hand faults that are not ours to.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    /// Whether our handler is in place.
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    static PAGE: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn install() -> bool {
        *INSTALLED.get_or_init(|| {
            PAGE.store(rustix::param::page_size(), Ordering::Relaxed);
            // SAFETY: sigaction with valid pointers; the handler only touches the cells above,
            // atomics and async-signal-safe system calls.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                    return false;
                }
                let _ = PREVIOUS.set(old);
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_sigbus as *const () as usize;
                // On the alternate stack Rust gives each thread, like its own handler: a fault
                // handed on to it from a thread whose stack overflowed must still be reported.
                new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) == 0
            }
        })
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        let start = START.with(|a| a.load(Ordering::Relaxed));
        let len = LEN.with(|a| a.load(Ordering::Relaxed));
        // si_code > 0: raised by the kernel for a fault, not sent by kill(2), so si_addr is
        // the faulting address.
        if code > 0 && len != 0 && (start..start + len).contains(&addr) {
            // Everything past a truncation is gone, so the rest of the window is replaced at
            // once: one fault per truncation, not one per page.
            let page = addr & !(PAGE.load(Ordering::Relaxed) - 1);
            // SAFETY: the range lies inside this thread's own mapping, which nothing else
            // reads; MAP_FIXED replaces exactly it.
            let p = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    start + len - page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                FAULT.with(|f| {
                    let _ = f.compare_exchange(
                        NONE,
                        page - start,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                });
                return;
            }
            // The replacement could not be mapped (no memory, no map slots left): the fault
            // goes on below and ends the process, which prints no verdict.
        }
        let prev = PREVIOUS.get().map(|p| (p.sa_sigaction, p.sa_flags));
        match prev {
            Some((h, flags)) if h != libc::SIG_DFL && h != libc::SIG_IGN => {
                // SAFETY: a handler installed with sigaction has one of these two shapes,
                // told apart by SA_SIGINFO.
                unsafe {
                    if flags & libc::SA_SIGINFO != 0 {
                        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            std::mem::transmute(h);
                        f(sig, info, ctx);
                    } else {
                        let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
                        f(sig);
                    }
                }
            }
            _ => {
                // No one else's: restore the default and return, so the faulting access runs
                // again and the process dies of SIGBUS as it would have without us.
                // SAFETY: sigaction is async-signal-safe.
                unsafe {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                }
            }
        }
    }

    /// One mapped window, unmapped on drop, when the guard of any window it was opened inside
    /// (a nested read on the same thread) is put back.
    pub(super) struct Window {
        ptr: *mut libc::c_void,
        len: usize,
        outer: (usize, usize, usize),
    }

    impl Window {
        pub(super) fn map(fd: libc::c_int, offset: u64, len: usize) -> io::Result<Window> {
            let offset = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: a fresh shared read-only mapping the kernel places; checked below.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    fd,
                    offset,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: advice on our own mapping; failure only loses the hint.
            unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
            let outer = (
                START.with(|a| a.swap(ptr as usize, Ordering::Relaxed)),
                LEN.with(|a| a.swap(len, Ordering::Relaxed)),
                FAULT.with(|f| f.swap(NONE, Ordering::Relaxed)),
            );
            // The handler runs on this thread: what it reads must be stored before the
            // first access to the window, and what it writes read after the last.
            compiler_fence(Ordering::SeqCst);
            Ok(Window { ptr, len, outer })
        }

        pub(super) fn bytes(&self) -> &[u8] {
            // SAFETY: the mapping is PROT_READ and `len` long for the life of `self`; a page
            // lost to truncation is replaced by zeros by the handler instead of faulting.
            // Accepted risk, as for every reader of a mapped file: another process may write
            // the bytes under this slice. The caller's before-and-after stamps refuse such a
            // digest, as they do for a read.
            unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
        }

        /// The offset in this window of its first page that faulted.
        pub(super) fn fault(&self) -> Option<usize> {
            compiler_fence(Ordering::SeqCst);
            let at = FAULT.with(|f| f.load(Ordering::Relaxed));
            (at != NONE).then_some(at)
        }
    }

    impl Drop for Window {
        fn drop(&mut self) {
            compiler_fence(Ordering::SeqCst);
            let (start, len, fault) = self.outer;
            START.with(|a| a.store(start, Ordering::Relaxed));
            LEN.with(|a| a.store(len, Ordering::Relaxed));
            FAULT.with(|f| f.store(fault, Ordering::Relaxed));
            // SAFETY: unmapping exactly what `map` mapped.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 % 253) as u8).collect()
    }

    #[test]
    fn the_mapped_bytes_are_the_file_in_order_in_bounded_slices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Over two windows, ending mid-page, starting past a first read.
        let data = pattern(WINDOW * 2 + 12_345);
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let (mut seen, mut largest) = (Vec::new(), 0);
        let out = each_slice(&file, 65_536, data.len() as u64, 1 << 20, &mut |b| {
            largest = largest.max(b.len());
            seen.extend_from_slice(b);
        })
        .unwrap();
        assert_eq!(out, Mapped::Read { truncated_at: None });
        assert_eq!(seen, &data[65_536..]);
        assert_eq!(largest, 1 << 20);
    }

    #[test]
    fn a_file_truncated_while_mapped_reads_as_zeros_and_says_where_not_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinks");
        let data = pattern(WINDOW * 2);
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let cut = 1_000_000u64;
        let (mut seen, mut first) = (Vec::new(), true);
        // Truncating after the first slice is handed on: the rest of that window and all of
        // the next are past the end, which without the handler kills the process.
        let out = each_slice(&file, 0, data.len() as u64, 1 << 19, &mut |b| {
            seen.extend_from_slice(b);
            if first {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                first = false;
            }
        })
        .unwrap();
        let page = rustix::param::page_size() as u64;
        let at = match out {
            Mapped::Read {
                truncated_at: Some(at),
            } => at,
            other => panic!("the truncation went unnoticed: {other:?}"),
        };
        assert_eq!(
            at,
            cut.div_ceil(page) * page,
            "the first page past the new end"
        );
        assert_eq!(seen.len(), data.len());
        assert_eq!(&seen[..1 << 19], &data[..1 << 19]);
        assert!(seen[at as usize..].iter().all(|&b| b == 0));
        // The guard is per window: after it, the handler still knows no other mapping.
        let again = std::fs::File::open(&path).unwrap();
        let mut n = 0;
        assert_eq!(
            each_slice(&again, 0, cut, 4096, &mut |b| n += b.len()).unwrap(),
            Mapped::Read { truncated_at: None }
        );
        assert_eq!(n as u64, cut);
    }

    #[test]
    fn a_read_nested_inside_another_leaves_the_outer_window_guarded() {
        let dir = tempfile::tempdir().unwrap();
        let (outer, inner) = (dir.path().join("outer"), dir.path().join("inner"));
        std::fs::write(&outer, pattern(WINDOW)).unwrap();
        std::fs::write(&inner, pattern(WINDOW / 2)).unwrap();
        let file = std::fs::File::open(&outer).unwrap();
        let (mut first, mut sum) = (true, 0u64);
        // After the nested read ends, the outer file is cut: its window must still be ours.
        // Every byte is touched, as hashing does: a page never read never faults.
        let out = each_slice(&file, 0, WINDOW as u64, 1 << 20, &mut |b| {
            sum += b.iter().map(|&x| x as u64).sum::<u64>();
            if first {
                first = false;
                let nested = std::fs::File::open(&inner).unwrap();
                let mut n = 0;
                let got = each_slice(&nested, 0, (WINDOW / 2) as u64, 1 << 16, &mut |b| {
                    n += b.len()
                });
                assert_eq!(got.unwrap(), Mapped::Read { truncated_at: None });
                assert_eq!(n, WINDOW / 2);
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&outer)
                    .unwrap()
                    .set_len(4096)
                    .unwrap();
            }
        })
        .unwrap();
        assert_eq!(
            out,
            Mapped::Read {
                // The first slice was read whole before the cut; the next one faults.
                truncated_at: Some(1 << 20)
            }
        );
        assert!(sum > 0);
    }
}
