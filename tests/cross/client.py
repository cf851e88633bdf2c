"""Cross-language smoke client (Python). Usage: client.py CA ADDR"""
import sys

import rpcnet
from rpcnet import cbor

VALUE = {"text": "h\u00e9llo \u263a", "n": -5, "big": 2**40, "f": 1.5,
         "list": [1, "two", True], "raw": b"\x00\x01\xff"}

with rpcnet.connect(sys.argv[2], ca_file=sys.argv[1], server_name="localhost") as c:
    sent = cbor.dumps(VALUE)
    got = c.call_raw("echo", sent, timeout=5.0)
    if got != sent:
        sys.exit(f"echo bytes differ: sent {sent.hex()} got {got.hex()}")
    if cbor.loads(got) != VALUE:
        sys.exit(f"echo value differs: {cbor.loads(got)!r}")
    s = c.call("add", {"a": 3, "b": 4}, timeout=5.0)
    if s != {"sum": 7}:
        sys.exit(f"add gave {s!r}")
print("ok")
