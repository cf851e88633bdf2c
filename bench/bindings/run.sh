#!/usr/bin/env bash
# Unary 64 B round trip, one call in flight, through each language's client
# against the same C echo server process (examples/c/echo_server, inline
# handler), so the differences are the bindings' overhead. Prints p50/p99
# per language and the p50 overhead over C. A benchmark, not a test:
# languages whose binding is not built are reported and skipped.
#
#   bash bench/bindings/run.sh BUILD_DIR [CALLS]
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR [CALLS]}" && pwd)
calls=${2:-3000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
pki="$build/bench-pki"
bash "$repo/scripts/gen-certs.sh" "$pki"

log=$(mktemp)
"$build/examples/echo_server" --cert "$pki/server.pem" --key "$pki/server-key.pem" \
  --listen 127.0.0.1:0 >"$log" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on \([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "${port:-}" ] || { echo "echo_server did not start: $(cat "$log")" >&2; exit 1; }
addr="127.0.0.1:$port"

declare -A p50 p99
run() { # name command...
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1 | tail -1) && [[ $out =~ ^[0-9.]+\ [0-9.]+$ ]]; then
    p50[$name]=${out% *}
    p99[$name]=${out#* }
  else
    echo "$name: skipped ($out)" >&2
  fi
}

run C "$build/bench/rpcnet_bench_rtt" "$pki/ca.pem" "$addr" "$calls"
if [ -x "$build/pyenv/bin/python" ]; then
  run Python "$build/pyenv/bin/python" "$repo/bench/bindings/rtt.py" "$pki/ca.pem" "$addr" "$calls"
else
  echo "Python: skipped (run 'make test-python' first to build the binding)" >&2
fi
if [ -f "$build/go-pkgconfig/rpcnet.pc" ] && command -v go >/dev/null; then
  run Go env PKG_CONFIG_PATH="$build/go-pkgconfig" \
    bash -c "cd '$repo/bench/bindings/go' && go run . '$pki/ca.pem' '$addr' '$calls'"
else
  echo "Go: skipped (run 'make test-go' first)" >&2
fi
if [ -f "$repo/bench/bindings/rtt.lua" ] && [ -n "${RPCNET_LUA_CPATH:-}" ]; then
  run Lua env LUA_CPATH="$RPCNET_LUA_CPATH" LUA_PATH="$repo/bindings/lua/?.lua;;" \
    lua5.4 "$repo/bench/bindings/rtt.lua" "$pki/ca.pem" "$addr" "$calls"
fi

printf '\nunary 64 B, 1 call in flight, %s calls per language, server: C echo_server (other process)\n' "$calls"
printf '%-8s %10s %10s %14s\n' language "p50 us" "p99 us" "p50 - C p50"
for lang in C Python Go Lua; do
  [ -n "${p50[$lang]:-}" ] || continue
  over=$(awk -v a="${p50[$lang]}" -v c="${p50[C]:-0}" 'BEGIN{printf "%+.1f us", a-c}')
  printf '%-8s %10s %10s %14s\n' "$lang" "${p50[$lang]}" "${p99[$lang]}" "$over"
done
