#!/usr/bin/env bash
# Makes the drift corpus: each case is one document of original/ after one trip through the
# real tool that causes the drift. cases.tsv records, per case, the file, the name it was
# found under, the proof level and causes `packet verify --against original` must report,
# and the exact command that made it.
#
# Run from anywhere: tests/data/drift/make_corpus.sh [PACKET]   (PACKET: the binary that
# seals original/ when it has no seal yet; default target/release/packet)
# Needs python3, iconv, sed, git, vim, GNU coreutils (expand, head).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packet=${1:-$here/../../../target/release/packet}
cd "$here"
[ -f original/HASH_MANIFEST.txt ] || "$packet" build original

rm -rf cases
mkdir cases
printf 'case\tfile\tfound_as\tproof\tcauses\tcommand\n' > cases.tsv

# make NAME FILE PROOF CAUSES COMMAND: copies original/FILE into cases/NAME/, runs COMMAND
# there with $f set to the file, records the row. COMMAND may rename the file; FOUND_AS is
# then whatever single file is left in the case directory.
make() {
  local name=$1 file=$2 proof=$3 causes=$4 command=$5
  mkdir -p "cases/$name"
  cp "original/$file" "cases/$name/$file"
  chmod u+w "cases/$name/$file"
  (cd "cases/$name" && f=$file && eval "$command")
  local found
  found=$(cd "cases/$name" && ls -A)
  [ "$found" = "$file" ] && found=-
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$file" "$found" "$proof" "$causes" "$command" >> cases.tsv
}

py() { python3 -c "$1" "$f"; }

make json-ensure-ascii evidence.json proven DRIFT_JSON_ASCII_ESCAPE \
  'python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p,encoding=\"utf-8\")); open(p,\"w\",encoding=\"utf-8\").write(json.dumps(d, ensure_ascii=True, indent=2)+\"\n\")" "$f"'
make json-indent-4 evidence.json proven DRIFT_JSON_REFORMAT \
  'python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p,encoding=\"utf-8\")); open(p,\"w\",encoding=\"utf-8\").write(json.dumps(d, ensure_ascii=False, indent=4))" "$f"'
make json-compact evidence.json proven DRIFT_JSON_REFORMAT \
  'python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p,encoding=\"utf-8\")); open(p,\"w\",encoding=\"utf-8\").write(json.dumps(d, ensure_ascii=False, separators=(\",\",\":\")))" "$f"'
make json-sort-keys evidence.json consistent DRIFT_JSON_REFORMAT \
  'python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p,encoding=\"utf-8\")); open(p,\"w\",encoding=\"utf-8\").write(json.dumps(d, ensure_ascii=False, indent=2, sort_keys=True)+\"\n\")" "$f"'
make mojibake-latin1-iconv notes.md proven DRIFT_MOJIBAKE \
  'iconv -f latin1 -t utf-8 "$f" > t && mv t "$f"'
make mojibake-twice-iconv notes.md proven DRIFT_MOJIBAKE \
  'iconv -f latin1 -t utf-8 "$f" | iconv -f latin1 -t utf-8 > t && mv t "$f"'
make mojibake-cp1252-python tiếng-việt.txt proven DRIFT_MOJIBAKE \
  'python3 -c "import sys; p=sys.argv[1]; t=open(p,encoding=\"utf-8\").read(); open(p,\"w\",encoding=\"utf-8\").write(t.encode(\"utf-8\").decode(\"cp1252\"))" "$f"'
make nfd-python notes.md proven DRIFT_UNICODE_NORMALIZATION \
  'python3 -c "import sys,unicodedata; p=sys.argv[1]; t=open(p,encoding=\"utf-8\",newline=\"\").read(); open(p,\"w\",encoding=\"utf-8\",newline=\"\").write(unicodedata.normalize(\"NFD\",t))" "$f"'
make em-dash-sed plan.txt proven DRIFT_UNICODE \
  'sed -i "s/—/-/g" "$f"'
make smart-punctuation-sed notes.md proven DRIFT_UNICODE \
  "sed -i -e 's/—/--/g' -e 's/–/-/g' -e 's/[“”]/\"/g' -e \"s/[‘’]/'/g\" -e 's/…/.../g' -e 's/→/->/g' \"\$f\""
make bom-vim plan.txt proven DRIFT_BOM \
  'vim -u NONE -i NONE -n -es -c "set bomb nofixeol" -c wq "$f"'
make crlf-vim notes.md proven DRIFT_CRLF \
  'vim -u NONE -i NONE -n -es -c "set ff=dos" -c wq "$f"'
make final-newline-head notes.md proven DRIFT_FINAL_NEWLINE \
  'head -c -1 "$f" > t && mv t "$f"'
make trailing-whitespace-sed notes.md proven DRIFT_TRAILING_WHITESPACE \
  'sed -i "s/[ \t]*$//" "$f"'
make tabs-expand notes.md proven DRIFT_TABS \
  'expand -t 4 "$f" > t && mv t "$f"'
make crlf-git-autocrlf notes.md proven DRIFT_CRLF \
  'd=$(mktemp -d) && git init -q "$d/r" && cp "$f" "$d/r/" && git -C "$d/r" add -A && git -C "$d/r" -c user.name=c -c user.email=c@c commit -qm c && git -c core.autocrlf=true clone -q "$d/r" "$d/w" && cp "$d/w/$f" "$f" && rm -rf "$d"'
make bom-crlf-vim plan.txt proven DRIFT_BOM+DRIFT_CRLF \
  'vim -u NONE -i NONE -n -es -c "set bomb ff=dos nofixeol" -c wq "$f"'
make nfd-crlf-fold notes.md proven DRIFT_CRLF+DRIFT_UNICODE+DRIFT_UNICODE_NORMALIZATION \
  'sed -i "s/—/-/g" "$f" && vim -u NONE -i NONE -n -es -c "set ff=dos" -c wq "$f" && python3 -c "import sys,unicodedata; p=sys.argv[1]; t=open(p,encoding=\"utf-8\",newline=\"\").read(); open(p,\"w\",encoding=\"utf-8\",newline=\"\").write(unicodedata.normalize(\"NFD\",t))" "$f"'
make json-escape-bom-crlf evidence.json proven DRIFT_BOM+DRIFT_CRLF+DRIFT_JSON_ASCII_ESCAPE \
  'python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p,encoding=\"utf-8\")); open(p,\"w\",encoding=\"utf-8-sig\",newline=\"\\r\\n\").write(json.dumps(d, ensure_ascii=True, indent=2)+\"\n\")" "$f"'
make name-nfd tiếng-việt.txt proven DRIFT_PATH_NORMALIZATION \
  'python3 -c "import os,sys,unicodedata; p=sys.argv[1]; os.rename(p, unicodedata.normalize(\"NFD\", p))" "$f"'
make name-case notes.md proven DRIFT_PATH_NORMALIZATION \
  'mv "$f" NOTES.md'
make content-number-sed evidence.json content-changed - \
  'sed -i "s/4182,/4183,/" "$f"'
make content-deleted-line-sed notes.md content-changed - \
  'sed -i "3d" "$f"'
make content-word-under-crlf notes.md content-changed - \
  'sed -i "s/HOLD/SHIP/" "$f" && vim -u NONE -i NONE -n -es -c "set ff=dos" -c wq "$f"'
echo "made $(($(wc -l < cases.tsv) - 1)) cases"
