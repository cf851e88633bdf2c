import asyncio

import pytest

import rpcnet


def run(coro):
    return asyncio.run(coro)


def test_acall(client):
    async def main():
        return await client.acall("add", {"a": 20, "b": 22})
    assert run(main()) == {"sum": 42}


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
