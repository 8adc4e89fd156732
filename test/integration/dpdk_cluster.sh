#!/bin/bash
# Whole clusters on the dpdk transport, as separate processes on DPDK
# virtual devices:
#
#  topology: one Linux bridge, and per process (replica or bench) a network
#  namespace with one end of a veth pair (the other end on the bridge),
#  driven by DPDK's net_af_packet. Every process has its own --file-prefix,
#  --no-huge -m 256 --no-pci, its own -l core (i mod the CPU count) and the
#  idle back-off below, so five polling processes share 2 CPUs.
#
#  1. Unreplicated (1 replica + oskr-bench, null app): the bench completes
#     with "errors":0; then malformed frames (short, wrong ethertype,
#     unknown destination id, truncated payload, random bytes) are sent to
#     the replica from a raw socket: each reason's drop counter (oskrctl
#     metrics) grows by at least what was sent, and a second bench run is
#     served;
#  2. PBFT (4 replicas, kv app: every get is checked against the client's
#     own last put);
#  3. HotStuff (4 replicas, kv app) when BUILD/plugins/hotstuff.so exists;
#  4. Unreplicated over net_memif (point to point, no namespace).
#
# Every replica is stopped with SIGTERM and must exit 0 after the clean
# shutdown path: rx stopped, workers drained, port stopped and closed,
# rte_eal_cleanup() (its log says so), its EAL runtime directory and (memif)
# its socket file gone. At the end the script deletes what it created and
# checks that no namespace, link, socket or runtime directory is left.
#
# Needs root (namespaces, af_packet) and DPDK (pkg-config libdpdk);
# otherwise prints "SKIP: reason" and exits 0. Everything it starts is
# stopped by PID; names carry this shell's PID, so runs do not collide.
# Bounded: every wait has a deadline, ~40-80 s in all on 2 busy CPUs.
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
[ -x "$build/oskrd" ] || fail "$build/oskrd not built (make)"
grep -qa oskr__dpdk_transport "$build/oskrd" ||
	fail "$build/oskrd has no dpdk transport although DPDK is installed: rebuild (make)"
[ -x "$build/oskr-keygen" ] || fail "$build/oskr-keygen not built (make)"
[ -x "$build/oskrctl" ] || fail "$build/oskrctl not built (make)"
case $build in
/*) build_abs=$build ;;
*) build_abs=$PWD/$build ;;
esac
# this build's plugins first (run-tests.sh joins $PWD to an absolute BUILD)
export OSKR_PLUGIN_PATH=$build_abs/plugins${OSKR_PLUGIN_PATH:+:$OSKR_PLUGIN_PATH}

tag=odc$$ # short: interface names are at most 15 bytes
dir=$(mktemp -d /tmp/oskr-it-dpdkc.XXXXXX)
bridge=${tag}b
nodes=()          # namespace suffixes created (r0..r3, c)
declare -A pid_of # process name -> PID, while running
cpus=$(nproc)
started_at=$SECONDS

mac_prefix=02:0d:c0:00:00
. test/tools/netns-lib.sh
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- build: a raw frame sender (oskr-bench has the dpdk backend) ----
mkdir -p "$dir/bin"
bench=$build/oskr-bench
[ -x "$bench" ] || fail "$bench not built (make)"
inject=$dir/bin/raw_inject
cc=${CC:-cc}
warn="-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter -Wno-missing-field-initializers"
cat >"$dir/raw_inject.c" <<'EOF'
/* raw_inject IFACE DST_MAC SRC_MAC DST_ID EACH RANDOM: malformed oskr
 * frames on a packet socket. Prints what it sent, by expected reason. */
#define _GNU_SOURCE
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

static int fd;
static struct sockaddr_ll to;

static int mac(const char *text, uint8_t out[6])
{
	return sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &out[0], &out[1],
		      &out[2], &out[3], &out[4], &out[5]) == 6 ? 0 : -1;
}

static void send_frame(const uint8_t *frame, size_t len)
{
	if (sendto(fd, frame, len, 0, (struct sockaddr *)&to, sizeof(to)) !=
	    (ssize_t)len) {
		perror("sendto");
		exit(1);
	}
	usleep(200); /* a burst would only measure the veth's queue */
}

int main(int argc, char **argv)
{
	uint8_t f[256], dst[6], src[6];
	if (argc != 7 || mac(argv[2], dst) || mac(argv[3], src)) {
		fprintf(stderr, "usage: raw_inject IFACE DST SRC ID EACH RANDOM\n");
		return 2;
	}
	int id = atoi(argv[4]), each = atoi(argv[5]), random = atoi(argv[6]);
	fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only */
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	to.sll_family = AF_PACKET;
	to.sll_ifindex = (int)if_nametoindex(argv[1]);
	to.sll_halen = 6;
	memcpy(to.sll_addr, dst, 6);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	for (int i = 0; i < each; i++) {
		/* short: the Ethernet header only, then ids without length */
		f[12] = 0x88, f[13] = 0xd5;
		send_frame(f, 14);
		f[14] = (uint8_t)id, f[15] = 120;
		send_frame(f, 16);
		/* wrong ethertype, otherwise a fine frame */
		f[12] = 0x88, f[13] = 0xb5;
		f[16] = 0, f[17] = 4;
		send_frame(f, 60);
		/* unknown destination: our MAC, id 99 (no replica, no client) */
		f[12] = 0x88, f[13] = 0xd5;
		f[14] = 99;
		send_frame(f, 60);
		/* truncated: says 1000 bytes, carries 42 */
		f[14] = (uint8_t)id;
		f[16] = 1000 >> 8, f[17] = 1000 & 0xff;
		send_frame(f, 60);
	}
	for (int i = 0; i < random; i++) {
		/* random bytes after a valid Ethernet header */
		uint8_t len = 0;
		if (getrandom(&len, 1, 0) != 1 || getrandom(f + 14, 200, 0) != 200)
			return 1;
		f[12] = 0x88, f[13] = 0xd5;
		send_frame(f, 14 + (size_t)len % 180);
	}
	printf("sent short=%d wrong_type=%d unknown_dest=%d truncated=%d random=%d\n",
	       2 * each, each, each, each, random);
	return 0;
}
EOF
# shellcheck disable=SC2086
"$cc" -std=gnu11 -O2 $warn "$dir/raw_inject.c" -o "$inject" 2>"$dir/build.log" || {
	cat "$dir/build.log"
	fail "cannot build the raw frame sender"
}

# ---- topology: a bridge, a namespace + veth per node ----
add_bridge
for node in r0 r1 r2 r3 c; do
	add_node "$node"
done

"$build/oskr-keygen" -n 4 -o "$dir/keys" >/dev/null || fail "oskr-keygen failed"

# ---- configs: one file per process, the cluster part identical ----
# Idle back-off: a few spins, a few yields, then 50 us naps. Five
# always-spinning processes on 2 CPUs stall each other for tens of ms
# (docs/transport-dpdk.md); with naps an idle poller costs little.
idle=${OSKR_TEST_DPDK_IDLE:-"{spin: 200, yield: 20, sleep_us: 50}"} # override: experiments only
eal_common="--no-pci --no-huge -m 256 --log-level=*:warning --no-telemetry"
# A dpdk message is one Ethernet frame (at most 1494 bytes here). A PBFT
# VIEW-CHANGE carries a prepared certificate per sequence number of the
# watermark window (~272 bytes each with P-256), so the default window of
# 200 (54 KB) cannot be sent, and the plugin refuses to start. A window of
# 4 (checkpoint every 2) fits: 1440 bytes.
declare -A protocol_options=(
	[pbft]="checkpoint_interval: 2, watermark_window: 4"
)
# write_config FILE PROTOCOL N APP EAL
write_config() {
	local file=$1 protocol=$2 n=$3 app=$4 eal=$5 i
	{
		echo "cluster:"
		echo "  f: $(((n - 1) / 3))"
		echo "  replicas:"
		for ((i = 0; i < n; i++)); do
			echo "    - mac: $(mac_of "r$i")%$i"
			echo "      public_key: keys/replica-$i.pub"
		done
		echo "replica:"
		echo "  private_key: keys/replica-%i.key"
		echo "protocol:"
		echo "  name: $protocol"
		[ -n "${protocol_options[$protocol]:-}" ] &&
			echo "  options: {${protocol_options[$protocol]}}"
		echo "app: $app"
		echo "transport:"
		echo "  kind: dpdk"
		echo "  eal: $eal"
		echo "  idle: $idle"
		echo "workers: 2"
		echo "control_socket: $dir/ctl-%i.sock"
		echo "log_level: info"
	} >"$file"
}
# af_packet_eal NODE: EAL arguments of the process on NODE
af_packet_eal() {
	local node=$1 core
	case $1 in
	c) core=$((n_replicas % cpus)) ;;
	r*) core=$((${1#r} % cpus)) ;;
	esac
	echo "-l $core $eal_common --file-prefix=$tag-$node --vdev=net_af_packet0,iface=$tag$node"
}

# start NAME NS CONFIG ID: one oskrd, in namespace NS ("" = this one)
start() {
	local name=$1 ns=$2 config=$3 id=$4
	if [ -n "$ns" ]; then
		ip netns exec "$ns" "$build/oskrd" -c "$config" -i "$id" \
			>"$dir/$name.log" 2>&1 &
	else
		"$build/oskrd" -c "$config" -i "$id" >"$dir/$name.log" 2>&1 &
	fi
	pid_of[$name]=$!
}
# wait_ready NAME...: each logs " ready: " (EAL took 21 s once under load)
wait_ready() {
	local name deadline=$((SECONDS + 60))
	for name in "$@"; do
		until grep -q " ready: " "$dir/$name.log" 2>/dev/null; do
			if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
				tail -n 20 "$dir/$name.log"
				fail "$name exited during start-up"
			fi
			[ $SECONDS -lt $deadline ] || {
				tail -n 20 "$dir/$name.log"
				fail "$name not ready after 60 s"
			}
			sleep 0.1
		done
	done
}
# stop NAME PREFIX [SOCKET]: SIGTERM, exit 0 after the clean shutdown path,
# nothing left behind
stop() {
	local name=$1 prefix=$2 socket=${3:-} pid=${pid_of[$1]} rc=0
	kill -TERM "$pid"
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid"
		unset "pid_of[$name]"
		tail -n 20 "$dir/$name.log"
		fail "$name did not stop within 20 s of SIGTERM"
	fi
	wait "$pid" || rc=$?
	unset "pid_of[$name]"
	if [ $rc -ne 0 ]; then
		tail -n 20 "$dir/$name.log"
		fail "$name exited $rc after SIGTERM (expected 0)"
	fi
	grep -q "port .* stopped and closed, EAL cleaned up" "$dir/$name.log" || {
		tail -n 20 "$dir/$name.log"
		fail "$name: no clean port shutdown in its log"
	}
	[ -e "/var/run/dpdk/$prefix" ] && fail "$name left /var/run/dpdk/$prefix"
	[ -n "$socket" ] && [ -e "$socket" ] && fail "$name left its memif socket $socket"
	if grep -q "still held" "$dir/$name.log"; then
		grep "still held" "$dir/$name.log"
		fail "$name: mbufs still held at close (a buffer leaked)"
	fi
	return 0
}
# run_bench NAME NS CONFIG ARGS...: oskr-bench must complete, correctly
run_bench() {
	local name=$1 ns=$2 config=$3 out=$dir/$1.json rc=0
	shift 3
	if [ -n "$ns" ]; then
		timeout -k 5 60 ip netns exec "$ns" "$bench" -c "$config" "$@" -j \
			>"$out" 2>"$dir/$name.err" || rc=$?
	else
		timeout -k 5 60 "$bench" -c "$config" "$@" -j >"$out" 2>"$dir/$name.err" || rc=$?
	fi
	local result
	result=$(tail -n 1 "$out")
	if [ $rc -ne 0 ] || ! grep -q '"errors":0[,}]' <<<"$result" ||
		! grep -q '"timeouts":0[,}]' <<<"$result"; then
		echo "bench: $result"
		tail -n 20 "$dir/$name.err"
		local log
		for log in "$dir"/*-r*.log; do
			[ -f "$log" ] && { echo "--- $log"; tail -n 8 "$log"; }
		done
		fail "$name: oskr-bench exit $rc, wrong results or requests never completed"
	fi
	local completed
	completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$result")
	[ "${completed:-0}" -gt 0 ] || fail "$name: no request completed"
	local summary
	summary=$(sed -n 's/.*"completed":\([0-9]*\),"ops_per_s":\([0-9.]*\),"p50_us":\([0-9.]*\).*"max_us":\([0-9.]*\).*/completed=\1 ops_per_s=\2 p50_us=\3 max_us=\4/p' <<<"$result")
	echo "$name: $summary"
	results+=("$name $summary")
}
# drops NAME: the replica's drop counters, "reason value" per line
drops() {
	"$build/oskrctl" -s "$dir/ctl-0.sock" -t 10 metrics 2>/dev/null |
		sed -n 's/^oskr_drops_total{reason="\([a-z_]*\)"} \([0-9]*\)$/\1 \2/p'
}
drop_count() { # REASON FILE
	local value
	value=$(awk -v r="$1" '$1 == r { print $2 }' "$2")
	echo "${value:-0}"
}

results=()

# ---- 1. Unreplicated, 1 replica + bench, malformed frames ----
n_replicas=1
echo "== unreplicated over af_packet (1 replica + bench)"
write_config "$dir/unrep-r0.yaml" unreplicated 1 null "$(af_packet_eal r0)"
write_config "$dir/unrep-c.yaml" unreplicated 1 null "$(af_packet_eal c)"
start unrep-r0 "$tag-r0" "$dir/unrep-r0.yaml" 0
wait_ready unrep-r0
run_bench unrep-bench "$tag-c" "$dir/unrep-c.yaml" -t 2 -d 2 -w 1

drops >"$dir/drops.before"
each=20
random=200
sent=$(ip netns exec "$tag-c" "$inject" "${tag}c" "$(mac_of r0)" "$(mac_of c)" 0 $each $random) ||
	fail "raw frame sender failed"
echo "injected: $sent"
# The replica's rx thread counts what it polls; give it a moment.
for _ in $(seq 50); do
	drops >"$dir/drops.after"
	[ "$(drop_count truncated "$dir/drops.after")" -ge \
		$(($(drop_count truncated "$dir/drops.before") + each)) ] && break
	sleep 0.1
done
line="drops:"
for reason_count in short:$((2 * each)) wrong_type:$each unknown_dest:$each truncated:$each; do
	reason=${reason_count%%:*}
	want=${reason_count#*:}
	got=$(($(drop_count "$reason" "$dir/drops.after") - $(drop_count "$reason" "$dir/drops.before")))
	line+=" $reason=+$got"
	[ "$got" -ge "$want" ] || {
		cat "$dir/drops.after"
		fail "malformed frames: drop_$reason grew by $got, sent $want"
	}
done
echo "$line (random frames: protocol-level drops or errors, never a crash)"
kill -0 "${pid_of[unrep-r0]}" 2>/dev/null || fail "the replica died after the malformed frames"
run_bench unrep-bench-after-injection "$tag-c" "$dir/unrep-c.yaml" -t 1 -d 1 -w 0
stop unrep-r0 "$tag-r0"

# ---- 2./3. PBFT and HotStuff, 4 replicas + bench, kv app ----
n_replicas=4
protocols=(pbft)
if [ -f "$build/plugins/hotstuff.so" ]; then
	protocols+=(hotstuff)
else
	echo "note: $build/plugins/hotstuff.so not built: HotStuff not run"
fi
for protocol in "${protocols[@]}"; do
	echo "== $protocol over af_packet (4 replicas + bench, kv app)"
	names=()
	for i in 0 1 2 3; do
		write_config "$dir/$protocol-r$i.yaml" "$protocol" 4 kv "$(af_packet_eal "r$i")"
		start "$protocol-r$i" "$tag-r$i" "$dir/$protocol-r$i.yaml" "$i"
		names+=("$protocol-r$i")
	done
	write_config "$dir/$protocol-c.yaml" "$protocol" 4 kv "$(af_packet_eal c)"
	wait_ready "${names[@]}"
	run_bench "$protocol-bench" "$tag-c" "$dir/$protocol-c.yaml" -t 2 -d 3 -w 1
	for i in 0 1 2 3; do
		kill -0 "${pid_of[$protocol-r$i]}" 2>/dev/null || fail "$protocol-r$i died during the run"
	done
	for i in 0 1 2 3; do
		stop "$protocol-r$i" "$tag-r$i"
	done
done

# ---- 4. Unreplicated over memif (point to point) ----
echo "== unreplicated over memif (1 replica + bench)"
n_replicas=1
sock=$dir/memif.sock
write_config "$dir/memif-r0.yaml" unreplicated 1 null \
	"-l 0 $eal_common --file-prefix=$tag-m0 --vdev=net_memif0,role=server,socket=$sock,socket-abstract=no"
write_config "$dir/memif-c.yaml" unreplicated 1 null \
	"-l $((1 % cpus)) $eal_common --file-prefix=$tag-mc --vdev=net_memif0,role=client,socket=$sock,socket-abstract=no"
start memif-r0 "" "$dir/memif-r0.yaml" 0
wait_ready memif-r0
[ -S "$sock" ] || fail "memif server socket $sock missing"
run_bench memif-bench "" "$dir/memif-c.yaml" -t 2 -d 2 -w 1
stop memif-r0 "$tag-m0" "$sock"

# ---- nothing left behind ----
# Every process has exited by now: the benches too cleaned up after
# themselves (EAL runtime directories), before teardown would remove them.
left=$(ls -d /var/run/dpdk/"$tag"-* 2>/dev/null)
[ -z "$left" ] || fail "EAL runtime directories left: $left"
teardown
leftover=$(ip netns list | grep -c "^$tag-")
[ "$leftover" -eq 0 ] || fail "$leftover network namespace(s) $tag-* left"
ip -o link show | grep -q ": $tag" && fail "links $tag* left"
ls "$dir"/*.sock >/dev/null 2>&1 && fail "sockets left in $dir: $(ls "$dir"/*.sock)"

echo
for line in "${results[@]}"; do
	echo "RESULT $line"
done
echo "PASS dpdk_cluster: unreplicated, ${protocols[*]} on af_packet + bridge, unreplicated on memif; malformed frames dropped and counted; clean SIGTERM shutdown ($((SECONDS - started_at)) s)"
