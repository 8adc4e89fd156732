#!/bin/bash
# The benchmark script end to end on one tiny configuration (unreplicated,
# 1 client, 0.5 s, 1 repetition, plus a tiny YCSB B run): it must finish
# and write a well-formed Markdown table, CSV and JSON. Only the shape is
# checked, never a number — benchmarks are not tests.
set -eu
build=${1:-build}
dir=$(mktemp -d /tmp/oskr-it-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

[ -f "$build/plugins/unreplicated.so" ] || fail "$build/plugins/unreplicated.so not built"

out=$dir/out
scripts/bench.sh --quick -b "$build" -o "$out" --run-dir "$dir/run" \
	--protocols unreplicated --transports udp --clients 1 --reps 1 \
	--duration 0.5 --warmup 0.2 --ycsb-workloads B --ycsb-records 200 \
	--ycsb-clients 2 >"$dir/log" 2>&1 || {
	cat "$dir/log"
	fail "scripts/bench.sh exited non-zero"
}
cat "$dir/log"

md=$out/benchmarks.md
[ -s "$md" ] || fail "no $md"
grep -q '^## Setup$' "$md" || fail "no setup block"
for key in CPU cores kernel 'git commit' 'config hash' workers 'key type' transport 'build flags'; do
	grep -q "^| $key | ..*|\$" "$md" || fail "setup block lacks '$key'"
done

# The main table: the header, the alignment row, one row of 11 cells.
header='| protocol | transport | workers | batch | max K ops/s | at clients | min p50 µs | at clients | ops/batch | crypto bound K ops/s | of bound |'
grep -qxF "$header" "$md" || fail "main table header missing"
table=$(sed -n "/^| protocol | transport/,/^\$/p" "$md")
[ "$(sed -n 2p <<<"$table")" = '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|' ] ||
	fail "bad alignment row: $(sed -n 2p <<<"$table")"
rows=$(grep -c '^| unreplicated ' <<<"$table" || true)
[ "$rows" -eq 1 ] || fail "expected 1 table row, got $rows"
row=$(grep '^| unreplicated ' <<<"$table")
cells=$(awk -F'|' '{ print NF - 2 }' <<<"$row")
[ "$cells" -eq 11 ] || fail "table row has $cells cells: $row"
# throughput and latency cells hold numbers
awk -F'|' '{ exit !($6 ~ /^ [0-9]+\.[0-9]+ $/ && $8 ~ /^ [0-9]+\.[0-9] $/) }' <<<"$row" ||
	fail "throughput/latency cells are not numbers: $row"

# YCSB table: one row for workload B.
grep -qxF '| protocol | workload | read ratio | K ops/s | p50 µs | p99 µs | errors |' "$md" ||
	fail "YCSB table header missing"
grep -q '^| unreplicated | B | 0.95 | [0-9.]* | [0-9.]* | [0-9.]* | 0 |$' "$md" ||
	fail "YCSB row missing or malformed: $(grep '^| unreplicated | B' "$md")"

# CSVs: header + rows with as many fields as the header.
check_csv() { # FILE ROWS FIRST-COLUMNS
	local file=$out/bench/$1
	[ -s "$file" ] || fail "no $file"
	head -n 1 "$file" | grep -q "^$3," || fail "$1: unexpected header: $(head -n 1 "$file")"
	local n
	n=$(($(wc -l <"$file") - 1))
	[ "$n" -eq "$2" ] || fail "$1: expected $2 data rows, got $n"
	awk -F, 'NR == 1 { fields = NF; next } NF != fields { exit 1 }' "$file" ||
		fail "$1: a row's field count differs from the header's"
}
check_csv results.csv 1 transport,workers,protocol,batch
check_csv points.csv 1 transport,workers,protocol,batch,clients
check_csv raw.csv 1 transport,workers,protocol,batch,clients,rep,status
check_csv ycsb.csv 1 protocol,batch,workload
grep -q '^udp,2,unreplicated,-,1,1,ok,' "$out/bench/raw.csv" || fail "raw.csv: the point did not run ok"

json=$out/bench/results.json
[ -s "$json" ] || fail "no $json"
if command -v python3 >/dev/null; then
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) == {"setup", "rows", "points", "ycsb"}, d.keys()
assert len(d["rows"]) == 1 and d["rows"][0]["protocol"] == "unreplicated"
assert len(d["ycsb"]) == 1 and d["ycsb"][0]["workload"] == "B"' "$json" ||
		fail "results.json is not the expected JSON"
fi

if command -v gnuplot >/dev/null; then
	[ "$(head -c 4 "$out/bench/unreplicated.png" | tail -c 3)" = PNG ] ||
		fail "no PNG plot although gnuplot is installed"
	grep -q '](bench/unreplicated.png)' "$md" || fail "plot not linked"
fi
echo "PASS"
