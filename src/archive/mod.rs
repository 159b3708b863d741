//! Packet archives: the tar form a packet travels in (reproducible ustar, optionally gzip),
//! reading one as checked entries, verifying one in a single streaming pass, and the two
//! commands on top, `pack` and `unpack`.

pub mod check;
pub mod format;
pub mod pack;
pub mod unpack;

pub use check::{ARCHIVE_RETAIN_LIMIT, check_archive, verify_path};
pub use format::*;
