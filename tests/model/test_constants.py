"""The socket-level constants are Linux's: the model, the RTL and the testbench read them here."""

import errno
import select
import socket
import sys

import pytest

from model import constants
from model.errors import Errno
from model.tcp import State

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the numbers are Linux's")


@linux_only
def test_errno_numbers_are_linux():
    assert {e.name: e.number for e in Errno} == {e.name: getattr(errno, e.name) for e in Errno}
    assert all(Errno.from_number(e.number) is e for e in Errno)
    with pytest.raises(ValueError, match="no errno numbered 0"):
        Errno.from_number(0)


@linux_only
def test_socket_constants_are_linux():
    for name in ("SOCK_STREAM", "SOCK_DGRAM", "SHUT_RD", "SHUT_WR", "SHUT_RDWR", "MSG_PEEK",
                 "MSG_DONTWAIT", "MSG_WAITALL"):
        assert getattr(constants, name) == getattr(socket, name), name
    for name in ("POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL"):
        assert getattr(constants, name) == getattr(select, name), name


def test_tcp_state_numbers():
    """Each state the NIC holds has its own 4-bit code; LISTEN lives in host software only."""
    numbers = [s.number for s in State if s is not State.LISTEN]
    assert State.LISTEN.number is None and State.CLOSED.number == 0
    assert sorted(numbers) == list(range(len(numbers))) and max(numbers) < 16
