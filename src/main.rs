//! The `packet` command line: parses arguments, calls the library, maps the outcome to an exit
//! code (0 PASS, 1 any reject or failure, 2 usage error).

use clap::{Parser, Subcommand};
use packet::parallel::Jobs;
use packet::pin::Pin;
use packet::report::{Reject, Report};
use packet::restore;
use packet::seal::{self, SealOptions};
use packet::verify::{self, Against, VerifyOptions};
use packet::{Error, selftest};
use std::path::PathBuf;
use std::process::ExitCode;

/// Seal evidence into packets and prove, later and anywhere, that the bytes are still the
/// bytes that were sealed.
#[derive(Parser)]
#[command(
    name = "packet",
    version,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Prove that every reject still fires and the untouched control still passes.
    #[arg(long)]
    selftest: bool,
    /// With --selftest: print the result as one JSON document.
    #[arg(long, requires = "selftest")]
    json: bool,
    /// Worker threads for hashing (default: one per CPU).
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
    /// Re-check a packet's seal against its bytes and report every problem.
    #[command(
        after_help = "Example:\n  packet verify packets/run-42 --expect-tree 72b24b8a…787bb2"
    )]
    Verify {
        /// The packet directory.
        packet: PathBuf,
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
}

fn print_report(report: &Report, json: bool, quiet: bool) -> ExitCode {
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

fn build(
    out: PathBuf,
    sources: Vec<PathBuf>,
    reseal: bool,
    json: bool,
    jobs: Jobs,
) -> anyhow::Result<ExitCode> {
    let quiet = !jobs.progress;
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
                    "SEALED {}: {} files, {} bytes; tree {}",
                    out.display(),
                    s.files,
                    s.bytes,
                    s.tree_hash
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
    if cli.selftest {
        let report = selftest::run()?;
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            emit(&report.render_text(), cli.quiet);
        }
        return Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
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
            expect_tree,
            against,
            json,
        }) => {
            let Some(against) = parse_against(against.as_deref()) else {
                return Ok(ExitCode::from(2));
            };
            let report = verify::verify(
                &packet,
                &VerifyOptions {
                    expect_tree,
                    against,
                    jobs,
                },
            );
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
            let report = restore::restore(&copy, &out, &opts)?;
            if json {
                print!("{}", report.to_json());
            } else {
                emit(&report.render_text(), cli.quiet);
            }
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Some(Command::CheckRollback { files, json }) => Ok(print_report(
            &verify::check_rollback(&files),
            json,
            cli.quiet,
        )),
        None => {
            eprintln!("packet: give a command or --selftest (see packet --help)");
            Ok(ExitCode::from(2))
        }
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
