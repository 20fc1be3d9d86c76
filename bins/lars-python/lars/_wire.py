"""The native lars wire protocol (docs/PROTOCOL.md §1, §4) in pure Python: frames and the
postcard bodies the API link uses. Decoding is strict, as in ``lars_core::wire``: a short body,
trailing bytes or an unknown tag raise :class:`WireError`.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import List, NamedTuple, Optional, Tuple

GET_HOST_REQUEST = 0x110
GET_HOST_RESPONSE = 0x111
REPORT = 0x112
GET_ROUTE_REQUEST = 0x120
ROUTE_RESPONSE = 0x121
CALL_STATS = 0x130

HEADER = struct.Struct("<II")
MAX_BODY = 65527

# RetCode variant indices, as in Lars.
SUCC, OVERLOAD, SYSTEM_ERROR, NO_EXIST = 0, 1, 2, 3


class WireError(ValueError):
    """A datagram that does not decode."""


Addr = Tuple[str, int]


class WeightedHost(NamedTuple):
    ip: str
    port: int
    weight: int


class GetHostResponse(NamedTuple):
    seq: int
    modid: int
    cmdid: int
    code: int
    host: Optional[Addr]


class RouteResponse(NamedTuple):
    seq: int
    modid: int
    cmdid: int
    code: int
    version: int
    hosts: List[WeightedHost]


def _varint(value: int, out: bytearray) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _zigzag(value: int) -> int:
    return ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF


def _addr(ip: str, port: int, out: bytearray) -> None:
    address = ipaddress.ip_address(ip)
    out.append(0 if address.version == 4 else 1)
    out += address.packed
    _varint(port, out)


def frame(msgid: int, body: bytes) -> bytes:
    """A frame: the little-endian header (msgid, body length), then the body."""
    return HEADER.pack(msgid, len(body)) + body


def get_host_request(seq: int, modid: int, cmdid: int, key: Optional[int]) -> bytes:
    out = bytearray()
    _varint(seq, out)
    _varint(_zigzag(modid), out)
    _varint(_zigzag(cmdid), out)
    if key is None:
        out.append(0)
    else:
        out.append(1)
        _varint(key, out)
    return frame(GET_HOST_REQUEST, bytes(out))


def get_route_request(seq: int, modid: int, cmdid: int) -> bytes:
    out = bytearray()
    _varint(seq, out)
    _varint(_zigzag(modid), out)
    _varint(_zigzag(cmdid), out)
    return frame(GET_ROUTE_REQUEST, bytes(out))


def report(modid: int, cmdid: int, ip: str, port: int, outcome: int, latency_us: int) -> bytes:
    out = bytearray()
    _varint(_zigzag(modid), out)
    _varint(_zigzag(cmdid), out)
    _addr(ip, port, out)
    _varint(outcome, out)
    _varint(latency_us, out)
    return frame(REPORT, bytes(out))


class HostStats(NamedTuple):
    ip: str
    port: int
    succ: int
    err: int
    overload: int
    overloaded: bool
    latency_sum_us: int
    latency_max_us: int


def call_stats(modid: int, cmdid: int, entries: List[HostStats]) -> bytes:
    """A leasing client's summary (caller and ts 0, §4)."""
    out = bytearray([0, 0])
    _varint(len(entries), out)
    for e in entries:
        _varint(_zigzag(modid), out)
        _varint(_zigzag(cmdid), out)
        _addr(e.ip, e.port, out)
        for value in (e.succ, e.err, e.overload):
            _varint(value, out)
        out.append(1 if e.overloaded else 0)
        _varint(e.latency_sum_us, out)
        _varint(e.latency_max_us, out)
    return frame(CALL_STATS, bytes(out))


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.body):
            raise WireError("truncated")
        value = self.body[self.at]
        self.at += 1
        return value

    def varint(self, bits: int) -> int:
        value, shift = 0, 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise WireError("bad varint")
        if value >> bits:
            raise WireError("bad varint")
        return value

    def i32(self) -> int:
        z = self.varint(32)
        return (z >> 1) ^ -(z & 1)

    def tag(self, limit: int) -> int:
        value = self.varint(32)
        if value >= limit:
            raise WireError("bad value")
        return value

    def addr(self) -> Addr:
        family = self.tag(2)
        size = 4 if family == 0 else 16
        raw = self.body[self.at : self.at + size]
        if len(raw) != size:
            raise WireError("truncated")
        self.at += size
        return str(ipaddress.ip_address(raw)), self.varint(16)

    def end(self) -> None:
        if self.at != len(self.body):
            raise WireError("trailing bytes")


def parse_frame(datagram: bytes) -> Tuple[int, bytes]:
    """The msgid and body of one datagram."""
    if len(datagram) < HEADER.size:
        raise WireError("truncated")
    msgid, length = HEADER.unpack_from(datagram)
    if length > MAX_BODY:
        raise WireError("too long")
    if len(datagram) != HEADER.size + length:
        raise WireError("length mismatch")
    return msgid, datagram[HEADER.size :]


def parse_get_host_response(body: bytes) -> GetHostResponse:
    r = _Reader(body)
    seq, modid, cmdid, code = r.varint(32), r.i32(), r.i32(), r.tag(4)
    host = r.addr() if r.tag(2) else None
    r.end()
    return GetHostResponse(seq, modid, cmdid, code, host)


def parse_route_response(body: bytes) -> RouteResponse:
    r = _Reader(body)
    seq, modid, cmdid, code, version = r.varint(32), r.i32(), r.i32(), r.tag(4), r.varint(64)
    hosts = []
    for _ in range(r.varint(32)):
        ip, port = r.addr()
        hosts.append(WeightedHost(ip, port, r.varint(32)))
    r.end()
    return RouteResponse(seq, modid, cmdid, code, version, hosts)
