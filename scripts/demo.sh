#!/usr/bin/env bash
# Demo: starts examples/echo_server on a free loopback port with throw-away
# development certificates, calls it with examples/echo_client, and stops it.
#
#   scripts/demo.sh BUILD_DIR        (run by `make demo` after the build)
#
# Exits non-zero if any step fails; the server is always stopped.
set -euo pipefail

build=${1:?usage: demo.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "$build" && pwd)
server_bin=$build/examples/echo_server
client_bin=$build/examples/echo_client
pki=$build/demo-pki

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'demo: FAILED: %s\n' "$*" >&2; exit 1; }

for b in "$server_bin" "$client_bin"; do
  [ -x "$b" ] || fail "$b is missing (build first: cmake --build $build)"
done

say "development certificates in $pki"
bash "$root/scripts/gen-certs.sh" "$pki" || fail "gen-certs.sh"
ls "$pki"/*.pem | sed 's|.*/|   |'

log=$(mktemp "${TMPDIR:-/tmp}/rpcnet-demo.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting echo_server on 127.0.0.1:0"
"$server_bin" --cert "$pki/server.pem" --key "$pki/server-key.pem" --listen 127.0.0.1:0 \
  >"$log" 2>&1 &
server_pid=$!

port=
for _ in $(seq 100); do # up to 10 s
  port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$log" | head -n1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; fail "echo_server exited early"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log" >&2; fail "echo_server did not report its port within 10 s"; }
echo "   echo_server (pid $server_pid) is listening on UDP port $port"

client() { timeout 30 "$client_bin" --ca "$pki/ca.pem" --server-name localhost "$@"; }

say "echo_client: three messages to 'echo'"
client "127.0.0.1:$port" "hello" "rpcnet over QUIC + TLS 1.3" "$(head -c 3000 /dev/zero | tr '\0' 'x')" \
  || fail "echo calls"

say "echo_client: 'upper'"
client --method upper "127.0.0.1:$port" "make me loud" || fail "upper call"

say "echo_client: a method the server does not have (must fail with UNIMPLEMENTED)"
if out=$(client --method nope "127.0.0.1:$port" "x" 2>&1); then
  echo "$out"
  fail "calling an unknown method succeeded"
fi
echo "$out"
grep -q UNIMPLEMENTED <<<"$out" || fail "expected UNIMPLEMENTED"

say "echo_client trusting the wrong CA (must be refused)"
if out=$(timeout 30 "$client_bin" --ca "$pki/other-ca.pem" "127.0.0.1:$port" "x" 2>&1); then
  echo "$out"
  fail "a client trusting the wrong CA connected"
fi
echo "$out"

say "stopping echo_server (SIGTERM)"
kill -TERM "$server_pid"
status=0
for _ in $(seq 100); do # up to 10 s
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
  cat "$log"
  fail "echo_server did not stop within 10 s of SIGTERM"
fi
wait "$server_pid" || status=$?
server_pid=
sed 's/^/   server: /' "$log"
[ "$status" -eq 0 ] || fail "echo_server exited with status $status"

say "demo passed"
