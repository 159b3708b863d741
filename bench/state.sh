#!/usr/bin/env bash
# State snapshot benchmark, one command. SQLite: generates a database (fixed seed, in a temporary
# directory removed afterwards) with one table of ROWS rows and ten tables of ROWS/10 rows,
# then times, with peak RSS (GNU time), `packet snapshot` against the read floor and what
# people do today: `sqlite3 DB 'SELECT * FROM t' > /dev/null` (fetching every row, no hashing)
# and `sqlite3 DB .sha3sum` (SQLite's own content hash). Medians of ROUNDS rounds, warm cache.
#
# PostgreSQL (below): the same on a server the script starts and stops itself.
#
#   bench/state.sh [--rows N] [--rounds R]     (defaults: 1,000,000 rows, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=1000000
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --rows) rows=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/state.sh [--rows N] [--rounds R]" >&2; exit 2 ;;
  esac
done
need=()
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}") >/dev/null
fi
cargo build --release --quiet
bin=$(pwd)/target/release/packet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$rows" <<'EOF'
import random, sqlite3, sys
work, rows = sys.argv[1], int(sys.argv[2])
r = random.Random(42)
def fill(path, tables):
    c = sqlite3.connect(path)
    for name, n in tables:
        c.execute(f"CREATE TABLE {name}(id INTEGER PRIMARY KEY, name TEXT, weight REAL, status TEXT, photo BLOB)")
        c.executemany(f"INSERT INTO {name} VALUES (?,?,?,?,?)", (
            (i, "Nguyễn Văn %d" % r.randrange(10**6), r.random() * 5, r.choice(["ok", "", None]), r.randbytes(16))
            for i in range(n)))
    c.commit()
fill(f"{work}/one.db", [("t", rows)])
fill(f"{work}/ten.db", [(f"t{i}", rows // 10) for i in range(10)])
EOF

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# measure LABEL COMMAND...: prints "LABEL median-seconds peak-RSS-MiB"
measure() {
  local label=$1; shift
  local times=() rss=0
  for _ in $(seq "$rounds"); do
    rm -f "$work/out.json"
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>&1
    read -r t m < "$work/time"
    times+=("$t")
    [ "$m" -gt "$rss" ] && rss=$m
  done
  printf '%s\t%s\t%s\n' "$label" "$(printf '%s\n' "${times[@]}" | median)" "$((rss / 1024))"
}
for db in one ten; do
  sel="SELECT * FROM t"
  [ "$db" = ten ] && sel=$(for i in $(seq 0 9); do printf 'SELECT * FROM t%s; ' "$i"; done)
  echo "== $db.db ($( [ $db = one ] && echo "1 table of $rows rows" || echo "10 tables of $((rows / 10)) rows"))"
  printf 'tool\tmedian s\tpeak RSS MiB\n'
  measure "packet snapshot" "$bin" snapshot "sqlite:$work/$db.db" -o "$work/out.json"
  measure "packet snapshot -j1" "$bin" snapshot -j1 "sqlite:$work/$db.db" -o "$work/out.json"
  measure "sqlite3 SELECT * (read floor)" sqlite3 "$work/$db.db" "$sel"
  measure "sqlite3 .sha3sum" sqlite3 "$work/$db.db" .sha3sum
done

# PostgreSQL: a server of the benchmark's own (initdb in the work directory, loopback, a free
# port; as root it runs as the postgres user), the same shapes of data made by
# generate_series with a fixed seed, then `packet snapshot` (one connection per CPU, and -j1)
# against the read floor, a bare `COPY … TO STDOUT` of every table through psql, and what
# people do today, `pg_dump | sha256sum` (which proves nothing since the 2025 security
# releases: every plain dump carries a random \restrict key, so two dumps of one database
# differ; the script shows it).
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pgbin" ]; then
  echo "== PostgreSQL: skipped, no server binaries (install Debian's postgresql)"
  exit 0
fi
as_pg=()
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$work"; as_pg=(runuser -u postgres --); fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --locale=C.UTF-8 -N >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c fsync=off" start >/dev/null
trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate -w stop >/dev/null 2>&1; rm -rf "$work"' EXIT
psql=("$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
"${psql[@]}" -d postgres -c "CREATE DATABASE one" -c "CREATE DATABASE ten"
make_table() { # DB NAME ROWS
  "${psql[@]}" -d "$1" -c "SELECT setseed(0.42)" -c "CREATE TABLE $2 (id int8 PRIMARY KEY, name text, weight float8, status text, photo bytea)" \
    -c "INSERT INTO $2 SELECT i, 'Nguyễn Văn ' || (random() * 1e6)::int, random() * 5, (ARRAY['ok', '', NULL])[1 + i % 3], decode(md5(i::text), 'hex') FROM generate_series(1, $3) i" \
    -c "VACUUM ANALYZE $2"
}
make_table one t "$rows"
for i in $(seq 0 9); do make_table ten "t$i" $((rows / 10)); done
url="postgres://postgres@127.0.0.1:$port"
for db in one ten; do
  copy=(); tables=t; [ "$db" = ten ] && tables=$(seq -f 't%g' 0 9)
  for t in $tables; do copy+=(-c "COPY $t TO STDOUT"); done
  echo "== PostgreSQL $db ($( [ $db = one ] && echo "1 table of $rows rows" || echo "10 tables of $((rows / 10)) rows"))"
  printf 'tool\tmedian s\tpeak RSS MiB\n'
  measure "packet snapshot" "$bin" snapshot "$url/$db" -o "$work/out.json"
  measure "packet snapshot -j1" "$bin" snapshot -j1 "$url/$db" -o "$work/out.json"
  measure "psql COPY TO STDOUT (read floor)" "${psql[@]}" -d "$db" "${copy[@]}"
  measure "pg_dump | sha256sum" bash -c '"$@" | sha256sum' _ "$pgbin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres "$db"
done
a=$("$pgbin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres one | sha256sum)
b=$("$pgbin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres one | sha256sum)
echo "two pg_dump runs of one unchanged database: ${a%% *} vs ${b%% *} ($( [ "$a" = "$b" ] && echo same || echo differ: '\restrict key'))"
