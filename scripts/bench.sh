#!/bin/bash
# The benchmark matrix behind `make bench` (docs/benchmarks.md).
#
# For every transport x protocol x batch setting it starts a local cluster
# per point (scripts/cluster.sh: by PID, stopped on exit or Ctrl-C), runs
# oskr-bench over a sweep of closed-loop client counts, repeats the whole
# sweep --reps times, and reports per row the maximum throughput and the
# minimum median latency over the sweep (each point the median of the
# repetitions, min-max shown), next to a crypto-bound model. Then a
# YCSB-style table (kv app, workloads A/B/C) and a throughput-latency plot
# per protocol (gnuplot; skipped with a note when it is missing). DPDK rows
# run Unreplicated over net_memif (scripts/make-cluster-dpdk.sh; root).
#
#   scripts/bench.sh [options]
#     --quick               < 3 min: 1 repetition, clients "1 16", 1 s points
#     -b, --build DIR       build directory (default build)
#     -o, --out DIR         output: DIR/benchmarks.md, DIR/bench/* (default docs)
#     --reps N              repetitions per point (default 3)
#     --clients "LIST"      client sweep (default "1 4 16 64")
#     --duration S          measured seconds per point (default 2)
#     --warmup S            warm-up seconds per point (default 0.5)
#     --protocols "LIST"    default "unreplicated unreplicated-signed pbft hotstuff"
#     --batches "LIST"      pbft/hotstuff batch settings: 1, adaptive, N (default "1 adaptive 100")
#     --transports "LIST"   udp and/or dpdk (default "udp dpdk"; dpdk is skipped when unavailable)
#     --workers "LIST"      worker threads per replica (default 2)
#     --key-type T          p256 | ed25519 | secp256k1 (default p256)
#     --app A               null (the seed's 0/0 RPC, default) | kv
#     --ycsb-workloads L    default "A B C"; "" or --no-ycsb skips the YCSB table
#     --ycsb-records N      default 10000 (quick: 1000)
#     --ycsb-clients N      default 16
#     --no-plots            skip gnuplot
#     --run-dir DIR         raw results and failed points' logs (default BUILD/bench)
#     --report-only         redo the outputs from the last run in the run dir, measuring nothing
#
# Run it from the repository root (as make does).
#
# Raw per-repetition results and the logs of failed points stay in
# BUILD/bench/. Exit status: 0, or 1 if any point failed or reported
# wrong results (the outputs are still written), 130 when interrupted.
set -u

# ---------------------------------------------------------------- options
build=build
out=docs
reps=3
clients_list="1 4 16 64"
duration=2
warmup=0.5
protocols="unreplicated unreplicated-signed pbft hotstuff"
batches="1 adaptive 100"
transports="udp dpdk"
workers_list="2"
key_type=p256
app=null
ycsb_workloads="A B C"
ycsb_records=10000
ycsb_clients=16
ycsb_duration=
plots=1
report_only=0
run_dir=
quick=0
speed_seconds=1
# Set by --quick unless given explicitly.
declare -A given=()

die() { echo "bench: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value"; }

# Internal: one point run under cluster.sh: oskr-bench, then replica 0's
# commit counter (one per batch/block), so the report knows how many
# requests each batch carried.
if [ "${1:-}" = "--point-session" ]; then
	shift
	ctl=$1 config=$2 limit=$3 metrics=$4
	shift 4
	# DPDK points: the replica got the server's EAL arguments, the bench
	# (this process) takes the client's.
	[ -z "${OSKR_EAL_ARGS_CLIENT:-}" ] || export OSKR_EAL_ARGS=$OSKR_EAL_ARGS_CLIENT
	timeout --foreground -k 5 "$limit" "$@"
	status=$?
	if [ -x "$ctl" ] && grep -q '^control_socket:' "$config"; then
		"$ctl" -c "$config" -i 0 -t 5 metrics >"$metrics" 2>/dev/null || rm -f "$metrics"
	fi
	exit $status
fi

# Internal: the YCSB session run under cluster.sh (load, then each mix).
if [ "${1:-}" = "--ycsb-session" ]; then
	shift
	bench_bin=$1 config=$2 records=$3 clients=$4 dur=$5 warm=$6 outdir=$7
	shift 7
	"$bench_bin" -c "$config" -W ycsb --load --records "$records" \
		-t 64 -j >"$outdir/load.json" || exit 1
	status=0
	for mix in "$@"; do
		ratio=${mix#*=}
		name=${mix%%=*}
		timeout --foreground -k 5 $((${dur%.*} + ${warm%.*} + 30)) \
			"$bench_bin" -c "$config" -W ycsb --no-load \
			--records "$records" --read-ratio "$ratio" \
			-t "$clients" -d "$dur" -w "$warm" -j \
			>"$outdir/$name.json" || status=1
	done
	exit $status
fi

while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	-b | --build) need "$@"; build=$2; shift ;;
	-o | --out) need "$@"; out=$2; shift ;;
	--reps) need "$@"; reps=$2; given[reps]=1; shift ;;
	--clients) need "$@"; clients_list=$2; given[clients]=1; shift ;;
	--duration) need "$@"; duration=$2; given[duration]=1; shift ;;
	--warmup) need "$@"; warmup=$2; given[warmup]=1; shift ;;
	--protocols) need "$@"; protocols=$2; shift ;;
	--batches) need "$@"; batches=$2; shift ;;
	--transports) need "$@"; transports=$2; shift ;;
	--workers) need "$@"; workers_list=$2; shift ;;
	--key-type) need "$@"; key_type=$2; shift ;;
	--app) need "$@"; app=$2; shift ;;
	--ycsb-workloads) need "$@"; ycsb_workloads=$2; shift ;;
	--no-ycsb) ycsb_workloads= ;;
	--ycsb-records) need "$@"; ycsb_records=$2; given[records]=1; shift ;;
	--ycsb-clients) need "$@"; ycsb_clients=$2; shift ;;
	--no-plots) plots=0 ;;
	--run-dir) need "$@"; run_dir=$2; shift ;;
	--report-only) report_only=1 ;;
	-h | --help) sed -n '2,38p' "$0"; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
if [ $quick -eq 1 ]; then
	[ -n "${given[reps]:-}" ] || reps=1
	[ -n "${given[clients]:-}" ] || clients_list="1 16"
	[ -n "${given[duration]:-}" ] || duration=1
	[ -n "${given[warmup]:-}" ] || warmup=0.3
	[ -n "${given[records]:-}" ] || ycsb_records=1000
	speed_seconds=0.5
fi
ycsb_duration=$duration

is_number() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
is_count "$reps" || die "--reps: expected a positive integer"
is_number "$duration" || die "--duration: expected seconds"
is_number "$warmup" || die "--warmup: expected seconds"
for c in $clients_list; do is_count "$c" || die "--clients: '$c' is not a count"; done
for w in $workers_list; do is_count "$w" || die "--workers: '$w' is not a count"; done
for b in $batches; do
	[ "$b" = adaptive ] || is_count "$b" || die "--batches: '$b' is not 1..N or adaptive"
done
for m in $ycsb_workloads; do
	case $m in A | B | C) ;; *) die "--ycsb-workloads: '$m' is not A, B or C" ;; esac
done
case $app in null | kv) ;; *) die "--app: expected null or kv" ;; esac
[ -n "$clients_list" ] || die "--clients: empty"

[ -f scripts/cluster.sh ] || die "run from the repository root"
[ -n "$run_dir" ] || run_dir=$build/bench
raw=$run_dir/raw.csv
ycsb_raw=$run_dir/ycsb-raw.csv
failures=0

# shellcheck disable=SC2317 # called from the trap
interrupted() {
	echo >&2
	echo "bench: interrupted; partial results in $run_dir" >&2
	exit 130
}
# Children run in the foreground: a terminal's Ctrl-C reaches them too, and
# cluster.sh stops its replicas (by PID) before this trap runs.
trap interrupted INT TERM

# Seconds as a float: SECONDS has 1 s resolution.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }
declare -A row_hash=()
# What the report needs of a run, saved so --report-only can redo the
# outputs (e.g. after editing this script's report part) without measuring.
setup_vars="cpu_model cores kernel commit cflags compiler load_average
load_average_end run_date key_type sign_us verify_us used_transports
transport_note row_hash reps duration warmup clients_list quick app
workers_list ycsb_workloads ycsb_records ycsb_clients ycsb_duration
run_seconds"

if [ $report_only -eq 1 ]; then
	[ -f "$run_dir/setup.env" ] || die "no finished run in $run_dir to report on"
	# shellcheck disable=SC1091
	source "$run_dir/setup.env" || die "cannot read $run_dir/setup.env"
	mkdir -p "$out/bench" || die "cannot create $out/bench"
	failures=$(awk -F, -v raw="$raw" 'FNR > 1 && (FILENAME == raw ? $7 : $6) != "ok" { n++ }
		END { print n + 0 }' "$raw" "$ycsb_raw")
else
	for tool in "$build/oskrd" "$build/oskr-bench" "$build/oskr-keygen"; do
		[ -x "$tool" ] || die "$tool not built (run make)"
	done

	# Only ever clear a directory a previous run made (or an empty one).
	if [ -d "$run_dir" ]; then
		if [ -f "$run_dir/raw.csv" ] || [ -z "$(ls -A "$run_dir")" ]; then
			rm -rf "$run_dir"
		else
			die "$run_dir exists and is not a previous bench run; not clearing it"
		fi
	fi
	mkdir -p "$run_dir" "$out/bench" || die "cannot create $run_dir or $out/bench"
	echo "transport,workers,protocol,batch,clients,rep,status,ops_per_s,p50_us,p99_us,errors,completed,completed_total,commits" >"$raw"
	echo "protocol,batch,workload,read_ratio,rep,status,ops_per_s,p50_us,p99_us,errors,reads,updates" >"$ycsb_raw"
	started_at=$(now)

	# ------------------------------------------------------------------ setup
	cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
	[ -n "$cpu_model" ] || cpu_model=$(uname -m)
	cores=$(nproc)
	kernel="$(uname -sr)"
	commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		commit="$commit (with uncommitted changes)"
	fi
	# shellcheck disable=SC2016 # $(CFLAGS) is make's, not the shell's
	cflags=${OSKR_BENCH_CFLAGS:-$(make -s --no-print-directory \
		--eval 'oskr-print-cflags: ; @echo $(CFLAGS)' oskr-print-cflags 2>/dev/null)}
	compiler=$(${CC:-cc} --version 2>/dev/null | head -n 1)
	load_average=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
	run_date=$(date -u '+%Y-%m-%d %H:%M UTC')

	speed=$("$build/oskr-keygen" --speed -t "$key_type" -d "$speed_seconds" 2>&1) ||
		die "oskr-keygen --speed -t $key_type failed: $speed"
	sign_us=$(sed -n 's/.*sign_us=\([0-9.]*\).*/\1/p' <<<"$speed")
	verify_us=$(sed -n 's/.*verify_us=\([0-9.]*\).*/\1/p' <<<"$speed")
	if [ -z "$sign_us" ] || [ -z "$verify_us" ]; then
		die "cannot read oskr-keygen --speed: $speed"
	fi
	echo "bench: $cpu_model, $cores cores, $kernel; $key_type sign ${sign_us} us, verify ${verify_us} us"

	# -------------------------------------------------------------- the matrix
	plugin_of() { [ "$1" = unreplicated-signed ] && echo unreplicated || echo "$1"; }
	replicas_of() { case $1 in unreplicated*) echo 1 ;; *) echo 4 ;; esac; }
	protocol_options() { # PROTOCOL BATCH
		case $1 in
		unreplicated) echo "" ;;
		unreplicated-signed) echo "signed: true" ;;
		pbft | hotstuff)
			local key=batch_size
			[ "$1" = hotstuff ] && key=block_size
			case $2 in
			adaptive) echo "$key: 100, adaptive: true" ;;
			*) echo "$key: $2, adaptive: false" ;;
			esac
			;;
		esac
	}
	batches_of() { case $1 in pbft | hotstuff) echo "$batches" ;; *) echo "-" ;; esac; }

	# The DPDK hook: a cluster on DPDK memif virtual devices needs the dpdk
	# transport (being written) and a generator for its config. Once
	# scripts/make-cluster-dpdk.sh exists (same arguments as make-cluster.sh)
	# and this process may run DPDK (root), dpdk rows are measured like udp.
	dpdk_reason() {
		[ -x scripts/make-cluster-dpdk.sh ] || { echo "no scripts/make-cluster-dpdk.sh"; return; }
		[ "$(id -u)" -eq 0 ] || { echo "needs root"; return; }
		pkg-config --exists libdpdk 2>/dev/null || { echo "no libdpdk"; return; }
	}
	make_config() { # TRANSPORT DIR PROTOCOL N WORKERS OPTIONS APP
		local generator=scripts/make-cluster.sh
		[ "$1" = dpdk ] && generator=scripts/make-cluster-dpdk.sh
		"$generator" -b "$build" -k "$key_type" -w "$5" -a "$7" -o "$6" "$2" "$3" "$4" || return
		# oskrctl reads replica 0's counters through this after a point
		[ ! -x "$build/oskrctl" ] || echo "control_socket: $2/ctl-%i.sock" >>"$2/config.yaml"
	}
	# A config's hash without what changes from run to run (ports, paths).
	config_hash() {
		sed -e 's/127\.0\.0\.1:[0-9]*/127.0.0.1:PORT/' -e '/^control_socket:/d' "$1" |
			sha256sum | cut -c1-12
	}

	used_transports=""
	transport_note=""
	for transport in $transports; do
		case $transport in
		udp) used_transports="$used_transports udp" ;;
		dpdk)
			reason=$(dpdk_reason)
			if [ -n "$reason" ]; then
				echo "dpdk: skipped (not available)"
				echo "      ($reason)"
				transport_note="dpdk: skipped (not available: $reason)"
			else
				used_transports="$used_transports dpdk"
			fi
			;;
		*) die "--transports: unknown transport '$transport'" ;;
		esac
	done
	used_transports=${used_transports# }

	# Rows: transport workers protocol batch config-dir
	rows=()
	for transport in $used_transports; do
		for workers in $workers_list; do
			for protocol in $protocols; do
				plugin=$(plugin_of "$protocol")
				if [ ! -f "$build/plugins/$plugin.so" ]; then
					echo "$protocol: skipped ($build/plugins/$plugin.so not built)"
					continue
				fi
				if [ "$transport" = dpdk ] && [ "$(replicas_of "$protocol")" -ne 1 ]; then
					echo "dpdk: $protocol skipped (memif is point to point; 4-replica DPDK clusters run in test/integration/dpdk_cluster.sh)"
					continue
				fi
				for batch in $(batches_of "$protocol"); do
					id="$transport-w$workers-$protocol-b$batch"
					dir=$run_dir/$id
					if ! make_config "$transport" "$dir" "$plugin" \
						"$(replicas_of "$protocol")" "$workers" \
						"$(protocol_options "$protocol" "$batch")" "$app" >/dev/null; then
						echo "$id: cannot write its config; skipped" >&2
						failures=$((failures + 1))
						continue
					fi
					row_hash[$id]=$(config_hash "$dir/config.yaml")
					rows+=("$transport $workers $protocol $batch $dir")
				done
			done
		done
	done
	[ ${#rows[@]} -gt 0 ] || die "nothing to run (no plugin built?)"

	point_limit() { # seconds a point may take before it is killed
		awk -v d="$1" -v w="$2" 'BEGIN { printf "%d", d + w + 30 }'
	}

	json_field() { # JSON FIELD
		sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"
	}

	run_point() { # TRANSPORT WORKERS PROTOCOL BATCH DIR CLIENTS REP
		local transport=$1 workers=$2 protocol=$3 batch=$4 dir=$5 clients=$6 rep=$7
		local logs=$dir/run-c$clients-r$rep
		local result status rc
		local eal_server= eal_client=
		if [ "$transport" = dpdk ]; then
			eal_server=$(cat "$dir/eal-server")
			eal_client=$(cat "$dir/eal-client")
		fi
		result=$(OSKR_LOG_LEVEL=warn OSKR_START_TIMEOUT=30 \
			OSKR_EAL_ARGS=$eal_server OSKR_EAL_ARGS_CLIENT=$eal_client \
			scripts/cluster.sh -b "$build" -r "$logs" "$dir/config.yaml" -- \
			"$0" --point-session "$build/oskrctl" "$dir/config.yaml" \
			"$(point_limit "$duration" "$warmup")" "$logs.metrics" \
			"$build/oskr-bench" -c "$dir/config.yaml" -t "$clients" \
			-d "$duration" -w "$warmup" -W "$app" -j 2>>"$logs.stderr")
		rc=$?
		local ops p50 p99 errors completed completed_total commits
		completed_total=$(json_field "$result" completed_total)
		commits=$(awk '$1 == "oskr_commits_total" { print $2 }' "$logs.metrics" 2>/dev/null)
		ops=$(json_field "$result" ops_per_s)
		p50=$(json_field "$result" p50_us)
		p99=$(json_field "$result" p99_us)
		errors=$(json_field "$result" errors)
		completed=$(json_field "$result" completed)
		if [ $rc -eq 0 ] && [ -n "$ops" ]; then
			status=ok
			rm -rf "$logs" "$logs.stderr" "$logs.metrics"
		elif [ -n "$ops" ] && [ "${errors:-0}" != 0 ]; then
			status=errors
		else
			status=fail
		fi
		if [ $status != ok ]; then
			failures=$((failures + 1))
			echo "  $protocol batch $batch, $clients clients, rep $rep: $status (exit $rc; logs in $logs*)" >&2
		fi
		echo "$transport,$workers,$protocol,$batch,$clients,$rep,$status,${ops:-0},${p50:-0},${p99:-0},${errors:-0},${completed:-0},${completed_total:-0},${commits:-0}" >>"$raw"
		printf '%-20s %-8s %3s clients  rep %s  %10.0f ops/s  p50 %9.1f us\n' \
			"$protocol" "$batch" "$clients" "$rep" "${ops:-0}" "${p50:-0}"
	}

	points_total=$((${#rows[@]} * reps * $(wc -w <<<"$clients_list")))
	echo "bench: ${#rows[@]} row(s) x $(wc -w <<<"$clients_list") client counts x $reps rep(s) = $points_total points of ${warmup}+${duration} s"
	# Repetitions outermost: a transient disturbance of the machine lands in
	# one repetition of many rows, not in every repetition of one row.
	point=0
	for ((rep = 1; rep <= reps; rep++)); do
		for row in "${rows[@]}"; do
			read -r transport workers protocol batch dir <<<"$row"
			for clients in $clients_list; do
				point=$((point + 1))
				printf '[%d/%d %ss] ' "$point" "$points_total" "$(elapsed "$started_at")"
				run_point "$transport" "$workers" "$protocol" "$batch" "$dir" "$clients" "$rep"
			done
		done
	done

	# ------------------------------------------------------------------- YCSB
	ycsb_mixes=()
	for m in $ycsb_workloads; do
		case $m in
		A) ycsb_mixes+=("A=0.5") ;;
		B) ycsb_mixes+=("B=0.95") ;;
		C) ycsb_mixes+=("C=1") ;;
		esac
	done
	ycsb_workers=${workers_list%% *}
	if [ ${#ycsb_mixes[@]} -gt 0 ]; then
		echo "bench: YCSB ($ycsb_workloads) on udp, kv app, $ycsb_records records, $ycsb_clients clients"
		ycsb_rows=()
		for protocol in $protocols; do
			plugin=$(plugin_of "$protocol")
			[ -f "$build/plugins/$plugin.so" ] || continue
			batch=-
			case $protocol in pbft | hotstuff) batch=adaptive ;; esac
			dir=$run_dir/ycsb-$protocol
			make_config udp "$dir" "$plugin" "$(replicas_of "$protocol")" "$ycsb_workers" \
				"$(protocol_options "$protocol" "$batch")" kv >/dev/null || {
				failures=$((failures + 1))
				continue
			}
			ycsb_rows+=("$protocol $batch $dir")
		done
		for ((rep = 1; rep <= reps; rep++)); do
			for row in "${ycsb_rows[@]}"; do
				read -r protocol batch dir <<<"$row"
				outdir=$dir/rep$rep
				mkdir -p "$outdir"
				printf '[%ss] ycsb %-20s rep %s ' "$(elapsed "$started_at")" "$protocol" "$rep"
				OSKR_LOG_LEVEL=warn OSKR_START_TIMEOUT=30 \
					scripts/cluster.sh -b "$build" -r "$outdir/logs" "$dir/config.yaml" -- \
					"$0" --ycsb-session "$build/oskr-bench" "$dir/config.yaml" \
					"$ycsb_records" "$ycsb_clients" "$ycsb_duration" "$warmup" \
					"$outdir" "${ycsb_mixes[@]}" 2>>"$outdir/stderr"
				rc=$?
				[ $rc -eq 0 ] && rm -rf "$outdir/logs"
				load_s=$(json_field "$(cat "$outdir/load.json" 2>/dev/null)" load_s)
				printf '(load %s s)' "${load_s:-?}"
				for mix in "${ycsb_mixes[@]}"; do
					name=${mix%%=*}
					result=$(cat "$outdir/$name.json" 2>/dev/null)
					ops=$(json_field "$result" ops_per_s)
					p50=$(json_field "$result" p50_us)
					p99=$(json_field "$result" p99_us)
					errors=$(json_field "$result" errors)
					status=ok
					if [ -z "$ops" ]; then
						status=fail
					elif [ "${errors:-0}" != 0 ]; then
						status=errors
					fi
					[ $status = ok ] || failures=$((failures + 1))
					printf '  %s %.0f ops/s' "$name" "${ops:-0}"
					echo "$protocol,$batch,$name,${mix#*=},$rep,$status,${ops:-0},${p50:-0},${p99:-0},${errors:-0},$(json_field "$result" reads),$(json_field "$result" updates)" >>"$ycsb_raw"
				done
				echo
				[ $rc -eq 0 ] || echo "  ycsb $protocol rep $rep failed (exit $rc; logs in $outdir)" >&2
			done
		done
	fi
	run_seconds=$(elapsed "$started_at")
	load_average_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
	# shellcheck disable=SC2086
	declare -p $setup_vars >"$run_dir/setup.env"
fi

# -------------------------------------------------------------- aggregate
# Points: per (transport, workers, protocol, batch, clients) the median
# over the repetitions that ran (status ok or errors), with min and max.
awk_lib='
function sort_values(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
}
function median(a, n) {
	if (n == 0) return 0
	sort_values(a, n)
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lowest(a, n,    i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
function highest(a, n,    i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
'
points=$out/bench/points.csv
awk -F, -v OFS=, "$awk_lib"'
NR == 1 { next }
{
	key = $1 OFS $2 OFS $3 OFS $4 OFS $5
	if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
	if ($7 == "fail") { failed[key]++; next }
	n = ++count[key]
	ops[key, n] = $8; p50[key, n] = $9; p99[key, n] = $10
	errors[key] += $11
	# requests per committed batch (block) over the whole point
	if ($14 > 0 && $13 > 0) { m = ++batched[key]; per_batch[key, m] = $13 / $14 }
}
END {
	print "transport,workers,protocol,batch,clients,reps,ops_median,ops_min,ops_max,p50_us_median,p50_us_min,p50_us_max,p99_us_median,errors,failed_reps,ops_per_batch"
	for (k = 1; k <= keys; k++) {
		key = order[k]; n = count[key] + 0; m = batched[key] + 0
		for (i = 1; i <= n; i++) { a[i] = ops[key, i]; b[i] = p50[key, i]; c[i] = p99[key, i] }
		for (i = 1; i <= m; i++) d[i] = per_batch[key, i]
		if (n == 0)
			print key, 0, "", "", "", "", "", "", "", 0, failed[key] + 0, ""
		else
			printf "%s,%d,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%d,%d,%s\n", key, n,
				median(a, n), lowest(a, n), highest(a, n),
				median(b, n), lowest(b, n), highest(b, n), median(c, n),
				errors[key], failed[key] + 0, m ? sprintf("%.2f", median(d, m)) : ""
	}
}' "$raw" >"$points"

# Rows: max of the point medians and min of the p50 medians over the
# sweep, and the crypto-bound model (docs/benchmarks.md, "The model").
results=$out/bench/results.csv
hash_list=$run_dir/hashes
: >"$hash_list"
for id in "${!row_hash[@]}"; do echo "$id ${row_hash[$id]}" >>"$hash_list"; done
awk -F, -v OFS=, -v sign_us="$sign_us" -v verify_us="$verify_us" -v cores="$cores" \
	-v key_type="$key_type" -v hashes="$hash_list" "$awk_lib"'
# Signatures and verifications per request over the whole host (every
# replica and the clients run here), n replicas, batch b.
function model(protocol, b, n, f) {
	if (protocol == "unreplicated-signed") { S = 1; V = 1; return 1 }
	if (protocol == "pbft") {
		# per batch: pre-prepare 1 + prepares n-1 + commits n signs;
		# (n-1)*2n verifies; checkpoints (every 100 batches) n signs,
		# n(n-1) verifies; per request: n signed replies, f+1 verified
		S = n + (2 * n + n / 100) / b
		V = (f + 1) + ((n - 1) * 2 * n + n * (n - 1) / 100) / b
		return 1
	}
	if (protocol == "hotstuff") {
		# per block: proposal 1 + votes n signs; proposal + QC (2f+1)
		# verified by n-1 replicas, n votes by the next leader
		S = n + (1 + n) / b
		V = (f + 1) + ((n - 1) * (2 + 2 * f) + n) / b
		return 1
	}
	return 0
}
function bound_kops(protocol, b) {
	if (!model(protocol, b, 4, 1)) return ""
	return cores * 1e6 / (S * sign_us + V * verify_us) / 1000
}
BEGIN { while ((getline line < hashes) > 0) { split(line, h, " "); hash[h[1]] = h[2] } }
NR == 1 { next }
{
	key = $1 OFS $2 OFS $3 OFS $4
	if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
	errors[key] += $14; failed[key] += $15
	if ($6 == 0) next
	if (!(key in best) || $7 > best[key]) { best[key] = $7; best_min[key] = $8; best_max[key] = $9; best_at[key] = $5; best_batch[key] = $16 }
	if (!(key in low) || $10 < low[key]) { low[key] = $10; low_min[key] = $11; low_max[key] = $12; low_at[key] = $5 }
}
END {
	print "transport,workers,protocol,batch,key_type,config_hash,max_kops,max_kops_min,max_kops_max,max_at_clients,min_p50_us,min_p50_us_min,min_p50_us_max,min_p50_at_clients,ops_per_batch,crypto_model_batch,crypto_signs_per_op,crypto_verifies_per_op,crypto_bound_kops,pct_of_bound,crypto_bound_kops_b1,crypto_bound_kops_b100,errors,failed_points"
	for (k = 1; k <= keys; k++) {
		key = order[k]; split(key, f, OFS)
		id = f[1] "-w" f[2] "-" f[3] "-b" f[4]
		signs = verifies = bound = pct = b1 = b100 = model_b = ""
		# The model at the requests per batch the point really had
		# (max-throughput point); without that measurement, at the
		# configured size (adaptive: 1, the pessimistic end).
		per_batch = (key in best) ? best_batch[key] : ""
		b = per_batch != "" ? per_batch : (f[4] ~ /^[0-9]+$/ ? f[4] : 1)
		if (model(f[3], b, 4, 1)) {
			model_b = sprintf("%.2f", b)
			signs = sprintf("%.2f", S); verifies = sprintf("%.2f", V)
			bound = sprintf("%.3f", bound_kops(f[3], b))
			b1 = sprintf("%.3f", bound_kops(f[3], 1))
			b100 = sprintf("%.3f", bound_kops(f[3], 100))
			if (key in best) pct = sprintf("%.1f", 100 * best[key] / 1000 / bound)
		}
		if (key in best)
			printf "%s,%s,%s,%.3f,%.3f,%.3f,%s,%.1f,%.1f,%.1f,%s,%s,%s,%s,%s,%s,%s,%s,%s,%d,%d\n",
				key, key_type, hash[id], best[key] / 1000, best_min[key] / 1000,
				best_max[key] / 1000, best_at[key], low[key], low_min[key], low_max[key],
				low_at[key], per_batch, model_b, signs, verifies, bound, pct, b1, b100,
				errors[key], failed[key]
		else
			printf "%s,%s,%s,,,,,,,,,,%s,%s,%s,%s,,%s,%s,%d,%d\n", key, key_type, hash[id],
				model_b, signs, verifies, bound, b1, b100, errors[key], failed[key]
	}
}' "$points" >"$results"

ycsb_csv=$out/bench/ycsb.csv
awk -F, -v OFS=, -v records="$ycsb_records" -v clients="$ycsb_clients" "$awk_lib"'
NR == 1 { next }
{
	key = $1 OFS $2 OFS $3 OFS $4
	if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
	errors[key] += $10
	if ($6 == "fail") { failed[key]++; next }
	n = ++count[key]; ops[key, n] = $7; p50[key, n] = $8; p99[key, n] = $9
}
END {
	print "protocol,batch,workload,read_ratio,records,clients,distribution,reps,kops_median,kops_min,kops_max,p50_us_median,p99_us_median,errors,failed_reps"
	for (k = 1; k <= keys; k++) {
		key = order[k]; n = count[key] + 0
		for (i = 1; i <= n; i++) { a[i] = ops[key, i]; b[i] = p50[key, i]; c[i] = p99[key, i] }
		if (n == 0)
			printf "%s,%s,%s,zipfian,0,,,,,,%d,%d\n", key, records, clients, errors[key], failed[key]
		else
			printf "%s,%s,%s,zipfian,%d,%.3f,%.3f,%.3f,%.1f,%.1f,%d,%d\n", key, records,
				clients, n, median(a, n) / 1000, lowest(a, n) / 1000, highest(a, n) / 1000,
				median(b, n), median(c, n), errors[key], failed[key] + 0
	}
}' "$ycsb_raw" >"$ycsb_csv"
cp "$raw" "$out/bench/raw.csv"

# ---------------------------------------------------------------- outputs
combined_hash=$(sort "$hash_list" | sha256sum | cut -c1-12)
setup_rows=(
	"date|$run_date"
	"CPU|$cpu_model"
	"cores|$cores"
	"kernel|$kernel"
	"git commit|$commit"
	"config hash|$combined_hash (each row's in results.csv)"
	"workers|$workers_list per replica"
	"key type|$key_type: sign $sign_us µs, verify $verify_us µs (oskr-keygen --speed, one core)"
	"transport|$used_transports${transport_note:+; $transport_note}"
	"build flags|CFLAGS=$cflags; $compiler"
	"app|$app (matrix); kv (YCSB)"
	"points|${warmup} s warm-up + ${duration} s measured; clients $clients_list; median of $reps repetition(s)"
	"load average|$load_average at the start, $load_average_end at the end"
)

json_escape() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' <<<"$1"; }
csv_to_json() { # CSV -> JSON array of objects (numbers unquoted)
	awk -F, '
	BEGIN { split("transport protocol batch key_type config_hash workload distribution", s, " "); for (i in s) text[s[i]] = 1 }
	NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i; next }
	{
		printf "%s\n    {", (NR > 2 ? "," : "")
		for (i = 1; i <= NF; i++) {
			v = $i
			if (v == "" && !(name[i] in text)) v = "null"
			else if (name[i] in text || v !~ /^-?[0-9]+(\.[0-9]+)?$/) v = "\"" v "\""
			printf "%s\"%s\": %s", (i > 1 ? ", " : ""), name[i], v
		}
		printf "}"
	}
	END { printf "\n  " }' "$1"
}
{
	echo "{"
	echo "  \"setup\": {"
	echo "    \"date\": \"$run_date\","
	echo "    \"cpu_model\": \"$(json_escape "$cpu_model")\","
	echo "    \"cores\": $cores,"
	echo "    \"kernel\": \"$(json_escape "$kernel")\","
	echo "    \"git_commit\": \"$(json_escape "$commit")\","
	echo "    \"config_hash\": \"$combined_hash\","
	echo "    \"workers\": \"$workers_list\","
	echo "    \"key_type\": \"$key_type\","
	echo "    \"sign_us\": $sign_us,"
	echo "    \"verify_us\": $verify_us,"
	echo "    \"transports\": \"$used_transports\","
	echo "    \"transport_note\": \"$(json_escape "$transport_note")\","
	echo "    \"cflags\": \"$(json_escape "$cflags")\","
	echo "    \"compiler\": \"$(json_escape "$compiler")\","
	echo "    \"app\": \"$app\","
	echo "    \"warmup_s\": $warmup,"
	echo "    \"duration_s\": $duration,"
	echo "    \"clients\": \"$clients_list\","
	echo "    \"reps\": $reps,"
	echo "    \"quick\": $([ $quick -eq 1 ] && echo true || echo false),"
	echo "    \"load_average\": \"$load_average\","
	echo "    \"load_average_end\": \"$load_average_end\""
	echo "  },"
	echo "  \"rows\": [$(csv_to_json "$results")],"
	echo "  \"points\": [$(csv_to_json "$points")],"
	echo "  \"ycsb\": [$(csv_to_json "$ycsb_csv")]"
	echo "}"
} >"$out/bench/results.json"

# Plots: one PNG per protocol, a throughput-latency curve per (transport,
# workers, batch), one point per client count.
plot_note=""
plot_protocols=$(awk -F, 'NR > 1 && $6 > 0 && !seen[$3]++ { print $3 }' "$points")
rm -f "$out"/bench/*.png
if [ $plots -eq 0 ]; then
	plot_note="Plots skipped (--no-plots)."
elif ! command -v gnuplot >/dev/null; then
	plot_note="Plots skipped: gnuplot is not installed (Debian package gnuplot-nox)."
	echo "bench: $plot_note"
else
	for protocol in $plot_protocols; do
		plot_script=$run_dir/plot-$protocol.gp
		{
			echo "set terminal pngcairo size 800,520 font ',10'"
			echo "set output '$out/bench/$protocol.png'"
			echo "set title '$protocol: throughput vs median latency (point labels: clients; bars: min-max of $reps reps)'"
			echo "set xlabel 'throughput (K ops/s)'"
			echo "set ylabel 'median latency (µs)'"
			echo "set logscale y"
			echo "set format y '%g'"
			echo "set grid"
			echo "set key top left"
			# distinct, print-safe colours (ColorBrewer Dark2)
			echo "set linetype 1 lc rgb '#1b9e77' lw 2 pt 7 ps 1.2"
			echo "set linetype 2 lc rgb '#d95f02' lw 2 pt 5 ps 1.2"
			echo "set linetype 3 lc rgb '#7570b3' lw 2 pt 9 ps 1.4"
			echo "set linetype 4 lc rgb '#e7298a' lw 2 pt 11 ps 1.4"
			echo "set linetype 5 lc rgb '#66a61e' lw 2 pt 13 ps 1.4"
			echo "set linetype 6 lc rgb '#a6761d' lw 2 pt 3 ps 1.2"
			echo "set datafile separator ','"
			printf 'plot '
			first=1
			curve=0
			while IFS=, read -r transport workers batch; do
				data=$run_dir/plot-$protocol-$transport-w$workers-b$batch.dat
				awk -F, -v OFS=, -v t="$transport" -v w="$workers" -v p="$protocol" -v b="$batch" \
					'$1 == t && $2 == w && $3 == p && $4 == b && $6 > 0 { print $7 / 1000, $10, $5, $8 / 1000, $9 / 1000 }' \
					"$points" >"$data"
				label="batch $batch"
				[ "$batch" = - ] && label=$protocol
				[ "$(wc -w <<<"$used_transports $workers_list")" -gt 2 ] && label="$label, $transport, $workers workers"
				[ $first -eq 1 ] || printf ', \\\n     '
				curve=$((curve + 1))
				printf "'%s' using 1:2:4:5 with xerrorlines lt %d title '%s', '' using 1:2:3 with labels offset 1,0.6 notitle" "$data" "$curve" "$label"
				first=0
			done < <(awk -F, -v p="$protocol" 'NR > 1 && $3 == p && $6 > 0 && !seen[$1 FS $2 FS $4]++ { print $1 "," $2 "," $4 }' "$points")
			echo
		} >"$plot_script"
		if ! gnuplot "$plot_script" 2>"$run_dir/plot-$protocol.err"; then
			echo "bench: gnuplot failed for $protocol: $(head -n 3 "$run_dir/plot-$protocol.err")" >&2
			plot_note="Some plots failed (see $run_dir/plot-*.err)."
		fi
	done
fi

# docs/benchmarks.md: the hand-written part above the marker is kept (from
# the existing file, or from the repository's docs/benchmarks.md); the
# rest is regenerated.
marker='<!-- Everything below is generated by scripts/bench.sh: do not edit by hand. -->'
md=$out/benchmarks.md
intro_source=$md
[ -f "$intro_source" ] || intro_source=docs/benchmarks.md
{
	if [ -f "$intro_source" ]; then
		# without the marker the whole file is hand-written
		sed "/^$(sed 's/[][\/.*^$]/\\&/g' <<<"$marker")\$/,\$d" "$intro_source"
	else
		echo "# Benchmarks"
		echo
	fi
	echo "$marker"
	echo
	echo "## Setup"
	echo
	echo "Generated by \`scripts/bench.sh$([ $quick -eq 1 ] && echo " --quick")\` in $run_seconds s."
	echo
	echo "| | |"
	echo "|---|---|"
	for s in "${setup_rows[@]}"; do echo "| ${s%%|*} | ${s#*|} |"; done
	echo
	echo "## Throughput and latency"
	echo
	echo "Max throughput: the highest per-point median over the client sweep; min p50: the lowest"
	echo "per-point median of the median latency. In parentheses: min–max over the repetitions of"
	echo "that point. ops/batch: requests per committed batch (block) at the max-throughput point;"
	echo "crypto bound: *The model* above at that batch size."
	echo
	echo "| protocol | transport | workers | batch | max K ops/s | at clients | min p50 µs | at clients | ops/batch | crypto bound K ops/s | of bound |"
	echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
	awk -F, -v reps="$reps" 'NR > 1 {
		if ($7 == "") { tp = "failed"; lat = "failed"; at1 = at2 = "" }
		else {
			tp = sprintf("%.2f", $7); lat = sprintf("%.1f", $11)
			if (reps > 1) { tp = tp sprintf(" (%.2f–%.2f)", $8, $9); lat = lat sprintf(" (%.1f–%.1f)", $12, $13) }
			at1 = $10; at2 = $14
		}
		per_batch = $15 == "" ? "—" : sprintf("%.1f", $15)
		if ($19 == "") { bound = "—"; pct = "—" }
		else {
			bound = sprintf("%.2f", $19)
			# not measured: the configured batch size was assumed
			if ($15 == "" && $4 != "-") bound = bound " (b=" $16 ")"
			pct = $20 == "" ? "—" : sprintf("%.0f%%", $20)
		}
		note = ""
		if ($23 > 0) note = note " ⚠ " $23 " wrong results"
		if ($24 > 0) note = note " ⚠ " $24 " failed points"
		printf "| %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $3, note, $1, $2, $4, tp, at1, lat, at2, per_batch, bound, pct
	}' "$results"
	echo
	echo "Data: [results.csv](bench/results.csv) (rows), [points.csv](bench/points.csv) (every"
	echo "sweep point), [raw.csv](bench/raw.csv) (every repetition), [results.json](bench/results.json)."
	echo
	if [ -n "$ycsb_workloads" ]; then
		echo "## YCSB"
		echo
		echo "kv app over udp, $ycsb_records records of 100 bytes loaded by the clients first,"
		echo "zipfian keys (θ 0.99), $ycsb_clients closed-loop clients, ${warmup} s + ${ycsb_duration} s per"
		echo "workload; pbft and hotstuff with adaptive batching. A: 50% reads / 50% updates, B: 95/5,"
		echo "C: 100% reads. Every read is checked (see *YCSB* above)."
		echo
		echo "| protocol | workload | read ratio | K ops/s | p50 µs | p99 µs | errors |"
		echo "|---|---|---:|---:|---:|---:|---:|"
		awk -F, -v reps="$reps" 'NR > 1 {
			if ($8 == 0) { tp = "failed"; p50 = p99 = "" }
			else {
				tp = sprintf("%.2f", $9)
				if (reps > 1) tp = tp sprintf(" (%.2f–%.2f)", $10, $11)
				p50 = sprintf("%.1f", $12); p99 = sprintf("%.1f", $13)
			}
			printf "| %s | %s | %s | %s | %s | %s | %d |\n", $1, $3, $4, tp, p50, p99, $14
		}' "$ycsb_csv"
		echo
		echo "Data: [ycsb.csv](bench/ycsb.csv)."
		echo
	fi
	echo "## Plots"
	echo
	if [ -n "$plot_note" ]; then
		echo "$plot_note"
		echo
	fi
	for protocol in $plot_protocols; do
		[ -f "$out/bench/$protocol.png" ] && echo "- [$protocol](bench/$protocol.png)"
	done
	echo
	for protocol in $plot_protocols; do
		[ -f "$out/bench/$protocol.png" ] && echo "![$protocol: throughput vs median latency](bench/$protocol.png)" && echo
	done
	: # the block's status must not be the last missing plot's
} >"$md.tmp" && mv "$md.tmp" "$md"

echo
echo "bench: wrote $md, $out/bench/ (results.csv, points.csv, raw.csv, ycsb.csv, results.json$([ -n "$plot_protocols" ] && [ -z "$plot_note" ] && echo ", plots"))"
sed -n '/^| protocol | transport/,/^$/p' "$md"
if [ "$failures" -gt 0 ]; then
	echo "bench: $failures point(s) failed or returned wrong results (raw results and logs in $run_dir)" >&2
	exit 1
fi
exit 0
