"""rpcnet.Cluster over real loopback: UDP gossip sealed with a cluster key,
QUIC push-pull and routed calls, several nodes in this process; then the
example worker (examples/cluster/python/worker.py) as a process next to the
C worker, both serving the C director. Waits are bounded polls that fail
the test when they run out; nothing asserts timing."""
import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import rpcnet

from conftest import REPO

KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "fedcba9876543210fedcba9876543210"
FAST = dict(probe_interval_ms=200, probe_timeout_ms=100, gossip_interval_ms=50,
            join_timeout_ms=3000)
BUILD = os.path.abspath(os.environ.get("RPCNET_BUILD_DIR", str(REPO / "build")))


def wait_until(fn, timeout=8.0, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.02)


class Node:
    """A cluster node; with_server: a Server serving work/value/drain/double,
    attached to the node."""

    def __init__(self, certs, name, key=KEY, with_server=True, **extra):
        self.name = name
        self.draining = False
        self.srv = None
        if with_server:
            self.srv = srv = rpcnet.Server(cert_file=str(certs / "server.pem"),
                                           key_file=str(certs / "server-key.pem"))

            @srv.method("work", raw=True)
            def work(req, ctx):
                return name.encode()

            @srv.method("value")
            def value(req, ctx):
                return {"by": name, "req": req}

            @srv.method("drain")
            def drain(req, ctx):
                if self.draining:
                    raise rpcnet.Unavailable("draining")
                return name

            @srv.stream("double")
            def double(reqs, ctx):
                for r in reqs:
                    yield [name, r * 2]

            srv.listen("127.0.0.1:0")
            srv.start(workers=4)
        opts = dict(FAST)
        opts.update(extra)
        self.cl = rpcnet.Cluster(node_name=name, gossip_bind="127.0.0.1:0", cluster_keys=key,
                                 ca_file=str(certs / "ca.pem"), server_name="localhost",
                                 server=self.srv, **opts)
        if with_server:
            self.cl.set_tag("role", "worker")

    @property
    def seed(self):
        return "127.0.0.1:%d" % self.cl.gossip_port

    def state_of(self, name):
        for m in self.cl.members():
            if m.name == name:
                return m.state
        return None

    def wait_state(self, name, state, timeout=8.0):
        wait_until(lambda: self.state_of(name) == state, timeout,
                   "%s to see %s %s" % (self.name, name, state))

    def close(self):
        self.cl.close()
        if self.srv is not None:
            self.srv.shutdown(drain=0)


@pytest.fixture
def nodes(certs):
    made = []

    def make(name, **kw):
        n = Node(certs, name, **kw)
        made.append(n)
        return n

    yield make
    for n in reversed(made):
        n.close()


@pytest.fixture(scope="module")
def trio(certs):
    """Workers a and b (servers attached) and director d (no server)."""
    a = Node(certs, "a")
    b = Node(certs, "b")
    d = Node(certs, "d", with_server=False)
    b.cl.join(a.seed)
    d.cl.join([a.seed])
    for n in (a, b):
        d.wait_state(n.name, "alive")
    yield a, b, d
    for n in (d, b, a):
        n.close()


# -- config and handles ------------------------------------------------------

def test_config_errors():
    with pytest.raises(rpcnet.InvalidArgument) as e:
        rpcnet.Cluster(gossip_bind="127.0.0.1:0", cluster_keys="not-a-key")
    assert "cluster_keys" in e.value.message and "not-a-key" not in e.value.message
    with pytest.raises(rpcnet.InvalidArgument) as e:
        rpcnet.Cluster(gossip_bind="127.0.0.1:0", cluster_strategy="fastest")
    assert "cluster_strategy" in e.value.message
    with pytest.raises(rpcnet.InvalidArgument):
        rpcnet.Cluster(gossip_bind="not an address")


def test_name_port_fd_context_manager():
    with rpcnet.Cluster(node_name="solo", gossip_bind="127.0.0.1:0", **FAST) as cl:
        assert cl.name == "solo" and cl.gossip_port > 0 and cl.fileno() >= 0
        (me,) = cl.members()
        assert me.name == "solo" and me.is_self and me.state == "alive"
        assert me.rpc_addr == "" and me.gossip_addr == "127.0.0.1:%d" % cl.gossip_port
        assert cl.next_event(0) is None
        t = time.monotonic()
        assert cl.next_event(0.2) is None
        assert time.monotonic() - t >= 0.15
        assert list(cl.events(timeout=0.1)) == []
    assert cl.closed


def test_closed_handle_errors(certs):
    cl = rpcnet.Cluster(node_name="gone", gossip_bind="127.0.0.1:0", **FAST)
    cl.close()
    cl.close()  # idempotent
    assert cl.name == "gone"  # a snapshot, still readable
    for op in (lambda: cl.members(), lambda: cl.join("127.0.0.1:1"), lambda: cl.leave(),
               lambda: cl.set_tag("k", "v"), lambda: cl.next_event(0), lambda: cl.events(),
               lambda: cl.aevents(), lambda: cl.call("work", None), lambda: cl.call_raw("work"),
               lambda: cl.stream("double"), lambda: cl.fileno(), lambda: cl.attach(None)):
        with pytest.raises(rpcnet.ClosedError) as e:
            op()
        assert isinstance(e.value, rpcnet.FailedPrecondition) and "closed" in e.value.message
    with pytest.raises(rpcnet.ClosedError):
        asyncio.run(cl.acall("work", None))


def test_close_wakes_blocked_waiters():
    cl = rpcnet.Cluster(gossip_bind="127.0.0.1:0", **FAST)
    got = {}

    def waiter():
        try:
            cl.next_event(None)
            got["next"] = "event"
        except rpcnet.ClosedError:
            got["next"] = "closed"

    def iterate():
        got["iter"] = list(cl.events())

    ts = [threading.Thread(target=waiter, daemon=True),
          threading.Thread(target=iterate, daemon=True)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    assert all(t.is_alive() for t in ts)  # really blocked
    closer = threading.Thread(target=cl.close, daemon=True)  # (a hang fails, not blocks, the test)
    closer.start()
    for t in ts + [closer]:
        t.join(5)
        assert not t.is_alive()
    assert got == {"next": "closed", "iter": []}


def test_attach_rules(certs):
    srv = rpcnet.Server(cert_file=str(certs / "server.pem"),
                        key_file=str(certs / "server-key.pem"))
    cl = rpcnet.Cluster(gossip_bind="127.0.0.1:0", **FAST)
    try:
        with pytest.raises(rpcnet.InvalidArgument):  # not listening
            cl.attach(srv)
        port = srv.listen("127.0.0.1:0")
        cl.attach(srv)
        assert cl.members()[0].rpc_addr == "127.0.0.1:%d" % port
        with pytest.raises(rpcnet.FailedPrecondition):
            cl.attach(srv)  # already attached
        # Shutting the server down first is safe: it is freed with the node.
        srv.shutdown(drain=0)
        assert cl.members()[0].name == cl.name
        cl2 = rpcnet.Cluster(gossip_bind="127.0.0.1:0", **FAST)
        with pytest.raises(rpcnet.ClosedError):
            cl2.attach(srv)
        cl2.close()
    finally:
        cl.close()
        srv.shutdown(drain=0)


# -- membership, tags, events -----------------------------------------------

def test_members_and_filters(trio):
    a, b, d = trio
    ms = {m.name: m for m in d.cl.members()}
    assert set(ms) == {"a", "b", "d"}
    assert ms["d"].is_self and not ms["a"].is_self
    assert ms["d"].rpc_addr == "" and ms["a"].rpc_addr.startswith("127.0.0.1:")
    assert ms["a"].tags == {"role": "worker"} and ms["d"].tags == {}
    for m in ms.values():
        assert m.state == "alive" and isinstance(m.incarnation, int)
        assert isinstance(m.phi, float) and m.breaker in ("closed", "open", "half_open")
        assert isinstance(m.latency_us, int) and isinstance(m.inflight, int)
    assert {m.name for m in d.cl.members("role=worker")} == {"a", "b"}
    assert {m.name for m in d.cl.members({"role": "worker"})} == {"a", "b"}
    assert {m.name for m in d.cl.members("role!=worker")} == {"d"}
    assert d.cl.members("nosuchtag") == []
    with pytest.raises(rpcnet.InvalidArgument):
        d.cl.members("=bad")
    with pytest.raises(TypeError):
        d.cl.members(42)
    m = ms["a"]
    assert hash(m) == hash(rpcnet.Member(**{**m.__dict__, "tags": {}}))
    with pytest.raises(Exception):
        m.name = "x"  # frozen


def test_tags_propagate_and_steer_calls(trio):
    a, b, d = trio
    a.cl.set_tag("zone", "eu")
    wait_until(lambda: [m.name for m in d.cl.members("zone=eu")] == ["a"], what="zone=eu on d")
    wait_until(lambda: {m.name: m.tags.get("zone") for m in b.cl.members("role=worker")}["a"]
               == "eu", what="zone=eu on b")
    for _ in range(10):
        assert d.cl.call_raw("work", filter="zone=eu", with_member=True) == (b"a", "a")
    a.cl.set_tag("zone", None)
    wait_until(lambda: d.cl.members("zone") == [], what="zone removed on d")
    with pytest.raises(rpcnet.InvalidArgument):
        a.cl.set_tag("bad,key", "x")
    with pytest.raises(TypeError):
        a.cl.set_tag("n", 5)


def test_events_iterator_joined_left(nodes):
    x = nodes("ex")
    y = nodes("ey")
    y.cl.join(x.seed)
    seen = []
    for ev in x.cl.events(timeout=8):
        seen.append((ev.type, ev.member and ev.member.name))
        if ev.type == "joined" and ev.member.name == "ey":
            assert ev.member.state == "alive" and ev.member.tags.get("role") == "worker"
            break
    assert ("joined", "ey") in seen, seen
    y.cl.leave(timeout=2.0)
    for ev in x.cl.events(timeout=8):
        if ev.type == "left" and ev.member.name == "ey":
            assert ev.member.state == "left"
            break
    else:
        pytest.fail("no 'left' event about ey")
    x.wait_state("ey", "left")
    with pytest.raises(rpcnet.FailedPrecondition):
        y.cl.join(x.seed)  # after leave


def test_aevents(nodes):
    x = nodes("ax")
    y = nodes("ay")

    async def main():
        threads = threading.active_count()
        got = []

        async def follow():
            async for ev in x.cl.aevents():
                got.append((ev.type, ev.member.name if ev.member else None))
                if ev.type == "joined" and ev.member.name == "ay":
                    return threading.active_count()

        task = asyncio.ensure_future(follow())
        await asyncio.sleep(0.2)  # the task now waits on the fd
        assert not task.done()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, y.cl.join, x.seed)
        during = await asyncio.wait_for(task, 8)
        assert ("joined", "ay") in got
        assert during <= threads + 1  # the one executor thread of the join, no waiter thread
        # An idle timeout ends the iteration.
        t = time.monotonic()
        assert [ev async for ev in x.cl.aevents(timeout=0.2) if ev.member.name == "nobody"] == []
        assert time.monotonic() - t >= 0.15

    asyncio.run(main())


def test_close_ends_aevents(nodes):
    x = nodes("cx", with_server=False)
    x2 = nodes("cx2", with_server=False)

    async def main():
        async def drain(cl):
            return [ev async for ev in cl.aevents()]

        t1 = asyncio.ensure_future(drain(x.cl))
        t2 = asyncio.ensure_future(drain(x2.cl))
        await asyncio.sleep(0.2)
        x.cl.close()  # from the loop's own thread
        assert await asyncio.wait_for(t1, 3) == []
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, x2.cl.close)  # from another thread
        assert await asyncio.wait_for(t2, 3) == []

    asyncio.run(main())


def test_wrong_key_join_is_refused(nodes):
    a = nodes("ka")
    x = nodes("kx", key=OTHER_KEY)
    with pytest.raises(rpcnet.PermissionDenied) as e:
        x.cl.join(a.seed)
    assert "cluster_keys" in e.value.message and e.value.name == "PERMISSION_DENIED"
    p = nodes("kp", key="")
    with pytest.raises(rpcnet.PermissionDenied):
        p.cl.join(a.seed)
    assert {m.name for m in a.cl.members()} == {"ka"}  # never admitted
    with pytest.raises(rpcnet.Unavailable):
        a.cl.join("127.0.0.1:1")
    with pytest.raises(rpcnet.InvalidArgument):
        a.cl.join("127.0.0.1:notaport")


# -- routed calls -------------------------------------------------------------

def test_routed_calls_reach_both_workers(trio):
    a, b, d = trio
    by = {"a": 0, "b": 0}
    for i in range(40):
        resp, who = d.cl.call_raw("work", b"x", filter="role=worker", with_member=True)
        assert resp == who.encode()
        by[who] += 1
    assert by["a"] > 0 and by["b"] > 0 and sum(by.values()) == 40
    v = {"n": [1, 2.5, None], "b": b"\x00\x01", "s": "\u00fc"}
    out, who = d.cl.call("value", v, with_member=True, timeout=2.0)
    assert out == {"by": who, "req": v}
    assert d.cl.call("value", None)["req"] is None
    # Workers call each other too (a member with a server calls others).
    assert a.cl.call_raw("work", filter={"role": "worker"}) in (b"a", b"b")


def test_routed_call_errors(trio):
    a, b, d = trio
    with pytest.raises(rpcnet.Unavailable) as e:
        d.cl.call("work", None, filter="zone=nowhere", timeout=0.5)
    assert "no member" in e.value.message and e.value.member is None
    with pytest.raises(rpcnet.Unimplemented) as e:
        d.cl.call("no_such_method", None, filter="role=worker")
    assert e.value.member in ("a", "b")
    with pytest.raises(rpcnet.InvalidArgument):
        d.cl.call("work", None, filter="=bad")
    with pytest.raises(ValueError):
        d.cl.call("work", None, hedge=True)  # hedging needs idempotent
    assert d.cl.call_raw("work", filter="role=worker", idempotent=True, hedge=True) in (b"a", b"b")


def test_idempotent_call_survives_unavailable(nodes):
    a = nodes("fa")
    b = nodes("fb")
    d = nodes("fd", with_server=False)
    b.cl.join(a.seed)
    d.cl.join(a.seed)
    d.wait_state("fa", "alive")
    d.wait_state("fb", "alive")
    b.draining = True  # fb answers UNAVAILABLE
    answered = set()
    for _ in range(30):
        resp, who = d.cl.call("drain", None, idempotent=True, with_member=True, timeout=2.0)
        assert resp == who == "fa"
        answered.add(who)
    assert answered == {"fa"}
    # Without the flag a call that lands on fb fails (unless the breaker
    # already ejected fb): when it does, the error names fb.
    for _ in range(20):
        try:
            d.cl.call("drain", None, timeout=2.0)
        except rpcnet.Unavailable as e:
            assert e.member == "fb" and "draining" in e.message
            break


def test_many_threads_call_at_once(trio):
    a, b, d = trio
    errors, by = [], {}
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(i):
        start.wait()
        try:
            for j in range(25):
                out, who = d.cl.call("value", [i, j], filter="role=worker", with_member=True)
                assert out == {"by": who, "req": [i, j]}
                with lock:
                    by[who] = by.get(who, 0) + 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    assert sum(by.values()) == 200 and set(by) == {"a", "b"}


def test_routed_stream(trio):
    a, b, d = trio
    with d.cl.stream("double", "role=worker") as s:
        assert isinstance(s, rpcnet.Call)
        s.send(2)
        who, v = next(s)
        assert who in ("a", "b") and v == 4
        s.send(5)
        assert next(s) == [who, 10]  # one member for the whole stream
        s.close_send()
        assert list(s) == [] and s.status_name == "OK"
    with pytest.raises(rpcnet.Unavailable) as e:
        d.cl.stream("double", {"zone": "nowhere"})
    assert "no member" in e.value.message
    with pytest.raises(rpcnet.InvalidArgument):
        d.cl.stream("double", "=bad")


def test_close_cancels_open_stream(certs, trio):
    a, b, d = trio
    x = Node(certs, "sx", with_server=False)
    x.cl.join(a.seed)
    x.wait_state("b", "alive")
    s = x.cl.stream("double", "role=worker")
    s.send(1)
    assert next(s)[1] == 2
    x.close()
    with pytest.raises(rpcnet.ClosedError):
        s.send(2)
    s.close()


def test_acall(trio):
    a, b, d = trio

    async def main():
        outs = await asyncio.gather(*(d.cl.acall("value", i, filter="role=worker")
                                      for i in range(20)))
        assert [o["req"] for o in outs] == list(range(20))
        assert {o["by"] for o in outs} <= {"a", "b"}
        assert await d.cl.acall_raw("work", b"", filter={"role": "worker"}) in (b"a", b"b")
        out, who = await d.cl.acall("value", "x", idempotent=True, with_member=True)
        assert out == {"by": who, "req": "x"}
        with pytest.raises(rpcnet.Unavailable):
            await d.cl.acall("value", 1, filter="zone=nowhere")
        with pytest.raises(rpcnet.Unimplemented):
            await d.cl.acall("nope", 1, filter="role=worker")

    asyncio.run(main())


# -- the example worker next to the C worker ---------------------------------

class Proc:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()

    def wait_line(self, pattern, timeout=20.0):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                if time.monotonic() > end:
                    raise AssertionError("no line matching %r; got %r" % (pattern, self.lines))
                self.cv.wait(0.2)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)


def test_example_worker_next_to_c_worker(certs):
    c_worker = os.path.join(BUILD, "examples", "cluster_worker")
    director = os.path.join(BUILD, "examples", "cluster_director")
    assert os.access(c_worker, os.X_OK) and os.access(director, os.X_OK), \
        "build the C examples first (make build)"
    script = str(REPO / "examples" / "cluster" / "python" / "worker.py")
    pki = ["--cert", str(certs / "server.pem"), "--key", str(certs / "server-key.pem"),
           "--ca", str(certs / "ca.pem")]
    procs = []

    def python_worker(name, *extra):
        p = Proc([sys.executable, script, "--name", name] + pki
                 + ["--keys", KEY, "--probe-ms", "200"] + list(extra))
        procs.append(p)
        return p, p.wait_line(r"^ready %s gossip (\d+) rpc (\d+)$" % name)

    try:
        py, m = python_worker("pyw", "--tag", "zone=eu")
        seed = "127.0.0.1:%s" % m.group(1)
        py2, _ = python_worker("pyw2", "--join", seed, "--lang", "python")
        cw = Proc([c_worker, "--name", "cw"] + pki + ["--keys", KEY, "--join", seed,
                                                     "--tag", "role=worker", "--probe-ms", "200"])
        procs.append(cw)
        cw_gossip = cw.wait_line(r"^ready cw gossip (\d+) ").group(1)
        py.wait_line(r"^event joined cw alive$")
        py.wait_line(r"^event joined pyw2 alive$")
        cw.wait_line(r"^event joined pyw alive$")
        r = subprocess.run([director, "--ca", str(certs / "ca.pem"), "--join", seed,
                            "--expect", "3", "--calls", "30", "--keys", KEY],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        langs = dict(re.findall(r"^lang (\S+) (\d+)$", r.stdout, re.M))
        assert int(langs.get("python", 0)) > 0 and int(langs.get("c", 0)) > 0, r.stdout
        assert re.search(r"^failed 0$", r.stdout, re.M)
        py.wait_line(r"^event (joined|left) director ")
        # Tags: role, lang and --tag, seen by the C worker's node.
        with rpcnet.Cluster(gossip_bind="127.0.0.1:0", cluster_keys=KEY,
                            ca_file=str(certs / "ca.pem"), server_name="localhost", **FAST) as obs:
            obs.join("127.0.0.1:%s" % cw_gossip)
            tags = wait_until(lambda: {m.name: m.tags for m in obs.members("lang=python")}
                              .get("pyw"), what="pyw's tags")
            assert tags == {"role": "worker", "lang": "python", "zone": "eu"}
            assert obs.call_raw("work", b"j", filter="lang=python,zone=eu") == b"python:pyw:j"
            assert obs.call_raw("whoami", filter="lang=c") == b"cw"
            py.send("tag zone=us")
            py.wait_line(r"^tagged zone=us$")
            wait_until(lambda: [m.name for m in obs.members("zone=us")] == ["pyw"],
                       what="zone=us gossiped")
            obs.leave()
        # "leave" on stdin and SIGTERM both leave gracefully and exit 0.
        py2.send("leave")
        py2.wait_line(r"^left OK$")
        assert py2.p.wait(10) == 0
        py.wait_line(r"^event left pyw2 left$")
        py.p.send_signal(signal.SIGTERM)
        py.wait_line(r"^left OK$")
        assert py.p.wait(10) == 0
        cw.wait_line(r"^event left pyw left$")
        # A failed join exits 3 with the reason on stderr.
        bad = subprocess.run([sys.executable, script, "--name", "pybad"] + pki
                             + ["--keys", OTHER_KEY, "--join", "127.0.0.1:%s" % cw_gossip],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert bad.returncode == 3 and "PERMISSION_DENIED" in bad.stderr, bad.stderr
        cw.send("leave")
        cw.wait_line(r"^left ")
    finally:
        for p in procs:
            p.stop()


def test_key_rotation_and_stats(trio):
    a, b, d = trio
    new = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
    old = a.cl.stats()
    assert old["members"] >= 3 and old["incarnation"] > 0 and old["pkts_in"] > 0
    for i, ring in enumerate([[KEY, new], [new, KEY], [new]]):  # add, promote, drop
        for n in (a, b, d):
            n.cl.set_keys(ring if i != 1 else ",".join(ring))
        a.cl.set_tag("step", str(i))
        wait_until(lambda: [m.name for m in d.cl.members("step=%d" % i)] == ["a"],
                   what="step %d gossiped after set_keys" % i)
    with pytest.raises(rpcnet.InvalidArgument) as e:
        a.cl.set_keys("short")
    assert "short" not in str(e.value)
    assert set(a.cl.stats()) >= {"auth_failures", "refutes", "health", "partitioned"}
