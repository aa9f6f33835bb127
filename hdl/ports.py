"""The NIC's command ports: what host processes, the OS and the receive path say to the engine.

Three parties talk to the NIC, each on its own port:

- a **process**, through its doorbell page: :class:`HostCommand` in, :class:`HostResponse`
  out, data on frame streams. The ``pid`` field is not the process's to choose: in silicon
  it is the index of the doorbell page the command was written to, and the OS maps each
  process exactly one page. The engine checks ``(conn, pid)`` against the access table
  before it looks at anything else.
- the **OS**, through the privileged control port: :class:`ControlCommand` in,
  :class:`ControlResponse` out; it installs connections and UDP bindings (hash table and
  connection record), grants and revokes access, reads counters, and handles the slow path
  (frames the classifier sends up, raw frames it sends down, the handshake's SYNs).
- the **receive path** (``hdl/rx/dispatch.py``): one :class:`RxEvent` per frame that the
  socket table matched, answered with one :class:`RxAction` saying what to do with its bytes.
"""

from amaranth.lib import data, enum, stream
from amaranth.lib.wiring import In, Out

from hdl.tables.socket_table import KeyLayout
from hdl.engine.tcb import Errno, TcpState, ConnKind
from hdl.wire import TcpFlags

__all__ = ["HostOp", "HostCommand", "HostResponse", "CtlOp", "ControlCommand",
           "ControlResponse", "EventKind", "ConnEvent", "RxEvent", "ConnHint", "RxAction", "RxRoute",
           "HOST_CONN_BITS", "host_ports", "control_ports"]


class HostOp(enum.Enum, shape=3):
    """Data-path socket calls a process issues on its doorbell page."""
    READ = 0       #: recv(): TCP bytes, or one UDP datagram (truncated to ``length``)
    WRITE = 1      #: send(): ``length`` bytes follow on ``host_wdata``; UDP: one datagram
    POLL = 2       #: the socket's poll(2) mask
    SHUTDOWN = 3   #: shutdown(``how``)
    CLOSE = 4      #: the last descriptor of the socket was closed (``abort``: always RST)
    GETERR = 5     #: getsockopt(SO_ERROR): the pending error, consumed


# A process writes any connection number it likes into its doorbell page: the field is as wide
# as the register, not as the NIC's slot count, so the hardware sees a number past its last
# slot and answers EBADF instead of using its low bits.
HOST_CONN_BITS = 16


class HostCommand(data.StructLayout):
    """One socket call. ``nonblock`` is O_NONBLOCK or MSG_DONTWAIT: with it clear, an EAGAIN
    answer means "would block" and the caller retries when something has changed.

    ``length`` is any 32-bit value: a WRITE's ``length`` bytes follow on the write-data stream
    (the doorbell's DMA fetches exactly that many from the process), whatever part of them
    the send ring takes."""

    def __init__(self, pid_bits):
        super().__init__({
            "pid": pid_bits,            # from the doorbell page, never from the process
            "conn": HOST_CONN_BITS,     # any value: the engine checks it against its slots
            "op": HostOp,
            "length": 32,               # READ: bytes wanted; WRITE: bytes that follow
            "peek": 1,                  # MSG_PEEK
            "waitall": 1,               # MSG_WAITALL
            "nonblock": 1,
            "how": 2,                   # SHUTDOWN: SHUT_RD, SHUT_WR or SHUT_RDWR (model.constants)
            "abort": 1,                 # CLOSE: reset even without unread data
            "dest_valid": 1,            # UDP WRITE: sendto() destination (else the peer)
            "dest_ip": 32,
            "dest_port": 16,
        })


class HostResponse(data.StructLayout):
    """The answer to one :class:`HostCommand`, before any data of a READ.

    ``count``: bytes read (0 is end of file) or taken by a WRITE. ``revents``: POLL mask.
    ``src_ip``/``src_port``: a UDP datagram's source. ``error``: GETERR's answer.
    """

    def __init__(self):
        super().__init__({"status": Errno, "count": 32, "revents": 8, "src_ip": 32,
                          "src_port": 16, "error": Errno})


class CtlOp(enum.Enum, shape=4):
    """Privileged operations on the control port."""
    SET_ADDRESS = 0     #: our MAC and IP
    SET_NEIGHBOR = 1    #: neighbour table entry ``index``: ``ip`` -> ``mac`` (``flag``: valid)
    SOCKET_INSERT = 2   #: socket table: ``key`` -> ``conn``
    SOCKET_DELETE = 3   #: socket table: remove ``key``
    GRANT = 4           #: access table: ``pid`` may use ``conn``
    REVOKE = 5
    CLEAR_ACCESS = 6    #: no process may use ``conn``
    INSTALL_TCP = 7     #: a connection record in SYN-SENT or SYN-RECEIVED (see ControlCommand)
    INSTALL_UDP = 8     #: a bound UDP socket on ``local_port``
    UDP_CONNECT = 9     #: a UDP socket's peer: ``ip``, ``port``, ``mac``
    INJECT = 10         #: a segment the slow path handled (a SYN whose options the
                        #: classifier did not walk to the end): process it
    READ_STATE = 11     #: state, pending error and the send MSS in ``value`` (``flag``:
                        #: consume the error; ``mark``: the socket has seen its connect()
                        #: complete)
    FREE = 12           #: the slot is unused again
    READ_COUNTER = 13   #: counter ``index``
    NEXT_DEADLINE = 14  #: ticks until the earliest running timer (``flag`` in the answer: any)
    ADVANCE = 15        #: the clock jumps ``seq`` - 1 ticks; the next tick runs the timers.
                        #: Exact when no timer falls due in between (NEXT_DEADLINE says)


class ControlCommand(data.StructLayout):
    """One control operation; each op reads only the fields it names."""

    def __init__(self, conn_bits, pid_bits):
        super().__init__({
            "op": CtlOp,
            "conn": conn_bits,
            "pid": pid_bits,
            "index": 8,
            "flag": 1,
            "mark": 1,
            "key": KeyLayout(),
            "mac": 48,
            "ip": 32,
            "port": 16,
            # INSTALL_TCP: the connection as host software has set it up
            "state": TcpState,          # SYN_SENT (connect) or SYN_RECEIVED (a listener's SYN)
            "passive": 1,
            "iss": 32,
            "irs": 32,                  # SYN_RECEIVED: the SYN's sequence number
            "local_port": 16,           # remote side: ``ip``, ``port``, ``mac``
            "window": 16,               # SYN_RECEIVED: the SYN's window
            "mss": 16,                  # SYN_RECEIVED: the SYN's MSS option (0: none)
            "wscale_offered": 1,        # SYN_RECEIVED: the SYN's window scale option
            "wscale": 4,                # (RFC 7323; its shift count, at most 14)
            "sack_permitted": 1,        # SYN_RECEIVED: the SYN's SACK-permitted option
            # the socket's options (model.host.Host.shaping), each 0 for the default: the
            # receive buffer cap (SO_RCVBUF, at most the ring), the send buffer cap
            # (SO_SNDBUF, at most the ring) and our MSS (TCP_MAXSEG, at most the policy's);
            # a value past its bound is EINVAL
            "rcv_cap": 32,
            "snd_cap": 32,
            "adv_mss": 16,
            # INJECT: the segment's header; ``mss``, ``wscale*`` and ``sack_permitted`` as above
            "seq": 32,
            "ack": 32,
            "flags": TcpFlags(),
        })


class ControlResponse(data.StructLayout):
    """``status``: OK or the reason (EINVAL for a full socket table or a missing key).
    ``value``: READ_COUNTER's counter, NEXT_DEADLINE's ticks (``flag``: a timer runs),
    READ_STATE's send MSS (getsockopt TCP_MAXSEG);
    socket-table ops return the table's status code there."""

    def __init__(self):
        super().__init__({"status": Errno, "state": TcpState, "kind": ConnKind,
                          "error": Errno, "value": 32, "flag": 1})


class EventKind(enum.Enum, shape=1):
    SYNCHRONIZED = 0    #: the handshake completed (accept() may return it; connect() is done)
    CLOSED = 1          #: the connection reached CLOSED (remove its socket-table key)


class ConnEvent(data.StructLayout):
    def __init__(self, conn_bits):
        super().__init__({"conn": conn_bits, "kind": EventKind})


class RxEvent(data.StructLayout):
    """A received TCP segment or UDP datagram for connection ``conn`` (the frame waits);
    ``mss``: a SYN's MSS option (0: none, or not a SYN); ``wscale_offered`` and ``wscale``:
    its window scale option, ``sack_permitted`` its SACK-permitted option (as
    ``model.classify.ParsedFields``)."""

    def __init__(self, conn_bits):
        super().__init__({"conn": conn_bits, "udp": 1, "src_ip": 32, "src_port": 16,
                          "seq": 32, "ack": 32, "flags": TcpFlags(), "window": 16,
                          "payload_offset": 16, "payload_length": 16, "mss": 16,
                          "wscale_offered": 1, "wscale": 4, "sack_permitted": 1})


class ConnHint(data.StructLayout):
    """The connection whose event is likely next (``valid``: one is known): the receive path
    has its frame's lookup result before its verdict, and the host gate a command's
    connection while it checks it, so the engine can read the record and ring states while
    it waits. Only a hint: the event itself says which connection it is."""

    def __init__(self, conn_bits):
        super().__init__({"valid": 1, "conn": conn_bits})


class RxRoute(enum.Enum, shape=2):
    DISCARD = 0     #: nothing of the frame is kept
    SLOW = 1        #: the whole frame goes to host software
    STORE = 2       #: the payload goes to the connection's receive ring


class RxAction(data.StructLayout):
    def __init__(self):
        super().__init__({"route": RxRoute})


def host_ports(pid_bits, beat):
    """The processes' port as the NIC and the engine have it (``beat``: the frame beat layout):
    ``host_cmd`` and ``host_wdata`` in, ``host_rsp`` and ``host_rdata`` out."""
    return {
        "host_cmd": In(stream.Signature(HostCommand(pid_bits))),
        "host_wdata": In(stream.Signature(beat)),
        "host_rsp": Out(stream.Signature(HostResponse())),
        "host_rdata": Out(stream.Signature(beat)),
    }


def control_ports(conn_bits, pid_bits):
    """The OS's control port as the NIC and the engine have it: ``ctl_cmd`` in, ``ctl_rsp`` out."""
    return {
        "ctl_cmd": In(stream.Signature(ControlCommand(conn_bits, pid_bits))),
        "ctl_rsp": Out(stream.Signature(ControlResponse())),
    }


#: The NIC's stream ports whose handshake its testbench samples each clock (``hdl.nic.NIC``'s
#: debug port): its inputs (their ``ready``) and outputs (their ``valid``).
STROBED_INPUTS = ("rx", "slow_tx", "host_cmd", "host_wdata", "ctl_cmd")
STROBED_OUTPUTS = ("tx", "slow_rx", "host_rdata", "host_rsp", "ctl_rsp", "events")


class PortStrobes(data.StructLayout):
    """Every stream port's handshake bit and ``idle`` in one vector: the testbench reads it
    once per clock instead of a signal per port (under cocotb, signal reads are much of a
    simulated clock's cost)."""

    def __init__(self):
        super().__init__({**{f"{name}_ready": 1 for name in STROBED_INPUTS},
                          **{f"{name}_valid": 1 for name in STROBED_OUTPUTS}, "idle": 1})
