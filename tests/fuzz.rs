//! Fuzz targets on the stable toolchain: a seeded mutational fuzzer (bit flips, interesting
//! bytes, dictionary tokens of each format, deletions, duplications, splices of seeds) over
//! the committed seed corpora in `fuzz/corpus/<target>/`, for the six parsers an attacker
//! feeds: the manifest, the seal record, rollback evidence, snapshots, drift diagnosis and
//! the tar reader. Every target asserts: no panic; no PASS for a packet whose bytes differ
//! from what was sealed; nothing written outside the target directory; bounded time per
//! input; and, at the end, bounded peak memory.
//!
//! `cargo test --test fuzz` runs each target for `PACKET_FUZZ_SECONDS` (default 2) from the
//! seed `PACKET_FUZZ_SEED` (default fixed, so a plain run is reproducible). A longer run:
//! `PACKET_FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture`. A failing
//! input is saved under `target/fuzz-artifacts/` and replayed with
//! `PACKET_FUZZ_REPLAY=<file> cargo test --test fuzz <target>`.

use packet::digest::Digest;
use packet::manifest::{MANIFEST_NAME, Manifest, TREE_NAME, render_tree_file};
use packet::profile::Profile;
use packet::verify::VerifyOptions;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Most time one input may take (a debug build on a loaded machine stays far below).
const PER_INPUT: Duration = Duration::from_secs(3);
/// Largest input the mutator makes.
const MAX_INPUT: usize = 1 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast and good enough to pick mutations.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = &[
    0, 0xff, b'\n', b'\r', b'"', b'\\', b' ', b'*', b'#', b'/', b'.', b'{', b'}', b'[', b']', b',',
    b':', b'0', b'9', b'a', b'f', b'A', b'F', b'~', 0x80, 0xc3, 0xe2, 0xef,
];

/// Tokens every format shares; each target adds its own.
const COMMON_TOKENS: &[&str] = &[
    "  ", " *", "\r\n", "\n\n", "\u{feff}", "\u{fffd}", "\u{301}", "\u{202e}", "..", "../", "/",
    "~/", "C:/", "\\", "\\n", "\0",
];

struct Target {
    name: &'static str,
    tokens: &'static [&'static str],
}

fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>], tokens: &[&str]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 | 3 => {
                let all = COMMON_TOKENS.len() + tokens.len();
                let k = rng.below(all);
                let t = if k < COMMON_TOKENS.len() {
                    COMMON_TOKENS[k]
                } else {
                    tokens[k - COMMON_TOKENS.len()]
                };
                let at = rng.below(len + 1);
                b.splice(at..at, t.bytes());
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                b.drain(at..at + n);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(256));
                let copy = b[at..at + n].to_vec();
                let to = rng.below(len + 1);
                b.splice(to..to, copy);
            }
            6 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => b.truncate(rng.below(len)),
            8 if len > 0 => {
                // A hex digit changed (a digest edited), or its case.
                let i = rng.below(len);
                if b[i].is_ascii_hexdigit() {
                    b[i] = if rng.below(2) == 0 {
                        b[i].to_ascii_uppercase()
                    } else {
                        b"0123456789abcdef"[rng.below(16)]
                    };
                }
            }
            _ => {}
        }
    }
    b.truncate(MAX_INPUT);
    b
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = repo().join("fuzz/corpus").join(name);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let out: Vec<Vec<u8>> = paths.iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Runs `check` on every seed, then on mutants until the time is up (or on the one replayed
/// input). `check` returns Err with the broken invariant. Returns the executions.
fn fuzz(target: &Target, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> u64 {
    let mut run = |input: &[u8]| {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(input)))
            .unwrap_or_else(|_| Err("panicked".into()));
        let took = started.elapsed();
        let outcome = outcome.and_then(|()| {
            if took > PER_INPUT {
                Err(format!("took {took:?}, above {PER_INPUT:?}"))
            } else {
                Ok(())
            }
        });
        if let Err(why) = outcome {
            let dir = repo().join("target/fuzz-artifacts");
            fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!(
                "{}-{}",
                target.name,
                &Digest::of(input).to_hex()[..16]
            ));
            fs::write(&file, input).unwrap();
            panic!(
                "fuzz target {}: {why}\ninput saved as {} (replay: PACKET_FUZZ_REPLAY={} cargo test --test fuzz {})",
                target.name,
                file.display(),
                file.display(),
                target.name
            );
        }
    };
    if let Some(file) = std::env::var_os("PACKET_FUZZ_REPLAY") {
        run(&fs::read(file).unwrap());
        return 1;
    }
    let seeds = seeds(target.name);
    let seconds: f64 = std::env::var("PACKET_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed: u64 = std::env::var("PACKET_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0f7a_c7e7);
    let mut rng = Rng(seed | 1);
    let mut execs = 0u64;
    for s in &seeds {
        run(s);
        execs += 1;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        let base = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base, &seeds, target.tokens);
        run(&input);
        execs += 1;
    }
    let rss = peak_rss_mib();
    eprintln!(
        "fuzz {}: {execs} executions in {seconds} s (seed {seed}), peak RSS {rss} MiB",
        target.name
    );
    assert!(rss < 1024, "{}: peak RSS {rss} MiB", target.name);
    execs
}

fn peak_rss_mib() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss / 1024
}

/// Every regular file under `dir` with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if meta.is_dir() {
                stack.push(p);
            } else {
                out.push((rel, fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// The packet the manifest and seal-record seeds were made from (build is deterministic).
fn fixture_packet(dir: &Path) -> PathBuf {
    let pkt = dir.join("pkt");
    packet::seal::build(
        &pkt,
        &[
            repo().join("selftest/evidence.json"),
            repo().join("selftest/rollback-evidence.json"),
            repo().join("selftest/tiếng-việt.txt"),
        ],
        Default::default(),
    )
    .unwrap();
    pkt
}

#[test]
fn manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let pkt = fixture_packet(tmp.path());
    let original = fs::read(pkt.join(MANIFEST_NAME)).unwrap();
    let target = Target {
        name: "manifest",
        tokens: &[
            "SHA256 (",
            ") = ",
            "# ",
            "\\",
            "evidence.json",
            "SEAL.json",
            "tiếng-việt.txt",
            "tie\u{302}\u{301}ng-vie\u{323}\u{302}t.txt",
            "HASH_MANIFEST.txt",
        ],
    };
    fuzz(&target, |input| {
        let (parsed, rejects) = Manifest::parse(input);
        // One spelling: a manifest accepted without a reject is exactly its own rendering.
        if rejects.is_empty() && parsed.render() != input {
            return Err("accepted a manifest that is not in canonical form".into());
        }
        // The attacker rewrites the tree file to match: only the manifest can catch it.
        fs::write(pkt.join(MANIFEST_NAME), input).unwrap();
        fs::write(pkt.join(TREE_NAME), render_tree_file(&Digest::of(input))).unwrap();
        let report = packet::verify::verify(&pkt, &VerifyOptions::default());
        if report.passed() && input != original {
            return Err("PASS for a packet whose manifest bytes changed".into());
        }
        Ok(())
    });
}

#[test]
fn seal_record() {
    let tmp = tempfile::tempdir().unwrap();
    let pkt = fixture_packet(tmp.path());
    packet::seal::record::Records::parse(&fs::read(pkt.join("SEAL.json")).unwrap())
        .expect("the fixture's seal record parses");
    let manifest = fs::read(pkt.join(MANIFEST_NAME)).unwrap();
    let target = Target {
        name: "seal_record",
        tokens: &[
            "\"path\":",
            "\"bytes\":",
            "\"profile\":",
            "\"schema\":",
            "\"files\":",
            "{",
            "}",
            "[[[[",
            "1e400",
            "-1",
            "18446744073709551616",
            "\\u0070ath",
            "\\ud800",
            "null",
        ],
    };
    fuzz(&target, |input| {
        let parsed = packet::seal::record::Records::parse(input);
        // Sealed over by an attacker: manifest and tree recomputed for the new bytes.
        fs::write(pkt.join("SEAL.json"), input).unwrap();
        let text = String::from_utf8_lossy(&manifest).into_owned();
        let line = text
            .lines()
            .find(|l| l.ends_with("  SEAL.json"))
            .unwrap()
            .to_string();
        let resealed = text.replace(&line, &format!("{}  SEAL.json", Digest::of(input)));
        fs::write(pkt.join(MANIFEST_NAME), &resealed).unwrap();
        fs::write(
            pkt.join(TREE_NAME),
            render_tree_file(&Digest::of(resealed.as_bytes())),
        )
        .unwrap();
        let report = packet::verify::verify(&pkt, &VerifyOptions::default());
        if report.passed()
            && let Err(e) = parsed
        {
            return Err(format!("PASS with a seal record that does not parse: {e}"));
        }
        Ok(())
    });
}

#[test]
fn rollback_evidence() {
    let target = Target {
        name: "rollback_evidence",
        tokens: &[
            "\"after_apply_hash\":",
            "\"before_hash\":",
            "\"after_rollback_hash\":",
            "\"entries\":",
            "\"schema\":",
            "\"id\":",
            "\\u0061",
            "\\ud800",
            "\\udc00",
            "1e400",
            "1.0",
            "[{}]",
            "packet.rollback-evidence/1",
        ],
    };
    fuzz(&target, |input| {
        let checked = packet::rollback::check(input, "fuzz.json");
        if !checked.rejects.is_empty() {
            return Ok(());
        }
        // Accepted: an independent reading must agree that every entry proves its rollback.
        let doc: serde_json::Value = serde_json::from_slice(input)
            .map_err(|e| format!("accepted evidence that is not JSON: {e}"))?;
        let entries = doc["entries"]
            .as_array()
            .ok_or("accepted evidence without an entries array")?;
        if entries.is_empty() || entries.len() != checked.entries {
            return Err("accepted evidence whose entries do not count".into());
        }
        for e in entries {
            let hash = |k: &str| {
                e[k].as_str()
                    .filter(|h| Digest::from_hex(h).is_some())
                    .map(str::to_string)
            };
            let (Some(before), Some(apply), Some(rollback)) = (
                hash("before_hash"),
                hash("after_apply_hash"),
                hash("after_rollback_hash"),
            ) else {
                return Err(format!(
                    "accepted an entry without three lowercase digests: {e}"
                ));
            };
            if apply == before || rollback != before {
                return Err(format!("accepted an entry that proves nothing: {e}"));
            }
        }
        Ok(())
    });
}

#[test]
fn snapshot() {
    let target = Target {
        name: "snapshot",
        tokens: &[
            "\"rows\":",
            "\"digest\":",
            "\"state_digest\":",
            "\"tables\":",
            "\"claims\":",
            "\"counters\":",
            "\"engine\":",
            "1e3",
            "1.0",
            "-1",
            "\\ud800",
            "18446744073709551616",
        ],
    };
    fuzz(&target, |input| {
        let Ok(s) = packet::state::Snapshot::parse(input, "fuzz.json") else {
            return Ok(());
        };
        // Accepted: its state digest must be the one its tables give, and it must read back
        // the same from its own rendering.
        if packet::state::snapshot::state_digest(&s.tables) != s.state_digest {
            return Err("accepted a snapshot whose state digest does not match".into());
        }
        match packet::state::Snapshot::parse(&s.render(), "again.json") {
            Ok(again) if again == s => Ok(()),
            _ => Err("an accepted snapshot does not round-trip".into()),
        }
    });
}

#[test]
fn drift() {
    let sealed = seeds("drift");
    let target = Target {
        name: "drift",
        tokens: &[
            "\u{2014}",
            "-",
            "\u{201c}",
            "\"",
            "\t",
            "    ",
            "\\u2014",
            "\u{e2}\u{80}\u{94}",
            "Ã©",
            "\u{e9}",
            "e\u{301}",
            " \n",
        ],
    };
    let mut which = 0usize;
    fuzz(&target, |input| {
        // Each input is a drifted copy of one sealed seed, taken in turn.
        which += 1;
        let original = &sealed[which % sealed.len()];
        let digest = Digest::of(original);
        let profile = Profile::of(original);
        let finding = packet::drift::search::examine(&digest, Some(&profile), input);
        if let Some(rebuilt) = &finding.rebuilt {
            // A proof is a proof only if it rebuilds the sealed bytes exactly.
            if Digest::of(rebuilt) != digest {
                return Err("a proven diagnosis rebuilt other bytes than were sealed".into());
            }
        }
        let proven = finding.diagnosis.proof == packet::reject::Proof::Proven;
        if proven && finding.rebuilt.is_none() && input != original.as_slice() {
            return Err("proven without rebuilt bytes".into());
        }
        Ok(())
    });
}

#[test]
fn tar() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    packet::seal::build(
        &small,
        &[
            repo().join("selftest/evidence.json"),
            repo().join("selftest/tiếng-việt.txt"),
        ],
        Default::default(),
    )
    .unwrap();
    let sealed = files(&small);
    let arena = tmp.path().join("arena");
    let sentinel = tmp.path().join("sentinel.txt");
    fs::write(&sentinel, "untouched\n").unwrap();
    let target = Target {
        name: "tar",
        tokens: &[
            "ustar\0",
            "ustar  \0",
            "././@LongLink",
            "path=",
            "linkpath=",
            "size=",
            "GNU.sparse.map=",
            "../",
            "/etc/passwd",
            "\x1f",
            "0000644\0",
            "0000000\0",
        ],
    };
    let mut n = 0u64;
    fuzz(&target, |input| {
        n += 1;
        fs::create_dir_all(&arena).unwrap();
        let archive = arena.join("in.tar");
        fs::write(&archive, input).unwrap();
        let out = arena.join("out");
        fs::create_dir(&out).unwrap();
        let limits = packet::archive::Limits::default();
        let result = packet::archive::check_archive(
            &archive,
            &VerifyOptions::default(),
            &limits,
            Some(&out),
        );
        let mut names: Vec<String> = fs::read_dir(&arena)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if names != ["in.tar", "out"] {
            return Err(format!("wrote outside its target: {names:?}"));
        }
        if fs::read(&sentinel).unwrap() != b"untouched\n" {
            return Err("changed a file outside its target".into());
        }
        if let Ok(report) = &result
            && report.passed()
            && files(&out) != sealed
        {
            return Err("PASS for an archive whose files differ from the sealed ones".into());
        }
        fs::remove_dir_all(&arena).unwrap();
        Ok(())
    });
}
