#!/bin/bash
# HotStuff resumes from its durable checkpoints (ABI 1.1), with real
# processes: 4 oskrd replicas on UDP loopback, kv app, a state_dir each,
# checkpoint_interval 10. (PBFT's counterpart is part 6 of snapshot.sh.)
#  1. 300 puts; once every replica's newest snapshot is a checkpoint at op
#     300 (the cluster is quiet: all executed everything), kill -9 all
#     four and restart them: each logs "resumed at block height H (op
#     300)" with the same H, the keys are readable and 50 new puts
#     complete;
#  2. kill -9 one replica under load and restart it: it resumes at its
#     own checkpoint (not op 0), fetches only the blocks above it, and
#     ends with the same executed op count as the others;
#  3. state transfer, on a second cluster with retain_blocks 256 and
#     checkpoint_interval 32: kill -9 one replica under load for longer
#     than the others retain blocks, restart it with an EMPTY state_dir:
#     it logs "state transfer: installed the checkpoint", ends with the
#     same executed op count as the others, and the keys written before
#     and during its absence read back.
build=${1:-build}
. test/tools/ops-lib.sh
kv=$(ops_tool kv_tool)
[ -f "$build/plugins/hotstuff.so" ] || skip "hotstuff is not built"

n=4
config=$(OSKR_LOG_LEVEL=info scripts/make-cluster.sh -b "$build" -a kv \
	-o "checkpoint_interval: 10" "$dir/hs" hotstuff $n) ||
	fail "make-cluster failed"
{
	echo "control_socket: $dir/hs/ctl-%i.sock"
	echo "state_dir: $dir/hs/state-%i"
} >>"$config"

# header fields of a snapshot file (daemon/snapshot_store.h, format 2)
file_flags() { od -An -tu4 -j112 -N4 "$1" | tr -d ' '; }
file_checkpoint_op() { od -An -tu8 -j96 -N8 "$1" | tr -d ' '; }
newest_file() { ls "$1"/snapshot-*.bin 2>/dev/null | sort | tail -n 1; }
state_of() { echo "$dir/hs/state-$1"; }
log_of() { echo "$dir/hs-$1.log"; }
executed_of() { ops_status_value "$config" "$1" last_executed; }

pids=()
start_replica() {
	ops_start "$config" "$1" "$(log_of "$1")"
	pids[$1]=$ops_pid
}
kill_replica() {
	kill -KILL "${pids[$1]}"
	wait "${pids[$1]}" 2>/dev/null
}
# the newest snapshot of every replica is a checkpoint at op $1
checkpointed_at() {
	local id f
	for ((id = 0; id < n; id++)); do
		f=$(newest_file "$(state_of $id)")
		[ -n "$f" ] && [ "$(file_flags "$f")" = 1 ] &&
			[ "$(file_checkpoint_op "$f")" = "$1" ] || return 1
	done
}
# "resumed at block height H (op N)" of replica $1's last start
resumed_line() {
	grep "hotstuff r$1: resumed at block height [0-9]* (op [0-9]*)" \
		"$(log_of "$1")" | tail -n 1
}

# 1. the whole cluster
for ((id = 0; id < n; id++)); do
	start_replica $id
done
"$kv" -c "$config" put hs 300 || fail "put hs"
ops_wait 20 checkpointed_at 300 || {
	for ((id = 0; id < n; id++)); do
		f=$(newest_file "$(state_of $id)")
		echo "replica $id: newest ${f:-none} flags $([ -n "$f" ] && file_flags "$f") op $([ -n "$f" ] && file_checkpoint_op "$f")"
	done
	fail "no checkpoint at op 300 on every replica"
}
for ((id = 0; id < n; id++)); do
	kill_replica $id
done
echo "killed all $n hotstuff replicas"
for ((id = 0; id < n; id++)); do
	start_replica $id
done
heights=()
for ((id = 0; id < n; id++)); do
	line=$(resumed_line $id)
	[ -n "$line" ] || fail "replica $id did not resume: $(grep -E 'resum|restored|error' "$(log_of $id)" | tail -n 4)"
	grep -q "(op 300)" <<<"$line" || fail "replica $id: $line"
	heights+=("$(sed 's/.*block height \([0-9]*\).*/\1/' <<<"$line")")
	echo "replica $id: ${line#*info: }"
done
for h in "${heights[@]}"; do
	[ "$h" = "${heights[0]}" ] || fail "replicas resumed at different heights: ${heights[*]}"
done
"$kv" -c "$config" check hs 300 || fail "keys lost after kill -9 of every replica"
"$kv" -c "$config" put after 50 || fail "the resumed cluster takes no writes"
"$kv" -c "$config" check after 50 || fail "writes after the resume not readable"

# 2. one replica, killed under load
"$kv" -c "$config" load bg 30 >"$dir/load.out" 2>&1 &
load=$!
ops_pids+=("$load")
sleep 1
kill_replica 2
sleep 1
start_replica 2
line=$(resumed_line 2)
[ -n "$line" ] || fail "replica 2 did not resume: $(grep -E 'resum|restored|error' "$(log_of 2)" | tail -n 4)"
op=$(sed 's/.*(op \([0-9]*\)).*/\1/' <<<"$line")
[ "$op" -gt 350 ] || fail "replica 2 resumed at op $op, before the load"
echo "replica 2 (killed under load): ${line#*info: }"
sleep 1
kill "$load" 2>/dev/null
wait "$load" 2>/dev/null
# quiet again: every replica executes the same ops
same_executed() {
	local id e first
	first=$(executed_of 0)
	[[ $first =~ ^[0-9]+$ ]] || return 1
	for ((id = 1; id < n; id++)); do
		e=$(executed_of $id)
		[ "$e" = "$first" ] || return 1
	done
}
ops_wait 20 same_executed || {
	for ((id = 0; id < n; id++)); do
		echo "replica $id: executed $(executed_of $id)"
	done
	fail "replica 2 did not catch up"
}
echo "all replicas executed $(executed_of 0) ops"
grep -q "not resuming" "$dir"/hs-*.log && fail "a checkpoint was refused: $(grep -h 'not resuming' "$dir"/hs-*.log)"
"$kv" -c "$config" check hs 300 || fail "keys lost"
for ((id = 0; id < n; id++)); do
	ops_stop "${pids[$id]}" || fail "replica $id exited with status $?"
done

# 3. state transfer: a replica further behind than peers retain blocks
config=$(OSKR_LOG_LEVEL=info scripts/make-cluster.sh -b "$build" -a kv \
	-o "checkpoint_interval: 32, retain_blocks: 256, view_timeout_ms: 50" \
	"$dir/st" hotstuff $n) ||
	fail "make-cluster failed"
{
	echo "control_socket: $dir/st/ctl-%i.sock"
	echo "state_dir: $dir/st/state-%i"
} >>"$config"
log_of() { echo "$dir/st-$1.log"; }
for ((id = 0; id < n; id++)); do
	start_replica $id
done
"$kv" -c "$config" put pre 200 || fail "put pre"
kill_replica 1
echo "killed replica 1"
before=$(ops_status_value "$config" 0 last_committed)
# 4 s of load from 4 clients on the other three (every 4th view waits
# for the dead leader: view_timeout 50 ms): well over retain_blocks (256)
# plus the pruning slack (80) blocks. retain_blocks must cover the blocks
# made between two checkpoints plus those made during one transfer, or
# the laggard, once on the newest checkpoint, cannot fetch the blocks
# above it (docs/hotstuff.md, "State transfer"); 64 was too few for the
# ~500 blocks/s this cluster makes.
loads=()
for c in 0 1 2 3; do
	"$kv" -c "$config" load gone$c 4 >"$dir/load-gone$c.out" 2>&1 &
	loads+=($!)
	ops_pids+=($!)
done
for pid in "${loads[@]}"; do
	wait "$pid" || fail "load without replica 1 failed"
done
echo "while replica 1 was down: $(cat "$dir"/load-gone*.out | tr '\n' ' ')"
committed=$(ops_status_value "$config" 0 last_committed)
echo "replica 0 went from block height $before to $committed"
[ $((committed - before)) -gt 400 ] ||
	fail "only $((committed - before)) blocks while replica 1 was down"
rm -rf "$(state_of 1)"
mkdir -p "$(state_of 1)"
"$kv" -c "$config" load back 2 >"$dir/load-back.out" 2>&1 &
load=$!
ops_pids+=("$load")
start_replica 1
wait "$load" || fail "load after the restart: $(cat "$dir/load-back.out")"
ops_wait 30 same_executed || {
	for ((id = 0; id < n; id++)); do
		echo "replica $id: executed $(executed_of $id)"
	done
	grep -h "state transfer" "$(log_of 1)"
	fail "replica 1 did not catch up"
}
line=$(grep "hotstuff r1: state transfer: installed" "$(log_of 1)" | tail -n 1)
[ -n "$line" ] || fail "replica 1 caught up without a state transfer: $(grep -E 'state transfer|error' "$(log_of 1)" | tail -n 4)"
echo "replica 1 (empty state_dir): ${line#*info: }"
echo "all replicas executed $(executed_of 0) ops"
"$kv" -c "$config" check pre 200 || fail "keys written before lost"
"$kv" -c "$config" put after-transfer 20 || fail "no writes after the transfer"
"$kv" -c "$config" check after-transfer 20 || fail "writes after the transfer not readable"
# replica 1 now takes part: with replica 3 stopped it is needed (n - f)
ops_stop "${pids[3]}" || fail "replica 3 exited with status $?"
"$kv" -c "$config" put needs-1 20 || fail "no progress with replica 1 as one of n - f"
for id in 0 1 2; do
	ops_stop "${pids[$id]}" || fail "replica $id exited with status $?"
done
echo "PASS"
