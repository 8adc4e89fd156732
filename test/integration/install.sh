#!/bin/bash
# `make install DESTDIR=… PREFIX=/usr`, then use the installed tree:
#  - binaries, plugins, headers, oskr.pc, example configs, man pages,
#    systemd units (with paths for this prefix), sysusers.d entry;
#  - `systemd-analyze verify` of both units, with no warning at all (and
#    the man pages their Documentation= names found in the tree);
#  - the man pages render without warnings;
#  - the installed oskrd finds its plugin by name (../lib/oskr/plugins
#    relative to itself, no OSKR_PLUGIN_PATH), serves the installed
#    oskr-bench and answers the installed oskrctl.
build=${1:-build}
. test/tools/ops-lib.sh
unset MAKEFLAGS MFLAGS MAKELEVEL
root=$dir/root

make --no-print-directory -s install B="$build" DESTDIR="$root" PREFIX=/usr \
	>"$dir/install.log" 2>&1 || {
	tail -n 30 "$dir/install.log"
	fail "make install failed"
}
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
unitdir=${unitdir:-/usr/lib/systemd/system}
sysusersdir=$(pkg-config --variable=sysusersdir systemd 2>/dev/null)
sysusersdir=${sysusersdir:-/usr/lib/sysusers.d}
for f in usr/sbin/oskrd usr/bin/oskrctl usr/bin/oskr-bench usr/bin/oskr-keygen \
	usr/lib/oskr/plugins/unreplicated.so usr/lib/liboskr-client.so \
	usr/include/oskr/plugin.h usr/include/oskr/client.h usr/include/oskr/kv.h \
	usr/lib/pkgconfig/oskr.pc usr/share/man/man8/oskrd.8 \
	usr/share/man/man8/oskrctl.8 usr/share/man/man5/oskrd.yaml.5 \
	"${unitdir#/}/oskrd.service" "${unitdir#/}/oskrd@.service" \
	"${sysusersdir#/}/oskr.conf" usr/share/oskr/oskrd-dpdk.conf; do
	[ -f "$root/$f" ] || fail "not installed: /$f"
done
ls "$root"/etc/oskr/*.yaml >/dev/null 2>&1 || fail "no example configs in /etc/oskr"
grep -q '^prefix=/usr$' "$root/usr/lib/pkgconfig/oskr.pc" || fail "oskr.pc prefix: $(grep prefix= "$root/usr/lib/pkgconfig/oskr.pc")"
grep -q '^ExecStart=/usr/sbin/oskrd -c /etc/oskr/oskrd.yaml' "$root/$unitdir/oskrd.service" ||
	fail "oskrd.service ExecStart"
echo "installed: $(find "$root" -type f | wc -l) files"

# the public headers compile on their own
printf '#include <oskr/plugin.h>\n#include <oskr/client.h>\n#include <oskr/kv.h>\nint main(void){return 0;}\n' |
	cc -std=c11 -Wall -Werror -fsyntax-only -I"$root/usr/include" -x c - ||
	fail "installed headers do not compile alone"

# systemd-analyze verify: ExecStart must point at an existing binary, so
# verify copies whose /usr/sbin is the install tree's
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$dir/units"
	sed "s|/usr/sbin/oskrd|$root/usr/sbin/oskrd|g" "$root/$unitdir/oskrd.service" >"$dir/units/oskrd.service"
	sed "s|/usr/sbin/oskrd|$root/usr/sbin/oskrd|g" "$root/$unitdir/oskrd@.service" >"$dir/units/oskrd@test.service"
	for unit in oskrd.service oskrd@test.service; do
		out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$dir/units/$unit" 2>&1)
		rc=$?
		[ $rc -eq 0 ] && [ -z "$out" ] || fail "systemd-analyze verify $unit (exit $rc): $out"
	done
	# and it does notice a broken unit (the check is not vacuous)
	printf '[Service]\nType=notifyy\nExecStart=/bin/true\n' >"$dir/units/broken.service"
	out=$(systemd-analyze verify --man=no "$dir/units/broken.service" 2>&1)
	[ -n "$out" ] || fail "systemd-analyze verify said nothing about a broken unit"
	echo "systemd-analyze verify: oskrd.service and oskrd@.service clean"
else
	echo "systemd-analyze not installed (Debian package systemd): unit check skipped"
fi

# man pages render without warnings
if command -v man >/dev/null; then
	for page in "$root"/usr/share/man/man*/*; do
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		[ -z "$out" ] || fail "man $page: $out"
	done
	echo "man pages: render without warnings"
else
	echo "man not installed: man page check skipped"
fi

# run the installed binaries, without any plugin path
unset OSKR_PLUGIN_PATH
config=$(ops_cluster installed unreplicated 1 kv)
check=$("$root/usr/sbin/oskrd" --check-config -c "$config" -i 0 2>&1) || fail "installed --check-config: $check"
used=$(sed -n 's/.*(\(\/[^)]*\.so\)).*/\1/p' <<<"$check")
[ -n "$used" ] && [ "$(realpath "$used")" = "$(realpath "$root/usr/lib/oskr/plugins/unreplicated.so")" ] ||
	fail "installed oskrd did not use the installed plugin: $check"
echo "$check"
log=$dir/installed.log
"$root/usr/sbin/oskrd" -c "$config" -i 0 >"$log" 2>&1 &
replica=$!
ops_pids+=("$replica")
ops_wait 30 grep -q " ready: " "$log" || fail "installed oskrd not ready: $(tail -n 5 "$log")"
out=$("$root/usr/bin/oskr-bench" -c "$config" -t 1 -d 1 -w 0.2 -j) || fail "installed bench: $out"
grep -q '"errors":0' <<<"$out" || fail "bench errors: $out"
completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$out")
[ "${completed:-0}" -gt 0 ] || fail "installed bench completed nothing"
"$root/usr/bin/oskrctl" -c "$config" -i 0 status | grep -q '^protocol: unreplicated$' ||
	fail "installed oskrctl status"
echo "installed oskrd + oskr-bench: $completed ops; installed oskrctl answered"
ops_stop "$replica" || fail "installed oskrd exited with status $?"
echo "PASS"
