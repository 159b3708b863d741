//! State proofs on a real PostgreSQL server that each test starts itself: `initdb` and
//! `pg_ctl` from Debian's `postgresql` package (`.ci/run` installs it), a temporary data
//! directory, loopback only, password logins, stopped when the test ends (also when it
//! fails). As root, the server runs as the `postgres` user.
//!
//! What is checked: the state digest is stable across `VACUUM FULL`, `pg_dump | psql` into a
//! database of another name, other session defaults (TimeZone, DateStyle, IntervalStyle,
//! extra_float_digits, bytea_output) and the number of scanning connections; any one changed
//! value, row or schema object moves it; rehearsals never commit to the source; bad input is
//! refused with its reject code and writes nothing.

use assert_cmd::Command;
use packet::report::has_pass_token;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

const PASSWORD: &str = "s3cret-for-tests";

fn packet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_packet"));
    // Nothing from the caller's libpq environment may reach the tests' connections.
    for k in ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"] {
        c.env_remove(k);
    }
    c
}

/// The directory of `initdb` and `pg_ctl`: `$PACKET_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps them off `PATH`), else `pg_config --bindir`.
fn bindir() -> PathBuf {
    if let Ok(d) = std::env::var("PACKET_PG_BINDIR") {
        return d.into();
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let out = Process::new("pg_config").arg("--bindir").output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().into(),
        _ => panic!(
            "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql package, as .ci/run does"
        ),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A server of the test's own.
struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let bin = bindir();
        let dir = tempfile::Builder::new()
            .prefix("packet-pg-")
            .tempdir()
            .unwrap();
        let pwfile = dir.path().join("pw");
        fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            let st = Process::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown to postgres failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server { dir, bin, port };
        let data = server.dir.path().join("data");
        server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--auth-local=scram-sha-256".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C.UTF-8".as_ref(),
                "-N".as_ref(),
            ],
        );
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=40",
            server.port,
            server.dir.path().display()
        );
        let log = server.dir.path().join("log");
        server.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "start".as_ref(),
            ],
        );
        server
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Process::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Process::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Runs SQL through `psql` (stop at the first error).
    fn psql(&self, db: &str, sql: &str) -> String {
        let out = Process::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `pg_dump FROM | psql TO`, a plain dump restored into another database.
    fn dump_restore(&self, from: &str, to: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {to}"));
        let port = self.port.to_string();
        let dump = Process::new(self.bin.join("pg_dump"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", from])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        let mut restore = Process::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
            ])
            .args(["-U", "postgres", "-d", to])
            .env("PGPASSWORD", PASSWORD)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        restore
            .stdin
            .take()
            .unwrap()
            .write_all(&dump.stdout)
            .unwrap();
        assert!(restore.wait().unwrap().success());
    }

    /// The databases on the server.
    fn databases(&self) -> Vec<String> {
        self.psql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut c = Process::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Process::new(&exe)
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Every column type the issue names: integers, numeric with scale, float8 and float4,
/// non-ASCII text, bytea, boolean, timestamptz, jsonb, arrays, an enum, interval, date,
/// NULLs, duplicate rows, a table without a primary key, another schema, a sequence, an
/// index, a check constraint and a trigger.
const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE accounts (
  id bigserial PRIMARY KEY, name text NOT NULL, balance numeric(12,2) CHECK (balance >= -1000),
  rate float8, ratio float4, small int2, active boolean, created timestamptz, doc jsonb,
  tags text[], photo bytea, m mood, d date, iv interval);
CREATE INDEX accounts_name ON accounts (name);
INSERT INTO accounts (name, balance, rate, ratio, small, active, created, doc, tags, photo, m, d, iv) VALUES
 ('Nguyễn Văn An', 10.50, 0.1, 0.1, 7, true, '2024-01-02 03:04:05+07', '{"b": 1, "a": [1, 2]}',
  '{x,"y z",NULL}', '\x00ff10', 'ok', '2024-02-29', '1 day 02:00'),
 ('Lê — Cường', NULL, '-0', 'NaN', NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (E'tab\there\nnewline\\back', 1e9, 1.7976931348623157e308, 3.4e38, -32768, NULL, 'infinity',
  '[]', '{}', '\x', 'happy', NULL, '-3 years'),
 ('Trần Thị Bình', 2.95, 2.95, 2.95, 1, true, '1999-12-31 23:59:59.999999+00', '{"k": "v"}',
  '{}', '\x5c', 'sad', '1970-01-01', '00:00:01');
INSERT INTO accounts (name, balance, rate) SELECT 'row ' || i, i / 7.0, i / 7.0 FROM generate_series(1, 500) i;
CREATE TABLE log (at timestamptz, line text);
INSERT INTO log VALUES ('2024-01-01', 'same'), ('2024-01-01', 'same'), (NULL, NULL), (NULL, '');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER log_touch BEFORE INSERT ON log FOR EACH ROW EXECUTE FUNCTION touch();
CREATE SCHEMA audit;
CREATE TABLE audit.events (n int, at timestamptz DEFAULT '2024-01-01');
INSERT INTO audit.events (n) SELECT generate_series(1, 2000);
"#;

fn server_with_app() -> Server {
    let s = Server::start();
    s.psql("postgres", "CREATE DATABASE app");
    s.psql("app", SCHEMA);
    s
}

/// Snapshots `url` into `out` (with extra arguments) and returns the document.
fn snapshot(url: &str, out: &Path, extra: &[&str]) -> Value {
    let assert = packet()
        .arg("snapshot")
        .arg(url)
        .arg("-o")
        .arg(out)
        .args(extra)
        .assert();
    let o = assert.get_output();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !stdout.contains(PASSWORD),
        "the password was printed: {stdout}"
    );
    let text = fs::read_to_string(out).unwrap();
    assert!(!text.contains(PASSWORD), "the password is in the snapshot");
    serde_json::from_str(&text).unwrap()
}

fn state(doc: &Value) -> &str {
    doc["state_digest"].as_str().unwrap()
}

fn diff(before: &Path, after: &Path) -> (i32, Value) {
    let o = packet()
        .args(["snapshot-diff", "--json"])
        .arg(before)
        .arg(after)
        .output()
        .unwrap();
    (
        o.status.code().unwrap(),
        serde_json::from_slice(&o.stdout).unwrap(),
    )
}

#[test]
fn layout_dump_restore_and_session_settings_keep_the_state_digest() {
    let s = server_with_app();
    let dir = tempfile::tempdir().unwrap();
    let base = snapshot(&s.url("app"), &dir.path().join("base.json"), &[]);
    assert_eq!(base["engine"], "postgresql");
    let names: Vec<&str> = base["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit.events", "public.accounts", "public.log"]);
    assert_eq!(base["tables"][1]["rows"], 504);
    assert_eq!(base["counters"][0]["name"], "public.accounts_id_seq");
    assert_eq!(base["counters"][0]["value"], 504);

    // One connection or several sharing an exported snapshot, a large table read whole or
    // in block ranges by several of them: the same figures. `sparse` holds a dozen rows a
    // block, so it is large enough to be split.
    s.psql(
        "app",
        "CREATE TABLE audit.sparse (n int, pad text) WITH (fillfactor = 10); \
         INSERT INTO audit.sparse SELECT i, repeat('x', 20) FROM generate_series(1, 40000) i",
    );
    let blocks = s.psql("app", "SELECT pg_relation_size('audit.sparse') / 8192");
    assert!(blocks.trim().parse::<u64>().unwrap() >= 2048, "{blocks}");
    let base = snapshot(&s.url("app"), &dir.path().join("base-sparse.json"), &[]);
    let serial = snapshot(&s.url("app"), &dir.path().join("serial.json"), &["-j1"]);
    let wide = snapshot(&s.url("app"), &dir.path().join("wide.json"), &["-j4"]);
    assert_eq!(serial["tables"], base["tables"]);
    assert_eq!(state(&wide), state(&base));

    s.psql("app", "VACUUM FULL");
    s.psql("app", "CLUSTER accounts USING accounts_name");
    let vacuumed = snapshot(&s.url("app"), &dir.path().join("vacuumed.json"), &[]);
    assert_eq!(state(&vacuumed), state(&base), "VACUUM FULL, CLUSTER");

    // Session defaults that change how every value prints, set on the database: the
    // snapshot pins its own.
    s.psql(
        "app",
        "ALTER DATABASE app SET TimeZone = 'Asia/Ho_Chi_Minh'; \
         ALTER DATABASE app SET DateStyle = 'SQL, DMY'; \
         ALTER DATABASE app SET IntervalStyle = 'iso_8601'; \
         ALTER DATABASE app SET extra_float_digits = -15; \
         ALTER DATABASE app SET bytea_output = 'escape'; \
         ALTER DATABASE app SET search_path = audit, public",
    );
    assert_eq!(
        s.psql("app", "SELECT created::text FROM accounts WHERE small = 7")
            .trim(),
        "02/01/2024 03:04:05 +07",
        "the database's own defaults took effect"
    );
    let settings = snapshot(&s.url("app"), &dir.path().join("settings.json"), &[]);
    assert_eq!(
        state(&settings),
        state(&base),
        "another TimeZone and DateStyle"
    );

    // A plain dump restored into a database of another name.
    s.dump_restore("app", "restored_elsewhere");
    let restored = snapshot(
        &s.url("restored_elsewhere"),
        &dir.path().join("restored.json"),
        &[],
    );
    assert_eq!(state(&restored), state(&base), "pg_dump | psql");
    assert_eq!(restored["counters"], base["counters"]);
    let (code, report) = diff(
        &dir.path().join("base-sparse.json"),
        &dir.path().join("restored.json"),
    );
    assert_eq!(code, 0, "{report}");
}

#[test]
fn any_one_change_moves_the_state_digest() {
    let s = server_with_app();
    let dir = tempfile::tempdir().unwrap();
    let base_file = dir.path().join("base.json");
    let base = snapshot(&s.url("app"), &base_file, &[]);
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "float_last_bit",
            "UPDATE accounts SET rate = 0.30000000000000004 WHERE rate = 2.95",
            "public.accounts",
            &["content"],
        ),
        (
            "float_ulp",
            "UPDATE accounts SET rate = 0.10000000000000002 WHERE rate = 0.1",
            "public.accounts",
            &["content"],
        ),
        (
            "float4_ulp",
            "UPDATE accounts SET ratio = '0.10000001'::float4 WHERE small = 7",
            "public.accounts",
            &["content"],
        ),
        (
            "minus_zero",
            "UPDATE accounts SET rate = 0 WHERE name = 'Lê — Cường'",
            "public.accounts",
            &["content"],
        ),
        (
            "numeric_scale",
            "ALTER TABLE accounts ALTER balance TYPE numeric(13,3)",
            "public.accounts",
            &["content", "schema"],
        ),
        (
            "nfc_to_nfd",
            "UPDATE accounts SET name = normalize(name, NFD) WHERE small = 7",
            "public.accounts",
            &["content"],
        ),
        (
            "null_to_empty",
            "UPDATE log SET line = '' WHERE line IS NULL",
            "public.log",
            &["content"],
        ),
        (
            "duplicate_row_removed",
            "DELETE FROM log WHERE ctid = (SELECT min(ctid) FROM log WHERE line = 'same')",
            "public.log",
            &["rows", "content"],
        ),
        (
            "row_added",
            "INSERT INTO audit.events (n) VALUES (2001)",
            "audit.events",
            &["rows", "content"],
        ),
        (
            "jsonb_value",
            "UPDATE accounts SET doc = '{\"b\": 1, \"a\": [2, 1]}' WHERE small = 7",
            "public.accounts",
            &["content"],
        ),
        (
            "bytea_byte",
            "UPDATE accounts SET photo = '\\x00ff11' WHERE small = 7",
            "public.accounts",
            &["content"],
        ),
        (
            "microsecond",
            "UPDATE accounts SET created = created + interval '1 microsecond' WHERE small = 1",
            "public.accounts",
            &["content"],
        ),
        (
            "index_added",
            "CREATE INDEX log_line ON log (line)",
            "public.log",
            &["schema"],
        ),
        (
            "column_default",
            "ALTER TABLE audit.events ALTER at SET DEFAULT '2025-01-01'",
            "audit.events",
            &["schema"],
        ),
        (
            "integer_to_float",
            "ALTER TABLE audit.events ALTER n TYPE float8",
            "audit.events",
            &["content", "schema"],
        ),
    ];
    for (i, (name, sql, table, what)) in cases.iter().enumerate() {
        let db = format!("case_{i}");
        s.psql("postgres", &format!("CREATE DATABASE {db} TEMPLATE app"));
        s.psql(&db, sql);
        let out = dir.path().join(format!("{name}.json"));
        let after = snapshot(&s.url(&db), &out, &[]);
        assert_ne!(
            state(&after),
            state(&base),
            "{name} did not move the state digest"
        );
        let (code, report) = diff(&base_file, &out);
        assert_eq!(code, 1, "{name}: {report}");
        let changed: Vec<&Value> = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] != "identical")
            .collect();
        assert_eq!(changed.len(), 1, "{name}: only {table} changed: {report}");
        assert_eq!(changed[0]["name"], *table, "{name}");
        let kinds: Vec<&str> = changed[0]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(kinds, *what, "{name}: {report}");
    }
}

fn rehearse(url: &str, dir: &Path, change: &str, undo: Option<&str>, out: &str) -> (i32, String) {
    fs::write(dir.join("change.sql"), change).unwrap();
    let mut cmd = packet();
    cmd.arg("rehearse")
        .arg(url)
        .arg("--apply")
        .arg(dir.join("change.sql"));
    if let Some(u) = undo {
        fs::write(dir.join("undo.sql"), u).unwrap();
        cmd.arg("--rollback").arg(dir.join("undo.sql"));
    }
    let o = cmd.arg("-o").arg(dir.join(out)).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    (o.status.code().unwrap(), text)
}

fn check_rollback(file: &Path) -> (i32, String) {
    let o = packet().arg("check-rollback").arg(file).output().unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn rehearsals_never_commit_to_the_source() {
    let s = server_with_app();
    let dir = tempfile::tempdir().unwrap();
    let url = s.url("app");
    let before = snapshot(&url, &dir.path().join("source-before.json"), &[]);
    let dbs_before = s.databases();

    // Default: one transaction, always rolled back. nextval is not transactional: the
    // sequence moves on the source, and the evidence says so.
    let change = "UPDATE accounts SET balance = balance + 1 WHERE small = 7; \
                  INSERT INTO accounts (name) VALUES ('new'); DELETE FROM log WHERE line = '';";
    let (code, text) = rehearse(&url, dir.path(), change, None, "tx.json");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("public.accounts, public.log"), "{text}");
    let (code, checked) = check_rollback(&dir.path().join("tx.json"));
    assert_eq!(code, 0, "{checked}");
    let ev: Value = serde_json::from_slice(&fs::read(dir.path().join("tx.json")).unwrap()).unwrap();
    let entry = &ev["entries"][0];
    assert_eq!(entry["before_hash"], before["state_digest"]);
    assert_eq!(entry["after_rollback_hash"], before["state_digest"]);
    assert_ne!(entry["after_apply_hash"], before["state_digest"]);
    assert_eq!(entry["counters_moved"][0]["name"], "public.accounts_id_seq");
    assert_eq!(entry["counters_moved"][0]["before"], 504);
    assert_eq!(entry["counters_moved"][0]["after"], 505);
    assert_eq!(
        ev["isolation"]["source_state_after"],
        before["state_digest"]
    );

    // With a rollback script: a scratch database, dropped afterwards.
    let (code, text) = rehearse(
        &url,
        dir.path(),
        "UPDATE accounts SET balance = balance + 1 WHERE small = 7",
        Some("UPDATE accounts SET balance = balance - 1 WHERE small = 7"),
        "scratch.json",
    );
    assert_eq!(code, 0, "{text}");
    let ev: Value =
        serde_json::from_slice(&fs::read(dir.path().join("scratch.json")).unwrap()).unwrap();
    assert!(
        ev["isolation"]["method"]
            .as_str()
            .unwrap()
            .contains("TEMPLATE")
    );
    assert_eq!(
        s.databases(),
        dbs_before,
        "the scratch database was dropped"
    );
    // A source that is the maintenance database itself: the scratch database is made from
    // another one's connection (a session on the source would make CREATE DATABASE refuse).
    let (code, text) = rehearse(
        &s.url("postgres"),
        dir.path(),
        "CREATE TABLE made_here (x int)",
        Some("DROP TABLE made_here"),
        "maintenance.json",
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(s.databases(), dbs_before);

    // A rollback that restores nothing: ROLLBACK_NOT_RESTORED naming the table.
    let (code, text) = rehearse(
        &url,
        dir.path(),
        "UPDATE log SET line = 'changed' WHERE line = ''",
        Some("SELECT 1"),
        "not-restored.json",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("ROLLBACK_NOT_RESTORED") && text.contains("public.log"),
        "{text}"
    );
    assert!(!has_pass_token(&text), "{text}");
    let (code, checked) = check_rollback(&dir.path().join("not-restored.json"));
    assert_eq!(code, 1);
    assert!(checked.contains("ROLLBACK_NOT_RESTORED"), "{checked}");

    // A change that mutates nothing.
    let (code, text) = rehearse(
        &url,
        dir.path(),
        "SELECT count(*) FROM log",
        None,
        "noop.json",
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("ROLLBACK_APPLY_DID_NOT_MUTATE"), "{text}");

    // A change that tries to commit itself, and SQL that fails: refused, nothing written.
    for (name, sql, says) in [
        ("commit", "DELETE FROM log; COMMIT;", "COMMIT"),
        ("failing", "UPDATE no_such_table SET x = 1", "no_such_table"),
    ] {
        let out = format!("{name}.json");
        let (code, text) = rehearse(&url, dir.path(), sql, None, &out);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("REHEARSAL_FAILED") && text.contains(says),
            "{name}: {text}"
        );
        assert!(
            !dir.path().join(&out).exists(),
            "{name}: evidence was written"
        );
    }
    let (code, text) = rehearse(
        &url,
        dir.path(),
        "SELECT 1",
        Some("SELEC 1"),
        "bad-undo.json",
    );
    assert_eq!(code, 1, "{text}");
    assert!(!dir.path().join("bad-undo.json").exists());
    assert_eq!(
        s.databases(),
        dbs_before,
        "a failed rehearsal left its scratch database"
    );

    // After all of it, the source holds what it held.
    let after = snapshot(&url, &dir.path().join("source-after.json"), &[]);
    assert_eq!(state(&after), state(&before));
    assert_eq!(s.psql("app", "SELECT count(*) FROM log").trim(), "4");
}

#[test]
fn claims_run_in_the_snapshot_transaction_and_libpq_environment_fills_the_url() {
    let s = server_with_app();
    let dir = tempfile::tempdir().unwrap();
    let claims = dir.path().join("claims.toml");
    fs::write(
        &claims,
        r#"
[[claim]]
id = "NT-1"
title = "active accounts: id, name and balance"
table = "accounts"
where = "active"
columns = ["id", "name", "balance"]

[[claim]]
id = "NT-2"
title = "every audit event"
table = "audit.events"
"#,
    )
    .unwrap();
    // The URL names nothing; PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE do.
    let out = dir.path().join("before.json");
    let o = packet()
        .args(["snapshot", "postgres://", "--claims"])
        .arg(&claims)
        .arg("-o")
        .arg(&out)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", s.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGPASSWORD", PASSWORD)
        .env("PGDATABASE", "app")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let before: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(before["claims"][0]["id"], "NT-1");
    assert_eq!(before["claims"][0]["rows"], 2);
    assert_eq!(before["claims"][1]["rows"], 2000);

    s.psql("app", "UPDATE accounts SET balance = 3.00 WHERE small = 1");
    let after_file = dir.path().join("after.json");
    let o = packet()
        .arg("snapshot")
        .arg(s.url("app"))
        .arg("--claims")
        .arg(&claims)
        .arg("-o")
        .arg(&after_file)
        .output()
        .unwrap();
    assert!(o.status.success());
    let (code, report) = diff(&out, &after_file);
    assert_eq!(code, 1, "{report}");
    let claims_report = report["claims"].as_array().unwrap();
    assert_eq!(claims_report[0]["status"], "changed", "{report}");
    assert_eq!(claims_report[1]["status"], "identical", "{report}");
}

/// Runs `packet snapshot` expecting a refusal: exit 1, the reject code, no PASS token, and
/// nothing written.
fn refused(args: &[&str], code: &str, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap.json");
    let o = packet()
        .arg("snapshot")
        .args(args)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{args:?}: {text}");
    assert!(
        text.contains(code) && text.contains(says),
        "{args:?}: {text}"
    );
    assert!(!has_pass_token(&text), "{text}");
    assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{args:?} wrote a file"
    );
}

#[test]
fn unreachable_servers_wrong_passwords_and_bad_claims_are_refused() {
    let s = server_with_app();
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    refused(
        &[&format!("postgres://postgres@127.0.0.1:{port}/app")],
        "SNAPSHOT_SOURCE_UNREADABLE",
        "cannot connect",
    );
    refused(
        &[&format!(
            "postgres://postgres:wrong@127.0.0.1:{}/app",
            s.port
        )],
        "SNAPSHOT_SOURCE_UNREADABLE",
        "password authentication failed",
    );
    refused(
        &[&s.url("no_such_db")],
        "SNAPSHOT_SOURCE_UNREADABLE",
        "does not exist",
    );
    for (name, claim, says) in [
        ("table", "table = \"nope\"", "no table \"nope\""),
        (
            "column",
            "table = \"log\"\ncolumns = [\"nope\"]",
            "no column \"nope\"",
        ),
        ("filter", "table = \"log\"\nwhere = \"nope > 1\"", "nope"),
        ("ambiguous", "table = \"twice\"", "several schemas"),
    ] {
        let file = dir.path().join(format!("{name}.toml"));
        fs::write(
            &file,
            format!("[[claim]]\nid = \"C\"\ntitle = \"t\"\n{claim}\n"),
        )
        .unwrap();
        if name == "ambiguous" {
            s.psql(
                "app",
                "CREATE TABLE IF NOT EXISTS public.twice (); CREATE TABLE IF NOT EXISTS audit.twice ()",
            );
        }
        refused(
            &[&s.url("app"), "--claims", file.to_str().unwrap()],
            "CLAIMS_MALFORMED",
            says,
        );
    }
    // A role that row-level security would show only some rows: refused, not digested.
    s.psql(
        "app",
        "CREATE ROLE reader LOGIN PASSWORD 'r'; GRANT USAGE ON SCHEMA audit TO reader; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public, audit TO reader; \
         ALTER TABLE log ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY only_same ON log USING (line = 'same')",
    );
    refused(
        &[&format!("postgres://reader:r@127.0.0.1:{}/app", s.port)],
        "SNAPSHOT_SOURCE_UNREADABLE",
        "row-level security",
    );
    // Rehearsal: an unreachable server writes no evidence either.
    let (code, text) = rehearse(
        &format!("postgres://postgres@127.0.0.1:{port}/app"),
        dir.path(),
        "SELECT 1",
        None,
        "unreachable.json",
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("REHEARSAL_FAILED"), "{text}");
    assert!(!dir.path().join("unreachable.json").exists());
}
