#!/usr/bin/env bash
# SQLite snapshot benchmark, one command: generates a database (fixed seed, in a temporary
# directory removed afterwards) with one table of ROWS rows and ten tables of ROWS/10 rows,
# then times, with peak RSS (GNU time), `packet snapshot` against the read floor and what
# people do today: `sqlite3 DB 'SELECT * FROM t' > /dev/null` (fetching every row, no hashing)
# and `sqlite3 DB .sha3sum` (SQLite's own content hash). Medians of ROUNDS rounds, warm cache.
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
  measure "sqlite3 SELECT * (read floor)" sqlite3 "$work/$db.db" "$sel"
  measure "sqlite3 .sha3sum" sqlite3 "$work/$db.db" .sha3sum
done
