#!/bin/bash
# Durable application state (unreplicated, kv app, state_dir):
#  1. keys written, more load running, kill -9 once a snapshot covers the
#     keys: after a restart every key is there;
#  2. a graceful stop writes a final snapshot: keys written just before
#     SIGTERM survive;
#  3. the newest snapshot corrupted (one byte): refused with its path and
#     "checksum mismatch", the older one is restored instead;
#  4. every snapshot truncated: all refused, the app starts empty (the
#     keys are gone: nothing invalid was loaded);
#  5. two daemons never share a state directory;
#  6. checkpoints (ABI 1.1, checkpoint_checks below), for PBFT and for
#     HotStuff: a 4-replica cluster under load writes checkpoint
#     snapshots; kill -9 of ALL replicas, restart: every replica resumes
#     the protocol from its checkpoint, the data is intact and the cluster
#     takes new writes; a graceful stop then writes plain snapshots and the
#     protocol restarts from op 0.
build=${1:-build}
. test/tools/ops-lib.sh
kv=$(ops_tool kv_tool)
config=$(ops_cluster snap unreplicated 1 kv)
state=$dir/snap/state-0
log=$dir/snap.log

snapshot_applied() { ops_status_value "$config" 0 snapshot_applied; }
# header fields of a snapshot file (daemon/snapshot_store.h, format 2)
file_version() { od -An -tu4 -j8 -N4 "$1" | tr -d ' '; }
file_flags() { od -An -tu4 -j112 -N4 "$1" | tr -d ' '; }
file_checkpoint_op() { od -An -tu8 -j96 -N8 "$1" | tr -d ' '; }
newest_file() { ls "$1"/snapshot-*.bin 2>/dev/null | sort | tail -n 1; }
covers() { local n; n=$(snapshot_applied); [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge "$1" ]; }

# 1. write under load, kill -9, restart
ops_start "$config" 0 "$log"
replica=$ops_pid
"$kv" -c "$config" put base 300 || fail "put base"
"$kv" -c "$config" load bg 60 >"$dir/load.out" 2>&1 &
load=$!
ops_pids+=("$load")
# the base keys were the first 300 changes: a snapshot at >= 300 has them
ops_wait 20 covers 300 || fail "no snapshot covering the base keys (at $(snapshot_applied))"
sleep 0.5 # the load keeps writing; snapshots keep being taken
kill -KILL "$replica"
wait "$replica" 2>/dev/null
wait "$load" 2>/dev/null
echo "killed under load after $(cat "$dir/load.out" 2>/dev/null || echo '?')"
ls "$state"
ops_start "$config" 0 "$log"
replica=$ops_pid
grep -q "info: restored $state/snapshot-" "$log" || fail "nothing restored: $(tail -n 5 "$log")"
grep "restored" "$log" | tail -n 1
"$kv" -c "$config" check base 300 || fail "keys lost after kill -9"
restored=$(ops_status_value "$config" 0 restored_applied)
[ "$restored" -ge 300 ] || fail "restored_applied $restored < 300"
ls -a "$state" | grep -q '^\.snapshot-' && fail "a temporary snapshot file survived the restart"
# unreplicated declares no checkpoints: the interval snapshots are plain,
# and the restart says the protocol starts from op 0
newest=$(newest_file "$state")
[ "$(file_version "$newest")" = 2 ] || fail "$newest is not format 2"
[ "$(file_flags "$newest")" = 0 ] || fail "$newest is a checkpoint, unreplicated declares none"
grep -q "info: restored $state/snapshot-[0-9]*.bin (not a checkpoint: .*); the protocol starts from op 0" "$log" ||
	fail "no 'protocol starts from op 0' line: $(grep restored "$log" | tail -n 2)"

# 2. graceful stop writes the final state
"$kv" -c "$config" put late 50 || fail "put late"
applied=$(ops_status_value "$config" 0 app_applied)
ops_stop "$replica" || fail "oskrd exited with status $?"
grep -q "snapshot at $applied applied operations is on disk" "$log" || fail "no final snapshot at $applied"
newest=$(ls "$state"/snapshot-*.bin | sort | tail -n 1)
[ "$newest" = "$(printf '%s/snapshot-%020d.bin' "$state" "$applied")" ] ||
	fail "newest file $newest is not snapshot-$applied"
count=$(ls "$state"/snapshot-*.bin | wc -l)
[ "$count" -le 2 ] || fail "$count snapshot files kept (expected at most 2)"
ops_start "$config" 0 "$log"
replica=$ops_pid
"$kv" -c "$config" check late 50 || fail "keys written before SIGTERM lost"
"$kv" -c "$config" check base 300 || fail "base keys lost"
ops_stop "$replica" || fail "oskrd exited with status $?"

# 3. corrupt the newest: refused by checksum, the older one is used
newest=$(ls "$state"/snapshot-*.bin | sort | tail -n 1)
older=$(ls "$state"/snapshot-*.bin | sort | tail -n 2 | head -n 1)
[ "$older" != "$newest" ] || fail "expected two snapshot files"
size=$(stat -c %s "$newest")
printf '\xff' | dd of="$newest" bs=1 seek=$((size - 1)) conv=notrunc status=none
ops_start "$config" 0 "$log"
replica=$ops_pid
grep -q "error: $newest: checksum mismatch: the file is corrupted; skipped, not loaded" "$log" ||
	fail "corruption not reported: $(grep -i snapshot "$log" | tail -n 3)"
grep -q "info: restored $older:" "$log" || fail "the older snapshot was not restored"
echo "corrupted $newest: refused; restored $older"
"$kv" -c "$config" check base 300 || fail "base keys lost"
ops_stop "$replica" || fail "oskrd exited with status $?"

# 4. every file truncated: nothing loaded, the app starts empty
for f in "$state"/snapshot-*.bin; do
	truncate -s 100 "$f"
done
files=$(ls "$state"/snapshot-*.bin | wc -l)
ops_start "$config" 0 "$log"
replica=$ops_pid
grep -q "none of the $files snapshot file(s) is usable; starting with an empty kv app" "$log" ||
	fail "truncated files not reported: $(tail -n 5 "$log")"
grep -q "truncated: 100 bytes, shorter than the 160-byte header; skipped" "$log" ||
	fail "truncation reason not given"
if "$kv" -c "$config" check base 1 2>/dev/null; then
	fail "a key survived although no snapshot was valid"
fi

# 5. the state directory is locked
if "$build/oskrd" -c "$config" -i 0 >"$dir/second.log" 2>&1; then
	fail "a second oskrd started on the same state_dir"
fi
grep -q "state_dir $state is in use by another oskrd (pid $replica)" "$dir/second.log" ||
	fail "lock message: $(cat "$dir/second.log")"
ops_stop "$replica" || fail "oskrd exited with status $?"

# 6. checkpoints, with the protocols that declare them (ABI 1.1): PBFT
# hands the host the application blob of its checkpoint, HotStuff lets the
# host take it (app = NULL)
checkpoint_checks() {
	local p=$1
	if [ ! -f "$build/plugins/$p.so" ]; then
		echo "part 6 skipped for $p: not built"
		return
	fi
	local n=4 id cconfig pids=()
	cconfig=$(ops_cluster "ckpt-$p" "$p" $n kv)
	start_cluster() {
		pids=()
		for ((id = 0; id < n; id++)); do
			ops_start "$cconfig" $id "$dir/ckpt-$p-$id.log"
			pids+=("$ops_pid")
		done
	}
	state_of() { echo "$dir/ckpt-$p/state-$1"; }
	start_cluster
	"$kv" -c "$cconfig" put ck 300 || fail "put ck under $p"
	# every op of the puts is executed at or before this protocol op
	local executed=0 e
	for ((id = 0; id < n; id++)); do
		e=$(ops_status_value "$cconfig" $id last_executed)
		[[ $e =~ ^[0-9]+$ ]] && [ "$e" -gt "$executed" ] && executed=$e
	done
	[ "$executed" -gt 0 ] || fail "$p reports nothing executed after 300 puts"
	"$kv" -c "$cconfig" load ckbg 30 >"$dir/ckpt-$p-load.out" 2>&1 &
	local load=$!
	ops_pids+=("$load")
	# wait until every replica's newest file is a checkpoint at or past
	# the puts (both checkpoint every 100 ops by default)
	covered() {
		local f
		for ((id = 0; id < n; id++)); do
			f=$(newest_file "$(state_of $id)")
			[ -n "$f" ] && [ "$(file_flags "$f")" = 1 ] &&
				[ "$(file_checkpoint_op "$f")" -ge "$executed" ] || return 1
		done
	}
	ops_wait 30 covered || {
		for ((id = 0; id < n; id++)); do
			f=$(newest_file "$(state_of $id)")
			echo "replica $id: newest ${f:-none} flags $([ -n "$f" ] && file_flags "$f") op $([ -n "$f" ] && file_checkpoint_op "$f")"
		done
		fail "no checkpoint snapshot past op $executed on every replica"
	}
	for ((id = 0; id < n; id++)); do
		grep -q "$p declares stable checkpoints" "$dir/ckpt-$p-$id.log" ||
			fail "replica $id did not log that checkpoints took over"
	done
	sleep 0.5 # still under load: more checkpoints, more writes
	for ((id = 0; id < n; id++)); do
		kill -KILL "${pids[$id]}"
	done
	for ((id = 0; id < n; id++)); do
		wait "${pids[$id]}" 2>/dev/null
	done
	kill "$load" 2>/dev/null
	wait "$load" 2>/dev/null
	echo "killed all $n $p replicas under load"

	start_cluster
	local line op
	for ((id = 0; id < n; id++)); do
		line=$(grep "resuming $p from checkpoint at op [0-9]* (file $(state_of $id)/snapshot-" "$dir/ckpt-$p-$id.log" | tail -n 1)
		[ -n "$line" ] || fail "replica $id did not resume from its checkpoint: $(grep -E 'restored|resum|checkpoint' "$dir/ckpt-$p-$id.log" | tail -n 4)"
		op=$(sed 's/.*checkpoint at op \([0-9]*\).*/\1/' <<<"$line")
		[ "$op" -ge "$executed" ] || fail "replica $id resumed at op $op < $executed"
		echo "replica $id: ${line#*info: }"
		# oskrctl status says the same
		local said
		said=$(ops_status_value "$cconfig" $id resumed_from_checkpoint)
		[ "$said" = "$op" ] || fail "replica $id: status resumed_from_checkpoint '$said', log says $op"
		said=$(ops_status_value "$cconfig" $id checkpoint_op)
		[[ $said =~ ^[0-9]+$ ]] && [ "$said" -ge "$op" ] ||
			fail "replica $id: status checkpoint_op '$said' below the resumed $op"
	done
	"$kv" -c "$cconfig" check ck 300 || fail "keys lost after kill -9 of every replica"
	"$kv" -c "$cconfig" put after 50 || fail "the resumed cluster takes no writes"
	"$kv" -c "$cconfig" check after 50 || fail "writes after the resume not readable"

	# a graceful stop writes plain snapshots: the next start is op 0
	for ((id = 0; id < n; id++)); do
		kill -TERM "${pids[$id]}"
	done
	for ((id = 0; id < n; id++)); do
		ops_stop "${pids[$id]}" || fail "replica $id exited with status $?"
		f=$(newest_file "$(state_of $id)")
		[ "$(file_flags "$f")" = 0 ] || fail "replica $id: the stop snapshot $f is a checkpoint"
	done
	start_cluster
	for ((id = 0; id < n; id++)); do
		grep -q "restored $(state_of $id)/snapshot-[0-9]*.bin (not a checkpoint: .*); the protocol starts from op 0" "$dir/ckpt-$p-$id.log" ||
			fail "replica $id: no 'starts from op 0' after a graceful stop"
	done
	"$kv" -c "$cconfig" check ck 300 || fail "keys lost after the graceful stop"
	"$kv" -c "$cconfig" check after 50 || fail "keys lost after the graceful stop"
	for ((id = 0; id < n; id++)); do
		ops_stop "${pids[$id]}" || fail "replica $id exited with status $?"
	done
	echo "$p checkpoints: resumed from them after kill -9, op 0 after a stop"
}
checkpoint_checks pbft
checkpoint_checks hotstuff
echo "PASS"
