# Sourced by the test runners (conformance/run.sh, tests/cross/run.sh):
# start a server program that prints "PORT <n>" once ready.
#
#   start_server LOG COMMAND...   sets SERVER_PID, and SERVER_PORT (empty when
#                                 the server exited or stayed silent ~15 s)
#   stop_server                   SIGTERM and reap it
start_server() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  SERVER_PORT=""
  for _ in $(seq 300); do
    SERVER_PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$log" | head -n1)
    [ -n "$SERVER_PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 0
    sleep 0.05
  done
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
}
