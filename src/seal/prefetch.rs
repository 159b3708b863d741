//! Hashing at the page cache's pace: touching the pages just ahead of the bytes being hashed,
//! so their fetch overlaps the SHA-256 rounds instead of stalling them.
//!
//! Used by the mapped reads ([`super::mapped`]) and by [`super::digest::Digest::of`] for bytes
//! already in memory but not in cache (a file read whole into a buffer).

/// The slice size that lets the hash run at the page cache's pace: small enough that the
/// pages [`touch_ahead`] starts fetching for the next slice arrive while this one is hashed.
pub const SLICE: usize = 16 * 1024;

/// How far ahead of the slice being passed on its pages are touched.
const AHEAD: usize = 8 * 1024;

/// Starts fetching the first cache line of every 4 KiB page at `range` (offsets into
/// `bytes`, clamped to it), without waiting for it. The hardware prefetcher stops at page
/// boundaries, and in a virtual machine a page's first touch also pays a two-level
/// translation walk: on a Firecracker guest (Intel Xeon, SHA-NI) hashing a 256 MiB file from
/// its mapping ran at 1.27 GB/s alone and 1.53 GB/s with each page touched 8 KiB ahead, against
/// 1.77 GB/s for the same hash on a buffer in cache. A prefetch never faults, so a page
/// truncated away is left to the SIGBUS guard as before.
#[inline]
fn touch_ahead(bytes: &[u8], range: std::ops::Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut at = range.start;
        while at < range.end.min(bytes.len()) {
            // SAFETY: the address is inside `bytes`; a prefetch reads nothing architecturally.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(at) as *const i8);
            }
            at += 4096;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (bytes, range);
    }
}

/// Feeds `bytes` to `update` in order, in slices of at most `slice` bytes (0 counts as 1),
/// touching the pages [`AHEAD`] bytes past each slice before passing it on. Bytes that fit
/// one slice (empty ones too) go in one call.
pub fn in_slices(bytes: &[u8], slice: usize, mut update: impl FnMut(&[u8])) {
    let slice = slice.max(1);
    if bytes.len() <= slice {
        update(bytes);
        return;
    }
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + slice).min(bytes.len());
        touch_ahead(bytes, at + AHEAD..end + AHEAD);
        update(&bytes[at..end]);
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_passed_once_in_order_whatever_the_length() {
        for len in [0, 1, SLICE, SLICE + 1, 2 * SLICE, 5 * SLICE + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut seen = Vec::new();
            let mut calls = 0;
            in_slices(&bytes, SLICE, |part| {
                assert!(part.len() <= SLICE);
                seen.extend_from_slice(part);
                calls += 1;
            });
            assert_eq!(seen, bytes, "len {len}");
            let want = len.div_ceil(SLICE).max(1);
            assert_eq!(calls, want, "len {len}");
            // Touching past the end is clamped, never out of bounds.
            touch_ahead(&bytes, len..len + 3 * AHEAD);
        }
    }
}
