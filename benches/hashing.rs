//! Per-file hashing and manifest code (`cargo bench --bench hashing`), so a regression shows
//! without the whole comparison script: hashing a small, a medium and a mapped file through
//! the one read path, profiling binary and text content, and rendering and parsing the
//! manifest and seal record of 100,000 entries.

use packet::digest::{self, Digest};
use packet::manifest::{Entry, Manifest};
use packet::profile::Profile;
use packet::seal::{FileRecord, Records, SEAL_SCHEMA, SealRecord};
use std::hint::black_box;

fn main() {
    divan::main();
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

#[divan::bench(args = [4 << 10, 1 << 20, 32 << 20])]
fn read_and_hash_file(bencher: divan::Bencher, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes(size)).unwrap();
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench(|| {
            digest::read_with(black_box(&path), 16 << 20, |b, _| Profile::of(b))
                .unwrap()
                .digest
        });
}

#[divan::bench]
fn profile_binary_4k(bencher: divan::Bencher) {
    let b = bytes(4096);
    bencher.bench(|| Profile::of(black_box(&b)));
}

#[divan::bench]
fn profile_text_1mib(bencher: divan::Bencher) {
    let line =
        "<p>Steps — snapshot before, apply inside a transaction; “no-production-touch”.</p>\n";
    let t = line.repeat((1 << 20) / line.len());
    bencher
        .counter(divan::counter::BytesCount::new(t.len()))
        .bench(|| Profile::of(black_box(t.as_bytes())));
}

fn manifest_100k() -> Manifest {
    Manifest::from_entries(
        (0..100_000)
            .map(|i| Entry {
                path: format!("d{:03}/f{:04}.bin", i / 1000, i % 1000),
                digest: Digest::of(&(i as u64).to_le_bytes()),
            })
            .collect(),
    )
}

#[divan::bench]
fn manifest_render_100k(bencher: divan::Bencher) {
    let m = manifest_100k();
    bencher.bench(|| black_box(&m).render());
}

#[divan::bench]
fn manifest_parse_100k(bencher: divan::Bencher) {
    let text = manifest_100k().render();
    bencher.bench(|| Manifest::parse(black_box(&text)));
}

fn record_100k() -> SealRecord {
    SealRecord {
        schema: SEAL_SCHEMA.into(),
        files: (0..100_000)
            .map(|i| FileRecord {
                path: format!("d{:03}/f{:04}.bin", i / 1000, i % 1000),
                bytes: 4096,
                profile: Some(Profile::Binary),
            })
            .collect(),
    }
}

#[divan::bench]
fn seal_record_render_100k(bencher: divan::Bencher) {
    let r = record_100k();
    bencher.bench(|| black_box(&r).render());
}

#[divan::bench]
fn seal_record_read_lazily_100k(bencher: divan::Bencher) {
    let bytes = record_100k().render();
    bencher.bench(|| Records::parse(black_box(&bytes)).unwrap());
}
