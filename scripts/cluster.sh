#!/bin/bash
# Local cluster launcher: start every replica of CONFIG as its own oskrd
# process, wait until each says it is ready, run a command (by default
# oskr-bench) against the cluster, then stop every replica it started —
# by PID, also when something fails or the script is interrupted.
#
#   scripts/cluster.sh [-b BUILD] [-m PROTOCOL] [-r RUNDIR] CONFIG [-- CMD...]
#
# With no CMD it runs: BUILD/oskr-bench -c CONFIG -t 1 -d 3.
# Replica logs go to RUNDIR/replica-N.log (default: a temp dir, kept on
# failure). Exit status: the command's, or 1 if a replica failed.
set -u
build=build
protocol=
run_dir=
while getopts "b:m:r:h" opt; do
	case $opt in
	b) build=$OPTARG ;;
	m) protocol=$OPTARG ;;
	r) run_dir=$OPTARG ;;
	h) sed -n '2,13p' "$0"; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
config=${1:?usage: cluster.sh [-b BUILD] [-m PROTOCOL] [-r RUNDIR] CONFIG [-- CMD...]}
shift
[ "${1:-}" = "--" ] && shift

oskrd=$build/oskrd
[ -x "$oskrd" ] || { echo "cluster: $oskrd not built (run make)" >&2; exit 1; }
proto_args=()
[ -n "$protocol" ] && proto_args=(-m "$protocol")

check=$("$oskrd" -c "$config" "${proto_args[@]}" --check-config 2>&1) || {
	echo "$check" >&2
	exit 1
}
replicas=$(sed -n 's/.* \([0-9][0-9]*\) replicas.*/\1/p' <<<"$check")
[ -n "$replicas" ] || { echo "cluster: cannot tell the replica count: $check" >&2; exit 1; }

keep_dir=0
if [ -z "$run_dir" ]; then
	run_dir=$(mktemp -d /tmp/oskr-cluster.XXXXXX)
else
	mkdir -p "$run_dir"
	keep_dir=1
fi

pids=()
stop_all() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	local deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "cluster: replica pid $pid did not stop in 10 s; killing" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	pids=()
}
status=1
cleanup() {
	stop_all
	if [ $status -ne 0 ]; then
		echo "cluster: replica logs kept in $run_dir" >&2
	elif [ $keep_dir -eq 0 ]; then
		rm -rf "$run_dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ((id = 0; id < replicas; id++)); do
	"$oskrd" -c "$config" "${proto_args[@]}" -i "$id" \
		>"$run_dir/replica-$id.log" 2>&1 &
	pids+=($!)
done

# Wait for readiness (each replica logs "ready" once its transport and
# plugin are up); bounded, and a replica that exits early fails the run.
deadline=$((SECONDS + ${OSKR_START_TIMEOUT:-60}))
for ((id = 0; id < replicas; id++)); do
	until grep -q " ready: " "$run_dir/replica-$id.log" 2>/dev/null; do
		if ! kill -0 "${pids[$id]}" 2>/dev/null; then
			echo "cluster: replica $id exited during start-up:" >&2
			tail -n 20 "$run_dir/replica-$id.log" >&2
			exit 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "cluster: replica $id not ready after ${OSKR_START_TIMEOUT:-60} s" >&2
			tail -n 20 "$run_dir/replica-$id.log" >&2
			exit 1
		fi
		sleep 0.05
	done
done
echo "cluster: $replicas replica(s) ready (pids ${pids[*]}), logs in $run_dir" >&2

if [ $# -eq 0 ]; then
	set -- "$build/oskr-bench" -c "$config" "${proto_args[@]}" -t 1 -d 3
fi
export OSKR_CLUSTER_PIDS="${pids[*]}"
"$@"
status=$?
# A replica that crashed during the run fails it even if the client coped.
for ((id = 0; id < replicas; id++)); do
	if ! kill -0 "${pids[$id]}" 2>/dev/null && [ -z "${OSKR_CLUSTER_ALLOW_EXIT:-}" ]; then
		echo "cluster: replica $id (pid ${pids[$id]}) died during the run" >&2
		tail -n 20 "$run_dir/replica-$id.log" >&2
		status=1
	fi
done
exit $status
