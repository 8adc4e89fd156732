#!/bin/bash
# Run fuzz targets for SECONDS each on their checked-in corpus and print
# the executions reached. Exits non-zero if any target finds a crash, a
# leak, a UBSan report or a broken property (the input is kept under
# BUILD/fuzz/artifacts/ and its path printed).
#
#   test/fuzz/run.sh BUILD SECONDS [TARGET...]   (default: every target)
#
# New inputs the fuzzer finds go to BUILD/fuzz/corpus/<target>/ (kept
# between runs, not checked in; FUZZ_WORK_DIR=DIR puts them in
# DIR/<target>/ instead, and the logs in DIR/logs/ so that a smoke run
# does not overwrite the log a longer run is about to read its counts
# from); test/fuzz/corpus/<target>/ is only read.
set -u
build=${1:?BUILD}
seconds=${2:?SECONDS}
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for bin in "$build"/fuzz/fuzz_*; do
		[ -x "$bin" ] && targets+=("${bin##*/fuzz_}")
	done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets built in $build/fuzz" >&2; exit 1; }

logs=$build/fuzz/logs
[ -z "${FUZZ_WORK_DIR:-}" ] || logs=$FUZZ_WORK_DIR/logs
mkdir -p "$build/fuzz/artifacts" "$logs"
failed=0
printf '%-20s %12s %10s %8s %8s  %s\n' target execs execs/s corpus rss_mb result
for target in "${targets[@]}"; do
	bin=$build/fuzz/fuzz_$target
	seeds=test/fuzz/corpus/$target
	work=${FUZZ_WORK_DIR:-$build/fuzz/corpus}/$target
	log=$logs/$target.log
	if [ ! -x "$bin" ]; then
		printf '%-20s %s\n' "$target" "not built"
		failed=1
		continue
	fi
	mkdir -p "$work" "$seeds"
	# -timeout: one input may take at most 10 s (a hang is a finding);
	# the outer timeout only guards against libFuzzer itself hanging.
	timeout --kill-after=10 $((seconds + 60)) "$bin" \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 \
		-artifact_prefix="$build/fuzz/artifacts/$target-" \
		"$work" "$seeds" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
	corpus=$(ls "$work" | wc -l)
	if [ $rc -eq 0 ]; then
		result=ok
	else
		result="FAILED (exit $rc)"
		failed=1
	fi
	printf '%-20s %12s %10s %8s %8s  %s\n' "$target" "${execs:-?}" \
		"${rate:-?}" "$corpus" "${rss:-?}" "$result"
	if [ $rc -ne 0 ]; then
		echo "---- $log (last lines) ----"
		grep -E 'ERROR|SUMMARY|property failed|runtime error|Test unit written' "$log" | head -n 20
		tail -n 30 "$log"
		echo "----"
	fi
done
exit $failed
