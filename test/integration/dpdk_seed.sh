#!/bin/bash
# The seed's way of running, on the dpdk transport:
#
#  - its plain-text cluster file, DIR/shard0.config:
#        f 1
#        replica 02:0d:5e:00:00:00%0      (one line per replica)
#        multicast 01:00:5e:00:00:01%255
#    with the keys next to it as DIR/shard0-N.pem, made as the seed made
#    them (openssl ecparam -name secp256k1 -genkey -noout | openssl pkcs8
#    -topk8 -nocrypt), mode 0600;
#  - its command shapes: `oskrd -m PROTOCOL -c DIR/shard0 -i N` (the
#    file is found as DIR/shard0.config) and
#    `oskr-bench -m PROTOCOL -c DIR/shard0 -t 2 -d 2`;
#  - EAL arguments, which the seed's file does not carry, from the
#    environment: OSKR_EAL_ARGS (docs/transport-dpdk.md).
#
# Runs, each replica and the bench in its own network namespace on a Linux
# bridge (net_af_packet over veth):
#  1. Unreplicated, DIR/shard1 (`f 0`, one replica);
#  2. PBFT, DIR/shard0 (4 replicas). The seed's format has no place for
#     protocol options: PBFT picks a watermark window whose VIEW-CHANGE
#     fits one Ethernet frame by itself (docs/transport-dpdk.md, "One
#     message, one frame"); the bench must complete correctly;
#  3. HotStuff, DIR/shard0, when BUILD/plugins/hotstuff.so exists.
# Every replica must exit 0 on SIGTERM, leaving no EAL runtime directory.
#
# Needs root and DPDK (else "SKIP: reason", exit 0) and the openssl command
# (Debian package openssl, in scripts/deps.sh). Everything it starts is
# stopped by PID; the namespaces, links and files it made are removed, also
# on failure. Bounded: every wait has a deadline.
set -u
build=${1:-${OSKR_BUILD_DIR:-build}}

skip() {
	echo "SKIP: $*"
	exit 0
}
fail() {
	echo "FAIL: $*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || skip "not root: network namespaces and af_packet need root"
command -v pkg-config >/dev/null || skip "pkg-config missing, cannot look for DPDK"
pkg-config --exists libdpdk 2>/dev/null || skip "DPDK missing (pkg-config libdpdk; apt-get install dpdk-dev libdpdk-dev)"
command -v ip >/dev/null || fail "iproute2 (ip) missing: scripts/deps.sh installs it"
command -v openssl >/dev/null || fail "openssl command missing: scripts/deps.sh installs it (package openssl)"
[ -x "$build/oskrd" ] || fail "$build/oskrd not built (make)"
grep -qa oskr__dpdk_transport "$build/oskrd" ||
	fail "$build/oskrd has no dpdk transport although DPDK is installed: rebuild (make)"
case $build in
/*) build_abs=$build ;;
*) build_abs=$PWD/$build ;;
esac
# this build's plugins first (run-tests.sh joins $PWD to an absolute BUILD)
export OSKR_PLUGIN_PATH=$build_abs/plugins${OSKR_PLUGIN_PATH:+:$OSKR_PLUGIN_PATH}
unset OSKR_EAL_ARGS # set per process below

tag=ods$$ # short: interface names are at most 15 bytes
dir=$(mktemp -d /tmp/oskr-it-dpdks.XXXXXX)
bridge=${tag}b
nodes=()
declare -A pid_of
cpus=$(nproc)
started_at=$SECONDS

mac_prefix=02:0d:5e:00:00
. test/tools/netns-lib.sh
trap cleanup EXIT
trap 'exit 1' INT TERM

# oskr-bench is linked with the dpdk backend by the Makefile.
bench=$build/oskr-bench
[ -x "$bench" ] || fail "$bench not built (make)"

# ---- topology: a bridge, a namespace + veth per node ----
add_bridge
for node in r0 r1 r2 r3 c; do
	add_node "$node"
done

# ---- the seed's files ----
seed_key() { # FILE: a secp256k1 key as the seed made them
	openssl ecparam -name secp256k1 -genkey -noout |
		openssl pkcs8 -topk8 -nocrypt -out "$1" || fail "openssl cannot make $1"
	chmod 600 "$1"
}
{
	echo "f 1"
	for i in 0 1 2 3; do
		echo "replica $(mac_of "r$i")%$i"
	done
	echo "multicast 01:00:5e:00:00:01%255"
} >"$dir/shard0.config"
{
	echo "f 0"
	echo "replica $(mac_of r0)%0"
} >"$dir/shard1.config"
for i in 0 1 2 3; do
	seed_key "$dir/shard0-$i.pem"
done
seed_key "$dir/shard1-0.pem"
"$build/oskrd" -m pbft -c "$dir/shard0" -i 0 --check-config ||
	fail "oskrd --check-config refuses the seed file"

# eal_of NODE: the process's EAL arguments (OSKR_EAL_ARGS)
eal_of() {
	local core
	case $1 in
	c) core=$((4 % cpus)) ;;
	r*) core=$((${1#r} % cpus)) ;;
	esac
	echo "-l $core --no-pci --no-huge -m 256 --log-level=*:warning --no-telemetry --file-prefix=$tag-$1 --vdev=net_af_packet0,iface=$tag$1"
}
# start_cluster PROTOCOL SHARD N: `oskrd -m PROTOCOL -c DIR/SHARD -i N`
# per replica; returns 1 (with $refusal set) if a replica exits during
# start-up
start_cluster() {
	local protocol=$1 shard=$2 n=$3 i name deadline=$((SECONDS + 60))
	for ((i = 0; i < n; i++)); do
		name=$protocol-r$i
		OSKR_EAL_ARGS=$(eal_of "r$i") ip netns exec "$tag-r$i" \
			"$build/oskrd" -m "$protocol" -c "$dir/$shard" -i "$i" \
			>"$dir/$name.log" 2>&1 &
		pid_of[$name]=$!
	done
	for ((i = 0; i < n; i++)); do
		name=$protocol-r$i
		until grep -q " ready: " "$dir/$name.log" 2>/dev/null; do
			if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
				wait "${pid_of[$name]}"
				unset "pid_of[$name]"
				refusal=$(grep -m1 "error" "$dir/$name.log")
				return 1
			fi
			[ $SECONDS -lt $deadline ] || {
				tail -n 20 "$dir/$name.log"
				fail "$name not ready after 60 s"
			}
			sleep 0.1
		done
	done
	return 0
}
# stop_cluster PROTOCOL N: SIGTERM, exit 0, clean port shutdown
stop_cluster() {
	local protocol=$1 n=$2 i name rc
	for ((i = 0; i < n; i++)); do
		kill -TERM "${pid_of[$protocol-r$i]}"
	done
	for ((i = 0; i < n; i++)); do
		name=$protocol-r$i
		rc=0
		for _ in $(seq 200); do
			kill -0 "${pid_of[$name]}" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "${pid_of[$name]}" 2>/dev/null && fail "$name did not stop within 20 s of SIGTERM"
		wait "${pid_of[$name]}" || rc=$?
		unset "pid_of[$name]"
		[ $rc -eq 0 ] || { tail -n 20 "$dir/$name.log"; fail "$name exited $rc after SIGTERM"; }
		grep -q "stopped and closed, EAL cleaned up" "$dir/$name.log" ||
			fail "$name: no clean port shutdown in its log"
		[ -e "/var/run/dpdk/$tag-r$i" ] && fail "$name left /var/run/dpdk/$tag-r$i"
	done
	return 0
}
# seed_bench PROTOCOL SHARD: the seed's client shape, must be correct
seed_bench() {
	local protocol=$1 shard=$2 rc=0 out=$dir/$1-bench.out
	echo "\$ oskr-bench -m $protocol -c DIR/$shard -t 2 -d 2"
	OSKR_EAL_ARGS=$(eal_of c) timeout -k 5 60 ip netns exec "$tag-c" \
		"$bench" -m "$protocol" -c "$dir/$shard" -t 2 -d 2 \
		>"$out" 2>"$dir/$protocol-bench.err" || rc=$?
	head -n 2 "$out"
	local json
	json=$(grep '^{' "$out")
	if [ $rc -ne 0 ] || ! grep -q '"errors":0[,}]' <<<"$json" ||
		! grep -q '"timeouts":0[,}]' <<<"$json"; then
		tail -n 20 "$dir/$protocol-bench.err"
		fail "$protocol: oskr-bench exit $rc, wrong results or requests never completed"
	fi
	local completed
	completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$json")
	[ "${completed:-0}" -gt 0 ] || fail "$protocol: no request completed"
	results+=("$protocol completed=$completed")
}

results=()

# ---- 1. Unreplicated: DIR/shard1, one replica ----
echo "== unreplicated: oskrd -m unreplicated -c DIR/shard1 -i 0"
start_cluster unreplicated shard1 1 || fail "unreplicated refused to start: $refusal"
seed_bench unreplicated shard1
stop_cluster unreplicated 1

# ---- 2./3. PBFT and HotStuff: DIR/shard0, four replicas ----
protocols=(pbft)
if [ -f "$build/plugins/hotstuff.so" ]; then
	protocols+=(hotstuff)
else
	echo "note: $build/plugins/hotstuff.so not built: HotStuff not run"
fi
for protocol in "${protocols[@]}"; do
	echo "== $protocol: oskrd -m $protocol -c DIR/shard0 -i 0..3"
	if ! start_cluster "$protocol" shard0 4; then
		stop_all
		rm -rf /var/run/dpdk/"$tag"-r*
		fail "$protocol refused to start: $refusal"
	fi
	seed_bench "$protocol" shard0
	stop_cluster "$protocol" 4
done

teardown
[ "$(ip netns list | grep -c "^$tag-")" -eq 0 ] || fail "network namespaces $tag-* left"
ip -o link show | grep -q ": $tag" && fail "links $tag* left"

echo
for line in "${results[@]}"; do
	echo "RESULT $line"
done
echo "PASS dpdk_seed: seed cluster files and -m/-c/-i, -m/-c/-t/-d shapes over af_packet: ${results[*]} ($((SECONDS - started_at)) s)"
