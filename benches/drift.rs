//! Drift diagnosis cost on a 10 MiB text (`cargo bench --bench drift`): the proven case with
//! three combined causes (BOM, CRLF, typographic fold), the worst case where the same
//! indications come with a content edit (every subset is tried, up to the search budget),
//! and profiling the text at seal time.

use packet::digest::Digest;
use packet::drift::{self, Proof, make};
use packet::profile::{self, Profile};
use std::hint::black_box;

fn main() {
    divan::main();
}

/// About 10 MiB of log-like text with an em-dash every 60 lines (~3,200 in all, under the 4096-entry map
/// limit) and Vietnamese, LF line ends, a final newline.
fn text() -> String {
    let mut out = String::with_capacity(10 << 20);
    let mut i = 0u64;
    while out.len() < 10 << 20 {
        if i.is_multiple_of(60) {
            out.push_str(&format!(
                "{i:08} step — snapshot taken; không chạm production\n"
            ));
        } else {
            out.push_str(&format!(
                "{i:08} INFO rows=4182 checksum=ok table=birth_registry\n"
            ));
        }
        i += 1;
    }
    out
}

fn drifted(t: &str) -> Vec<u8> {
    drift::add_bom(make::crlf(&profile::fold_typographic(t)).as_bytes())
}

#[divan::bench(sample_count = 5)]
fn seal_profile_10mib(bencher: divan::Bencher) {
    let t = text();
    bencher.bench(|| black_box(Profile::of(black_box(t.as_bytes()))));
}

#[divan::bench(sample_count = 5)]
fn diagnose_10mib_three_causes_proven(bencher: divan::Bencher) {
    let t = text();
    let (digest, profile) = (Digest::of(t.as_bytes()), Profile::of(t.as_bytes()));
    let now = drifted(&t);
    bencher.bench(|| {
        let f = drift::examine(&digest, Some(&profile), black_box(&now));
        assert_eq!(f.diagnosis.proof, Proof::Proven);
        f
    });
}

#[divan::bench(sample_count = 5)]
fn diagnose_10mib_three_causes_plus_content_edit(bencher: divan::Bencher) {
    let t = text();
    let (digest, profile) = (Digest::of(t.as_bytes()), Profile::of(t.as_bytes()));
    let now = drifted(&t.replacen("rows=4182", "rows=4183", 1));
    bencher.bench(|| {
        let f = drift::examine(&digest, Some(&profile), black_box(&now));
        assert_eq!(f.diagnosis.proof, Proof::ContentChanged);
        f
    });
}
