#!/bin/bash
# Every libFuzzer target (test/fuzz/, docs/hardening.md) briefly on its
# checked-in corpus: every seed, including the inputs of crashes found and
# fixed, is replayed, then a couple of seconds of fresh fuzzing (into a
# temporary corpus, so the run does not grow with earlier ones). Fails on
# any crash, leak, UBSan report or broken property. About 25 s in all
# (OSKR_FUZZ_SMOKE_SECONDS sets the total fuzzing budget, default 20; each
# target also takes about a second to start and stop).
#
# Skipped, with the reason printed, when clang is not installed (scripts/
# deps.sh installs clang and libclang-rt-14-dev as optional packages).
set -u
build=${1:-build}
cd "$(dirname "$0")/../.."

if ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
	echo "SKIP: ${FUZZ_CC:-clang} is not installed, so the fuzz targets were not built (install clang and libclang-rt-14-dev, or run scripts/deps.sh as root)"
	exit 0
fi
targets=()
for bin in "$build"/fuzz/fuzz_*; do
	[ -x "$bin" ] && targets+=("${bin##*/fuzz_}")
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "FAIL: clang is installed but no fuzz target is built in $build/fuzz (make test-bins builds them)"
	exit 1
fi
# Every target that has a source must have been built.
for src in test/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	case $name in
	pbft_codec) [ -f plugins/pbft/codec.c ] || continue ;;
	hotstuff_codec) [ -f plugins/hotstuff/codec.c ] || continue ;;
	pbft_resume) [ -f plugins/pbft/durable_codec.c ] || continue ;;
	hotstuff_resume) [ -f plugins/hotstuff/durable_codec.c ] || continue ;;
	snapshot_file) [ -f daemon/snapshot_store.c ] || continue ;;
	esac
	[ -x "$build/fuzz/fuzz_$name" ] || {
		echo "FAIL: $build/fuzz/fuzz_$name is not built"
		exit 1
	}
done

budget=${OSKR_FUZZ_SMOKE_SECONDS:-20}
per_target=$((budget / ${#targets[@]}))
[ $per_target -ge 1 ] || per_target=1
work=$(mktemp -d /tmp/oskr-fuzz-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
if FUZZ_WORK_DIR=$work test/fuzz/run.sh "$build" "$per_target" "${targets[@]}"; then
	echo "PASS: ${#targets[@]} fuzz targets, ${per_target} s each"
else
	echo "FAIL: a fuzz target failed (inputs in $build/fuzz/artifacts/)"
	exit 1
fi
