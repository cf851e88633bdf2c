#!/usr/bin/env bash
# A director/worker cluster on loopback: workers in C, Python, Go and Lua
# join by gossip (sealed with a cluster key), the C director spreads "work"
# calls over every worker and prints who served what, then every worker
# leaves gracefully.
#
#   bash examples/cluster/run.sh BUILD_DIR [CALLS]     (make cluster-demo)
#
# Needs the build and the bindings (make cluster-demo builds what is
# missing). Exits non-zero when a worker fails to join or a call fails.
set -uo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR [CALLS]}" && pwd)
calls=${2:-200}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
pki="$build/cluster-pki"
bash "$repo/scripts/gen-certs.sh" "$pki" || exit 1
key=$(head -c 32 /dev/urandom | base64) # a fresh cluster key for this run
export LUA_CPATH="$build/bindings/lua/?.so;;" LUA_PATH="$repo/bindings/lua/?.lua;;"

declare -A cmd
cmd[c]="$build/examples/cluster_worker"
cmd[python]="$build/pyenv/bin/python $here/python/worker.py"
cmd[go]="$build/examples/cluster_worker_go"
cmd[lua]="lua5.4 $here/lua/worker.lua"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

# start LANG NAME [SEED]: runs a worker with a FIFO on stdin (fd 10+i kept
# open for commands) and waits for its "ready" line.
seed=
n=0
start() {
  local lang=$1 name=$2
  mkfifo "$work/$name.in"
  ${cmd[$lang]} --name "$name" --lang "$lang" --cert "$pki/server.pem" \
    --key "$pki/server-key.pem" --ca "$pki/ca.pem" --keys "$key" \
    ${seed:+--join "$seed"} <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "exec $((10 + n))>\"$work/$name.in\""
  n=$((n + 1))
  for _ in $(seq 200); do
    if grep -q '^ready ' "$work/$name.out"; then
      local port
      port=$(sed -n 's/^ready [^ ]* gossip \([0-9]*\) .*/\1/p' "$work/$name.out")
      [ -n "$seed" ] || seed="127.0.0.1:$port"
      echo "worker $name ($lang) ready: $(head -1 "$work/$name.out")"
      return 0
    fi
    sleep 0.1
  done
  echo "worker $name ($lang) did not start:" >&2
  cat "$work/$name.err" >&2
  return 1
}

start c worker-c || exit 1
for lang in python go lua; do
  start "$lang" "worker-$lang" || exit 1
done

echo "director: $calls idempotent calls over role=worker"
"$build/examples/cluster_director" --name director --ca "$pki/ca.pem" --keys "$key" \
  --join "$seed" --expect 4 --calls "$calls" --strategy round_robin >"$work/director.out" 2>&1
rc=$?
grep -E '^(served|lang|failed) ' "$work/director.out"
[ $rc -eq 0 ] || { echo "director failed ($rc):"; tail -20 "$work/director.out"; }

i=0
for name in worker-c worker-python worker-go worker-lua; do
  echo leave >&$((10 + i))
  i=$((i + 1))
done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
echo "workers left:"
grep -h '^left ' "$work"/*.out | sort | uniq -c
echo "what worker-c saw:"
grep -h '^event ' "$work/worker-c.out" | sed 's/^/  /'
exit $rc
