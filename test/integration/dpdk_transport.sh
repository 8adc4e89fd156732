#!/bin/bash
# The dpdk transport for real, across processes, on DPDK virtual devices:
#  1. net_memif between two processes (default queues; the server answers
#     from tx slot 2 of 4, which share memif's one queue);
#  2. net_memif with 2 rx / 2 tx queues on both ends (software-hash handoff
#     between the server's 2 rx threads) and 4 client transports in one
#     process sharing the port, pinging concurrently (oskr-bench's shape);
#     correctness only: two rx threads sharing this machine's CPUs hand
#     frames over at scheduler speed, so its latency means nothing here;
#  3. net_af_packet over a veth pair between two network namespaces this
#     script creates, server id 300 (two-byte id encoding both ways);
#  4. net_af_packet through a Linux bridge (how n replicas share a link).
# Before those, start-up failures are checked for their message, exit
# status and leftovers.
# Each run checks every echo is intact (sizes up to the largest message),
# malformed frames are dropped and counted by reason while the server keeps
# answering, and the server exits cleanly (stop, close, EAL cleanup) on
# SIGTERM. Round trip and flood figures are printed, not asserted.
#
# Needs root (af_packet, network namespaces) and DPDK (pkg-config libdpdk);
# otherwise prints "SKIP: reason" and exits 0. Everything it starts is
# stopped by PID, and the namespaces, veth pair, socket files and EAL
# runtime directories it created are removed, also on failure.
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

[ "$(id -u)" -eq 0 ] || skip "not root: af_packet over veth in network namespaces needs root"
command -v pkg-config >/dev/null || skip "pkg-config missing"
pkg-config --exists libdpdk 2>/dev/null || skip "DPDK missing (pkg-config libdpdk; apt-get install dpdk-dev libdpdk-dev)"
command -v ip >/dev/null || skip "iproute2 (ip) missing"

tag=oskrit$$
dir=$(mktemp -d /tmp/oskr-it-dpdk.XXXXXX)
ns_a=$tag-a
ns_b=$tag-b
veth_a=${tag}a
veth_b=${tag}b
server_pid=

cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	ip netns del "$ns_a" 2>/dev/null
	ip netns del "$ns_b" 2>/dev/null
	ip link del "$veth_a" 2>/dev/null
	ip link del "${veth_a}p" 2>/dev/null
	ip link del "${veth_b}p" 2>/dev/null
	ip link del "${tag}br" 2>/dev/null
	rm -rf "$dir" /var/run/dpdk/"$tag"-*
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- build the harness (the transport linked directly) ----
harness=$build/test/dpdk/dpdk_pingpong
mkdir -p "$(dirname "$harness")"
cc=${CC:-cc}
# shellcheck disable=SC2046
if ! "$cc" -std=gnu11 -pthread -O2 -g -Wall -Wextra -Werror -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
	-Wno-missing-field-initializers -Iinclude -I. \
	$(pkg-config --cflags libdpdk) -DOSKR_HAVE_DPDK \
	daemon/log.c daemon/buf.c transport/frame.c transport/counters.c \
	transport/dpdk.c \
	test/dpdk/dpdk_pingpong.c $(pkg-config --libs libdpdk) \
	-o "$harness" 2>"$dir/build.log"; then
	cat "$dir/build.log"
	fail "cannot build the harness"
fi

eal_common="--no-pci --no-huge -m 256 --log-level=*:warning --no-telemetry"
results=()

# run_pair NAME SERVER_PREFIX SERVER_EAL SERVER_ARGS CLIENT_PREFIX CLIENT_EAL
#          CLIENT_ARGS
# SERVER_PREFIX / CLIENT_PREFIX run the process (e.g. "ip netns exec NS").
run_pair() {
	local name=$1 sprefix=$2 seal=$3 sargs=$4 cprefix=$5 ceal=$6 cargs=$7
	local out=$dir/$name
	echo "== $name"
	# shellcheck disable=SC2086
	$sprefix "$harness" server --eal "$seal" $sargs --max-seconds 240 \
		>"$out.server.out" 2>"$out.server.err" &
	server_pid=$!
	local ready=
	for _ in $(seq 600); do # EAL start-up took 21 s once under load
		grep -q '^READY' "$out.server.out" 2>/dev/null && ready=1 && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$ready" ]; then
		cat "$out.server.out" "$out.server.err"
		fail "$name: server did not become ready"
	fi
	cat "$out.server.out"
	local client_rc=0
	# shellcheck disable=SC2086
	timeout -k 5 200 $cprefix "$harness" client --eal "$ceal" $cargs \
		--max-seconds 190 --label "$name" \
		>"$out.client.out" 2>"$out.client.err" || client_rc=$?
	cat "$out.client.out"
	kill -TERM "$server_pid" 2>/dev/null
	local server_rc=0
	for _ in $(seq 150); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid"
	wait "$server_pid" || server_rc=$?
	server_pid=
	grep '^server:' "$out.server.out"

	if [ $client_rc -ne 0 ] || ! grep -q "^PASSED $name" "$out.client.out"; then
		echo "---- client stderr"
		tail -n 20 "$out.client.err"
		echo "---- server stderr"
		tail -n 20 "$out.server.err"
		fail "$name: client checks failed (exit $client_rc)"
	fi
	if ! grep -q '^server: clean exit' "$out.server.out"; then
		tail -n 20 "$out.server.err"
		# DPDK-NOTES: a memif server crashed once as its client
		# disconnected (not reproduced). Report it; fail elsewhere.
		case $name in
		memif*) echo "WARN: $name: server died after its client finished (exit $server_rc); known memif quirk" ;;
		*) fail "$name: server did not exit cleanly (exit $server_rc)" ;;
		esac
	elif [ $server_rc -ne 0 ]; then
		fail "$name: server exit status $server_rc"
	fi
	if grep -q 'still held' "$out.server.err" "$out.client.err"; then
		grep 'still held' "$out.server.err" "$out.client.err"
		fail "$name: mbufs still held at close (a buffer leaked)"
	fi
	local rtt
	rtt=$(sed -n 's/.*rtt_64B .* p50_us=\([0-9.]*\).*/\1/p' "$out.client.out")
	local flood
	flood=$(sed -n 's/.*flood_64B .* recv_mpps=\([0-9.]*\).*/\1/p' "$out.client.out")
	local line=$name
	[ -n "$rtt" ] && line+=" rtt_p50=${rtt}us"
	[ -n "$flood" ] && line+=" flood=${flood}Mpps"
	results+=("$line")
}

# ---- 0. start-up failures: DPDK's reason plus a hint, exit status 2,
# nothing left behind (EAL runtime directory, socket file) ----
# expect_failure NAME TEXT EAL [ARGS...]
expect_failure() {
	local name=$1 text=$2 eal=$3
	shift 3
	local out=$dir/fail-$name.out rc=0
	timeout -k 5 60 "$harness" server --self 02:00:00:00:00:0a%0 \
		--max-seconds 5 --eal "$eal" "$@" >"$out" 2>&1 || rc=$?
	[ $rc -eq 2 ] || { cat "$out"; fail "start-up failure '$name': exit $rc, expected 2"; }
	grep -q -- "$text" "$out" || { cat "$out"; fail "start-up failure '$name': no '$text' in the message"; }
	ls -d /var/run/dpdk/"$tag"-f* >/dev/null 2>&1 && fail "start-up failure '$name' left /var/run/dpdk/$tag-f*"
	echo "start-up failure '$name': $(grep -o 'open failed: .*' "$out" | cut -c1-110)…"
}
memif_server=net_memif0,role=server,socket-abstract=no,socket=
expect_failure port-name "no port named 'net_nosuch0'" \
	"-l 0 $eal_common --file-prefix=$tag-f1 --vdev=${memif_server}$dir/f1.sock" --port net_nosuch0
expect_failure vdev-probe "EAL found no port" \
	"-l 0 $eal_common --file-prefix=$tag-f2 --vdev=net_af_packet0,iface=${tag}none"
expect_failure pool "hint: raise EAL -m" \
	"-l 0 --no-pci --no-huge -m 16 --log-level=*:warning --file-prefix=$tag-f3 --vdev=${memif_server}$dir/f3.sock"
expect_failure no-huge-in-memory "rejects --no-huge together with --in-memory" \
	"-l 0 --no-pci --no-huge --in-memory --log-level=*:warning --vdev=${memif_server}$dir/f4.sock"
touch "$dir/stale.sock"
expect_failure stale-memif-socket "left by a crashed server" \
	"-l 0 $eal_common --file-prefix=$tag-f5 --vdev=${memif_server}$dir/stale.sock"
rm -f "$dir/stale.sock"
[ -z "$(ls "$dir"/f*.sock 2>/dev/null)" ] || fail "a failed start left a memif socket file"

# ---- 1. memif, default queues ----
sock=$dir/memif1.sock
run_pair memif "" \
	"-l 0 $eal_common --file-prefix=$tag-m1s --vdev=net_memif0,role=server,socket=$sock,socket-abstract=no" \
	"--self 02:00:00:00:00:0a%0 --echo-slot 2" \
	"" \
	"-l 1 $eal_common --file-prefix=$tag-m1c --vdev=net_memif0,role=client,socket=$sock,socket-abstract=no" \
	"--server 02:00:00:00:00:0a%0 --cpu 1 --rounds 20000 --correctness 1000 --flood 1000000 --inject --inject-exact"

# ---- 2. memif, 2 queues each way, 4 clients in one process ----
sock=$dir/memif2.sock
run_pair memif-2q-4clients "" \
	"-l 0 $eal_common --file-prefix=$tag-m2s --vdev=net_memif0,role=server,socket=$sock,socket-abstract=no" \
	"--self 02:00:00:00:00:0a%0 --rx-queues 2 --tx-queues 2" \
	"" \
	"-l 1 $eal_common --file-prefix=$tag-m2c --vdev=net_memif0,role=client,socket=$sock,socket-abstract=no" \
	"--server 02:00:00:00:00:0a%0 --rx-queues 2 --tx-queues 2 --clients 4 --cpu 1 --rounds 0 --correctness 400 --flood 0 --inject --inject-exact"

# ---- 3. af_packet over veth between two network namespaces ----
ip netns add "$ns_a" || fail "cannot create network namespace $ns_a"
ip netns add "$ns_b" || fail "cannot create network namespace $ns_b"
ip link add "$veth_a" type veth peer name "$veth_b" || fail "cannot create a veth pair"
ip link set "$veth_a" netns "$ns_a" || fail "cannot move $veth_a"
ip link set "$veth_b" netns "$ns_b" || fail "cannot move $veth_b"
for side in a b; do
	ns=$tag-$side
	veth=$tag$side
	# no IPv6 chatter (router solicitations) on the link
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
	ip -n "$ns" link set "$veth" address 02:00:00:00:0$side:0$side || fail "cannot set the MAC of $veth"
	ip -n "$ns" link set "$veth" up || fail "cannot bring $veth up"
done
run_pair af_packet "ip netns exec $ns_a" \
	"-l 0 $eal_common --file-prefix=$tag-pa --vdev=net_af_packet0,iface=$veth_a" \
	"--self 02:00:00:00:0a:0a%300" \
	"ip netns exec $ns_b" \
	"-l 1 $eal_common --file-prefix=$tag-pb --vdev=net_af_packet0,iface=$veth_b" \
	"--server 02:00:00:00:0a:0a%300 --cpu 1 --rounds 5000 --correctness 500 --flood 200000 --inject --min-frame 14"

# ---- 4. af_packet through a Linux bridge (the n-replica topology) ----
# A bridge filters some random frames itself (multicast source MACs...), so
# no injection here: this run checks the topology carries the protocol.
ip netns del "$ns_a"
ip netns del "$ns_b"
bridge=${tag}br
ip link add "$bridge" type bridge || fail "cannot create a bridge"
ip link set "$bridge" up
ip netns add "$ns_a" || fail "cannot create network namespace $ns_a"
ip netns add "$ns_b" || fail "cannot create network namespace $ns_b"
for side in a b; do
	ns=$tag-$side
	veth=$tag$side
	ip link add "$veth" type veth peer name "${veth}p" || fail "cannot create a veth pair"
	ip link set "$veth" netns "$ns"
	ip link set "${veth}p" master "$bridge"
	ip link set "${veth}p" up
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
	ip -n "$ns" link set "$veth" address 02:00:00:00:0$side:0$side || fail "cannot set the MAC of $veth"
	ip -n "$ns" link set "$veth" up || fail "cannot bring $veth up"
done
run_pair af_packet-bridge "ip netns exec $ns_a" \
	"-l 0 $eal_common --file-prefix=$tag-ba --vdev=net_af_packet0,iface=$veth_a" \
	"--self 02:00:00:00:0a:0a%2" \
	"ip netns exec $ns_b" \
	"-l 1 $eal_common --file-prefix=$tag-bb --vdev=net_af_packet0,iface=$veth_b" \
	"--server 02:00:00:00:0a:0a%2 --cpu 1 --rounds 3000 --correctness 300 --flood 50000"

echo
for line in "${results[@]}"; do
	echo "RESULT $line"
done
echo "PASS dpdk_transport: ${results[*]}"
