//! The `packet` command line: parses arguments, calls the library, maps the outcome to an exit
//! code (0 PASS, 1 any reject or failure, 2 usage error).

use clap::{Parser, Subcommand};
use packet::pin::Pin;
use packet::report::{Reject, Report};
use packet::seal::{self, SealOptions};
use packet::verify::{self, VerifyOptions};
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
    #[command(subcommand)]
    command: Option<Command>,
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

fn print_report(report: &Report, json: bool) -> ExitCode {
    if json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.render_text());
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
) -> anyhow::Result<ExitCode> {
    let outcome = seal::build(&out, &sources, SealOptions { reseal });
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
        println!("{}", serde_json::to_string_pretty(&doc)?);
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
                println!(
                    "pin it: packet verify {} --expect-tree {}",
                    out.display(),
                    s.tree_hash
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Rejected(_)) => {
            if !json {
                for r in &rejects {
                    println!("{}", r.render());
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.selftest {
        let report = selftest::run()?;
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.render_text());
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
        }) => build(out, sources, reseal, json),
        Some(Command::Verify {
            packet,
            expect_tree,
            json,
        }) => {
            let report = verify::verify(&packet, &VerifyOptions { expect_tree });
            Ok(print_report(&report, json))
        }
        Some(Command::CheckRollback { files, json }) => {
            Ok(print_report(&verify::check_rollback(&files), json))
        }
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
