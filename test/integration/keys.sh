#!/bin/bash
# Keys and config (issue 9 §5) against the real `oskrd --check-config`:
# a private key that is group/world readable, owned by another user,
# missing, unreadable, not a key, encrypted, of another type than the
# public keys, or not matching any replica's public key is refused with a
# message naming the file and what to do; a good cluster passes. And no
# secret reaches a log: the PEM body of the private key never appears in
# any output of --check-config (good or bad), nor in oskrd's log at debug
# level, nor in `oskrctl config`.
set -u
build=${1:-build}
cd "$(dirname "$0")/../.."
for tool in oskrd oskr-keygen; do
	[ -x "$build/$tool" ] || { echo "FAIL: $build/$tool is not built"; exit 1; }
done

dir=$(mktemp -d /tmp/oskr-it-keys.XXXXXX)
chmod 755 "$dir" # the setpriv case reads it as another user
oskrd_pid=
cleanup() {
	if [ -n "$oskrd_pid" ]; then
		kill -TERM "$oskrd_pid" 2>/dev/null
		wait "$oskrd_pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
failures=0
checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

config=$(OSKR_LOG_LEVEL=debug scripts/make-cluster.sh -b "$build" -a kv "$dir/c" unreplicated 2) ||
	{ echo "FAIL: cannot write the cluster"; exit 1; }
keys=$dir/c/keys
key0=$keys/replica-0.key
cp -p "$key0" "$dir/good.key"
# Lines of the private key's PEM body: none may ever be printed.
grep -v -- '-----' "$key0" >"$dir/secret-lines"
[ -s "$dir/secret-lines" ] || { echo "FAIL: the key has no PEM body"; exit 1; }

all_output=$dir/all-output
: >"$all_output"
restore() {
	rm -rf "$key0"
	cp -p "$dir/good.key" "$key0"
	chmod 600 "$key0"
	chown "$(id -u)" "$key0"
	cp "$dir/c/keys/replica-1.pub.orig" "$keys/replica-1.pub" 2>/dev/null
}
cp "$keys/replica-1.pub" "$keys/replica-1.pub.orig"

# expect_ok NAME: --check-config passes.
expect_ok() {
	local name=$1 out
	checks=$((checks + 1))
	out=$("$build/oskrd" -c "$config" -i 0 --check-config 2>&1)
	local status=$?
	echo "$out" >>"$all_output"
	if [ $status -ne 0 ]; then
		fail "$name: --check-config refused a good cluster: $out"
	else
		grep -q "keys OK" <<<"$out" || fail "$name: no 'keys OK' in: $out"
		echo "ok   $name"
	fi
}
# expect_refused NAME REGEX [RUNNER...]: --check-config fails (exit 1)
# with a message matching REGEX.
expect_refused() {
	local name=$1 regex=$2 out status
	shift 2
	checks=$((checks + 1))
	out=$("$@" "$build/oskrd" -c "$config" -i 0 --check-config 2>&1)
	status=$?
	echo "$out" >>"$all_output"
	if [ $status -eq 0 ]; then
		fail "$name: accepted; output: $out"
	elif ! grep -qE -- "$regex" <<<"$out"; then
		fail "$name: message does not match /$regex/: $out"
	else
		echo "ok   $name: $(head -n 1 <<<"$out")"
	fi
}

expect_ok "good cluster"

chmod 644 "$key0"
expect_refused "world-readable private key" "replica-0\.key: mode 0644 is group/world readable; run chmod 600"
chmod 640 "$key0"
expect_refused "group-readable private key" "replica-0\.key: mode 0640 is group/world readable"
chmod 602 "$key0"
expect_refused "world-writable private key" "replica-0\.key: mode 0602 is group/world accessible"
restore

if [ "$(id -u)" -eq 0 ]; then
	chown 65534 "$key0"
	expect_refused "private key owned by another user" "replica-0\.key: owned by uid 65534, not by uid 0"
	restore
else
	echo "skip private key owned by another user (needs root to chown)"
fi

rm -f "$key0"
expect_refused "missing private key" "replica-0\.key: cannot open private key: No such file or directory"
restore

# Unreadable: mode 0000. Root reads any file, so as root the check runs
# as nobody (setpriv) on a copy of the cluster owned by nobody.
if [ "$(id -u)" -ne 0 ]; then
	chmod 000 "$key0"
	expect_refused "unreadable private key" "replica-0\.key: cannot open private key: Permission denied"
	restore
elif command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$build/oskrd"; then
	chown -R nobody "$dir/c"
	chmod 000 "$key0"
	expect_refused "unreadable private key (as nobody)" \
		"replica-0\.key: cannot open private key: Permission denied" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups
	chown -R "$(id -u)" "$dir/c"
	restore
else
	echo "skip unreadable private key (root, and cannot run as nobody here)"
fi

rm -f "$key0"
mkdir "$key0"
chmod 700 "$key0"
expect_refused "private key path is a directory" "replica-0\.key: not a regular file"
restore

printf 'this is not a key, and the secret word is hunter2\n' >"$key0"
chmod 600 "$key0"
expect_refused "private key file that is not a key" "replica-0\.key: not a PEM private key"
grep -q hunter2 "$all_output" && fail "the content of a bad key file was printed"
restore

cp "$keys/replica-1.pub" "$key0"
chmod 600 "$key0"
expect_refused "public key where the private key belongs" "replica-0\.key: holds a public key, not the PEM private key"
restore

printf 'garbage\n' >"$keys/replica-1.pub"
expect_refused "public key file that is not a key" "replica-1\.pub: not a PEM public or private key"
restore

rm -f "$keys/replica-1.pub"
expect_refused "missing public key" "replica-1\.pub: cannot open public key: No such file or directory"
restore

# A key of another type among the public keys.
"$build/oskr-keygen" -t ed25519 -n 1 -o "$dir/ed" -p other >/dev/null
cp "$dir/ed/other-0.pub" "$keys/replica-1.pub"
expect_refused "public keys of mixed types" "holds a ed25519 key but .* holds a p256 key: all keys of a cluster must be one type"
restore

# A private key of the right type that matches no replica's public key.
"$build/oskr-keygen" -t p256 -n 1 -o "$dir/stranger" -p other >/dev/null
cp -p "$dir/stranger/other-0.key" "$key0"
expect_refused "private key of another cluster" "replica-0\.key: private key matches none of the 2 replica public keys"
restore

# The seed's layout: a public key file holding a private key is fine
# (only its public half is kept).
cp "$keys/replica-1.key" "$keys/replica-1.pub"
expect_ok "public key file holding a private key (seed layout)"
restore

if command -v openssl >/dev/null; then
	openssl pkcs8 -topk8 -in "$dir/good.key" -passout pass:secret -out "$key0" 2>/dev/null &&
		chmod 600 "$key0" &&
		expect_refused "encrypted private key" "replica-0\.key: encrypted private keys are not supported"
	restore
else
	echo "skip encrypted private key (no openssl command to make one)"
fi

# Secrets never logged: run oskrd at debug level for a moment, ask its
# control socket for the effective config, stop it, and look for any
# line of the private key in everything printed so far.
socket=$dir/control.sock
[ -x "$build/oskrctl" ] && echo "control_socket: $socket" >>"$config"
"$build/oskrd" -c "$config" -i 0 -l debug >"$dir/oskrd.log" 2>&1 &
oskrd_pid=$!
deadline=$((SECONDS + 30))
until grep -q " ready: " "$dir/oskrd.log"; do
	kill -0 "$oskrd_pid" 2>/dev/null || { fail "oskrd exited during start-up"; break; }
	[ $SECONDS -lt $deadline ] || { fail "oskrd not ready after 30 s"; break; }
	sleep 0.05
done
if [ -x "$build/oskrctl" ] && kill -0 "$oskrd_pid" 2>/dev/null; then
	"$build/oskrctl" -s "$socket" config >"$dir/ctl-config" 2>&1 ||
		fail "oskrctl config failed: $(cat "$dir/ctl-config")"
	grep -q "replica-%i.key\|replica-0.key" "$dir/ctl-config" ||
		fail "oskrctl config does not show the key path: $(cat "$dir/ctl-config")"
	cat "$dir/ctl-config" >>"$all_output"
fi
kill -TERM "$oskrd_pid" 2>/dev/null
wait "$oskrd_pid" 2>/dev/null
oskrd_pid=
cat "$dir/oskrd.log" >>"$all_output"
checks=$((checks + 1))
if grep -qF -f "$dir/secret-lines" "$all_output"; then
	fail "private key material appears in the output: $(grep -F -f "$dir/secret-lines" "$all_output" | head -n 2)"
else
	echo "ok   no private key material in $(wc -l <"$all_output") lines of output and logs"
fi

if [ $failures -gt 0 ]; then
	echo "FAIL: $failures of $checks checks failed"
	exit 1
fi
echo "PASS: $checks checks"
