//! What a shell user meets: completions and man pages generated from the one clap definition,
//! `--help` of every command ending in a real example, wrong usage answered with the right
//! flag, and plain output (no colour) when not on a terminal or with `NO_COLOR`.

use assert_cmd::Command;
use std::process;

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

fn stdout_of(args: &[&str]) -> String {
    let out = packet().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "packet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every command `packet --help` lists, but `help` itself.
fn commands() -> Vec<String> {
    let help = stdout_of(&["--help"]);
    let listed: Vec<String> = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        // A description that wraps continues deeper in.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect();
    assert!(listed.len() >= 11, "{listed:?}");
    listed
}

#[test]
fn every_commands_help_ends_with_an_example_that_runs_that_command() {
    for name in commands() {
        let help = stdout_of(&[&name, "--help"]);
        let tail: Vec<&str> = help
            .trim_end()
            .lines()
            .rev()
            .take_while(|l| l.starts_with("  packet "))
            .collect();
        assert!(
            !tail.is_empty(),
            "{name} --help ends with no example:\n{help}"
        );
        assert!(
            help.contains("\nExample:\n") || help.contains("\nExamples:\n"),
            "{name}: {help}"
        );
        for example in tail {
            let words: Vec<&str> = example.split_whitespace().collect();
            assert_eq!(
                words[1], name,
                "{name}'s example runs another command: {example}"
            );
        }
    }
}

#[test]
fn a_misspelt_flag_or_command_is_answered_with_the_right_one() {
    for (args, tip) in [
        (&["verify", "p", "--expect-tre", "ab"][..], "--expect-tree"),
        (&["verify", "--pin", "packets.pins"][..], "--pins"),
        (&["verfy", "p"][..], "verify"),
        (&["snapshot-dif", "a", "b"][..], "snapshot-diff"),
    ] {
        let out = packet().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("tip: "), "{args:?}: {err}");
        assert!(err.contains(&format!("'{tip}'")), "{args:?}: {err}");
    }
}

#[test]
fn output_is_plain_off_a_terminal_and_with_no_color() {
    for no_color in [false, true] {
        for args in [
            &["--help"][..],
            &["verify", "--bogus"][..],
            &["verify", "/nonexistent"][..],
        ] {
            let mut cmd = packet();
            cmd.args(args);
            if no_color {
                cmd.env("NO_COLOR", "1");
            } else {
                cmd.env_remove("NO_COLOR");
            }
            let out = cmd.output().unwrap();
            for stream in [&out.stdout, &out.stderr] {
                assert!(
                    !stream.contains(&0x1b),
                    "escape byte in {args:?} output (NO_COLOR {no_color})"
                );
            }
        }
    }
}

/// Whether `word` stands in `text` as a word of its own: `pack` in `pack)` or `'pack:`, not
/// in `packet` or `unpack`; `snapshot` not in `snapshot-diff`; a flag after its dashes.
fn has_word(text: &str, word: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(inner) && !after.is_some_and(|c| inner(c) || c == '-')
    })
}

#[test]
fn completions_for_every_shell_name_every_command_and_flag() {
    assert!(has_word("a pack)", "pack") && !has_word("packet unpack", "pack"));
    assert!(!has_word("snapshot-diff", "snapshot") && has_word("--pins ", "pins"));
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for word in commands().iter().map(String::as_str).chain([
            "expect-tree",
            "pins",
            "against",
            "reseal",
            "max-entry-bytes",
        ]) {
            assert!(has_word(&script, word), "{shell} completion lacks {word}");
        }
    }
    // The shells that are here check the syntax of their script.
    for (shell, binary) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        if process::Command::new(binary)
            .arg("--version")
            .output()
            .is_err()
        {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("packet.{shell}"));
        std::fs::write(&file, stdout_of(&["completions", shell])).unwrap();
        let checked = process::Command::new(binary)
            .arg("-n")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    let bad = packet().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_pages_exist_for_packet_and_every_command() {
    let main = stdout_of(&["man"]);
    assert!(main.contains(".TH packet 1"), "{main}");
    let verify = stdout_of(&["man", "verify"]);
    assert!(verify.contains(".TH packet-verify 1"), "{verify}");
    assert!(verify.contains("expect\\-tree"), "{verify}");
    let unknown = packet().args(["man", "verfy"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    stdout_of(&["man", "--out", dir.path().to_str().unwrap()]);
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    for name in commands() {
        let page = format!("packet-{name}.1");
        assert!(written.contains(&page), "{page} not written: {written:?}");
        let text = std::fs::read_to_string(dir.path().join(&page)).unwrap();
        assert!(text.contains(&format!(".TH packet-{name} 1")), "{page}");
    }
    assert!(written.contains(&"packet.1".to_string()), "{written:?}");
    // One page per command, no pages for `help`.
    assert_eq!(written.len(), commands().len() + 1, "{written:?}");
    // Rendered by a real man reader where there is one.
    if process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let shown = process::Command::new("man")
            .arg("-l")
            .arg(dir.path().join("packet-verify.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("--expect-tree"), "{text}");
    }
}
