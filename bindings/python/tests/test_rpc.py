import collections.abc
import threading
import time

import pytest

import rpcnet


def test_unary(client):
    assert client.call("add", {"a": 1, "b": 2}) == {"sum": 3}


def test_values_roundtrip(client):
    v = {"l": [1, 2.5, None, True, b"\x00\x01", "\u00fc\x00"], "big": 2 ** 70, 7: -(2 ** 64)}
    assert client.call("value", v) == v


def test_raw_binary_safe(client):
    assert client.call_raw("echo", b"") == b""
    assert client.call_raw("echo", b"a\x00b\x00") == b"a\x00b\x00"
    big = bytes(range(256)) * (16 * 4096 - 1)  # just under 16 MiB with the frame overhead
    assert client.call_raw("echo", big) == big
    assert client.call_raw("echo", bytearray(b"\x00xy")) == b"\x00xy"
    assert client.call_raw("echo", memoryview(b"\x00xyz")[1:]) == b"xyz"


def test_too_large(client):
    with pytest.raises(rpcnet.ResourceExhausted):
        client.call_raw("echo", b"\x00" * (16 * 1024 * 1024 + 1))


@pytest.mark.parametrize("code", range(1, 17))
def test_every_status(client, code):
    with pytest.raises(rpcnet.RpcError) as e:
        client.call("fail", {"code": code, "message": "m%d" % code})
    err = e.value
    assert err.code == code
    assert err.name == rpcnet.status_name(code)
    assert err.message == "m%d" % code
    assert type(err).code == code and type(err) is not rpcnet.RpcError


def test_error_classes():
    names = ["Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
             "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
             "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
             "Unauthenticated"]
    for code, n in enumerate(names, 1):
        cls = getattr(rpcnet, n)
        assert issubclass(cls, rpcnet.RpcError)
        e = rpcnet.RpcError(code, "x")
        assert type(e) is cls and e.code == code and e.message == "x"
        assert cls("y").code == code and cls("y").message == "y"
        assert str(cls("y")) == "%s: y" % rpcnet.status_name(code)


def test_internal_and_unimplemented(client):
    with pytest.raises(rpcnet.Internal) as e:
        client.call("boom", None)
    assert "it broke" in e.value.message
    with pytest.raises(rpcnet.Unimplemented) as e:
        client.call("no_such_method", None)
    assert "no_such_method" in e.value.message


def test_timeout(client):
    t = time.monotonic()
    with pytest.raises(rpcnet.DeadlineExceeded):
        client.call("sleep", 3.0, timeout=0.3)
    assert time.monotonic() - t < 2.5


def test_deadline_and_metadata(client):
    r = client.call("ctx", None, timeout=4.0,
                    metadata={"x-text": "hello", "x-data-bin": b"\x00\xff"})
    assert 0 < r["deadline"] <= 4.0
    assert r["md"] == "hello" and r["md_bin"] == b"\x00\xff"
    assert r["missing"] is None and r["has"] is True
    assert r["peer"].startswith("127.0.0.1:") and r["method"] == "ctx"
    with pytest.raises(TypeError):
        client.call("ctx", None, metadata={"x-data-bin": "text"})


def test_trailers(client):
    with client.stream("ctx") as c:
        c.send({"x-t": "v", "x-b-bin": b"\x01\x00"})
        assert c.result()["md"] is None
        assert c.status == rpcnet.OK and c.status_name == "OK"
        assert c.trailers["x-t"] == "v"
        assert c.trailers.get("x-b-bin") == b"\x01\x00"
        assert "nope" not in c.trailers


def test_unary_trailers_with_call(client):
    """with_call=True (as grpcio's): (response, CallInfo) with the trailers."""
    resp, info = client.call("ctx", {"x-t": "v", "x-b-bin": b"\x01\x00"}, with_call=True)
    assert resp["method"] == "ctx"
    assert isinstance(info, rpcnet.CallInfo) and info.method == "ctx"
    assert info.status == rpcnet.OK and info.status_name == "OK" and info.message == ""
    assert info.trailers["x-t"] == "v" and info.trailers["x-b-bin"] == b"\x01\x00"
    assert isinstance(info.trailers, rpcnet.Trailers) and info.trailing_metadata() is info.trailers
    # with metadata and a timeout too
    resp, info = client.call("ctx", {"x-t": "w"}, metadata={"x-text": "hi"}, timeout=5,
                             with_call=True)
    assert resp["md"] == "hi" and dict(info.trailers) == {"x-t": "w"}
    raw, info = client.call_raw("echo", b"\x00z", with_call=True)
    assert raw == b"\x00z" and dict(info.trailers) == {}
    total, info = client.client_stream("sum", [1, 2, 3], with_call=True)
    assert total == 6 and info.trailers["x-count"] == "done"
    # a failure raises, with the trailers sent with it
    with pytest.raises(rpcnet.NotFound) as ei:
        client.call("fail_tr", None, with_call=True)
    assert ei.value.message == "no such thing" and ei.value.trailers["x-why"] == "missing"
    # without with_call: the response alone, as before
    assert client.call("add", {"a": 1, "b": 2}) == {"sum": 3}
    assert client.call_raw("echo", b"x") == b"x"
    assert dict(rpcnet.NotFound("x").trailers) == {}


def test_metadata_and_trailers_are_mappings(client):
    md = {"x-a": "1", "x-b-bin": b"\x00\xff", "x-c": "three"}
    trailers = [["t-text", "v"], ["t-blob-bin", b"\x01\x00"], ["t-text", "second"]]
    with client.stream("md_all", metadata=md) as c:
        c.send(trailers)
        r = c.result()
        # request metadata as the handler saw it: a full, read-only mapping
        assert r["writable"] is False
        for k, v in md.items():
            assert r["dict"][k] == v and type(r["dict"][k]) is type(v)
        assert sorted(r["keys"]) == sorted(r["dict"]) and set(md) <= set(r["keys"])
        assert r["len"] == len(r["keys"]) == len(r["dict"])
        assert sorted(map(tuple, r["items"])) == sorted(r["dict"].items())
        # trailers: iterate, len, items; one value per key (the first set)
        t = c.trailers
        assert isinstance(t, rpcnet.Trailers) and isinstance(t, collections.abc.Mapping)
        assert dict(t) == {"t-text": "v", "t-blob-bin": b"\x01\x00"}
        assert sorted(t) == ["t-blob-bin", "t-text"] and len(t) == 2
        assert sorted(t.items()) == [("t-blob-bin", b"\x01\x00"), ("t-text", "v")]
        assert t.get("nope", 7) == 7 and "t-text" in t and "nope" not in t
        assert isinstance(t["t-blob-bin"], bytes) and isinstance(t["t-text"], str)
        with pytest.raises(TypeError):
            t["x"] = "y"  # type: ignore[index]
        with pytest.raises(KeyError):
            t["nope"]
    assert dict(c.trailers) == dict(t)  # a snapshot: still there after close


def test_trailers_empty_before_end_and_without_any(client):
    with client.bidi("double") as b:
        assert len(b.trailers) == 0 and dict(b.trailers) == {}
        b.send(1)
        assert next(b) == 2
        b.close_send()
        assert list(b) == []
        assert dict(b.trailers) == {}


def test_server_stream(client):
    with client.server_stream("count", 5) as s:
        assert list(s) == [0, 1, 2, 3, 4]
        assert s.status == 0
    assert list(client.server_stream("count", 0)) == []


def test_client_stream(client):
    assert client.client_stream("sum", iter(range(100))) == 4950
    assert client.client_stream("sum", []) == 0


def test_bidi(client):
    with client.bidi("double") as b:
        for i in range(5):
            b.send(i)
            assert next(b) == 2 * i
        b.close_send()
        assert list(b) == []
        assert b.status == rpcnet.OK


def test_stream_error(client):
    s = client.server_stream("stream_fail", None)
    assert next(s) == 1
    with pytest.raises(rpcnet.PermissionDenied) as e:
        next(s)
    assert e.value.message == "no more"
    assert s.status == rpcnet.PERMISSION_DENIED
    s.close()


def test_cancel(client):
    c = client.stream("sleep")
    c.send(5.0)
    c.close_send()
    threading.Timer(0.2, c.cancel).start()
    t = time.monotonic()
    with pytest.raises(rpcnet.Cancelled):
        list(c)
    assert time.monotonic() - t < 3
    c.close()


def test_use_after_close(client, server, certs):
    s = client.stream("double")
    s.close()
    s.close()
    with pytest.raises(rpcnet.ClosedError):
        s.send(1)
    with pytest.raises(rpcnet.ClosedError):
        next(iter(s))
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(rpcnet.ClosedError):
        client.call("add", {"a": 1, "b": 1})
    with pytest.raises(rpcnet.ClosedError):
        client.bidi("double")
    srv = rpcnet.Server(cert_file=str(certs / "server.pem"), key_file=str(certs / "server-key.pem"))
    srv.listen("127.0.0.1:0")
    srv.shutdown(0)
    srv.shutdown(0)
    with pytest.raises(rpcnet.ClosedError):
        srv.listen("127.0.0.1:0")
    with pytest.raises(rpcnet.ClosedError):
        srv.method("x")(lambda r, c: r)


def test_close_with_open_stream(server, certs):
    c = rpcnet.connect("127.0.0.1:%d" % server.port, ca_file=str(certs / "ca.pem"))
    s = c.bidi("double")
    s.send(1)
    assert next(s) == 2
    c.close()  # cancels and frees the open call
    with pytest.raises(rpcnet.ClosedError):
        s.send(2)


def test_connect_errors(server, certs):
    with pytest.raises(rpcnet.RpcError) as e:
        rpcnet.connect("127.0.0.1:%d" % server.port, ca_file=str(certs / "other-ca.pem"),
                       handshake_timeout_ms=2000)
    assert e.value.message
    with pytest.raises(rpcnet.InvalidArgument):
        rpcnet.connect("127.0.0.1:1", no_such_key="1")
    with pytest.raises(rpcnet.RpcError):
        rpcnet.Server(cert_file="/nonexistent.pem", key_file="/nonexistent.pem")


def test_config_values(server, certs):
    with rpcnet.connect("127.0.0.1:%d" % server.port, verify_peer=False,
                        idle_timeout_ms=10000.0, keep_alive_ms=0) as c:
        assert c.call("add", {"a": 2, "b": 2}) == {"sum": 4}


def test_many_threads(client):
    errors = []

    def work(i):
        try:
            for j in range(20):
                assert client.call("add", {"a": i, "b": j}) == {"sum": i + j}
                assert client.call_raw("echo", b"%d\x00%d" % (i, j)) == b"%d\x00%d" % (i, j)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_gil_released(client):
    """A blocking call must not stop other Python threads."""
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.01)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        client.call("sleep", 0.5)
    finally:
        stop.set()
        t.join()
    assert len(ticks) >= 10


def test_serve_blocks_and_shutdown(certs):
    srv = rpcnet.Server(cert_file=str(certs / "server.pem"), key_file=str(certs / "server-key.pem"))

    @srv.method("hi")
    def hi(req, ctx):
        return "hi " + req

    port = srv.listen("127.0.0.1:0")
    assert port > 0
    th = threading.Thread(target=srv.serve, kwargs={"workers": 2})
    th.start()
    with rpcnet.connect("127.0.0.1:%d" % port, ca_file=str(certs / "ca.pem")) as c:
        assert c.call("hi", "there") == "hi there"
    srv.shutdown(drain=1.0)
    th.join(5)
    assert not th.is_alive()
