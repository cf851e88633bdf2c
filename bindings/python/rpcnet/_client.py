"""Client side: connect, unary calls, the three kinds of streams, asyncio."""

from __future__ import annotations

import asyncio
import collections.abc
import math
import threading
import weakref
from typing import (Any, AsyncIterator, Dict, Iterable, Iterator, List, Literal, Mapping,
                    Optional, Set, Tuple, Union, overload)

from . import _rpcnet_c as _c
from . import cbor
from ._errors import (
    END_OF_STREAM,
    OK,
    WOULD_BLOCK,
    ClosedError,
    RpcError,
    status_name,
)

Buffer = Union[bytes, bytearray, memoryview]
Metadata = Mapping[str, Union[str, bytes]]


def _raise(status: int, message: Optional[str] = None) -> None:
    if message is None:
        message = _c.rpcnet_last_error()
    raise RpcError(status, message)


def _timeout_ms(timeout: Optional[float]) -> int:
    """Seconds (float) to the C API's milliseconds; None/<=0: the default."""
    if timeout is None:
        return 0
    if timeout <= 0:
        return 1  # already expired: the shortest deadline
    return max(1, int(math.ceil(timeout * 1000.0)))


def _config_value(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _make_config(options: Mapping[str, Any]) -> Any:
    cfg = _c.rpcnet_config_new()
    if cfg is None:
        raise MemoryError("rpcnet_config_new")
    try:
        for k, v in options.items():
            if v is None:
                continue
            st = _c.rpcnet_config_set(cfg, str(k), _config_value(v))
            if st != OK:
                _raise(st)
    except BaseException:
        _c.rpcnet_config_free(cfg)
        raise
    return cfg


def _md_bytes(key: str, value: Union[str, bytes, bytearray, memoryview]) -> Buffer:
    if key.endswith("-bin"):
        if isinstance(value, str):
            raise TypeError("metadata key %r ends in -bin: its value must be bytes" % key)
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value  # text given as UTF-8 bytes
    raise TypeError("metadata values are str (or bytes for -bin keys), not %s"
                    % type(value).__name__)


def _md_value(key: str, raw: Optional[bytes]) -> Union[str, bytes, None]:
    if raw is None:
        return None
    if key.endswith("-bin"):
        return raw
    return raw.decode("utf-8", "replace")


class MetadataMap(collections.abc.Mapping):  # type: ignore[type-arg]
    """Read-only metadata (request metadata or trailers): a Mapping of key to
    value in the order received (the wire's canonical order). Text keys give
    str, keys ending in "-bin" bytes. The wire holds one value per key (a
    sender given several sends the first). A snapshot: it stays valid after
    the call or request is released."""

    __slots__ = ("_map",)

    def __init__(self, entries: Iterable[Tuple[str, Union[str, bytes]]] = ()) -> None:
        m: Dict[str, Union[str, bytes]] = {}
        for k, v in entries:
            m.setdefault(k, v)
        self._map = m

    def __getitem__(self, key: str) -> Union[str, bytes]:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self._map)


def _list_metadata(count: Any, at: Any, handle: Any) -> List[Tuple[str, Union[str, bytes]]]:
    """(key, value) pairs through a *_count / *_at pair of the C API."""
    out: List[Tuple[str, Union[str, bytes]]] = []
    for i in range(count(handle)):
        entry = at(handle, i)
        if entry is None:
            break
        k, raw = entry
        out.append((k, _md_value(k, raw if raw is not None else b"")))  # type: ignore[arg-type]
    return out


class Trailers(MetadataMap):
    """Trailing metadata of an ended call (empty before the end): a
    read-only Mapping, see MetadataMap."""

    __slots__ = ()


class CallInfo:
    """How a unary or client-streaming call ended, returned with its response
    by ``with_call=True`` (as grpcio's ``with_call``): ``status`` (always OK
    there: a failure raises), ``status_name``, ``message``, ``trailers`` (a
    read-only Mapping, see Trailers; also ``trailing_metadata()``) and
    ``method``. A snapshot: no handle is kept."""

    __slots__ = ("method", "status", "message", "trailers")

    def __init__(self, method: str, status: int, message: str, trailers: Trailers) -> None:
        self.method = method
        self.status = status
        self.message = message
        self.trailers = trailers

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    def trailing_metadata(self) -> Trailers:
        """The trailers (grpcio's name)."""
        return self.trailers

    def __repr__(self) -> str:
        return "CallInfo(%r, %s, trailers=%r)" % (self.method, self.status_name,
                                                   dict(self.trailers))


class Call:
    """One call handle: every kind of stream. Iterate (``for`` or ``async
    for``) to receive; ``send``/``close_send`` to send; ``status``,
    ``message``, ``trailers`` once it ended; ``cancel()`` from any thread;
    ``close()`` (or ``with``) frees it.

    ``raw=True`` sends and yields bytes; otherwise values go through
    rpcnet.cbor."""

    def __init__(self, client: "Client", method: str, timeout: Optional[float],
                 metadata: Optional[Metadata], raw: bool) -> None:
        self._client = client
        self._method = method
        self._raw = raw
        self._busy = threading.Lock()   # held around every C call but cancel
        self._state = threading.Lock()
        self._closing = False
        self._ended = False
        self._status: Optional[int] = None
        self._message = ""
        self._trailers: Optional[Trailers] = None
        # asyncio waiters per readiness fd: fd -> (loop, futures)
        self._fd_waiters: Dict[int, Tuple[Any, Set[Any]]] = {}
        ptr = client._start(method, _timeout_ms(timeout))
        self._ptr: Any = ptr
        client._track(self)
        try:
            for k, v in (metadata or {}).items():
                st = _c.rpcnet_call_set_metadata(ptr, k, _md_bytes(k, v))
                if st != OK:
                    _raise(st)
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------
    def _p(self) -> Any:
        if self._ptr is None:
            raise ClosedError("call is closed")
        return self._ptr

    def _enc(self, v: Any) -> Buffer:
        if self._raw:
            if not isinstance(v, (bytes, bytearray, memoryview)):
                raise TypeError("raw calls send bytes, bytearray or memoryview")
            return v
        return cbor.dumps(v)

    def _dec(self, data: bytes) -> Any:
        return data if self._raw else cbor.loads(data)

    def _finish(self) -> None:
        st, msg = _c.rpcnet_call_status(self._ptr)
        self._trailers = Trailers(_list_metadata(_c.rpcnet_call_trailer_count,
                                                 _c.rpcnet_call_trailer_at, self._ptr))
        self._ended = True
        self._status = st
        self._message = msg

    def _recv_once(self, timeout_ms: int) -> Tuple[int, Optional[bytes]]:
        with self._busy:
            p = self._p()
            st, data = _c.rpcnet_call_recv(p, timeout_ms)
            if st == END_OF_STREAM:
                self._finish()
            return st, data

    def _check_end(self) -> None:
        if self._status is not None and self._status != OK:
            err = RpcError(self._status, self._message)
            err.trailers = self.trailers  # what the server sent with the failure
            raise err

    def _info(self) -> CallInfo:
        """The CallInfo of an ended call."""
        return CallInfo(self._method, OK if self._status is None else self._status,
                        self._message, self.trailers)

    # -- sending ----------------------------------------------------------
    def send(self, value: Any) -> None:
        """Sends one message (waits while the peer is slow). Raises the
        call's error when it has already ended."""
        data = self._enc(value)
        with self._busy:
            st = _c.rpcnet_call_send(self._p(), data)
            if st != OK:
                _raise(st)

    def close_send(self) -> None:
        """Finishes the client's side of the stream (harmless twice). When
        the call already ended this does nothing: its status (and the
        messages before it) come from the iteration."""
        with self._busy:
            _c.rpcnet_call_close_send(self._p())

    # -- receiving --------------------------------------------------------
    def recv(self, timeout: Optional[float] = None) -> Any:
        """The next message; raises StopIteration-free ``EOFError`` at the
        end of a successful stream, RpcError for a failed one, TimeoutError
        when ``timeout`` passed without a message."""
        ms = -1 if timeout is None else max(0, int(math.ceil(timeout * 1000)))
        st, data = self._recv_once(ms)
        if st == OK:
            return self._dec(data)  # type: ignore[arg-type]
        if st == WOULD_BLOCK:
            raise TimeoutError("no message within %s s" % timeout)
        self._check_end()
        raise EOFError("end of stream")

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._ended:
            self._check_end()
            raise StopIteration
        st, data = self._recv_once(-1)
        if st == OK:
            return self._dec(data)  # type: ignore[arg-type]
        self._check_end()
        raise StopIteration

    def result(self) -> Any:
        """For unary and client-streaming calls: close_send if needed, then
        the one response (raises the call's error)."""
        if not self._ended:
            self.close_send()
        out = None
        got = False
        for v in self:
            if not got:
                out, got = v, True
        if not got:
            raise RpcError(13, "the server sent no response message")
        return out

    # -- asyncio ----------------------------------------------------------
    async def _await_fd(self, send: bool) -> None:
        """Waits until the call's recv fd (send=False) or send fd (send=True)
        is readable, with loop.add_reader. Any number of tasks may wait on
        one call: they share one reader per fd. close() wakes them.
        Cancelling the waiting task cancels the call (rpcnet_call_cancel:
        the server sees CANCELLED) and leaves no reader on the loop."""
        try:
            await self._await_fd_once(send)
        except asyncio.CancelledError:
            self.cancel()
            raise

    async def _await_fd_once(self, send: bool) -> None:
        loop = asyncio.get_running_loop()
        with self._busy:
            p = self._p()
            fd = _c.rpcnet_call_send_fd(p) if send else _c.rpcnet_call_fd(p)
        if fd < 0:  # no descriptor could be made: poll
            await asyncio.sleep(0.001)
            return
        fut = loop.create_future()
        entry = self._fd_waiters.get(fd)
        if entry is None or entry[0] is not loop:
            if entry is not None:  # left over from another loop
                self._wake_fd(fd)
            entry = (loop, set())
            self._fd_waiters[fd] = entry

            def ready() -> None:
                self._wake_fd(fd)

            loop.add_reader(fd, ready)
        entry[1].add(fut)
        try:
            await fut
        finally:
            cur = self._fd_waiters.get(fd)
            if cur is entry:
                entry[1].discard(fut)
                if not entry[1]:
                    del self._fd_waiters[fd]
                    loop.remove_reader(fd)

    def _wake_fd(self, fd: int) -> None:
        """In the fd's loop: stop watching fd and wake its waiters."""
        entry = self._fd_waiters.pop(fd, None)
        if entry is None:
            return
        loop, futs = entry
        loop.remove_reader(fd)
        for f in futs:
            if not f.done():
                f.set_result(None)

    def _wake_all(self) -> None:
        """Wakes every asyncio waiter (from any thread): the call is going
        away, its fds with it."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for fd, (loop, _) in list(self._fd_waiters.items()):
            if loop is running:
                self._wake_fd(fd)  # at once, before the fd is closed
                continue
            try:
                loop.call_soon_threadsafe(self._wake_fd, fd)
            except RuntimeError:  # loop closed
                self._fd_waiters.pop(fd, None)

    async def arecv(self) -> Tuple[int, Optional[bytes]]:
        while True:
            st, data = self._recv_once(0)
            if st != WOULD_BLOCK:
                return st, data
            await self._await_fd(False)  # a cancelled task cancels the call

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._ended:
            self._check_end()
            raise StopAsyncIteration
        st, data = await self.arecv()
        if st == OK:
            return self._dec(data)  # type: ignore[arg-type]
        self._check_end()
        raise StopAsyncIteration

    async def asend(self, value: Any) -> None:
        """send() that waits for room without blocking the event loop: under
        backpressure it waits for the call's send fd (rpcnet_call_send_fd)
        with loop.add_reader, then sends. Cancelling the task while it waits
        cancels the call."""
        data = self._enc(value)
        while True:
            with self._busy:
                st = _c.rpcnet_call_send_timeout(self._p(), data, 0)
            if st == OK:
                return
            if st != WOULD_BLOCK:
                _raise(st)
            await self._await_fd(True)

    async def aresult(self) -> Any:
        if not self._ended:
            self.close_send()
        out, got = None, False
        async for v in self:
            if not got:
                out, got = v, True
        if not got:
            raise RpcError(13, "the server sent no response message")
        return out

    # -- state ------------------------------------------------------------
    @property
    def status(self) -> Optional[int]:
        """The final status code once the call ended, else None."""
        return self._status

    @property
    def status_name(self) -> Optional[str]:
        return None if self._status is None else status_name(self._status)

    @property
    def message(self) -> str:
        return self._message

    @property
    def trailers(self) -> Trailers:
        """Trailing metadata, a read-only Mapping (empty until the call
        ended; then str values for text keys, bytes for "-bin" keys)."""
        t = self._trailers
        return t if t is not None else Trailers()

    def cancel(self) -> None:
        """Cancels the call (any thread, any time)."""
        with self._state:
            if self._ptr is not None and not self._closing:
                _c.rpcnet_call_cancel(self._ptr)

    def close(self) -> None:
        """Cancels the call if it still runs and frees it. Idempotent."""
        with self._state:
            if self._closing:
                return
            self._closing = True
            ptr = self._ptr
            if ptr is not None:
                _c.rpcnet_call_cancel(ptr)  # wakes a recv/send in another thread
        if self._fd_waiters:
            self._wake_all()  # asyncio waiters stop watching fds about to close
        with self._busy:
            freed = self._ptr is not None
            if freed:
                _c.rpcnet_call_free(self._ptr)
                self._ptr = None
        if freed:
            self._client._untrack(self)

    def __enter__(self) -> "Call":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_ptr", None) is not None:
                self.close()
        except Exception:
            pass


class _Guarded:
    """Counts the calls running on a handle so that close() never frees it
    under one (close waits on ``_cv`` for ``_inflight`` to reach 0).
    Subclasses set ``_cv``, ``_closed``, ``_inflight``, ``_ptr`` and name
    themselves in ``_what``."""

    _what = "handle"
    _cv: threading.Condition
    _closed: bool
    _inflight: int
    _ptr: Any

    def _enter(self) -> Any:
        with self._cv:
            if self._closed:
                raise ClosedError("%s is closed" % self._what)
            self._inflight += 1
            return self._ptr

    def _leave(self) -> None:
        with self._cv:
            self._inflight -= 1
            if self._inflight == 0:
                self._cv.notify_all()


class Client(_Guarded):
    """A connection to one server. Thread-safe: any number of threads may
    call at once (concurrent streams of one QUIC connection). Close with
    ``close()`` or ``with``."""

    def __init__(self, address: str, **options: Any) -> None:
        cfg = _make_config(options)
        try:
            ptr = _c.rpcnet_client_connect(cfg, address)
            err = _c.rpcnet_last_error() if ptr is None else ""
        finally:
            _c.rpcnet_config_free(cfg)
        if ptr is None:
            raise RpcError(14, err or "connect to %s failed" % address)
        self._ptr: Any = ptr
        self.address = address
        self._cv = threading.Condition()
        self._inflight = 0
        self._closed = False
        self._calls: "weakref.WeakSet[Call]" = weakref.WeakSet()

    _what = "client"

    def _start(self, method: str, timeout_ms: int) -> Any:
        p = self._enter()
        try:
            call = _c.rpcnet_client_start(p, method, timeout_ms)
            if call is None:
                _raise(14)
        except BaseException:
            self._leave()
            raise
        return call

    def _track(self, call: Call) -> None:
        with self._cv:
            self._calls.add(call)

    def _untrack(self, call: Call) -> None:
        # Called exactly once per started call (from Call.close).
        with self._cv:
            self._calls.discard(call)
            self._inflight -= 1
            if self._inflight == 0:
                self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- unary ------------------------------------------------------------
    @overload
    def call_raw(self, method: str, data: Buffer = ..., *, timeout: Optional[float] = ...,
                 metadata: Optional[Metadata] = ..., with_call: Literal[False] = ...) -> bytes: ...

    @overload
    def call_raw(self, method: str, data: Buffer = ..., *, timeout: Optional[float] = ...,
                 metadata: Optional[Metadata] = ...,
                 with_call: Literal[True]) -> Tuple[bytes, CallInfo]: ...

    def call_raw(self, method: str, data: Buffer = b"", *, timeout: Optional[float] = None,
                 metadata: Optional[Metadata] = None,
                 with_call: bool = False) -> Union[bytes, Tuple[bytes, CallInfo]]:
        """A unary call with bytes in and out (binary safe). With
        ``with_call=True`` it returns ``(response, CallInfo)``, whose
        ``trailers`` are the call's trailing metadata (a failure raises an
        RpcError whose ``trailers`` are those sent with it)."""
        if metadata or with_call:
            with Call(self, method, timeout, metadata, True) as c:
                c.send(data)
                resp = c.result()
                return (resp, c._info()) if with_call else resp  # type: ignore[return-value]
        p = self._enter()
        try:
            st, resp = _c.rpcnet_client_call(p, method, data, _timeout_ms(timeout))
            if st != OK:
                _raise(st)
            return resp  # type: ignore[no-any-return]
        finally:
            self._leave()

    @overload
    def call(self, method: str, request: Any = ..., *, timeout: Optional[float] = ...,
             metadata: Optional[Metadata] = ..., with_call: Literal[False] = ...) -> Any: ...

    @overload
    def call(self, method: str, request: Any = ..., *, timeout: Optional[float] = ...,
             metadata: Optional[Metadata] = ...,
             with_call: Literal[True]) -> Tuple[Any, CallInfo]: ...

    def call(self, method: str, request: Any = None, *, timeout: Optional[float] = None,
             metadata: Optional[Metadata] = None, with_call: bool = False) -> Any:
        """A unary call with values through rpcnet.cbor (``with_call``: see
        call_raw)."""
        if with_call:
            resp, info = self.call_raw(method, cbor.dumps(request), timeout=timeout,
                                       metadata=metadata, with_call=True)
            return cbor.loads(resp), info
        return cbor.loads(self.call_raw(method, cbor.dumps(request), timeout=timeout,
                                        metadata=metadata))

    # -- streams ----------------------------------------------------------
    def stream(self, method: str, *, timeout: Optional[float] = None,
               metadata: Optional[Metadata] = None, raw: bool = False) -> Call:
        """A bare call handle (any kind of call)."""
        return Call(self, method, timeout, metadata, raw)

    def server_stream(self, method: str, request: Any = None, *, timeout: Optional[float] = None,
                      metadata: Optional[Metadata] = None, raw: bool = False) -> Call:
        """Sends one request; iterate the result for the responses."""
        c = Call(self, method, timeout, metadata, raw)
        try:
            c.send(request)
        except RpcError:
            pass  # the call already ended: iterating gives its messages and status
        except BaseException:
            c.close()
            raise
        c.close_send()
        return c

    def client_stream(self, method: str, requests: Iterable[Any], *,
                      timeout: Optional[float] = None, metadata: Optional[Metadata] = None,
                      raw: bool = False, with_call: bool = False) -> Any:
        """Sends every request of the iterable, returns the one response
        (``(response, CallInfo)`` with ``with_call=True``)."""
        with Call(self, method, timeout, metadata, raw) as c:
            try:
                for r in requests:
                    c.send(r)
            except RpcError as e:
                # The call ended early: its final status is the error to report.
                c.close_send()
                try:
                    for _ in c:
                        pass
                except RpcError:
                    raise
                raise e
            resp = c.result()
            return (resp, c._info()) if with_call else resp

    def bidi(self, method: str, *, timeout: Optional[float] = None,
             metadata: Optional[Metadata] = None, raw: bool = False) -> Call:
        """A bidirectional stream: ``send``, ``close_send``, iterate."""
        return Call(self, method, timeout, metadata, raw)

    # -- asyncio ----------------------------------------------------------
    async def acall_raw(self, method: str, data: Buffer = b"", *, timeout: Optional[float] = None,
                        metadata: Optional[Metadata] = None, with_call: bool = False) -> Any:
        """call_raw for asyncio (``with_call``: ``(bytes, CallInfo)``)."""
        with Call(self, method, timeout, metadata, True) as c:
            await c.asend(data)
            resp = await c.aresult()
            return (resp, c._info()) if with_call else resp

    async def acall(self, method: str, request: Any = None, *, timeout: Optional[float] = None,
                    metadata: Optional[Metadata] = None, with_call: bool = False) -> Any:
        """A unary call for asyncio, driven by the call's readiness fd
        (``with_call``: ``(response, CallInfo)``)."""
        with Call(self, method, timeout, metadata, False) as c:
            await c.asend(request)
            resp = await c.aresult()
            return (resp, c._info()) if with_call else resp

    async def aclient_stream(self, method: str, requests: Any, *,
                             timeout: Optional[float] = None,
                             metadata: Optional[Metadata] = None, raw: bool = False,
                             with_call: bool = False) -> Any:
        """client_stream for asyncio; requests may be an iterable or async iterable."""
        with Call(self, method, timeout, metadata, raw) as c:
            if hasattr(requests, "__aiter__"):
                async for r in requests:
                    await c.asend(r)
            else:
                for r in requests:
                    await c.asend(r)
            resp = await c.aresult()
            return (resp, c._info()) if with_call else resp

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Cancels open call handles, waits for unary calls in flight, then
        closes the connection. Idempotent; later use raises ClosedError."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            calls = list(self._calls)
        for c in calls:
            c.cancel()
        for c in calls:
            c.close()
        with self._cv:
            while self._inflight > 0:
                self._cv.wait()
            ptr, self._ptr = self._ptr, None
        _c.rpcnet_client_close(ptr)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_ptr", None) is not None and not self._closed:
                self.close()
        except Exception:
            pass


def connect(address: str, **options: Any) -> Client:
    """Connects to ``host:port``. Keyword arguments are config keys of
    rpcnet_config_set (ca_file=..., server_name=..., verify_peer=False, ...);
    values are converted to strings, bools to "true"/"false"."""
    return Client(address, **options)

