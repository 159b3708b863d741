#!/usr/bin/env bash
# Archive benchmark, one command: generates a packet (fixed seed, in a temporary directory that
# is removed afterwards), then times, with peak RSS (GNU time), packet pack / verify / unpack of
# its .tar and .tar.gz against what people do without packet: GNU tar -cf / -czf, tar -xf then
# verify the directory, and the raw read floor (sha256sum of the archive, gzip -dc | sha256sum).
#
#   bench/archive.sh [--mib N] [--rounds R]     (defaults: 1024 MiB, 3 rounds; medians)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=1024
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --mib) mib=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/archive.sh [--mib N] [--rounds R]" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends time) >/dev/null
cargo build --release --quiet
bin=$(pwd)/target/release/packet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Half the bytes in 4 large files (random: incompressible), a quarter in 4 large logs
# (compressible text), a quarter in 2,000 small JSON and text files.
python3 - "$work/src" "$mib" <<'EOF'
import json, os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
r = random.Random(42)
os.makedirs(f"{root}/data"); os.makedirs(f"{root}/logs"); os.makedirs(f"{root}/runs")
total = mib * 1024 * 1024
for i in range(4):
    with open(f"{root}/data/blob{i}.bin", "wb") as f:
        f.write(r.randbytes(total // 8))
words = ["apply", "rollback", "digest", "before", "after", "row", "table", "OK", "—", "không", "chạm"]
for i in range(4):
    with open(f"{root}/logs/run{i}.log", "w", encoding="utf-8") as f:
        left = total // 16
        while left > 0:
            line = f"{r.randint(0, 10**9):010d} " + " ".join(r.choice(words) for _ in range(12)) + "\n"
            f.write(line); left -= len(line.encode())
each = (total // 4) // 2000
for i in range(2000):
    doc = {"id": i, "rows": [[r.randint(0, 10**6) for _ in range(8)] for _ in range(max(1, each // 64))]}
    with open(f"{root}/runs/r{i:04d}.json", "w") as f:
        json.dump(doc, f)
EOF
"$bin" build -q "$work/pkt" "$work/src/data" "$work/src/logs" "$work/src/runs" >/dev/null
tree=$(cut -c1-64 "$work/pkt/packet_tree.sha256")
bytes=$(du -sb "$work/pkt" | cut -f1)

# measure NAME SETUP COMMAND: runs SETUP untimed, then COMMAND timed; prints "seconds KiB".
measure() {
  local setup=$1 cmd=$2
  sh -c "$setup; sync"
  /usr/bin/time -f "%e %M" -o "$work/time" sh -c "$cmd" >/dev/null 2>&1
  cat "$work/time"
}
declare -A secs rss
rows=(
  "packet pack .tar@rm -f $work/a.tar@$bin pack $work/pkt -o $work/a.tar -q"
  "GNU tar -cf@rm -f $work/g.tar@tar -cf $work/g.tar -C $work/pkt ."
  "packet pack .tar.gz@rm -f $work/a.tgz@$bin pack $work/pkt -o $work/a.tgz -q"
  "GNU tar -czf@rm -f $work/g.tgz@tar -czf $work/g.tgz -C $work/pkt ."
  "packet verify .tar (streamed)@true@$bin verify $work/a.tar --expect-tree $tree -q"
  "packet verify .tar.gz (streamed)@true@$bin verify $work/a.tgz --expect-tree $tree -q"
  "floor: sha256sum .tar@true@sha256sum $work/a.tar"
  "floor: gzip -dc .tar.gz, sha256sum@true@gzip -dc $work/a.tgz | sha256sum"
  "packet unpack .tar.gz (+ verify)@rm -rf $work/u@$bin unpack $work/a.tgz $work/u --expect-tree $tree -q"
  "tar -xzf, then packet verify dir@rm -rf $work/x; mkdir $work/x@tar -xzf $work/a.tgz -C $work/x && $bin verify $work/x --expect-tree $tree -q"
)
for ((round = 1; round <= rounds; round++)); do
  for row in "${rows[@]}"; do
    IFS='@' read -r name setup cmd <<<"$row"
    read -r s k < <(measure "$setup" "$cmd")
    secs[$name]+="$s "
    rss[$name]+="$k "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "packet of $bytes bytes in 2,009 files; $rounds rounds, medians"
printf '| %-40s | %8s | %10s |\n' "command" "seconds" "peak RSS"
printf '|%s|%s|%s|\n' "------------------------------------------" "----------" "------------"
for row in "${rows[@]}"; do
  IFS='@' read -r name _ _ <<<"$row"
  s=$(echo "${secs[$name]}" | median)
  k=$(echo "${rss[$name]}" | median)
  printf '| %-40s | %8s | %6d MiB |\n' "$name" "$s" "$((k / 1024))"
done
cmp -s "$work/a.tar" <(gzip -dc "$work/a.tgz") && echo "the .tar.gz holds the .tar byte for byte"
