#!/usr/bin/env bash
# Every binding's server called by the other bindings' clients (see README).
# Needs the bindings built (make test-python test-go test-lua do that).
#   bash tests/cross/run.sh BUILD_DIR
set -uo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/server-lib.sh
. "$repo/scripts/server-lib.sh"
pki="$build/cross-pki"
bash "$repo/scripts/gen-certs.sh" "$pki" || exit 1
export LUA_CPATH="$build/bindings/lua/?.so;;" LUA_PATH="$repo/bindings/lua/?.lua;;"
(cd "$here/go" && PKG_CONFIG_PATH="$build/go-pkgconfig" GOFLAGS=-mod=mod \
  go build -o "$build/cross-go-server" ./server && PKG_CONFIG_PATH="$build/go-pkgconfig" \
  GOFLAGS=-mod=mod go build -o "$build/cross-go-client" ./client) || exit 1

declare -A server client
server[python]="$build/pyenv/bin/python $here/server.py"
server[go]="$build/cross-go-server"
server[lua]="lua5.4 $here/server.lua"
client[python]="$build/pyenv/bin/python $here/client.py"
client[go]="$build/cross-go-client"
client[lua]="lua5.4 $here/client.lua"

passed=0 failed=0
for s in python go lua; do
  log=$(mktemp)
  start_server "$log" ${server[$s]} "$pki/server.pem" "$pki/server-key.pem"
  port=$SERVER_PORT
  for c in python go lua; do
    [ "$c" = "$s" ] && continue
    if [ -n "$port" ] && out=$(timeout 30 ${client[$c]} "$pki/ca.pem" "127.0.0.1:$port" 2>&1) &&
       [ "$(echo "$out" | tail -1)" = "ok" ]; then
      echo "PASS $c client -> $s server"
      passed=$((passed + 1))
    else
      echo "FAIL $c client -> $s server: ${out:-server did not start: $(cat "$log")}"
      failed=$((failed + 1))
    fi
  done
  stop_server
  rm -f "$log"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -eq 6 ]
