#!/usr/bin/env bash
# The core module (the repository's root) may depend on gorilla/securecookie,
# vmihailenco/msgpack, klauspost/compress and stretchr/testify (tests), and on
# what those depend on: nothing else. Everything that brings another
# dependency is a module of its own (adapters/, examples/, bench/).
#
# Checks that every module in `go list -m all` of the core module is one of
# those four or reachable from them in `go mod graph`.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off

allowed="github.com/gorilla/securecookie github.com/vmihailenco/msgpack/v5 github.com/klauspost/compress github.com/stretchr/testify"
main=$(go list -m)
bad=$(
	{
		echo "ALLOWED $allowed"
		go mod graph | sed 's/^/EDGE /'
		go list -m -f '{{if not .Main}}{{.Path}}{{end}}' all | sed '/^$/d; s/^/MOD /'
	} | awk -v main="$main" '
	function path(m) { sub(/@.*/, "", m); return m }
	$1 == "ALLOWED" { for (i = 2; i <= NF; i++) ok[$i] = 1; next }
	$1 == "EDGE" { from[++n] = path($2); to[n] = path($3); next }
	$1 == "MOD" { mods[$2] = 1; next }
	END {
		# Reachable from the allowed modules, to a fixed point.
		do {
			grew = 0
			for (i = 1; i <= n; i++)
				if ((from[i] in ok) && !(to[i] in ok)) { ok[to[i]] = 1; grew = 1 }
		} while (grew)
		for (m in mods) if (!(m in ok)) print m
	}' | sort
)
if [ -n "$bad" ]; then
	echo "check-core-deps: the core module depends on modules it must not (move the code that needs them to a module of its own):" >&2
	echo "$bad" >&2
	exit 1
fi
echo "check-core-deps: ok: $(go list -m all | wc -l | tr -d ' ') modules, all securecookie, msgpack, compress, testify or theirs"
