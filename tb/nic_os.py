"""The OS and the socket library for the RTL NIC: a scenario Backend, like model.scenario.ModelBackend.

This is the thin host driver that plays the OS for the hardware (DESIGN.md, "One scenario, two
backends"). It keeps exactly what a kernel keeps and the hardware does not: processes and their
fd tables, sockets as open file descriptions (shared by fork, dup and fd passing), listeners
and their accept queues, port numbers, ISS choice, connection slots. It does, on the control
port, what only the privileged party may do: install connections and UDP bindings (socket
table and connection record), grant and revoke each process's access, and answer what the
slow path brings up (SYNs and the handshake, ARP, segments for no connection).

Every data-path call (recv, send, poll, shutdown, the last close, SO_ERROR) is one host
command on the doorbell page of the calling process: the hardware checks its access and
does the work. The library below never touches connection state; it only turns the answer
into what the model's API returns (an EAGAIN from a blocking call becomes "would block").

A call on an fd the process does not hold is sent anyway when some process holds that fd
number, with that socket's connection: the forged doorbell write a misbehaving process could
make. The hardware must answer EBADF and change nothing.

The OS half is ``model/host.py``'s own: ``NicHost`` subclasses ``model.host.Host`` and
``Process`` subclasses ``model.host.Process``, so listen, accept, connect, bind and the slow
path's answers (argument checks, errno choices, the socket object's state) are written once,
there. What differs is where a connection lives (the *connection handle*): a NIC slot here,
a ``Tcb`` in the model; this file implements that interface (``_flow_input``, ``_has_flow``,
``_open_passive``, ``_open_active``, ``_handshake``, ``_connected``, ``_udp_connect``,
``_accepted``, ``_connection_ports``, ``_send_frame``) on the control port.
"""

from collections import Counter
from dataclasses import dataclass, field
import ipaddress

from hdl.nic import DROP_COUNTERS
from hdl.ports import CtlOp, EventKind, HostOp
from hdl.tables.socket_table import Status as TableStatus
from hdl.engine.tcb import Errno as HwErrno, TcpState
from hdl.wire import TcpFlags as HwTcpFlags
from model.constants import (MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL, POLLHUP, POLLIN, POLLOUT,
                             SOCK_DGRAM, SOCK_STREAM)
from model.errors import Errno, SocketError, WouldBlock
from model import host as model_host
from model.host import new_pid
from model.drops import DropCause
from model.packet import TcpSegment, mac_bytes
from model.policy import DEFAULT_POLICY, Policy
from model.protocol import IpProto
from model.scenario import Backend, Result, run_call
from tb.nic_batch import run_batch

__all__ = ["NicHost"]

OS_PID = 0          # the kernel's own doorbell page: it may use every connection


def _ip(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def _ip_str(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def _mac(mac: bytes) -> int:
    return int.from_bytes(mac_bytes(mac), "big")


def _syn_option_fields(seg: TcpSegment) -> dict:
    """A SYN's window scale and SACK-permitted options as the control command carries them
    (hdl/ports.py)."""
    return {"wscale_offered": int(seg.wscale is not None), "wscale": seg.wscale or 0,
            "sack_permitted": int(seg.sack_permitted)}


@dataclass(eq=False)
class Socket(model_host.Socket):
    """An open socket (open file description) as the model has it, less the connection: that
    lives in the NIC (``tcb`` stays None; ``pending`` and ``accept_queue`` hold slots)."""
    holders: Counter = field(default_factory=Counter)     # pid -> fds of this socket it holds
    conn: int | None = None                 # NIC connection slot
    remote: tuple[str, int] | None = None

    @property
    def handle(self):
        return self.conn


@dataclass(eq=False)
class Conn:
    """What the OS remembers of a NIC connection slot."""
    kind: int
    key: dict
    local: tuple[str, int]
    remote: tuple[str, int] | None
    socket: Socket | None = None            # None while pending on a listener, or released
    listener: Socket | None = None
    closed: bool = False                    # the NIC reported CLOSED (its key is removed)
    released: bool = False                  # no socket refers to it any more


class NicHost(model_host.Host, Backend):
    """A host whose network stack is the RTL NIC behind `port` (a ``tb.nic_bench.NicPort``).

    Parameters
    ----------
    port : NicPort
    mac, ip : our addresses
    policy : the policy the NIC was built with (``hdl.nic.NIC.policy``)
    connections, neighbors : the NIC's slot and neighbour-table sizes
    """

    def __init__(self, port, mac, ip: str, *, policy: Policy = DEFAULT_POLICY, connections: int,
                 neighbors: int = 8, iss_base: int | None = None, name: str = ""):
        # one doorbell page per process; page 0 is the OS's
        super().__init__(mac, ip, policy, iss_base, name, max_pid=port.processes - 1)
        self.port = port
        self.neighbor_slots: dict[str, int] = {}
        self.max_neighbors = neighbors
        self.conns: dict[int, Conn] = {}
        self.flows: dict[tuple, int] = {}   # ((local ip, port), (remote ip, port)) -> conn
        self.connections = connections
        self._next_conn = 0
        self._ctl(CtlOp.SET_ADDRESS, mac=_mac(self.mac), ip=_ip(ip))

    # ----- the NIC's ports ------------------------------------------------------------

    def _ctl(self, op, **fields):
        rsp = self.port.control({"op": op, **fields})
        self._pump()
        return rsp

    def _host(self, pid, conn, op, wdata=b"", **fields):
        rsp, data = self.port.host({"pid": pid, "conn": conn, "op": op,
                                    "length": len(wdata), **fields}, wdata)
        self._pump()
        return rsp, data

    def _flush(self):
        """What model.host.Process calls after every call: here, take what the NIC has."""
        self._pump()

    def _pump(self):
        """Take what the NIC has for the OS (events, then slow-path frames) until it is quiet."""
        while True:
            self._tx += self.port.take_tx()
            events = self.port.take_events()
            frames = self.port.take_slow()
            if not events and not frames:
                return
            for event in events:
                self._on_event(int(event.conn), event.kind)
            for frame in frames:
                self._frame_input(frame)

    def _on_event(self, conn_id, kind):
        conn = self.conns[conn_id]
        if kind == EventKind.SYNCHRONIZED:
            listener = conn.listener
            if listener is not None and conn_id in listener.pending:
                listener.pending.remove(conn_id)
                listener.accept_queue.append(conn_id)
            return
        # CLOSED: the model forgets the TCB; a later segment is for no connection
        conn.closed = True
        self.port.control({"op": CtlOp.SOCKET_DELETE, "key": conn.key})
        self.flows.pop((conn.local, conn.remote), None)
        if conn.listener is not None and conn_id in conn.listener.pending:
            conn.listener.pending.remove(conn_id)
            conn.released = True
        if conn.released:
            self._free(conn_id)

    def _free(self, conn_id):
        self.port.control({"op": CtlOp.CLEAR_ACCESS, "conn": conn_id})
        self.port.control({"op": CtlOp.FREE, "conn": conn_id})
        del self.conns[conn_id]

    def _alloc_conn(self) -> int | None:
        """The next free slot after the last one given out (so slots go in creation order)."""
        for i in range(self.connections):
            conn = (self._next_conn + i) % self.connections
            if conn not in self.conns:
                self._next_conn = conn + 1
                return conn
        return None

    def _install_key(self, conn_id, key):
        rsp = self.port.control({"op": CtlOp.SOCKET_INSERT, "conn": conn_id, "key": key})
        if rsp.value != TableStatus.OK.value:
            raise RuntimeError(f"socket table refused {key}: status {rsp.value}")
        self.port.control({"op": CtlOp.CLEAR_ACCESS, "conn": conn_id})
        self.port.control({"op": CtlOp.GRANT, "conn": conn_id, "pid": OS_PID})

    def _grant_holders(self, sock: Socket):
        for pid in sock.holders:
            self.port.control({"op": CtlOp.GRANT, "conn": sock.conn, "pid": pid})

    # ----- the wire side (Backend) -----------------------------------------------------

    def add_neighbor(self, ip: str, mac):
        self.neighbors[ip] = mac_bytes(mac)
        slot = self.neighbor_slots.get(ip, len(self.neighbor_slots))
        if slot < self.max_neighbors:
            self.neighbor_slots[ip] = slot
            self._ctl(CtlOp.SET_NEIGHBOR, index=slot, flag=1, ip=_ip(ip), mac=_mac(mac))

    def transmit(self) -> list[bytes]:
        self._tx += self.port.take_tx()
        frames, self._tx = self._tx, []
        return frames

    def receive_frame(self, frame: bytes):
        self.port.send_frame(frame)
        self._pump()

    def receive_frames(self, frames: list[bytes]):
        """`frames` back to back on the receive port, then one settle."""
        self.port.send_frames(frames)
        self._pump()

    def advance(self, ticks: int):
        """Let `ticks` pass: idle stretches in one jump, every tick with a timer due pulsed."""
        target = self.now + ticks
        while self.now < target:
            due = self.next_deadline()
            step = min(target, due if due is not None else target) - self.now
            if step > 1:
                self.port.control({"op": CtlOp.ADVANCE, "seq": step})
            self.port.tick()
            self.now += step
            self._pump()

    def next_deadline(self):
        """The earliest running timer of any connection, as the NIC reports it."""
        rsp = self.port.control({"op": CtlOp.NEXT_DEADLINE})
        if not rsp.flag:
            return None
        return self.now + max(1, rsp.value - (rsp.value >> 31 << 32))

    def spawn(self) -> int:
        """A new process on a free doorbell page (EAGAIN when every page is taken)."""
        proc = Process(self, new_pid(self))
        self.processes[proc.pid] = proc
        return proc.pid

    def call(self, pid: int, op: str, *args) -> Result:
        return run_call(self.processes, pid, op, args)

    def drop_counts(self) -> dict[str, int]:
        """The NIC's drop counters (READ_COUNTER) plus what host software dropped, by cause."""
        counts = Counter(self.drops)
        for cause, index in DROP_COUNTERS.items():
            counts[cause] += int(self.port.control({"op": CtlOp.READ_COUNTER, "index": index}).value)
        return {cause.name: n for cause, n in sorted(counts.items()) if n}

    def calls(self, batch: list[tuple]) -> list[Result]:
        """Every call's host command queued back to back, one settle (``tb/nic_batch.py``)."""
        return run_batch(self, batch)

    def receive_frames_busy(self, frames: list[bytes]):
        """`frames` back to back while host software takes nothing from the slow path (its
        ready held low until every beat is in): what does not fit the slow-path FIFO is
        dropped and counted (SLOW_FIFO_FULL)."""
        lanes = self.port.data_width // 8
        self.port.hold_slow(sum(-(-len(f) // lanes) for f in frames) + 64)
        self.receive_frames(frames)

    def race(self, frames: list[bytes], batch: list[tuple]) -> list[Result]:
        """`frames` queued on the receive port, then the batch's host commands, one settle:
        the engine meets both at once (``Backend.race``)."""
        self.port.queue_frames(frames)
        results = run_batch(self, batch)
        self.port.settle()                  # the frames, if no call reached the NIC
        self._pump()
        return results

    # ----- the slow path (model.host.Host.receive_frame for what the NIC sends up) ------

    def _udp_input(self, src_ip: str, dgram):
        self.drops[DropCause.NO_SOCKET] += 1         # the NIC had no socket for it

    def _send_frame(self, frame: bytes):
        self.port.raw_tx(frame)

    # ----- connections: NIC slots (the connection handle of model.host.Host) ------------

    def _flow_input(self, local, remote, seg: TcpSegment) -> bool:
        conn_id = self.flows.get((local, remote))
        if conn_id is None:
            return False
        # a SYN for a live connection whose options the classifier did not walk to the end:
        # the NIC's engine processes it (SYN-ACK in SYN-SENT, a retransmitted SYN, a SYN in
        # a synchronized state) with the MSS, window scale and SACK-permitted options read here
        self._ctl(CtlOp.INJECT, conn=conn_id, seq=seg.seq, ack=seg.ack,
                  flags=HwTcpFlags.fields(seg.flags), window=seg.window, mss=seg.mss or 0,
                  **_syn_option_fields(seg))
        return True

    def _has_flow(self, local, remote) -> bool:
        return (local, remote) in self.flows

    def _tcp_key(self, local, remote) -> dict:
        return {"protocol": IpProto.TCP, "local_ip": _ip(local[0]), "local_port": local[1],
                "remote_ip": _ip(remote[0]), "remote_port": remote[1]}

    def _open_passive(self, listener: Socket, local, remote, seg: TcpSegment):
        conn_id = self._alloc_conn()
        mac = self.neighbors.get(remote[0])
        if conn_id is None or mac is None:
            self.drops[DropCause.QUEUE_FULL if mac else DropCause.NO_NEIGHBOR] += 1
            return
        key = self._tcp_key(local, remote)
        shaping = self.shaping(listener)
        self.conns[conn_id] = Conn(SOCK_STREAM, key, local, remote, listener=listener)
        self.flows[(local, remote)] = conn_id
        self._install_key(conn_id, key)
        listener.pending.append(conn_id)
        self._ctl(CtlOp.INSTALL_TCP, conn=conn_id, state=TcpState.SYN_RECEIVED,
                  iss=self._next_iss(), irs=seg.seq, window=seg.window, mss=seg.mss or 0,
                  **_syn_option_fields(seg), local_port=local[1], ip=_ip(remote[0]), port=remote[1], mac=_mac(mac),
                  **shaping)

    def _open_active(self, sock: Socket, local, remote):
        conn_id = self._alloc_conn()
        if conn_id is None:
            raise SocketError(Errno.EAGAIN, "no NIC connection slot left")
        key = self._tcp_key(local, remote)
        shaping = self.shaping(sock)
        self.conns[conn_id] = Conn(SOCK_STREAM, key, local, remote, socket=sock)
        self.flows[(local, remote)] = conn_id
        sock.conn, sock.remote, sock.connecting = conn_id, remote, True
        self._install_key(conn_id, key)
        self._grant_holders(sock)
        self._ctl(CtlOp.INSTALL_TCP, conn=conn_id, state=TcpState.SYN_SENT, iss=self._next_iss(),
                  local_port=local[1], ip=_ip(remote[0]), port=remote[1],
                  mac=_mac(self.neighbors[remote[0]]), **shaping)

    def _handshake(self, sock: Socket):
        state = self._ctl(CtlOp.READ_STATE, conn=sock.conn)
        if state.error != HwErrno.OK:
            self._ctl(CtlOp.READ_STATE, conn=sock.conn, flag=1)      # taken: reported once
            return Errno.from_number(state.error.value), False
        return None, state.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED)

    def _connected(self, sock: Socket):
        self._ctl(CtlOp.READ_STATE, conn=sock.conn, mark=1)

    def _udp_connect(self, sock: Socket):
        ip, port = sock.peer
        self._ctl(CtlOp.UDP_CONNECT, conn=sock.conn, ip=_ip(ip), port=port,
                  mac=_mac(self.neighbors.get(ip, bytes(6))))

    def _accepted(self, conn_id):
        conn = self.conns[conn_id]
        new = Socket(SOCK_STREAM, local=conn.local, conn=conn_id, remote=conn.remote,
                     was_connected=True)
        conn.socket, conn.listener = new, None
        return new, conn.remote

    def _effective_mss(self, sock: Socket) -> int:
        return int(self._ctl(CtlOp.READ_STATE, conn=sock.conn).value)      # the engine's

    def _connection_ports(self) -> set[int]:
        return {c.local[1] for c in self.conns.values() if c.kind == SOCK_STREAM and not c.closed}

    def _bind(self, sock: Socket, ip: str, port: int):
        super()._bind(sock, ip, port)
        if sock.kind == SOCK_DGRAM:
            conn_id = self._alloc_conn()
            if conn_id is None:
                raise SocketError(Errno.EMFILE, "no NIC connection slot left")
            key = {"protocol": IpProto.UDP, "local_ip": _ip(self.ip), "local_port": sock.local[1],
                   "remote_ip": 0, "remote_port": 0}
            self.conns[conn_id] = Conn(SOCK_DGRAM, key, (self.ip, sock.local[1]), None, socket=sock)
            self._install_key(conn_id, key)
            self._ctl(CtlOp.INSTALL_UDP, conn=conn_id, local_port=sock.local[1])
            sock.conn = conn_id
            self._grant_holders(sock)

    def _unbind_udp(self, sock: Socket):
        conn = self.conns[sock.conn]
        self._host(OS_PID, sock.conn, HostOp.CLOSE)
        self.port.control({"op": CtlOp.SOCKET_DELETE, "key": conn.key})
        self._free(sock.conn)
        del self.udp_ports[sock.local[1]]
        sock.conn, sock.local = None, None

    def _release(self, sock: Socket):
        """The last fd of `sock` was closed (model.host.Host._release)."""
        if sock in self.sockets:
            self.sockets.remove(sock)
        if sock.kind == SOCK_DGRAM:
            if sock.conn is not None:
                self._unbind_udp(sock)
            return
        if sock.listening:
            del self.listeners[sock.local[1]]
            for conn_id in sock.pending + sock.accept_queue:
                self.conns[conn_id].released = True
                self._host(OS_PID, conn_id, HostOp.CLOSE, abort=1)   # no RST in SYN-RECEIVED
                if conn_id in self.conns and self.conns[conn_id].closed:
                    self._free(conn_id)
            sock.pending, sock.accept_queue = [], []
            return
        if sock.conn is None:
            return
        conn = self.conns[sock.conn]
        conn.socket, conn.released = None, True
        self._host(OS_PID, sock.conn, HostOp.CLOSE, abort=int(sock.linger_abort))  # SO_LINGER {1, 0}
        if sock.conn in self.conns and conn.closed:
            self._free(sock.conn)


class Process(model_host.Process):
    """A process: the model's fd table (fork, dup, fd passing, close), whose changes the OS
    mirrors into the NIC's access table; data-path calls go to its doorbell page on the NIC."""

    def _hold(self, fd: int, sock: Socket):
        super()._hold(fd, sock)
        sock.holders[self.pid] += 1
        if sock.conn is not None and sock.holders[self.pid] == 1:
            self.host.port.control({"op": CtlOp.GRANT, "conn": sock.conn, "pid": self.pid})

    def _drop(self, fd: int, sock: Socket):
        super()._drop(fd, sock)
        sock.holders[self.pid] -= 1
        if sock.holders[self.pid] == 0:
            del sock.holders[self.pid]
            if sock.conn is not None:
                self.host.port.control({"op": CtlOp.REVOKE, "conn": sock.conn, "pid": self.pid})

    def _new_socket(self, kind: int) -> Socket:
        return Socket(kind)

    def _data_sock(self, fd, op, wdata=b"", **fields) -> Socket:
        """The socket of `fd` for a data-path call, or EBADF.

        A process may write any connection number into its doorbell page, and the NIC must
        refuse it. So when this process does not hold `fd` but another process does, the
        command goes out anyway with that socket's connection (a forged doorbell write), and
        anything but EBADF from the NIC is a protection failure.
        """
        sock = self.fds.get(fd) if isinstance(fd, int) else None
        if sock is not None:
            return sock
        self._forge(fd, op, wdata, **fields)
        raise SocketError(Errno.EBADF)

    def _forge(self, fd, op, wdata=b"", **fields):
        """The forged doorbell write of `_data_sock` for an fd this process does not hold:
        `op` on the connection of another process's fd `fd`, if some process holds one (and
        this process has no fd of its own on that connection); the NIC must answer EBADF."""
        mine = {s.conn for s in self.fds.values()}
        for other in self.host.processes.values():
            stolen = other.fds.get(fd) if isinstance(fd, int) else None
            if other is not self and stolen is not None and stolen.conn is not None:
                if stolen.conn in mine:
                    return
                rsp, data = self.host._host(self.pid, stolen.conn, op, wdata, **fields)
                if rsp.status != HwErrno.EBADF or data:
                    raise RuntimeError(f"access control failed: pid {self.pid} used connection "
                                       f"{stolen.conn} ({op.name}) and got {rsp.status.name} "
                                       f"with {len(data)} bytes")
                return

    def _close(self, fd):
        if not (isinstance(fd, int) and fd in self.fds):
            self._forge(fd, HostOp.CLOSE)               # then EBADF, as the model says
        return super()._close(fd)

    def poll(self, fds, timeout: int | None = 0):
        items = list(fds.items()) if isinstance(fds, dict) else [tuple(x) for x in fds]
        for fd, _ in items:
            if not (isinstance(fd, int) and fd in self.fds):
                self._forge(fd, HostOp.POLL)            # then POLLNVAL, as the model says
        return super().poll(items, timeout)

    def _nic(self, sock: Socket, op, wdata=b"", **fields):
        """One host command for `sock`'s connection; errno answers become SocketError."""
        rsp, data = self.host._host(self.pid, sock.conn, op, wdata, **fields)
        status = rsp.status
        if status == HwErrno.OK:
            return rsp, data
        if status == HwErrno.EAGAIN:
            raise _Again()
        raise SocketError(Errno.from_number(status.value))

    # ----- socket calls (library: data path, one host command each) -------------------------

    def _send(self, fd, data, flags, addr):
        sock = self._data_sock(fd, HostOp.WRITE, data)
        nonblock = sock.nonblock or bool(flags & MSG_DONTWAIT)
        if sock.kind == SOCK_DGRAM:
            return self._send_udp(sock, data, addr)
        if sock.conn is None or sock.listening:
            raise SocketError(Errno.EPIPE)
        try:
            rsp, _ = self._nic(sock, HostOp.WRITE, data, nonblock=nonblock)
        except _Again:
            if nonblock:
                raise SocketError(Errno.EAGAIN) from None
            raise WouldBlock() from None
        except SocketError:
            sock.connecting = False
            raise
        return int(rsp.count)

    def _udp_write(self, sock: Socket, data: bytes, dest, addr) -> int:
        fields = {"dest_valid": 1, "dest_ip": _ip(dest[0]), "dest_port": dest[1]} if addr else {}
        rsp, _ = self._nic(sock, HostOp.WRITE, data, **fields)
        return int(rsp.count)

    def _recv(self, fd, n, flags):
        sock = self._data_sock(fd, HostOp.READ, length=min(n, 0xFFFF_FFFF) if isinstance(n, int) and n >= 0 else 0)
        if not isinstance(n, int) or n < 0:
            raise SocketError(Errno.EINVAL)
        nonblock = sock.nonblock or bool(flags & MSG_DONTWAIT)
        fields = {"length": min(n, 0xFFFF_FFFF), "peek": int(bool(flags & MSG_PEEK)),
                  "waitall": int(bool(flags & MSG_WAITALL)), "nonblock": int(nonblock)}
        if sock.kind == SOCK_DGRAM and sock.conn is None:
            if nonblock:
                raise SocketError(Errno.EAGAIN)
            raise WouldBlock()
        if sock.kind == SOCK_STREAM and (sock.conn is None or sock.listening):
            raise SocketError(Errno.ENOTCONN)
        rsp, data = self.host._host(self.pid, sock.conn, HostOp.READ, b"", **fields)
        status = rsp.status
        if status == HwErrno.EAGAIN:
            if nonblock:
                raise SocketError(Errno.EAGAIN)
            raise WouldBlock()
        if status != HwErrno.OK:
            sock.connecting = False
            raise SocketError(Errno.from_number(status.value))
        if sock.kind == SOCK_DGRAM:
            if not data and not rsp.count and rsp.src_port == 0 and rsp.src_ip == 0:
                return b"", None
            return data, (_ip_str(int(rsp.src_ip)), int(rsp.src_port))
        return data, sock.remote

    def _shutdown(self, fd, how):
        sock = self._data_sock(fd, HostOp.SHUTDOWN, how=how if how in (0, 1, 2) else 0)
        return self._shutdown_socket(sock, how)

    def _shutdown_connection(self, sock: Socket, how):
        self._nic(sock, HostOp.SHUTDOWN, how=how)
        return None

    def _poll_mask(self, sock: Socket) -> int:
        if sock.kind == SOCK_DGRAM and sock.conn is None:
            return POLLOUT
        if sock.listening:
            return POLLIN if sock.accept_queue else 0
        if sock.conn is None:
            return POLLOUT | POLLHUP
        rsp, _ = self._nic(sock, HostOp.POLL)
        return int(rsp.revents)

    def getsockopt_error(self, fd: int):
        if not (isinstance(fd, int) and fd in self.fds):
            self._forge(fd, HostOp.GETERR)              # then EBADF
        sock = self._sock(fd)
        if sock.conn is None or sock.kind != SOCK_STREAM:
            return None
        rsp, _ = self._nic(sock, HostOp.GETERR)
        return None if rsp.error == HwErrno.OK else Errno.from_number(rsp.error.value)

    def getsockname(self, fd: int):
        sock = self._sock(fd)
        if sock.conn is not None and sock.kind == SOCK_STREAM:
            return self.host.conns[sock.conn].local
        return sock.local or ("0.0.0.0", 0)

    def getpeername(self, fd: int):
        sock = self._sock(fd)
        if sock.kind == SOCK_STREAM and sock.remote is not None and (sock.was_connected or not sock.connecting):
            return sock.remote
        if sock.kind == SOCK_DGRAM and sock.peer is not None:
            return sock.peer
        raise SocketError(Errno.ENOTCONN)


class _Again(Exception):
    """The NIC answered EAGAIN: nonblocking callers see EAGAIN, blocking ones wait."""
