#!/usr/bin/env python3
"""Echo server: `echo` (bytes), `add` (values) and `chat` (bidi stream).

    scripts/gen-certs.sh /tmp/pki
    python3 examples/python/echo_server.py --cert /tmp/pki/server.pem \
        --key /tmp/pki/server-key.pem --listen 127.0.0.1:7000
"""
import argparse

import rpcnet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--listen", default="127.0.0.1:7000")
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()

    server = rpcnet.Server(cert_file=args.cert, key_file=args.key)

    @server.method("echo", raw=True)
    def echo(req: bytes, ctx: rpcnet.Context) -> bytes:
        return req

    @server.method("add")
    def add(req, ctx):
        if not isinstance(req, dict) or "a" not in req or "b" not in req:
            raise rpcnet.InvalidArgument("want {'a': number, 'b': number}")
        return {"sum": req["a"] + req["b"]}

    @server.stream("chat")
    def chat(requests, ctx):
        for msg in requests:
            yield {"echo": msg, "from": ctx.peer}

    port = server.listen(args.listen)
    print("echo server on port %d (Ctrl-C stops)" % port, flush=True)
    try:
        server.serve(workers=args.workers)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown(drain=2.0)


if __name__ == "__main__":
    main()
