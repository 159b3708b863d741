//! The `packet` command line: parses arguments, calls the library, maps the outcome to an exit
//! code (0 PASS, 1 any reject or failure, 2 usage error).

use clap::{Args, CommandFactory, Parser, Subcommand};
use packet::archive::{self, Compression, Limits};
use packet::pack::{self, PackOptions};
use packet::parallel::Jobs;
use packet::pin::Pin;
use packet::report::{Outcome, Reject};
use packet::restore;
use packet::seal::{self, SealOptions};
use packet::staging;
use packet::unpack::{self, UnpackOptions};
use packet::verify::{self, Against, VerifyOptions};
use packet::{Error, selftest};
use std::path::PathBuf;
use std::process::ExitCode;

// mimalloc, not glibc malloc: hashing 100,000 small files makes several short-lived
// allocations per file on every worker thread, and glibc's per-thread arenas spend about 3% of
// the CPU on them (perf, README "Where the time goes"). Tuned by `TUNE_ALLOCATOR`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in the bundled mimalloc v3 `mimalloc.h` (`mi_option_e`,
/// 5th member); the Rust bindings do not name it.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// `mi_option_purge_delay` (milliseconds) in the same enum, 16th member.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the OS at once and commits arena memory only as it is used.
/// mimalloc's defaults (purge after 1000 ms, arenas committed eagerly on Linux) held up to
/// 87 MiB resident verifying 100,000 files, against 31 MiB with glibc; with these two
/// settings it is 34 MiB and the time is unchanged (measured in the issue-14 work).
///
/// Runs from `.init_array`, before the Rust runtime's first allocation: set from `main`, the
/// first arena has already been reserved with eager commit, and verify still peaked at 55 MiB.
#[cfg_attr(target_os = "linux", used, unsafe(link_section = ".init_array"))]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

extern "C" fn tune_allocator() {
    // SAFETY: plain option setters of the linked mimalloc; they take any value.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

/// Seal evidence into packets and prove, later and anywhere, that the bytes are still the
/// bytes that were sealed.
#[derive(Parser)]
#[command(name = "packet", version, arg_required_else_help = true)]
struct Cli {
    /// Prove that every reject still fires and the untouched control still passes.
    #[arg(long)]
    selftest: bool,
    /// With --selftest: print the result as one JSON document.
    #[arg(long, requires = "selftest")]
    json: bool,
    /// Worker threads for hashing; for a snapshot, the connections that scan tables at once
    /// (PostgreSQL: sharing one exported snapshot) (default: one per CPU). Before or after
    /// the command.
    #[arg(long, short = 'j', global = true, value_name = "N")]
    jobs: Option<usize>,
    /// Print nothing but the verdict line (no progress, no per-file lines).
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Prints text output; with `--quiet`, only its last line (the verdict).
fn emit(text: &str, quiet: bool) {
    if quiet {
        if let Some(last) = text.lines().last() {
            println!("{last}");
        }
    } else {
        print!("{text}");
    }
}

#[derive(Subcommand)]
enum Command {
    /// Copy SOURCEs (files, or directories with their whole tree) into OUT and seal it.
    /// With no SOURCE, seal OUT as it stands.
    #[command(after_help = "Example:\n  packet build packets/run-42 results.json logs/ RERUN.sh")]
    Build {
        /// The packet directory (created if absent).
        out: PathBuf,
        /// Files or directories to copy in, each under its own name.
        sources: Vec<PathBuf>,
        /// Replace an existing seal instead of refusing.
        #[arg(long)]
        reseal: bool,
        /// Print the outcome as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Re-check a packet's seal against its bytes and report every problem. PACKET may be a
    /// packet directory or a packet archive (.tar or .tar.gz), which is verified in one
    /// streaming pass without extracting anything.
    #[command(
        after_help = "Examples:\n  packet verify packets/run-42 --expect-tree 72b24b8a…787bb2\n  packet verify run-42.tar.gz --expect-tree 72b24b8a…787bb2\n  packet verify --pins packets.pins"
    )]
    Verify {
        /// The packet directory or archive.
        #[arg(required_unless_present = "pins")]
        packet: Option<PathBuf>,
        /// Verify every packet a pins file names, each pinned to its published tree hash
        /// (lines `<tree hash>  <packet path>`, paths relative to the file; `#` comments):
        /// the CI gate and pre-commit hook.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["packet", "expect_tree", "against"])]
        pins: Option<PathBuf>,
        /// The tree hash the packet must have: 64 hex digits, or abbreviated as documents cite
        /// it (PREFIX…SUFFIX or PREFIX...SUFFIX).
        #[arg(long, value_name = "DIGEST")]
        expect_tree: Option<Pin>,
        /// Check PACKET as a copy of ORIGINAL: a sealed packet directory, its HASH_MANIFEST.txt,
        /// or its tree hash. Every document is reported byte-exact or with its diagnosed drift.
        #[arg(long, value_name = "ORIGINAL")]
        against: Option<String>,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Verify a packet and write it as one byte-reproducible archive: .tar, or .tar.gz / .tgz
    /// by the name. Headers carry mtime 0 (or SOURCE_DATE_EPOCH), uid/gid 0, modes 0644/0755.
    #[command(after_help = "Example:\n  packet pack packets/run-42 -o run-42.tar.gz")]
    Pack {
        /// The packet directory; it must verify.
        packet: PathBuf,
        /// The archive to write (must not exist).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        /// The tree hash the packet must have before it is packed.
        #[arg(long, value_name = "DIGEST")]
        expect_tree: Option<Pin>,
        /// Print the outcome as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Extract a packet archive into the new directory DIR: into a temporary directory beside
    /// it first, verified, and only then renamed to DIR. Hostile entries (.. or absolute
    /// paths, links, devices, duplicate or colliding names, rewritten headers, size and count
    /// bombs) are refused, and on any reject nothing is left behind.
    #[command(
        after_help = "Example:\n  packet unpack run-42.tar.gz restored/run-42 --expect-tree 72b24b8a…787bb2"
    )]
    Unpack {
        /// The archive (.tar or .tar.gz).
        archive: PathBuf,
        /// The directory to create (must not exist).
        dir: PathBuf,
        /// The tree hash the unpacked packet must have.
        #[arg(long, value_name = "DIGEST")]
        expect_tree: Option<Pin>,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Rebuild a drifted copy of a packet into DIR: proven drift undone, byte-exact files
    /// copied, unprovable files refused with the reason. Never writes into COPY.
    #[command(
        after_help = "Example:\n  packet restore downloaded-from-kb --out restored --against packets/run-42"
    )]
    Restore {
        /// The drifted copy.
        copy: PathBuf,
        /// The new packet directory to write (must not exist).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Take the seal from ORIGINAL (a sealed packet directory, its HASH_MANIFEST.txt, or its
        /// tree hash) instead of the copy's own seal files.
        #[arg(long, value_name = "ORIGINAL")]
        against: Option<String>,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Validate rollback-evidence documents (schema packet.rollback-evidence/1).
    #[command(after_help = "Example:\n  packet check-rollback evidence/rollback-evidence.json")]
    CheckRollback {
        /// Evidence files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Digest a database's state, read-only, into a snapshot document (packet.snapshot/1):
    /// per table its rows, content digest and schema digest, and one state digest,
    /// independent of page layout, row order and rowids.
    #[command(
        after_help = "Examples:\n  packet snapshot sqlite:app.db -o before.json\n  packet snapshot postgres://app@db.internal:5432/app --claims no-touch.toml -o before.json"
    )]
    Snapshot {
        /// The database: sqlite:PATH, or postgres://user@host:port/db (libpq's PG*
        /// environment variables fill in what the URL leaves out).
        target: packet::state::Target,
        /// The snapshot document to write (must not exist).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        /// Open the SQLite file as immutable (no locks; only for a copy nobody writes).
        #[arg(long)]
        immutable: bool,
        /// A claims file (TOML, [[claim]] tables with id, title, table, optional where and
        /// columns): each claim is evaluated to a row count and a digest.
        #[arg(long, value_name = "FILE.toml")]
        claims: Option<PathBuf>,
        /// Only tables matching this glob (repeatable).
        #[arg(long = "table", value_name = "PATTERN")]
        tables: Vec<String>,
        /// Never tables matching this glob (repeatable).
        #[arg(long = "exclude-table", value_name = "PATTERN")]
        exclude_tables: Vec<String>,
        /// Print the outcome as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Apply CHANGE.sql to a disposable copy of the database (never to the database itself)
    /// and write rollback evidence from three state digests: before, after the apply, after
    /// the rollback (the change's own transaction rolled back, or ROLLBACK.sql).
    #[command(
        after_help = "Example:\n  packet rehearse sqlite:app.db --apply change.sql --rollback undo.sql -o rollback-evidence.json"
    )]
    Rehearse {
        /// The database: sqlite:PATH (opened read-only; only its copy is changed), or
        /// postgres://user@host:port/db (the change runs in a transaction that is always
        /// rolled back; with --rollback, on a scratch database made from it and dropped after).
        target: packet::state::Target,
        /// The change to rehearse.
        #[arg(long, value_name = "CHANGE.sql")]
        apply: PathBuf,
        /// The rollback; without it, the change's transaction is rolled back.
        #[arg(long, value_name = "ROLLBACK.sql")]
        rollback: Option<PathBuf>,
        /// The evidence to write (must not exist).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        /// Print the outcome as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print the completion script for SHELL, generated from this command line's own
    /// definition.
    #[command(
        after_help = "Examples:\n  packet completions bash > ~/.local/share/bash-completion/completions/packet\n  packet completions zsh > ~/.zfunc/_packet\n  packet completions fish > ~/.config/fish/completions/packet.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff) to stdout, generated from this command line's own definition,
    /// or write one per command into a directory.
    #[command(
        after_help = "Examples:\n  packet man verify | man -l -\n  packet man --out ~/.local/share/man/man1"
    )]
    Man(ManArgs),
    /// Compare two snapshots of one database: the no-touch proof. Exit 0 only when every
    /// table is identical; the report carries every table's figures either way.
    #[command(after_help = "Example:\n  packet snapshot-diff before.json after.json")]
    SnapshotDiff {
        /// The snapshot taken first.
        before: PathBuf,
        /// The snapshot taken after.
        after: PathBuf,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// The man pages `packet man` prints or writes.
#[derive(Args)]
struct ManArgs {
    /// The command whose page to print (default: the page of packet itself).
    command: Option<String>,
    /// Write every page (packet.1 and packet-COMMAND.1 per command) into DIR instead.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    out: Option<PathBuf>,
}

/// Bounds on what an archive may hold (verify and unpack of archives).
#[derive(Args)]
struct LimitArgs {
    /// Refuse archive entries larger than SIZE: bytes, or with a unit in powers of 1024 (512M, 16GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes, default_value = "16GiB")]
    max_entry_bytes: u64,
    /// Refuse archives with more than N entries (files, directories and extension headers).
    #[arg(long, value_name = "N", default_value_t = archive::DEFAULT_MAX_ENTRIES)]
    max_entries: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_entry_bytes: self.max_entry_bytes,
            max_entries: self.max_entries,
        }
    }
}

/// A byte count: a number with an optional unit, in powers of 1024 (K, KB and KiB are 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text)
        .map_err(|e| format!("{e} (give bytes, or a size such as 512M or 16GiB)"))
}

/// Prints an outcome as text (or JSON) and maps it to the exit code.
fn print_report(report: &dyn Outcome, json: bool, quiet: bool) -> ExitCode {
    if json {
        print!("{}", report.to_json());
    } else {
        emit(&report.render_text(), quiet);
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `SNAPSHOT <target>: N tables, M rows; state <digest>`, or the reject and a FAIL line.
fn print_snapshot(
    target: &str,
    out: &std::path::Path,
    outcome: &Result<packet::state::Snapshot, Box<Reject>>,
    json: bool,
    quiet: bool,
) -> ExitCode {
    let shown = packet::report::shown;
    if json {
        let doc = serde_json::json!({
            "schema": "packet.snapshot-report/1",
            "verdict": if outcome.is_ok() { "SNAPSHOT" } else { "FAIL" },
            "target": target,
            "out": out.display().to_string(),
            "tables": outcome.as_ref().ok().map(|s| s.tables.len()),
            "rows": outcome.as_ref().ok().map(|s| s.rows()),
            "state_digest": outcome.as_ref().ok().map(|s| s.state_digest.to_hex()),
            "rejects": outcome.as_ref().err().into_iter().collect::<Vec<_>>(),
        });
        print!("{}", packet::report::json_document(&doc, outcome.is_ok()));
    }
    match outcome {
        Ok(s) => {
            if !json {
                println!(
                    "SNAPSHOT {}: {}, {}; state {}",
                    shown(target),
                    packet::report::plural(s.tables.len(), "table"),
                    packet::report::plural(s.rows() as usize, "row"),
                    s.state_digest
                );
            }
            ExitCode::SUCCESS
        }
        Err(r) => {
            if !json {
                let mut text = String::new();
                if !quiet {
                    text.push_str(&r.render());
                    text.push('\n');
                }
                text.push_str(&format!(
                    "FAIL snapshot {}: 1 reject; nothing written\n",
                    shown(target)
                ));
                print!("{}", packet::report::mask_pass(&text, false));
            }
            ExitCode::from(1)
        }
    }
}

/// The rehearsal's verdict: PASS when the evidence proves a rollback, FAIL with its rejects
/// (the evidence is still written) or with why nothing was written.
fn print_rehearsal(
    target: &str,
    out: &std::path::Path,
    outcome: &Result<packet::state::rehearse::Rehearsal, Box<Reject>>,
    json: bool,
    quiet: bool,
) -> ExitCode {
    let shown = packet::report::shown;
    let (passed, rejects): (bool, Vec<&Reject>) = match outcome {
        Ok(r) => (r.rejects.is_empty(), r.rejects.iter().collect()),
        Err(e) => (false, vec![e.as_ref()]),
    };
    if json {
        let doc = serde_json::json!({
            "schema": "packet.rehearse-report/1",
            "verdict": if passed { "PASS" } else { "FAIL" },
            "target": target,
            "evidence": outcome.as_ref().ok().map(|_| out.display().to_string()),
            "before_hash": outcome.as_ref().ok().map(|r| r.before.clone()),
            "after_apply_hash": outcome.as_ref().ok().map(|r| r.after_apply.clone()),
            "after_rollback_hash": outcome.as_ref().ok().map(|r| r.after_rollback.clone()),
            "tables_changed_by_apply": outcome.as_ref().ok().map(|r| r.applied_to.clone()),
            "rejects": rejects,
        });
        print!("{}", packet::report::json_document(&doc, passed));
    } else {
        let mut text = String::new();
        if !quiet {
            for r in &rejects {
                text.push_str(&r.render());
                text.push('\n');
            }
        }
        if let (Ok(r), false) = (outcome, quiet) {
            text.push_str(&format!(
                "  before          {}\n  after apply     {}\n  after rollback  {}\n",
                r.before, r.after_apply, r.after_rollback
            ));
        }
        match outcome {
            Ok(r) if passed => text.push_str(&format!(
                "PASS rehearse {}: the apply changed {} ({}), the rollback restored the state; evidence {}\n",
                shown(target),
                packet::report::plural(r.applied_to.len(), "table"),
                r.applied_to.iter().map(|t| shown(t)).collect::<Vec<_>>().join(", "),
                out.display()
            )),
            Ok(_) => text.push_str(&format!(
                "FAIL rehearse {}: {}; evidence written to {}, and check-rollback rejects it\n",
                shown(target),
                packet::report::plural(rejects.len(), "reject"),
                out.display()
            )),
            Err(_) => text.push_str(&format!(
                "FAIL rehearse {}: 1 reject; nothing written\n",
                shown(target)
            )),
        }
        print!(
            "{}",
            if passed {
                text
            } else {
                packet::report::mask_pass(&text, false)
            }
        );
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Before a command writes beside `target` (and, for a packet, inside it): removes what
/// killed runs left there and says so on stderr, with what it left alone.
fn sweep_leftovers(target: &std::path::Path, inside: bool) {
    let mut found = staging::sweep(&staging::parent_of(target));
    if inside && std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        found.extend(staging::sweep(target));
    }
    for l in found {
        eprintln!("note: {}", packet::report::shown(&l.note));
    }
}

fn build(
    out: PathBuf,
    sources: Vec<PathBuf>,
    reseal: bool,
    json: bool,
    jobs: Jobs,
) -> anyhow::Result<ExitCode> {
    let quiet = !jobs.progress;
    sweep_leftovers(&out, true);
    let outcome = seal::build(&out, &sources, SealOptions { reseal, jobs });
    let rejects: Vec<Reject> = match &outcome {
        Ok(_) => vec![],
        Err(Error::Rejected(r)) => r.clone(),
        Err(Error::Io { .. }) => vec![],
    };
    if json {
        let doc = serde_json::json!({
            "schema": "packet.build-report/1",
            "verdict": if outcome.is_ok() { "SEALED" } else { "FAIL" },
            "packet": out.display().to_string(),
            "tree_hash": outcome.as_ref().ok().map(|s| s.tree_hash.to_hex()),
            "files": outcome.as_ref().ok().map(|s| s.files),
            "bytes": outcome.as_ref().ok().map(|s| s.bytes),
            "unchanged": outcome.as_ref().ok().map(|s| s.unchanged),
            "rejects": rejects,
            "error": match &outcome { Err(e @ Error::Io { .. }) => Some(e.to_string()), _ => None },
        });
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        print!(
            "{}",
            if outcome.is_ok() {
                text
            } else {
                packet::report::mask_pass(&text, true)
            }
        );
    }
    match outcome {
        Ok(s) => {
            if !json {
                println!(
                    "SEALED {}: {} files, {} bytes; tree {}{}",
                    out.display(),
                    s.files,
                    s.bytes,
                    s.tree_hash,
                    if s.unchanged {
                        " (the seal was already this one: nothing written)"
                    } else {
                        ""
                    }
                );
                if !quiet {
                    println!(
                        "pin it: packet verify {} --expect-tree {}",
                        out.display(),
                        s.tree_hash
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Rejected(_)) => {
            if !json {
                let mut text = String::new();
                for r in &rejects {
                    text.push_str(&r.render());
                    text.push('\n');
                }
                if !quiet {
                    print!("{}", packet::report::mask_pass(&text, false));
                }
                println!(
                    "FAIL build {}: {}; nothing written",
                    out.display(),
                    packet::report::plural(rejects.len(), "reject")
                );
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "build {} failed; nothing was left half-written",
            out.display()
        ))),
    }
}

/// `--against ORIGINAL`: a directory is a packet, a file its manifest, anything else must be
/// a tree hash. `None` (after a message) for a usage error.
fn parse_against(arg: Option<&str>) -> Option<Against> {
    let Some(arg) = arg else {
        return Some(Against::Itself);
    };
    let path = PathBuf::from(arg);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Some(Against::Packet(path)),
        Ok(_) => Some(Against::Manifest(path)),
        Err(_) => match arg.parse() {
            Ok(pin) => Some(Against::Tree(pin)),
            Err(e) => {
                eprintln!(
                    "packet: --against {arg:?} is neither a packet, a manifest file nor a tree hash: {e}"
                );
                None
            }
        },
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.jobs == Some(0) {
        eprintln!("packet: --jobs takes a number of threads of at least 1");
        return Ok(ExitCode::from(2));
    }
    let jobs = Jobs {
        threads: cli.jobs.unwrap_or(0),
        progress: !cli.quiet,
    };
    if cli.selftest && cli.command.is_some() {
        eprintln!("packet: --selftest runs alone; give it no command");
        return Ok(ExitCode::from(2));
    }
    if cli.selftest {
        return Ok(print_report(&selftest::run()?, cli.json, cli.quiet));
    }
    match cli.command {
        Some(Command::Build {
            out,
            sources,
            reseal,
            json,
        }) => build(out, sources, reseal, json, jobs),
        Some(Command::Verify {
            packet,
            pins,
            expect_tree,
            against,
            json,
            limits,
        }) => {
            let packet = match (packet, pins) {
                (Some(p), _) => p,
                (None, Some(pins)) => {
                    let report = packet::gate::verify_pins(&pins, jobs, &limits.limits());
                    return Ok(print_report(&report, json, cli.quiet));
                }
                (None, None) => {
                    eprintln!("packet: verify needs a PACKET or --pins FILE");
                    return Ok(ExitCode::from(2));
                }
            };
            let Some(against) = parse_against(against.as_deref()) else {
                return Ok(ExitCode::from(2));
            };
            let opts = VerifyOptions {
                expect_tree,
                against,
                jobs,
            };
            let report = archive::verify_path(&packet, &opts, &limits.limits());
            Ok(print_report(&report, json, cli.quiet))
        }
        Some(Command::Pack {
            packet,
            out,
            expect_tree,
            json,
        }) => {
            let Some(compression) = Compression::from_name(&out) else {
                eprintln!(
                    "packet: -o {} must end in .tar, .tar.gz or .tgz (the name says how it is compressed)",
                    out.display()
                );
                return Ok(ExitCode::from(2));
            };
            let mtime = match pack::source_date_epoch() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("packet: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let opts = PackOptions {
                verify: VerifyOptions {
                    expect_tree,
                    against: Against::Itself,
                    jobs,
                },
                mtime,
                compression,
            };
            sweep_leftovers(&out, false);
            let report = pack::pack(&packet, &out, &opts).map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "pack {} failed; nothing was left half-written",
                    packet.display()
                ))
            })?;
            Ok(print_report(&report, json, cli.quiet))
        }
        Some(Command::Unpack {
            archive,
            dir,
            expect_tree,
            json,
            limits,
        }) => {
            let opts = UnpackOptions {
                verify: VerifyOptions {
                    expect_tree,
                    against: Against::Itself,
                    jobs,
                },
                limits: limits.limits(),
            };
            sweep_leftovers(&dir, false);
            let report = unpack::unpack(&archive, &dir, &opts).map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "unpack {} failed; nothing was left behind",
                    archive.display()
                ))
            })?;
            Ok(print_report(&report, json, cli.quiet))
        }
        Some(Command::Restore {
            copy,
            out,
            against,
            json,
        }) => {
            let Some(against) = parse_against(against.as_deref()) else {
                return Ok(ExitCode::from(2));
            };
            let opts = VerifyOptions {
                expect_tree: None,
                against,
                jobs,
            };
            sweep_leftovers(&out, false);
            let report = restore::restore(&copy, &out, &opts)?;
            Ok(print_report(&report, json, cli.quiet))
        }
        Some(Command::CheckRollback { files, json }) => Ok(print_report(
            &verify::check_rollback(&files),
            json,
            cli.quiet,
        )),
        Some(Command::Snapshot {
            target,
            out,
            immutable,
            claims,
            tables,
            exclude_tables,
            json,
        }) => {
            let scope = match packet::state::scope::Scope::new(tables, exclude_tables) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("packet: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let shown = target.to_string();
            sweep_leftovers(&out, false);
            let outcome = match claims
                .as_deref()
                .map(packet::state::claims::read)
                .transpose()
            {
                Ok(claims) => packet::state::snapshot_to(
                    &target,
                    &shown,
                    &out,
                    &packet::state::SnapshotOptions {
                        scope,
                        immutable,
                        connections: cli.jobs.unwrap_or(0),
                    },
                    claims.as_deref().unwrap_or_default(),
                ),
                Err(e) => Err(e),
            };
            Ok(print_snapshot(&shown, &out, &outcome, json, cli.quiet))
        }
        Some(Command::Rehearse {
            target,
            apply,
            rollback,
            out,
            json,
        }) => {
            let shown = target.to_string();
            sweep_leftovers(&out, false);
            let outcome =
                packet::state::rehearse_to(&target, &shown, &apply, rollback.as_deref(), &out);
            Ok(print_rehearsal(&shown, &out, &outcome, json, cli.quiet))
        }
        Some(Command::SnapshotDiff {
            before,
            after,
            json,
        }) => Ok(print_report(
            &packet::state::diff_files(&before, &after),
            json,
            cli.quiet,
        )),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "packet", &mut script);
            print_generated(&script)
        }
        Some(Command::Man(args)) => man(args),
        None => {
            eprintln!("packet: give a command or --selftest (see packet --help)");
            Ok(ExitCode::from(2))
        }
    }
}

/// `packet man`: one page to stdout, or every page into a directory.
fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    // `help` is no command a page is for.
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    if let Some(dir) = args.out {
        clap_mangen::generate_to(cli, &dir)
            .map_err(|e| anyhow::anyhow!("writing man pages into {}: {e}", dir.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let page = match args.command.as_deref() {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => {
                let version = cli.get_version().unwrap_or_default().to_string();
                sub.clone().name(format!("packet-{name}")).version(version)
            }
            None => {
                let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
                eprintln!(
                    "packet: no command {name:?}; man pages exist for: {}",
                    names.join(", ")
                );
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    print_generated(&roff)
}

/// Writes a generated script or page to stdout. A reader that stops early (`| head`) is not
/// an error: what it read was what it wanted.
fn print_generated(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR {e:#}");
            ExitCode::from(1)
        }
    }
}
