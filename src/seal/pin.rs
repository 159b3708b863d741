//! Pins: a tree hash published elsewhere (a ticket, a review, a release note) that a packet must
//! match. Documents cite digests in full or abbreviated as prefix and suffix around an ellipsis
//! (`72b24b8a…787bb2`, `72b24b8a...787bb2`); a pin checks exactly the digits it gives.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

/// Fewest hex digits a pin may check (32 bits); anything shorter proves too little.
pub const MIN_PIN_DIGITS: usize = 8;

/// An expected tree hash, full or abbreviated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    prefix: String,
    suffix: String,
    given: String,
}

/// Why a pin could not be parsed (a usage error: exit 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad pin {given:?}: {why}")]
pub struct PinError {
    given: String,
    why: String,
}

impl FromStr for Pin {
    type Err = PinError;

    /// Accepts 64 hex digits; `PREFIX…SUFFIX` or `PREFIX...SUFFIX` (either side may be empty,
    /// not both); or a bare prefix. An optional `sha256:` label is ignored, case is ignored.
    /// At least [`MIN_PIN_DIGITS`] digits in all.
    fn from_str(s: &str) -> Result<Pin, PinError> {
        let err = |why: &str| PinError {
            given: s.to_string(),
            why: why.to_string(),
        };
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_prefix("sha256:").unwrap_or(&t).to_string();
        let parts: Vec<&str> = if t.contains('…') {
            t.split('…').collect()
        } else if t.contains("...") {
            t.split("...").collect()
        } else {
            vec![t.as_str(), ""]
        };
        let [prefix, suffix] = parts[..] else {
            return Err(err("more than one ellipsis"));
        };
        if !(prefix.bytes().chain(suffix.bytes())).all(|b| b.is_ascii_hexdigit()) {
            return Err(err(
                "only hex digits and one ellipsis (… or ...) are allowed",
            ));
        }
        let digits = prefix.len() + suffix.len();
        if digits > 64 {
            return Err(err("more than 64 hex digits"));
        }
        if digits < MIN_PIN_DIGITS {
            return Err(err(&format!(
                "fewer than {MIN_PIN_DIGITS} hex digits checks too little"
            )));
        }
        Ok(Pin {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            given: s.to_string(),
        })
    }
}

impl Pin {
    /// How many hex digits of the digest this pin checks (64 for a full digest).
    pub fn hex_digits(&self) -> usize {
        self.prefix.len() + self.suffix.len()
    }

    /// True when `digest` starts with the prefix and ends with the suffix.
    pub fn matches(&self, digest: &Digest) -> bool {
        let hex = digest.to_hex();
        hex.starts_with(&self.prefix) && hex.ends_with(&self.suffix)
    }

    /// The pin as the user gave it.
    pub fn given(&self) -> &str {
        &self.given
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Digest {
        Digest::of(b"abc") // ba7816bf...f20015ad
    }

    #[test]
    fn full_and_abbreviated_forms() {
        let full: Pin = d().to_hex().parse().unwrap();
        assert_eq!(full.hex_digits(), 64);
        assert!(full.matches(&d()));
        for form in [
            "ba7816bf…f20015ad",
            "ba7816bf...f20015ad",
            "BA7816BF...F20015AD",
            "sha256:ba7816bf",
            "SHA256:BA7816BF",
            "…f20015ad",
        ] {
            let p: Pin = form.parse().unwrap();
            assert!(p.matches(&d()), "{form}");
        }
        assert_eq!("ba7816bf…f20015ad".parse::<Pin>().unwrap().hex_digits(), 16);
    }

    #[test]
    fn mismatch_in_any_checked_digit() {
        assert!(!"ba7816bf…f20015ae".parse::<Pin>().unwrap().matches(&d()));
        assert!(!"ca7816bf...f20015ad".parse::<Pin>().unwrap().matches(&d()));
        assert!(
            !Digest::of(b"x")
                .to_hex()
                .parse::<Pin>()
                .unwrap()
                .matches(&d())
        );
    }

    #[test]
    fn malformed_pins_are_refused() {
        for bad in [
            "",
            "ba78",
            "ba78…16…bf00",
            "xyz12345678",
            &"a".repeat(65),
            "ba7816bf..f2",
        ] {
            assert!(bad.parse::<Pin>().is_err(), "{bad:?} accepted");
        }
    }
}
