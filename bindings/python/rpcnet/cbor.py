"""The rpcnet value mapping (docs/wire-format.md section 7), in pure Python.

``dumps(value) -> bytes`` writes core deterministic CBOR; ``loads(bytes) ->
value`` accepts exactly one well-formed item and raises
:class:`CBORDecodeError` (with ``.kind`` one of the spec's error names) on
anything else.

Mapping: None, bool, int (beyond 64 bits as bignum tags 2/3), float
(shortest exact width), str, bytes (bytearray/memoryview encode as bytes),
list/tuple (arrays), dict/any Mapping (maps), timezone-aware
``datetime.datetime`` (tag 0), :class:`EpochTime` (tag 1) and :class:`Tag`
for every other tag.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import struct
from collections.abc import Mapping
from typing import Any, Iterator, Union

__all__ = [
    "dumps",
    "loads",
    "encode",
    "decode",
    "Tag",
    "EpochTime",
    "FrozenDict",
    "CBORError",
    "CBORDecodeError",
    "CBOREncodeError",
    "MAX_DEPTH",
]

MAX_DEPTH = 64

_U64 = (1 << 64) - 1


class CBORError(ValueError):
    """Base of the codec's errors. ``kind`` is the spec's error name."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__("%s: %s" % (kind, message) if message else kind)
        self.kind = kind


class CBORDecodeError(CBORError):
    """decode failed: kind is malformed, truncated, trailing, depth, utf8,
    duplicate_key, unsupported or invalid_tag."""


class CBOREncodeError(CBORError):
    """encode failed: kind is utf8, depth or duplicate_key (unsupported
    types raise TypeError)."""


class Tag:
    """A CBOR tag the mapping gives no native type: (tag, value)."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: int, value: Any) -> None:
        if not isinstance(tag, int) or isinstance(tag, bool) or not 0 <= tag <= _U64:
            raise ValueError("tag number must be an int in [0, 2**64-1]")
        self.tag = tag
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tag):
            return NotImplemented
        return self.tag == other.tag and _same(self.value, other.value)

    def __hash__(self) -> int:
        return hash((Tag, self.tag, _hashable(self.value)))

    def __repr__(self) -> str:
        return "Tag(%d, %r)" % (self.tag, self.value)


class EpochTime:
    """A time written as tag 1: seconds since 1970-01-01T00:00Z (int or
    float). Encodes as an integer when the seconds are whole, else a float."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: Union[int, float, _dt.datetime]) -> None:
        if isinstance(seconds, _dt.datetime):
            if seconds.tzinfo is None:
                raise ValueError("naive datetime: give it a timezone")
            delta = seconds - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
            if delta.microseconds == 0:
                seconds = delta.days * 86400 + delta.seconds
            else:
                seconds = delta.total_seconds()
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError("EpochTime takes int or float seconds or a datetime")
        if isinstance(seconds, float) and not math.isfinite(seconds):
            raise ValueError("EpochTime must be finite")
        if isinstance(seconds, float) and seconds.is_integer() and -(1 << 64) <= seconds <= _U64:
            seconds = int(seconds)  # whole seconds are written as an integer
        if isinstance(seconds, int) and not -(1 << 64) <= seconds <= _U64:
            raise ValueError("EpochTime out of range")
        self.seconds = seconds

    def to_datetime(self) -> _dt.datetime:
        return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
            seconds=self.seconds
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EpochTime):
            return NotImplemented
        return type(self.seconds) is type(other.seconds) and self.seconds == other.seconds

    def __hash__(self) -> int:
        return hash((EpochTime, self.seconds))

    def __repr__(self) -> str:
        return "EpochTime(%r)" % (self.seconds,)


class FrozenDict(Mapping):
    """A read-only, hashable dict: how a map that is itself a map key decodes."""

    __slots__ = ("_d", "_h")

    def __init__(self, *args: Any, **kw: Any) -> None:
        self._d = dict(*args, **kw)
        self._h = None

    def __getitem__(self, k: Any) -> Any:
        return self._d[k]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(frozenset((k, _hashable(v)) for k, v in self._d.items()))
        return self._h

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._d == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return "FrozenDict(%r)" % (self._d,)


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return FrozenDict(v)
    return v


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def _head(major: int, n: int) -> bytes:
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return bytes((m | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((m | 26,)) + n.to_bytes(4, "big")
    return bytes((m | 27,)) + n.to_bytes(8, "big")


def _float(x: float) -> bytes:
    if math.isnan(x):
        return b"\xf9\x7e\x00"
    if math.isinf(x):
        return b"\xf9\x7c\x00" if x > 0 else b"\xf9\xfc\x00"
    try:
        h = struct.pack(">e", x)
        if struct.unpack(">e", h)[0] == x:
            return b"\xf9" + h
    except (OverflowError, struct.error):
        pass
    try:
        s = struct.pack(">f", x)
        if struct.unpack(">f", s)[0] == x:
            return b"\xfa" + s
    except (OverflowError, struct.error):
        pass
    return b"\xfb" + struct.pack(">d", x)


def _frac(us: int) -> str:
    return ("." + ("%06d" % us).rstrip("0")) if us else ""


def _rfc3339(d: _dt.datetime) -> str:
    off = d.utcoffset()
    if off is None:
        raise ValueError("naive datetime cannot be encoded: give it a timezone")
    if d.year < 1 or d.year > 9999:
        raise ValueError("datetime out of range")
    base = "%04d-%02d-%02dT%02d:%02d:%02d%s" % (
        d.year, d.month, d.day, d.hour, d.minute, d.second, _frac(d.microsecond))
    if off == _dt.timedelta(0):
        return base + "Z"
    total = int(off.total_seconds())
    if off % _dt.timedelta(minutes=1):
        raise ValueError("UTC offsets must be whole minutes")
    sign = "+" if total > 0 else "-"
    total = abs(total)
    return base + "%s%02d:%02d" % (sign, total // 3600, (total // 60) % 60)


def _enc(v: Any, out: list, depth: int) -> None:
    if v is None:
        out.append(b"\xf6")
    elif v is True:
        out.append(b"\xf5")
    elif v is False:
        out.append(b"\xf4")
    elif isinstance(v, int):
        v = int(v)
        if 0 <= v <= _U64:
            out.append(_head(0, v))
        elif -(1 << 64) <= v < 0:
            out.append(_head(1, -1 - v))
        else:
            if depth >= MAX_DEPTH:
                raise CBOREncodeError("depth", "more than %d nested items" % MAX_DEPTH)
            if v > 0:
                tag, n = 2, v
            else:
                tag, n = 3, -1 - v
            mag = n.to_bytes((n.bit_length() + 7) // 8, "big")
            out.append(_head(6, tag) + _head(2, len(mag)) + mag)
    elif isinstance(v, float):
        out.append(_float(v))
    elif isinstance(v, str):
        try:
            b = v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise CBOREncodeError("utf8", str(e)) from None
        out.append(_head(3, len(b)))
        out.append(b)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        out.append(_head(2, len(b)))
        out.append(b)
    elif isinstance(v, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise CBOREncodeError("depth", "more than %d nested items" % MAX_DEPTH)
        out.append(_head(4, len(v)))
        for x in v:
            _enc(x, out, depth + 1)
    elif isinstance(v, Mapping):
        if depth >= MAX_DEPTH:
            raise CBOREncodeError("depth", "more than %d nested items" % MAX_DEPTH)
        items = []
        for k, x in v.items():
            kb: list = []
            _enc(k, kb, depth + 1)
            vb: list = []
            _enc(x, vb, depth + 1)
            items.append((b"".join(kb), b"".join(vb)))
        items.sort(key=lambda kv: kv[0])
        out.append(_head(5, len(items)))
        prev = None
        for kb2, vb2 in items:
            if kb2 == prev:
                raise CBOREncodeError("duplicate_key", "two keys encode as %s" % kb2.hex())
            prev = kb2
            out.append(kb2)
            out.append(vb2)
    elif isinstance(v, _dt.datetime):
        if depth >= MAX_DEPTH:
            raise CBOREncodeError("depth", "more than %d nested items" % MAX_DEPTH)
        b = _rfc3339(v).encode("ascii")
        out.append(b"\xc0" + _head(3, len(b)) + b)
    elif isinstance(v, EpochTime):
        if depth >= MAX_DEPTH:
            raise CBOREncodeError("depth", "more than %d nested items" % MAX_DEPTH)
        out.append(b"\xc1")
        _enc(v.seconds, out, depth + 1)
    elif isinstance(v, Tag):
        if depth >= MAX_DEPTH:
            raise CBOREncodeError("depth", "more than %d nested items" % MAX_DEPTH)
        out.append(_head(6, v.tag))
        _enc(v.value, out, depth + 1)
    else:
        raise TypeError("cannot encode %s as CBOR" % type(v).__name__)


def dumps(value: Any) -> bytes:
    """Encodes value as deterministic CBOR (docs/wire-format.md 7.2)."""
    out: list = []
    _enc(value, out, 0)
    return b"".join(out)


encode = dumps


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------

_BREAK = object()

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})\Z")


def _parse_time(s: str) -> Any:
    m = _RFC3339.match(s)
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    if frac is not None and len(frac) > 6:
        return None
    us = int((frac or "").ljust(6, "0")) if frac else 0
    if tz == "Z":
        tzinfo = _dt.timezone.utc
    else:
        sign = 1 if tz[0] == "+" else -1
        try:
            tzinfo = _dt.timezone(sign * _dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
        except ValueError:
            return None
    try:
        v = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), us, tzinfo=tzinfo)
    except ValueError:
        return None
    try:
        if _rfc3339(v) != s:
            return None
    except ValueError:
        return None
    return v


class _Decoder:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)

    def take(self, n: int) -> memoryview:
        if n > self.end - self.pos:
            raise CBORDecodeError("truncated", "input ends inside an item")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self) -> int:
        if self.pos >= self.end:
            raise CBORDecodeError("truncated", "input ends inside an item")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def arg(self, ai: int) -> int:
        if ai < 24:
            return ai
        if ai == 24:
            return self.byte()
        if ai == 25:
            return int.from_bytes(self.take(2), "big")
        if ai == 26:
            return int.from_bytes(self.take(4), "big")
        if ai == 27:
            return int.from_bytes(self.take(8), "big")
        raise CBORDecodeError("malformed", "reserved additional information %d" % ai)

    def string(self, major: int, ai: int) -> bytes:
        """A byte or text string's bytes (text checked for UTF-8 per chunk)."""
        if ai == 31:
            parts = []
            while True:
                ib = self.byte()
                if ib == 0xFF:
                    break
                if ib >> 5 != major or (ib & 31) == 31:
                    raise CBORDecodeError("malformed", "bad chunk in an indefinite string")
                chunk = bytes(self.take(self.arg(ib & 31)))
                if major == 3:
                    _utf8(chunk)
                parts.append(chunk)
            return b"".join(parts)
        b = bytes(self.take(self.arg(ai)))
        if major == 3:
            _utf8(b)
        return b

    def item(self, depth: int, key: bool = False) -> Any:
        """Returns (value, canonical-major) via value; depth = containers above."""
        ib = self.byte()
        major, ai = ib >> 5, ib & 31
        if major == 0:
            if ai == 31:
                raise CBORDecodeError("malformed", "indefinite-length integer")
            return self.arg(ai)
        if major == 1:
            if ai == 31:
                raise CBORDecodeError("malformed", "indefinite-length integer")
            return -1 - self.arg(ai)
        if major == 2:
            return self.string(2, ai)
        if major == 3:
            return self.string(3, ai).decode("utf-8")
        if major == 4:
            if depth >= MAX_DEPTH:
                raise CBORDecodeError("depth", "more than %d nested items" % MAX_DEPTH)
            out = []
            if ai == 31:
                while True:
                    v = self.item_or_break(depth + 1, key)
                    if v is _BREAK:
                        break
                    out.append(v)
            else:
                n = self.arg(ai)
                if n > self.end - self.pos:
                    raise CBORDecodeError("truncated", "array claims more items than the input holds")
                for _ in range(n):
                    out.append(self.item(depth + 1, key))
            return tuple(out) if key else out
        if major == 5:
            if depth >= MAX_DEPTH:
                raise CBORDecodeError("depth", "more than %d nested items" % MAX_DEPTH)
            d: dict = {}
            seen: set = set()
            if ai == 31:
                while True:
                    start = self.pos
                    k = self.item_or_break(depth + 1, True)
                    if k is _BREAK:
                        break
                    self.pair(d, seen, k, start, depth)
            else:
                n = self.arg(ai)
                if n > (self.end - self.pos) // 2:
                    raise CBORDecodeError("truncated", "map claims more pairs than the input holds")
                for _ in range(n):
                    start = self.pos
                    k = self.item(depth + 1, True)
                    self.pair(d, seen, k, start, depth)
            return FrozenDict(d) if key else d
        if major == 6:
            if ai == 31:
                raise CBORDecodeError("malformed", "indefinite-length tag")
            tag = self.arg(ai)
            if depth >= MAX_DEPTH:
                raise CBORDecodeError("depth", "more than %d nested items" % MAX_DEPTH)
            cstart = self.pos
            cmajor = self.buf[cstart] >> 5 if cstart < self.end else -1
            cib = self.buf[cstart] if cstart < self.end else -1
            content = self.item(depth + 1, key)
            return self.tagged(tag, content, cmajor, cib)
        # major 7
        if ai == 20:
            return False
        if ai == 21:
            return True
        if ai == 22:
            return None
        if ai == 25:
            return struct.unpack(">e", self.take(2))[0]
        if ai == 26:
            return struct.unpack(">f", self.take(4))[0]
        if ai == 27:
            return struct.unpack(">d", self.take(8))[0]
        if ai == 24:
            s = self.byte()
            if s < 32:
                raise CBORDecodeError("malformed", "two-byte simple value below 32")
            raise CBORDecodeError("unsupported", "simple value %d" % s)
        if ai == 31:
            raise CBORDecodeError("malformed", "break outside an indefinite container")
        if ai >= 28:
            raise CBORDecodeError("malformed", "reserved additional information %d" % ai)
        if ai == 23:
            raise CBORDecodeError("unsupported", "undefined")
        raise CBORDecodeError("unsupported", "simple value %d" % ai)

    def item_or_break(self, depth: int, key: bool) -> Any:
        if self.pos < self.end and self.buf[self.pos] == 0xFF:
            self.pos += 1
            return _BREAK
        return self.item(depth, key)

    def pair(self, d: dict, seen: set, k: Any, start: int, depth: int) -> None:
        try:
            canon = dumps(k)
        except (CBORError, TypeError, ValueError):  # pragma: no cover - decoded keys re-encode
            canon = bytes(self.buf[start:self.pos])
        if canon in seen:
            raise CBORDecodeError("duplicate_key", "key %s appears twice" % canon.hex())
        seen.add(canon)
        v = self.item(depth + 1)
        try:
            dup = k in d
        except TypeError:  # pragma: no cover
            raise CBORDecodeError("duplicate_key", "unhashable key") from None
        if dup:
            raise CBORDecodeError(
                "duplicate_key", "keys equal in Python (%r) in one map" % (k,))
        d[k] = v

    def tagged(self, tag: int, content: Any, cmajor: int, cib: int) -> Any:
        if tag == 0:
            if cmajor != 3:
                raise CBORDecodeError("invalid_tag", "tag 0 needs a text string")
            t = _parse_time(content)
            return t if t is not None else Tag(0, content)
        if tag == 1:
            isfloat = cib in (0xF9, 0xFA, 0xFB)
            if not (cmajor in (0, 1) or isfloat):
                raise CBORDecodeError("invalid_tag", "tag 1 needs an integer or a float")
            if isfloat and not math.isfinite(content):
                raise CBORDecodeError("invalid_tag", "tag 1 needs a finite number")
            e = EpochTime(content)
            # Only when re-encoding gives the same bytes (a whole float does not).
            if isfloat and content.is_integer():
                return Tag(1, content)
            return e
        if tag in (2, 3):
            if cmajor != 2:
                raise CBORDecodeError("invalid_tag", "tag %d needs a byte string" % tag)
            if content and content[0] != 0:
                n = int.from_bytes(content, "big")
                v = n if tag == 2 else -1 - n
                if not -(1 << 64) <= v <= _U64:
                    return v
            return Tag(tag, content)
        return Tag(tag, content)


def _utf8(b: bytes) -> None:
    try:
        b.decode("utf-8")  # Python's codec is strict RFC 3629
    except UnicodeDecodeError as e:
        raise CBORDecodeError("utf8", str(e)) from None


def loads(data: Union[bytes, bytearray, memoryview]) -> Any:
    """Decodes exactly one CBOR item filling data (docs/wire-format.md 7.1)."""
    mv = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
    d = _Decoder(mv)
    v = d.item(0)
    if d.pos != d.end:
        raise CBORDecodeError("trailing", "%d bytes after the item" % (d.end - d.pos))
    return v


decode = loads
