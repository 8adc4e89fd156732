# Shared helpers of the operations integration tests (test/integration/
# notify, control, snapshot, reload, install). Source it after setting
# `build`; it creates $dir (removed on exit) and stops every oskrd it
# started, by PID, also when a test fails.
#
#   ops_cluster NAME PROTOCOL N [APP]   config with control_socket/state_dir
#   ops_start CONFIG ID [ENV=VALUE...]  start oskrd, wait until ready
#   ops_stop PID                        SIGTERM, bounded wait, then SIGKILL
#   ops_wait SECONDS COMMAND...         retry COMMAND every 0.1 s
#   ops_tool NAME                       path of a build/test/tools program

set -u
dir=$(mktemp -d /tmp/oskr-it-ops.XXXXXX)
ops_pids=()

fail() {
	echo "FAIL: $*"
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 0
}

ops_cleanup() {
	local pid
	for pid in "${ops_pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ "${OSKR_KEEP_TEST_DIR:-}" ]; then
		echo "kept $dir"
	else
		rm -rf "$dir"
	fi
}
trap ops_cleanup EXIT
trap 'exit 130' INT TERM

ops_tool() {
	local path=$build/test/tools/$1
	[ -x "$path" ] || fail "$path is not built (run: make test-bins)"
	echo "$path"
}

[ -x "$build/oskrd" ] || fail "$build/oskrd is not built"
# tools in build/test/tools find plugins only through the path
case $build in
/*) export OSKR_PLUGIN_PATH=${OSKR_PLUGIN_PATH:-$build/plugins} ;;
*) export OSKR_PLUGIN_PATH=${OSKR_PLUGIN_PATH:-$PWD/$build/plugins} ;;
esac

# ops_cluster NAME PROTOCOL N [APP]: a loopback cluster in $dir/NAME whose
# replicas each get $dir/NAME/ctl-<id>.sock and $dir/NAME/state-<id>.
ops_cluster() {
	local name=$1 protocol=$2 n=$3 app=${4:-kv}
	local config
	config=$(OSKR_LOG_LEVEL=${OSKR_LOG_LEVEL:-info} \
		scripts/make-cluster.sh -b "$build" -a "$app" "$dir/$name" "$protocol" "$n") ||
		fail "make-cluster failed"
	{
		echo "control_socket: $dir/$name/ctl-%i.sock"
		echo "state_dir: $dir/$name/state-%i"
	} >>"$config"
	echo "$config"
}

# ops_wait SECONDS COMMAND...: true once COMMAND succeeds, false after
# SECONDS.
ops_wait() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

# ops_start CONFIG ID LOG [ENV=VALUE...]: start a replica (sets ops_pid),
# wait for its "ready" line; a replica that exits first fails the test.
ops_start() {
	local config=$1 id=$2 log=$3
	shift 3
	# the log may hold earlier runs: wait for one more "ready" line
	local before
	before=$(grep -c " ready: " "$log" 2>/dev/null)
	env "$@" "$build/oskrd" -c "$config" -i "$id" >>"$log" 2>&1 &
	ops_pid=$!
	ops_pids+=("$ops_pid")
	local deadline=$((SECONDS + 30))
	local now
	while :; do
		now=$(grep -c " ready: " "$log" 2>/dev/null)
		[ "${now:-0}" -gt "${before:-0}" ] && break
		if ! kill -0 "$ops_pid" 2>/dev/null; then
			tail -n 20 "$log"
			fail "replica $id exited during start-up"
		fi
		[ $SECONDS -lt $deadline ] || fail "replica $id not ready in 30 s"
		sleep 0.05
	done
}

# ops_stop PID: graceful stop; returns the daemon's exit status.
ops_stop() {
	local pid=$1 deadline=$((SECONDS + 20)) rc
	kill -TERM "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		fail "pid $pid did not stop within 20 s of SIGTERM"
	fi
	wait "$pid"
	rc=$?
	return $rc
}

# ops_status_value CONFIG ID KEY: one value of `oskrctl status`.
ops_status_value() {
	"$build/oskrctl" -c "$1" -i "$2" status 2>/dev/null |
		sed -n "s/^$3: //p"
}
