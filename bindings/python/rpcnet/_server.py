"""Server side: handlers run on Python worker threads that pull calls with
rpcnet_server_next, so no library thread ever calls into Python."""

from __future__ import annotations

import inspect
import threading
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from . import _rpcnet_c as _c
from . import cbor
from ._client import MetadataMap, _list_metadata, _make_config, _md_bytes, _raise
from ._errors import (
    DEADLINE_EXCEEDED,
    END_OF_STREAM,
    INTERNAL,
    OK,
    WOULD_BLOCK,
    ClosedError,
    RpcError,
)

Handler = Callable[[Any, "Context"], Any]


class RequestMetadata(MetadataMap):
    """Request metadata: a read-only Mapping (iterate it, ``len``, ``in``,
    ``get``, ``items()``...; see MetadataMap). Text keys give str, keys ending
    in "-bin" bytes. Listed from the request the first time it is used
    while the handler runs, then kept."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: "Context") -> None:
        self._ctx: Optional["Context"] = ctx
        super().__init__()

    def _load(self) -> None:
        ctx = self._ctx
        if ctx is not None:
            MetadataMap.__init__(self, _list_metadata(_c.rpcnet_request_metadata_count,
                                                      _c.rpcnet_request_metadata_at, ctx._p()))
            self._ctx = None

    def __getitem__(self, key: str) -> Union[str, bytes]:
        self._load()
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def __contains__(self, key: object) -> bool:
        self._load()
        return super().__contains__(key)

    def __repr__(self) -> str:
        self._load()
        return super().__repr__()


class Context:
    """What a handler knows about its call."""

    def __init__(self, req: Any) -> None:
        self._req: Any = req
        self.method: str = _c.rpcnet_request_method(req)
        self.peer: str = _c.rpcnet_request_peer(req)
        self.metadata = RequestMetadata(self)

    def _p(self) -> Any:
        if self._req is None:
            raise ClosedError("the call was already answered")
        return self._req

    @property
    def deadline(self) -> Optional[float]:
        """Seconds left before the call's deadline, or None when it has none."""
        ms = _c.rpcnet_request_deadline_ms(self._p())
        return None if ms < 0 else ms / 1000.0

    @property
    def cancelled(self) -> bool:
        """True once the client cancelled, the deadline passed or the
        connection went away."""
        return self._req is None or bool(_c.rpcnet_request_cancelled(self._req))

    def set_trailer(self, key: str, value: Union[str, bytes]) -> None:
        """Adds trailing metadata (str for text keys, bytes for "-bin" keys)."""
        st = _c.rpcnet_request_set_trailer(self._p(), key, _md_bytes(key, value))
        if st != OK:
            _raise(st)


class _Method:
    def __init__(self, fn: Handler, streaming: bool, raw: bool) -> None:
        self.fn = fn
        self.streaming = streaming
        self.raw = raw


class Server:
    """An rpcnet server. Register handlers with ``@server.method(name)`` /
    ``@server.stream(name)``, then ``listen(addr)`` and ``serve()`` or
    ``start()``; ``shutdown(drain=...)`` stops it. Keyword arguments are
    config keys (cert_file=..., key_file=..., require_client_cert=True, ...)."""

    def __init__(self, **options: Any) -> None:
        cfg = _make_config(options)
        try:
            ptr = _c.rpcnet_server_new(cfg)
            err = _c.rpcnet_last_error() if ptr is None else ""
        finally:
            _c.rpcnet_config_free(cfg)
        if ptr is None:
            raise RpcError(3, err or "cannot create server")
        self._ptr: Any = ptr
        self._methods: Dict[str, _Method] = {}
        self._lock = threading.Lock()
        self._workers: List[threading.Thread] = []
        self._shut = False
        self._freed = False
        self._clusters = 0  # attached rpcnet.Cluster nodes not yet closed
        self._free_later: Any = None  # shut down while clusters were attached
        self.port: Optional[int] = None
        self.errors: List[BaseException] = []  # unexpected failures in workers

    def _p(self) -> Any:
        if self._ptr is None or self._shut:
            raise ClosedError("server is shut down")
        return self._ptr

    # -- registration -----------------------------------------------------
    def add_method(self, name: str, fn: Handler, *, raw: bool = False) -> None:
        st = _c.rpcnet_swig_server_pull(self._p(), name)
        if st != OK:
            _raise(st)
        self._methods[name] = _Method(fn, False, raw)

    def add_stream(self, name: str, fn: Handler, *, raw: bool = False) -> None:
        st = _c.rpcnet_swig_server_pull_stream(self._p(), name)
        if st != OK:
            _raise(st)
        self._methods[name] = _Method(fn, True, raw)

    def method(self, name: str, *, raw: bool = False) -> Callable[[Handler], Handler]:
        """Decorator: ``def handler(request, ctx) -> response`` (values via
        rpcnet.cbor, or bytes with raw=True)."""

        def deco(fn: Handler) -> Handler:
            self.add_method(name, fn, raw=raw)
            return fn

        return deco

    def stream(self, name: str, *, raw: bool = False) -> Callable[[Handler], Handler]:
        """Decorator for streaming methods: ``def handler(requests, ctx)``
        where requests iterates the client's messages; a generator's yielded
        values are sent, a plain return value is sent as one message."""

        def deco(fn: Handler) -> Handler:
            self.add_stream(name, fn, raw=raw)
            return fn

        return deco

    # -- running ----------------------------------------------------------
    def listen(self, address: str = "127.0.0.1:0") -> int:
        """Binds and starts accepting; returns the port."""
        st = _c.rpcnet_server_listen(self._p(), address)
        if st != OK:
            _raise(st)
        self.port = _c.rpcnet_server_port(self._ptr)
        return self.port

    def serve(self, workers: int = 4) -> None:
        """Runs handlers on ``workers`` threads until shutdown; blocks."""
        self.start(workers)
        for t in list(self._workers):
            while t.is_alive():
                t.join(0.2)  # wakes for KeyboardInterrupt

    def start(self, workers: int = 4) -> None:
        """Runs handlers on ``workers`` background threads."""
        self._p()
        with self._lock:
            for i in range(max(1, workers)):
                t = threading.Thread(target=self._work, name="rpcnet-worker-%d" % i, daemon=True)
                t.start()
                self._workers.append(t)

    def _work(self) -> None:
        ptr = self._ptr
        while True:
            st, req = _c.rpcnet_server_next(ptr, -1)
            if st == OK and req is not None:
                try:
                    self._dispatch(req)
                except BaseException as e:  # pragma: no cover - defensive
                    self.errors.append(e)
            elif st == DEADLINE_EXCEEDED:
                continue
            else:
                return

    def _dispatch(self, req: Any) -> None:
        ctx = Context(req)
        m = self._methods.get(ctx.method)
        if m is None:  # re-registered away; answer plainly
            _c.rpcnet_request_fail(req, 12, "method %s has no handler" % ctx.method)
            ctx._req = None
            return
        try:
            if m.streaming:
                self._run_stream(m, req, ctx)
            else:
                data = _c.rpcnet_swig_request_data(req)
                arg = data if m.raw else cbor.loads(data)
                out = m.fn(arg, ctx)
                payload = self._encode(m, out)
                ctx._req = None
                _c.rpcnet_request_reply(req, payload)
        except RpcError as e:
            self._fail(ctx, req, e.code if 1 <= e.code <= 16 else 2, e.message)
        except cbor.CBORDecodeError as e:
            self._fail(ctx, req, 3, "request is not valid CBOR: %s" % e)
        except Exception as e:  # any other exception: INTERNAL
            self._fail(ctx, req, INTERNAL, str(e) or type(e).__name__)
            if getattr(self, "log_exceptions", False):
                traceback.print_exc()

    @staticmethod
    def _encode(m: _Method, out: Any) -> Any:
        if m.raw:
            if out is None:
                return b""
            if not isinstance(out, (bytes, bytearray, memoryview)):
                raise TypeError("raw handler returned %s, not bytes" % type(out).__name__)
            return out
        return cbor.dumps(out)

    @staticmethod
    def _fail(ctx: Context, req: Any, code: int, message: str) -> None:
        if ctx._req is None:
            return  # already answered
        ctx._req = None
        _c.rpcnet_request_finish(req, code, message)

    def _run_stream(self, m: _Method, req: Any, ctx: Context) -> None:
        def requests() -> Iterator[Any]:
            while True:
                if ctx._req is None:
                    return
                st, data = _c.rpcnet_request_recv(req, -1)
                if st == OK:
                    yield data if m.raw else cbor.loads(data)
                elif st == END_OF_STREAM:
                    return
                elif st == WOULD_BLOCK:
                    continue
                else:
                    raise RpcError(st, _c.rpcnet_last_error())

        out = m.fn(requests(), ctx)
        if inspect.isgenerator(out) or (out is not None and hasattr(out, "__next__")):
            for v in out:
                st = _c.rpcnet_request_send(req, self._encode(m, v))
                if st != OK:
                    raise RpcError(st, _c.rpcnet_last_error())
        elif out is not None:
            st = _c.rpcnet_request_send(req, self._encode(m, out))
            if st != OK:
                raise RpcError(st, _c.rpcnet_last_error())
        ctx._req = None
        _c.rpcnet_request_finish(req, OK, None)

    def shutdown(self, drain: float = 5.0) -> None:
        """Stops accepting, lets calls in flight finish for up to ``drain``
        seconds, fails the rest with UNAVAILABLE, stops the workers and frees
        the server. Idempotent."""
        with self._lock:
            if self._shut:
                return
            self._shut = True
            workers = list(self._workers)
        ptr = self._ptr
        _c.rpcnet_server_shutdown(ptr, max(0, int(drain * 1000)))
        for t in workers:
            if t is not threading.current_thread():
                t.join()
        with self._lock:
            self._ptr = None
            if self._clusters > 0:  # freed when the last attached cluster closes
                self._free_later, ptr = ptr, None
        if ptr is not None:
            _c.rpcnet_server_free(ptr)

    # -- rpcnet.Cluster attachment (the server must outlive the node) -----
    def _attach_cluster(self, attach: Callable[[Any], int]) -> int:
        with self._lock:
            if self._ptr is None or self._shut:
                raise ClosedError("server is shut down")
            st = attach(self._ptr)
            if st == OK:
                self._clusters += 1
            return st

    def _detach_cluster(self) -> None:
        with self._lock:
            self._clusters -= 1
            ptr = self._free_later if self._clusters == 0 else None
            if ptr is not None:
                self._free_later = None
        if ptr is not None:
            _c.rpcnet_server_free(ptr)

    close = shutdown

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(drain=0)

    def __del__(self) -> None:
        try:
            if getattr(self, "_ptr", None) is not None and not self._shut:
                self.shutdown(drain=0)
        except Exception:
            pass
