//! The seal format and how it is made: the SHA-256 digest, the manifest and tree file, the pin,
//! the walk that lists what a packet holds, the seal record with its text profiles and JSON
//! forms, strict reading of our own JSON, and sealing itself, with the staging that makes every
//! write all-or-nothing.
//!
//! Profiles and JSON forms live here, not with drift: they are what sealing measures and
//! records. Drift diagnosis reads them later; nothing here depends on verification or drift.

pub mod batched;
pub mod build;
pub mod digest;
pub mod json;
pub mod manifest;
pub mod mapped;
pub mod pin;
pub mod prefetch;
pub mod profile;
pub mod record;
pub mod staging;
pub mod stream;
pub mod strict;
pub mod walk;

pub use build::{SealOptions, Sealed, TEMP_PREFIXES, build, seal_dir};
pub use record::{
    FileRecord, LazyFile, RESERVED_NAMES, Records, SEAL_RECORD_LIMIT, SEAL_RECORD_NAME,
    SEAL_SCHEMA, SealRecord,
};
