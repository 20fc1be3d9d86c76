"""The ``"native"`` backend: liblarsclient (``bins/lars-c/include/lars.h``) through ctypes.

ctypes releases the GIL around each call, so threads blocked on the agent do not hold up the
others. Arguments are checked by the public layer (``lars/__init__.py``) before they get here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from ._errors import BY_STATUS, InvalidArgument, LarsError

_IP_LEN = 46


class _Host(ctypes.Structure):
    _fields_ = [("ip", ctypes.c_char * _IP_LEN), ("port", ctypes.c_uint16), ("weight", ctypes.c_uint32)]


def find_library() -> Optional[str]:
    """``$LARS_LIBRARY``, else liblarsclient.so next to this package, else the system's."""
    explicit = os.environ.get("LARS_LIBRARY")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    here = os.path.join(os.path.dirname(__file__), "liblarsclient.so")
    if os.path.exists(here):
        return here
    return ctypes.util.find_library("larsclient")


_lib: Optional[ctypes.CDLL] = None
_lib_lock = threading.Lock()


def _load() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            path = find_library()
            if path is None:
                raise InvalidArgument("liblarsclient not found: set LARS_LIBRARY or use backend='pure'")
            lib = ctypes.CDLL(path)
            c_int, c_i32, c_u32, c_u64, vp = ctypes.c_int, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
            host_p = ctypes.POINTER(_Host)
            signatures = {
                "lars_last_error": (ctypes.c_char_p, []),
                "lars_client_new": (c_int, [ctypes.c_char_p, c_u32, c_u32, ctypes.POINTER(vp)]),
                "lars_client_free": (None, [vp]),
                "lars_get_host": (c_int, [vp, c_i32, c_i32, host_p]),
                "lars_get_host_keyed": (c_int, [vp, c_i32, c_i32, c_u64, host_p]),
                "lars_report": (c_int, [vp, c_i32, c_i32, host_p, c_int, c_u32]),
                "lars_get_route": (
                    c_int,
                    [vp, c_i32, c_i32, host_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(c_u64)],
                ),
                "lars_reg_init": (c_int, [vp, c_i32, c_i32, c_u32]),
                "lars_lease_new": (c_int, [vp, c_i32, c_i32, ctypes.POINTER(vp)]),
                "lars_lease_free": (None, [vp]),
                "lars_lease_get_host": (c_int, [vp, host_p]),
                "lars_lease_get_host_keyed": (c_int, [vp, c_u64, host_p]),
                "lars_lease_report": (c_int, [vp, host_p, c_int, c_u32]),
                "lars_lease_flush": (c_int, [vp]),
                "lars_lease_version": (c_int, [vp, ctypes.POINTER(c_u64)]),
            }
            for name, (restype, argtypes) in signatures.items():
                function = getattr(lib, name)
                function.restype = restype
                function.argtypes = argtypes
            _lib = lib
        return _lib


def _raise(lib: ctypes.CDLL, status: int) -> None:
    # The message is per thread in the library, and this thread made the failed call.
    message = (lib.lars_last_error() or b"").decode("utf-8", "replace")
    raise BY_STATUS.get(status, LarsError)(message)


def _c_host(ip: str, port: int) -> _Host:
    encoded = ip.encode("utf-8")
    if len(encoded) >= _IP_LEN:
        raise InvalidArgument(f"host ip `{ip}` is not an IP address")
    return _Host(encoded, port, 0)


class NativeClient:
    def __init__(self, agents: Optional[str], timeout: float, retries: int) -> None:
        self._lib = _load()
        handle = ctypes.c_void_p()
        timeout_ms = max(1, round(timeout * 1000))
        status = self._lib.lars_client_new(None if agents is None else agents.encode(), timeout_ms, retries, ctypes.byref(handle))
        if status:
            _raise(self._lib, status)
        self._handle = handle

    def close(self) -> None:
        # Calls already running hold their own reference to the handle's value; a client is
        # closed once no thread uses it, as with any resource.
        handle, self._handle = self._handle, ctypes.c_void_p()
        if handle:
            self._lib.lars_client_free(handle)

    def __del__(self) -> None:
        if getattr(self, "_lib", None) is not None and getattr(self, "_handle", None):
            self.close()

    def get_host(self, modid: int, cmdid: int, key: Optional[int]) -> Tuple[str, int]:
        host = _Host()
        if key is None:
            status = self._lib.lars_get_host(self._handle, modid, cmdid, ctypes.byref(host))
        else:
            status = self._lib.lars_get_host_keyed(self._handle, modid, cmdid, key, ctypes.byref(host))
        if status:
            _raise(self._lib, status)
        return host.ip.decode(), host.port

    def report(self, modid: int, cmdid: int, ip: str, port: int, outcome: int, latency_us: int) -> None:
        host = _c_host(ip, port)
        status = self._lib.lars_report(self._handle, modid, cmdid, ctypes.byref(host), outcome, latency_us)
        if status:
            _raise(self._lib, status)

    def get_route(self, modid: int, cmdid: int) -> Tuple[int, List[Tuple[str, int, int]]]:
        capacity = 16
        while True:
            hosts = (_Host * capacity)()
            count, version = ctypes.c_size_t(), ctypes.c_uint64()
            status = self._lib.lars_get_route(self._handle, modid, cmdid, hosts, capacity, ctypes.byref(count), ctypes.byref(version))
            if status == 7 and count.value > capacity:
                capacity = count.value  # the route has more hosts than room: ask again
                continue
            if status:
                _raise(self._lib, status)
            return version.value, [(h.ip.decode(), h.port, h.weight) for h in hosts[: count.value]]

    def reg_init(self, modid: int, cmdid: int, attempts: int) -> None:
        status = self._lib.lars_reg_init(self._handle, modid, cmdid, attempts)
        if status:
            _raise(self._lib, status)

    def lease(self, modid: int, cmdid: int) -> "NativeLease":
        handle = ctypes.c_void_p()
        status = self._lib.lars_lease_new(self._handle, modid, cmdid, ctypes.byref(handle))
        if status:
            _raise(self._lib, status)
        return NativeLease(self._lib, handle)


class NativeLease:
    def __init__(self, lib: ctypes.CDLL, handle: ctypes.c_void_p) -> None:
        self._lib = lib
        self._handle: Optional[ctypes.c_void_p] = handle
        # Held around every call so that close() cannot free the lease under another thread;
        # it also guards the reused output record and the cache below.
        self._lock = threading.Lock()
        self._out = _Host()
        self._out_ref = ctypes.byref(self._out)
        # The C records of hosts reported, so a hot loop does not rebuild one per report.
        self._records: Dict[Tuple[str, int], Any] = {}
        self._get_host = lib.lars_lease_get_host
        self._report = lib.lars_lease_report

    def get_host(self, key: Optional[int]) -> Tuple[str, int]:
        with self._lock:
            if key is None:
                status = self._get_host(self._handle, self._out_ref)
            else:
                status = self._lib.lars_lease_get_host_keyed(self._handle, key, self._out_ref)
            if status:
                _raise(self._lib, status)
            return self._out.ip.decode(), self._out.port

    def report(self, ip: str, port: int, outcome: int, latency_us: int) -> None:
        with self._lock:
            record = self._records.get((ip, port))
            if record is None:
                if len(self._records) >= 1024:
                    self._records.clear()
                host = _c_host(ip, port)
                record = self._records[(ip, port)] = (host, ctypes.byref(host))
            status = self._report(self._handle, record[1], outcome, latency_us)
            if status:
                _raise(self._lib, status)

    def flush(self) -> None:
        with self._lock:
            status = self._lib.lars_lease_flush(self._handle)
        if status:
            _raise(self._lib, status)

    def version(self) -> int:
        version = ctypes.c_uint64()
        with self._lock:
            status = self._lib.lars_lease_version(self._handle, ctypes.byref(version))
        if status:
            _raise(self._lib, status)
        return version.value

    def close(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            self._lib.lars_lease_free(handle)

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            self.close()
