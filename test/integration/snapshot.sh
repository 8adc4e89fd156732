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
#  5. two daemons never share a state directory.
build=${1:-build}
. test/tools/ops-lib.sh
kv=$(ops_tool kv_tool)
config=$(ops_cluster snap unreplicated 1 kv)
state=$dir/snap/state-0
log=$dir/snap.log

snapshot_applied() { ops_status_value "$config" 0 snapshot_applied; }
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
grep -q "truncated: 100 bytes, shorter than the 128-byte header; skipped" "$log" ||
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
echo "PASS"
