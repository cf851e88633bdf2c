#!/usr/bin/env python3
"""Regenerates the seed corpora under tests/fuzz/corpus/<target>/ from
conformance/vectors/*.json. Run from anywhere: python3 tests/fuzz/gen_corpus.py
Seeds are named after their vector, so a rerun rewrites the same files."""
import json, os, re, shutil

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
vec = os.path.join(root, "conformance", "vectors")
out = os.path.join(here, "corpus")

def fresh(target):
    d = os.path.join(out, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d

def put(d, name, data):
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

values = json.load(open(os.path.join(vec, "values.json")))["vectors"]
frames = json.load(open(os.path.join(vec, "frames.json")))["vectors"]

d = fresh("fuzz_value")
for v in values:
    put(d, v["name"], bytes.fromhex(v["hex"]))

d = fresh("fuzz_diag")
for v in values:
    if "diag" in v:
        put(d, v["name"], v["diag"].encode())

d = fresh("fuzz_json")
samples = ['{"a": [1, 2.5, -3, true, false, null]}', '"\\u00fc\\ud83d\\ude00"', "[]", "{}",
           "18446744073709551615", "-18446744073709551616", "1e300", "-0.0", "0.1",
           '{"nested": {"x": [[], [{}]]}}', '["a\\"b\\\\c\\n", "\\/"]']
for i, s in enumerate(samples):
    put(d, "sample_%02d" % i, s.encode())

for direction in ("request", "response"):
    d = fresh("fuzz_frame_" + direction)
    for v in frames:
        if v["direction"] == direction:
            put(d, v["name"], bytes.fromhex(v["hex"]))
print("corpora written under", out)

# Cluster gossip datagrams and push-pull bodies (docs/cluster.md, "Messages"),
# written with a minimal deterministic CBOR encoder.
def cb_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")

def cb(v):
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return cb_head(0, v)
    if isinstance(v, str):
        b = v.encode()
        return cb_head(3, len(b)) + b
    if isinstance(v, list):
        return cb_head(4, len(v)) + b"".join(cb(x) for x in v)
    if isinstance(v, dict):
        items = sorted((cb(k), cb(x)) for k, x in v.items())
        return cb_head(5, len(items)) + b"".join(k + x for k, x in items)
    raise TypeError(v)

def alive(name, inc, addr="g1", rpc="r1", tags=None):
    return [5, name, inc, addr, rpc, tags or {}, [1, 1]]

def record(name, inc, state, age=0):
    return [name, inc, state, "g1", "r1", {}, [1, 1], age]

d = fresh("fuzz_cluster_packet")
packets = {
    "ping": [1, [1, 7, "self", "m1"]],
    "join_ping": [1, [1, 8, "", "new"], alive("new", 1, "g7", "r7")],
    "indirect": [1, [2, 9, "m2", "g2", "m1", True]],
    "ack_nack": [1, [3, 1], [4, 1], [3, 99]],
    "alive_tags": [1, alive("m1", 9, tags={"zone": "eu", "role": "db", "a": ""})],
    "suspect_self": [1, [6, "self", 5, "m1"]],
    "dead_self_old": [1, [7, "self", 2, "m1"]],
    "suspect_dead_left": [1, [6, "m1", 3, "m5"], [7, "m5", 3, "m1"], [7, "m1", 4, "m1"]],
    "revive": [1, alive("m3", 4), alive("m4", 5), alive("m2", 3)],
    "unknown_type": [1, [99, {"x": [1, 2]}], [3, 1, "extra"]],
    "version2": [2, [3, 1]],
}
for name, v in packets.items():
    put(d, name, cb(v))

d = fresh("fuzz_cluster_sync")
bodies = {
    "serve_hello": (0, [1, [16, 12345, 4, alive("peer", 3, "g8", "r8")]]),
    "serve_push": (0, [1, [19, [record("m1", 5, 0), record("x", 2, 2, 500), record("y", 1, 3)],
                           ["m2", "self", "nobody"]]]),
    "step_insync": (1, [1, [17]]),
    "step_digest": (1, [1, [18, [["m1", 2, 0], ["m3", 1, 0], ["self", 10, 2], ["z", 1, 0]]]]),
    "step_records": (1, [1, [20, [record("m3", 3, 0), record("self", 9, 2), record("q", 1, 0)]]]),
}
for name, (side, v) in bodies.items():
    put(d, name, bytes([side]) + cb(v))
print("cluster corpora written")
