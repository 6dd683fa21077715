#!/bin/bash
# Peak RSS and wall time of one `framegen generate` as a user runs it (scoring and the report included), on a fresh
# copy of a run so every measurement starts from the same state.
# usage: peak_rss.sh CODE_DIR RUN_DIR SECONDS [generate options...]   (CODE_DIR: the framegen checkout to import)
code=$1; run=$2; s=$3; shift 3
d=$(mktemp -d)/run
cp -r "$run" "$d" && rm -rf "$d/generated" "$d/report" "$d/report.html"
PYTHONPATH=$code /usr/bin/time -v python -m framegen.cli generate --run "$d" --seconds "$s" "$@" > "$d.log" 2> "$d.time"
rc=$?
wall=$(grep Elapsed "$d.time" | awk '{print $NF}')
rss=$(grep "Maximum resident" "$d.time" | awk '{print $NF}')
echo "$(basename "$run") seconds=$s rc=$rc wall=$wall peak_rss_kb=$rss $*"
grep -h "^wrote" "$d.log"
rm -rf "$(dirname "$d")"
