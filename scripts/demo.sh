#!/bin/bash
# The main job (make demo): a local cluster on UDP loopback, a benchmark
# with 1 and 16 closed-loop clients, a result table, a clean stop.
#   scripts/demo.sh [BUILD] [PROTOCOL] [SECONDS]
set -eu
build=${1:-build}
protocol=${2:-unreplicated}
seconds=${3:-${DEMO_SECONDS:-3}}
case $protocol in
unreplicated) n=1; options= ;;
unreplicated-signed) protocol=unreplicated; n=1; options="signed: true" ;;
*) n=4; options= ;;
esac
label=${2:-unreplicated}
dir=$build/demo/$label
rm -rf "$dir"
config=$(scripts/make-cluster.sh -b "$build" -a kv -o "$options" "$dir" "$protocol" $n)
results=$dir/results.jsonl
: >"$results"
echo "demo: $label, $n replica(s), UDP loopback, kv app, ${seconds}s per run"
for clients in 1 16; do
	OSKR_LOG_LEVEL=warn scripts/cluster.sh -b "$build" -r "$dir/run-$clients" "$config" -- \
		"$build/oskr-bench" -c "$config" -t "$clients" -d "$seconds" -w 1 -j |
		tee -a "$results" >/dev/null
done
echo
printf '%-22s %8s %12s %10s %10s %10s %8s\n' protocol clients "ops/s" "p50 us" "p99 us" "max us" errors
while read -r line; do
	get() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$line"; }
	printf '%-22s %8s %12.0f %10.1f %10.1f %10.1f %8s\n' "$label" "$(get clients)" \
		"$(get ops_per_s)" "$(get p50_us)" "$(get p99_us)" "$(get max_us)" "$(get errors)"
done <"$results"
echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
