#!/usr/bin/env bash
# Unary 64 B round trip, one call in flight, through each language's client
# against the same C echo server process (examples/c/echo_server, inline
# handler), so the differences are the bindings' overhead. Prints p50/p99
# per language and the p50 overhead over C. A benchmark, not a test:
# languages whose binding is not built are reported and skipped.
#
# The machine is shared and noisy, so the languages take turns: ROUNDS
# rounds of CALLS calls each, and the table shows the median of the rounds.
#
#   bash bench/bindings/run.sh BUILD_DIR [CALLS] [ROUNDS]
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR [CALLS] [ROUNDS]}" && pwd)
calls=${2:-2000}
rounds=${3:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
pki="$build/bench-pki"
bash "$repo/scripts/gen-certs.sh" "$pki"

# Fixed placement, the same for every language: the server on CPU 1, each
# client process (its thread and its rpcnet I/O thread) on CPU 0. Left to
# the scheduler, placement changes run to run by tens of microseconds.
pin_srv="" pin_cli=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_srv="taskset -c 1" pin_cli="taskset -c 0"
fi

log=$(mktemp)
$pin_srv "$build/examples/echo_server" --cert "$pki/server.pem" --key "$pki/server-key.pem" \
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

declare -A p50 p99 cmd
run() { # name: one round, appending to p50[name] and p99[name]
  local name=$1 out
  if out=$(eval "$pin_cli ${cmd[$name]}" 2>&1 | tail -1) && [[ $out =~ ^[0-9.]+\ [0-9.]+$ ]]; then
    p50[$name]+="${out% *} "
    p99[$name]+="${out#* } "
  else
    echo "$name: failed ($out)" >&2
  fi
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]}'; }

langs=(C)
cmd[C]="'$build/bench/rpcnet_bench_rtt' '$pki/ca.pem' '$addr' $calls"
if [ -x "$build/pyenv/bin/python" ]; then
  langs+=(Python)
  cmd[Python]="'$build/pyenv/bin/python' '$repo/bench/bindings/rtt.py' '$pki/ca.pem' '$addr' $calls"
else
  echo "Python: skipped (run 'make test-python' first to build the binding)" >&2
fi
if [ -f "$build/go-pkgconfig/rpcnet.pc" ] && command -v go >/dev/null; then
  (cd "$repo/bench/bindings/go" && PKG_CONFIG_PATH="$build/go-pkgconfig" go build -o "$build/bench/rtt-go" .)
  langs+=(Go)
  cmd[Go]="'$build/bench/rtt-go' '$pki/ca.pem' '$addr' $calls"
else
  echo "Go: skipped (run 'make test-go' first)" >&2
fi
if [ -f "$build/bindings/lua/_rpcnet_c.so" ] && command -v lua5.4 >/dev/null; then
  langs+=(Lua)
  cmd[Lua]="env LUA_CPATH='$build/bindings/lua/?.so;;' LUA_PATH='$repo/bindings/lua/?.lua;;' lua5.4 '$repo/bench/bindings/rtt.lua' '$pki/ca.pem' '$addr' $calls"
else
  echo "Lua: skipped (the build has no bindings/lua/_rpcnet_c.so)" >&2
fi
# EXTRA_ROWS="name|command;name2|command2": more clients in the same
# rounds (each command gets CA_FILE ADDR CALLS and prints "p50_us p99_us"),
# e.g. a binding built from another commit, to compare variants in one run.
if [ -n "${EXTRA_ROWS:-}" ]; then
  IFS=';' read -ra extra <<<"$EXTRA_ROWS"
  for e in "${extra[@]}"; do
    langs+=("${e%%|*}")
    cmd[${e%%|*}]="${e#*|} '$pki/ca.pem' '$addr' $calls"
  done
fi
for _ in $(seq "$rounds"); do
  for lang in "${langs[@]}"; do run "$lang"; done
done

printf '\nunary 64 B, 1 call in flight; median of %s rounds of %s calls; server: C echo_server (other process)\n' "$rounds" "$calls"
printf '%-10s %10s %10s %14s\n' language "p50 us" "p99 us" "p50 - C p50"
c50=$(echo "${p50[C]:-}" | median)
for lang in "${langs[@]}"; do
  [ -n "${p50[$lang]:-}" ] || continue
  m50=$(echo "${p50[$lang]}" | median)
  m99=$(echo "${p99[$lang]}" | median)
  over=$(awk -v a="$m50" -v c="${c50:-0}" 'BEGIN{printf "%+.1f us", a-c}')
  printf '%-10s %10s %10s %14s\n' "$lang" "$m50" "$m99" "$over"
done
