"""What the NIC keeps per connection, and the codes its ports speak.

The connection record (:class:`ConnRecord`) is the hardware's transmission control block:
RFC 9293's variables for one connection plus its header template, one word of a block RAM
per connection. Its fields are named as ``model/tcp.py`` names them (``snd_una``, ``rcv``
state lives in the receive stream buffer, so RCV.NXT is derived there as in the model).

The enums are shared with the host driver (``tb/nic_os.py``) so the Verilog, the driver and
the model speak one list: :class:`TcpState` mirrors ``model.tcp.State``, :class:`Errno`
the errno names the model returns.
"""

from amaranth.lib import data, enum

__all__ = ["TcpState", "ConnKind", "Errno", "Template", "ConnRecord",
           "SYNCHRONIZED", "RECEIVING", "FIN_STATES"]


class TcpState(enum.Enum, shape=4):
    """Connection states (RFC 9293), as ``model.tcp.State``; LISTEN lives in host software."""
    CLOSED = 0
    SYN_SENT = 1
    SYN_RECEIVED = 2
    ESTABLISHED = 3
    FIN_WAIT_1 = 4
    FIN_WAIT_2 = 5
    CLOSE_WAIT = 6
    CLOSING = 7
    LAST_ACK = 8
    TIME_WAIT = 9


SYNCHRONIZED = (TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2,
                TcpState.CLOSE_WAIT, TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT)
# states in which received data is accepted (RFC 9293 3.10.7.4, seventh step)
RECEIVING = (TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2)
FIN_STATES = (TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2, TcpState.CLOSING, TcpState.LAST_ACK,
              TcpState.TIME_WAIT)


class ConnKind(enum.Enum, shape=2):
    """What a connection slot holds."""
    FREE = 0
    TCP = 1
    UDP = 2


class Errno(enum.Enum, shape=5):
    """Status of a host or control command: OK or the errno name Linux (and the model) gives."""
    OK = 0
    EAGAIN = 1          # nonblocking: nothing to do now; blocking: the caller waits and retries
    EBADF = 2           # the process has no access to the connection
    EPIPE = 3
    ENOTCONN = 4
    ECONNRESET = 5
    ECONNREFUSED = 6
    ETIMEDOUT = 7
    EINVAL = 8
    EMSGSIZE = 9
    EDESTADDRREQ = 10
    EHOSTUNREACH = 11
    EOPNOTSUPP = 12


class Template(data.StructLayout):
    """The header template of a connection: every header field that does not change.

    Our own MAC and IP are global (set once on the control port). For a UDP socket the
    remote fields are the connected peer (``peer_valid``), if any.
    """

    def __init__(self):
        super().__init__({"remote_mac": 48, "remote_ip": 32, "local_port": 16,
                          "remote_port": 16, "peer_valid": 1})


class ConnRecord(data.StructLayout):
    """One connection: state, RFC 9293 send variables, timers, socket flags and template.

    Receive-side sequence state (RCV.NXT, the window) is the receive stream buffer's tail
    and free space, and the send queue is the transmit stream buffer ([SND.UNA, tail)), so
    neither is duplicated here.
    """

    def __init__(self):
        super().__init__({
            "kind": ConnKind,
            "state": TcpState,
            "passive": 1,           # created by a listener (RST in SYN-RECEIVED is silent)
            "orphan": 1,            # no socket refers to it any more
            "reset": 1,             # ended by RST or timeout
            "error": Errno,         # pending error (Linux sk_err), consumed by the socket
            "shut_rd": 1,
            "shut_wr": 1,
            "was_connected": 1,
            "iss": 32,
            "irs": 32,
            "snd_una": 32,
            "snd_nxt": 32,
            "snd_max": 32,
            "snd_wnd": 16,
            "snd_wl1": 32,
            "snd_wl2": 32,
            "fin_queued": 1,
            "fin_acked": 1,
            "eff_mss": 16,
            "fin_received": 1,
            "fin_seq_valid": 1,     # a FIN that arrived beyond a hole, kept by sequence number
            "fin_seq": 32,
            "last_adv_wnd": 16,
            "ack_needed": 1,
            "rto": 16,              # ticks
            "retries": 4,
            "rto_armed": 1,
            "rto_deadline": 32,
            "persist_armed": 1,
            "persist_deadline": 32,
            "persist_probes": 4,
            "close_armed": 1,
            "close_deadline": 32,
            "dupacks": 3,
            "template": Template(),
        })
