#!/bin/bash
# SIGHUP re-reads the config (the same path systemd's ExecReload takes):
#  - a changed log_level applies live (the log and `oskrctl status` say
#    so, and debug lines appear);
#  - an invalid file is reported with file:line:col and the daemon keeps
#    running on the old configuration;
#  - a change that needs a restart (workers) is reported as such and not
#    applied.
build=${1:-build}
. test/tools/ops-lib.sh
kv=$(ops_tool kv_tool)
config=$(ops_cluster reload unreplicated 1 kv)
log=$dir/reload.log
sed -i 's/^log_level: .*/log_level: info/' "$config"
ops_start "$config" 0 "$log"
replica=$ops_pid
socket=$dir/reload/ctl-0.sock
# by socket: the config file is about to become invalid
level() { "$build/oskrctl" -s "$socket" status | sed -n 's/^log_level: //p'; }
[ "$(level)" = info ] || fail "log_level is $(level), expected info"
grep -q " debug: " "$log" && fail "debug lines at level info"

# 1. log_level info -> debug, applied live
sed -i 's/^log_level: .*/log_level: debug/' "$config"
kill -HUP "$replica"
ops_wait 10 grep -q "reload: log_level is now debug" "$log" || fail "no reload message: $(tail -n 3 "$log")"
[ "$(level)" = debug ] || fail "status says log_level $(level) after reload"
"$kv" -c "$config" put k 10 >/dev/null || fail "put"
ops_wait 10 grep -q " debug: " "$log" || fail "no debug line after switching to debug"
echo "log_level info -> debug applied: $(grep -c ' debug: ' "$log") debug lines"

# 2. invalid file: reported, old configuration kept
cp "$config" "$dir/reload/good.yaml"
sed -i 's/^workers: .*/workers: lots/' "$config"
line=$(grep -n '^workers:' "$config" | cut -d: -f1)
kill -HUP "$replica"
ops_wait 10 grep -q "reload: $config:$line:[0-9]*: .*keeping the running configuration" "$log" ||
	fail "invalid config not reported with file:line:col: $(tail -n 3 "$log")"
kill -0 "$replica" || fail "oskrd died on an invalid config"
[ "$(level)" = debug ] || fail "log_level changed by an invalid file"
"$kv" -c "$dir/reload/good.yaml" check k 10 || fail "replica stopped serving after an invalid reload"
grep "keeping the running configuration" "$log" | tail -n 1

# 3. a change that needs a restart: reported, not applied
sed 's/^workers: .*/workers: 3/' "$dir/reload/good.yaml" >"$config"
kill -HUP "$replica"
ops_wait 10 grep -q "reload: .*only after a restart" "$log" ||
	fail "restart-only change not reported: $(tail -n 3 "$log")"
workers=$("$build/oskrctl" -s "$socket" config | sed -n 's/^workers: //p')
[ "$workers" = 2 ] || fail "workers: $workers in the running config after reload"
grep "only after a restart" "$log" | tail -n 1

ops_stop "$replica" || fail "oskrd exited with status $?"
echo "PASS"
