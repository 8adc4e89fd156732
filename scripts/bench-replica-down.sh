#!/bin/bash
# Benchmark a local 4-replica HotStuff cluster with some replicas down
# (docs/hotstuff.md, "Leader rotation"): write the cluster with
# scripts/make-cluster.sh, start every replica except the DOWN ones,
# run oskr-bench against it, stop what it started (by PID).
#
#   scripts/bench-replica-down.sh [-b BUILD] [-o 'yaml options'] [-d DOWN]
#                                 [-r RUNS] DIR [-- BENCH ARGS...]
# DOWN is a comma-separated list of replica ids not started ("" = all up,
# the default "3"). BENCH ARGS default to: -t 16 -d 10 -j. Prints one
# JSON line per run.
set -u
build=build
options=
down=3
runs=1
while getopts "b:o:d:r:" opt; do
	case $opt in
	b) build=$OPTARG ;;
	o) options=$OPTARG ;;
	d) down=$OPTARG ;;
	r) runs=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
dir=${1:?DIR}
shift
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- -t 16 -d 10 -j
n=4

rm -f "$dir/config.yaml"
OSKR_LOG_LEVEL=${OSKR_LOG_LEVEL:-warn} \
	scripts/make-cluster.sh -b "$build" -o "$options" "$dir" hotstuff $n \
	>/dev/null || exit 1

pids=()
stop_all() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	pids=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

for ((run = 0; run < runs; run++)); do
	for ((id = 0; id < n; id++)); do
		case ",$down," in *",$id,"*) continue ;; esac
		"$build/oskrd" -c "$dir/config.yaml" -i "$id" \
			>"$dir/replica-$id.log" 2>&1 &
		pids+=($!)
	done
	sleep 1
	"$build/oskr-bench" -c "$dir/config.yaml" "$@"
	# A replica that could not start (port taken by another cluster on
	# this machine) or died makes the run meaningless: say so.
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null ||
			echo "bench-replica-down: replica pid $pid exited" \
			     "during the run (logs: $dir/replica-*.log)" >&2
	done
	stop_all
done
