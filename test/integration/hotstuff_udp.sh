#!/bin/bash
# HotStuff as real processes: 4 oskrd replicas on UDP loopback, kv app,
# oskr-bench with 4 clients. 2 s in, the leader of the moment (asked of a
# replica through its control socket) is killed with SIGKILL. The run must
# finish with every result correct and no request left outstanding, and a
# second bench run afterwards must still make progress.
set -eu
build=${1:-build}
dir=$(mktemp -d /tmp/oskr-it-hs.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

config=$(scripts/make-cluster.sh -b "$build" -a kv -C "$dir" hotstuff 4)
OSKR_LOG_LEVEL=warn OSKR_CLUSTER_ALLOW_EXIT=1 scripts/cluster.sh -b "$build" -r "$dir/run" "$config" -- \
	bash -c '
		set -u
		build=$1 config=$2 dir=$3
		"$build/oskr-bench" -c "$config" -t 4 -d 6 -w 0 -j >"$dir/during.json" &
		bench=$!
		sleep 2
		pids=($OSKR_CLUSTER_PIDS)
		leader=$("$build/oskrctl" -s "$dir/oskrd-1.sock" status | sed -n "s/^leader: //p")
		case $leader in ""|-1) leader=0 ;; esac
		echo "killing leader of the moment: replica $leader (pid ${pids[$leader]})" >&2
		echo "$leader" >"$dir/killed"
		kill -KILL "${pids[$leader]}"
		wait $bench || echo "bench during the kill exited $?" >&2
		"$build/oskr-bench" -c "$config" -t 4 -d 3 -w 0 -j >"$dir/after.json"
	' _ "$build" "$config" "$dir" || fail "cluster run failed"
for phase in during after; do
	result=$(cat "$dir/$phase.json")
	echo "$phase: $result"
	grep -q '"errors":0' <<<"$result" || fail "$phase: bench reported errors"
	grep -q '"timeouts":0' <<<"$result" || fail "$phase: requests left outstanding"
	completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$result")
	[ "${completed:-0}" -gt 0 ] || fail "$phase: nothing completed"
done
echo "PASS (killed replica $(cat "$dir/killed"))"
