#!/bin/bash
# The conformance kit (BUILD/oskr-plugin-test) on every in-tree protocol
# plugin and on the out-of-tree example (examples/primary-backup, built
# here with its own Makefile against the in-tree headers): seeded fault
# schedules on the sim, safety and liveness checked. A plugin whose .so is
# missing FAILS (it is named); nothing is skipped.
#
#   test/integration/conformance.sh [BUILD]
set -u
build=${1:-build}
kit=$build/oskr-plugin-test
tmp=$(mktemp -d /tmp/oskr-it-conformance.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$kit" ]; then
	echo "FAIL conformance: $kit is not built (make build)"
	exit 1
fi

failed=()
passed=()
missing=()

# run LABEL PLUGIN_SO KIT_ARGS...
run() {
	local label=$1 so=$2
	shift 2
	if [ ! -f "$so" ]; then
		echo "FAIL $label: plugin $so is missing (not built)"
		missing+=("$label ($so)")
		failed+=("$label")
		return
	fi
	echo "==== $label: $kit $* $so"
	# Bounded: a plugin that livelocks the sim is cut off by the kit's
	# event budget, a hang of the kit itself by this timeout.
	if timeout --kill-after=10 300 "$kit" "$@" "$so"; then
		passed+=("$label")
	else
		echo "FAIL $label (the kit's reproduce lines are above)"
		failed+=("$label")
	fi
	echo
}

plugins=$build/plugins

# Unreplicated: one server, f = 0 (no crash tolerated, partitions heal
# through client retransmission); also the signed variant.
run unreplicated "$plugins/unreplicated.so" -n 1 -f 0
run unreplicated-signed "$plugins/unreplicated.so" -n 1 -f 0 -s 1 \
	--options-yaml 'signed: true'
run unreplicated-null "$plugins/unreplicated.so" -n 1 -f 0 -s 1 -a null

# The BFT protocols: n = 3f + 1, any one replica may crash.
for proto in pbft hotstuff; do
	run "$proto" "$plugins/$proto.so" -n 4 -f 1
	run "$proto-null" "$plugins/$proto.so" -n 4 -f 1 -s 1 -a null
done
# Restarted (empty) replicas catch up: state transfer / block fetch.
run pbft-restart "$plugins/pbft.so" -n 4 -f 1 -s 2 -S restart-1,restart-3
run hotstuff-restart "$plugins/hotstuff.so" -n 4 -f 1 -s 2 -S restart-1,restart-3
# Crashed replicas restarted from their last durable checkpoint (ABI 1.1)
# resume there and catch up; small checkpoint intervals so that the kit's
# short runs declare several.
run pbft-resume "$plugins/pbft.so" -n 4 -f 1 -s 2 -S resume \
	--options-yaml 'checkpoint_interval: 10'
run hotstuff-resume "$plugins/hotstuff.so" -n 4 -f 1 -s 2 -S resume \
	--options-yaml 'checkpoint_interval: 8'

# The example, built out of tree by its own Makefile (the SDK install
# path is exercised by sdk_out_of_tree.sh).
example=$tmp/example
if make -s -C examples/primary-backup O="$example" \
	OSKR_CFLAGS="-I$PWD/include" CFLAGS="-O2 -g -Werror" >"$tmp/make.log" 2>&1; then
	pb=(-n 3 -f 1 --faults crash-primary-not-tolerated)
	run primary-backup "$example/primary-backup.so" "${pb[@]}"
	run primary-backup-null "$example/primary-backup.so" "${pb[@]}" -s 1 -a null
	# A tiny log forces state transfer after a partition or a restart;
	# the replicas must then converge.
	run primary-backup-state-transfer "$example/primary-backup.so" "${pb[@]}" \
		-s 2 -S partition,restart --options-yaml 'log_window: 8' --converge
else
	cat "$tmp/make.log"
	echo "FAIL primary-backup: the example does not build"
	failed+=("primary-backup (build)")
fi

# The kit must also catch broken protocols: mutants of the example, each
# with one classic bug. Every one must fail with the expected reason, and
# the reproduce line it prints must replay the same failure.
# mutant NAME EXPECTED SED-SCRIPT KIT_ARGS...
mutant() {
	local name=$1 expected=$2 script=$3
	shift 3
	local dir=$tmp/mutant-$name
	mkdir -p "$dir"
	cp examples/primary-backup/primary_backup.c examples/primary-backup/Makefile "$dir/"
	sed -i "$script" "$dir/primary_backup.c"
	if cmp -s examples/primary-backup/primary_backup.c "$dir/primary_backup.c"; then
		echo "FAIL mutant-$name: the mutation no longer applies (update this script)"
		failed+=("mutant-$name")
		return
	fi
	if ! make -s -C "$dir" OSKR_CFLAGS="-I$PWD/include" >"$dir/make.log" 2>&1; then
		cat "$dir/make.log"
		echo "FAIL mutant-$name: does not build"
		failed+=("mutant-$name")
		return
	fi
	echo "==== mutant-$name (must fail: $expected)"
	local out rc
	out=$(timeout --kill-after=10 300 "$kit" "$@" "$dir/primary-backup.so" 2>&1)
	rc=$?
	grep -E "^(FAIL|PASS|SAFE) |runs:" <<<"$out" | head -n 20
	local line
	line=$(grep -m1 "^  reproduce: " <<<"$out" | sed 's/^  reproduce: //')
	if [ $rc -ne 1 ] || ! grep -q "$expected" <<<"$out" || [ -z "$line" ]; then
		echo "FAIL mutant-$name: the kit did not report '$expected' with a reproduce line (exit $rc)"
		failed+=("mutant-$name")
		return
	fi
	echo "replaying: $line"
	local again
	again=$(eval "timeout --kill-after=10 120 $line" 2>&1)
	rc=$?
	if [ $rc -ne 1 ] || ! grep -q "$expected" <<<"$again"; then
		echo "$again" | tail -n 20
		echo "FAIL mutant-$name: the reproduce line did not replay the failure (exit $rc)"
		failed+=("mutant-$name")
		return
	fi
	passed+=("mutant-$name")
	echo
}
pb=(-n 3 -f 1 --faults crash-primary-not-tolerated -s 1)
# Backups execute a prepare that arrives early: replicas diverge.
mutant out-of-order "safety: replica" \
	's/if (replica->synced \&\& m->seq == replica->executed + 1) {/if (replica->synced \&\& m->seq > replica->executed) {/' \
	"${pb[@]}" -S drop-reorder
# No client table: a retransmitted request executes twice.
mutant no-dedup "exactly once: replica" \
	's/if (client \&\& m->request_number [<=]=* client->request_number) {/if (0) {/' \
	"${pb[@]}" -S duplicate
# The primary never commits: nothing finishes.
mutant no-commit "liveness: 0 of 300" \
	's/while (replica->committed < target) {/while (0 \&\& replica->committed < target) {/' \
	"${pb[@]}" -S none --bound-ms 2000

echo "passed: ${passed[*]:-none}"
[ ${#missing[@]} -eq 0 ] || echo "MISSING plugin .so (counted as failures): ${missing[*]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAIL conformance: ${#failed[@]} failed: ${failed[*]}"
	exit 1
fi
echo "PASS conformance: ${#passed[@]} kit runs passed"
