# Sourced by the DPDK cluster tests (dpdk_cluster.sh, dpdk_seed.sh): a
# Linux bridge and, per node, a network namespace with one end of a veth
# pair attached to it; processes started in them tracked by name; and a
# teardown that stops those processes (by PID) and removes everything
# the test created. Before sourcing, the caller sets:
#   tag         short prefix of every name (interface names <= 15 bytes)
#   dir         the test's temporary directory (removed unless KEEP is set)
#   bridge      the bridge's name
#   mac_prefix  first five bytes of the nodes' MACs, e.g. 02:0d:c0:00:00
#   nodes=() and declare -A pid_of (name -> PID, while running)
# and defines fail(). Node names are r0..r9 and c (the client).

stop_all() {
	local name
	for name in "${!pid_of[@]}"; do
		kill -TERM "${pid_of[$name]}" 2>/dev/null
	done
	for name in "${!pid_of[@]}"; do
		local pid=${pid_of[$name]}
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		unset "pid_of[$name]"
	done
}
teardown() {
	stop_all
	local node
	for node in "${nodes[@]}"; do
		ip netns del "$tag-$node" 2>/dev/null
		ip link del "$tag${node}p" 2>/dev/null
	done
	nodes=()
	ip link del "$bridge" 2>/dev/null
	rm -rf /var/run/dpdk/"$tag"-*
}
cleanup() {
	teardown
	if [ -n "${KEEP:-}" ]; then
		echo "kept $dir"
	else
		rm -rf "$dir"
	fi
}

mac_of() { # node -> MAC
	case $1 in
	c) echo "$mac_prefix:c0" ;;
	r*) echo "$mac_prefix:0${1#r}" ;;
	esac
}
# The bridge every node's veth is attached to.
add_bridge() {
	ip link add "$bridge" type bridge || fail "cannot create a Linux bridge (bridge module?)"
	sysctl -qw "net.ipv6.conf.$bridge.disable_ipv6=1" 2>/dev/null
	ip link set "$bridge" up
}
add_node() {
	local node=$1 ns=$tag-$1 veth=$tag$1
	ip netns add "$ns" || fail "cannot create network namespace $ns"
	nodes+=("$node")
	ip link add "$veth" type veth peer name "${veth}p" || fail "cannot create veth $veth"
	# no IPv6 chatter (router solicitations, MLD) on the segment
	sysctl -qw "net.ipv6.conf.${veth}p.disable_ipv6=1" 2>/dev/null
	ip link set "$veth" netns "$ns" || fail "cannot move $veth into $ns"
	ip link set "${veth}p" master "$bridge" || fail "cannot attach ${veth}p to $bridge"
	ip link set "${veth}p" up
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
	ip -n "$ns" link set "$veth" address "$(mac_of "$node")" || fail "cannot set the MAC of $veth"
	ip -n "$ns" link set "$veth" up || fail "cannot bring $veth up"
}
