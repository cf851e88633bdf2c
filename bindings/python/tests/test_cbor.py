import datetime as dt
import json
import math

import pytest

import rpcnet
from rpcnet import cbor
from conftest import REPO

VECTORS = json.loads((REPO / "conformance" / "vectors" / "values.json").read_text())["vectors"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(v):
    data = bytes.fromhex(v["hex"])
    err = v.get("binding_errors", {}).get("python", v.get("error"))
    if err:
        with pytest.raises(cbor.CBORDecodeError) as e:
            cbor.loads(data)
        assert e.value.kind == err
        return
    x = cbor.loads(data)
    want = bytes.fromhex(v.get("canonical", v["hex"]))
    assert cbor.dumps(x) == want
    assert cbor.dumps(cbor.loads(want)) == want
    for i in range(len(data)):
        with pytest.raises(cbor.CBORDecodeError) as e:
            cbor.loads(data[:i])
        assert e.value.kind == "truncated"


def test_all_vectors_seen():
    assert len(VECTORS) > 200


@pytest.mark.parametrize("value,hexs", [
    (True, "f5"), (False, "f4"), (None, "f6"), (1, "01"), (1.0, "f93c00"),
    (2 ** 64, "c249010000000000000000"), (-(2 ** 64) - 1, "c349010000000000000000"),
    ((1, 2), "820102"), (bytearray(b"ab"), "426162"), (memoryview(b"ab"), "426162"),
    ({"b": 1, "aa": 2}, "a261620162616102"), (float("nan"), "f97e00"),
    (-0.0, "f98000"), (float("inf"), "f97c00"), ("\u00fc", "62c3bc"),
    (dt.datetime(2013, 3, 21, 20, 4, 0, tzinfo=dt.timezone.utc),
     "c074323031332d30332d32315432303a30343a30305a"),
    (rpcnet.EpochTime(1363896240), "c11a514b67b0"),
    (rpcnet.EpochTime(1363896240.5), "c1fb41d452d9ec200000"),
    (rpcnet.Tag(32, "x"), "d8206178"),
])
def test_encode(value, hexs):
    assert cbor.dumps(value).hex() == hexs
    back = cbor.loads(bytes.fromhex(hexs))
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(back)
    elif isinstance(value, tuple):
        assert back == list(value)
    elif isinstance(value, (bytearray, memoryview)):
        assert back == bytes(value)
    else:
        assert back == value and type(back) is type(value)


def test_decode_types():
    assert cbor.loads(bytes.fromhex("c24101")) == rpcnet.Tag(2, b"\x01")
    assert type(cbor.loads(bytes.fromhex("c074323031332d30332d32315432303a30343a30305a"))) is dt.datetime
    k = cbor.loads(bytes.fromhex("a1810100"))
    assert k == {(1,): 0}
    m = cbor.loads(cbor.dumps({rpcnet.FrozenDict({"a": 1}): 2}))
    assert list(m) == [rpcnet.FrozenDict({"a": 1})]
    off = dt.datetime(2020, 1, 2, 3, 4, 5, 120000, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30)))
    assert cbor.dumps(off)[3:] == b"2020-01-02T03:04:05.12-05:30"
    assert cbor.loads(cbor.dumps(off)) == off


def test_encode_errors():
    with pytest.raises(TypeError):
        cbor.dumps(object())
    with pytest.raises(TypeError):
        cbor.dumps({1, 2})
    with pytest.raises(ValueError):
        cbor.dumps(dt.datetime(2020, 1, 1))  # naive
    with pytest.raises(cbor.CBOREncodeError) as e:
        cbor.dumps("\ud800")
    assert e.value.kind == "utf8"
    deep = 0
    for _ in range(65):
        deep = [deep]
    with pytest.raises(cbor.CBOREncodeError) as e:
        cbor.dumps(deep)
    assert e.value.kind == "depth"
    ok = 0
    for _ in range(64):
        ok = [ok]
    assert cbor.loads(cbor.dumps(ok)) == ok
    with pytest.raises(cbor.CBOREncodeError) as e:
        cbor.dumps({float("nan"): 1, float("nan"): 2})  # two NaN objects, one encoding
    assert e.value.kind == "duplicate_key"


def test_roundtrip_mixed():
    x = {"a": [1, -1, 2 ** 63, -(2 ** 63) - 1, 1.5, None, True, b"\x00\xff", "t\x00"],
         b"k": {"n": {}}, 3: [], -4: "x", (1, 2): rpcnet.Tag(99, [1])}
    assert cbor.loads(cbor.dumps(x)) == {**x, (1, 2): rpcnet.Tag(99, [1])}
    assert cbor.dumps(cbor.loads(cbor.dumps(x))) == cbor.dumps(x)
