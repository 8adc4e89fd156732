#!/bin/sh
# Install the Debian packages oskr needs to build, test and run.
# As root it runs apt-get; otherwise it prints the exact command to run.
#   scripts/deps.sh          build + test dependencies
#   scripts/deps.sh --check  exit 1 (printing what is missing) instead
set -eu

# openssl: the command line tool, for keys made the seed's way
# (test/integration/dpdk_seed.sh); libssl-dev does not pull it in.
PACKAGES="make gcc libc6-dev pkg-config libssl-dev libyaml-dev check libck-dev
libmicrohttpd-dev dpdk dpdk-dev libdpdk-dev iproute2 procps openssl"
# Optional: gnuplot-nox (make bench plots), clang + libclang-rt-14-dev (fuzz),
# systemd (systemd-analyze verify in tests). Installed when present in apt.
OPTIONAL="gnuplot-nox clang libclang-rt-14-dev systemd"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
missing_optional=""
for p in $OPTIONAL; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing_optional="$missing_optional $p"
	fi
done

if [ -z "$missing" ] && [ -z "$missing_optional" ]; then
	exit 0
fi
if [ "${1:-}" = "--check" ]; then
	[ -z "$missing" ] && exit 0
	echo "missing packages:$missing" >&2
	exit 1
fi
cmd="apt-get install -y --no-install-recommends$missing$missing_optional"
if [ "$(id -u)" -ne 0 ]; then
	if [ -n "$missing" ]; then
		echo "oskr needs these Debian packages:$missing" >&2
		echo "run as root:  apt-get update && $cmd" >&2
		exit 1
	fi
	echo "optional packages not installed:$missing_optional (run as root: apt-get update && $cmd)" >&2
	exit 0
fi
echo "installing:$missing$missing_optional" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# Optional packages must not fail the install if the archive lacks them.
apt-get install -y --no-install-recommends $missing >&2
if [ -n "$missing_optional" ]; then
	apt-get install -y --no-install-recommends $missing_optional >&2 ||
		echo "note: optional packages not installed:$missing_optional" >&2
fi
