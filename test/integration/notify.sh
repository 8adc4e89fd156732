#!/bin/bash
# sd_notify: a real oskrd with NOTIFY_SOCKET pointing at a unix datagram
# socket this test reads (test/tools/notify_listen) and WATCHDOG_USEC set.
# READY=1 comes first, then STATUS= lines (view, leader, committed,
# executed) and WATCHDOG=1 pings, and STOPPING=1 last after SIGTERM.
# A WATCHDOG_PID naming another process turns the pings off.
build=${1:-build}
. test/tools/ops-lib.sh
listen=$(ops_tool notify_listen)
config=$(ops_cluster notify unreplicated 1 null)

run_with_notify() { # LABEL [ENV...]: start, let it run, stop; output in $dir/LABEL.notify
	local label=$1
	shift
	local socket=$dir/$label.sock out=$dir/$label.notify
	"$listen" "$socket" 60 >"$out" 2>"$dir/$label.listen.err" &
	local listener=$!
	ops_pids+=("$listener")
	ops_wait 10 test -S "$socket" || fail "$label: listener socket not created"
	ops_start "$config" 0 "$dir/$label.log" NOTIFY_SOCKET="$socket" "$@"
	local replica=$ops_pid
	# two seconds of life: at least one STATUS and, with the watchdog,
	# several pings (every WATCHDOG_USEC/2)
	ops_wait 20 grep -q '^STATUS=' "$out" || fail "$label: no STATUS= line"
	sleep 1
	ops_stop "$replica" || fail "$label: oskrd exited with status $?"
	wait "$listener" || fail "$label: no STOPPING=1 ($(cat "$dir/$label.listen.err"))"
}

run_with_notify watchdog WATCHDOG_USEC=400000
out=$dir/watchdog.notify
echo "--- received (watchdog run):"
sed "s/^STATUS=.*/STATUS=.../" "$out" | sort | uniq -c
[ "$(head -n 1 "$out")" = "READY=1" ] || fail "first message is not READY=1: $(head -n 1 "$out")"
[ "$(tail -n 1 "$out")" = "STOPPING=1" ] || fail "last message is not STOPPING=1"
[ "$(grep -c '^READY=1$' "$out")" -eq 1 ] || fail "READY=1 sent more than once"
ready=$(grep -n '^READY=1$' "$out" | head -n 1 | cut -d: -f1)
status=$(grep -n '^STATUS=' "$out" | head -n 1 | cut -d: -f1)
watchdog=$(grep -n '^WATCHDOG=1$' "$out" | head -n 1 | cut -d: -f1)
stopping=$(grep -n '^STOPPING=1$' "$out" | head -n 1 | cut -d: -f1)
[ -n "$status" ] && [ -n "$watchdog" ] || fail "STATUS or WATCHDOG missing"
[ "$ready" -lt "$status" ] && [ "$status" -lt "$watchdog" ] && [ "$watchdog" -lt "$stopping" ] ||
	fail "not in order READY < STATUS < WATCHDOG < STOPPING: $ready $status $watchdog $stopping"
pings=$(grep -c '^WATCHDOG=1$' "$out")
[ "$pings" -ge 3 ] || fail "only $pings watchdog pings in about 2 s with WATCHDOG_USEC=400000"
grep -Eq '^STATUS=unreplicated view [0-9]+ leader 0 committed [0-9]+ executed [0-9]+$' "$out" ||
	fail "STATUS line lacks view/leader/committed/executed: $(grep -m1 '^STATUS=' "$out")"
echo "order READY(line $ready) < STATUS($status) < WATCHDOG($watchdog) < STOPPING($stopping), $pings pings"

# WATCHDOG_PID of another process: the watchdog is not ours to feed.
run_with_notify otherpid WATCHDOG_USEC=400000 WATCHDOG_PID=1
if grep -q '^WATCHDOG=1$' "$dir/otherpid.notify"; then
	fail "WATCHDOG=1 sent although WATCHDOG_PID names another process"
fi
echo "WATCHDOG_PID=1: no pings, as expected"
echo "PASS"
