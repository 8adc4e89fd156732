#!/bin/bash
# A Byzantine replica as a real process (issue 9 §3): 4 oskrd replicas on
# UDP loopback with the kv app, where replica 3 (a backup) runs the
# test-only wrapper BUILD/test/evil/evil.so around the real plugin. The
# wrapper runs the honest protocol but corrupts what it sends to the other
# replicas (test/evil/evil.c): forged signatures, truncated, oversized and
# garbage messages, replays of earlier messages. For PBFT, then HotStuff,
# and for each mode set in turn, on a fresh cluster:
#   1. oskr-bench (real plugin, 4 clients, 3 s) completes requests with
#      every kv result correct ("errors":0) and none left outstanding
#      ("timeouts":0): the honest replicas stay safe and live;
#   2. the wrapper really mutated messages (its evil_<mode> counters grew);
#   3. the honest replicas' drop counters (oskr_drops_total, any reason,
#      read with oskrctl over the control sockets) grew during the bench;
#   4. no replica died and no sanitizer reported anything.
# Bounded: every wait has a deadline; the replicas are stopped by PID.
# OSKR_BYZ_PROTOCOLS and OSKR_BYZ_MODES (space-separated) narrow the run
# for debugging.
set -u
build=${1:-build}
cd "$(dirname "$0")/../.."
case $build in
/*) abs_build=$build ;;
*) abs_build=$PWD/$build ;;
esac
evil_so=$abs_build/test/evil/evil.so

fail() {
	echo "FAIL: $*"
	local log
	for log in "${run_dir:-/nonexistent}"/replica-*.log; do
		[ -f "$log" ] && { echo "--- $log (tail)"; tail -n 15 "$log"; }
	done
	exit 1
}

for tool in oskrd oskr-bench oskr-keygen oskrctl plugins/pbft.so \
	plugins/hotstuff.so test/evil/evil.so; do
	[ -e "$build/$tool" ] || fail "$build/$tool is not built (make test-bins)"
done

dir=$(mktemp -d /tmp/oskr-it-byz.XXXXXX)
pids=()
stop_all() {
	local pid deadline
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		deadline=$((SECONDS + 10))
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.05
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	pids=()
}
cleanup() {
	stop_all
	[ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start PROTOCOL CONFIG MODES: replicas 0-2 honest, 3 evil; wait for ready.
start_cluster() {
	local protocol=$1 config=$2 modes=$3 id deadline
	rm -f "$(dirname "$config")"/oskrd-*.sock
	for id in 0 1 2; do
		"$build/oskrd" -c "$config" -i $id >"$run_dir/replica-$id.log" 2>&1 &
		pids+=($!)
	done
	OSKR_EVIL_TARGET=$abs_build/plugins/$protocol.so OSKR_EVIL_MODE=$modes \
		OSKR_EVIL_RATE=${OSKR_EVIL_RATE:-1.0} \
		"$build/oskrd" -c "$config" -i 3 -m "$evil_so" \
		>"$run_dir/replica-3.log" 2>&1 &
	pids+=($!)
	deadline=$((SECONDS + 20))
	for id in 0 1 2 3; do
		until grep -q " ready: " "$run_dir/replica-$id.log" 2>/dev/null; do
			kill -0 "${pids[$id]}" 2>/dev/null ||
				fail "$protocol: replica $id exited during start-up"
			[ $SECONDS -lt $deadline ] ||
				fail "$protocol: replica $id not ready after 20 s"
			sleep 0.05
		done
	done
}

# sum FILE REGEX: the sum of the values of the metric lines matching REGEX.
sum_metric() {
	grep -E "$2" "$1" | awk '{s += $NF} END {print s + 0}'
}

# drops PROM...: total drops of all reasons in the given metrics files.
drops() {
	local total=0 f
	for f in "$@"; do
		total=$((total + $(sum_metric "$f" '^oskr_drops_total\{')))
	done
	echo $total
}

snapshot_metrics() { # TAG
	local id
	for id in 0 1 2 3; do
		"$build/oskrctl" -s "$cluster_dir/oskrd-$id.sock" -t 5 metrics \
			>"$run_dir/$1-$id.prom" ||
			fail "oskrctl metrics of replica $id failed"
	done
}

# run_case PROTOCOL MODES
run_case() {
	local protocol=$1 modes=$2 tag=${1}_${2//,/_}
	cluster_dir=$dir/$protocol
	run_dir=$dir/run-$tag
	mkdir -p "$run_dir"
	local config=$cluster_dir/config.yaml
	start_cluster "$protocol" "$config" "$modes"
	snapshot_metrics before
	local result
	result=$(timeout 30 "$build/oskr-bench" -c "$config" -m "$protocol" \
		-t 4 -w 0.5 -d 3 -j 2>"$run_dir/bench.err") ||
		fail "$protocol/$modes: oskr-bench failed: $(tail -n 5 "$run_dir/bench.err")"
	snapshot_metrics after
	local id
	for id in 0 1 2 3; do
		kill -0 "${pids[$id]}" 2>/dev/null ||
			fail "$protocol/$modes: replica $id died during the run"
	done
	stop_all
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$run_dir"/replica-*.log; then
		fail "$protocol/$modes: a sanitizer reported a problem"
	fi

	echo "$protocol [$modes]: $result"
	grep -q '"errors":0[,}]' <<<"$result" || fail "$protocol/$modes: wrong results (safety)"
	grep -q '"timeouts":0[,}]' <<<"$result" ||
		fail "$protocol/$modes: requests left outstanding (liveness)"
	local completed
	completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$result")
	[ "${completed:-0}" -gt 0 ] || fail "$protocol/$modes: nothing completed"

	local mode before after
	for mode in ${modes//,/ }; do
		after=$(sum_metric "$run_dir/after-3.prom" "^oskr_evil_${mode}_total ")
		[ "$after" -gt 0 ] || fail "$protocol/$modes: the wrapper never applied '$mode'"
	done
	before=$(drops "$run_dir"/before-[012].prom)
	after=$(drops "$run_dir"/after-[012].prom)
	# Per reason, for the log: what the honest replicas dropped in the run.
	local reasons
	reasons=$(cat "$run_dir"/after-[012].prom | sed -n 's/^oskr_drops_total{reason="\([^"]*\)"}.*/\1/p' | sort -u |
		while read -r reason; do
			local b a
			b=$(sum_metric <(cat "$run_dir"/before-[012].prom) "^oskr_drops_total\\{reason=\"$reason\"\\} ")
			a=$(sum_metric <(cat "$run_dir"/after-[012].prom) "^oskr_drops_total\\{reason=\"$reason\"\\} ")
			[ "$a" -gt "$b" ] && printf '%s+%d ' "$reason" $((a - b))
		done)
	echo "  honest replicas' drops during the bench: $before -> $after (${reasons% })"
	[ "$after" -gt "$before" ] ||
		fail "$protocol/$modes: the honest replicas counted no drop during the run"
}

start=$SECONDS
for protocol in ${OSKR_BYZ_PROTOCOLS:-pbft hotstuff}; do
	OSKR_LOG_LEVEL=info scripts/make-cluster.sh -b "$build" -a kv -C \
		"$dir/$protocol" "$protocol" 4 >/dev/null ||
		fail "cannot write the $protocol cluster config"
	for modes in ${OSKR_BYZ_MODES:-forge truncate,oversize,garbage replay}; do
		run_case "$protocol" "$modes"
	done
done
echo "PASS (${OSKR_BYZ_PROTOCOLS:-pbft hotstuff} with replica 3 Byzantine: ${OSKR_BYZ_MODES:-forge truncate,oversize,garbage replay}; $((SECONDS - start)) s)"
