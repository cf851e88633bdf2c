"""Status codes and the exception hierarchy: one RpcError subclass per status."""

from __future__ import annotations

import types
from typing import Dict, Mapping, Type, Union

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16

END_OF_STREAM = -1
WOULD_BLOCK = -2

STATUS_NAMES: Dict[int, str] = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code, "UNKNOWN_STATUS")


_BY_CODE: Dict[int, Type["RpcError"]] = {}


class RpcError(Exception):
    """A failed call: ``.code`` (gRPC status number), ``.name`` ("NOT_FOUND")
    and ``.message``. ``RpcError(5, "msg")`` gives the subclass for the code
    (``NotFound``); subclasses take just the message: ``NotFound("msg")``."""

    code: int = UNKNOWN
    #: Trailing metadata the server sent with the failure, when the call ran
    #: on a call handle (streams, ``with_call=True``, ``metadata=``, asyncio);
    #: else empty.
    trailers: Mapping[str, Union[str, bytes]] = types.MappingProxyType({})

    def __new__(cls, *args: object, **kw: object) -> "RpcError":
        if cls is RpcError and args and isinstance(args[0], int) and not isinstance(args[0], bool):
            cls = _BY_CODE.get(args[0], RpcError)
        return super().__new__(cls)

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            code = int(args[0])
            message = args[1] if len(args) > 1 else ""
        else:
            code = type(self).code
            message = args[0] if args else ""
        self.code = code
        self.name = status_name(code)
        self.message = "" if message is None else str(message)
        super().__init__(code, self.message)

    def __str__(self) -> str:
        return "%s: %s" % (self.name, self.message) if self.message else self.name

    def __repr__(self) -> str:
        return "%s(%d, %r)" % (type(self).__name__, self.code, self.message)

    def __reduce__(self):  # type: ignore[override]
        return (RpcError, (self.code, self.message))


def _sub(name: str, code: int) -> Type[RpcError]:
    cls = type(name, (RpcError,), {"code": code, "__doc__": "Status %s (%d)." % (STATUS_NAMES[code], code)})
    _BY_CODE[code] = cls
    return cls


Cancelled = _sub("Cancelled", CANCELLED)
Unknown = _sub("Unknown", UNKNOWN)
InvalidArgument = _sub("InvalidArgument", INVALID_ARGUMENT)
DeadlineExceeded = _sub("DeadlineExceeded", DEADLINE_EXCEEDED)
NotFound = _sub("NotFound", NOT_FOUND)
AlreadyExists = _sub("AlreadyExists", ALREADY_EXISTS)
PermissionDenied = _sub("PermissionDenied", PERMISSION_DENIED)
ResourceExhausted = _sub("ResourceExhausted", RESOURCE_EXHAUSTED)
FailedPrecondition = _sub("FailedPrecondition", FAILED_PRECONDITION)
Aborted = _sub("Aborted", ABORTED)
OutOfRange = _sub("OutOfRange", OUT_OF_RANGE)
Unimplemented = _sub("Unimplemented", UNIMPLEMENTED)
Internal = _sub("Internal", INTERNAL)
Unavailable = _sub("Unavailable", UNAVAILABLE)
DataLoss = _sub("DataLoss", DATA_LOSS)
Unauthenticated = _sub("Unauthenticated", UNAUTHENTICATED)


class ClosedError(FailedPrecondition, ValueError):
    """The handle (client, call, server, request) was already closed."""

    code = FAILED_PRECONDITION


def error_from(status: int, message: str) -> RpcError:
    return RpcError(status, message)
