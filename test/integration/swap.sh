#!/bin/bash
# Protocol swap keeping the application's data (docs/operations.md,
# "Changing the protocol"): a 4-replica kv cluster written under PBFT,
# stopped cleanly, switched to HotStuff by editing `protocol:`, read back
# and written again, then switched to Unreplicated and read back.
# Each stop is the documented procedure: stop clients, wait until every
# replica executed the same operations, stop every replica (each writes
# its final snapshot), check the snapshots hold the same state, edit the
# config, start every replica.
build=${1:-build}
. test/tools/ops-lib.sh
kv=$(ops_tool kv_tool)
for p in pbft hotstuff unreplicated; do
	[ -f "$build/plugins/$p.so" ] || skip "plugin $p is not built"
done
config=$(ops_cluster swap pbft 4 kv)
n=4
replicas=()

start_all() {
	replicas=()
	for ((id = 0; id < n; id++)); do
		ops_start "$config" $id "$dir/replica-$id.log"
		replicas+=("$ops_pid")
	done
}

executed_all() { # the distinct last_executed values, one per line
	for ((id = 0; id < n; id++)); do
		ops_status_value "$config" $id last_executed
	done | sort -u
}
converged() { [ "$(executed_all | wc -l)" -eq 1 ]; }

# stop the cluster cleanly: quiesced, final snapshots, identical states
stop_all() {
	local label=$1
	ops_wait 30 converged || fail "$label: replicas did not converge: $(executed_all | tr '\n' ' ')"
	local pid
	for pid in "${replicas[@]}"; do
		kill -TERM "$pid"
	done
	for pid in "${replicas[@]}"; do
		ops_stop "$pid" || fail "$label: a replica exited with status $?"
	done
	local id digests=""
	for ((id = 0; id < n; id++)); do
		local newest
		newest=$(ls "$dir/swap/state-$id"/snapshot-*.bin 2>/dev/null | sort | tail -n 1)
		[ -n "$newest" ] || fail "$label: replica $id wrote no snapshot"
		# the payload (after the 160-byte header) is the app state
		digests+="$(tail -c +161 "$newest" | sha256sum | cut -c1-16) "
	done
	echo "$label: stopped; state digests per replica: $digests"
	[ "$(tr ' ' '\n' <<<"$digests" | sed '/^$/d' | sort -u | wc -l)" -eq 1 ] ||
		fail "$label: replicas stopped with different states"
}

switch_to() {
	sed -i "s/^  name: .*/  name: $1/" "$config"
	grep -q "^  name: $1$" "$config" || fail "cannot switch the config to $1"
}

start_all
"$kv" -c "$config" put pbft 100 || fail "put under pbft"
stop_all pbft

switch_to hotstuff
start_all
for ((id = 0; id < n; id++)); do
	grep -q "restored .*written by pbft" "$dir/replica-$id.log" ||
		fail "replica $id did not restore the pbft snapshot"
done
"$kv" -c "$config" check pbft 100 || fail "pbft data not readable under hotstuff"
"$kv" -c "$config" put hotstuff 50 || fail "put under hotstuff"
stop_all hotstuff

switch_to unreplicated
start_all
"$kv" -c "$config" check pbft 100 || fail "pbft data not readable under unreplicated"
"$kv" -c "$config" check hotstuff 50 || fail "hotstuff data not readable under unreplicated"
for pid in "${replicas[@]}"; do
	ops_stop "$pid" || fail "a replica exited with status $?"
done
echo "PASS"
