import asyncio
import time

import pytest

import rpcnet


def run(coro):
    return asyncio.run(coro)


def test_acall(client):
    async def main():
        return await client.acall("add", {"a": 20, "b": 22})
    assert run(main()) == {"sum": 42}


def test_acall_with_call_trailers(client):
    async def main():
        resp, info = await client.acall("ctx", {"x-t": "v"}, with_call=True)
        assert resp["method"] == "ctx" and info.trailers["x-t"] == "v"
        raw, info = await client.acall_raw("echo", b"\x00", with_call=True)
        assert raw == b"\x00" and info.status == rpcnet.OK and dict(info.trailers) == {}
        total, info = await client.aclient_stream("sum", [4, 5], with_call=True)
        assert total == 9 and info.trailers["x-count"] == "done"
        with pytest.raises(rpcnet.NotFound) as ei:
            await client.acall("fail_tr", None, with_call=True)
        assert ei.value.trailers["x-why"] == "missing"
        assert await client.acall("add", {"a": 1, "b": 1}) == {"sum": 2}
    run(main())


def test_acall_many_concurrent(client):
    async def main():
        return await asyncio.gather(*[client.acall("add", {"a": i, "b": 1}) for i in range(50)])
    assert run(main()) == [{"sum": i + 1} for i in range(50)]


def test_acall_errors_and_timeout(client):
    async def main():
        with pytest.raises(rpcnet.NotFound):
            await client.acall("fail", {"code": 5, "message": "x"})
        with pytest.raises(rpcnet.DeadlineExceeded):
            await client.acall("sleep", 3.0, timeout=0.2)
        assert await client.acall_raw("echo", b"\x00z") == b"\x00z"
    run(main())


def test_async_streams(client):
    async def main():
        out = [x async for x in client.server_stream("count", 4)]
        assert out == [0, 1, 2, 3]

        async def gen():
            for i in range(10):
                yield i
        assert await client.aclient_stream("sum", gen()) == 45

        with client.bidi("double") as b:
            await b.asend(21)
            assert await b.__anext__() == 42
            b.close_send()
            assert [x async for x in b] == []
            assert b.status == rpcnet.OK

        # the loop stays free while calls wait
        ticks = 0

        async def tick():
            nonlocal ticks
            for _ in range(20):
                await asyncio.sleep(0.01)
                ticks += 1
        await asyncio.gather(client.acall("sleep", 0.3), tick())
        assert ticks == 20
    run(main())


def test_async_cancel(client):
    async def main():
        task = asyncio.ensure_future(client.acall("sleep", 5.0))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    run(main())


def test_asend_waits_on_send_fd_under_backpressure(certs, monkeypatch):
    """A server that stops reading stalls asend: the task stays pending
    without retrying (it waits on rpcnet_call_send_fd, no polling), the loop
    stays free, and sending resumes once the server reads again."""
    import threading

    gate = threading.Event()
    srv = rpcnet.Server(cert_file=str(certs / "server.pem"),
                        key_file=str(certs / "server-key.pem"))

    @srv.stream("sink", raw=True)
    def sink(reqs, ctx):
        it = iter(reqs)
        next(it)
        gate.wait(30)  # stop reading until the test says so
        return str(1 + sum(1 for _ in it)).encode()

    srv.listen("127.0.0.1:0")
    srv.start(workers=2)
    real_send = rpcnet._rpcnet_c.rpcnet_call_send_timeout
    attempts = [0]

    def counting_send(*args):
        attempts[0] += 1
        return real_send(*args)

    monkeypatch.setattr(rpcnet._rpcnet_c, "rpcnet_call_send_timeout", counting_send)
    n_msgs = 160  # 10 MiB: well past the call's send window and flow control
    chunk = bytes(64 * 1024)

    async def main():
        loop = asyncio.get_running_loop()
        with rpcnet.connect("127.0.0.1:%d" % srv.port, ca_file=str(certs / "ca.pem"),
                            server_name="localhost") as client:
            with client.stream("sink", raw=True, timeout=60) as c:
                sent = 0

                async def sender():
                    nonlocal sent
                    for _ in range(n_msgs):
                        await c.asend(chunk)
                        sent += 1

                task = asyncio.ensure_future(sender())
                # wait until sending stalls (no progress for 0.3 s)
                last, stop = -1, loop.time() + 15
                while sent != last:
                    last = sent
                    await asyncio.sleep(0.3)
                    assert loop.time() < stop, "sending never stalled"
                assert not task.done() and 0 < sent < n_msgs

                # blocked without spinning, and the loop is free meanwhile
                before, ticks = attempts[0], 0
                for _ in range(50):
                    await asyncio.sleep(0.01)
                    ticks += 1
                assert ticks == 50
                assert attempts[0] - before <= 1, "asend retried %d times while stalled" % (
                    attempts[0] - before)
                assert not task.done() and sent == last

                gate.set()  # the server reads again: the sender resumes
                await asyncio.wait_for(task, 30)
                assert sent == n_msgs
                c.close_send()
                assert await c.aresult() == str(n_msgs).encode()
                assert c.status == rpcnet.OK

    try:
        run(main())
    finally:
        gate.set()
        srv.shutdown(drain=1.0)


def test_concurrent_asend_and_close_wakes_waiters(certs):
    """Two tasks stalled in asend on one call share the send fd; closing the
    call wakes both with ClosedError instead of leaving them hanging."""
    import threading

    gate = threading.Event()
    srv = rpcnet.Server(cert_file=str(certs / "server.pem"),
                        key_file=str(certs / "server-key.pem"))

    @srv.stream("sink", raw=True)
    def sink(reqs, ctx):
        gate.wait(30)
        return b""

    srv.listen("127.0.0.1:0")
    srv.start(workers=2)
    chunk = bytes(64 * 1024)

    async def main():
        with rpcnet.connect("127.0.0.1:%d" % srv.port, ca_file=str(certs / "ca.pem"),
                            server_name="localhost") as client:
            c = client.stream("sink", raw=True, timeout=60)

            async def sender():
                for _ in range(1000):
                    await c.asend(chunk)

            tasks = [asyncio.ensure_future(sender()) for _ in range(2)]
            await asyncio.sleep(1.0)
            assert not any(t.done() for t in tasks)
            c.close()
            done, pending = await asyncio.wait(tasks, timeout=5)
            assert not pending, "a waiter was left hanging"
            for t in done:
                assert isinstance(t.exception(), (rpcnet.ClosedError, rpcnet.Cancelled))

    try:
        run(main())
    finally:
        gate.set()
        srv.shutdown(drain=0.5)


def _cancel_server(certs):
    """A server whose handlers record when they see their call cancelled:
    "sink" reads one message then stops reading, "quiet" sends nothing,
    "hang" (unary) answers nothing; each waits up to 10 s for ctx.cancelled."""
    import threading

    seen = {name: threading.Event() for name in ("sink", "quiet", "hang")}
    srv = rpcnet.Server(cert_file=str(certs / "server.pem"),
                        key_file=str(certs / "server-key.pem"))

    def wait_cancelled(name, ctx):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if ctx.cancelled:
                seen[name].set()
                return
            time.sleep(0.01)

    @srv.stream("sink", raw=True)
    def sink(reqs, ctx):
        next(iter(reqs))
        wait_cancelled("sink", ctx)
        return b""

    @srv.stream("quiet", raw=True)
    def quiet(reqs, ctx):
        wait_cancelled("quiet", ctx)
        return b""

    @srv.method("hang", raw=True)
    def hang(req, ctx):
        wait_cancelled("hang", ctx)
        return b""

    srv.listen("127.0.0.1:0")
    srv.start(workers=4)
    return srv, seen


def _watched(loop, fd):
    """Whether loop has a reader on fd (its selector's registration)."""
    key = loop._selector.get_map().get(fd)
    return key is not None and key.data[0] is not None


def test_cancelling_a_task_cancels_the_call(certs):
    """Cancelling the asyncio task cancels the rpcnet call (the server sees
    it cancelled) for a task stalled in asend, one in async for, and acall;
    no reader stays on the loop and the call then raises Cancelled."""
    srv, seen = _cancel_server(certs)
    chunk = bytes(64 * 1024)

    async def main():
        loop = asyncio.get_running_loop()
        with rpcnet.connect("127.0.0.1:%d" % srv.port, ca_file=str(certs / "ca.pem"),
                            server_name="localhost") as client:
            # 1. stalled in asend (the server stopped reading)
            c = client.stream("sink", raw=True, timeout=60)
            sent = 0

            async def sender():
                nonlocal sent
                for _ in range(1000):
                    await c.asend(chunk)
                    sent += 1

            task = asyncio.ensure_future(sender())
            last = -1
            while sent != last:  # until sending stalls
                last = sent
                await asyncio.sleep(0.3)
            assert not task.done() and 0 < sent < 1000
            send_fd = rpcnet._rpcnet_c.rpcnet_call_send_fd(c._ptr)
            assert _watched(loop, send_fd), "the stalled asend waits on the send fd"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not _watched(loop, send_fd), "a reader was left on the loop"
            assert c._fd_waiters == {}
            assert await loop.run_in_executor(None, seen["sink"].wait, 5), \
                "the server did not see the call cancelled"
            with pytest.raises(rpcnet.Cancelled):
                c.send(b"x")
            c.close()

            # 2. waiting in async for
            b = client.bidi("quiet", raw=True, timeout=60)
            await b.asend(b"hi")

            async def reader():
                async for _ in b:
                    pass

            task = asyncio.ensure_future(reader())
            await asyncio.sleep(0.2)
            recv_fd = rpcnet._rpcnet_c.rpcnet_call_fd(b._ptr)
            assert _watched(loop, recv_fd)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not _watched(loop, recv_fd), "a reader was left on the loop"
            assert await loop.run_in_executor(None, seen["quiet"].wait, 5)
            with pytest.raises(rpcnet.Cancelled):
                b.recv(timeout=2)
            assert b.status == rpcnet.CANCELLED
            b.close()

            # 3. acall under wait_for
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.acall_raw("hang", b"", timeout=60), 0.3)
            assert await loop.run_in_executor(None, seen["hang"].wait, 5)
            assert not [fd for fd, key in loop._selector.get_map().items()
                        if key.data[0] is not None
                        and getattr(key.data[0]._callback, "__qualname__", "").startswith("Call.")]

    try:
        run(main())
    finally:
        srv.shutdown(drain=0.5)
