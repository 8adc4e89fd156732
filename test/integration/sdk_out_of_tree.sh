#!/bin/bash
# The plugin SDK as a third party gets it:
#  1. `make install DESTDIR=$tmp PREFIX=/usr` (headers, oskr.pc, oskrd,
#     plugins, oskr-plugin-test);
#  2. the example protocol (examples/primary-backup) copied OUT of the tree
#     and built by its own Makefile with only `pkg-config --cflags oskr`
#     from that install (PKG_CONFIG_SYSROOT_DIR points the /usr paths of
#     oskr.pc into the DESTDIR tree), linked with -Wl,--no-undefined and
#     checked to need nothing of the host;
#  3. installed into the SDK's plugindir (from pkg-config) and loaded BY
#     NAME by the installed oskrd: a real 3-replica cluster on UDP loopback
#     (scripts/cluster.sh) with the kv app, driven by the installed
#     oskr-bench, which checks every get returns the client's last put;
#  4. the installed conformance kit on it (its `make check`, which finds
#     the kit through oskr.pc);
#  5. the plugin compiled against the frozen ABI 1.0 header snapshot
#     (BUILD/test/abi/echo_1_0.so) loaded by the installed oskrd too.
#
#   test/integration/sdk_out_of_tree.sh [BUILD]
set -eu
build=${1:-build}
tmp=$(mktemp -d /tmp/oskr-it-sdk.XXXXXX)
keep=0
cleanup() {
	if [ $keep -eq 0 ]; then
		rm -rf "$tmp"
	else
		echo "kept $tmp for inspection"
	fi
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	keep=1
	exit 1
}

dest=$tmp/dest
echo "== 1. make install DESTDIR=$dest PREFIX=/usr"
make -s --no-print-directory B="$build" install DESTDIR="$dest" PREFIX=/usr \
	>"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "make install failed"; }
for f in usr/include/oskr/plugin.h usr/lib/pkgconfig/oskr.pc usr/sbin/oskrd \
	usr/bin/oskr-bench usr/bin/oskr-keygen usr/bin/oskr-plugin-test; do
	[ -e "$dest/$f" ] || fail "make install did not install $f"
done

# Only the DESTDIR tree's oskr.pc, resolved into the tree.
export PKG_CONFIG_LIBDIR=$dest/usr/lib/pkgconfig
export PKG_CONFIG_PATH=$dest/usr/lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$dest
cflags=$(pkg-config --cflags oskr) || fail "pkg-config does not find oskr.pc"
cflags=$(echo $cflags) # trim
plugindir=$(pkg-config --variable=plugindir oskr)
echo "pkg-config --cflags oskr: $cflags"
echo "pkg-config --variable=plugindir oskr: $plugindir"
[ "$cflags" = "-I$dest/usr/include" ] || fail "unexpected Cflags '$cflags'"
[ "$plugindir" = "$dest/usr/lib/oskr/plugins" ] || fail "unexpected plugindir '$plugindir'"

echo "== 2. build examples/primary-backup out of tree"
src=$tmp/src/primary-backup
mkdir -p "$tmp/src"
cp -r examples/primary-backup "$src"
rm -f "$src"/*.so
# The copy cannot reach this repository's include/ by a relative path,
# and the compiler is given nothing but pkg-config's flags.
make -C "$src" CFLAGS="-O2 -g -Werror" >"$tmp/build.log" 2>&1 ||
	{ cat "$tmp/build.log"; fail "the example does not build against the installed SDK"; }
cat "$tmp/build.log"
grep -q -- "-Wl,--no-undefined" "$tmp/build.log" || fail "not linked with -Wl,--no-undefined"
grep -q -- "-I$dest/usr/include" "$tmp/build.log" || fail "not built with the installed headers"
! grep -q -- "-I$PWD" "$tmp/build.log" || fail "the build used the source tree's headers"
so=$src/primary-backup.so
undefined=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep -v '^_' | sed 's/@.*//' | sort -u | tr '\n' ' ')
echo "undefined symbols: $undefined"
for sym in $undefined; do
	case $sym in
	calloc | free | malloc | memcpy | memset | realloc | abort) ;;
	*) fail "the plugin needs '$sym' at load time (only libc is allowed)" ;;
	esac
done
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /[DTRB]/ {print $3}' | tr '\n' ' ')
[ "$exported" = "oskr_plugin_descriptor " ] || fail "exports more than the descriptor: $exported"

echo "== 3. install it; the installed oskrd loads it by name"
make -s -C "$src" install >/dev/null || fail "make install of the example failed"
[ -f "$dest/usr/lib/oskr/plugins/primary-backup.so" ] || fail "not installed into plugindir"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
# Nothing may point the daemon at the build tree.
unset OSKR_PLUGIN_PATH

cluster=$tmp/cluster
config=$(scripts/make-cluster.sh -b "$dest/usr/bin" -a kv "$cluster" primary-backup 3)
# make-cluster.sh sizes f for BFT (n >= 3f + 1); primary-backup tolerates
# f backup crashes with n = 2f + 1.
sed -i 's/^  f: .*/  f: 1/' "$config"
grep -q '^  f: 1' "$config" || fail "could not set f in $config"
"$dest/usr/sbin/oskrd" -c "$config" -i 0 --check-config >"$tmp/check.log" 2>&1 ||
	{ cat "$tmp/check.log"; fail "the installed oskrd refuses the config"; }
cat "$tmp/check.log"
out=$(OSKR_LOG_LEVEL=warn scripts/cluster.sh -b "$dest/usr/sbin" -r "$tmp/run" "$config" -- \
	"$dest/usr/bin/oskr-bench" -c "$config" -t 4 -d 1 -w 0.2 -j) ||
	{ echo "$out"; fail "the cluster run failed (logs in $tmp/run)"; }
echo "bench: $out"
grep -q '"errors":0' <<<"$out" || fail "oskr-bench reported wrong kv results"
completed=$(sed -n 's/.*"completed":\([0-9]*\).*/\1/p' <<<"$out")
[ "${completed:-0}" -gt 0 ] || fail "no request completed"
grep -q "primary-backup" "$tmp/run/replica-0.log" ||
	fail "replica 0's log does not mention the plugin"
grep -h "plugin\|ready" "$tmp/run/replica-0.log" | head -n 3

echo "== 4. the installed conformance kit"
# `make check` finds the kit through oskr.pc's plugin_test variable.
PKG_CONFIG_LIBDIR=$dest/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest \
	make -C "$src" check >"$tmp/kit.log" 2>&1 || { cat "$tmp/kit.log"; fail "the conformance kit failed"; }
grep -q "^$dest/usr/bin/oskr-plugin-test " "$tmp/kit.log" ||
	fail "make check did not run the installed kit: $(head -n 2 "$tmp/kit.log")"
grep -E "runs:" "$tmp/kit.log"
# And by name, the way an installed kit finds an installed plugin.
"$dest/usr/bin/oskr-plugin-test" -n 3 -f 1 --faults crash-primary-not-tolerated \
	-s 1 -S none primary-backup >"$tmp/kit-name.log" 2>&1 ||
	{ cat "$tmp/kit-name.log"; fail "the kit cannot find primary-backup by name"; }
grep -q "$dest/usr/lib/oskr/plugins/primary-backup.so" "$tmp/kit-name.log" ||
	fail "the kit did not use the installed plugin: $(head -n 1 "$tmp/kit-name.log")"

echo "== 5. a plugin built against the frozen ABI 1.0 header, in the installed oskrd"
old=$build/test/abi/echo_1_0.so
[ -f "$old" ] || fail "$old is missing (make test-bins builds it)"
echo_dir=$tmp/echo
config=$(scripts/make-cluster.sh -b "$dest/usr/bin" -a kv "$echo_dir" "$(readlink -f "$old")" 1)
out=$(OSKR_LOG_LEVEL=warn scripts/cluster.sh -b "$dest/usr/sbin" "$config" -- \
	"$dest/usr/bin/oskr-bench" -c "$config" -t 2 -d 0.5 -w 0.1 -j) ||
	{ echo "$out"; fail "the 1.0 plugin does not run in the installed oskrd"; }
echo "bench: $out"
grep -q '"errors":0' <<<"$out" || fail "the 1.0 plugin returned wrong kv results"

echo "PASS sdk_out_of_tree"
