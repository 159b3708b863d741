//! The canonical encoding of database state, version `packet.state/1` (docs/FORMAT.md): how a
//! value, a row, a table and a whole snapshot become bytes to hash, so that a digest depends
//! on the values and nothing else: not on page layout, row order, rowids or collation.
//!
//! Every value is tagged and length-prefixed, so no two rows can encode alike: SQLite's own
//! `dbhash` hashes text and blobs without lengths, and ('a','3b') collides with ('a3','b')
//! there. A table's content digest is over the *sorted* per-row digests: a multiset, so
//! physical order does not count and duplicate rows do (unlike XOR or sums of digests).
//! Sorting spills to temporary files past [`SPILL_ROWS`], so memory stays bounded.

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::io::{self, BufReader, BufWriter, Read, Write};

/// Version of this encoding, hashed into every table and snapshot digest.
pub const ENCODING: &str = "packet.state/1";

/// Row digests held in memory before a sorted run is spilled to a temporary file (32 bytes
/// each: 1,048,576 rows are 32 MiB).
pub const SPILL_ROWS: usize = 1 << 20;

/// One value as the database returned it. Tags: 0 NULL, 1 integer (64-bit two's complement,
/// big-endian), 2 real (IEEE 754 binary64 bits, big-endian: `-0.0` and every NaN payload are
/// kept apart), 3 text (the bytes as stored, never normalized), 4 blob.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number, by its exact bits.
    Real(f64),
    /// Text, as bytes.
    Text(&'a [u8]),
    /// A blob.
    Blob(&'a [u8]),
}

impl Value<'_> {
    /// Appends the tagged, length-prefixed encoding: tag byte, then for integers and reals 8
    /// bytes, for text and blobs an 8-byte big-endian length and the bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Null => out.push(0),
            Value::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Real(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::Text(b) | Value::Blob(b) => {
                out.push(if matches!(self, Value::Text(_)) { 3 } else { 4 });
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

/// The digest of one row: SHA-256 of the column count (8 bytes, big-endian) and each value's
/// encoding in column order. `buf` is scratch space reused from row to row.
pub fn row_digest(values: &[Value<'_>], buf: &mut Vec<u8>) -> [u8; 32] {
    let mut row = RowEncoder::begin(buf, values.len());
    for v in values {
        row.push(v);
    }
    row.finish()
}

/// [`row_digest`] a value at a time, for rows whose values borrow from a cursor.
pub struct RowEncoder<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> RowEncoder<'b> {
    /// Starts a row of `columns` values in the scratch buffer `buf`.
    pub fn begin(buf: &'b mut Vec<u8>, columns: usize) -> RowEncoder<'b> {
        buf.clear();
        buf.extend_from_slice(&(columns as u64).to_be_bytes());
        RowEncoder { buf }
    }

    /// Appends the next value.
    pub fn push(&mut self, v: &Value<'_>) {
        v.encode(self.buf);
    }

    /// The row's digest.
    pub fn finish(self) -> [u8; 32] {
        Sha256::digest(&self.buf[..]).into()
    }
}

/// Collects a table's row digests and gives its content digest: SHA-256 of [`ENCODING`], the
/// row count and the row digests in ascending byte order.
pub struct Multiset {
    rows: u64,
    held: Vec<[u8; 32]>,
    runs: Vec<tempfile::NamedTempFile>,
    spill_at: usize,
}

impl Default for Multiset {
    fn default() -> Self {
        Multiset::with_spill(SPILL_ROWS)
    }
}

impl Multiset {
    /// A multiset that spills a sorted run every `spill_at` rows.
    pub fn with_spill(spill_at: usize) -> Multiset {
        Multiset {
            rows: 0,
            held: Vec::new(),
            runs: Vec::new(),
            spill_at: spill_at.max(1),
        }
    }

    /// Adds one row digest. Errors only when a spill cannot be written.
    pub fn add(&mut self, d: [u8; 32]) -> io::Result<()> {
        self.rows += 1;
        self.held.push(d);
        if self.held.len() >= self.spill_at {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        sort(&mut self.held);
        let mut run = tempfile::Builder::new()
            .prefix(".packet-state-run-")
            .tempfile()?;
        {
            let mut w = BufWriter::new(run.as_file_mut());
            for d in &self.held {
                w.write_all(d)?;
            }
            w.flush()?;
        }
        self.held.clear();
        self.runs.push(run);
        Ok(())
    }

    /// Adds every row digest of `other` (a part of the same table read elsewhere, such as
    /// another block range): the result is as if each had been added here. Errors only when a
    /// spill cannot be written.
    pub fn merge(&mut self, mut other: Multiset) -> io::Result<()> {
        self.rows += other.rows;
        self.runs.append(&mut other.runs);
        if self.held.is_empty() {
            // Take the other's digests as they are: no second copy in memory.
            std::mem::swap(&mut self.held, &mut other.held);
        } else {
            self.held.append(&mut other.held);
        }
        if self.held.len() >= self.spill_at {
            self.spill()?;
        }
        Ok(())
    }

    /// Rows added.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The content digest (a k-way merge of the spilled runs and what is held).
    pub fn finish(mut self) -> io::Result<Digest> {
        let mut h = Sha256::new();
        h.update(ENCODING.as_bytes());
        h.update(b"\0table\0");
        h.update(self.rows.to_be_bytes());
        sort(&mut self.held);
        if self.runs.is_empty() {
            for d in &self.held {
                h.update(d);
            }
            return Ok(Digest(h.finalize().into()));
        }
        let mut readers: Vec<Box<dyn Read>> = Vec::new();
        for run in &self.runs {
            let mut f = run.reopen()?;
            io::Seek::seek(&mut f, io::SeekFrom::Start(0))?;
            readers.push(Box::new(BufReader::new(f)));
        }
        let held = std::mem::take(&mut self.held);
        let mut held = held.into_iter();
        let mut heads: Vec<Option<[u8; 32]>> = Vec::new();
        for r in &mut readers {
            heads.push(next_digest(r.as_mut())?);
        }
        let mut held_head = held.next();
        loop {
            let mut best: Option<(usize, [u8; 32])> = None;
            for (i, d) in heads.iter().enumerate() {
                if let Some(d) = d
                    && best.is_none_or(|(_, b)| *d < b)
                {
                    best = Some((i, *d));
                }
            }
            match (best, held_head) {
                (Some((_, b)), Some(m)) if m <= b => {
                    h.update(m);
                    held_head = held.next();
                }
                (Some((i, b)), _) => {
                    h.update(b);
                    heads[i] = next_digest(readers[i].as_mut())?;
                }
                (None, Some(m)) => {
                    h.update(m);
                    held_head = held.next();
                }
                (None, None) => break,
            }
        }
        Ok(Digest(h.finalize().into()))
    }
}

/// Sorts row digests ascending by their bytes, on every core: compared as four big-endian
/// words, which orders them exactly as their bytes and costs no `memcmp` call per comparison.
fn sort(held: &mut [[u8; 32]]) {
    use rayon::slice::ParallelSliceMut;
    fn key(d: &[u8; 32]) -> [u64; 4] {
        let w = |i: usize| u64::from_be_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        [w(0), w(1), w(2), w(3)]
    }
    held.par_sort_unstable_by(|a, b| key(a).cmp(&key(b)));
}

fn next_digest(r: &mut dyn Read) -> io::Result<Option<[u8; 32]>> {
    let mut d = [0u8; 32];
    match r.read_exact(&mut d) {
        Ok(()) => Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Value<'_>]) -> [u8; 32] {
        row_digest(values, &mut Vec::new())
    }

    #[test]
    fn values_are_tagged_and_length_prefixed() {
        // dbhash's collision: ('a','3b') and ('a3','b').
        let a = row(&[Value::Text(b"a"), Value::Text(b"3b")]);
        let b = row(&[Value::Text(b"a3"), Value::Text(b"b")]);
        assert_ne!(a, b);
        // Type-exact: an integer is not the real of equal value, text is not a blob, NULL is
        // not empty text, and a float's last bit counts.
        assert_ne!(row(&[Value::Integer(1)]), row(&[Value::Real(1.0)]));
        assert_ne!(row(&[Value::Text(b"x")]), row(&[Value::Blob(b"x")]));
        assert_ne!(row(&[Value::Null]), row(&[Value::Text(b"")]));
        let f = 0.1f64;
        assert_ne!(
            row(&[Value::Real(f)]),
            row(&[Value::Real(f64::from_bits(f.to_bits() + 1))])
        );
        assert_ne!(row(&[Value::Real(0.0)]), row(&[Value::Real(-0.0)]));
        // NFC and NFD are different bytes, so different rows.
        assert_ne!(
            row(&[Value::Text("é".as_bytes())]),
            row(&[Value::Text("e\u{301}".as_bytes())])
        );
    }

    #[test]
    fn digests_sort_as_their_bytes() {
        let mut ds: Vec<[u8; 32]> = (0..5000u32)
            .map(|i| row(&[Value::Integer(i64::from(i % 977))]))
            .collect();
        ds.push([0xff; 32]);
        ds.push([0; 32]);
        let mut by_bytes = ds.clone();
        by_bytes.sort_unstable();
        sort(&mut ds);
        assert_eq!(ds, by_bytes);
    }

    #[test]
    fn content_is_a_multiset_independent_of_order_and_of_spilling() {
        let digests: Vec<[u8; 32]> = (0..1000u32)
            .map(|i| row(&[Value::Integer((i % 300) as i64)]))
            .collect();
        let of = |ds: &[[u8; 32]], spill: usize| {
            let mut m = Multiset::with_spill(spill);
            for d in ds {
                m.add(*d).unwrap();
            }
            m.finish().unwrap()
        };
        let forward = of(&digests, 1 << 20);
        let mut reversed = digests.clone();
        reversed.reverse();
        assert_eq!(of(&reversed, 1 << 20), forward);
        // Spilled in runs of 7, merged back: the same digest.
        assert_eq!(of(&reversed, 7), forward);
        assert_eq!(of(&digests, 1), forward);
        // Read in parts and merged, spilled or not: the same digest.
        for spill in [5, 1 << 20] {
            let mut whole = Multiset::with_spill(spill);
            for part in digests.chunks(333) {
                let mut m = Multiset::with_spill(spill);
                for d in part {
                    m.add(*d).unwrap();
                }
                whole.merge(m).unwrap();
            }
            assert_eq!(whole.rows(), 1000);
            assert_eq!(whole.finish().unwrap(), forward);
        }
        // Duplicates count: dropping one of a duplicated row changes the digest.
        assert_ne!(of(&digests[1..], 1 << 20), forward);
        assert_ne!(of(&digests[..999], 1 << 20), forward);
    }
}
