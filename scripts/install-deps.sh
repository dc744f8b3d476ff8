#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian machine:
# memcached, the Python interop clients (python3-memcache, python3-pylibmc)
# and the Go modules. Safe to run again: it only installs what is missing.
set -euo pipefail

need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
if ! /usr/bin/python3 -c 'import memcache' >/dev/null 2>&1; then need+=(python3-memcache); fi
if ! /usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1; then need+=(python3-pylibmc); fi

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
go mod download
