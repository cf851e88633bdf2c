#!/usr/bin/env bash
# The conformance matrix: every server language × every client language on
# the cases of conformance/README.md, plus a "record" column: each client's
# "frames" case against the C recorder that compares raw request bytes with
# frames.json. Prints the matrix (rows: client, columns: server, cells:
# passed/total), writes BUILD/conformance-report.json
# (every case's result and time per cell) and exits non-zero on any failure,
# or when a cell ran no case.
#
#   bash conformance/run.sh BUILD_DIR [--server LANG]... [--client LANG]... [--case NAME]...
set -uo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR [--server L]... [--client L]... [--case NAME]...}" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
servers=() clients=() cases=()
while [ $# -gt 0 ]; do
  case $1 in
    --server) servers+=("$2"); shift 2 ;;
    --client) clients+=("$2"); shift 2 ;;
    --case) cases+=(--case "$2"); shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
all=(c python go lua)
[ ${#servers[@]} -gt 0 ] || servers=("${all[@]}")
[ ${#clients[@]} -gt 0 ] || clients=("${all[@]}")

# shellcheck source=../scripts/server-lib.sh
. "$repo/scripts/server-lib.sh"
pki="$build/conformance-pki"
bash "$repo/scripts/gen-certs.sh" "$pki" || exit 1
export RPCNET_VECTORS="$repo/conformance/vectors/values.json"
export LUA_CPATH="$build/bindings/lua/?.so;;" LUA_PATH="$repo/bindings/lua/?.lua;;"

# Go programs are built here; the others run from the tree or the build.
if [[ " ${servers[*]} ${clients[*]} " == *" go "* ]]; then
  (cd "$here/go" && export PKG_CONFIG_PATH="$build/go-pkgconfig" GOFLAGS=-mod=mod &&
    go build -o "$build/conformance-go-server" ./server &&
    go build -o "$build/conformance-go-client" ./client) || { echo "run.sh: go build failed" >&2; exit 1; }
fi

declare -A server client
server[c]="$build/conformance/c/conformance_server"
client[c]="$build/conformance/c/conformance_client"
server[python]="$build/pyenv/bin/python $here/python/server.py"
client[python]="$build/pyenv/bin/python $here/python/client.py"
server[go]="$build/conformance-go-server"
client[go]="$build/conformance-go-client"
server[lua]="lua5.4 $here/lua/server.lua"
client[lua]="lua5.4 $here/lua/client.lua"

out="$build/conformance-results"
rm -rf "$out"
mkdir -p "$out"
for s in "${servers[@]}"; do
  start_server "$out/server-$s.log" ${server[$s]} "$pki/server.pem" "$pki/server-key.pem"
  port=$SERVER_PORT
  for c in "${clients[@]}"; do
    res="$out/$c-$s.jsonl"
    if [ -z "$port" ]; then
      echo '{"case": "server_start", "ok": false, "ms": 0, "error": "server did not print PORT"}' >"$res"
      continue
    fi
    t0=$(date +%s)
    timeout 300 ${client[$c]} --ca "$pki/ca.pem" --addr "127.0.0.1:$port" \
      --vectors "$RPCNET_VECTORS" "${cases[@]}" >"$res" 2>"$out/$c-$s.stderr"
    rc=$?
    [ $rc -eq 0 ] || echo "{\"case\": \"client_exit\", \"ok\": false, \"ms\": 0, \"error\": \"client exited $rc after $(( $(date +%s) - t0 )) s\"}" >>"$res"
  done
  stop_server
done

# Byte-level proof: every client's "frames" case against the white-box C
# recorder, which compares the raw request bytes with frames.json.
start_server "$out/server-record.log" "$build/conformance/c/conformance_record_server" \
  "$pki/server.pem" "$pki/server-key.pem"
port=$SERVER_PORT
for c in "${clients[@]}"; do
  res="$out/$c-record.jsonl"
  if [ -z "$port" ]; then
    echo '{"case": "frames", "ok": false, "ms": 0, "error": "recorder did not print PORT"}' >"$res"
    continue
  fi
  timeout 60 ${client[$c]} --ca "$pki/ca.pem" --addr "127.0.0.1:$port" \
    --vectors "$RPCNET_VECTORS" --case frames >"$res" 2>"$out/$c-record.stderr" ||
    echo '{"case": "client_exit", "ok": false, "ms": 0, "error": "client failed"}' >>"$res"
done
stop_server

python3 - "$out" "$build/conformance-report.json" "${servers[*]} record" "${clients[*]}" <<'PY'
import json, os, sys
out, report, servers, clients = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
cells, bad = {}, 0
for c in clients:
    for s in servers:
        rows = []
        path = os.path.join(out, f"{c}-{s}.jsonl")
        for line in open(path, encoding="utf-8", errors="replace") if os.path.exists(path) else []:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                rows.append({"case": "unparsable_output", "ok": False, "error": line[:200]})
        passed = sum(1 for r in rows if r.get("ok") is True)
        cells[f"{c}->{s}"] = {"client": c, "server": s, "passed": passed, "total": len(rows),
                              "cases": rows}
        if passed != len(rows) or not rows:
            bad += 1
json.dump({"cells": cells}, open(report, "w"), indent=1, ensure_ascii=False)
w = max(len(s) for s in servers) + 10
print("client \\ server".ljust(16) + "".join(s.rjust(w) for s in servers))
for c in clients:
    line = c.ljust(16)
    for s in servers:
        cell = cells[f"{c}->{s}"]
        line += f"{cell['passed']}/{cell['total']}".rjust(w)
    print(line)
for key, cell in cells.items():
    for r in cell["cases"]:
        if r.get("ok") is not True:
            print(f"FAIL {key} {r.get('case')}: {r.get('error', '')}"[:300])
npass = sum(1 for k, v in cells.items() if v["passed"] == v["total"] and v["total"])
print(f"report: {report}")
print(f"{npass} passed, {len(cells) - npass} failed")
sys.exit(1 if bad else 0)
PY
