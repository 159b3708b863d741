//! `packet` seals evidence into packets and proves, later and anywhere, that the bytes are
//! still the bytes that were sealed.
//!
//! A packet is a directory of payload files plus its seal: `SEAL.json` (the seal record:
//! lengths and text profiles), `HASH_MANIFEST.txt` (one SHA-256 per file, in the format
//! `sha256sum -c` reads) and `packet_tree.sha256` (the digest of the manifest: the tree hash
//! people pin). [`seal::build()`] makes one, [`verify::verify`] re-checks it and names the cause
//! of any drift, [`rollback`] rejects rollback evidence that proves nothing, and [`selftest`]
//! proves every reject still fires.
//!
//! The modules are grouped by concept, and data flows one way through them:
//! [`reject`] (the codes and what a reject carries) → [`seal`] (digest, manifest, walk, seal
//! record, sealing) → [`verify`] (re-checking, and its report) → [`drift`] (naming the cause)
//! → the commands built on top ([`archive`], [`restore`], [`rollback`], [`selftest`]).
//! [`state`] is reserved for database state proofs. The re-exports below keep every module
//! reachable by its short path (`packet::digest`, `packet::report`, ...).

pub mod archive;
pub mod drift;
pub mod gate;
pub mod parallel;
pub mod reject;
pub mod restore;
pub mod rollback;
pub mod seal;
pub mod selftest;
pub mod state;
pub mod verify;

pub use archive::{pack, unpack};
pub use reject::{Error, Reject, RejectCode};
pub use seal::{digest, json, manifest, pin, profile, staging, strict, walk};
pub use verify::report;
pub use verify::report::{Report, Verdict};
