"""The ``"pure"`` backend: the native UDP protocol to the agent, in Python alone.

It behaves as the Rust client does (``lars-std/src/client``): each call borrows a socket from
a pool per agent port, so threads never read each other's replies; every wait has a timeout
and is retried; a reply is matched by its exact sequence number; a refused datagram (nothing
listening) waits out the timeout, as the agent may be starting. A lease holds the route,
picks by smooth weighted round robin, sets aside a host after 15 failures in a row for 15 s,
refreshes the route every second without blocking a call, and sends its counts to the agent
as ``CallStats`` every 100 ms.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

from . import _wire
from ._errors import AgentError, InvalidArgument, IoError, LarsError, Malformed, NoRoute, Overloaded, Timeout

REG_INIT_SPACING = 0.05
LEASE_TTL = 1.0
LEASE_FLUSH = 0.1
CONTIN_ERR_LIMIT = 15
SET_ASIDE = 15.0

T = TypeVar("T")


def _parse_agent(text: str) -> Tuple[str, int]:
    text = text.strip()
    host, sep, port = text.rpartition(":")
    try:
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError
        address = ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        if address.version == 6 and not host.startswith("["):
            raise ValueError
    except ValueError:
        raise InvalidArgument(f"agent address `{text}` is not IP:PORT") from None
    return str(address), int(port)


def _errors(code: int) -> Exception:
    """The error a ``get_host`` answer's ``code`` means, as the Rust client says it (a success
    here came without its host)."""
    if code == _wire.OVERLOAD:
        return Overloaded("every host of the route is overloaded")
    if code == _wire.NO_EXIST:
        return NoRoute("no such route (or the agent is still fetching it)")
    if code == _wire.SYSTEM_ERROR:
        return AgentError(
            "the agent refused the request: its route table is full of routes in use (`route_table_full` in "
            "`lars stats`); retry later, when a route idle for the agent's `route_idle_evict` gives way"
        )
    if code == _wire.SUCC:
        return Malformed("malformed answer from the agent: a success without a host")
    return _unexpected_code(code)


def _unexpected_code(code: int) -> Exception:
    """An answer carrying a code its message does not use: the agent broke the protocol."""
    return Malformed(f"malformed answer from the agent: return code {code}, which that answer does not carry")


class PureClient:
    def __init__(self, agents: Optional[str], timeout: float, retries: int) -> None:
        if agents is None:
            self._agents = [("127.0.0.1", port) for port in (8888, 8889, 8890)]
        else:
            self._agents = [_parse_agent(a) for a in agents.split(",")]
        self._timeout = timeout
        self._retries = retries
        self._pools: List[List[socket.socket]] = [[] for _ in self._agents]
        self._pool_lock = threading.Lock()
        self._closed = False
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            pools, self._pools = self._pools, [[] for _ in self._agents]
        for pool in pools:
            for sock in pool:
                sock.close()

    def __del__(self) -> None:
        if hasattr(self, "_pool_lock"):
            self.close()

    def _next_seq(self) -> int:
        with self._seq_lock:
            return next(self._seq) & 0xFFFFFFFF

    def _agent_index(self, modid: int, cmdid: int) -> int:
        return (modid + cmdid) % len(self._agents)

    def _new_socket(self, agent: Tuple[str, int], blocking: bool) -> socket.socket:
        family = socket.AF_INET6 if ":" in agent[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.connect(agent)
        if blocking:
            sock.settimeout(self._timeout)
        else:
            sock.setblocking(False)
        return sock

    def _with_socket(self, modid: int, cmdid: int, call: Callable[[socket.socket], T]) -> T:
        index = self._agent_index(modid, cmdid)
        with self._pool_lock:
            if self._closed:
                raise InvalidArgument("client is closed")
            pooled = self._pools[index].pop() if self._pools[index] else None
        try:
            sock = pooled or self._new_socket(self._agents[index], True)
        except OSError as e:
            raise IoError(f"socket error: {e}") from None
        try:
            return call(sock)
        except LarsError:
            raise
        except OSError as e:
            raise IoError(f"socket error: {e}") from None
        finally:
            # A late answer to a failed call is skipped by its seq, so the socket goes back
            # (unless the client was closed meanwhile).
            with self._pool_lock:
                if self._closed:
                    sock.close()
                else:
                    self._pools[index].append(sock)

    def _request(
        self, sock: socket.socket, request: bytes, reply_id: int, parse: Callable[[bytes], Optional[T]], room: int
    ) -> T:
        for _ in range(self._retries + 1):
            sock.send(request)
            while True:
                try:
                    datagram = sock.recv(room)
                except socket.timeout:
                    break
                except ConnectionRefusedError:
                    time.sleep(self._timeout)  # nothing listens yet: the agent may be starting
                    break
                try:
                    msgid, body = _wire.parse_frame(datagram)
                except _wire.WireError:
                    continue  # not a frame for us (a late answer too big for `room`, say)
                if msgid != reply_id:
                    continue
                try:
                    reply = parse(body)
                except _wire.WireError as e:
                    raise Malformed(f"malformed answer from the agent: {e}") from None
                if reply is not None:
                    return reply
        raise Timeout("no answer from the agent")

    def get_host(self, modid: int, cmdid: int, key: Optional[int]) -> Tuple[str, int]:
        seq = self._next_seq()
        request = _wire.get_host_request(seq, modid, cmdid, key)

        def ours(body: bytes) -> Optional[_wire.GetHostResponse]:
            reply = _wire.parse_get_host_response(body)
            return reply if reply.seq == seq else None

        reply = self._with_socket(modid, cmdid, lambda s: self._request(s, request, _wire.GET_HOST_RESPONSE, ours, 512))
        if reply.code == _wire.SUCC and reply.host is not None:
            return reply.host
        raise _errors(reply.code)

    def report(self, modid: int, cmdid: int, ip: str, port: int, outcome: int, latency_us: int) -> None:
        try:
            datagram = _wire.report(modid, cmdid, ip, port, outcome, latency_us)
        except ValueError:
            raise InvalidArgument(f"host ip `{ip}` is not an IP address") from None
        self._with_socket(modid, cmdid, lambda s: s.send(datagram))

    def get_route(self, modid: int, cmdid: int) -> Tuple[int, List[Tuple[str, int, int]]]:
        seq = self._next_seq()
        request = _wire.get_route_request(seq, modid, cmdid)

        def ours(body: bytes) -> Optional[_wire.RouteResponse]:
            reply = _wire.parse_route_response(body)
            return reply if reply.seq == seq else None

        reply = self._with_socket(modid, cmdid, lambda s: self._request(s, request, _wire.ROUTE_RESPONSE, ours, 65535))
        if reply.code == _wire.SUCC:
            return reply.version, [tuple(h) for h in reply.hosts]  # type: ignore[misc]
        # A route answer is a success or "no route": any other code breaks the protocol.
        raise _errors(reply.code) if reply.code == _wire.NO_EXIST else _unexpected_code(reply.code)

    def reg_init(self, modid: int, cmdid: int, attempts: int) -> Tuple[int, List[Tuple[str, int, int]]]:
        last: Exception = NoRoute("no such route (or the agent is still fetching it)")
        for attempt in range(max(attempts, 1)):
            if attempt:
                time.sleep(REG_INIT_SPACING)
            try:
                return self.get_route(modid, cmdid)
            except (NoRoute, Timeout) as e:
                last = e
        raise last

    def lease(self, modid: int, cmdid: int) -> "PureLease":
        patience = self._timeout * (self._retries + 1)
        version, hosts = self.reg_init(modid, cmdid, max(1, int(-(-patience // REG_INIT_SPACING))))
        try:
            sock = self._new_socket(self._agents[self._agent_index(modid, cmdid)], False)
        except OSError as e:
            raise IoError(f"socket error: {e}") from None
        return PureLease(self, sock, modid, cmdid, version, hosts)


class _LeasedHost:
    __slots__ = ("ip", "port", "weight", "current", "contin_err", "aside_until", "succ", "err", "overload", "lat_sum", "lat_max")

    def __init__(self, ip: str, port: int, weight: int) -> None:
        self.ip, self.port, self.weight = ip, port, max(weight, 1)
        self.current = 0
        self.contin_err = 0
        self.aside_until = 0.0
        self.succ = self.err = self.overload = self.lat_sum = self.lat_max = 0


class PureLease:
    def __init__(
        self, client: PureClient, sock: socket.socket, modid: int, cmdid: int, version: int, hosts: List[Tuple[str, int, int]]
    ) -> None:
        self._client = client
        self._sock: Optional[socket.socket] = sock
        self._modid, self._cmdid = modid, cmdid
        self._lock = threading.Lock()
        self._version = version
        self._hosts: List[_LeasedHost] = []
        self._by_addr: Dict[Tuple[str, int], _LeasedHost] = {}
        self._set_hosts(hosts)
        now = time.monotonic()
        self._refresh_at = now + LEASE_TTL
        self._flush_at = now + LEASE_FLUSH
        self._asked: Optional[Tuple[int, float]] = None  # (seq, when) of a refresh in flight
        self._gone_answers = 0
        self._next_drive = min(self._refresh_at, self._flush_at)

    def _set_hosts(self, hosts: List[Tuple[str, int, int]]) -> None:
        fresh = []
        for ip, port, weight in hosts:
            host = self._by_addr.get((ip, port)) or _LeasedHost(ip, port, weight)
            host.weight = max(weight, 1)
            fresh.append(host)
        self._hosts = fresh
        self._by_addr = {(h.ip, h.port): h for h in fresh}

    def _open(self) -> socket.socket:
        if self._sock is None:
            raise InvalidArgument("lease is closed")
        return self._sock

    def get_host(self, key: Optional[int]) -> Tuple[str, int]:
        with self._lock:
            sock = self._open()
            now = time.monotonic()
            if now >= self._next_drive:
                self._drive(sock, now)
            if not self._hosts:
                raise NoRoute("no such route (or the agent is still fetching it)")
            live = [h for h in self._hosts if h.aside_until <= now]
            if not live:
                raise Overloaded("every host of the route is overloaded")
            if key is not None:
                # Rendezvous hashing: the same key keeps its host while that host is live.
                best = max(live, key=lambda h: hash((key, h.ip, h.port)))
            else:
                total = 0
                best = live[0]
                for h in live:
                    h.current += h.weight
                    total += h.weight
                    if h.current > best.current:
                        best = h
                best.current -= total
            return best.ip, best.port

    def report(self, ip: str, port: int, outcome: int, latency_us: int) -> None:
        with self._lock:
            sock = self._open()
            now = time.monotonic()
            host = self._by_addr.get((ip, port))
            if host is not None:
                if outcome == 0:
                    host.succ += 1
                    host.contin_err = 0
                else:
                    host.err += 1
                    host.overload += outcome == 2
                    host.contin_err += 1
                    if host.contin_err >= CONTIN_ERR_LIMIT:
                        host.contin_err = 0
                        host.aside_until = now + SET_ASIDE
                host.lat_sum += latency_us
                host.lat_max = max(host.lat_max, latency_us)
            if now >= self._next_drive:
                self._drive(sock, now)

    def _send_counts(self, sock: socket.socket, now: float) -> None:
        entries = [
            _wire.HostStats(h.ip, h.port, h.succ, h.err, h.overload, h.aside_until > now, h.lat_sum, h.lat_max)
            for h in self._hosts
            if h.succ or h.err
        ]
        self._flush_at = now + LEASE_FLUSH
        if entries:
            sock.send(_wire.call_stats(self._modid, self._cmdid, entries))
            for h in self._hosts:
                h.succ = h.err = h.overload = h.lat_sum = h.lat_max = 0

    def _drive(self, sock: socket.socket, now: float) -> None:
        """Takes the agent's answers and sends what is due; a lost datagram is like one lost
        on the way (a refresh is asked again, counts are best effort)."""
        while self._asked is not None:
            try:
                msgid, body = _wire.parse_frame(sock.recv(65535))
                reply = _wire.parse_route_response(body) if msgid == _wire.ROUTE_RESPONSE else None
            except (BlockingIOError, ConnectionRefusedError):
                break
            except (OSError, _wire.WireError):
                continue
            if reply is None or reply.seq != self._asked[0]:
                continue
            self._asked = None
            if reply.code == _wire.SUCC:
                self._gone_answers = 0
                self._version = reply.version
                self._set_hosts([tuple(h) for h in reply.hosts])  # type: ignore[misc]
            elif reply.code == _wire.NO_EXIST:
                # Believed on the second answer in a row, a ttl apart (an agent that just
                # restarted says NoExist until it has the route again).
                self._gone_answers += 1
                if self._gone_answers >= 2:
                    self._set_hosts([])
        try:
            if self._asked is None and now >= self._refresh_at or self._asked is not None and now - self._asked[1] >= self._client._timeout:
                seq = self._client._next_seq()
                self._asked = (seq, now)
                self._refresh_at = now + LEASE_TTL
                sock.send(_wire.get_route_request(seq, self._modid, self._cmdid))
            if now >= self._flush_at:
                self._send_counts(sock, now)
        except OSError:
            pass
        self._next_drive = min(self._refresh_at, self._flush_at)
        if self._asked is not None:
            self._next_drive = min(self._next_drive, now + 0.001)

    def flush(self) -> None:
        with self._lock:
            try:
                self._send_counts(self._open(), time.monotonic())
            except OSError as e:
                raise IoError(f"socket error: {e}") from None

    def version(self) -> int:
        with self._lock:
            self._open()
            return self._version

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                self._send_counts(sock, time.monotonic())
            except OSError:
                pass
            sock.close()

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            self.close()
