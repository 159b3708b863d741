//! The hostile-input table: every input a reviewer can think of that must fail closed, one
//! named case each, run through the real binary. Each case asserts the exact reject code,
//! exit 1, no `PASS` token in stdout or stderr, a `--json` report (where the command has one)
//! whose verdict is not PASS and that names the code, and that nothing changed anywhere:
//! not outside the case's temporary directory (a sentinel directory beside it is compared
//! byte for byte) and not inside it either, since a refused run writes nothing.
//!
//! README.md lists the cases as a table; `readme_lists_every_case` keeps the two equal.

mod common;

use common::{add, pax_record, raw_header, repo, reseal_manifest, run_ok};
use packet::digest::Digest;
use packet::manifest::{MANIFEST_NAME, TREE_NAME, render_tree_file};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A case's working directory and what it was given.
struct Ctx {
    dir: PathBuf,
}

type Args = Vec<OsString>;

fn args(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Args {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const EVIDENCE: &str = "packet.rollback-evidence/1";

impl Ctx {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A sealed packet of the reference documents (em-dashes, Vietnamese), the JSON fixtures
    /// and the rollback evidence, at `pkt`.
    fn packet(&self) -> PathBuf {
        let pkt = self.path("pkt");
        run_ok(
            packet()
                .arg("build")
                .arg(&pkt)
                .arg(repo().join("selftest/reference"))
                .arg(repo().join("selftest/evidence.json"))
                .arg(repo().join("selftest/rollback-evidence.json"))
                .arg(repo().join("selftest/tiếng-việt.txt")),
        );
        pkt
    }

    /// A packet whose manifest went through `f`, with its tree file rewritten to match, so
    /// that only the manifest itself is wrong.
    fn manifest_edited(&self, f: impl FnOnce(String) -> String) -> Args {
        let pkt = self.packet();
        let text = fs::read_to_string(pkt.join(MANIFEST_NAME)).unwrap();
        let bytes = f(text).into_bytes();
        fs::write(pkt.join(MANIFEST_NAME), &bytes).unwrap();
        fs::write(pkt.join(TREE_NAME), render_tree_file(&Digest::of(&bytes))).unwrap();
        args(&[&"verify", &pkt])
    }

    /// A packet with one more manifest line, placed where sorting puts it.
    fn manifest_line(&self, line: &str) -> Args {
        let line = line.to_string();
        self.manifest_edited(move |t| {
            let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
            lines.push(line);
            lines.sort_by(|a, b| a.get(66..).unwrap_or("").cmp(b.get(66..).unwrap_or("")));
            lines.iter().map(|l| format!("{l}\n")).collect()
        })
    }

    /// A packet whose `SEAL.json` went through `f`, resealed over.
    fn seal_record_edited(&self, f: impl FnOnce(String) -> String) -> Args {
        let pkt = self.packet();
        let text = fs::read_to_string(pkt.join("SEAL.json")).unwrap();
        fs::write(pkt.join("SEAL.json"), f(text)).unwrap();
        reseal_manifest(&pkt);
        args(&[&"verify", &pkt])
    }

    /// `check-rollback` on `text`.
    fn evidence(&self, text: &[u8]) -> Args {
        let file = self.path("rollback-evidence.json");
        fs::write(&file, text).unwrap();
        args(&[&"check-rollback", &file])
    }

    /// One evidence document holding `entry` (JSON text).
    fn entry(&self, entry: &str) -> Args {
        self.evidence(format!(r#"{{"schema":"{EVIDENCE}","entries":[{entry}]}}"#).as_bytes())
    }

    /// A packed archive of [`Ctx::packet`] rebuilt with `attack` appended to its entries
    /// (raw headers, so hostile names go in as given), then unpacked into `out`.
    fn archive(&self, attack: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Args {
        let pkt = self.packet();
        let mut b = tar::Builder::new(Vec::new());
        let mut names = Vec::new();
        let mut stack = vec![pkt.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    names.push(p.strip_prefix(&pkt).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let first = [MANIFEST_NAME, TREE_NAME, "SEAL.json"];
        names.sort_by_key(|n| (first.iter().position(|f| f == n).unwrap_or(3), n.clone()));
        for n in names {
            add(&mut b, n.as_bytes(), &fs::read(pkt.join(&n)).unwrap());
        }
        attack(&mut b);
        let archive = self.path("hostile.tar");
        fs::write(&archive, b.into_inner().unwrap()).unwrap();
        fs::remove_dir_all(&pkt).unwrap();
        args(&[&"unpack", &archive, &self.path("out")])
    }

    /// A snapshot of the committed rehearsal database, at `name`.
    fn snapshot(&self, name: &str) -> PathBuf {
        let db = self.path("ledger.db");
        if !db.exists() {
            fs::copy(
                repo().join("packets/sqlite-rollback-rehearsal/ledger.db"),
                &db,
            )
            .unwrap();
        }
        let out = self.path(name);
        run_ok(
            packet()
                .arg("snapshot")
                .arg(format!("sqlite:{}", db.display()))
                .arg("-o")
                .arg(&out),
        );
        out
    }

    /// `snapshot-diff` of a good snapshot against one whose text went through `f`.
    fn snapshot_edited(&self, f: impl FnOnce(String) -> String) -> Args {
        let before = self.snapshot("before.json");
        let after = self.path("after.json");
        fs::write(&after, f(fs::read_to_string(&before).unwrap())).unwrap();
        args(&[&"snapshot-diff", &before, &after])
    }
}

fn tar_link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, target: &str) {
    let mut h = raw_header(b"link.txt", kind, 0);
    h.set_link_name(target).unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
}

/// One hostile case: its name (a README row), the reject code it must produce, and how to
/// make its input. `during` runs over and over while the command runs (a concurrent writer).
struct Case {
    name: &'static str,
    code: &'static str,
    make: fn(&Ctx) -> Args,
    during: Option<fn(&Ctx)>,
    /// Run as an unprivileged user (uid 65534) when the suite runs as root, for whom no
    /// permission bit makes a file unreadable.
    unprivileged: bool,
}

const fn case(name: &'static str, code: &'static str, make: fn(&Ctx) -> Args) -> Case {
    Case {
        name,
        code,
        make,
        during: None,
        unprivileged: false,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // ---- The manifest: forms sha256sum -c reads and packet refuses -------------------
        case("manifest with CRLF line ends", "MANIFEST_MALFORMED", |c| {
            c.manifest_edited(|t| t.replace('\n', "\r\n"))
        }),
        case("manifest with a UTF-8 BOM", "MANIFEST_MALFORMED", |c| {
            c.manifest_edited(|t| format!("\u{feff}{t}"))
        }),
        case(
            "manifest digest in uppercase hex",
            "MANIFEST_MALFORMED",
            |c| {
                c.manifest_edited(|t| {
                    let (first, rest) = t.split_at(64);
                    format!("{}{rest}", first.to_uppercase())
                })
            },
        ),
        case(
            "manifest line with the `*` binary marker",
            "MANIFEST_MALFORMED",
            |c| c.manifest_edited(|t| t.replacen("  ", " *", 1)),
        ),
        case("manifest `#` comment line", "MANIFEST_MALFORMED", |c| {
            c.manifest_edited(|t| format!("# sealed by hand\n{t}"))
        }),
        case("manifest blank line", "MANIFEST_MALFORMED", |c| {
            c.manifest_edited(|t| t.replacen('\n', "\n\n", 1))
        }),
        case("manifest BSD tagged line", "MANIFEST_MALFORMED", |c| {
            c.manifest_line(&format!("SHA256 (evil.txt) = {}", Digest::of(b"x")))
        }),
        case(
            "manifest backslash-escaped name",
            "MANIFEST_MALFORMED",
            |c| c.manifest_line(&format!("\\{}  evil\\nname", Digest::of(b"x"))),
        ),
        case("manifest path with `..`", "MANIFEST_MALFORMED", |c| {
            c.manifest_line(&format!("{}  ../outside/keep.txt", Digest::of(b"kept\n")))
        }),
        case("manifest absolute path", "MANIFEST_MALFORMED", |c| {
            c.manifest_line(&format!("{}  /etc/passwd", Digest::of(b"x")))
        }),
        case(
            "manifest path starting with `~`",
            "MANIFEST_MALFORMED",
            |c| c.manifest_line(&format!("{}  ~/.ssh/authorized_keys", Digest::of(b"x"))),
        ),
        case("manifest drive-letter path", "MANIFEST_MALFORMED", |c| {
            c.manifest_line(&format!("{}  C:/Windows/evil.dll", Digest::of(b"x")))
        }),
        case("manifest name with NUL", "MANIFEST_MALFORMED", |c| {
            c.manifest_line(&format!("{}  evil\0.txt", Digest::of(b"x")))
        }),
        case("manifest name with U+FFFD", "MANIFEST_MALFORMED", |c| {
            c.manifest_line(&format!("{}  ti\u{FFFD}ng.txt", Digest::of(b"x")))
        }),
        case("manifest name not in NFC", "MANIFEST_MALFORMED", |c| {
            c.manifest_line(&format!("{}  cafe\u{301}.txt", Digest::of(b"x")))
        }),
        case(
            "manifest without its final newline",
            "MANIFEST_MALFORMED",
            |c| c.manifest_edited(|t| t.trim_end().to_string()),
        ),
        case(
            "manifest listing one path twice",
            "MANIFEST_MALFORMED",
            |c| {
                c.manifest_edited(|t| {
                    let first = t.lines().next().unwrap().to_string();
                    format!("{first}\n{t}")
                })
            },
        ),
        case("manifest missing", "MANIFEST_MISSING", |c| {
            let pkt = c.packet();
            fs::remove_file(pkt.join(MANIFEST_NAME)).unwrap();
            args(&[&"verify", &pkt])
        }),
        // ---- Tree hash, pin, seal record ---------------------------------------------------
        case("tree file missing", "TREE_HASH_MISSING", |c| {
            let pkt = c.packet();
            fs::remove_file(pkt.join(TREE_NAME)).unwrap();
            args(&[&"verify", &pkt])
        }),
        case("tree file malformed", "TREE_HASH_MALFORMED", |c| {
            let pkt = c.packet();
            fs::write(pkt.join(TREE_NAME), "trust me\n").unwrap();
            args(&[&"verify", &pkt])
        }),
        case(
            "manifest rewritten, tree file kept",
            "TREE_HASH_MISMATCH",
            |c| {
                let pkt = c.packet();
                fs::write(pkt.join("evidence.json"), "{\"forged\": true}\n").unwrap();
                let tree = fs::read(pkt.join(TREE_NAME)).unwrap();
                reseal_manifest(&pkt);
                fs::write(pkt.join(TREE_NAME), tree).unwrap();
                args(&[&"verify", &pkt])
            },
        ),
        case("pin of another packet", "PIN_MISMATCH", |c| {
            let pkt = c.packet();
            args(&[
                &"verify",
                &pkt,
                &"--expect-tree",
                &Digest::of(b"other").to_hex(),
            ])
        }),
        case(
            "seal record with one path twice",
            "SEAL_INCONSISTENT",
            |c| {
                c.seal_record_edited(|t| {
                    let line = t
                        .lines()
                        .find(|l| l.contains("\"path\":\"evidence.json\""))
                        .unwrap()
                        .trim_end_matches(',')
                        .to_string();
                    t.replacen(&line, &format!("{line},\n{line}"), 1)
                })
            },
        ),
        case(
            "seal record with an unknown member",
            "SEAL_INCONSISTENT",
            |c| c.seal_record_edited(|t| t.replacen('{', "{\"trusted\":true,", 1)),
        ),
        case(
            "seal record nested 100,000 deep",
            "SEAL_INCONSISTENT",
            |c| {
                let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                c.seal_record_edited(|t| t.replacen('{', &format!("{{\"x\":{deep},"), 1))
            },
        ),
        case("seal record with a UTF-8 BOM", "SEAL_INCONSISTENT", |c| {
            c.seal_record_edited(|t| format!("\u{feff}{t}"))
        }),
        // ---- Payload -------------------------------------------------------------------------
        case("payload byte changed", "SHA256_MISMATCH", |c| {
            let pkt = c.packet();
            let path = pkt.join("evidence.json");
            let mut bytes = fs::read(&path).unwrap();
            bytes[10] ^= 1;
            fs::write(&path, bytes).unwrap();
            args(&[&"verify", &pkt])
        }),
        case("payload truncated", "BYTE_LENGTH_MISMATCH", |c| {
            let pkt = c.packet();
            let path = pkt.join("reference/000_f85dc3b6917de17c.txt");
            let bytes = fs::read(&path).unwrap();
            fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            args(&[&"verify", &pkt])
        }),
        case("payload file deleted", "FILE_MISSING", |c| {
            let pkt = c.packet();
            fs::remove_file(pkt.join("evidence.json")).unwrap();
            args(&[&"verify", &pkt])
        }),
        case("unsealed file added", "FILE_UNSEALED", |c| {
            let pkt = c.packet();
            fs::write(pkt.join("reference/extra.txt"), "added later\n").unwrap();
            args(&[&"verify", &pkt])
        }),
        case("symlink in a packet", "PATH_REJECTED", |c| {
            let pkt = c.packet();
            std::os::unix::fs::symlink("/etc/passwd", pkt.join("reference/passwd")).unwrap();
            args(&[&"verify", &pkt])
        }),
        case("fifo in a packet", "PATH_REJECTED", |c| {
            let pkt = c.packet();
            let fifo = std::ffi::CString::new(
                pkt.join("reference/pipe")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .unwrap();
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
            args(&[&"verify", &pkt])
        }),
        case("name that is not UTF-8 in a packet", "PATH_REJECTED", |c| {
            use std::os::unix::ffi::OsStrExt;
            let pkt = c.packet();
            let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
            fs::write(pkt.join("reference").join(name), "latin-1 name\n").unwrap();
            args(&[&"verify", &pkt])
        }),
        Case {
            unprivileged: true,
            ..case("file that cannot be opened", "FILE_UNREADABLE", |c| {
                let pkt = c.packet();
                let path = pkt.join("evidence.json");
                fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000))
                    .unwrap();
                args(&[&"verify", &pkt])
            })
        },
        Case {
            unprivileged: true,
            ..case("directory that cannot be read", "FILE_UNREADABLE", |c| {
                let pkt = c.packet();
                let path = pkt.join("reference");
                fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000))
                    .unwrap();
                args(&[&"verify", &pkt])
            })
        },
        Case {
            during: Some(|c| {
                // A log still being written: its mtime moves while verify reads it.
                static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = fs::File::options()
                    .write(true)
                    .open(c.path("pkt/growing.log"))
                    .and_then(|f| {
                        f.set_modified(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30 | n),
                        )
                    });
            }),
            ..case(
                "file changed while verify reads it",
                "FILE_CHANGED_WHILE_READ",
                |c| {
                    let pkt = c.packet();
                    fs::File::create(pkt.join("growing.log"))
                        .unwrap()
                        .set_len(512 << 20)
                        .unwrap();
                    run_ok(packet().arg("build").arg(&pkt).arg("--reseal"));
                    args(&[&"verify", &pkt, &"--jobs", &"1"])
                },
            )
        },
        // ---- Build ---------------------------------------------------------------------------
        case("symlink loop in a build source", "PATH_REJECTED", |c| {
            let src = c.path("src");
            fs::create_dir(&src).unwrap();
            fs::write(src.join("log.txt"), "x\n").unwrap();
            std::os::unix::fs::symlink("b", src.join("a")).unwrap();
            std::os::unix::fs::symlink("a", src.join("b")).unwrap();
            args(&[&"build", &c.path("out"), &src])
        }),
        case("name not in NFC in a build source", "PATH_REJECTED", |c| {
            let src = c.path("src");
            fs::create_dir(&src).unwrap();
            fs::write(src.join("cafe\u{301}.txt"), "x\n").unwrap();
            args(&[&"build", &c.path("out"), &src])
        }),
        Case {
            unprivileged: true,
            ..case(
                "directory in a build source that cannot be read",
                "FILE_UNREADABLE",
                |c| {
                    let src = c.path("src");
                    fs::create_dir_all(src.join("logs")).unwrap();
                    fs::write(src.join("logs/run.log"), "x\n").unwrap();
                    fs::write(src.join("result.json"), "{}\n").unwrap();
                    fs::set_permissions(
                        src.join("logs"),
                        std::os::unix::fs::PermissionsExt::from_mode(0o000),
                    )
                    .unwrap();
                    args(&[&"build", &c.path("out"), &src])
                },
            )
        },
        case("packet built inside its own source", "BUILD_REFUSED", |c| {
            let src = c.path("src");
            fs::create_dir(&src).unwrap();
            fs::write(src.join("log.txt"), "x\n").unwrap();
            args(&[&"build", &src.join("pkt"), &src])
        }),
        case("build source that does not exist", "FILE_MISSING", |c| {
            args(&[&"build", &c.path("out"), &c.path("no-such-source")])
        }),
        // ---- Rollback evidence ---------------------------------------------------------------
        case(
            "rollback apply hash twice, the last equal to before",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                c.entry(&format!(
                    r#"{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{B}","after_apply_hash":"{A}","after_rollback_hash":"{A}"}}"#
                ))
            },
        ),
        case(
            "rollback apply hash twice, the first equal to before",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                c.entry(&format!(
                    r#"{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}"#
                ))
            },
        ),
        case(
            "rollback apply hash twice, once \\u-escaped",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                c.entry(&format!(
                    r#"{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","after_\u0061pply_hash":"{B}","after_rollback_hash":"{A}"}}"#
                ))
            },
        ),
        case(
            "rollback evidence with a UTF-8 BOM",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                let good = format!(
                    r#"{{"schema":"{EVIDENCE}","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}]}}"#
                );
                c.evidence(format!("\u{feff}{good}").as_bytes())
            },
        ),
        case(
            "rollback evidence with a lone surrogate escape",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                c.entry(&format!(
                    r#"{{"id":"RB-\ud800","before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}"#
                ))
            },
        ),
        case(
            "rollback evidence with an unknown member",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                c.evidence(format!(
                    r#"{{"schema":"{EVIDENCE}","entires":[],"entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}]}}"#
                ).as_bytes())
            },
        ),
        case(
            "rollback evidence nested 100,000 deep",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                c.entry(&format!(
                    r#"{{"id":"RB-1","x":{deep},"before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}"#
                ))
            },
        ),
        case(
            "rollback hash in uppercase",
            "ROLLBACK_ENTRY_MALFORMED",
            |c| {
                let upper = B.to_uppercase();
                c.entry(&format!(
                r#"{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{upper}","after_rollback_hash":"{A}"}}"#
            ))
            },
        ),
        case(
            "rollback hash given as a number",
            "ROLLBACK_ENTRY_MALFORMED",
            |c| {
                c.entry(&format!(
                r#"{{"id":"RB-1","before_hash":"{A}","after_apply_hash":1e64,"after_rollback_hash":"{A}"}}"#
            ))
            },
        ),
        case(
            "rollback row count that would be rounded",
            "ROLLBACK_ENTRY_MALFORMED",
            |c| {
                c.entry(&format!(
                r#"{{"id":"RB-1","rows_before":1e2,"before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}"#
            ))
            },
        ),
        case(
            "rollback entry with an unknown member",
            "ROLLBACK_ENTRY_MALFORMED",
            |c| {
                c.entry(&format!(
                r#"{{"id":"RB-1","after_apply":"{A}","before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}"#
            ))
            },
        ),
        case(
            "rollback apply equal to before",
            "ROLLBACK_APPLY_DID_NOT_MUTATE",
            |c| {
                c.entry(&format!(
                r#"{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","after_rollback_hash":"{A}"}}"#
            ))
            },
        ),
        case("rollback not restored", "ROLLBACK_NOT_RESTORED", |c| {
            c.entry(&format!(
                r#"{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{B}"}}"#
            ))
        }),
        case(
            "rollback evidence with no entries",
            "ROLLBACK_NO_ENTRIES",
            |c| c.evidence(format!(r#"{{"schema":"{EVIDENCE}","entries":[]}}"#).as_bytes()),
        ),
        case(
            "rollback duplicate member sealed inside a packet",
            "ROLLBACK_EVIDENCE_MALFORMED",
            |c| {
                let pkt = c.packet();
                let path = pkt.join("rollback-evidence.json");
                let text = fs::read_to_string(&path).unwrap();
                let before = text.split("\"before_hash\": \"").nth(1).unwrap()[..64].to_string();
                let forged = text.replacen(
                    "\"after_apply_hash\"",
                    &format!("\"after_apply_hash\": \"{before}\", \"after_apply_hash\""),
                    1,
                );
                fs::write(&path, forged).unwrap();
                run_ok(packet().arg("build").arg(&pkt).arg("--reseal"));
                args(&[&"verify", &pkt])
            },
        ),
        // ---- Archives (unpacked: the dangerous direction) ------------------------------------
        case("archive entry with `..`", "ARCHIVE_PATH_UNSAFE", |c| {
            c.archive(|b| add(b, b"../outside/evil.txt", b"pwned\n"))
        }),
        case(
            "archive entry with an absolute path",
            "ARCHIVE_PATH_UNSAFE",
            |c| c.archive(|b| add(b, b"/tmp/packet-hostile-evil.txt", b"pwned\n")),
        ),
        case("archive symlink entry", "ARCHIVE_LINK", |c| {
            c.archive(|b| tar_link(b, tar::EntryType::Symlink, "/etc/passwd"))
        }),
        case("archive hard-link entry", "ARCHIVE_LINK", |c| {
            c.archive(|b| tar_link(b, tar::EntryType::Link, "HASH_MANIFEST.txt"))
        }),
        case("archive device entry", "ARCHIVE_SPECIAL_ENTRY", |c| {
            c.archive(|b| {
                b.append(&raw_header(b"dev", tar::EntryType::Char, 0), &[][..])
                    .unwrap()
            })
        }),
        case(
            "archive entry shadowing a sealed one",
            "ARCHIVE_DUPLICATE_PATH",
            |c| c.archive(|b| add(b, b"evidence.json", b"{\"forged\": true}\n")),
        ),
        case(
            "archive names colliding by case",
            "ARCHIVE_PATH_COLLISION",
            |c| c.archive(|b| add(b, b"EVIDENCE.json", b"shadow\n")),
        ),
        case(
            "archive PAX header rewriting a path",
            "ARCHIVE_PATH_REWRITE",
            |c| {
                c.archive(|b| {
                    let rec = pax_record("path", "evidence.json");
                    b.append(
                        &raw_header(b"pax", tar::EntryType::XHeader, rec.len() as u64),
                        &rec[..],
                    )
                    .unwrap();
                    add(b, b"innocent.txt", b"{\"forged\": true}\n");
                })
            },
        ),
        case("archive truncated", "ARCHIVE_MALFORMED", |c| {
            let pkt = c.packet();
            let archive = c.path("p.tar");
            run_ok(packet().arg("pack").arg(&pkt).arg("-o").arg(&archive));
            let bytes = fs::read(&archive).unwrap();
            fs::write(&archive, &bytes[..bytes.len() / 2 + 100]).unwrap();
            fs::remove_dir_all(&pkt).unwrap();
            args(&[&"unpack", &archive, &c.path("out")])
        }),
        case("archive entry tampered", "SHA256_MISMATCH", |c| {
            let pkt = c.packet();
            let archive = c.path("p.tar");
            run_ok(packet().arg("pack").arg(&pkt).arg("-o").arg(&archive));
            let mut bytes = fs::read(&archive).unwrap();
            let at = bytes
                .windows(18)
                .position(|w| w == b"surfaces_untouched")
                .unwrap();
            bytes[at] ^= 0x20;
            fs::write(&archive, bytes).unwrap();
            fs::remove_dir_all(&pkt).unwrap();
            args(&[&"verify", &archive])
        }),
        // ---- Database state ------------------------------------------------------------------
        case(
            "snapshot of a file that is not a database",
            "SNAPSHOT_SOURCE_UNREADABLE",
            |c| {
                let file = c.path("notes.db");
                fs::write(&file, "these are notes, not SQLite\n".repeat(100)).unwrap();
                args(&[
                    &"snapshot",
                    &format!("sqlite:{}", file.display()),
                    &"-o",
                    &c.path("s.json"),
                ])
            },
        ),
        case(
            "snapshot of a missing database",
            "SNAPSHOT_SOURCE_UNREADABLE",
            |c| {
                let file = c.path("missing.db");
                args(&[
                    &"snapshot",
                    &format!("sqlite:{}", file.display()),
                    &"-o",
                    &c.path("s.json"),
                ])
            },
        ),
        case("claims naming a missing table", "CLAIMS_MALFORMED", |c| {
            c.snapshot("unused.json");
            fs::remove_file(c.path("unused.json")).unwrap();
            let claims = c.path("claims.toml");
            fs::write(
                &claims,
                "[[claim]]\nid = \"NT-1\"\ntitle = \"registry untouched\"\ntable = \"birth_registry\"\n",
            )
            .unwrap();
            let db = format!("sqlite:{}", c.path("ledger.db").display());
            args(&[
                &"snapshot",
                &db,
                &"--claims",
                &claims,
                &"-o",
                &c.path("s.json"),
            ])
        }),
        case(
            "snapshot with a duplicate member",
            "SNAPSHOT_MALFORMED",
            |c| c.snapshot_edited(|t| t.replacen("{", "{\n  \"engine\": \"sqlite\",", 1)),
        ),
        case(
            "snapshot with an unknown member",
            "SNAPSHOT_MALFORMED",
            |c| c.snapshot_edited(|t| t.replacen("{", "{\n  \"verified\": true,", 1)),
        ),
        case(
            "snapshot row count that would be rounded",
            "SNAPSHOT_MALFORMED",
            |c| {
                c.snapshot_edited(|t| {
                    let at = t.find("\"rows\": ").unwrap() + 8;
                    let end = at + t[at..].find(',').unwrap();
                    format!("{}{}.0{}", &t[..at], &t[at..end], &t[end..])
                })
            },
        ),
        case(
            "snapshot with an edited state digest",
            "SNAPSHOT_MALFORMED",
            |c| {
                c.snapshot_edited(|t| {
                    let at = t.find("\"state_digest\": \"").unwrap() + 17;
                    format!("{}{}{}", &t[..at], "0".repeat(64), &t[at + 64..])
                })
            },
        ),
        case(
            "snapshots of different engines",
            "SNAPSHOT_INCOMPARABLE",
            |c| {
                c.snapshot_edited(|t| {
                    t.replace("\"engine\": \"sqlite\"", "\"engine\": \"postgresql\"")
                })
            },
        ),
        case("database changed between snapshots", "STATE_CHANGED", |c| {
            let before = c.snapshot("before.json");
            rusqlite::Connection::open(c.path("ledger.db"))
                .unwrap()
                .execute_batch("UPDATE ledger SET amount_cents = amount_cents + 1 WHERE id = 1")
                .unwrap();
            let after = c.snapshot("after.json");
            args(&[&"snapshot-diff", &before, &after])
        }),
    ]
}

fn has_pass_token(text: &str) -> bool {
    let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let bytes = text.as_bytes();
    text.match_indices("PASS")
        .any(|(i, _)| !word(i.checked_sub(1).and_then(|j| bytes.get(j))) && !word(bytes.get(i + 4)))
}

/// Every name under `dir` with its bytes (or link target): what a refused run must not change.
fn state(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            let mut value = format!("{mode:o} {} ", meta.len()).into_bytes();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_symlink() {
                value.extend(
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else if meta.is_file() {
                value.extend(fs::read(&p).unwrap_or_default());
            }
            out.insert(rel, value);
        }
    }
    out
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Runs `packet ARGS` for a case: in the case directory, with its own TMPDIR and HOME,
/// unprivileged when asked, with `during` repeated until it exits. Returns (exit code,
/// stdout, stderr).
fn run_case(c: &Case, ctx: &Ctx, args: &[OsString]) -> (Option<i32>, String, String) {
    let mut cmd = packet();
    cmd.args(args)
        .current_dir(&ctx.dir)
        .env("TMPDIR", ctx.path("tmp"))
        .env("HOME", ctx.path("home"))
        .env_remove("PACKET_TEST_FAIL_WRITE")
        .env_remove("PACKET_TEST_CRASH_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if c.unprivileged && is_root() {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(during) = c.during {
        while child.try_wait().unwrap().is_none() {
            during(ctx);
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sets up and runs one case; on failure, says why.
fn check(c: &Case) -> Result<(), String> {
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("case");
    let outside = outer.path().join("outside");
    for d in [&dir, &outside, &dir.join("tmp"), &dir.join("home")] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(outside.join("keep.txt"), "kept\n").unwrap();
    let ctx = Ctx { dir };
    let args = (c.make)(&ctx);
    if c.unprivileged {
        // The unprivileged user must reach the case (but not the file it must fail on).
        use std::os::unix::fs::PermissionsExt;
        for d in [outer.path(), &ctx.dir, &ctx.path("tmp")] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }
    }
    let before = state(outer.path());
    let mut runs = vec![(false, run_case(c, &ctx, &args))];
    if c.during.is_none() {
        let mut json = args.clone();
        json.push("--json".into());
        runs.push((true, run_case(c, &ctx, &json)));
    }
    for (json, (code, stdout, stderr)) in runs {
        let all = format!("{stdout}{stderr}");
        let what = if json { "--json run" } else { "run" };
        if code != Some(1) {
            return Err(format!("{what}: exit {code:?}, not 1:\n{all}"));
        }
        if !all.contains(c.code) {
            return Err(format!("{what}: {} not named:\n{all}", c.code));
        }
        if has_pass_token(&all) {
            return Err(format!("{what}: a PASS token was printed:\n{all}"));
        }
        if json {
            let report: serde_json::Value = serde_json::from_str(&stdout)
                .map_err(|e| format!("--json printed no JSON ({e}):\n{all}"))?;
            if report["verdict"] == "PASS" || report["passed"] == true {
                return Err(format!("--json verdict PASS:\n{stdout}"));
            }
        }
    }
    let after = state(outer.path());
    if after != before {
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        return Err(format!("the refused run changed files: {changed:?}"));
    }
    if Path::new("/tmp/packet-hostile-evil.txt").exists() {
        return Err("an archive wrote to an absolute path".into());
    }
    Ok(())
}

#[test]
fn every_hostile_case_fails_closed_with_its_code_and_changes_nothing() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check(c)
                .err()
                .map(|e| format!("{} ({}): {e}", c.name, c.code))
        })
        .collect();
    eprintln!(
        "hostile inputs: {} cases, {} held",
        cases.len(),
        cases.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn readme_lists_every_case() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let table = readme
        .split("<!-- hostile-cases -->")
        .nth(1)
        .expect("README has the hostile-cases table between two markers");
    let rows: Vec<(String, String)> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| case") && !l.starts_with("|---"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].to_string(), cells[1].trim_matches('`').to_string())
        })
        .collect();
    let want: Vec<(String, String)> = cases()
        .iter()
        .map(|c| (c.name.replace('|', "\\|"), c.code.to_string()))
        .collect();
    assert_eq!(
        rows,
        want,
        "README table out of date; expected rows:\n{}",
        want.iter()
            .map(|(n, c)| format!("| {n} | `{c}` |"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
