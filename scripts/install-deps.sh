#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian machine:
# memcached, the peers whose key placement and values memkit shares (the
# Python clients python3-memcache, python3-pylibmc and python3-pymemcache,
# libmemcached-tools' memccp/memccat, and twemproxy as nutcracker), script
# and setsid for the demo's hang-up test (essential on Debian, checked
# anyway), Chromium for the shop's dashboard test (headless, driven by
# chromedp), wrk for the bench's sessions-under-load test, and the Go
# modules of every module. Safe to run again: it only
# installs what is missing.
set -euo pipefail

need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
if ! /usr/bin/python3 -c 'import memcache' >/dev/null 2>&1; then need+=(python3-memcache); fi
if ! /usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1; then need+=(python3-pylibmc); fi
if ! /usr/bin/python3 -c 'import pymemcache' >/dev/null 2>&1; then need+=(python3-pymemcache); fi
command -v memccp >/dev/null 2>&1 || need+=(libmemcached-tools) # Debian's memcp, memcat, ...
command -v nutcracker >/dev/null 2>&1 || [ -x /usr/sbin/nutcracker ] || need+=(nutcracker)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v setsid >/dev/null 2>&1 || need+=(util-linux)
command -v chromium >/dev/null 2>&1 || need+=(chromium) # the dashboard's browser test
command -v wrk >/dev/null 2>&1 || need+=(wrk)                # bench's TestWrk

if [ ${#need[@]} -gt 0 ]; then
	echo "install-deps: installing ${need[*]} with apt-get"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The Debian packages may start system daemons (memcached on 11211,
	# nutcracker on 22121/22222); the tests never use those ports.
fi
nutcracker=$(command -v nutcracker || echo /usr/sbin/nutcracker)
echo "install-deps: $(memcached -V), $("$nutcracker" -V 2>&1 | head -1)"
find . -name testdata -prune -o -name .git -prune -o -name go.mod -print | while read -r mod; do
	(cd "$(dirname "$mod")" && GOWORK=off go mod download)
done
