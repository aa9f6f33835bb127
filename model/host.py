"""One network endpoint: the NIC and the OS as processes see them.

A `Host` owns a MAC and an IPv4 address, a static neighbour table (plus ARP replies and
learning, so a Linux peer on a TAP can find it), a virtual clock, every TCP connection
(`model.tcp.Tcb`) and UDP port, and the processes. Frames go in with `receive_frame()` and
come out with `transmit()`; `advance()` moves the clock and fires timers.

A `Process` has a pid and an fd table. An fd refers to a `Socket`, the analogue of a Linux
open file description: fork(), dup() and fd passing make more fds refer to the *same*
Socket (sharing its data, its O_NONBLOCK flag and its connection), and the Socket is
released when its last fd is closed. A process that does not hold an fd gets EBADF and
changes nothing: the fd table is the model of the hardware's per-connection access table.

Socket calls are methods of `Process`. They return a value, or raise
``model.errors.SocketError`` (``.errno`` is the errno name, as Linux would give it), or
raise ``model.errors.WouldBlock`` when a blocking call must wait (retry the same call later;
see model/errors.py). Every call, frame and clock step ends by handing the connections'
new segments to the transmit queue, so `transmit()` after any of them shows the wire.

Calls and what they return::

    socket(kind)                  -> fd       kind: SOCK_STREAM/"tcp" or SOCK_DGRAM/"udp"
    bind(fd, (ip, port))          -> None     port 0 picks an ephemeral port
    listen(fd, backlog=16)        -> None
    accept(fd)                    -> (fd, (ip, port))
    connect(fd, (ip, port))       -> None     nonblocking: EINPROGRESS, then EALREADY, then 0
    recv(fd, n, flags=0)          -> bytes    MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT; b"" is EOF
    recvfrom(fd, n, flags=0)      -> (bytes, (ip, port))
    send(fd, data, flags=0)       -> int      MSG_DONTWAIT
    sendto(fd, data, (ip, port), flags=0) -> int
    read(fd, n) / write(fd, data)             recv/send without flags
    shutdown(fd, how)             -> None     SHUT_RD, SHUT_WR, SHUT_RDWR
    close(fd)                     -> None
    poll([(fd, events), ...], timeout=0) -> [(fd, revents), ...]   only fds with revents
    fcntl_nonblock(fd, on)        -> None     O_NONBLOCK on the shared Socket
    getsockopt_error(fd)          -> errno name or None            SO_ERROR (consumes it)
    setsockopt(fd, level, name, value) -> None                     see "Socket options"
    getsockopt(fd, level, name)   -> int, or (l_onoff, l_linger) for SO_LINGER
    getsockname(fd) / getpeername(fd) -> (ip, port)
    fork()                        -> Process  same fds, same Sockets
    dup(fd)                       -> fd       lowest free fd
    send_fd(fd, other_process)    -> fd       the new fd in `other_process`
    exit()                        -> None     closes every fd

Documented simplifications: a blocking send() of no more than the send buffer waits until
all of it fits and then queues it whole (so every such write is contiguous in the stream);
a larger one queues what fits and returns the short count. MSG_WAITALL waits for at most a
receive buffer's worth. poll() with a nonzero timeout blocks (WouldBlock) until something is
ready: timeouts are the scenario runner's business. connect() to an address with no
neighbour entry fails at once with EHOSTUNREACH.

Socket options (levels and names as Linux numbers them, model.constants; the choices are
model/policy.py's "Socket options"): SO_RCVBUF/SO_SNDBUF cap the receive buffer (so the
window) and the send buffer of the connections the socket makes or accepts, and read back
doubled, as Linux reports them; TCP_MAXSEG caps the MSS; TCP_NODELAY is stored (there is no
Nagle); SO_KEEPALIVE is off and cannot be turned on (EOPNOTSUPP); SO_LINGER {1, 0} makes
close() abort with RST (a nonzero linger time: EOPNOTSUPP); SO_ERROR reads and consumes the
pending error; SO_REUSEADDR is stored (ports are free as soon as their socket is). The shaping
options (buffers, MSS) are fixed when the connection is made: setting them on a socket that has
one is EISCONN. A listener's options are inherited by the sockets accept() returns. Any other
option is EOPNOTSUPP.
"""

from collections import Counter, deque
from dataclasses import dataclass, field

from .classify import Verdict, classify
from .constants import (MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL, POLLERR, POLLHUP, POLLIN, POLLNVAL,
                        POLLOUT, SHUT_RD, SHUT_RDWR, SHUT_WR, SO_ERROR, SO_KEEPALIVE, SO_LINGER,
                        SO_RCVBUF, SO_REUSEADDR, SO_SNDBUF, SOCK_DGRAM, SOCK_MIN_BUFFER,
                        SOCK_STREAM, SOL_SOCKET, SOL_TCP, TCP_MAX_MSS, TCP_MAXSEG, TCP_MIN_MSS,
                        TCP_MSS_DEFAULT, TCP_NODELAY, UDP_MAX_PAYLOAD, UDP_RECORD_BYTES)
from .errors import Errno, SocketError, WouldBlock
from .drops import DropCause
from .protocol import ArpOp, TcpFlag
from .packet import (Arp, PacketError, TcpSegment,
                     UdpDatagram, build_arp_frame, build_tcp_frame, build_udp_frame, mac_bytes,
                     parse_frame)
from .policy import DEFAULT_POLICY, Policy
from .tcp import SYNCHRONIZED, State, Tcb, seq_add

__all__ = ["Host", "Process", "Socket", "new_pid"]

BROADCAST = b"\xff" * 6
FIRST_FD = 3


def new_pid(host) -> int:
    """The next free pid of `host` (``processes``, ``_next_pid``, ``max_pid``: a Host, or the
    RTL driver's host), which it then moves past; EAGAIN when every pid is taken."""
    limit = host.max_pid
    if limit is None:
        pid = host._next_pid
    else:
        candidates = [p for p in range(host._next_pid, limit + 1) if p not in host.processes]
        candidates += [p for p in range(1, host._next_pid) if p not in host.processes]
        if not candidates:
            raise SocketError(Errno.EAGAIN, f"all {limit} pids are in use")
        pid = candidates[0]
    host._next_pid = pid + 1 if limit is None or pid < limit else 1
    return pid


def _addr(addr) -> tuple[str, int]:
    try:
        ip, port = addr
        return str(ip), int(port)
    except (TypeError, ValueError):
        raise SocketError(Errno.EINVAL, f"bad address {addr!r}") from None


@dataclass(eq=False)
class Socket:
    """An open socket (Linux: an open file description), shared by every fd that refers to it."""
    kind: int
    nonblock: bool = False
    refs: int = 0
    local: tuple[str, int] | None = None
    # TCP
    tcb: Tcb | None = None
    connecting: bool = False                  # connect() started and not yet reported
    was_connected: bool = False
    listening: bool = False
    backlog: int = 0
    pending: list[Tcb] = field(default_factory=list)        # handshake in progress
    accept_queue: list[Tcb] = field(default_factory=list)   # established, not yet accepted
    shut_rd: bool = False
    shut_wr: bool = False
    # UDP
    peer: tuple[str, int] | None = None
    datagrams: deque = field(default_factory=deque)          # (payload, (ip, port))
    queued_bytes: int = 0
    released: bool = False
    # socket options (0: not set); inherited by the sockets a listener's accept() returns
    rcvbuf: int = 0                           # SO_RCVBUF cap, bytes held (0: the ring)
    sndbuf: int = 0                           # SO_SNDBUF cap
    user_mss: int = 0                         # TCP_MAXSEG
    nodelay: bool = False                     # TCP_NODELAY
    linger_abort: bool = False                # SO_LINGER {1, 0}: close() sends RST
    reuseaddr: bool = False                   # SO_REUSEADDR

    INHERITED = ("rcvbuf", "sndbuf", "user_mss", "nodelay", "linger_abort", "reuseaddr")

    @property
    def handle(self):
        """The connection this socket refers to, or None: the model's `Tcb` here, a NIC
        connection slot in the RTL driver (``tb/nic_os.py``)."""
        return self.tcb


class Host:
    """A network endpoint with its NIC, OS, processes and virtual clock.

    The OS half (ports, ISS, listeners, the slow path's answers) is also the RTL driver's
    (``tb.nic_os.NicHost`` subclasses this class). Where a connection lives is behind a small
    interface, the *connection handle* (``Socket.handle``: a `Tcb` here, a NIC slot there):
    `_send_frame`, `_flow_input`, `_has_flow`, `_open_passive`, `_open_active`,
    `_handshake`, `_connected`, `_udp_connect`, `_accepted` and `_connection_ports`.

    Parameters
    ----------
    mac, ip : the host's Ethernet and IPv4 addresses.
    policy : every wire-visible policy (model/policy.py).
    iss_base : first ISS of this host (default ``policy.iss_base``).
    name : a label for traces.
    max_pid : the highest pid (None: no limit). Pids are given out in rising order,
        wrapping past ``max_pid`` to the lowest free one, as Linux does up to ``pid_max``;
        with every pid taken, spawn and fork fail with EAGAIN (fork(2)). A NIC has one
        doorbell page per process, so its host has as many pids as pages, less the OS's.
    """

    def __init__(self, mac: bytes | str, ip: str, policy: Policy = DEFAULT_POLICY,
                 iss_base: int | None = None, name: str = "", max_pid: int | None = None):
        self.mac, self.ip, self.policy = mac_bytes(mac), ip, policy
        self.name = name or ip
        self.iss_base = policy.iss_base if iss_base is None else iss_base
        self.now = 0
        self.neighbors: dict[str, bytes] = {}
        self.tcbs: dict[tuple, Tcb] = {}          # ((local ip, port), (remote ip, port)) -> Tcb
        self.listeners: dict[int, Socket] = {}
        self.udp_ports: dict[int, Socket] = {}
        self.sockets: list[Socket] = []           # live sockets, for port accounting
        self.processes: dict[int, "Process"] = {}
        self.drops: Counter = Counter()          # DropCause -> frames dropped
        self._tx: list[bytes] = []
        self._connections = 0
        self._next_pid = 1
        self.max_pid = max_pid
        self._next_port = policy.ephemeral_first

    # ----- the wire side ------------------------------------------------------------

    def add_neighbor(self, ip: str, mac: bytes | str):
        self.neighbors[ip] = mac_bytes(mac)

    def transmit(self) -> list[bytes]:
        """Frames sent since the last call, in order."""
        frames, self._tx = self._tx, []
        return frames

    def receive_frame(self, frame: bytes):
        """One Ethernet frame (without FCS) arrives from the wire.

        The NIC's classifier (model/classify.py) looks at it first and drops what it drops;
        the rest is parsed and goes to its connection, its UDP port or host software. Each
        dropped frame is counted once in `drops`, by its ``DropCause``.
        """
        verdict = classify(frame, self.mac, self.ip, self.policy.mtu)
        if verdict.verdict == Verdict.DROP:
            self.drops[verdict.cause] += 1
            return
        if self._frame_input(frame):
            self._flush()

    def advance(self, ticks: int):
        """Move the clock `ticks` forward, firing every timer at its own deadline."""
        if ticks < 0:
            raise ValueError(f"Ticks must be non-negative, not {ticks!r}")
        target = self.now + ticks
        while (deadline := self.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            for tcb in list(self.tcbs.values()):
                if (d := tcb.next_deadline()) is not None and d <= self.now:
                    tcb.on_timer(self.now)
            self._flush()
        self.now = target

    def next_deadline(self) -> int | None:
        """The earliest pending timer, or None."""
        times = [d for tcb in self.tcbs.values() if (d := tcb.next_deadline()) is not None]
        return min(times) if times else None

    def spawn(self) -> "Process":
        proc = Process(self, new_pid(self))
        self.processes[proc.pid] = proc
        return proc

    # ----- input ------------------------------------------------------------------

    def _frame_input(self, frame: bytes) -> bool:
        """A frame the classifier let through, to ARP, TCP or UDP; False if it does not parse."""
        try:
            parsed = parse_frame(frame)
        except PacketError as err:
            self.drops[err.cause] += 1
            return False
        if parsed.dst_mac not in (self.mac, BROADCAST):
            self.drops[DropCause.NOT_FOR_US] += 1
        elif parsed.arp is not None:
            self._arp_input(parsed.arp)
        elif parsed.dst_ip != self.ip:
            self.drops[DropCause.NOT_FOR_US] += 1
        elif parsed.tcp is not None:
            self._tcp_input(parsed.src_ip, parsed.tcp)
        else:
            self._udp_input(parsed.src_ip, parsed.udp)
        return True

    def _arp_input(self, arp: Arp):
        if arp.target_ip != self.ip:
            return
        self.add_neighbor(arp.sender_ip, arp.sender_mac)
        if arp.op == ArpOp.REQUEST:
            reply = Arp(ArpOp.REPLY, self.mac, self.ip, arp.sender_mac, arp.sender_ip)
            self._send_frame(build_arp_frame(self.mac, arp.sender_mac, reply))

    def _tcp_input(self, src_ip: str, seg: TcpSegment):
        local, remote = (self.ip, seg.dst_port), (src_ip, seg.src_port)
        if self._flow_input(local, remote, seg):
            return
        listener = self.listeners.get(seg.dst_port)
        if listener is None or seg.flags & TcpFlag.RST:
            if not seg.flags & TcpFlag.RST:
                self._reply_rst(src_ip, seg)
            return
        if seg.flags & TcpFlag.ACK:
            self._reply_rst(src_ip, seg)
        elif seg.flags & TcpFlag.SYN and not seg.flags & TcpFlag.FIN:   # SYN+FIN: dropped, as Linux
            if len(listener.pending) + len(listener.accept_queue) > listener.backlog:
                self.drops[DropCause.QUEUE_FULL] += 1
                return
            self._open_passive(listener, local, remote, seg)

    def _reply_rst(self, src_ip: str, seg: TcpSegment):
        """RFC 9293 3.10.7.1: the answer to a segment for no connection."""
        if seg.flags & TcpFlag.ACK:
            rst = TcpSegment(seg.dst_port, seg.src_port, seg.ack, 0, TcpFlag.RST, 0)
        else:
            rst = TcpSegment(seg.dst_port, seg.src_port, 0, seq_add(seg.seq, seg.seg_len),
                             TcpFlag.RST | TcpFlag.ACK, 0)
        self._send_tcp(src_ip, rst)

    def _udp_input(self, src_ip: str, dgram: UdpDatagram):
        sock = self.udp_ports.get(dgram.dst_port)
        if sock is None or (sock.peer is not None and sock.peer != (src_ip, dgram.src_port)):
            self.drops[DropCause.NO_SOCKET] += 1
            return
        size = UDP_RECORD_BYTES + len(dgram.payload)
        if sock.queued_bytes + size > self.policy.udp_rcv_buffer:
            self.drops[DropCause.QUEUE_FULL] += 1
            return
        sock.datagrams.append((dgram.payload, (src_ip, dgram.src_port)))
        sock.queued_bytes += size

    # ----- output -----------------------------------------------------------------

    def _send_frame(self, frame: bytes):
        """A frame from host software to the wire."""
        self._tx.append(frame)

    def _send_tcp(self, dst_ip: str, seg: TcpSegment):
        mac = self.neighbors.get(dst_ip)
        if mac is None:
            self.drops[DropCause.NO_NEIGHBOR] += 1
            return
        self._send_frame(build_tcp_frame(self.mac, mac, self.ip, dst_ip, seg, self.policy.ip_ttl))

    def _send_udp(self, dst_ip: str, dgram: UdpDatagram):
        mac = self.neighbors.get(dst_ip)
        if mac is None:
            self.drops[DropCause.NO_NEIGHBOR] += 1
            return
        self._send_frame(build_udp_frame(self.mac, mac, self.ip, dst_ip, dgram, self.policy.ip_ttl))

    # ----- connections: where they live (the connection handle) -----------------------

    def _flow_input(self, local, remote, seg: TcpSegment) -> bool:
        """`seg` to the connection of (`local`, `remote`); False if there is none."""
        tcb = self.tcbs.get((local, remote))
        if tcb is None:
            return False
        tcb.process(seg, self.now)
        return True

    def _has_flow(self, local, remote) -> bool:
        return (local, remote) in self.tcbs

    def shaping(self, sock: Socket) -> dict:
        """The values `sock`'s options give a connection it makes: the receive cap (the
        window's bound), the send cap and the MSS we advertise (Tcb's rcv_cap, snd_cap, adv_mss)."""
        return {"rcv_cap": sock.rcvbuf or self.policy.rcv_buffer,
                "snd_cap": sock.sndbuf or self.policy.snd_buffer,
                "adv_mss": min(sock.user_mss or self.policy.mss, self.policy.mss)}

    def _effective_mss(self, sock: Socket) -> int:
        """The send MSS of `sock`'s connection (getsockopt TCP_MAXSEG once it has one)."""
        return sock.tcb.eff_mss

    def _open_passive(self, listener: Socket, local, remote, seg: TcpSegment):
        """A SYN for `listener`: a new connection, pending on it."""
        tcb = Tcb(local, remote, self._next_iss(), self.policy, passive=True,
                  **self.shaping(listener))
        tcb.open_passive(seg)
        self.tcbs[(local, remote)] = tcb
        listener.pending.append(tcb)

    def _open_active(self, sock: Socket, local, remote):
        """connect(): a new connection for `sock`, its SYN on the way."""
        tcb = Tcb(local, remote, self._next_iss(), self.policy, **self.shaping(sock))
        tcb.open_active()
        self.tcbs[(local, remote)] = tcb
        sock.tcb = tcb

    def _handshake(self, sock: Socket):
        """(error, in progress) of `sock`'s connect(): the error is taken (reported once)."""
        tcb = sock.tcb
        if tcb.error is not None:
            error, tcb.error = tcb.error, None
            return error, False
        return None, tcb.state in (State.SYN_SENT, State.SYN_RECEIVED)

    def _connected(self, sock: Socket):
        """connect() reported `sock`'s connection established."""

    def _udp_connect(self, sock: Socket):
        """`sock` (UDP) now has its ``peer``."""

    def _accepted(self, handle) -> tuple[Socket, tuple[str, int]]:
        """accept(): a new socket for the established connection `handle`, and its peer."""
        return Socket(SOCK_STREAM, local=handle.local, tcb=handle, was_connected=True), handle.remote

    def _connection_ports(self) -> set[int]:
        """Local ports of the TCP connections that exist."""
        return {local[1] for local, _ in self.tcbs}

    def _flush(self):
        """Send what every connection has to send; retire closed connections."""
        for key, tcb in list(self.tcbs.items()):
            for seg in tcb.dispatch(self.now):
                self._send_tcp(tcb.remote[0], seg)
            if tcb.state == State.CLOSED:
                del self.tcbs[key]
        for listener in list(self.listeners.values()):
            for tcb in list(listener.pending):
                if tcb.state in SYNCHRONIZED:
                    listener.pending.remove(tcb)
                    listener.accept_queue.append(tcb)
                elif tcb.state == State.CLOSED:
                    listener.pending.remove(tcb)

    def _next_iss(self) -> int:
        iss = (self.iss_base + self.policy.iss_step * self._connections) & 0xFFFF_FFFF
        self._connections += 1
        return iss

    def _ports_in_use(self, kind: int) -> set[int]:
        ports = {s.local[1] for s in self.sockets if s.kind == kind and s.local is not None}
        if kind == SOCK_STREAM:
            ports |= self._connection_ports()
        return ports

    def _ephemeral_port(self, kind: int) -> int:
        used = self._ports_in_use(kind)
        span = self.policy.ephemeral_last - self.policy.ephemeral_first + 1
        for _ in range(span):
            port = self._next_port
            self._next_port = self.policy.ephemeral_first + (port + 1 - self.policy.ephemeral_first) % span
            if port not in used:
                return port
        raise SocketError(Errno.EADDRNOTAVAIL, "no ephemeral port left")

    def _bind(self, sock: Socket, ip: str, port: int):
        if port == 0:
            port = self._ephemeral_port(sock.kind)
        elif port in self._ports_in_use(sock.kind):
            raise SocketError(Errno.EADDRINUSE)
        sock.local = (ip, port)
        if sock.kind == SOCK_DGRAM:
            self.udp_ports[port] = sock

    def _release(self, sock: Socket):
        """The last fd of `sock` was closed."""
        sock.released = True
        if sock in self.sockets:
            self.sockets.remove(sock)
        if sock.kind == SOCK_DGRAM:
            if sock.local is not None and self.udp_ports.get(sock.local[1]) is sock:
                del self.udp_ports[sock.local[1]]
            return
        if sock.listening:
            del self.listeners[sock.local[1]]
            for tcb in sock.pending + sock.accept_queue:
                tcb.abort()                        # RST, but none in SYN-RECEIVED (as Linux)
                tcb.orphaned(self.now)
            return
        tcb = sock.tcb
        if tcb is None:
            return
        if (tcb.rcv.readable or sock.linger_abort) and tcb.state != State.CLOSED:
            tcb.abort()                            # unread data or SO_LINGER {1, 0}: RST, like Linux
        else:
            tcb.close_send()
        tcb.orphaned(self.now)


class Process:
    """A process on a `Host`: a pid and an fd table. Socket calls are its methods.

    The fd table (fork, dup, fd passing, close) is also the RTL host driver's
    (``tb.nic_os.Process`` subclasses this class): `_hold` and `_drop` are where an fd starts
    and stops referring to a socket, `_new_socket` makes a socket.
    """

    def __init__(self, host: Host, pid: int, fds: dict[int, Socket] | None = None):
        self.host, self.pid = host, pid
        self.fds: dict[int, Socket] = {}
        for fd, sock in (fds or {}).items():
            self._hold(fd, sock)

    def __repr__(self):
        return f"Process(pid={self.pid}, fds={sorted(self.fds)})"

    # ----- fd table ---------------------------------------------------------------

    def _sock(self, fd) -> Socket:
        sock = self.fds.get(fd) if isinstance(fd, int) else None
        if sock is None:
            raise SocketError(Errno.EBADF)
        return sock

    def _hold(self, fd: int, sock: Socket):
        """`fd` now refers to `sock`."""
        self.fds[fd] = sock
        sock.refs += 1

    def _drop(self, fd: int, sock: Socket):
        """`fd` no longer refers to `sock`."""
        del self.fds[fd]
        sock.refs -= 1

    def _new_socket(self, kind: int) -> Socket:
        return Socket(kind)

    def _install(self, sock: Socket) -> int:
        fd = FIRST_FD
        while fd in self.fds:
            fd += 1
        self._hold(fd, sock)
        return fd

    def _call(self, method, *args):
        """Run one call; whatever happens, hand the connections' segments to the wire."""
        try:
            return method(*args)
        finally:
            self.host._flush()

    def socket_of(self, fd: int) -> Socket:
        """For tests: the Socket behind `fd` (raises EBADF like a call)."""
        return self._sock(fd)

    # ----- process calls ----------------------------------------------------------

    def fork(self) -> "Process":
        child = type(self)(self.host, new_pid(self.host), self.fds)
        self.host.processes[child.pid] = child
        return child

    def dup(self, fd: int) -> int:
        return self._install(self._sock(fd))

    def send_fd(self, fd: int, other: "Process") -> int:
        """Pass `fd` to `other` (SCM_RIGHTS); return its number in `other`."""
        sock = self._sock(fd)
        if not isinstance(other, Process) or other.host is not self.host:
            raise SocketError(Errno.EINVAL, "can only pass an fd to a process on the same host")
        return other._install(sock)

    def close(self, fd: int):
        return self._call(self._close, fd)

    def _close(self, fd):
        sock = self._sock(fd)
        self._drop(fd, sock)
        if sock.refs == 0:
            self.host._release(sock)

    def exit(self):
        for fd in sorted(self.fds):
            self.close(fd)
        self.host.processes.pop(self.pid, None)

    def fcntl_nonblock(self, fd: int, on: bool = True):
        self._sock(fd).nonblock = bool(on)

    # ----- socket calls -----------------------------------------------------------

    def socket(self, kind) -> int:
        kinds = {SOCK_STREAM: SOCK_STREAM, "tcp": SOCK_STREAM, "stream": SOCK_STREAM,
                 SOCK_DGRAM: SOCK_DGRAM, "udp": SOCK_DGRAM, "dgram": SOCK_DGRAM}
        if kind not in kinds:
            raise SocketError(Errno.EINVAL, f"unknown socket kind {kind!r}")
        sock = self._new_socket(kinds[kind])
        self.host.sockets.append(sock)
        return self._install(sock)

    def bind(self, fd: int, addr):
        sock = self._sock(fd)
        ip, port = _addr(addr)
        if sock.local is not None or sock.tcb is not None:
            raise SocketError(Errno.EINVAL, "already bound")
        if ip not in ("0.0.0.0", self.host.ip):
            raise SocketError(Errno.EADDRNOTAVAIL)
        if not 0 <= port <= 65535:
            raise SocketError(Errno.EINVAL)
        self.host._bind(sock, ip, port)

    def listen(self, fd: int, backlog: int = 16):
        sock = self._sock(fd)
        if sock.kind != SOCK_STREAM:
            raise SocketError(Errno.EOPNOTSUPP)
        if sock.handle is not None:
            raise SocketError(Errno.EINVAL)
        if sock.local is None:
            self.host._bind(sock, "0.0.0.0", 0)
        sock.listening, sock.backlog = True, max(0, backlog)
        self.host.listeners[sock.local[1]] = sock

    def accept(self, fd: int):
        sock = self._sock(fd)
        if sock.kind != SOCK_STREAM:
            raise SocketError(Errno.EOPNOTSUPP)
        if not sock.listening:
            raise SocketError(Errno.EINVAL)
        if not sock.accept_queue:
            if sock.nonblock:
                raise SocketError(Errno.EAGAIN)
            raise WouldBlock()
        conn, remote = self.host._accepted(sock.accept_queue.pop(0))
        for name in Socket.INHERITED:
            setattr(conn, name, getattr(sock, name))
        self.host.sockets.append(conn)
        return self._install(conn), remote

    def connect(self, fd: int, addr):
        return self._call(self._connect, fd, addr)

    def _connect(self, fd, addr):
        sock = self._sock(fd)
        ip, port = _addr(addr)
        host = self.host
        if sock.kind == SOCK_DGRAM:
            if sock.local is None:
                host._bind(sock, "0.0.0.0", 0)
            sock.peer = (ip, port)
            host._udp_connect(sock)
            return None
        if sock.listening:
            raise SocketError(Errno.EISCONN)
        if sock.connecting:
            error, in_progress = host._handshake(sock)
            if error is not None:
                sock.connecting = False
                raise SocketError(error)
            if in_progress:
                if sock.nonblock:
                    raise SocketError(Errno.EALREADY)
                raise WouldBlock()
            host._connected(sock)
            sock.connecting, sock.was_connected = False, True
            return None
        if sock.was_connected:
            raise SocketError(Errno.EISCONN)
        if ip not in host.neighbors:
            raise SocketError(Errno.EHOSTUNREACH)
        if sock.local is None:
            host._bind(sock, "0.0.0.0", 0)
        local, remote = (host.ip, sock.local[1]), (ip, port)
        if host._has_flow(local, remote):
            raise SocketError(Errno.EADDRNOTAVAIL)
        host._open_active(sock, local, remote)
        sock.connecting = True
        if sock.nonblock:
            raise SocketError(Errno.EINPROGRESS)
        raise WouldBlock()

    def send(self, fd: int, data: bytes, flags: int = 0) -> int:
        return self._call(self._send, fd, bytes(data), flags, None)

    def write(self, fd: int, data: bytes) -> int:
        return self.send(fd, data)

    def sendto(self, fd: int, data: bytes, addr, flags: int = 0) -> int:
        return self._call(self._send, fd, bytes(data), flags, _addr(addr))

    def _send(self, fd, data, flags, addr):
        sock = self._sock(fd)
        nonblock = sock.nonblock or bool(flags & MSG_DONTWAIT)
        if sock.kind == SOCK_DGRAM:
            return self._send_udp(sock, data, addr)
        tcb = sock.tcb
        if tcb is None or sock.listening:
            raise SocketError(Errno.EPIPE)
        if tcb.error is not None:
            error, tcb.error = tcb.error, None
            sock.connecting = False
            raise SocketError(error)
        if sock.shut_wr or tcb.state not in (State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED,
                                             State.CLOSE_WAIT):
            raise SocketError(Errno.EPIPE)
        if not data:
            return 0
        space = tcb.send_space
        waiting = tcb.state in (State.SYN_SENT, State.SYN_RECEIVED)
        if waiting or space == 0 or (not nonblock and space < len(data) <= tcb.snd_cap):
            if nonblock:
                raise SocketError(Errno.EAGAIN)
            raise WouldBlock()
        return tcb.send(data)

    def _send_udp(self, sock: Socket, data: bytes, addr):
        dest = addr or sock.peer
        if dest is None:
            raise SocketError(Errno.EDESTADDRREQ)
        if len(data) > UDP_MAX_PAYLOAD:
            raise SocketError(Errno.EMSGSIZE)
        if dest[0] not in self.host.neighbors:
            raise SocketError(Errno.EHOSTUNREACH)
        if sock.local is None:
            self.host._bind(sock, "0.0.0.0", 0)
        return self._udp_write(sock, data, dest, addr)

    def _udp_write(self, sock: Socket, data: bytes, dest, addr) -> int:
        """Send the datagram `data` from `sock` to `dest` (`addr`: given by sendto)."""
        self.host._send_udp(dest[0], UdpDatagram(sock.local[1], dest[1], data))
        return len(data)

    def recv(self, fd: int, n: int, flags: int = 0) -> bytes:
        return self._call(self._recv, fd, n, flags)[0]

    def read(self, fd: int, n: int) -> bytes:
        return self.recv(fd, n)

    def recvfrom(self, fd: int, n: int, flags: int = 0):
        return self._call(self._recv, fd, n, flags)

    def _recv(self, fd, n, flags):
        sock = self._sock(fd)
        if not isinstance(n, int) or n < 0:
            raise SocketError(Errno.EINVAL)
        nonblock = sock.nonblock or bool(flags & MSG_DONTWAIT)
        peek = bool(flags & MSG_PEEK)
        if sock.kind == SOCK_DGRAM:
            if not sock.datagrams:
                if sock.shut_rd:
                    return b"", None
                if nonblock:
                    raise SocketError(Errno.EAGAIN)
                raise WouldBlock()
            payload, src = sock.datagrams[0]
            if not peek:
                sock.datagrams.popleft()              # the rest of a truncated datagram is lost
                sock.queued_bytes -= UDP_RECORD_BYTES + len(payload)
            return payload[:n], src
        tcb = sock.tcb
        if tcb is None or sock.listening:
            raise SocketError(Errno.ENOTCONN)
        readable = tcb.rcv.readable
        at_end = tcb.fin_received or sock.shut_rd or tcb.state == State.CLOSED or tcb.error is not None
        if readable and flags & MSG_WAITALL and not nonblock and not at_end:
            if readable < min(n, tcb.rcv.capacity):
                raise WouldBlock()
        if readable or n == 0:
            return tcb.receive(n, peek), tcb.remote
        if tcb.error is not None and tcb.state == State.CLOSED:
            error, tcb.error = tcb.error, None
            sock.connecting = False
            raise SocketError(error)
        if tcb.state == State.CLOSED and not sock.was_connected and not tcb.fin_received:
            raise SocketError(Errno.ENOTCONN)
        if at_end:
            return b"", tcb.remote
        if nonblock:
            raise SocketError(Errno.EAGAIN)
        raise WouldBlock()

    def shutdown(self, fd: int, how: int):
        return self._call(self._shutdown, fd, how)

    def _shutdown(self, fd, how):
        return self._shutdown_socket(self._sock(fd), how)

    def _shutdown_socket(self, sock: Socket, how):
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise SocketError(Errno.EINVAL)
        if sock.kind == SOCK_DGRAM:
            if sock.peer is None:
                raise SocketError(Errno.ENOTCONN)
            return self._shutdown_connection(sock, how)
        if sock.listening:
            if how != SHUT_WR:
                raise SocketError(Errno.EINVAL, "shutting down a listener is not modelled")
            return None
        if sock.handle is None:
            raise SocketError(Errno.ENOTCONN)
        return self._shutdown_connection(sock, how)

    def _shutdown_connection(self, sock: Socket, how):
        """shutdown() of a connected UDP socket, or of a TCP socket with a connection."""
        if sock.kind == SOCK_DGRAM:
            sock.shut_rd |= how != SHUT_WR
            sock.shut_wr |= how != SHUT_RD
            return None
        tcb = sock.tcb
        if tcb.state == State.CLOSED:
            raise SocketError(Errno.ENOTCONN)
        if tcb.state == State.SYN_SENT:
            tcb.close_send()                          # abandons the connection attempt
            return None
        sock.shut_rd |= how != SHUT_WR
        if how != SHUT_RD and not sock.shut_wr:
            sock.shut_wr = True
            tcb.close_send()
        return None

    def poll(self, fds, timeout: int | None = 0):
        """``poll(2)``: `fds` is ``[(fd, events), ...]`` (or a dict); returns ready ``(fd, revents)``."""
        items = list(fds.items()) if isinstance(fds, dict) else [tuple(x) for x in fds]
        ready = []
        for fd, events in items:
            sock = self.fds.get(fd)
            revents = POLLNVAL if sock is None else self._poll_mask(sock) & (events | POLLERR | POLLHUP)
            if revents:
                ready.append((fd, revents))
        if not ready and timeout != 0:
            raise WouldBlock()
        return ready

    def _poll_mask(self, sock: Socket) -> int:
        if sock.kind == SOCK_DGRAM:
            return POLLOUT | (POLLIN if sock.datagrams else 0)
        if sock.listening:
            return POLLIN if sock.accept_queue else 0
        tcb = sock.tcb
        if tcb is None:
            return POLLOUT | POLLHUP
        mask = POLLERR if tcb.error is not None else 0
        rcv_shut = sock.shut_rd or tcb.fin_received or tcb.reset
        if (rcv_shut and sock.shut_wr) or tcb.state == State.CLOSED:
            mask |= POLLHUP
        if rcv_shut:
            mask |= POLLIN
        if tcb.state not in (State.SYN_SENT, State.SYN_RECEIVED):
            if tcb.rcv.readable:
                mask |= POLLIN
            if sock.shut_wr or tcb.send_space > 0:
                mask |= POLLOUT
        return mask

    def getsockopt_error(self, fd: int):
        sock = self._sock(fd)
        if sock.tcb is None or sock.tcb.error is None:
            return None
        error, sock.tcb.error = sock.tcb.error, None
        return error

    def setsockopt(self, fd: int, level: int, name: int, value):
        """setsockopt(2); `value` is an int, or (l_onoff, l_linger) for SO_LINGER."""
        sock = self._sock(fd)
        option = (level, name)
        if option == (SOL_SOCKET, SO_LINGER):
            try:
                onoff, seconds = (int(v) for v in value)
            except (TypeError, ValueError):
                raise SocketError(Errno.EINVAL, f"SO_LINGER takes (l_onoff, l_linger), not {value!r}") from None
            if onoff and seconds:
                raise SocketError(Errno.EOPNOTSUPP, "a lingering close is not implemented (only {1, 0}: abort)")
            sock.linger_abort = bool(onoff)
            return
        if not isinstance(value, int):
            raise SocketError(Errno.EINVAL, f"option {level}/{name} takes an int, not {value!r}")
        if option == (SOL_SOCKET, SO_REUSEADDR):
            sock.reuseaddr = bool(value)
        elif option == (SOL_TCP, TCP_NODELAY) and sock.kind == SOCK_STREAM:
            sock.nodelay = bool(value)                 # no Nagle: data goes at once either way
        elif option == (SOL_SOCKET, SO_KEEPALIVE):
            if value:
                raise SocketError(Errno.EOPNOTSUPP, "keepalive is not implemented")
        elif option == (SOL_SOCKET, SO_ERROR):
            raise SocketError(Errno.ENOPROTOOPT, "SO_ERROR is read-only")
        elif option in ((SOL_SOCKET, SO_RCVBUF), (SOL_SOCKET, SO_SNDBUF), (SOL_TCP, TCP_MAXSEG)):
            if sock.kind != SOCK_STREAM:
                raise SocketError(Errno.EOPNOTSUPP, "a UDP socket's queue is its ring")
            if sock.handle is not None and not sock.listening:
                raise SocketError(Errno.EISCONN, "buffers and MSS are fixed when the connection is made")
            if name == TCP_MAXSEG:
                if value and not TCP_MIN_MSS <= value <= TCP_MAX_MSS:
                    raise SocketError(Errno.EINVAL, f"TCP_MAXSEG must be 0 or {TCP_MIN_MSS}..{TCP_MAX_MSS}")
                sock.user_mss = value
            else:
                ring = self.host.policy.rcv_buffer if name == SO_RCVBUF else self.host.policy.snd_buffer
                cap = ring if value < 0 else min(max(value, SOCK_MIN_BUFFER), ring)   # Linux: u32
                setattr(sock, "rcvbuf" if name == SO_RCVBUF else "sndbuf", cap)
        else:
            raise SocketError(Errno.EOPNOTSUPP, f"socket option {level}/{name}")

    def getsockopt(self, fd: int, level: int, name: int):
        """getsockopt(2): an int, or (l_onoff, l_linger) for SO_LINGER."""
        sock = self._sock(fd)
        option = (level, name)
        if option == (SOL_SOCKET, SO_ERROR):
            error = self.getsockopt_error(fd)
            return Errno(error).number if error else 0
        if option == (SOL_SOCKET, SO_LINGER):
            return (int(sock.linger_abort), 0)
        if option == (SOL_SOCKET, SO_REUSEADDR):
            return int(sock.reuseaddr)
        if option == (SOL_SOCKET, SO_KEEPALIVE):
            return 0
        if option == (SOL_TCP, TCP_NODELAY) and sock.kind == SOCK_STREAM:
            return int(sock.nodelay)
        if option in ((SOL_SOCKET, SO_RCVBUF), (SOL_SOCKET, SO_SNDBUF)):
            policy = self.host.policy
            if sock.kind == SOCK_DGRAM:
                return 2 * policy.udp_rcv_buffer if name == SO_RCVBUF else 2 * UDP_MAX_PAYLOAD
            shaping = self.host.shaping(sock)
            return 2 * shaping["rcv_cap" if name == SO_RCVBUF else "snd_cap"]   # Linux doubles
        if option == (SOL_TCP, TCP_MAXSEG) and sock.kind == SOCK_STREAM:
            if sock.handle is None or sock.listening:
                return sock.user_mss or TCP_MSS_DEFAULT
            return self.host._effective_mss(sock)
        raise SocketError(Errno.EOPNOTSUPP, f"socket option {level}/{name}")

    def getsockname(self, fd: int):
        sock = self._sock(fd)
        if sock.tcb is not None:
            return sock.tcb.local
        return sock.local or ("0.0.0.0", 0)

    def getpeername(self, fd: int):
        sock = self._sock(fd)
        if sock.tcb is not None and sock.tcb.state in SYNCHRONIZED | {State.CLOSED} and \
                (sock.was_connected or not sock.connecting):
            return sock.tcb.remote
        if sock.kind == SOCK_DGRAM and sock.peer is not None:
            return sock.peer
        raise SocketError(Errno.ENOTCONN)
