"""The exceptions of the lars client, one per status of liblarsclient (``LARS_E*``)."""

from __future__ import annotations


class LarsError(Exception):
    """A failed lars call. ``status`` is the liblarsclient code (1-3 are Lars's own)."""

    status = 2


class Overloaded(LarsError):
    """Every host of the route is overloaded: back off or degrade."""

    status = 1


class AgentError(LarsError):
    """The agent could not serve the request."""

    status = 2


class NoRoute(LarsError):
    """No such route, or the agent is still fetching it."""

    status = 3


class Timeout(LarsError, TimeoutError):
    """No answer from the agent after every retry: is it running?"""

    status = 4


class Malformed(LarsError):
    """The agent answered something that does not decode."""

    status = 5


class IoError(LarsError, OSError):
    """A socket error."""

    status = 6


class InvalidArgument(LarsError, ValueError):
    """An argument is of the wrong type, out of range or does not parse."""

    status = 7


class InternalError(LarsError):
    """A bug in lars, caught at the library's boundary: please report it."""

    status = 8


BY_STATUS = {cls.status: cls for cls in (Overloaded, AgentError, NoRoute, Timeout, Malformed, IoError, InvalidArgument, InternalError)}
