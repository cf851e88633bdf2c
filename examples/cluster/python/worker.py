#!/usr/bin/env python3
"""A cluster worker in Python: an rpcnet server that joins a cluster and
serves "work" (the Python twin of examples/cluster/c/worker.c).

    python3 examples/cluster/python/worker.py --name NAME --cert F --key F --ca F
        [--gossip HOST:PORT] [--listen HOST:PORT] [--join SEEDS] [--keys KEYS]
        [--tag k=v]... [--lang L] [--probe-ms N]

(with the package installed, or PYTHONPATH=build/bindings/python for the
build tree's copy).

Methods:
  work    answers "<lang>:<name>:" followed by the request (raw bytes)
  whoami  answers the node name

Tags: role=worker, lang=<lang>, then every --tag. Prints
"ready NAME gossip PORT rpc PORT" once joined, then "event TYPE MEMBER STATE"
per membership event (MEMBER and STATE are "-" for partitioned/healed),
flushed at once. Commands on stdin, one per line:
  tag K=V   sets a tag (gossiped)
  leave     leaves gracefully, prints "left STATUS_NAME" and exits 0
SIGTERM and SIGINT also leave gracefully; EOF on stdin is ignored. A failed
join prints the error to stderr and exits 3.

Events arrive through `async for ev in cluster.aevents()` (the cluster's fd
watched by the asyncio loop); handlers run on the server's worker threads.
"""
import argparse
import asyncio
import os
import signal
import sys

import rpcnet


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="rpcnet cluster worker (Python)")
    ap.add_argument("--name", default="worker-%d" % os.getpid())
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--gossip", default="127.0.0.1:0")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--join")
    ap.add_argument("--keys")
    ap.add_argument("--tag", action="append", default=[])
    ap.add_argument("--lang", default="python")
    ap.add_argument("--probe-ms", type=int)
    return ap.parse_args()


async def serve(cl: rpcnet.Cluster) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def print_events() -> None:
        async for ev in cl.aevents():
            m = ev.member
            out("event %s %s %s" % (ev.type, m.name if m else "-", m.state if m else "-"))

    buf = bytearray()

    def command(line: str) -> None:
        if line.startswith("tag "):
            k, eq, v = line[4:].partition("=")
            if not eq:
                return
            try:
                cl.set_tag(k, v)
                out("tagged %s=%s" % (k, v))
            except rpcnet.RpcError as e:
                print("worker: tag %s: %s" % (k, e), file=sys.stderr, flush=True)
        elif line == "leave":
            stop.set()

    def stdin_ready() -> None:
        data = os.read(0, 4096)
        if not data:  # EOF: keep serving
            loop.remove_reader(0)
            return
        buf.extend(data)
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            command(line.decode("utf-8", "replace").strip())

    try:
        loop.add_reader(0, stdin_ready)
    except (OSError, ValueError):  # stdin not pollable (a regular file, closed)
        pass
    events = asyncio.ensure_future(print_events())
    await stop.wait()
    try:
        cl.leave(2.0)
        status = "OK"
    except rpcnet.RpcError as e:
        status = e.name
    out("left %s" % status)
    events.cancel()
    try:
        await events
    except asyncio.CancelledError:
        pass


def main() -> int:
    args = parse_args()
    me = args.name
    prefix = ("%s:%s:" % (args.lang, me)).encode()

    server = rpcnet.Server(cert_file=args.cert, key_file=args.key)

    @server.method("work", raw=True)
    def work(req: bytes, ctx: rpcnet.Context) -> bytes:
        return prefix + req

    @server.method("whoami", raw=True)
    def whoami(req: bytes, ctx: rpcnet.Context) -> bytes:
        return me.encode()

    rpc_port = server.listen(args.listen)
    server.start(workers=4)
    try:
        cl = rpcnet.Cluster(node_name=me, gossip_bind=args.gossip, cluster_keys=args.keys,
                            ca_file=args.ca, server_name="localhost",
                            probe_interval_ms=args.probe_ms, server=server)
    except rpcnet.RpcError as e:
        print("worker: cluster: %s" % e, file=sys.stderr, flush=True)
        server.shutdown(drain=0)
        return 1
    try:
        cl.set_tag("role", "worker")
        cl.set_tag("lang", args.lang)
        for t in args.tag:
            k, eq, v = t.partition("=")
            if eq:
                cl.set_tag(k, v)
        if args.join:
            try:
                cl.join(args.join)
            except rpcnet.RpcError as e:
                print("worker: join failed: %s" % e, file=sys.stderr, flush=True)
                return 3
        out("ready %s gossip %d rpc %d" % (me, cl.gossip_port, rpc_port))
        asyncio.run(serve(cl))
    finally:
        cl.close()  # the cluster first: the server must outlive it
        server.shutdown(drain=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
