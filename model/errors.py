"""What a socket call can return instead of a value.

- `SocketError`: the call failed as Linux would fail it; ``.errno`` is the errno *name*
  (a `Errno`, which is a ``str``: ``err.errno == "EAGAIN"`` holds).
- `WouldBlock`: a *blocking* call cannot complete yet. It is not an error and not EAGAIN
  (a nonblocking call gets ``SocketError("EAGAIN")``). The call has had no effect beyond
  what the first attempt of that call always does (connect() sends its SYN once); the
  scenario runner retries the very same call after the wire or the clock has moved.

No other exception leaves a socket call of the model; anything else is a model bug.
"""

import enum

__all__ = ["Errno", "SocketError", "WouldBlock"]


class Errno(enum.StrEnum):
    """Every errno the model returns: the name, and Linux's number (`number`).

    The number is also the NIC's status and error code (``hdl.engine.tcb.Errno`` adds OK = 0),
    so the RTL's answers turn into these with `from_number`, and getsockopt(SO_ERROR) gives it.
    """
    number: int

    def __new__(cls, name: str, number: int):
        member = str.__new__(cls, name)
        member._value_ = name
        member.number = number
        return member

    EPERM = "EPERM", 1
    EBADF = "EBADF", 9
    EAGAIN = "EAGAIN", 11
    EFAULT = "EFAULT", 14
    EINVAL = "EINVAL", 22
    EMFILE = "EMFILE", 24
    EPIPE = "EPIPE", 32
    ENOTSOCK = "ENOTSOCK", 88
    EDESTADDRREQ = "EDESTADDRREQ", 89
    EMSGSIZE = "EMSGSIZE", 90
    EPROTOTYPE = "EPROTOTYPE", 91
    ENOPROTOOPT = "ENOPROTOOPT", 92
    EOPNOTSUPP = "EOPNOTSUPP", 95
    EAFNOSUPPORT = "EAFNOSUPPORT", 97
    EADDRINUSE = "EADDRINUSE", 98
    EADDRNOTAVAIL = "EADDRNOTAVAIL", 99
    ENETUNREACH = "ENETUNREACH", 101
    ECONNABORTED = "ECONNABORTED", 103
    ECONNRESET = "ECONNRESET", 104
    EISCONN = "EISCONN", 106
    ENOTCONN = "ENOTCONN", 107
    ETIMEDOUT = "ETIMEDOUT", 110
    ECONNREFUSED = "ECONNREFUSED", 111
    EHOSTUNREACH = "EHOSTUNREACH", 113
    EALREADY = "EALREADY", 114
    EINPROGRESS = "EINPROGRESS", 115

    @classmethod
    def from_number(cls, number: int) -> "Errno":
        """The errno with Linux's `number`."""
        for errno in cls:
            if errno.number == number:
                return errno
        raise ValueError(f"no errno numbered {number}")


class SocketError(Exception):
    """A socket call failed; `errno` is the errno name, e.g. ``"ECONNRESET"``."""

    def __init__(self, errno: str, detail: str = ""):
        self.errno = Errno(errno)
        self.detail = detail
        super().__init__(f"{self.errno}{': ' + detail if detail else ''}")


class WouldBlock(Exception):
    """A blocking call cannot complete now; retry the same call after time or the wire moves."""
