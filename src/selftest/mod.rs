//! The self-test (`packet --selftest`): in a temporary directory, seals the embedded fixture
//! documents, proves the untouched control verifies, then applies one failure at a time and
//! proves verify rejects each with its expected code (and drift cause). Needs no files around it.

use crate::digest::Digest;
use crate::drift::{add_bom, make};
use crate::pin::Pin;
use crate::profile;
use crate::reject::RejectCode;
use crate::report::{Report, has_pass_token};
use crate::rollback;
use crate::seal::{self, SealOptions};
use crate::verify::{self, VerifyOptions};
use serde::Serialize;
use std::fs;
use std::io;
use std::path::Path;

/// The embedded fixtures: packet-relative path and exact bytes (from `selftest/`).
pub const FIXTURES: &[(&str, &[u8])] = &[
    (
        "reference/000_f85dc3b6917de17c.txt",
        include_bytes!("../../selftest/reference/000_f85dc3b6917de17c.txt"),
    ),
    (
        "reference/001_d6b50f88b93da72f.txt",
        include_bytes!("../../selftest/reference/001_d6b50f88b93da72f.txt"),
    ),
    (
        "reference/002_84a12d58117f6bdd.txt",
        include_bytes!("../../selftest/reference/002_84a12d58117f6bdd.txt"),
    ),
    (
        "reference/003_83ffdc72bb4c3f5d.txt",
        include_bytes!("../../selftest/reference/003_83ffdc72bb4c3f5d.txt"),
    ),
    (
        "reference/004_6716453379d1069e.txt",
        include_bytes!("../../selftest/reference/004_6716453379d1069e.txt"),
    ),
    (
        "evidence.json",
        include_bytes!("../../selftest/evidence.json"),
    ),
    ("notes.md", include_bytes!("../../selftest/notes.md")),
    (
        "tiếng-việt.txt",
        include_bytes!("../../selftest/tiếng-việt.txt"),
    ),
    (
        "rollback-evidence.json",
        include_bytes!("../../selftest/rollback-evidence.json"),
    ),
];

/// The evidence of a real rehearsal by `packet rehearse` (an UPDATE on a throwaway SQLite
/// database), from the committed packet.
pub const SQLITE_EVIDENCE: &[u8] =
    include_bytes!("../../packets/sqlite-rollback-rehearsal/evidence/RB-SQLITE-UPDATE-1.json");

/// One probe's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeResult {
    /// What the probe does to the packet.
    pub name: String,
    /// The reject code (and `DRIFT_*` cause, if any) it must produce.
    pub expected: String,
    /// The reject codes (with causes) verify actually produced.
    pub got: Vec<String>,
    /// True when the expected code (and cause) were produced, the verdict was FAIL and the text
    /// output held no PASS token.
    pub fail_closed: bool,
}

/// The schema of a [`SelftestReport`] (`packet --selftest --json`).
pub const SELFTEST_REPORT_SCHEMA: &str = "packet.selftest-report/1";

/// The self-test's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct SelftestReport {
    /// Always [`SELFTEST_REPORT_SCHEMA`].
    pub schema: String,
    /// The control packet's tree hash.
    pub control_tree: String,
    /// True when the untouched control verified (also with its full pin) and every fixture
    /// built again gave the same tree hash.
    pub control_accepted: bool,
    /// What went wrong with the control, if anything.
    pub control_problems: Vec<String>,
    /// Every probe, in order.
    pub probes: Vec<ProbeResult>,
}

impl SelftestReport {
    /// True when the control was accepted and every probe failed closed.
    pub fn passed(&self) -> bool {
        self.control_accepted && self.probes.iter().all(|p| p.fail_closed)
    }

    /// One line per probe, then `N/N fail closed`, then the verdict line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let control = if self.control_accepted {
            "accepted"
        } else {
            "NOT ACCEPTED"
        };
        out.push_str(&format!(
            "control  untouched packet, tree {}: {control}\n",
            self.control_tree
        ));
        for p in &self.control_problems {
            out.push_str(&format!("         {p}\n"));
        }
        let n = self.probes.len();
        for (i, p) in self.probes.iter().enumerate() {
            let outcome = if p.fail_closed {
                format!("rejected {}: fail closed", p.expected)
            } else {
                format!(
                    "expected {}, got [{}]: FAIL OPEN",
                    p.expected,
                    p.got.join(", ")
                )
            };
            out.push_str(&format!(
                "probe {:>2}/{n} {:<44} {outcome}\n",
                i + 1,
                p.name
            ));
        }
        let closed = self.probes.iter().filter(|p| p.fail_closed).count();
        out.push_str(&format!("{closed}/{n} fail closed\n"));
        out.push_str(if self.passed() {
            "SELFTEST PASS\n"
        } else {
            "SELFTEST FAIL\n"
        });
        out
    }
}

impl crate::report::Outcome for SelftestReport {
    fn passed(&self) -> bool {
        SelftestReport::passed(self)
    }
    fn render_text(&self) -> String {
        SelftestReport::render_text(self)
    }
    fn to_json(&self) -> String {
        crate::report::json_document(self, self.passed())
    }
}

pub(crate) type Mutation = fn(&Path) -> io::Result<()>;

pub(crate) struct Probe {
    pub(crate) name: &'static str,
    code: RejectCode,
    cause: Option<RejectCode>,
    pub(crate) mutate: Mutation,
    /// Verify with a pin that cannot match instead of none.
    pub(crate) wrong_pin: bool,
    /// Reseal after mutating: the failure must be caught by content checks, not the seal.
    pub(crate) reseal: bool,
}

const A_DOC: &str = "reference/001_d6b50f88b93da72f.txt";

fn edit(dir: &Path, rel: &str, f: impl FnOnce(Vec<u8>) -> Vec<u8>) -> io::Result<()> {
    let path = dir.join(rel);
    let bytes = fs::read(&path)?;
    fs::write(&path, f(bytes))
}

fn text_edit(dir: &Path, rel: &str, f: impl FnOnce(&str) -> String) -> io::Result<()> {
    edit(dir, rel, |b| {
        f(&String::from_utf8(b).expect("fixture is UTF-8")).into_bytes()
    })
}

fn edit_rollback(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) -> io::Result<()> {
    edit(dir, "rollback-evidence.json", |b| {
        let mut doc: serde_json::Value = serde_json::from_slice(&b).expect("fixture is JSON");
        f(&mut doc);
        let mut out = serde_json::to_vec_pretty(&doc).expect("serializes");
        out.push(b'\n');
        out
    })
}

/// Gives entry 0 of the evidence a second `after_apply_hash` member, placed first and equal
/// to its `before_hash`: a reader that keeps the first value sees an apply that never
/// mutated, one that keeps the last sees a good entry. Either way it must be refused.
fn duplicate_member(dir: &Path) -> io::Result<()> {
    text_edit(dir, "rollback-evidence.json", |t| {
        let doc: serde_json::Value = serde_json::from_str(t).expect("fixture is JSON");
        let before = doc["entries"][0]["before_hash"]
            .as_str()
            .expect("fixture entry has a before_hash")
            .to_string();
        t.replacen(
            "\"after_apply_hash\"",
            &format!("\"after_apply_hash\": \"{before}\", \"after_apply_hash\""),
            1,
        )
    })
}

/// Rewrites the evidence with entry 0 made a no-mutation entry, a 70 KiB member before
/// `schema` and padding that takes the file past the diagnosis limit: too large to parse
/// whole, with its schema out of any first-64-KiB window.
fn padded_evidence(dir: &Path) -> io::Result<()> {
    edit(dir, "rollback-evidence.json", |b| {
        let mut doc: serde_json::Value = serde_json::from_slice(&b).expect("fixture is JSON");
        doc["entries"][0]["after_apply_hash"] = doc["entries"][0]["before_hash"].clone();
        let padded = serde_json::json!({
            "note": "x".repeat(70 * 1024),
            "schema": doc["schema"],
            "entries": doc["entries"],
            "padding": " ".repeat(crate::drift::DIAGNOSE_LIMIT as usize + 1),
        });
        serde_json::to_vec(&padded).expect("serializes")
    })
}

/// A symlink placed in a sealed packet, pointing at a sealed file: whatever it points to, a
/// packet holds bytes, never links.
fn symlink_in_packet(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("001_d6b50f88b93da72f.txt", dir.join("reference/link.txt"))
    }
    #[cfg(not(unix))]
    {
        // No symlink without privileges here; a stand-in that is refused the same way.
        let _ = dir;
        Err(io::Error::other("symlinks need unix"))
    }
}

/// A sealed file whose modification time keeps changing while verify reads it (as a log
/// still being written would): verify must refuse it as `FILE_CHANGED_WHILE_READ`, not
/// pass a digest of bytes that were moving. The file is sparse (64 MiB, no disk) so its
/// read takes long enough to be overlapped on every machine; the writer only touches the
/// mtime, so the bytes themselves still match their seal.
fn changed_while_read_probe(tmp: &Path, problems: &mut Vec<String>) -> ProbeResult {
    use std::sync::atomic::{AtomicBool, Ordering};
    let name = "file changed while verify reads it";
    let code = RejectCode::FileChangedWhileRead;
    let dir = tmp.join("probe-changing");
    let setup = sealed_fixtures(&dir)
        .map_err(io::Error::other)
        .and_then(|_| {
            let f = fs::File::create(dir.join("growing.log"))?;
            f.set_len(64 << 20)?;
            seal::seal_dir(
                &dir,
                SealOptions {
                    reseal: true,
                    ..SealOptions::default()
                },
            )
            .map_err(|e| io::Error::other(e.to_string()))
        });
    if let Err(e) = setup {
        problems.push(format!("probe {name:?} could not be set up: {e}"));
    }
    let mut report = None;
    // A few tries: on a very fast machine one read may fall between two touches.
    for _ in 0..5 {
        let done = AtomicBool::new(false);
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                let base =
                    std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let _ = fs::File::options()
                        .write(true)
                        .open(dir.join("growing.log"))
                        .and_then(|f| f.set_modified(base + std::time::Duration::from_secs(n)));
                }
            });
            let r = verify::verify(&dir, &VerifyOptions::default());
            done.store(true, Ordering::Relaxed);
            r
        });
        let caught = got.rejects.iter().any(|r| r.code == code);
        report = Some(got);
        if caught {
            break;
        }
    }
    let report = report.expect("at least one try");
    judge(name, code, None, &report)
}

/// Every packet failure the self-test applies, one at a time, to the sealed fixtures.
pub(crate) fn probes() -> Vec<Probe> {
    let p = |name, code, cause, mutate: Mutation| Probe {
        name,
        code,
        cause,
        mutate,
        wrong_pin: false,
        reseal: false,
    };
    vec![
        p(
            "digest mismatch at equal length",
            RejectCode::Sha256Mismatch,
            None,
            |d| {
                edit(d, "reference/002_84a12d58117f6bdd.txt", |mut b| {
                    let i = b.iter().position(|c| c.is_ascii_digit()).expect("a digit");
                    b[i] = if b[i] == b'9' { b'8' } else { b[i] + 1 };
                    b
                })
            },
        ),
        p(
            "byte-length mismatch",
            RejectCode::ByteLengthMismatch,
            None,
            |d| {
                edit(d, "reference/000_f85dc3b6917de17c.txt", |mut b| {
                    b.extend_from_slice(b"appended line\n");
                    b
                })
            },
        ),
        p(
            "em-dash folded to -",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftUnicode),
            |d| text_edit(d, A_DOC, |t| t.replace('—', "-")),
        ),
        p(
            "JSON re-encoded with ensure_ascii",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftJsonAsciiEscape),
            |d| text_edit(d, "evidence.json", profile::escape_non_ascii),
        ),
        p(
            "UTF-8 BOM added",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftBom),
            |d| edit(d, A_DOC, |b| add_bom(&b)),
        ),
        p(
            "CRLF line ends",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftCrlf),
            |d| {
                text_edit(d, "reference/003_83ffdc72bb4c3f5d.txt", |t| {
                    t.replace('\n', "\r\n")
                })
            },
        ),
        p(
            "final newline removed",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftFinalNewline),
            |d| text_edit(d, "evidence.json", make::drop_final_newline),
        ),
        p(
            "trailing whitespace stripped",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftTrailingWhitespace),
            |d| text_edit(d, "notes.md", make::strip_trailing),
        ),
        p(
            "tabs expanded to spaces",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftTabs),
            |d| text_edit(d, "notes.md", |t| make::expand(t, 4)),
        ),
        p(
            "Unicode NFC turned NFD",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftUnicodeNormalization),
            |d| text_edit(d, "reference/001_d6b50f88b93da72f.txt", make::nfd),
        ),
        p(
            "mojibake (UTF-8 read as Windows-1252)",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftMojibake),
            |d| text_edit(d, "notes.md", make::mojibake_cp1252),
        ),
        p(
            "JSON re-indented, same value",
            RejectCode::ByteLengthMismatch,
            Some(RejectCode::DriftJsonReformat),
            |d| {
                text_edit(d, "evidence.json", |t| {
                    let v = crate::json::parse(t).expect("fixture is JSON");
                    let four = crate::json::Style {
                        indent: crate::json::Indent::Spaces(4),
                        space_after_comma: false,
                        space_after_colon: true,
                        sorted_keys: false,
                        ensure_ascii: false,
                        final_newline: false,
                    };
                    crate::json::render(&v, &four)
                })
            },
        ),
        p(
            "file name case changed",
            RejectCode::FileRenamed,
            Some(RejectCode::DriftPathNormalization),
            |d| fs::rename(d.join("notes.md"), d.join("NOTES.md")),
        ),
        p(
            "file name turned NFD",
            RejectCode::FileRenamed,
            Some(RejectCode::DriftPathNormalization),
            |d| {
                fs::rename(
                    d.join("tiếng-việt.txt"),
                    d.join(make::nfd("tiếng-việt.txt")),
                )
            },
        ),
        p("file missing", RejectCode::FileMissing, None, |d| {
            fs::remove_file(d.join("reference/004_6716453379d1069e.txt"))
        }),
        p("unsealed extra file", RejectCode::FileUnsealed, None, |d| {
            fs::write(d.join("reference/extra-note.txt"), "added after sealing\n")
        }),
        p(
            "tree hash mismatch",
            RejectCode::TreeHashMismatch,
            None,
            |d| {
                fs::write(
                    d.join(crate::manifest::TREE_NAME),
                    crate::manifest::render_tree_file(&Digest::of(b"another manifest")),
                )
            },
        ),
        p(
            "manifest rewritten to hide an edit",
            RejectCode::TreeHashMismatch,
            None,
            |d| {
                text_edit(d, "evidence.json", |t| t.replace("4182,", "4183,"))?;
                let new = Digest::of(&fs::read(d.join("evidence.json"))?).to_hex();
                text_edit(d, crate::manifest::MANIFEST_NAME, |m| {
                    m.lines()
                        .map(|l| {
                            if l.ends_with("  evidence.json") {
                                format!("{new}  evidence.json\n")
                            } else {
                                format!("{l}\n")
                            }
                        })
                        .collect()
                })
            },
        ),
        Probe {
            wrong_pin: true,
            ..p("pin mismatch", RejectCode::PinMismatch, None, |_| Ok(()))
        },
        Probe {
            reseal: true,
            ..p(
                "rollback apply hash equals before hash",
                RejectCode::RollbackApplyDidNotMutate,
                None,
                |d| {
                    edit_rollback(d, |doc| {
                        doc["entries"][0]["after_apply_hash"] =
                            doc["entries"][0]["before_hash"].clone();
                    })
                },
            )
        },
        Probe {
            reseal: true,
            ..p(
                "rollback entry not restored",
                RejectCode::RollbackNotRestored,
                None,
                |d| {
                    edit_rollback(d, |doc| {
                        doc["entries"][1]["after_rollback_hash"] =
                            doc["entries"][1]["after_apply_hash"].clone();
                    })
                },
            )
        },
        Probe {
            reseal: true,
            ..p(
                "rollback evidence with a duplicate member",
                RejectCode::RollbackEvidenceMalformed,
                None,
                duplicate_member,
            )
        },
        p(
            "symlink in a packet",
            RejectCode::PathRejected,
            None,
            symlink_in_packet,
        ),
        Probe {
            reseal: true,
            ..p(
                "rollback evidence padded, schema after 70 KiB",
                RejectCode::RollbackEvidenceMalformed,
                None,
                padded_evidence,
            )
        },
    ]
}

fn write_fixtures(dir: &Path) -> io::Result<()> {
    for (rel, bytes) in FIXTURES {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("fixture has a parent"))?;
        fs::write(path, bytes)?;
    }
    Ok(())
}

/// Seals a fresh copy of the fixtures in `dir`; returns its tree hash.
pub(crate) fn sealed_fixtures(dir: &Path) -> Result<Digest, String> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    write_fixtures(dir).map_err(|e| e.to_string())?;
    seal::seal_dir(dir, SealOptions::default())
        .map(|s| s.tree_hash)
        .map_err(|e| format!("sealing the fixtures failed: {e}"))
}

fn tokens(report: &Report) -> Vec<String> {
    report
        .rejects
        .iter()
        .map(|r| {
            let causes: Vec<String> = r
                .diagnosis
                .iter()
                .flat_map(|d| d.causes.iter().map(|c| c.code.to_string()))
                .collect();
            if causes.is_empty() {
                r.code.to_string()
            } else {
                format!("{}({})", r.code, causes.join("+"))
            }
        })
        .collect()
}

/// A probe fails closed when verify rejects with its code and, for a drift probe, diagnoses
/// the cause and proves it (the seal holds enough to rebuild the original bytes).
fn judge(name: &str, code: RejectCode, cause: Option<RejectCode>, report: &Report) -> ProbeResult {
    let hit = report.rejects.iter().any(|r| {
        r.code == code
            && cause.is_none_or(|c| {
                r.diagnosis.as_ref().is_some_and(|d| {
                    d.proof == crate::drift::Proof::Proven && d.causes.iter().any(|x| x.code == c)
                })
            })
    });
    let text = report.render_text();
    let json = report.to_json();
    let expected = match cause {
        Some(c) => format!("{code}({c})"),
        None => code.to_string(),
    };
    ProbeResult {
        name: name.to_string(),
        expected,
        got: tokens(report),
        fail_closed: hit && !report.passed() && !has_pass_token(&text) && !has_pass_token(&json),
    }
}

/// Runs the self-test in a fresh temporary directory, removed afterwards.
///
/// Errors only when the temporary directory cannot be created; every other problem is a
/// control problem or a probe that failed open, in the report.
pub fn run() -> io::Result<SelftestReport> {
    let tmp = tempfile::Builder::new()
        .prefix("packet-selftest-")
        .tempdir()?;
    let mut problems = Vec::new();
    let control_dir = tmp.path().join("control");
    let control_tree = match sealed_fixtures(&control_dir) {
        Ok(t) => t,
        Err(e) => {
            problems.push(e);
            Digest([0; 32])
        }
    };
    let pin: Pin = control_tree
        .to_hex()
        .parse()
        .expect("a full digest is a valid pin");
    for opts in [
        VerifyOptions::default(),
        VerifyOptions {
            expect_tree: Some(pin),
            ..VerifyOptions::default()
        },
    ] {
        let report = verify::verify(&control_dir, &opts);
        if !report.passed() {
            problems.push(format!("control rejected: {}", tokens(&report).join(", ")));
        }
    }
    let wrong_pin: Pin = Digest::of(b"a different packet")
        .to_hex()
        .parse()
        .expect("valid pin");
    let mut results = Vec::new();
    for (i, probe) in probes().into_iter().enumerate() {
        let dir = tmp.path().join(format!("probe-{i:02}"));
        match sealed_fixtures(&dir) {
            Ok(tree) if tree != control_tree => {
                problems.push(format!("fixtures sealed again gave tree {tree}, not {control_tree}: sealing is not deterministic"));
            }
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        let mutated = (probe.mutate)(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                if probe.reseal {
                    seal::seal_dir(
                        &dir,
                        SealOptions {
                            reseal: true,
                            ..SealOptions::default()
                        },
                    )
                    .map(drop)
                    .map_err(|e| e.to_string())
                } else {
                    Ok(())
                }
            });
        if let Err(e) = mutated {
            problems.push(format!("probe {:?} could not be set up: {e}", probe.name));
        }
        let opts = VerifyOptions {
            expect_tree: probe.wrong_pin.then(|| wrong_pin.clone()),
            ..VerifyOptions::default()
        };
        let report = verify::verify(&dir, &opts);
        results.push(judge(probe.name, probe.code, probe.cause, &report));
    }

    results.extend(archive_probes(
        tmp.path(),
        &control_dir,
        &control_tree,
        &mut problems,
    )?);

    // The real SQLite rehearsal evidence: valid as committed, rejected once falsified.
    let real = rollback::check(
        SQLITE_EVIDENCE,
        "sqlite-rollback-rehearsal/evidence/RB-SQLITE-UPDATE-1.json",
    );
    if !real.rejects.is_empty() || real.entries == 0 {
        problems.push(format!(
            "the SQLite rehearsal evidence does not pass: {:?}",
            real.rejects
        ));
    }
    let falsified = tmp.path().join("sqlite-no-mutation.json");
    let mut doc: serde_json::Value = serde_json::from_slice(SQLITE_EVIDENCE).unwrap_or_default();
    if let Some(e) = doc.get_mut("entries").and_then(|e| e.get_mut(0)) {
        e["after_apply_hash"] = e["before_hash"].clone();
    }
    fs::write(
        &falsified,
        serde_json::to_vec_pretty(&doc).unwrap_or_default(),
    )?;
    let report = verify::check_rollback(&[falsified]);
    results.push(judge(
        "SQLite rehearsal evidence, apply = before",
        RejectCode::RollbackApplyDidNotMutate,
        None,
        &report,
    ));

    results.push(changed_while_read_probe(tmp.path(), &mut problems));
    results.push(state_probe(tmp.path(), &mut problems));
    results.push(rehearsal_probe(tmp.path(), &mut problems));

    Ok(SelftestReport {
        schema: SELFTEST_REPORT_SCHEMA.into(),
        control_tree: control_tree.to_hex(),
        control_accepted: problems.is_empty(),
        control_problems: problems,
        probes: results,
    })
}

/// The no-touch proof: a real SQLite database snapshotted twice untouched must diff identical
/// (the control), and a copy with one value changed must be rejected with `STATE_CHANGED`
/// naming that table and no other.
fn state_probe(tmp: &Path, problems: &mut Vec<String>) -> ProbeResult {
    use crate::state::{self, Target};
    let name = "SQLite state, one value changed";
    let db = tmp.join("state.db");
    let made = rusqlite::Connection::open(&db).and_then(|c| {
        c.execute_batch(
            "CREATE TABLE registry(id INTEGER PRIMARY KEY, name TEXT, weight REAL);
             INSERT INTO registry VALUES (1, 'Nguyễn Văn An', 3.2), (2, 'Trần Thị Bình', 2.95);
             CREATE TABLE audit(line TEXT);
             INSERT INTO audit VALUES ('untouched — by design');",
        )
    });
    let fail = |why: String| ProbeResult {
        name: name.into(),
        expected: RejectCode::StateChanged.to_string(),
        got: vec![why],
        fail_closed: false,
    };
    if let Err(e) = made {
        return fail(format!("could not make the database: {e}"));
    }
    let target = Target::Sqlite(db.clone());
    let snap = |out: &str| {
        state::snapshot_to(
            &target,
            "sqlite:state.db",
            &tmp.join(out),
            &Default::default(),
            &[],
        )
    };
    if let Err(e) = snap("before.json").and_then(|_| snap("again.json")) {
        return fail(e.render());
    }
    let control = state::diff_files(&tmp.join("before.json"), &tmp.join("again.json"));
    if !control.passed() {
        problems.push(format!(
            "an untouched database did not diff identical: {:?}",
            control.rejects
        ));
    }
    let changed = rusqlite::Connection::open(&db)
        .and_then(|c| c.execute("UPDATE registry SET weight = 3.21 WHERE id = 1", []));
    if let Err(e) = changed
        .map_err(|e| e.to_string())
        .and_then(|_| snap("after.json").map(drop).map_err(|e| e.render()))
    {
        return fail(e);
    }
    let report = state::diff_files(&tmp.join("before.json"), &tmp.join("after.json"));
    let got: Vec<String> = report
        .rejects
        .iter()
        .map(|r| format!("{}:{}", r.code, r.path.as_deref().unwrap_or("")))
        .collect();
    let text = crate::report::Outcome::render_text(&report);
    let json = crate::report::Outcome::to_json(&report);
    ProbeResult {
        name: name.into(),
        expected: format!("{}:registry", RejectCode::StateChanged),
        fail_closed: got == ["STATE_CHANGED:registry"]
            && !report.passed()
            && !has_pass_token(&text)
            && !has_pass_token(&json),
        got,
    }
}

/// A rehearsal that proves nothing: a change that mutates no table, rehearsed on a real SQLite
/// database, must yield evidence that is rejected with `ROLLBACK_APPLY_DID_NOT_MUTATE`; the
/// control, a real change with its rollback, must pass.
fn rehearsal_probe(tmp: &Path, problems: &mut Vec<String>) -> ProbeResult {
    use crate::state::{self, Target};
    let name = "SQLite rehearsal, change mutates nothing";
    let expected = RejectCode::RollbackApplyDidNotMutate;
    let fail = |why: String| ProbeResult {
        name: name.into(),
        expected: expected.to_string(),
        got: vec![why],
        fail_closed: false,
    };
    let dir = tmp.join("rehearsal");
    let db = dir.join("app.db");
    let made = fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            rusqlite::Connection::open(&db)
                .and_then(|c| {
                    c.execute_batch(
                        "CREATE TABLE registry(id INTEGER PRIMARY KEY, inspect_status TEXT);
                     INSERT INTO registry VALUES (1, NULL), (2, 'ok');",
                    )
                })
                .map_err(|e| e.to_string())
        });
    let sql = [
        (
            "noop.sql",
            "UPDATE registry SET inspect_status = 'x' WHERE 0;",
        ),
        (
            "change.sql",
            "UPDATE registry SET inspect_status = 'checked' WHERE id = 1;",
        ),
        (
            "undo.sql",
            "UPDATE registry SET inspect_status = NULL WHERE id = 1;",
        ),
    ];
    if let Err(e) = made.and_then(|()| {
        sql.iter()
            .try_for_each(|(f, text)| fs::write(dir.join(f), text))
            .map_err(|e| e.to_string())
    }) {
        return fail(format!("could not make the database: {e}"));
    }
    let target = Target::Sqlite(db.clone());
    let rehearse = |apply: &str, undo: Option<&str>, out: &str| {
        state::rehearse_to(
            &target,
            "sqlite:app.db",
            &dir.join(apply),
            undo.map(|u| dir.join(u)).as_deref(),
            &dir.join(out),
        )
    };
    match rehearse("change.sql", Some("undo.sql"), "control.json") {
        Ok(r) if r.rejects.is_empty() => {
            if !verify::check_rollback(&[dir.join("control.json")]).passed() {
                problems.push(
                    "a rehearsed change with its rollback does not pass check-rollback".into(),
                );
            }
        }
        Ok(r) => problems.push(format!(
            "a rehearsed change with its rollback was rejected: {:?}",
            r.rejects
        )),
        Err(e) => return fail(e.render()),
    }
    let noop = match rehearse("noop.sql", None, "noop.json") {
        Ok(r) => r,
        Err(e) => return fail(e.render()),
    };
    // The rehearsal's own verdict, and check-rollback's on the evidence it wrote.
    let report = verify::check_rollback(&[dir.join("noop.json")]);
    let mut result = judge(name, expected, None, &report);
    let own: Vec<RejectCode> = noop.rejects.iter().map(|r| r.code).collect();
    result.fail_closed &= own == [expected];
    result
}

/// The archive form: the control packed must verify and unpack to its tree; a tampered
/// archive entry and a path-traversal entry must be rejected, and unpacking the traversal
/// archive must write nothing, inside or outside its target.
fn archive_probes(
    tmp: &Path,
    control_dir: &Path,
    control_tree: &Digest,
    problems: &mut Vec<String>,
) -> io::Result<Vec<ProbeResult>> {
    use crate::archive::{Compression, Limits};
    use crate::pack::{self, PackOptions};
    use crate::unpack::{self, UnpackOptions};
    let pin: Pin = control_tree
        .to_hex()
        .parse()
        .expect("a full digest is a valid pin");
    let pinned = VerifyOptions {
        expect_tree: Some(pin),
        ..VerifyOptions::default()
    };
    let arena = tmp.join("archives");
    fs::create_dir_all(&arena)?;
    let control = arena.join("control.tar");
    let packed = pack::pack(
        control_dir,
        &control,
        &PackOptions {
            verify: pinned.clone(),
            mtime: 0,
            compression: Compression::None,
        },
    )?;
    if !packed.passed() {
        problems.push(format!(
            "the control packet did not pack: {:?}",
            packed.rejects
        ));
        return Ok(Vec::new());
    }
    let limits = Limits::default();
    let report = crate::archive::check_archive(&control, &pinned, &limits, None)?;
    if !report.passed() {
        problems.push(format!(
            "control archive rejected: {}",
            tokens(&report).join(", ")
        ));
    }
    let unpacked = unpack::unpack(
        &control,
        &arena.join("control-unpacked"),
        &UnpackOptions {
            verify: pinned.clone(),
            limits,
        },
    )?;
    if !unpacked.passed() {
        problems.push(format!(
            "control archive did not unpack: {}",
            tokens(&unpacked.report).join(", ")
        ));
    }
    let bytes = fs::read(&control)?;
    let mut out = Vec::new();

    // One byte of a sealed file's data flipped inside the archive.
    let mut tampered = bytes.clone();
    match tampered
        .windows(b"surfaces_untouched".len())
        .position(|w| w == b"surfaces_untouched")
    {
        Some(at) => tampered[at] ^= 0x20,
        None => problems.push("evidence.json not found in the control archive".into()),
    }
    let path = arena.join("tampered.tar");
    fs::write(&path, tampered)?;
    let report = crate::archive::check_archive(&path, &VerifyOptions::default(), &limits, None)?;
    out.push(judge(
        "archive entry tampered",
        RejectCode::Sha256Mismatch,
        None,
        &report,
    ));

    // An entry that climbs out of the target with `..`, placed before the end marker.
    let mut traversal = bytes[..bytes.len() - 1024].to_vec();
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..b"../escaped.txt".len()].copy_from_slice(b"../escaped.txt");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(6);
    h.set_cksum();
    traversal.extend_from_slice(h.as_bytes());
    let mut data = b"pwned\n".to_vec();
    data.resize(512, 0);
    traversal.extend_from_slice(&data);
    traversal.extend_from_slice(&[0u8; 1024]);
    let path = arena.join("traversal.tar");
    fs::write(&path, traversal)?;
    let report = crate::archive::check_archive(&path, &VerifyOptions::default(), &limits, None)?;
    let mut probe = judge(
        "archive entry with a `..` path",
        RejectCode::ArchivePathUnsafe,
        None,
        &report,
    );
    let target = arena.join("traversal-unpacked");
    let refused = unpack::unpack(
        &path,
        &target,
        &UnpackOptions {
            verify: VerifyOptions::default(),
            limits,
        },
    )?;
    let leftovers: Vec<String> = fs::read_dir(&arena)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".packet-") || n == "escaped.txt")
        .collect();
    if refused.passed()
        || target.exists()
        || tmp.join("escaped.txt").exists()
        || !leftovers.is_empty()
    {
        probe.fail_closed = false;
        probe.got.push(format!(
            "unpack: verdict {:?}, target written: {}, left behind: {leftovers:?}",
            refused.verdict,
            target.exists()
        ));
    }
    out.push(probe);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selftest_passes_and_every_probe_fails_closed() {
        let report = run().unwrap();
        assert!(report.control_accepted, "{:?}", report.control_problems);
        for p in &report.probes {
            assert!(
                p.fail_closed,
                "{} expected {} got {:?}",
                p.name, p.expected, p.got
            );
        }
        assert_eq!(report.probes.len(), 30);
        let text = report.render_text();
        assert!(text.contains("30/30 fail closed"), "{text}");
        assert!(text.ends_with("SELFTEST PASS\n"));
    }

    #[test]
    fn a_probe_that_passes_is_reported_fail_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        sealed_fixtures(&dir).unwrap();
        let report = verify::verify(&dir, &VerifyOptions::default());
        let r = judge("no change", RejectCode::Sha256Mismatch, None, &report);
        assert!(!r.fail_closed);
        let summary = SelftestReport {
            schema: SELFTEST_REPORT_SCHEMA.into(),
            control_tree: String::new(),
            control_accepted: true,
            control_problems: vec![],
            probes: vec![r],
        };
        assert!(!summary.passed());
        assert!(!summary.render_text().contains("PASS"));
    }

    #[test]
    fn fixtures_are_the_reference_documents_byte_for_byte() {
        // The fixtures must stay exact copies; ../shared/reference is the source when present.
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
        for (rel, bytes) in FIXTURES.iter().filter(|(r, _)| r.starts_with("reference/")) {
            let name = rel.trim_start_matches("reference/");
            if let Ok(original) = fs::read(shared.join(name)) {
                assert_eq!(
                    &original[..],
                    *bytes,
                    "{rel} differs from ../shared/reference/{name}"
                );
            }
        }
    }
}
