"""Cluster: SWIM membership, tags, events and routed calls (rpcnet_cluster_*).

No library thread ever calls into Python: events are pulled with
rpcnet_cluster_next_event, waiting on rpcnet_cluster_fd (with poll() and the
GIL released, or with loop.add_reader under asyncio)."""

from __future__ import annotations

import asyncio
import functools
import os
import select
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, AsyncIterator, Dict, Iterable, Iterator, List, Literal,
                    Mapping, Optional, Set, Tuple, Union, overload)

from . import _rpcnet_c as _c
from . import cbor
from ._client import Buffer, Call, Metadata, _Guarded, _make_config, _raise, _timeout_ms
from ._errors import DEADLINE_EXCEEDED, OK, ClosedError, RpcError

if TYPE_CHECKING:
    from ._server import Server

#: A member filter: "k=v,k2=v2", "k" (tag present), "k!=v"; or a mapping
#: {"k": "v"} meaning every k=v; None or "" for every member.
Filter = Union[str, Mapping[str, str], None]

_IDEMPOTENT = int(_c.RPCNET_CALL_IDEMPOTENT)
_HEDGE = int(_c.RPCNET_CALL_HEDGE)


@dataclass(frozen=True)
class Member:
    """One member as this node sees it (a snapshot; rpcnet_cluster_members).

    ``state`` is "alive", "suspect", "dead" or "left"; ``rpc_addr`` is ""
    for a node without a server; ``is_self`` marks this node; ``inflight``,
    ``latency_us`` (EWMA of call latencies, 0 until measured), ``phi`` and
    ``breaker`` ("closed", "open", "half_open") are this node's routing view
    of the member."""

    name: str
    gossip_addr: str = ""
    rpc_addr: str = ""
    state: str = ""
    incarnation: int = 0
    tags: Dict[str, str] = field(default_factory=dict, hash=False)
    is_self: bool = False
    inflight: int = 0
    latency_us: int = 0
    phi: float = 0.0
    breaker: str = "closed"

    @classmethod
    def _from(cls, m: Mapping[str, Any]) -> "Member":
        tags = m.get("tags") or {}
        return cls(
            name=str(m.get("name", "")),
            gossip_addr=str(m.get("gossip_addr", "")),
            rpc_addr=str(m.get("rpc_addr", "")),
            state=str(m.get("state", "")),
            incarnation=int(m.get("incarnation", 0)),
            tags={str(k): str(v) for k, v in tags.items()},
            is_self=bool(m.get("self", False)),
            inflight=int(m.get("inflight", 0)),
            latency_us=int(m.get("latency_us", 0)),
            phi=float(m.get("phi", 0.0)),
            breaker=str(m.get("breaker", "closed")),
        )


@dataclass(frozen=True)
class Event:
    """A membership event: ``type`` is "joined", "left", "failed",
    "updated", "recovered", "suspected", "partitioned" or "healed";
    ``member`` is the member it is about (None for "partitioned" and
    "healed")."""

    type: str
    member: Optional[Member] = None

    @classmethod
    def _from(cls, data: bytes) -> "Event":
        v = cbor.loads(data)
        m = v.get("member")
        return cls(type=str(v.get("type", "")), member=Member._from(m) if m else None)


def _filter_str(f: Filter) -> Optional[str]:
    if f is None:
        return None
    if isinstance(f, str):
        return f or None
    if isinstance(f, Mapping):
        return ",".join("%s=%s" % (k, v) for k, v in f.items()) or None
    raise TypeError("filter is a str like 'role=worker' or a mapping, not %s" % type(f).__name__)


def _flags(idempotent: bool, hedge: bool) -> int:
    if hedge and not idempotent:
        raise ValueError("hedge=True needs idempotent=True (a hedged method may run twice)")
    return (_IDEMPOTENT if idempotent else 0) | (_HEDGE if hedge else 0)


class _Route:
    """What rpcnet.Call needs from its owner (start, track, untrack), for a
    call handle started by rpcnet_cluster_start on a member matching a
    filter."""

    __slots__ = ("_cluster", "_filter")

    def __init__(self, cluster: "Cluster", filter: Optional[str]) -> None:
        self._cluster = cluster
        self._filter = filter

    def _start(self, method: str, timeout_ms: int) -> Any:
        return self._cluster._start(self._filter, method, timeout_ms)

    def _track(self, call: Call) -> None:
        self._cluster._track(call)

    def _untrack(self, call: Call) -> None:
        self._cluster._untrack(call)


class Cluster(_Guarded):
    """A cluster node (rpcnet_cluster). Keyword arguments are config keys of
    rpcnet_config_set, as for rpcnet.connect and rpcnet.Server: node_name,
    gossip_bind, gossip_advertise, rpc_advertise, cluster_keys, the
    failure-detector tuning (probe_interval_ms, ...), join_timeout_ms,
    cluster_strategy, cluster_retries, hedge_percentile, breaker_failures,
    and the TLS client keys used for calls to members (ca_file,
    server_name, verify_peer, cert_file/key_file). A key left out (or None)
    keeps the library's default (gossip_bind "0.0.0.0:7946").

    ``server=`` attaches a listening rpcnet.Server (see attach). Thread-safe:
    any number of threads may call, wait for events and join at once.
    ``close()`` (or ``with``) frees the node; later use raises
    rpcnet.ClosedError."""

    def __init__(self, *, node_name: Optional[str] = None, gossip_bind: Optional[str] = None,
                 cluster_keys: Optional[str] = None, ca_file: Optional[str] = None,
                 server_name: Optional[str] = None, server: Optional["Server"] = None,
                 **options: Any) -> None:
        opts: Dict[str, Any] = dict(node_name=node_name, gossip_bind=gossip_bind,
                                    cluster_keys=cluster_keys, ca_file=ca_file,
                                    server_name=server_name)
        opts.update(options)
        cfg = _make_config(opts)
        try:
            ptr = _c.rpcnet_cluster_new(cfg)
            err = _c.rpcnet_last_error() if ptr is None else ""
        finally:
            _c.rpcnet_config_free(cfg)
        if ptr is None:
            raise RpcError(3, err or "cannot create the cluster node")
        self._ptr: Any = ptr
        self._cv = threading.Condition()
        self._inflight = 0
        self._closed = False
        self._calls: "weakref.WeakSet[Call]" = weakref.WeakSet()
        self._servers: List["Server"] = []
        #: This node's name and bound gossip port (kept after close).
        self.name: str = str(_c.rpcnet_cluster_name(ptr))
        self.gossip_port: int = int(_c.rpcnet_cluster_gossip_port(ptr))
        self._fd: int = int(_c.rpcnet_cluster_fd(ptr))
        # A blocking next_event polls the cluster fd and this pipe; close()
        # writes to the pipe so waiters in other threads leave at once.
        self._wake_r, self._wake_w = os.pipe()
        # asyncio waiters: loop -> futures, one add_reader per loop.
        self._aio_lock = threading.Lock()
        self._aio: Dict[Any, Set[Any]] = {}
        if server is not None:
            try:
                self.attach(server)
            except BaseException:
                self.close()
                raise

    _what = "cluster"

    def _start(self, filter: Optional[str], method: str, timeout_ms: int) -> Any:
        p = self._enter()
        try:
            call = _c.rpcnet_cluster_start(p, filter, method, timeout_ms)
            if call is None:
                msg = _c.rpcnet_last_error()
                _raise(3 if "bad filter" in msg else 14, msg)
        except BaseException:
            self._leave()
            raise
        return call

    def _track(self, call: Call) -> None:
        with self._cv:
            self._calls.add(call)
            if self._closed:  # started while close() waits: it closes this one too
                self._cv.notify_all()

    def _untrack(self, call: Call) -> None:
        # Exactly once per started call (from Call.close).
        with self._cv:
            self._calls.discard(call)
            self._inflight -= 1
            if self._inflight == 0:
                self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """rpcnet_cluster_fd: readable while an event is queued
        (level-triggered). Owned by the cluster: do not read or close it."""
        if self._closed:
            raise ClosedError("cluster is closed")
        return self._fd

    # -- membership -------------------------------------------------------
    def attach(self, server: "Server") -> None:
        """Attaches a listening rpcnet.Server: it answers the cluster's
        push-pull and its port becomes this node's RPC address (unless
        rpc_advertise is configured). The server's handle is kept until this
        node is closed, even when ``server.shutdown()`` runs first.
        Raises InvalidArgument (not listening) or FailedPrecondition (a
        server is already attached, or after leave)."""
        p = self._enter()
        try:
            st = server._attach_cluster(lambda sp: _c.rpcnet_cluster_attach_server(p, sp))
            if st != OK:
                _raise(st)
            self._servers.append(server)
        finally:
            self._leave()

    def set_tag(self, key: str, value: Optional[str]) -> None:
        """Sets a tag of this node (gossiped at once); ``value=None`` removes
        it. Raises InvalidArgument (bad key) or ResourceExhausted (limits:
        32 tags, 1 KiB in all)."""
        if value is not None and not isinstance(value, str):
            raise TypeError("tag values are str (or None to remove), not %s"
                            % type(value).__name__)
        p = self._enter()
        try:
            st = _c.rpcnet_cluster_set_tag(p, key, value)
            if st != OK:
                _raise(st)
        finally:
            self._leave()

    def join(self, seeds: Union[str, Iterable[str]]) -> None:
        """Joins through seeds ("h:p,h:p" or a list of "h:p" gossip
        addresses); blocks (GIL released) until a push-pull with one seed
        completed, or join_timeout_ms. Raises PermissionDenied (a seed
        refused this node's cluster_keys), Unavailable (no seed answered),
        InvalidArgument (bad seed list) or FailedPrecondition (after
        leave). May be called again."""
        s = seeds if isinstance(seeds, str) else ",".join(seeds)
        p = self._enter()
        try:
            st = _c.rpcnet_cluster_join(p, s)
            if st != OK:
                _raise(st)
        finally:
            self._leave()

    def leave(self, timeout: float = 2.0) -> None:
        """Leaves gracefully (others record this node as "left"), waiting up
        to ``timeout`` seconds for the leave to be gossiped; the node still
        answers calls until closed. Raises DeadlineExceeded when the leave
        was not confirmed in time (the others still learn it)."""
        ms = 0 if timeout <= 0 else max(1, int(timeout * 1000.0 + 0.5))
        p = self._enter()
        try:
            st = _c.rpcnet_cluster_leave(p, ms)
            if st != OK:
                _raise(st)
        finally:
            self._leave()

    def set_keys(self, keys: Union[str, Iterable[str]]) -> None:
        """Replaces the keyring without a restart (``"new,old"`` or a list;
        the first key seals, all open). Rotation with no downtime: on every
        node ``[old, new]``, then ``[new, old]``, then ``[new]``. Raises
        InvalidArgument for a bad key (the keyring is unchanged)."""
        text = keys if isinstance(keys, str) else ",".join(keys)
        p = self._enter()
        try:
            st = _c.rpcnet_cluster_set_keys(p, text)
            if st != OK:
                _raise(st)
        finally:
            self._leave()

    def stats(self) -> Dict[str, int]:
        """This node's counters (packets, bytes, auth_failures, probes,
        refutes, health, incarnation, members, ...) for metrics."""
        p = self._enter()
        try:
            st, data = _c.rpcnet_cluster_stats(p)
            if st != OK:
                _raise(st)
        finally:
            self._leave()
        return dict(cbor.loads(data))

    def members(self, filter: Filter = None) -> List[Member]:
        """The members whose tags match ``filter`` (this node included;
        dead and left members until reaped). Raises InvalidArgument for a
        bad filter."""
        p = self._enter()
        try:
            st, data = _c.rpcnet_cluster_members(p, _filter_str(filter))
            if st != OK:
                _raise(st)
        finally:
            self._leave()
        return [Member._from(m) for m in cbor.loads(data)]

    # -- events -----------------------------------------------------------
    def _take(self) -> Optional[Event]:
        """The next queued event without waiting (None when there is none)."""
        p = self._enter()
        try:
            st, data = _c.rpcnet_cluster_next_event(p, 0)
        finally:
            self._leave()
        if st == OK and data is not None:
            return Event._from(data)
        if st != DEADLINE_EXCEEDED:
            _raise(st)
        return None

    def next_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next membership event, waiting up to ``timeout`` seconds
        (None: until one comes; 0: do not wait); None when none came. Waits
        with poll() on rpcnet_cluster_fd, the GIL released. Raises
        ClosedError when the node is (or gets) closed."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            ev = self._take()
            if ev is not None:
                return ev
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._wait_fd(left)

    def _wait_fd(self, left: Optional[float]) -> None:
        self._enter()  # keeps the fds open while polling
        try:
            poller = select.poll()
            poller.register(self._fd, select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            poller.poll(None if left is None else max(1, int(left * 1000.0 + 0.999)))
        finally:
            self._leave()

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterates membership events as they come. With ``timeout`` the
        iteration ends after ``timeout`` seconds without an event; it also
        ends when the node is closed (by another thread)."""
        if self._closed:
            raise ClosedError("cluster is closed")

        def gen() -> Iterator[Event]:
            while True:
                try:
                    ev = self.next_event(timeout)
                except ClosedError:
                    return
                if ev is None:
                    return
                yield ev

        return gen()

    def aevents(self, timeout: Optional[float] = None) -> AsyncIterator[Event]:
        """``async for ev in cl.aevents()``: events for asyncio. Waits on
        rpcnet_cluster_fd with loop.add_reader (no thread, no polling; any
        number of tasks and loops may wait at once). With ``timeout`` it
        ends after ``timeout`` seconds without an event; it also ends when
        the node is closed."""
        if self._closed:
            raise ClosedError("cluster is closed")

        async def gen() -> AsyncIterator[Event]:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    ev = self._take()
                except ClosedError:
                    return
                if ev is not None:
                    yield ev
                    continue
                try:
                    if timeout is None:
                        await self._await_fd(loop)
                    else:
                        await asyncio.wait_for(self._await_fd(loop), max(0.0, timeout))
                except (ClosedError, asyncio.TimeoutError):
                    return

        return gen()

    async def _await_fd(self, loop: Any) -> None:
        fut = loop.create_future()
        with self._aio_lock:
            if self._closed:
                raise ClosedError("cluster is closed")
            futs = self._aio.get(loop)
            if futs is None:
                futs = self._aio[loop] = set()
                loop.add_reader(self._fd, self._aio_wake, loop)
            futs.add(fut)
        try:
            await fut
        finally:
            with self._aio_lock:
                cur = self._aio.get(loop)
                if cur is not None:
                    cur.discard(fut)
                    if not cur:
                        del self._aio[loop]
                        loop.remove_reader(self._fd)

    def _aio_wake(self, loop: Any) -> None:
        """In loop's thread: stop watching the fd and wake its waiters."""
        with self._aio_lock:
            futs = self._aio.pop(loop, None)
            if futs is None:
                return
            loop.remove_reader(self._fd)
        for f in futs:
            if not f.done():
                f.set_result(None)

    def _aio_wake_all(self) -> None:
        """Before the fd goes away: every loop stops watching it."""
        with self._aio_lock:
            loops = list(self._aio)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop in loops:
            if loop is running:
                self._aio_wake(loop)
                continue
            done = threading.Event()

            def wake(loop: Any = loop, done: threading.Event = done) -> None:
                try:
                    self._aio_wake(loop)
                finally:
                    done.set()

            try:
                loop.call_soon_threadsafe(wake)
            except RuntimeError:  # loop closed: nothing watches any more
                continue
            done.wait(1.0)  # a stopped loop never runs it: do not hang

    # -- routed calls -----------------------------------------------------
    @overload
    def call_raw(self, method: str, data: Buffer = ..., *, filter: Filter = ...,
                 timeout: Optional[float] = ..., idempotent: bool = ..., hedge: bool = ...,
                 with_member: Literal[False] = ...) -> bytes: ...

    @overload
    def call_raw(self, method: str, data: Buffer = ..., *, filter: Filter = ...,
                 timeout: Optional[float] = ..., idempotent: bool = ..., hedge: bool = ...,
                 with_member: Literal[True]) -> Tuple[bytes, str]: ...

    def call_raw(self, method: str, data: Buffer = b"", *, filter: Filter = None,
                 timeout: Optional[float] = None, idempotent: bool = False, hedge: bool = False,
                 with_member: bool = False) -> Union[bytes, Tuple[bytes, str]]:
        """A unary call, bytes in and out, to one alive member matching
        ``filter`` chosen by cluster_strategy (rpcnet_cluster_call_ex; GIL
        released). ``idempotent=True``: on UNAVAILABLE or a broken
        connection it is retried on another member (cluster_retries times);
        ``hedge=True`` (needs idempotent) also starts a second attempt when
        the first is slow. ``with_member=True`` returns ``(response,
        member_name)``. Failures raise RpcError subclasses (Unavailable when
        no member matches); the error's ``member`` attribute names the
        member that answered, or None."""
        flags = _flags(idempotent, hedge)
        f = _filter_str(filter)
        p = self._enter()
        try:
            st, resp, member = _c.rpcnet_swig_cluster_call(p, f, method, data, _timeout_ms(timeout),
                                                           flags)
            if st != OK:
                err = RpcError(st, _c.rpcnet_last_error())
                err.member = member or None  # type: ignore[attr-defined]
                raise err
        finally:
            self._leave()
        if resp is None:
            resp = b""
        return (resp, member) if with_member else resp

    @overload
    def call(self, method: str, request: Any = ..., *, filter: Filter = ...,
             timeout: Optional[float] = ..., idempotent: bool = ..., hedge: bool = ...,
             with_member: Literal[False] = ...) -> Any: ...

    @overload
    def call(self, method: str, request: Any = ..., *, filter: Filter = ...,
             timeout: Optional[float] = ..., idempotent: bool = ..., hedge: bool = ...,
             with_member: Literal[True]) -> Tuple[Any, str]: ...

    def call(self, method: str, request: Any = None, *, filter: Filter = None,
             timeout: Optional[float] = None, idempotent: bool = False, hedge: bool = False,
             with_member: bool = False) -> Any:
        """call_raw with values through rpcnet.cbor."""
        resp, member = self.call_raw(method, cbor.dumps(request), filter=filter, timeout=timeout,
                                     idempotent=idempotent, hedge=hedge, with_member=True)
        value = cbor.loads(resp)
        return (value, member) if with_member else value

    async def acall_raw(self, method: str, data: Buffer = b"", *, filter: Filter = None,
                        timeout: Optional[float] = None, idempotent: bool = False,
                        hedge: bool = False, with_member: bool = False) -> Any:
        """call_raw for asyncio.

        A plain call runs on a call handle from rpcnet_cluster_start, driven
        by the call's readiness fd like Client.acall (no thread): picking
        the member, and the first time a member is called the QUIC
        handshake to it, happen inline (bounded by ``timeout``); sending and
        waiting for the answer do not block the loop. Cancelling the task
        cancels the call. Such a call is attempted once.

        With ``idempotent``, ``hedge`` or ``with_member`` the call needs
        rpcnet_cluster_call_ex (retries on another member, hedging, the
        answering member's name), which the C API only has in a blocking
        form: it then runs ``call_raw`` in the loop's default executor (one
        worker thread for the call; cancelling the task does not stop it,
        it ends at its timeout)."""
        if idempotent or hedge or with_member:
            _flags(idempotent, hedge)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, functools.partial(
                self.call_raw, method, data, filter=filter, timeout=timeout,
                idempotent=idempotent, hedge=hedge, with_member=with_member))
        with Call(_Route(self, _filter_str(filter)), method, timeout, None, True) as c:  # type: ignore[arg-type]
            await c.asend(data)
            return await c.aresult()

    async def acall(self, method: str, request: Any = None, *, filter: Filter = None,
                    timeout: Optional[float] = None, idempotent: bool = False,
                    hedge: bool = False, with_member: bool = False) -> Any:
        """call for asyncio (values through rpcnet.cbor); see acall_raw for
        how it runs."""
        out = await self.acall_raw(method, cbor.dumps(request), filter=filter, timeout=timeout,
                                   idempotent=idempotent, hedge=hedge, with_member=with_member)
        if with_member:
            return cbor.loads(out[0]), out[1]
        return cbor.loads(out)

    def stream(self, method: str, filter: Filter = None, *, timeout: Optional[float] = None,
               metadata: Optional[Metadata] = None, raw: bool = False) -> Call:
        """A call handle (rpcnet.Call: every kind of stream, sync or
        asyncio) on one member matching ``filter`` (rpcnet_cluster_start).
        Streams are not retried. Raises Unavailable when no member matches
        or the chosen one cannot be reached. close() the Call (or ``with``);
        closing the node cancels it."""
        return Call(_Route(self, _filter_str(filter)), method, timeout, metadata, raw)  # type: ignore[arg-type]

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Frees the node without leaving (call leave() first for a graceful
        exit): wakes threads and tasks waiting for events (their waits end),
        cancels open stream handles, waits for calls, joins and leaves in
        flight, then rpcnet_cluster_free. Idempotent."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            calls = list(self._calls)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._aio_wake_all()
        while True:
            for c in calls:
                c.cancel()
            for c in calls:
                c.close()
            with self._cv:
                # Streams started while closing are closed too; calls,
                # joins, waits and streams closing elsewhere are waited for.
                calls = [c for c in self._calls if not c._closing]
                while self._inflight > 0 and not calls:
                    self._cv.wait()
                    calls = [c for c in self._calls if not c._closing]
                if self._inflight == 0:
                    ptr, self._ptr = self._ptr, None
                    break
        _c.rpcnet_cluster_free(ptr)
        os.close(self._wake_r)
        os.close(self._wake_w)
        servers, self._servers = self._servers, []
        for s in servers:
            s._detach_cluster()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_ptr", None) is not None and not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return "<rpcnet.Cluster %r gossip_port=%d%s>" % (self.name, self.gossip_port,
                                                         " closed" if self._closed else "")
