"""The lars client for Python: ``get_host``, ``report``, ``get_route`` and leases, against the
local lars-agent.

Two backends with one behaviour (timeouts, retries, exact reply matching, thread safety):

- ``"native"``: liblarsclient (the Rust client, ``bins/lars-c``) through ctypes. Used when the
  library is found: ``$LARS_LIBRARY``, next to this package, or on the system's library path.
  Its leases balance with the agent's own policies (Lars's overload detection and probing).
- ``"pure"``: the native UDP protocol written in Python (``docs/PROTOCOL.md``). Needs nothing
  but Python; its leases balance by smooth weighted round robin and set aside a host that
  fails 15 times in a row for 15 s, as the Lars policy's simplest rule does.

``Client()`` picks ``"native"`` if it can and ``"pure"`` otherwise; ``Client(backend=...)``
forces one. Example::

    import lars, time
    client = lars.Client()                       # agent on 127.0.0.1:8888-8890
    host = client.get_host(1001, 1)              # raises lars.NoRoute, lars.Timeout, ...
    start = time.monotonic()
    ok = call_my_service(host.ip, host.port)
    client.report(1001, 1, host, lars.Outcome.OK if ok else lars.Outcome.FAIL,
                  time.monotonic() - start)
    with client.lease(1001, 1) as lease:         # picks in process, for hot loops
        host = lease.get_host()
        lease.report(host, lars.Outcome.OK, 0.002)
"""

from __future__ import annotations

import enum
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from ._backend import ClientBackend, LeaseBackend

from ._errors import (
    AgentError,
    InternalError,
    InvalidArgument,
    IoError,
    LarsError,
    Malformed,
    NoRoute,
    Overloaded,
    Timeout,
)

__all__ = [
    "Client",
    "Lease",
    "Host",
    "Route",
    "Outcome",
    "LarsError",
    "Overloaded",
    "AgentError",
    "NoRoute",
    "Timeout",
    "Malformed",
    "IoError",
    "InvalidArgument",
    "InternalError",
    "native_library",
]

__version__ = "0.1.0"

_INT32 = (-(2**31), 2**31 - 1)


class Outcome(enum.IntEnum):
    """How a call to a host went."""

    OK = 0
    FAIL = 1
    OVERLOAD = 2


class Host(NamedTuple):
    """A host: its IP in text, its port, and its weight in the route (0 from ``get_host``)."""

    ip: str
    port: int
    weight: int = 0

    @property
    def address(self) -> str:
        """``"10.0.0.1:80"`` or ``"[2001:db8::1]:80"``."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


class Route(NamedTuple):
    """Every host of a route, and the store's version of them."""

    version: int
    hosts: List[Host]


HostLike = Union[Host, Tuple[str, int]]


def _int32(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an int, not {type(value).__name__}")
    if not _INT32[0] <= value <= _INT32[1]:
        raise InvalidArgument(f"{name} {value} is outside the int32 range")
    return value


def _key(key: object) -> Optional[int]:
    if key is None:
        return None
    if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < 2**64:
        raise InvalidArgument(f"key must be None or an int in 0..2**64-1, not {key!r}")
    return key


def _host(host: object) -> Tuple[str, int]:
    if isinstance(host, tuple) and len(host) >= 2 and isinstance(host[0], str) and isinstance(host[1], int):
        if 0 <= host[1] <= 65535:
            return host[0], host[1]
        raise InvalidArgument(f"port {host[1]} is outside 0..65535")
    raise InvalidArgument(f"host must be a lars.Host or an (ip, port) tuple, not {host!r}")


def _outcome(outcome: object) -> int:
    if isinstance(outcome, int) and not isinstance(outcome, bool) and 0 <= outcome <= 2:
        return int(outcome)
    raise InvalidArgument(f"outcome must be a lars.Outcome, not {outcome!r}")


def _latency_us(latency: object) -> int:
    if isinstance(latency, (int, float)) and not isinstance(latency, bool) and latency >= 0:
        return min(int(latency * 1_000_000), 2**32 - 1)
    raise InvalidArgument(f"latency must be a number of seconds >= 0, not {latency!r}")


def native_library() -> Optional[str]:
    """The path of the liblarsclient the ``"native"`` backend would load, or None."""
    from . import _native

    return _native.find_library()


class Lease:
    """A route leased in process: ``get_host`` is a local pick and reports go to the agent as
    summaries about every 100 ms. Safe to share between threads, but one per thread is faster.
    Use it as a context manager, or call :meth:`close`, to send the last counts."""

    def __init__(self, inner: LeaseBackend) -> None:
        self._inner = inner

    def get_host(self, key: Optional[int] = None) -> Host:
        """A host for the next call; ``key`` pins a caller to a host under consistent hashing.
        Raises :class:`Overloaded` or :class:`NoRoute`."""
        ip, port = self._inner.get_host(_key(key))
        return Host(ip, port)

    def report(self, host: HostLike, outcome: Outcome, latency: float) -> None:
        """How a call to ``host`` went; ``latency`` in seconds."""
        ip, port = _host(host)
        self._inner.report(ip, port, _outcome(outcome), _latency_us(latency))

    def flush(self) -> None:
        """Sends the call counts to the agent now."""
        self._inner.flush()

    @property
    def version(self) -> int:
        """The store's version of the hosts in use."""
        return self._inner.version()

    def close(self) -> None:
        """Sends the last counts and releases the lease; later calls raise InvalidArgument."""
        self._inner.close()

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A client of the local agent. Thread-safe: share one between threads.

    :param agents: the agent's API endpoints, ``"ip:port,ip:port,..."`` or a sequence of them
        (default ``127.0.0.1:8888-8890``); a route's requests go to ``(modid + cmdid) mod n``.
    :param timeout: seconds one attempt waits for its answer.
    :param retries: attempts after the first.
    :param backend: ``"auto"`` (native if liblarsclient is found), ``"native"`` or ``"pure"``.
    """

    def __init__(
        self,
        agents: Union[str, Sequence[str], None] = None,
        timeout: float = 0.2,
        retries: int = 2,
        backend: str = "auto",
    ) -> None:
        if agents is not None and not isinstance(agents, str):
            agents = ",".join(agents)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 4_000_000:
            raise InvalidArgument(f"timeout must be seconds > 0, not {timeout!r}")
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries < 2**32:
            raise InvalidArgument(f"retries must be an int >= 0, not {retries!r}")
        if backend not in ("auto", "native", "pure"):
            raise InvalidArgument(f"backend must be 'auto', 'native' or 'pure', not {backend!r}")
        if backend == "auto":
            backend = "native" if native_library() else "pure"
        if backend == "native":
            from . import _native

            self._inner: ClientBackend = _native.NativeClient(agents, timeout, retries)
        else:
            from . import _pure

            self._inner = _pure.PureClient(agents, timeout, retries)
        self.backend: str = backend
        """Which backend this client uses: ``"native"`` or ``"pure"``."""

    def get_host(self, modid: int, cmdid: int, key: Optional[int] = None) -> Host:
        """A host for the next call to ``(modid, cmdid)``; ``key`` pins a caller to a host on
        consistent-hash routes. Raises :class:`NoRoute`, :class:`Overloaded`,
        :class:`Timeout`, ..."""
        ip, port = self._inner.get_host(_int32("modid", modid), _int32("cmdid", cmdid), _key(key))
        return Host(ip, port)

    def report(self, modid: int, cmdid: int, host: HostLike, outcome: Outcome, latency: float) -> None:
        """How a call to ``host`` went; ``latency`` in seconds. Fire and forget."""
        ip, port = _host(host)
        self._inner.report(
            _int32("modid", modid), _int32("cmdid", cmdid), ip, port, _outcome(outcome), _latency_us(latency)
        )

    def get_route(self, modid: int, cmdid: int) -> Route:
        """Every host of ``(modid, cmdid)``."""
        version, hosts = self._inner.get_route(_int32("modid", modid), _int32("cmdid", cmdid))
        return Route(version, [Host(ip, port, weight) for ip, port, weight in hosts])

    def reg_init(self, modid: int, cmdid: int, attempts: int = 3) -> Route:
        """Makes the agent fetch a route before the first ``get_host`` (the original's
        ``reg_init``): asks up to ``attempts`` times, 50 ms apart, until it has hosts."""
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 0 <= attempts < 2**32:
            raise InvalidArgument(f"attempts must be an int >= 0, not {attempts!r}")
        modid, cmdid = _int32("modid", modid), _int32("cmdid", cmdid)
        self._inner.reg_init(modid, cmdid, attempts)
        return self.get_route(modid, cmdid)

    def close(self) -> None:
        """Releases the client's sockets (or its library handle) now rather than at garbage
        collection; call it once no other thread is using the client. Leases taken from it stay
        usable; later calls on it raise InvalidArgument."""
        self._inner.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lease(self, modid: int, cmdid: int) -> Lease:
        """Leases ``(modid, cmdid)`` for picks in process (see :class:`Lease`)."""
        return Lease(self._inner.lease(_int32("modid", modid), _int32("cmdid", cmdid)))
