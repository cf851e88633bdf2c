import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import rpcnet

REPO = Path(os.environ.get("RPCNET_SOURCE_DIR", Path(__file__).resolve().parents[3]))


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(["bash", str(REPO / "scripts" / "gen-certs.sh"), str(d)], check=True)
    return d


def make_server(certs, **opts):
    srv = rpcnet.Server(cert_file=str(certs / "server.pem"),
                        key_file=str(certs / "server-key.pem"), **opts)

    @srv.method("add")
    def add(req, ctx):
        return {"sum": req["a"] + req["b"]}

    @srv.method("echo", raw=True)
    def echo(req, ctx):
        return req

    @srv.method("value")
    def value(req, ctx):
        return req

    @srv.method("fail")
    def fail(req, ctx):
        raise rpcnet.RpcError(req["code"], req["message"])

    @srv.method("fail_tr")
    def fail_tr(req, ctx):
        ctx.set_trailer("x-why", "missing")
        raise rpcnet.NotFound("no such thing")

    @srv.method("boom")
    def boom(req, ctx):
        raise ValueError("it broke")

    @srv.method("sleep")
    def sleep(req, ctx):
        end = time.monotonic() + req
        while time.monotonic() < end and not ctx.cancelled:
            time.sleep(0.01)
        return {"cancelled": ctx.cancelled}

    @srv.method("ctx")
    def ctxinfo(req, ctx):
        for k, v in (req or {}).items():
            ctx.set_trailer(k, v)
        return {
            "peer": ctx.peer,
            "deadline": ctx.deadline,
            "md": ctx.metadata.get("x-text"),
            "md_bin": ctx.metadata.get("x-data-bin"),
            "missing": ctx.metadata.get("nope"),
            "has": "x-text" in ctx.metadata,
            "method": ctx.method,
        }

    @srv.method("md_all")
    def md_all(req, ctx):
        md = ctx.metadata
        for k, v in req or []:  # [key, value] pairs to send back as trailers
            ctx.set_trailer(k, v)
        try:
            md["x-new"] = "v"
            writable = True
        except TypeError:
            writable = False
        return {
            "keys": list(md),
            "dict": dict(md),
            "items": [list(kv) for kv in md.items()],
            "len": len(md),
            "writable": writable,
        }

    @srv.stream("count")
    def count(reqs, ctx):
        n = next(iter(reqs))
        for i in range(n):
            yield i

    @srv.stream("sum")
    def total(reqs, ctx):
        ctx.set_trailer("x-count", "done")
        return sum(reqs)

    @srv.stream("double")
    def double(reqs, ctx):
        for r in reqs:
            yield r * 2

    @srv.stream("stream_fail")
    def stream_fail(reqs, ctx):
        yield 1
        raise rpcnet.PermissionDenied("no more")

    return srv


@pytest.fixture(scope="module")
def server(certs):
    srv = make_server(certs)
    srv.listen("127.0.0.1:0")
    srv.start(workers=8)
    yield srv
    srv.shutdown(drain=1.0)


@pytest.fixture
def client(server, certs):
    c = rpcnet.connect("127.0.0.1:%d" % server.port, ca_file=str(certs / "ca.pem"),
                       server_name="localhost")
    yield c
    c.close()
