#!/bin/bash
# Control socket + oskrctl against a real oskrd (unreplicated, kv app):
# status parses as "key: value" with the expected values, metrics pass a
# strict Prometheus format check (test/tools/promcheck; also promtool when
# installed) and count the traffic of a short benchmark, config shows key
# paths but no key material, unknown commands and unreachable sockets give
# the documented exit codes, a stale socket is replaced, a live one is not,
# and a graceful stop removes the socket. The HTTP endpoint (metrics_http)
# serves the same exposition on GET /metrics, 404 elsewhere, 405 for POST.
build=${1:-build}
. test/tools/ops-lib.sh
promcheck=$(ops_tool promcheck)
ctl=$build/oskrctl
[ -x "$ctl" ] || fail "$ctl is not built"

# The checker must be able to fail: a few broken expositions.
printf '# HELP a x\n# TYPE a counter\na 1\n' | "$promcheck" 2>/dev/null &&
	fail "promcheck accepted a counter not named *_total"
printf '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n' |
	"$promcheck" 2>/dev/null && fail "promcheck accepted non-cumulative buckets"
printf '# HELP g x\n# TYPE g gauge\ng{l="a"} 1\ng{l="a"} 2\n' | "$promcheck" 2>/dev/null &&
	fail "promcheck accepted a duplicate series"

config=$(ops_cluster control unreplicated 1 kv)
# a free loopback port for metrics_http (bounded search)
http_port=
for ((try = 0; try < 50; try++)); do
	candidate=$((20000 + (RANDOM % 20000)))
	if [ -z "$(ss -Hltn "sport = :$candidate" 2>/dev/null)" ]; then
		http_port=$candidate
		break
	fi
done
[ -n "$http_port" ] || fail "no free port for metrics_http"
echo "metrics_http: 127.0.0.1:$http_port" >>"$config"
socket=$dir/control/ctl-0.sock
log=$dir/control.log
ops_start "$config" 0 "$log"
replica=$ops_pid
[ -S "$socket" ] || fail "no socket at $socket"
mode=$(stat -c %a "$socket")
[ "$mode" = 660 ] || fail "socket mode $mode, expected 660"

# status
status=$("$ctl" -c "$config" -i 0 status) || fail "status failed"
echo "$status" | head -n 8
while IFS= read -r line; do
	[[ $line =~ ^[a-z_]+:\ .+$ ]] || fail "status line is not 'key: value': '$line'"
done <<<"$status"
value() { sed -n "s/^$1: //p" <<<"$status"; }
[ "$(value replica)" = 0 ] || fail "replica: $(value replica)"
[ "$(value protocol)" = unreplicated ] || fail "protocol: $(value protocol)"
[ "$(value role)" = leader ] || fail "role: $(value role)"
[ "$(value app)" = kv ] || fail "app: $(value app)"
[ "$(value pid)" = "$replica" ] || fail "pid: $(value pid), expected $replica"
for key in protocol_version view leader last_committed last_executed \
	uptime_seconds stateless_queue stateful_queue state_dir; do
	[ -n "$(value $key)" ] || fail "status lacks $key"
done
# -s gives the same daemon
"$ctl" -s "$socket" status | grep -q "^pid: $replica$" || fail "-s $socket"

# traffic, then metrics
"$build/oskr-bench" -c "$config" -t 2 -d 1 -w 0.2 -j >"$dir/bench.json" ||
	fail "bench failed: $(cat "$dir/bench.json")"
"$ctl" -c "$config" -i 0 metrics >"$dir/metrics.txt" || fail "metrics failed"
"$promcheck" "$dir/metrics.txt" || fail "metrics are not valid exposition format"
if command -v promtool >/dev/null; then
	promtool check metrics <"$dir/metrics.txt" || fail "promtool check metrics failed"
	echo "promtool check metrics: OK"
else
	echo "promtool not installed (Debian package prometheus): strict checker only"
fi
metric() { awk -v name="$1" '$1 == name { print $2 }' "$dir/metrics.txt"; }
committed=$(metric oskr_commits_total)
[ "${committed:-0}" -gt 0 ] || fail "oskr_commits_total is ${committed:-missing}"
[ "$(metric oskr_requests_total)" -ge "$committed" ] || fail "requests < commits"
[ "$(metric oskr_rx_packets_total)" -gt 0 ] || fail "no rx packets counted"
[ "$(metric oskr_tx_packets_total)" -gt 0 ] || fail "no tx packets counted"
[ "$(metric oskr_is_leader)" = 1 ] || fail "oskr_is_leader"
grep -q '^oskr_drops_total{reason="[a-z_]*"} [0-9]*$' "$dir/metrics.txt" || fail "no drop series"
tasks=$(metric 'oskr_task_duration_seconds_count{stage="stateless"}')
[ "${tasks:-0}" -ge "$committed" ] || fail "stateless task histogram counted ${tasks:-nothing}"
echo "metrics: $committed commits, $tasks stateless tasks timed"

# the same over HTTP (bash's /dev/tcp: no HTTP client package needed)
http() { # METHOD PATH: the raw response on stdout
	exec 3<>"/dev/tcp/127.0.0.1/$http_port" || return 1
	printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n' "$1" "$2" >&3
	timeout 5 cat <&3
	exec 3<&- 3>&-
}
http GET /metrics >"$dir/http.raw" || fail "cannot connect to metrics_http 127.0.0.1:$http_port"
head -n 1 "$dir/http.raw" | grep -q '^HTTP/1.1 200 ' || fail "GET /metrics: $(head -n 1 "$dir/http.raw")"
grep -qi '^content-type: text/plain; version=0.0.4' "$dir/http.raw" ||
	fail "GET /metrics: no Prometheus content type: $(sed -n '1,8p' "$dir/http.raw")"
# the body: everything after the first empty line, CRs removed
tr -d '\r' <"$dir/http.raw" | sed '1,/^$/d' >"$dir/http-metrics.txt"
"$promcheck" "$dir/http-metrics.txt" || fail "HTTP metrics are not valid exposition format"
http_commits=$(awk '$1 == "oskr_commits_total" { print $2 }' "$dir/http-metrics.txt")
[ "${http_commits:-0}" -ge "$committed" ] ||
	fail "HTTP oskr_commits_total ${http_commits:-missing} < $committed from oskrctl"
http GET /other | head -n 1 | grep -q '^HTTP/1.1 404 ' || fail "GET /other is not 404"
http POST /metrics | head -n 1 | grep -q '^HTTP/1.1 405 ' || fail "POST /metrics is not 405"
echo "metrics_http: GET /metrics 200 ($http_commits commits), 404 and 405 as expected"

# config: paths yes, key material no
"$ctl" -c "$config" -i 0 config >"$dir/config.txt" || fail "config failed"
grep -q "^replica.private_key_file: $dir/control/keys/replica-0.key$" "$dir/config.txt" ||
	fail "config does not show the private key path"
grep -q "^control_socket: $socket$" "$dir/config.txt" || fail "config: control_socket"
grep -q '^log_level: ' "$dir/config.txt" || fail "config: log_level"
while IFS= read -r key_line; do
	case $key_line in -----*|"") continue ;; esac
	if grep -qF -- "$key_line" "$dir/config.txt"; then
		fail "config shows private key material"
	fi
done <"$dir/control/keys/replica-0.key"

# errors and exit codes
out=$("$ctl" -c "$config" -i 0 frobnicate 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "unknown command: exit $rc, expected 1"
grep -q "^error: unknown command 'frobnicate'" <<<"$out" || fail "unknown command message: $out"
out=$("$ctl" -s "$dir/absent.sock" status 2>&1)
rc=$?
[ $rc -eq 3 ] || fail "missing socket: exit $rc, expected 3"
grep -q "no control socket at $dir/absent.sock" <<<"$out" || fail "missing socket message: $out"
"$ctl" -c "$config" status >/dev/null 2>&1
[ $? -eq 2 ] || fail "%i without -i must be a usage error (2)"

# a second daemon with the same config is refused (state_dir lock, then
# the control socket) and leaves the first one working
if "$build/oskrd" -c "$config" -i 0 >"$dir/second.log" 2>&1; then
	fail "a second oskrd with the same config started"
fi
grep -Eq "in use by another oskrd|another process is listening" "$dir/second.log" ||
	fail "second daemon's message: $(cat "$dir/second.log")"
"$ctl" -s "$socket" status >/dev/null || fail "first daemon no longer answers"

# kill -9 leaves a stale socket: oskrctl says nobody listens, the next
# oskrd replaces it
kill -KILL "$replica"
wait "$replica" 2>/dev/null
[ -S "$socket" ] || fail "expected the stale socket file to remain after kill -9"
out=$("$ctl" -s "$socket" status 2>&1)
rc=$?
[ $rc -eq 3 ] || fail "stale socket: exit $rc, expected 3"
grep -q "exists but nobody listens" <<<"$out" || fail "stale socket message: $out"
ops_start "$config" 0 "$log"
replica=$ops_pid
grep -q "replaced a stale socket file" "$log" || fail "stale socket not reported as replaced"
"$ctl" -s "$socket" status | grep -q "^pid: $replica$" || fail "restarted daemon does not answer"

ops_stop "$replica" || fail "oskrd exited with status $?"
[ ! -e "$socket" ] || fail "socket not removed on stop"
echo "PASS"
