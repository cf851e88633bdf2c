#!/usr/bin/env python3
"""Calls examples/python/echo_server.py.

    python3 examples/python/echo_client.py --ca /tmp/pki/ca.pem --addr 127.0.0.1:7000
"""
import argparse
import asyncio

import rpcnet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--addr", default="127.0.0.1:7000")
    args = ap.parse_args()

    with rpcnet.connect(args.addr, ca_file=args.ca, server_name="localhost") as client:
        print("echo ->", client.call_raw("echo", b"hello\x00world", timeout=2.0))
        print("add  ->", client.call("add", {"a": 1, "b": 2}))
        try:
            client.call("add", "oops")
        except rpcnet.InvalidArgument as e:
            print("add  -> error", e.name, e.message)
        with client.bidi("chat") as chat:
            for word in ("one", "two", "three"):
                chat.send(word)
                print("chat ->", next(chat))
            chat.close_send()
            list(chat)
            print("chat status:", chat.status_name, "trailers:", dict(chat.trailers))

        async def concurrently():
            return await asyncio.gather(*(client.acall("add", {"a": i, "b": i}) for i in range(5)))

        print("async ->", asyncio.run(concurrently()))


if __name__ == "__main__":
    main()
