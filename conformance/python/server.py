#!/usr/bin/env python3
"""rpcnet conformance server (Python binding).

    python server.py CERT_FILE KEY_FILE

Listens on 127.0.0.1:0, prints ``PORT <n>`` once ready and serves the
conformance service of conformance/README.md (docs/wire-format.md 8.1) until
killed. EchoValue compares with the vectors of $RPCNET_VECTORS.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterator

import rpcnet
from rpcnet import cbor

LANG = "python"
WORKERS = 16


def payload(n: int) -> bytes:
    """n bytes, byte i equal to i % 251."""
    pattern = bytes(range(251))
    reps, rest = divmod(n, 251)
    return pattern * reps + pattern[:rest]


def check_payload(b: Any, what: str) -> int:
    if not isinstance(b, bytes):
        raise rpcnet.InvalidArgument("%s: payload is %s, not bytes" % (what, type(b).__name__))
    if b != payload(len(b)):
        raise rpcnet.InvalidArgument("%s: payload of %d bytes does not follow i %% 251"
                                     % (what, len(b)))
    return len(b)


def size_of(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise rpcnet.InvalidArgument("%s: size must be an unsigned integer, got %r" % (what, v))
    if v > 16 * 1024 * 1024:
        raise rpcnet.InvalidArgument("%s: size %d is too large" % (what, v))
    return v


def want_map(req: Any, what: str) -> Dict[Any, Any]:
    if not isinstance(req, dict):
        raise rpcnet.InvalidArgument("%s: request is %s, not a map" % (what, type(req).__name__))
    return req


def load_vectors() -> Dict[str, Dict[str, Any]]:
    path = os.environ.get("RPCNET_VECTORS")
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        return {v["name"]: v for v in json.load(f)["vectors"]}


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: server.py CERT_FILE KEY_FILE", file=sys.stderr)
        return 2
    cert, key = sys.argv[1], sys.argv[2]
    vectors = load_vectors()
    sleeps: Dict[str, str] = {}  # what Sleep saw, per peer (logged to stderr)
    server = rpcnet.Server(cert_file=cert, key_file=key)

    @server.method("conformance.Empty")
    def empty(req: Any, ctx: rpcnet.Context) -> Any:
        want_map(req, "Empty")
        return {}

    @server.method("conformance.Unary")
    def unary(req: Any, ctx: rpcnet.Context) -> Any:
        req = want_map(req, "Unary")
        if "payload" in req:
            check_payload(req["payload"], "Unary")
        status = req.get("status", 0)
        if status:
            if isinstance(status, bool) or not isinstance(status, int):
                raise rpcnet.InvalidArgument("Unary: status must be an integer")
            message = req.get("message", "")
            if not isinstance(message, str):
                raise rpcnet.InvalidArgument("Unary: message must be text")
            raise rpcnet.RpcError(status, message)
        return {"payload": payload(size_of(req.get("size", 0), "Unary"))}

    @server.stream("conformance.ClientStream")
    def client_stream(requests: Iterator[Any], ctx: rpcnet.Context) -> Any:
        total = 0
        for r in requests:
            r = want_map(r, "ClientStream")
            total += check_payload(r.get("payload", b""), "ClientStream")
        return {"aggregate": total}

    @server.stream("conformance.ServerStream")
    def server_stream(requests: Iterator[Any], ctx: rpcnet.Context) -> Iterator[Any]:
        sizes = None
        for r in requests:
            if sizes is None:
                sizes = want_map(r, "ServerStream").get("sizes")
        if not isinstance(sizes, list):
            raise rpcnet.InvalidArgument("ServerStream: want one {\"sizes\": [n, ...]}")
        sizes = [size_of(n, "ServerStream") for n in sizes]
        for n in sizes:
            yield {"payload": payload(n)}

    @server.stream("conformance.Bidi")
    def bidi(requests: Iterator[Any], ctx: rpcnet.Context) -> Iterator[Any]:
        for r in requests:
            r = want_map(r, "Bidi")
            if "payload" in r:
                check_payload(r["payload"], "Bidi")
            yield {"payload": payload(size_of(r.get("size", 0), "Bidi"))}

    @server.method("conformance.Sleep")
    def sleep(req: Any, ctx: rpcnet.Context) -> Any:
        req = want_map(req, "Sleep")
        ms = req.get("ms", 0)
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
            raise rpcnet.InvalidArgument("Sleep: ms must be a non-negative number")
        start = time.monotonic()
        end = start + ms / 1000.0
        while True:
            if ctx.cancelled:
                dl = ctx.deadline
                what = "deadline passed" if dl is not None and dl <= 0 else "cancelled"
                sleeps[ctx.peer] = "%s after %.0f ms" % (what, (time.monotonic() - start) * 1000)
                print("Sleep(%s ms): %s" % (ms, sleeps[ctx.peer]), file=sys.stderr, flush=True)
                if what == "deadline passed":
                    raise rpcnet.DeadlineExceeded("deadline passed while sleeping")
                raise rpcnet.Cancelled("cancelled while sleeping")
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.005))
        sleeps[ctx.peer] = "slept %s ms" % ms
        return {}

    @server.method("conformance.EchoValue", raw=True)
    def echo_value(data: bytes, ctx: rpcnet.Context) -> bytes:
        name = ctx.metadata.get("x-vector")
        if not name:
            raise rpcnet.InvalidArgument("EchoValue: no x-vector metadata")
        vec = vectors.get(name)
        if vec is None:
            raise rpcnet.NotFound("EchoValue: no vector %r in $RPCNET_VECTORS" % name)
        if "error" in vec:
            raise rpcnet.InvalidArgument("EchoValue: vector %r is an error vector" % name)
        canonical = bytes.fromhex(vec.get("canonical", vec["hex"]))
        if data != canonical:
            raise rpcnet.DataLoss("vector %s: received bytes differ from the canonical bytes: "
                                  "got %s, want %s" % (name, data.hex(), canonical.hex()))
        try:
            value = cbor.loads(data)
        except cbor.CBORDecodeError as e:
            expected = vec.get("binding_errors", {}).get(LANG)
            if expected is not None and e.kind == expected:
                # The value is outside what Python can hold (spec 7.3):
                # the documented binding error, not a wire mismatch.
                raise rpcnet.Unimplemented("vector %s: the python binding cannot decode it "
                                           "(binding_errors: %s)" % (name, e.kind))
            raise rpcnet.DataLoss("vector %s: decode failed: %s" % (name, e))
        try:
            again = cbor.dumps(value)
        except (cbor.CBORError, TypeError) as e:
            raise rpcnet.DataLoss("vector %s: re-encode failed: %s" % (name, e))
        if again != canonical:
            raise rpcnet.DataLoss("vector %s: re-encoded bytes differ: got %s, want %s"
                                  % (name, again.hex(), canonical.hex()))
        return again

    @server.method("conformance.EchoMetadata")
    def echo_metadata(req: Any, ctx: rpcnet.Context) -> Any:
        want_map(req, "EchoMetadata")
        for k, v in ctx.metadata.items():
            ctx.set_trailer(k, v)
        return {}

    port = server.listen("127.0.0.1:0")

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, kwargs={"drain": 0.5}, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("PORT %d" % port, flush=True)
    server.serve(workers=WORKERS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
