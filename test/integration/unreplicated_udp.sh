#!/bin/bash
# Unreplicated as real processes: one oskrd over UDP loopback with the KV
# app, and oskr-bench with 4 clients; the bench checks every get returns
# that client's last put, and exits non-zero on any wrong result. Then the
# signed variant. Also checks that --check-config names file:line:col for
# a broken file.
set -eu
build=${1:-build}
dir=$(mktemp -d /tmp/oskr-it-unrep.XXXXXX)
trap 'rm -rf "$dir"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

for variant in plain signed; do
	options=
	[ $variant = signed ] && options="signed: true"
	config=$(scripts/make-cluster.sh -b "$build" -a kv -o "$options" "$dir/$variant" unreplicated 1)
	out=$(OSKR_LOG_LEVEL=warn scripts/cluster.sh -b "$build" "$config" -- \
		"$build/oskr-bench" -c "$config" -t 4 -d 1 -w 0.2 -j) ||
		fail "$variant: cluster run failed: $out"
	echo "$variant: $out"
	grep -q '"errors":0' <<<"$out" || fail "$variant: bench reported errors"
	completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$out")
	[ "${completed:-0}" -gt 0 ] || fail "$variant: nothing completed"
done

# A broken config is reported as file:line:col by --check-config.
broken=$dir/broken.yaml
sed 's/^workers: .*/workers: lots/' "$dir/plain/config.yaml" >"$broken"
if msg=$("$build/oskrd" -c "$broken" --check-config 2>&1); then
	fail "--check-config accepted a broken file"
fi
line=$(grep -n '^workers:' "$broken" | cut -d: -f1)
grep -q "^$broken:$line:[0-9]*: " <<<"$msg" || fail "no file:line:col in: $msg"
echo "check-config: $msg"
echo "PASS"
