#!/usr/bin/env bash
# The memkit demo: starts three memcached servers on free loopback ports
# with weights 1:2:3, runs the example shop (examples/webapp) against them
# and prints its URL. Ctrl-C (or the shop exiting) stops everything it
# started: no memcached is left behind.
#
#   make demo                        # installs memcached first if missing
#   ./scripts/demo.sh                # same, if memcached is installed
#   DEMO_ADDR=127.0.0.1:9090 ./scripts/demo.sh
#
# Each process runs in its own process group, so that stopping the demo
# also stops the program `go run` builds and starts.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v memcached >/dev/null 2>&1; then
	./scripts/install-deps.sh
fi
MEMCACHED=$(command -v memcached)

set -m # background jobs get their own process groups
pids=()
cleanup() {
	trap - EXIT INT TERM HUP
	if [ ${#pids[@]} -gt 0 ]; then
		echo
		echo "demo: stopping the shop and the memcached servers"
		for pid in "${pids[@]}"; do
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		done
		for pid in "${pids[@]}"; do
			wait "$pid" 2>/dev/null || true
		done
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: a port nothing listens on, from the ephemeral-ish range.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 30000))
		if port_free "$p"; then
			echo "$p"
			return
		fi
	done
	echo "demo: no free port found" >&2
	return 1
}

# wait_port PORT SECONDS PID: waits until PORT accepts connections, or PID
# exits, or SECONDS pass.
wait_port() {
	local deadline=$((SECONDS + $2))
	while [ $SECONDS -lt "$deadline" ]; do
		if ! port_free "$1"; then return 0; fi
		if ! kill -0 "$3" 2>/dev/null; then return 1; fi
		sleep 0.1
	done
	return 1
}

user_flag=()
[ "$(id -u)" -ne 0 ] || user_flag=(-u root) # memcached refuses to run as root without -u

servers=()
for weight in 1 2 3; do
	started=""
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		"$MEMCACHED" -l 127.0.0.1 -p "$port" -U 0 -m 64 -c 1024 "${user_flag[@]}" &
		pid=$!
		pids+=("$pid")
		if wait_port "$port" 10 "$pid"; then
			started=1
			break
		fi
		kill "$pid" 2>/dev/null || true # lost a race for the port: try another
	done
	[ -n "$started" ] || { echo "demo: could not start memcached" >&2; exit 1; }
	servers+=("127.0.0.1:$port:$weight")
	echo "demo: memcached on 127.0.0.1:$port (weight $weight), pid $pid"
done
list=$(IFS=,; echo "${servers[*]}")

addr=${DEMO_ADDR:-127.0.0.1:8080}
if ! port_free "${addr##*:}"; then
	addr="127.0.0.1:$(free_port)"
	echo "demo: ${DEMO_ADDR:-127.0.0.1:8080} is busy, using $addr"
fi
# A fixed session key for this run (sessions live as long as the servers).
SHOP_SESSION_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export SHOP_SESSION_KEY

echo "demo: go run ./examples/webapp -addr $addr -memcached $list"
go run ./examples/webapp -addr "$addr" -memcached "$list" &
pid=$!
pids+=("$pid")
if ! wait_port "${addr##*:}" 300 "$pid"; then
	echo "demo: the shop did not start" >&2
	exit 1
fi

cat <<MSG

  The memkit shop is open:   http://$addr/
  Cache and server stats:    http://$addr/debug/cache
  Try:  curl -i http://$addr/api/products/42        (X-Cache: miss, then hit)
        curl -c /tmp/jar -b /tmp/jar -d user=ada http://$addr/login
        curl -c /tmp/jar -b /tmp/jar http://$addr/api/me

  In another terminal, against the same three servers:
        go run ./examples/mctop   -memcached $list
        go run ./examples/ticket  -memcached $list
        go run ./examples/cluster -memcached $list
  (or export MEMKIT_MEMCACHED=$list and leave out -memcached)

  Ctrl-C stops the shop and the memcached servers.

MSG
wait "$pid"
