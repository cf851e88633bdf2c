#!/usr/bin/env python3
"""rpcnet conformance client driver (Python binding).

    python client.py --ca CA_FILE --addr HOST:PORT --vectors VALUES_JSON [--case NAME]...

Runs the cases of conformance/README.md (all when none is named) and prints
one JSON object per case: {"case": ..., "ok": ..., "ms": ..., "error": ...}.
Exits 0 unless the driver itself breaks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import rpcnet
from rpcnet import cbor

LANG = "python"
TIMEOUT = 10.0  # seconds per call unless the case says otherwise

REQ_SIZES = [27182, 8, 1828, 45904]
RESP_SIZES = [31415, 9, 2653, 58979]
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class Failed(Exception):
    pass


def payload(n: int) -> bytes:
    pattern = bytes(range(251))
    reps, rest = divmod(n, 251)
    return pattern * reps + pattern[:rest]


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise Failed(msg)


def short(v: Any, n: int = 120) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def check_payload_msg(msg: Any, size: int, what: str) -> None:
    expect(isinstance(msg, dict), "%s: response is %s, not a map: %s"
           % (what, type(msg).__name__, short(msg)))
    expect(set(msg) == {"payload"}, "%s: response keys %s, want ['payload']"
           % (what, sorted(map(str, msg))))
    p = msg["payload"]
    expect(isinstance(p, bytes), "%s: payload is %s, not bytes" % (what, type(p).__name__))
    expect(len(p) == size, "%s: payload of %d bytes, want %d" % (what, len(p), size))
    if p != payload(size):
        i = next(i for i in range(size) if p[i] != i % 251)
        raise Failed("%s: payload byte %d is %d, want %d" % (what, i, p[i], i % 251))


def expect_status(fn: Callable[[], Any], code: int, what: str,
                  message: Optional[str] = None) -> rpcnet.RpcError:
    try:
        out = fn()
    except rpcnet.RpcError as e:
        expect(e.code == code, "%s: status %d %s (%r), want %d %s"
               % (what, e.code, e.name, e.message, code, rpcnet.status_name(code)))
        if message is not None:
            expect(e.message == message, "%s: message %r, want %r" % (what, e.message, message))
        return e
    raise Failed("%s: succeeded (%s), want status %d %s"
                 % (what, short(out), code, rpcnet.status_name(code)))


def drain_end(call: rpcnet.Call, what: str) -> None:
    """Reads to the end of a call that must send no more messages and end OK."""
    extra = 0
    for _ in call:
        extra += 1
    expect(extra == 0, "%s: %d unexpected extra message(s)" % (what, extra))
    expect(call.status == rpcnet.OK, "%s: status %s, want OK" % (what, call.status_name))


class Driver:
    def __init__(self, addr: str, ca: str, vectors_path: str) -> None:
        self.addr = addr
        self.ca = ca
        self.vectors_path = vectors_path
        self._client: Optional[rpcnet.Client] = None

    @property
    def client(self) -> rpcnet.Client:
        if self._client is None or self._client.closed:
            self._client = rpcnet.connect(self.addr, ca_file=self.ca, server_name="localhost")
        return self._client

    def reset(self) -> None:
        """After a connection-level failure the next case gets a fresh connection."""
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None

    # -- the cases -------------------------------------------------------
    def empty_unary(self) -> None:
        out = self.client.call("conformance.Empty", {}, timeout=TIMEOUT)
        expect(out == {}, "response %s, want {}" % short(out))

    def large_unary(self) -> None:
        out = self.client.call("conformance.Unary",
                               {"size": 314159, "payload": payload(271828)}, timeout=TIMEOUT)
        check_payload_msg(out, 314159, "response")

    def client_streaming(self) -> None:
        out = self.client.client_stream("conformance.ClientStream",
                                        ({"payload": payload(n)} for n in REQ_SIZES),
                                        timeout=TIMEOUT)
        expect(out == {"aggregate": 74922}, "response %s, want {'aggregate': 74922}" % short(out))
        expect(type(out["aggregate"]) is int, "aggregate is not an integer")

    def server_streaming(self) -> None:
        with self.client.server_stream("conformance.ServerStream", {"sizes": RESP_SIZES},
                                       timeout=TIMEOUT) as call:
            got = 0
            for i, msg in enumerate(call):
                expect(i < len(RESP_SIZES), "more than %d messages" % len(RESP_SIZES))
                check_payload_msg(msg, RESP_SIZES[i], "message %d" % i)
                got += 1
            expect(got == len(RESP_SIZES), "%d messages, want %d" % (got, len(RESP_SIZES)))
            expect(call.status == rpcnet.OK, "status %s, want OK" % call.status_name)

    def ping_pong(self) -> None:
        with self.client.bidi("conformance.Bidi", timeout=TIMEOUT) as call:
            for i, (req, resp) in enumerate(zip(REQ_SIZES, RESP_SIZES)):
                call.send({"size": resp, "payload": payload(req)})
                try:
                    msg = call.recv(timeout=TIMEOUT)
                except EOFError:
                    raise Failed("stream ended OK before response %d" % i)
                check_payload_msg(msg, resp, "response %d" % i)
            call.close_send()
            drain_end(call, "after close")

    def empty_stream(self) -> None:
        with self.client.bidi("conformance.Bidi", timeout=TIMEOUT) as call:
            call.close_send()
            drain_end(call, "empty stream")

    def cancel_after_begin(self) -> None:
        with self.client.stream("conformance.ClientStream", timeout=TIMEOUT) as call:
            # A short receive puts the call on the wire (its header goes
            # out), so the cancellation below reaches the server.
            try:
                call.recv(timeout=0.02)
            except TimeoutError:
                pass
            call.cancel()
            expect_status(lambda: call.send({"payload": payload(8)}), rpcnet.CANCELLED,
                          "send after cancel")
            expect_status(call.result, rpcnet.CANCELLED, "result")
            expect(call.status == rpcnet.CANCELLED, "status %s, want CANCELLED" % call.status_name)

    def cancel_after_first_response(self) -> None:
        with self.client.bidi("conformance.Bidi", timeout=TIMEOUT) as call:
            call.send({"size": RESP_SIZES[0], "payload": payload(REQ_SIZES[0])})
            try:
                msg = call.recv(timeout=TIMEOUT)
            except EOFError:
                raise Failed("stream ended OK before the first response")
            check_payload_msg(msg, RESP_SIZES[0], "first response")
            call.cancel()
            expect_status(lambda: list(call), rpcnet.CANCELLED, "after cancel")
            expect(call.status == rpcnet.CANCELLED, "status %s, want CANCELLED" % call.status_name)
            expect_status(lambda: call.send({"size": 1, "payload": b"\x00"}), rpcnet.CANCELLED,
                          "send after cancel")

    def timeout_on_sleeping_server(self) -> None:
        t0 = time.monotonic()
        expect_status(lambda: self.client.call("conformance.Sleep", {"ms": 5000}, timeout=0.1),
                      rpcnet.DEADLINE_EXCEEDED, "Sleep 5000 ms with a 100 ms deadline")
        took = time.monotonic() - t0
        expect(took >= 0.099, "DEADLINE_EXCEEDED after %.1f ms, before the deadline" % (took * 1e3))
        expect(took < 2.0, "DEADLINE_EXCEEDED only after %.1f ms" % (took * 1e3))

    def custom_metadata(self) -> None:
        md = {"x-grpc-test-echo-initial": "test_initial_metadata_value",
              "x-grpc-test-echo-trailing-bin": b"\xab\xab\xab"}
        with self.client.stream("conformance.EchoMetadata", timeout=TIMEOUT,
                                metadata=md) as call:
            call.send({})
            out = call.result()
            expect(out == {}, "response %s, want {}" % short(out))
            tr = dict(call.trailers)
        for k, v in md.items():
            expect(k in tr, "trailer %r missing (trailers: %s)" % (k, short(tr)))
            expect(tr[k] == v and type(tr[k]) is type(v), "trailer %r is %r, want %r" % (k, tr[k], v))

    def _status_case(self, message: str) -> None:
        expect_status(lambda: self.client.call(
            "conformance.Unary", {"size": 0, "payload": b"", "status": 2, "message": message},
            timeout=TIMEOUT), rpcnet.UNKNOWN, "Unary with status 2", message)

    def status_code_and_message(self) -> None:
        self._status_case("test status message")

    def special_status_message(self) -> None:
        self._status_case(SPECIAL_MESSAGE)

    def unimplemented_method(self) -> None:
        expect_status(lambda: self.client.call("conformance.NoSuchMethod", {}, timeout=TIMEOUT),
                      rpcnet.UNIMPLEMENTED, "conformance.NoSuchMethod")

    def frames(self) -> None:
        """Byte-level proof, against conformance_record_server only (--case
        frames): the request of frames.json request_header_timeout_metadata +
        unary_request; the recorder answers OK when the bytes match."""
        self.client.call_raw("/echo.Echo/Say", b"hello", timeout=TIMEOUT,
                             metadata={"authorization": "Bearer abc",
                                       "trace-bin": b"\x01\x02\xff"})

    def value(self, vec: Dict[str, Any]) -> Optional[str]:
        name = vec["name"]
        canonical = bytes.fromhex(vec.get("canonical", vec["hex"]))
        try:
            v = cbor.loads(canonical)
        except cbor.CBORDecodeError as e:
            raise Failed("decoding the canonical bytes %s failed: %s" % (canonical.hex(), e))
        enc = cbor.dumps(v)
        expect(enc == canonical, "re-encoded %s, want %s" % (enc.hex(), canonical.hex()))
        try:
            got = self.client.call_raw("conformance.EchoValue", enc, timeout=TIMEOUT,
                                       metadata={"x-vector": name})
        except rpcnet.Unimplemented as e:
            # The server's binding cannot decode this vector (its binding_errors
            # name the server's language): accepted, with a note.
            if vec.get("binding_errors"):
                return "server answered UNIMPLEMENTED (binding_errors %s): %s" % (
                    json.dumps(vec["binding_errors"]), e.message)
            raise
        expect(got == canonical, "echoed bytes differ: got %s, want %s"
               % (got.hex(), canonical.hex()))
        try:
            cbor.loads(got)
        except cbor.CBORDecodeError as e:
            raise Failed("the echoed bytes do not decode: %s" % e)
        return None


CASES = ["empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
         "empty_stream", "cancel_after_begin", "cancel_after_first_response",
         "timeout_on_sleeping_server", "custom_metadata", "status_code_and_message",
         "special_status_message", "unimplemented_method"]


def value_vectors(path: str) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        vecs = json.load(f)["vectors"]
    return [v for v in vecs if "error" not in v and LANG not in v.get("binding_errors", {})]


def emit(case: str, ok: bool, ms: float, error: Optional[str] = None,
         note: Optional[str] = None) -> None:
    row: Dict[str, Any] = {"case": case, "ok": ok, "ms": round(ms, 2)}
    if error is not None:
        row["error"] = error
    if note is not None:
        row["note"] = note
    sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ca", required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--case", action="append", default=[], dest="cases")
    args = ap.parse_args()

    vecs = value_vectors(args.vectors)
    by_name = {"value:" + v["name"]: v for v in vecs}
    names = args.cases or CASES + list(by_name)
    driver = Driver(args.addr, args.ca, args.vectors)

    for case in names:
        run: Callable[[], Optional[str]]
        if case in CASES or case == "frames":  # frames: only when named
            run = getattr(driver, case)
        elif case in by_name:
            vec = by_name[case]
            run = lambda vec=vec: driver.value(vec)  # noqa: E731
        else:
            emit(case, False, 0.0, "unknown case (or a vector skipped for python)")
            continue
        t0 = time.perf_counter()
        err: Optional[str] = None
        note: Optional[str] = None
        try:
            note = run()
        except Failed as e:
            err = str(e)
        except rpcnet.RpcError as e:
            err = "%s (%d): %s" % (e.name, e.code, e.message)
            if e.code == rpcnet.UNAVAILABLE:
                driver.reset()
        except Exception as e:  # a bug of the case or the binding: report, go on
            err = "%s: %s" % (type(e).__name__, e)
        emit(case, err is None, (time.perf_counter() - t0) * 1000.0, err, note)
    driver.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
