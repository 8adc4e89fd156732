#!/bin/bash
# The inline_receive ablation of docs/transport-dpdk.md ("Figures"): one
# Unreplicated replica (null app, 2 workers) and one closed-loop client,
# over UDP and over DPDK memif, with inline_receive on and off, the four
# configurations interleaved in each repetition. Prints one line per run:
#   CONFIG REP OPS_PER_S P50_US
# and the medians at the end. DPDK rows need DPDK (root or memif rights).
#
#   scripts/bench-inline.sh [-b BUILD] [-r REPS] [-d SECONDS] [-t CLIENTS] [DIR]
set -u
build=build reps=5 duration=3 clients=1
while getopts "b:r:d:t:" opt; do
	case $opt in
	b) build=$OPTARG ;;
	r) reps=$OPTARG ;;
	d) duration=$OPTARG ;;
	t) clients=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
dir=${1:-$(mktemp -d /tmp/oskr-inline.XXXXXX)}
mkdir -p "$dir"
configs=()
for inline in on off; do
	scripts/make-cluster.sh -b "$build" -w 2 -a null "$dir/udp-$inline" unreplicated 1 >/dev/null &&
		configs+=("udp-$inline")
	scripts/make-cluster-dpdk.sh -b "$build" -w 2 -a null "$dir/dpdk-$inline" unreplicated 1 >/dev/null 2>&1 &&
		configs+=("dpdk-$inline")
done
for c in "${configs[@]}"; do
	[[ $c == *-off ]] && echo "inline_receive: false" >>"$dir/$c/config.yaml"
done
results=$dir/results.txt
: >"$results"
for rep in $(seq 1 "$reps"); do
	for c in "${configs[@]}"; do
		eal_server= eal_client=
		if [[ $c == dpdk-* ]]; then
			eal_server=$(cat "$dir/$c/eal-server")
			eal_client=$(cat "$dir/$c/eal-client")
		fi
		out=$(OSKR_LOG_LEVEL=warn OSKR_EAL_ARGS="$eal_server" \
			scripts/cluster.sh -b "$build" "$dir/$c/config.yaml" -- \
			env "OSKR_EAL_ARGS=$eal_client" "$build/oskr-bench" \
			-c "$dir/$c/config.yaml" -t "$clients" -d "$duration" -w 1 -j \
			2>>"$dir/stderr" | tail -1)
		ops=$(sed -n 's/.*"ops_per_s":\([0-9.]*\).*/\1/p' <<<"$out")
		p50=$(sed -n 's/.*"p50_us":\([0-9.]*\).*/\1/p' <<<"$out")
		echo "$c $rep ${ops:-fail} ${p50:-fail}" | tee -a "$results"
	done
done
echo "medians ($reps runs, $clients client(s), ${duration} s each):"
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "fail" }'; }
for c in "${configs[@]}"; do
	ops=$(awk -v c="$c" '$1 == c && $3 != "fail" { print $3 }' "$results" | median)
	p50=$(awk -v c="$c" '$1 == c && $4 != "fail" { print $4 }' "$results" | median)
	printf '  %-9s p50 %8s us  %10s ops/s\n' "$c" "$p50" "$ops"
done
