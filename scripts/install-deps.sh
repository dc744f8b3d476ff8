#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian machine:
# memcached, the Python interop clients (python3-memcache, python3-pylibmc),
# script and setsid for the demo's hang-up test (essential on Debian, checked
# anyway) and the Go modules of every module. Safe to run again: it only
# installs what is missing.
set -euo pipefail

need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
if ! /usr/bin/python3 -c 'import memcache' >/dev/null 2>&1; then need+=(python3-memcache); fi
if ! /usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1; then need+=(python3-pylibmc); fi
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v setsid >/dev/null 2>&1 || need+=(util-linux)

if [ ${#need[@]} -gt 0 ]; then
	echo "install-deps: installing ${need[*]} with apt-get"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The Debian package may start a system daemon on 11211; the tests never use it.
fi
echo "install-deps: $(memcached -V)"
find . -name testdata -prune -o -name .git -prune -o -name go.mod -print | while read -r mod; do
	(cd "$(dirname "$mod")" && GOWORK=off go mod download)
done
