//! `packet` seals evidence into packets and proves, later and anywhere, that the bytes are
//! still the bytes that were sealed.
//!
//! A packet is a directory of payload files plus its seal: `SEAL.json` (the seal record:
//! lengths and text profiles), `HASH_MANIFEST.txt` (one SHA-256 per file, in the format
//! `sha256sum -c` reads) and `packet_tree.sha256` (the digest of the manifest: the tree hash
//! people pin). [`seal::build`] makes one, [`verify::verify`] re-checks it and names the cause
//! of any drift, [`rollback`] rejects rollback evidence that proves nothing, and [`selftest`]
//! proves every reject still fires.

pub mod archive;
pub mod digest;
pub mod drift;
pub mod json;
pub mod manifest;
pub mod pack;
pub mod parallel;
pub mod pin;
pub mod profile;
pub mod reject;
pub mod report;
pub mod restore;
pub mod rollback;
pub mod seal;
pub mod selftest;
pub mod staging;
pub mod strict;
pub mod unpack;
pub mod verify;
pub mod walk;

pub use reject::{Error, RejectCode};
pub use report::{Reject, Report, Verdict};
