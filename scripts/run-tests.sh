#!/bin/bash
# Run the test suite: every Check suite binary in BUILD/test, then every
# integration script in test/integration. Prints one line per suite and a
# closing "N passed, N failed" line; exits non-zero if anything failed.
#   scripts/run-tests.sh [BUILD] [NAME...]   NAME filters (e.g. udp pbft)
set -u
build=${1:-build}
shift || true
filters=("$@")
export OSKR_BUILD_DIR=$build
# (BUILD may be relative or absolute, e.g. make test B=/tmp/b)
case $build in
/*) export OSKR_PLUGIN_PATH=$build/plugins ;;
*) case $build in
/*) export OSKR_PLUGIN_PATH=$build/plugins ;;
*) export OSKR_PLUGIN_PATH=$PWD/$build/plugins ;;
esac ;;
esac
log_dir=$build/test-logs
mkdir -p "$log_dir"

selected() {
	[ ${#filters[@]} -eq 0 ] && return 0
	local f
	for f in "${filters[@]}"; do
		[[ $1 == *"$f"* ]] && return 0
	done
	return 1
}

passed=0
failed=0
failed_names=()
run_one() {
	local name=$1
	shift
	local start=$SECONDS
	local log=$log_dir/$name.log
	# Every suite is bounded in time: a hang is a failure, not a stuck CI.
	timeout --kill-after=10 "${OSKR_TEST_TIMEOUT:-600}" "$@" >"$log" 2>&1
	local rc=$?
	local summary
	summary=$(grep -E '^[0-9]+%: Checks:|^(PASS|SKIP|FAIL)' "$log" | tail -n 1)
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS %-28s %4ds  %s\n' "$name" $((SECONDS - start)) "$summary"
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		printf 'FAIL %-28s %4ds  exit %d  %s\n' "$name" $((SECONDS - start)) $rc "$summary"
		echo "---- last lines of $log ----"
		tail -n 40 "$log"
		echo "----"
	fi
}

for bin in "$build"/test/test_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	selected "$name" || continue
	run_one "$name" "$bin"
done
for script in test/integration/*.sh; do
	[ -f "$script" ] || continue
	name=integration_$(basename "$script" .sh)
	selected "$name" || continue
	run_one "$name" bash "$script" "$build"
done

echo
echo "suite logs: $log_dir"
[ $failed -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
