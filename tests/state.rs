//! State proofs on real SQLite files, made by Python's `sqlite3` module and the `sqlite3`
//! shell: `packet snapshot` is stable across what changes only layout (VACUUM, another page
//! size, a dump restored into a new file) and sensitive to any one changed value, row or
//! schema object; it never writes to the source; `snapshot-diff` names exactly what changed.

use assert_cmd::Command;
use packet::report::has_pass_token;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

fn python(script: &str, db: &Path) {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database with every SQLite storage class, non-ASCII text, NULLs, duplicate rows, a
/// WITHOUT ROWID table, an index and an AUTOINCREMENT counter.
fn database(dir: &Path) -> PathBuf {
    let db = dir.join("registry.db");
    python(
        r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript('''
CREATE TABLE birth_registry(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, weight REAL,
  photo BLOB, inspect_status TEXT);
CREATE INDEX br_status ON birth_registry(inspect_status);
CREATE TABLE log(line TEXT, at INTEGER);
CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
''')
c.executemany('INSERT INTO birth_registry(name, weight, photo, inspect_status) VALUES (?,?,?,?)', [
  ('Nguyễn Văn An', 3.2, b'\x00\x01\xff', None),
  ('Trần Thị Bình', 2.95, None, 'ok'),
  ('Lê — Cường', 0.1, b'', ''),
] + [('row %d' % i, i / 7, bytes([i % 256]), 'x' if i % 3 else None) for i in range(500)])
c.executemany('INSERT INTO log VALUES (?, ?)', [('same', 1), ('same', 1), ('other', 2)])
c.executemany('INSERT INTO kv VALUES (?, ?)', [('a', 1), ('b', 2.5), ('c', 'text')])
c.commit()
"#,
        &db,
    );
    db
}

/// Snapshots `db` into `dir/name` and returns the document.
fn snapshot(db: &Path, out: &Path) -> Value {
    let assert = packet()
        .arg("snapshot")
        .arg(format!("sqlite:{}", db.display()))
        .arg("-o")
        .arg(out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let doc: Value = serde_json::from_slice(&fs::read(out).unwrap()).unwrap();
    assert!(
        stdout.starts_with(&format!("SNAPSHOT sqlite:{}: ", db.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("state {}", doc["state_digest"].as_str().unwrap())),
        "{stdout}"
    );
    doc
}

fn state(doc: &Value) -> &str {
    doc["state_digest"].as_str().unwrap()
}

/// Copies `db`, applies `script` (Python, the copy's path in sys.argv[1]) and snapshots it.
fn changed(dir: &Path, db: &Path, name: &str, script: &str) -> Value {
    let copy = dir.join(format!("{name}.db"));
    fs::copy(db, &copy).unwrap();
    python(script, &copy);
    snapshot(&copy, &dir.join(format!("{name}.json")))
}

#[test]
fn layout_changes_keep_the_state_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let db = database(tmp.path());
    let base = snapshot(&db, &tmp.path().join("base.json"));
    assert_eq!(base["engine"], "sqlite");
    assert_eq!(base["tables"].as_array().unwrap().len(), 3);
    for (name, script) in [
        (
            "vacuum",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('VACUUM')",
        ),
        (
            "page-size",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA page_size=16384'); c.execute('VACUUM')",
        ),
        (
            "analyze",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('ANALYZE'); c.commit()",
        ),
        (
            "reinserted-in-reverse",
            // Same rows, other rowids and physical order, for the table without a key.
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); rows=c.execute('SELECT * FROM log').fetchall(); c.execute('DELETE FROM log'); c.executemany('INSERT INTO log VALUES (?,?)', rows[::-1]); c.commit()",
        ),
    ] {
        let doc = changed(tmp.path(), &db, name, script);
        assert_eq!(state(&doc), state(&base), "{name}");
    }
    // A dump by Python's iterdump, restored into a file of another name.
    let restored = tmp.path().join("restored-by-python.db");
    python(
        &format!(
            "import sqlite3,sys; s=sqlite3.connect({:?}); d=sqlite3.connect(sys.argv[1]); d.executescript(';\\n'.join(s.iterdump())); d.commit()",
            db.display().to_string()
        ),
        &restored,
    );
    let doc = snapshot(&restored, &tmp.path().join("restored-py.json"));
    assert_eq!(state(&doc), state(&base), "iterdump");
    // A dump by the sqlite3 shell, restored by it.
    let dump = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(".dump")
        .output()
        .expect("the sqlite3 shell");
    assert!(dump.status.success());
    let shell = tmp.path().join("restored-by-shell.db");
    let mut load = std::process::Command::new("sqlite3")
        .arg(&shell)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &dump.stdout).unwrap();
    assert!(load.wait().unwrap().success());
    let doc = snapshot(&shell, &tmp.path().join("restored-shell.json"));
    assert_eq!(state(&doc), state(&base), ".dump");
}

#[test]
fn any_one_change_moves_the_state_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let db = database(tmp.path());
    let base = snapshot(&db, &tmp.path().join("base.json"));
    let connect = "import sqlite3,sys,struct,unicodedata; c=sqlite3.connect(sys.argv[1]); ";
    for (name, table, change) in [
        (
            "float-last-bit",
            "birth_registry",
            "w=c.execute('SELECT weight FROM birth_registry WHERE id=1').fetchone()[0]; b=struct.unpack('<q',struct.pack('<d',w))[0]+1; c.execute('UPDATE birth_registry SET weight=? WHERE id=1',(struct.unpack('<d',struct.pack('<q',b))[0],))",
        ),
        (
            // In a column without affinity (an INTEGER column would convert 1.0 back to 1).
            "integer-as-real",
            "kv",
            "c.execute('UPDATE kv SET v=CAST(v AS REAL) WHERE k=\"a\"')",
        ),
        (
            "nfc-to-nfd",
            "birth_registry",
            "n=c.execute('SELECT name FROM birth_registry WHERE id=1').fetchone()[0]; c.execute('UPDATE birth_registry SET name=? WHERE id=1',(unicodedata.normalize('NFD',n),))",
        ),
        (
            "null-to-empty",
            "birth_registry",
            "c.execute('UPDATE birth_registry SET photo=? WHERE id=2', (b'',))",
        ),
        (
            "text-to-blob",
            "kv",
            "c.execute('UPDATE kv SET v=CAST(v AS BLOB) WHERE k=\"c\"')",
        ),
        (
            "one-duplicate-removed",
            "log",
            "c.execute('DELETE FROM log WHERE rowid=(SELECT min(rowid) FROM log WHERE line=\"same\")')",
        ),
        (
            "one-row-added",
            "kv",
            "c.execute('INSERT INTO kv VALUES (\"d\", NULL)')",
        ),
        (
            "an-index-added",
            "log",
            "c.execute('CREATE INDEX log_at ON log(at)')",
        ),
    ] {
        let doc = changed(
            tmp.path(),
            &db,
            name,
            &format!("{connect}{change}; c.commit()"),
        );
        assert_ne!(state(&doc), state(&base), "{name}");
        // snapshot-diff names that table and no other.
        let out = packet()
            .arg("snapshot-diff")
            .arg(tmp.path().join("base.json"))
            .arg(tmp.path().join(format!("{name}.json")))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(!has_pass_token(&text), "{text}");
        let rejects: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("REJECT STATE_CHANGED"))
            .collect();
        assert_eq!(rejects.len(), 1, "{name}: {text}");
        assert!(
            rejects[0].starts_with(&format!("REJECT STATE_CHANGED {table}: ")),
            "{name}: {text}"
        );
    }
}

#[test]
fn dbhash_collision_does_not_collide_here() {
    // sqlite3's dbhash hashes ('a','3b') and ('a3','b') alike; every value here is
    // length-prefixed.
    let tmp = tempfile::tempdir().unwrap();
    let mut states = Vec::new();
    for (i, (x, y)) in [("a", "3b"), ("a3", "b")].into_iter().enumerate() {
        let db = tmp.path().join(format!("{i}.db"));
        python(
            &format!(
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE t(x TEXT, y TEXT)'); c.execute('INSERT INTO t VALUES (?,?)', ({x:?},{y:?})); c.commit()"
            ),
            &db,
        );
        states.push(state(&snapshot(&db, &tmp.path().join(format!("{i}.json")))).to_string());
    }
    assert_ne!(states[0], states[1]);
}

#[test]
fn snapshot_never_writes_to_its_source() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let db = database(tmp.path());
    let (bytes, mtime) = (
        fs::read(&db).unwrap(),
        fs::metadata(&db).unwrap().mtime_nsec(),
    );
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = names(tmp.path());
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    snapshot(&db, &out.join("s.json"));
    packet()
        .args(["snapshot", "--immutable"])
        .arg(format!("sqlite:{}", db.display()))
        .arg("-o")
        .arg(out.join("immutable.json"))
        .assert()
        .success();
    assert_eq!(fs::read(&db).unwrap(), bytes);
    assert_eq!(fs::metadata(&db).unwrap().mtime_nsec(), mtime);
    let mut after = names(tmp.path());
    after.retain(|n| n != "out");
    assert_eq!(after, before, "no journal, WAL or shm file appeared");
    assert_eq!(names(&out), ["immutable.json", "s.json"]);
}

/// `packet ARGS` fails closed with `code`, writes nothing below `dir`, prints no PASS.
fn refused(dir: &Path, args: &[&std::ffi::OsStr], code: &str) {
    let before: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for json in [false, true] {
        let mut cmd = packet();
        cmd.args(args);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains(code), "{args:?}: {text}");
        assert!(!has_pass_token(&text), "{text}");
    }
    let after: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(after.len(), before.len(), "{args:?} wrote something");
}

#[test]
fn bad_sources_and_outputs_are_refused_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("s.json");
    let o = out.as_os_str();
    let missing = format!("sqlite:{}", d.join("missing.db").display());
    refused(
        d,
        &["snapshot".as_ref(), missing.as_ref(), "-o".as_ref(), o],
        "SNAPSHOT_SOURCE_UNREADABLE",
    );
    assert!(
        !d.join("missing.db").exists(),
        "a missing database was created"
    );
    fs::write(d.join("notes.db"), "not a database\n").unwrap();
    let junk = format!("sqlite:{}", d.join("notes.db").display());
    refused(
        d,
        &["snapshot".as_ref(), junk.as_ref(), "-o".as_ref(), o],
        "SNAPSHOT_SOURCE_UNREADABLE",
    );
    let db = database(d);
    fs::write(&out, "kept").unwrap();
    let good = format!("sqlite:{}", db.display());
    refused(
        d,
        &["snapshot".as_ref(), good.as_ref(), "-o".as_ref(), o],
        "SNAPSHOT_REFUSED",
    );
    assert_eq!(fs::read(&out).unwrap(), b"kept");
}

#[test]
fn snapshot_diff_refuses_what_it_cannot_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let db = database(d);
    let base = d.join("base.json");
    snapshot(&db, &base);
    let text = fs::read_to_string(&base).unwrap();
    let b = base.as_os_str();
    // Edited by hand: the state digest no longer matches its tables.
    let edited = d.join("edited.json");
    fs::write(&edited, text.replacen("\"rows\": 3,", "\"rows\": 4,", 1)).unwrap();
    refused(
        d,
        &["snapshot-diff".as_ref(), b, edited.as_os_str()],
        "SNAPSHOT_MALFORMED",
    );
    // A member twice.
    let doubled = d.join("doubled.json");
    fs::write(
        &doubled,
        text.replacen(
            "\"engine\": \"sqlite\",",
            "\"engine\": \"sqlite\", \"engine\": \"sqlite\",",
            1,
        ),
    )
    .unwrap();
    refused(
        d,
        &["snapshot-diff".as_ref(), b, doubled.as_os_str()],
        "SNAPSHOT_MALFORMED",
    );
    // Another engine: not compared.
    let other = d.join("other.json");
    fs::write(
        &other,
        text.replacen("\"engine\": \"sqlite\"", "\"engine\": \"postgresql\"", 1),
    )
    .unwrap();
    refused(
        d,
        &["snapshot-diff".as_ref(), b, other.as_os_str()],
        "SNAPSHOT_INCOMPARABLE",
    );
    refused(
        d,
        &[
            "snapshot-diff".as_ref(),
            b,
            d.join("absent.json").as_os_str(),
        ],
        "SNAPSHOT_MALFORMED",
    );
}

#[test]
fn an_untouched_database_passes_with_every_figure_and_counters_are_not_state() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let db = database(d);
    let before = snapshot(&db, &d.join("before.json"));
    // An insert rolled back by a delete: the rows are as before, the AUTOINCREMENT counter
    // moved (no rollback restores it), and that is reported, not counted as state.
    python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('INSERT INTO birth_registry(name) VALUES (\"temp\")'); c.execute('DELETE FROM birth_registry WHERE name=\"temp\"'); c.commit()",
        &db,
    );
    let after = snapshot(&db, &d.join("after.json"));
    assert_eq!(state(&before), state(&after));
    let out = packet()
        .arg("snapshot-diff")
        .arg(d.join("before.json"))
        .arg(d.join("after.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for table in ["birth_registry", "kv", "log"] {
        assert!(
            text.contains(&format!("identical {table}: rows ")),
            "{text}"
        );
    }
    assert!(
        text.contains("counter   sqlite_sequence.birth_registry: 503 -> 504"),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("3 tables identical; state {}\n", state(&before))),
        "{text}"
    );
    let json: Value = serde_json::from_slice(
        &packet()
            .arg("snapshot-diff")
            .arg(d.join("before.json"))
            .arg(d.join("after.json"))
            .arg("--json")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["verdict"], "PASS");
    assert_eq!(json["tables"][0]["rows_before"], 503);
    assert_eq!(json["counters"][0]["after"], 504);
}

/// Runs `packet rehearse` on `db` and returns (exit code, stdout).
fn rehearse(db: &Path, dir: &Path, change: &str, undo: Option<&str>, out: &str) -> (i32, String) {
    fs::write(dir.join("change.sql"), change).unwrap();
    let mut cmd = packet();
    cmd.arg("rehearse")
        .arg(format!("sqlite:{}", db.display()))
        .arg("--apply")
        .arg(dir.join("change.sql"))
        .arg("-o")
        .arg(dir.join(out));
    if let Some(undo) = undo {
        fs::write(dir.join("undo.sql"), undo).unwrap();
        cmd.arg("--rollback").arg(dir.join("undo.sql"));
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn check_rollback(file: &Path) -> (i32, String) {
    let o = packet().arg("check-rollback").arg(file).output().unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn rehearse_proves_a_rollback_on_a_copy_and_never_touches_the_source() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let db = database(d);
    let (bytes, mtime) = (
        fs::read(&db).unwrap(),
        fs::metadata(&db).unwrap().mtime_nsec(),
    );
    let before = snapshot(&db, &d.join("before.json"));
    let change = "UPDATE birth_registry SET inspect_status = 'checked' WHERE id = 1;\nINSERT INTO birth_registry(name) VALUES ('new');\n";
    let undo = "DELETE FROM birth_registry WHERE name = 'new';\nUPDATE birth_registry SET inspect_status = NULL WHERE id = 1;\n";
    for (out, undo) in [
        ("in-transaction.json", None),
        ("with-script.json", Some(undo)),
    ] {
        let (code, text) = rehearse(&db, d, change, undo, out);
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains(&format!(
                "\nPASS rehearse sqlite:{}: the apply changed 1 table (birth_registry)",
                db.display()
            )),
            "{text}"
        );
        let (code, checked) = check_rollback(&d.join(out));
        assert_eq!(code, 0, "{checked}");
        let ev: Value = serde_json::from_slice(&fs::read(d.join(out)).unwrap()).unwrap();
        // The three digests printed are the evidence's.
        for (label, key) in [
            ("before         ", "before_hash"),
            ("after apply    ", "after_apply_hash"),
            ("after rollback ", "after_rollback_hash"),
        ] {
            let line = format!("  {label} {}\n", ev["entries"][0][key].as_str().unwrap());
            assert!(text.contains(&line), "{line:?} in {text}");
        }
        let entry = &ev["entries"][0];
        assert_eq!(entry["before_hash"], before["state_digest"]);
        assert_eq!(entry["after_rollback_hash"], before["state_digest"]);
        assert_ne!(entry["after_apply_hash"], before["state_digest"]);
        assert_eq!(
            ev["isolation"]["source_state_after"],
            before["state_digest"]
        );
        assert_eq!(ev["isolation"]["source_bytes_and_mtime_unchanged"], true);
        assert_eq!(ev["snapshots"]["after_apply"]["tables"][0]["rows"], 504);
        // The AUTOINCREMENT counter moved on the committed copy, and says so.
        let moved = entry["counters_moved"].as_array().unwrap();
        assert_eq!(moved.len(), usize::from(undo.is_some()), "{entry:#}");
    }
    // The same rehearsal again: byte-identical evidence (it seals to the same tree).
    let (code, _) = rehearse(&db, d, change, Some(undo), "again.json");
    assert_eq!(code, 0);
    assert_eq!(
        fs::read(d.join("again.json")).unwrap(),
        fs::read(d.join("with-script.json")).unwrap()
    );
    assert_eq!(fs::read(&db).unwrap(), bytes, "the source's bytes changed");
    assert_eq!(fs::metadata(&db).unwrap().mtime_nsec(), mtime);
    let leftovers: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("registry.db-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rehearse_records_what_proves_nothing_and_refuses_failing_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let db = database(d);
    // A change that matches no row: evidence written, and rejected as no mutation.
    let (code, text) = rehearse(
        &db,
        d,
        "UPDATE kv SET v = 0 WHERE k = 'none';",
        None,
        "noop.json",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("REJECT ROLLBACK_APPLY_DID_NOT_MUTATE:change.sql"),
        "{text}"
    );
    assert!(!has_pass_token(&text), "{text}");
    let (code, text) = check_rollback(&d.join("noop.json"));
    assert_eq!(code, 1);
    assert!(text.contains("ROLLBACK_APPLY_DID_NOT_MUTATE"), "{text}");
    // A rollback that forgets one table: named.
    let (code, text) = rehearse(
        &db,
        d,
        "INSERT INTO log VALUES ('x', 9); INSERT INTO kv VALUES ('z', 1);",
        Some("DELETE FROM kv WHERE k = 'z';"),
        "partial.json",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("REJECT ROLLBACK_NOT_RESTORED:change.sql"),
        "{text}"
    );
    assert!(
        text.contains("tables that differ from before: log"),
        "{text}"
    );
    // SQL that fails: the database's message, exit 1, no evidence.
    let (code, text) = rehearse(&db, d, "UPDATE nosuch SET x = 1;", None, "failed.json");
    assert_eq!(code, 1);
    assert!(text.contains("REJECT REHEARSAL_FAILED"), "{text}");
    assert!(text.contains("no such table: nosuch"), "{text}");
    assert!(!d.join("failed.json").exists());
}

const CLAIMS: &str = r#"
[[claim]]
id = "NT-1"
title = "birth_registry rows with inspect_status set"
table = "birth_registry"
where = "inspect_status IS NOT NULL"
columns = ["id", "inspect_status"]

[[claim]]
id = "NT-2"
title = "key-value pairs"
table = "kv"
"#;

#[test]
fn claims_are_evaluated_and_diffed_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let db = database(d);
    fs::write(d.join("claims.toml"), CLAIMS).unwrap();
    let snap = |out: &str| {
        packet()
            .arg("snapshot")
            .arg(format!("sqlite:{}", db.display()))
            .arg("--claims")
            .arg(d.join("claims.toml"))
            .arg("-o")
            .arg(d.join(out))
            .assert()
            .success();
        serde_json::from_slice::<Value>(&fs::read(d.join(out)).unwrap()).unwrap()
    };
    let before = snap("before.json");
    // 335 of the 503 rows have a status: two of the three named rows ('ok' and '') and the
    // 333 generated rows whose index is not a multiple of 3.
    assert_eq!(before["claims"][0]["rows"], 335);
    assert_eq!(before["claims"][1]["rows"], 3);
    // A change to the surface NT-1 is about: named as that claim and its table, not NT-2.
    python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE birth_registry SET inspect_status='ok' WHERE id=1\"); c.commit()",
        &db,
    );
    snap("after.json");
    let out = packet()
        .arg("snapshot-diff")
        .arg(d.join("before.json"))
        .arg(d.join("after.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "changed   claim NT-1 (birth_registry rows with inspect_status set): rows 335 -> 336"
        ),
        "{text}"
    );
    assert!(
        text.contains("identical claim NT-2 (key-value pairs): rows 3 -> 3"),
        "{text}"
    );
    assert!(text.contains("REJECT STATE_CHANGED claim NT-1:"), "{text}");
    assert!(!text.contains("REJECT STATE_CHANGED claim NT-2"), "{text}");
    // Without the claims file the snapshots are not comparable.
    packet()
        .arg("snapshot")
        .arg(format!("sqlite:{}", db.display()))
        .arg("-o")
        .arg(d.join("plain.json"))
        .assert()
        .success();
    refused(
        d,
        &[
            "snapshot-diff".as_ref(),
            d.join("before.json").as_os_str(),
            d.join("plain.json").as_os_str(),
        ],
        "SNAPSHOT_INCOMPARABLE",
    );
}

#[test]
fn claims_naming_what_is_not_there_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let db = database(d);
    let target = format!("sqlite:{}", db.display());
    let out = d.join("s.json");
    for (name, claims) in [
        (
            "no-table",
            "[[claim]]\nid = \"X\"\ntitle = \"t\"\ntable = \"nosuch\"\n",
        ),
        (
            "no-column",
            "[[claim]]\nid = \"X\"\ntitle = \"t\"\ntable = \"log\"\ncolumns = [\"nope\"]\n",
        ),
        (
            "two-statements",
            "[[claim]]\nid = \"X\"\ntitle = \"t\"\ntable = \"log\"\nwhere = \"1; DELETE FROM log\"\n",
        ),
        (
            "unknown-member",
            "[[claim]]\nid = \"X\"\ntitle = \"t\"\ntable = \"log\"\nfilter = \"1\"\n",
        ),
        (
            "repeated-id",
            "[[claim]]\nid = \"X\"\ntitle = \"t\"\ntable = \"log\"\n[[claim]]\nid = \"X\"\ntitle = \"u\"\ntable = \"kv\"\n",
        ),
        ("empty", ""),
    ] {
        let file = d.join(format!("{name}.toml"));
        fs::write(&file, claims).unwrap();
        refused(
            d,
            &[
                "snapshot".as_ref(),
                target.as_ref(),
                "--claims".as_ref(),
                file.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
            ],
            "CLAIMS_MALFORMED",
        );
    }
    let after = String::from_utf8(
        std::process::Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT count(*) FROM log")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // The database was made with 3 log rows: the claim's DELETE never ran.
    assert_eq!(after.trim(), "3", "a claim's SQL wrote");
}

#[test]
fn table_patterns_scope_a_snapshot_and_scopes_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let db = database(d);
    let target = format!("sqlite:{}", db.display());
    let snap = |out: &str, args: &[&str]| {
        packet()
            .arg("snapshot")
            .arg(&target)
            .args(args)
            .arg("-o")
            .arg(d.join(out))
            .assert()
            .success();
        serde_json::from_slice::<Value>(&fs::read(d.join(out)).unwrap()).unwrap()
    };
    let names = |doc: &Value| -> Vec<String> {
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&snap("birth.json", &["--table", "birth_*"])),
        ["birth_registry"]
    );
    let before = snap("no-log.json", &["--exclude-table", "log"]);
    assert_eq!(names(&before), ["birth_registry", "kv"]);
    assert_eq!(before["scope"]["exclude_tables"][0], "log");
    // A change outside the scope is outside the proof; inside it, it is caught.
    python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"INSERT INTO log VALUES ('x', 5)\"); c.commit()",
        &db,
    );
    snap("no-log-after.json", &["--exclude-table", "log"]);
    packet()
        .arg("snapshot-diff")
        .arg(d.join("no-log.json"))
        .arg(d.join("no-log-after.json"))
        .assert()
        .success();
    snap("all.json", &[]);
    refused(
        d,
        &[
            "snapshot-diff".as_ref(),
            d.join("no-log.json").as_os_str(),
            d.join("all.json").as_os_str(),
        ],
        "SNAPSHOT_INCOMPARABLE",
    );
    packet()
        .arg("snapshot")
        .arg(&target)
        .args(["--table", "["])
        .arg("-o")
        .arg(d.join("bad.json"))
        .assert()
        .code(2);
    assert!(!d.join("bad.json").exists());
}

#[test]
fn several_connections_read_the_same_figures_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("wide.db");
    // Rowids spread wide, so the table is split into rowid ranges; a table whose column is
    // named `rowid`; a WITHOUT ROWID table; negative rowids below the first range.
    python(
        r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript('''
CREATE TABLE spread(v TEXT, w REAL);
CREATE TABLE shadow(rowid TEXT, _rowid_ TEXT, oid TEXT);
CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
''')
c.executemany('INSERT INTO spread(rowid, v, w) VALUES (?, ?, ?)',
  [(i * 9973 - 500000, 'row %d' % (i % 50), i / 3) for i in range(3000)])
c.executemany('INSERT INTO shadow VALUES (?, ?, ?)', [('a', 'b', 'c')] * 10)
c.executemany('INSERT INTO kv VALUES (?, ?)', [('k%d' % i, i) for i in range(100)])
c.commit()
"#,
        &db,
    );
    let run = |jobs: &str, file: &str| {
        let out = tmp.path().join(file);
        packet()
            .args(["snapshot", "-j", jobs])
            .arg(format!("sqlite:{}", db.display()))
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        serde_json::from_slice::<Value>(&fs::read(&out).unwrap()).unwrap()
    };
    let one = run("1", "one.json");
    assert_eq!(one["tables"][2]["name"], "spread");
    assert_eq!(one["tables"][2]["rows"], 3000);
    for jobs in ["2", "3", "8"] {
        let many = run(jobs, &format!("j{jobs}.json"));
        assert_eq!(many["tables"], one["tables"], "-j{jobs}");
    }
    // In WAL mode the file is read on one connection: the same figures again.
    python(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL')",
        &db,
    );
    let wal = run("4", "wal.json");
    assert_eq!(wal["tables"], one["tables"]);
}
