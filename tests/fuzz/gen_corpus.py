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
