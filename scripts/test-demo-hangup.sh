#!/usr/bin/env bash
# Closing the terminal that runs the demo must leave no process behind.
#
# Starts the demo launcher (examples/demo) in a new session on a
# pseudo-terminal (setsid + script, both in Debian's essential util-linux
# and bsdutils), waits until the shop answers on a free port, hangs the
# terminal up by killing the process that holds the pty's master side (as a
# closed terminal window, a dropped SSH connection or a killed tmux session
# does), then checks that no memcached and no shop process of that demo
# remains and that the port is free. Bounded in time; cleans up after itself
# when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

START_TIMEOUT=${START_TIMEOUT:-600} # seconds for the shop to answer (a cold build is slow)
STOP_TIMEOUT=${STOP_TIMEOUT:-30}    # seconds for everything to be gone after the hangup

tmp=$(mktemp -d)
log="$tmp/demo.log"
holder=""
fail() {
	echo "test-demo-hangup: FAIL: $*" >&2
	echo "--- demo output:" >&2
	cat "$log" >&2 2>/dev/null || true
	exit 1
}
# pids lists the processes the demo reported: itself, the memcached servers
# and the shop.
pids() { tr -d '\r' <"$log" 2>/dev/null | sed -n 's/.*, pid \([0-9][0-9]*\)$/\1/p' || true; }
cleanup() {
	local p
	if [ -n "$holder" ]; then { kill -KILL "$holder" && wait "$holder"; } 2>/dev/null || true; fi
	for p in $(pids); do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# alive PID: the process exists and is not a zombie (an orphan's exit
# status may wait for a PID 1 that does not reap).
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port below the ephemeral range: connecting to a port in that range
# while nothing listens there can connect a socket to itself.
lowest=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
port=""
for _ in $(seq 100); do
	p=$((10000 + RANDOM % (lowest - 10000)))
	if port_free "$p"; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port"

echo "test-demo-hangup: building the demo launcher"
(cd examples && go build -o "$tmp/demo" ./demo)

echo "test-demo-hangup: starting the demo on a pseudo-terminal, shop on 127.0.0.1:$port"
# script's stdin is a FIFO this shell keeps open, so that script never sees
# EOF on it (CI has no standard input); the demo runs from examples/ so
# that it can build the shop.
mkfifo "$tmp/stdin"
exec 4<>"$tmp/stdin"
(cd examples && exec setsid script -qfec "exec '$tmp/demo' -addr 127.0.0.1:$port" /dev/null) <"$tmp/stdin" >"$log" 2>&1 &
holder=$! # script: it holds the pty's master side

deadline=$((SECONDS + START_TIMEOUT))
# The port is probed only once the demo says the shop listens.
until grep -q "The memkit shop is open" "$log" 2>/dev/null && ! port_free "$port"; do
	[ $SECONDS -lt $deadline ] || fail "the shop did not answer on port $port within ${START_TIMEOUT}s"
	kill -0 "$holder" 2>/dev/null || fail "the demo ended before the shop answered"
	sleep 0.2
done
# The shop answers HTTP, not just TCP.
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to the shop on port $port"
printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
status=$(head -n1 <&3 | tr -d '\r')
exec 3<&-
case "$status" in
HTTP/1.?\ 200*) ;;
*) fail "GET / answered '$status'" ;;
esac
started=$(pids | wc -l)
[ "$started" -eq 5 ] || fail "expected the pids of the demo, 3 memcached and the shop in the output, found $started"
echo "test-demo-hangup: shop answers ($status); hanging up the terminal"

# The pty master closes: the kernel hangs up the session.
{ kill -KILL "$holder" && wait "$holder"; } 2>/dev/null || true
holder=""

deadline=$((SECONDS + STOP_TIMEOUT))
while :; do
	left=""
	for p in $(pids); do
		if alive "$p"; then left="$left $p"; fi
	done
	if [ -z "$left" ] && port_free "$port"; then break; fi
	[ $SECONDS -lt $deadline ] || fail "still running ${STOP_TIMEOUT}s after the hangup:$left (port $port free: $(port_free "$port" && echo yes || echo no))"
	sleep 0.1
done
echo "test-demo-hangup: ok: no demo, memcached or shop process left, port $port free"
