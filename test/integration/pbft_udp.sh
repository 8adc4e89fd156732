#!/bin/bash
# PBFT as real processes: 4 oskrd replicas on UDP loopback with the KV
# app.
#
#  1. oskr-bench with 4 clients for 8 s; 2 s in, the primary of view 0
#     (replica 0) is killed with SIGKILL. Every result must be correct (the
#     bench checks each get against the client's last put: "errors":0) and
#     every request must complete ("timeouts":0: none still outstanding
#     5 s after the window closed), which needs the view change to finish.
#     Requests in flight at the kill must complete within the window: the
#     bench records latencies only inside it, and such a request takes at
#     least the client's retransmission timeout plus a backup's view-change
#     timeout (0.5 + 1 s by default), while the others take milliseconds.
#     So the window's max latency is >= 1 s exactly when the cluster
#     answered again within the 6 s after the kill.
#  2. A second oskr-bench, 4 new clients for 3 s, against the 3 surviving
#     replicas: requests complete in the new view, all correct.
#
# Prints the time from the kill to the first reply in the new view (the
# longest request of phase 1 waited across the view change; it started
# before the kill, so this is an upper bound). Bounded: every step has a
# timeout; the replicas are stopped by scripts/cluster.sh.
set -eu
build=${1:-build}
dir=$(mktemp -d /tmp/oskr-it-pbft.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
fail() {
	echo "FAIL: $*"
	for log in "$dir"/run/replica-*.log; do
		[ -f "$log" ] && { echo "--- $log"; tail -n 15 "$log"; }
	done
	exit 1
}

# info: the replicas' "entered view" lines are checked below
config=$(OSKR_LOG_LEVEL=info scripts/make-cluster.sh -b "$build" -a kv "$dir" pbft 4)
# The bench gives up on a request 5 s after its window: 8 + 5 s and
# 3 + 5 s at most, plus start-up.
OSKR_START_TIMEOUT=20 OSKR_CLUSTER_ALLOW_EXIT=1 \
	timeout 50 scripts/cluster.sh -b "$build" -r "$dir/run" "$config" -- \
	bash -c '
		set -u
		timeout 20 '"$build"'/oskr-bench -c "$1" -t 4 -d 8 -w 0 -j \
			>"$2/bench1.json" 2>"$2/bench1.err" &
		bench=$!
		sleep 2
		primary=${OSKR_CLUSTER_PIDS%% *}
		kill -KILL "$primary"
		date +%s.%N >"$2/killed_at"
		wait $bench || echo "phase 1 bench exit $?" >&2
		timeout 15 '"$build"'/oskr-bench -c "$1" -t 4 -d 3 -w 0 -j \
			>"$2/bench2.json" 2>"$2/bench2.err" ||
			echo "phase 2 bench exit $?" >&2
	' _ "$config" "$dir" || fail "cluster run failed"

check() { # phase, json file
	local result
	result=$(cat "$2" 2>/dev/null) || fail "$1: no bench output: $(cat "${2%.json}.err")"
	echo "$1: $result"
	grep -q '"errors":0[,}]' <<<"$result" || fail "$1: bench reported errors"
	grep -q '"timeouts":0[,}]' <<<"$result" ||
		fail "$1: requests did not complete (liveness): $(cat "${2%.json}.err")"
	completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$result")
	[ "${completed:-0}" -gt 0 ] || fail "$1: nothing completed"
}
check "phase 1 (primary killed at 2 s)" "$dir/bench1.json"
max_us=$(sed -n 's/.*"max_us":\([0-9.]*\).*/\1/p' "$dir/bench1.json")
awk "BEGIN { exit !($max_us >= 1000000) }" ||
	fail "phase 1: no request in flight at the kill completed within the window (max_us $max_us)"
check "phase 2 (after the view change)" "$dir/bench2.json"

# The backups moved to a later view together.
for i in 1 2 3; do
	grep -q "entered view [1-9]" "$dir/run/replica-$i.log" ||
		fail "replica $i never entered a new view"
done
killed_at=$(cat "$dir/killed_at")
entered=$(grep -h "entered view" "$dir"/run/replica-[123].log | sort | head -n 1 | cut -d' ' -f1)
echo "killed the primary at $(date -u -d "@$killed_at" +%H:%M:%S.%3N)," \
	"first replica entered the new view at $entered;" \
	"kill to first reply in the new view <= $(awk "BEGIN { printf \"%.0f\", $max_us / 1000 }") ms"
echo "PASS"
