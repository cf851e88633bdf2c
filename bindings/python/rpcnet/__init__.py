"""rpcnet: RPC over QUIC + TLS 1.3 with a CBOR wire format (Python binding).

    client = rpcnet.connect("127.0.0.1:7000", ca_file="ca.pem", server_name="localhost")
    client.call("add", {"a": 1, "b": 2})          # -> {"sum": 3}

    server = rpcnet.Server(cert_file="server.pem", key_file="server-key.pem")
    @server.method("add")
    def add(req, ctx):
        return {"sum": req["a"] + req["b"]}
    port = server.listen("127.0.0.1:0")
    server.serve(workers=4)

    cl = rpcnet.Cluster(node_name="w1", gossip_bind="127.0.0.1:0", cluster_keys=key,
                        ca_file="ca.pem", server_name="localhost", server=server)
    cl.join("127.0.0.1:7946")
    cl.call("add", {"a": 1, "b": 2}, filter="role=worker", idempotent=True)
"""

from . import _rpcnet_c as _c
from . import cbor
from ._client import Call, CallInfo, Client, MetadataMap, Trailers, connect
from ._cluster import Cluster, Event, Member
from ._errors import (
    ABORTED,
    ALREADY_EXISTS,
    CANCELLED,
    DATA_LOSS,
    DEADLINE_EXCEEDED,
    FAILED_PRECONDITION,
    INTERNAL,
    INVALID_ARGUMENT,
    NOT_FOUND,
    OK,
    OUT_OF_RANGE,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    STATUS_NAMES,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNIMPLEMENTED,
    UNKNOWN,
    Aborted,
    AlreadyExists,
    Cancelled,
    ClosedError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    RpcError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    status_name,
)
from ._server import Context, RequestMetadata, Server
from .cbor import CBORDecodeError, EpochTime, FrozenDict, Tag

__version__ = "0.1.0"


def library_version() -> str:
    """The C library's version ("MAJOR.MINOR.PATCH")."""
    return str(_c.rpcnet_version())


__all__ = [
    "connect", "Client", "Call", "CallInfo", "Trailers", "MetadataMap", "Server", "Context", "RequestMetadata",
    "Cluster", "Member", "Event",
    "cbor", "Tag", "EpochTime", "FrozenDict", "CBORDecodeError",
    "RpcError", "ClosedError", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded",
    "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
    "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal",
    "Unavailable", "DataLoss", "Unauthenticated", "status_name", "STATUS_NAMES",
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED", "library_version",
]
