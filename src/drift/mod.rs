//! Drift diagnosis: for a sealed file whose bytes no longer match, name the cause (BOM, line
//! ends, Unicode form or typographic folding, JSON `ensure_ascii` escapes, mojibake, a drifted
//! file name) and say how well it is proven, using only the current bytes and the profile
//! sealed at build time.
//!
//! Proof levels: `proven` when undoing the named causes on the current bytes gives back the
//! sealed SHA-256 exactly; `consistent` when the normalized-text digest (`norm/1`) sealed at
//! build time matches the current one, so the text is the same up to cosmetic drift but the
//! exact bytes cannot be rebuilt; otherwise the content changed.
//!
//! `undo` reverses one cause, [`search`] finds the set that proves a drift, [`names`] pairs
//! drifted file names, [`make`] makes drift as real tools do. The result types
//! ([`Diagnosis`], [`Cause`], [`Proof`]) are defined with the reject that carries them.

pub mod make;
pub mod names;
pub mod search;
mod undo;

pub use crate::reject::{Cause, Diagnosis, Proof};
pub use make::add_bom;
pub use names::{NameDrift, fold_name, pair_renamed};
pub use search::{DIAGNOSE_LIMIT, Finding, diagnose, examine, not_tried, too_large};
