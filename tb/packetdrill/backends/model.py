"""The golden model (model/host.py) as the stack under test, on its virtual clock.

One `Host` (192.0.2.1) and one process make the calls. The script's side is a neighbour
with a fixed MAC; injected IPv4 packets are wrapped in Ethernet, the model's frames are
unwrapped. Time is exact: the clock only moves when the runner waits (1 tick = 1 ms, so
script times are rounded to the millisecond), and every timer fires at its own tick.

A call that raises ``WouldBlock`` stays pending and is retried, in order, after every
injected packet and every timer, and its return time is the tick it completed on.

The calls beyond the model's API are made of it as the OS would: writev/sendmsg send the
iovecs' bytes as one write, readv/recvmsg read into them, epoll is poll's readiness with the
registered data word, SIOCINQ/SIOCOUTQ read the connection's queues, a NULL buffer is EFAULT
(the syscall layer's check), and %{ }% blocks get tcp_info fields from the model's TCB.
"""

from dataclasses import replace

from model.constants import SOCK_DGRAM, SOCK_STREAM
from model.tcp import State, Tcb, seq_diff
from model.errors import SocketError, WouldBlock
from model.host import Host
from model.policy import DEFAULT_POLICY, LINUX_LIKE_OOO_RANGES, LINUX_RTO, LINUX_SACK, LINUX_WSCALE

from ..grammar import Null, Struct
from ..runner import CONSTANTS, CallHandle, Config, _const

__all__ = ["ModelBackend"]

LOCAL_MAC, REMOTE_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
O_RDWR, O_NONBLOCK = CONSTANTS["O_RDWR"], CONSTANTS["O_NONBLOCK"]


TCPI_OPT_SACK, TCPI_OPT_WSCALE = 2, 4     # <linux/tcp.h>: tcpi_options' bits
# Linux's tcp_info state numbers (include/net/tcp_states.h)
LINUX_STATE = {State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
               State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
               State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11}
# socket options that read a number off the model's state (level, option)
SIOCINQ, SIOCOUTQ = CONSTANTS["SIOCINQ"], CONSTANTS["SIOCOUTQ"]


class CallError(Exception):
    """A syscall's errno that the OS raises around the model (EFAULT, epoll's ENOENT...)."""

    def __init__(self, errno: str, message: str = ""):
        super().__init__(message)
        self.errno = errno


def _ms(t: float) -> int:
    return round(t * 1000)


class ModelBackend:
    name = "model"

    def __init__(self, config: Config):
        self.cfg = config
        mss = config.mtu - 40
        # closer to Linux, as scripts are written against it: its retransmission timing (RTT
        # estimation, 1 s initial RTO), its window scale (7), SACK, and several out-of-order
        # ranges (Linux keeps every out-of-order segment; 4, as the NIC's Linux-like build)
        policy = replace(DEFAULT_POLICY, mss=mss, **LINUX_RTO, **LINUX_WSCALE, **LINUX_SACK,
                         max_ooo_ranges=LINUX_LIKE_OOO_RANGES)
        self.host = Host(LOCAL_MAC, config.local_ip, policy)
        self.host.add_neighbor(config.remote_ip, REMOTE_MAC)
        self.proc = self.host.spawn()
        self.queue: list[tuple[float, bytes]] = []
        self.blocked: list[CallHandle] = []
        self.epolls: dict[int, dict] = {}       # epoll fd -> {fd: (events, data)}
        self.next_epoll_fd = 1000

    # ----- clock and packets --------------------------------------------------------

    def start_clock(self):
        pass

    def now(self) -> float:
        return self.host.now / 1000

    def _collect(self):
        for frame in self.host.transmit():
            if frame[12:14] != b"\x08\x00":
                continue                       # ARP: not part of a packetdrill script
            total = int.from_bytes(frame[16:18], "big")
            self.queue.append((self.now(), frame[14:14 + total]))

    def _step_to(self, target: int, stop_on_packet: bool = False):
        """Advance to tick `target`, one timer at a time, retrying blocked calls."""
        while self.host.now < target:
            deadline = self.host.next_deadline()
            step = target if deadline is None or deadline > target else max(deadline, self.host.now + 1)
            self.host.advance(step - self.host.now)
            self._collect()
            self._retry()
            if stop_on_packet and self.queue:
                return

    def wait_until(self, t: float):
        self._step_to(_ms(t))
        self._collect()

    def inject(self, raw: bytes):
        frame = bytes.fromhex(LOCAL_MAC.replace(":", "")) + bytes.fromhex(REMOTE_MAC.replace(":", "")) \
            + b"\x08\x00" + raw
        self.host.receive_frame(frame + bytes(max(0, 60 - len(frame))))
        self._collect()
        self._retry()

    def pending(self) -> bool:
        self._collect()
        return bool(self.queue)

    def next_packet(self, deadline: float):
        self._collect()
        if not self.queue:
            self._step_to(max(self.host.now, _ms(deadline)), stop_on_packet=True)
        return self.queue.pop(0) if self.queue else None

    # ----- syscalls -------------------------------------------------------------------

    def start_call(self, call) -> CallHandle:
        handle = CallHandle(call)
        handle.started = self.host.now
        if self.blocked or not self._try(handle):
            self.blocked.append(handle)
        return handle

    def wait_call(self, handle: CallHandle, deadline: float) -> bool:
        if not handle.done:
            self._step_to(max(self.host.now, _ms(deadline)))
        return handle.done

    def _retry(self):
        while self.blocked and self._try(self.blocked[0]):
            self.blocked.pop(0)

    def _try(self, handle: CallHandle) -> bool:
        try:
            handle.result = self._do(handle)
        except WouldBlock:
            return False
        except SocketError as err:
            handle.result, handle.errno = -1, str(err.errno)
        except CallError as err:
            handle.result, handle.errno = -1, err.errno
        handle.returned_at = self.now()
        handle.done = True
        self._collect()
        return True

    def _do(self, handle: CallHandle) -> int:
        call, proc = handle.call, self.proc
        name = call.name
        plain = name not in ("poll", "sendmsg", "recvmsg", "writev", "readv", "epoll_ctl", "epoll_wait")
        args = [_const(a) for a in call.args] if plain else call.args
        if name in ("read", "recv", "recvfrom", "write", "send", "sendto") and args[1] is Null:
            self.proc.socket_of(call.fd)
            raise CallError("EFAULT", "NULL buffer")
        if name in ("epoll_create", "epoll_create1"):
            if name == "epoll_create" and args[0] <= 0:
                raise SocketError("EINVAL", "epoll_create size must be positive")
            self.next_epoll_fd += 1
            self.epolls[self.next_epoll_fd] = {}
            return self.next_epoll_fd
        if name in ("epoll_ctl", "epoll_wait"):
            return self._epoll(handle)
        if name == "socket":
            kind = {CONSTANTS["SOCK_STREAM"]: SOCK_STREAM, CONSTANTS["SOCK_DGRAM"]: SOCK_DGRAM}.get(args[1] & 0xF)
            if kind is None:
                raise SocketError("EINVAL", f"socket type {args[1]}")
            return proc.socket(kind)
        fd = call.fd
        if name == "bind":
            proc.bind(fd, call.address)
        elif name == "listen":
            proc.listen(fd, args[1])
        elif name == "accept":
            return proc.accept(fd)[0]
        elif name == "connect":
            proc.connect(fd, call.address)
        elif name in ("read", "recv"):
            flags = args[3] if name == "recv" and len(args) > 3 else 0
            return len(proc.recv(fd, args[2], flags))
        elif name in ("write", "send"):
            flags = args[3] if name == "send" and len(args) > 3 else 0
            return proc.send(fd, bytes(args[2]), flags)
        elif name == "sendto":
            return proc.sendto(fd, bytes(args[2]), call.address, args[3] if len(args) > 3 else 0) \
                if proc.socket_of(fd).kind == SOCK_DGRAM and len(args) > 4 and args[4] is not ... \
                else proc.send(fd, bytes(args[2]), args[3] if len(args) > 3 else 0)
        elif name == "recvfrom":
            return len(proc.recv(fd, args[2], args[3] if len(args) > 3 else 0))
        elif name in ("writev", "sendmsg"):
            lengths = args[0]
            if any(n < 0 for n in lengths):
                raise CallError("EFAULT", "NULL iov_base")
            return proc.send(fd, bytes(sum(lengths)), args[1] if name == "sendmsg" else 0)
        elif name in ("readv", "recvmsg"):
            handle.outputs["msg_flags"] = 0
            return len(proc.recv(fd, sum(max(n, 0) for n in args[0]), args[1] if name == "recvmsg" else 0))
        elif name == "ioctl":
            handle.outputs["optval"] = self._queue_bytes(fd, args[1])
        elif name in ("getsockname", "getpeername"):
            getattr(proc, name)(fd)
        elif name == "close":
            proc.close(fd)
        elif name == "shutdown":
            proc.shutdown(fd, args[1])
        elif name == "fcntl":
            sock = proc.socket_of(fd)
            if args[1] == CONSTANTS["F_GETFL"]:
                return O_RDWR | (O_NONBLOCK if sock.nonblock else 0)
            if args[1] == CONSTANTS["F_SETFL"]:
                proc.fcntl_nonblock(fd, bool(args[2] & O_NONBLOCK))
                return 0
            raise SocketError("EINVAL", f"fcntl command {args[1]}")
        elif name == "setsockopt":
            value = call.args[3][0] if isinstance(call.args[3], list) and call.args[3] else call.args[3]
            value = _const(value)
            if isinstance(value, Struct):                 # SO_LINGER's {l_onoff, l_linger}
                value = tuple(_const(v) for v in value.fields.values())
            proc.setsockopt(fd, args[1], args[2], value)
        elif name == "getsockopt":
            value = proc.getsockopt(fd, args[1], args[2])
            handle.outputs["optval"] = dict(zip(("l_onoff", "l_linger"), value)) \
                if isinstance(value, tuple) else value
        elif name == "poll":
            return self._poll(handle)
        return 0

    def _poll(self, handle: CallHandle) -> int:
        fds, timeout = handle.call.args[0], _const(handle.call.args[2])
        expired = timeout >= 0 and self.host.now >= handle.started + timeout
        ready = dict(self.proc.poll([(fd, ev) for fd, ev in fds], 0))
        if not ready and not expired and timeout != 0:
            raise WouldBlock()
        revents = [ready.get(fd, CONSTANTS["POLLNVAL"] if fd < 0 else 0) for fd, _ in fds]
        handle.outputs["revents"] = revents
        return sum(1 for r in revents if r)

    def _queue_bytes(self, fd: int, request: int) -> int:
        """SIOCINQ: bytes ready to read; SIOCOUTQ: bytes sent and not yet acknowledged or unsent."""
        sock = self.proc.socket_of(fd)
        if request not in (SIOCINQ, SIOCOUTQ):
            raise SocketError("EOPNOTSUPP", f"ioctl request {request:#x}")
        if sock.kind == SOCK_DGRAM:
            return (len(sock.datagrams[0][0]) if sock.datagrams else 0) if request == SIOCINQ else 0
        if sock.listening:
            raise SocketError("EINVAL", "a listening socket has no queues")
        tcb = sock.handle
        if tcb is None:
            return 0
        if not isinstance(tcb, Tcb):     # the RTL's connection slot: its queues are not read back
            raise SocketError("EOPNOTSUPP", f"ioctl request {request:#x} on {self.name}")
        return tcb.rcv.readable if request == SIOCINQ else len(tcb.send_queue)

    def _epoll(self, handle: CallHandle) -> int:
        call, args = handle.call, handle.call.args
        interest = self.epolls.get(call.fd)
        if interest is None:
            raise SocketError("EBADF" if call.fd not in self.proc.fds else "EINVAL", "not an epoll fd")
        if call.name == "epoll_ctl":
            op, fd, events, data = args
            self.proc.socket_of(fd)
            if op == CONSTANTS["EPOLL_CTL_ADD"]:
                if fd in interest:
                    raise CallError("EEXIST", "already registered")
                interest[fd] = (events, data)
            elif op in (CONSTANTS["EPOLL_CTL_MOD"], CONSTANTS["EPOLL_CTL_DEL"]):
                if fd not in interest:
                    raise CallError("ENOENT", "not registered")
                if op == CONSTANTS["EPOLL_CTL_DEL"]:
                    del interest[fd]
                else:
                    interest[fd] = (events, data)
            else:
                raise SocketError("EINVAL", f"epoll_ctl op {op}")
            return 0
        maxevents, timeout = _const(args[2]), _const(args[3])
        if maxevents <= 0:
            raise SocketError("EINVAL", "maxevents must be positive")
        # epoll reports EPOLLERR and EPOLLHUP whether asked or not, as poll does
        polled = dict(self.proc.poll([(fd, events & 0xFFFF) for fd, (events, _) in interest.items()], 0))
        ready = [(polled[fd], interest[fd][1]) for fd in interest if polled.get(fd)][:maxevents]
        expired = timeout >= 0 and self.host.now >= handle.started + timeout
        if not ready and not expired and timeout != 0:
            raise WouldBlock()
        handle.outputs["events"] = ready
        return len(ready)

    def tcp_info(self, fd: int) -> dict | None:
        """The tcp_info fields the model has, from its TCB (times in microseconds)."""
        try:
            sock = self.proc.socket_of(fd)
        except SocketError:
            return None
        if sock.kind != SOCK_STREAM:
            return None
        tcb = sock.tcb
        if tcb is None:
            return {"tcpi_state": LINUX_STATE[State.LISTEN if sock.listening else State.CLOSED]}
        in_flight = seq_diff(tcb.snd_nxt, tcb.snd_una)
        return {
            "tcpi_state": LINUX_STATE[tcb.state],
            "tcpi_snd_mss": tcb.eff_mss, "tcpi_rcv_mss": tcb.adv_mss, "tcpi_advmss": tcb.adv_mss,
            "tcpi_rto": tcb.rto * 1000, "tcpi_retransmits": tcb.retries, "tcpi_backoff": tcb.retries,
            "tcpi_total_retrans": sum(1 for _, kind, _ in tcb.events if kind in ("rto", "fast", "retx")),
            "tcpi_unacked": -(-in_flight // tcb.eff_mss) if in_flight else 0,
            "tcpi_notsent_bytes": tcb.unsent, "tcpi_snd_wnd": tcb.snd_wnd, "tcpi_rcv_wnd": tcb.rcv_wnd,
            "tcpi_bytes_acked": max(0, seq_diff(tcb.snd_una, tcb.iss) - 1),
            "tcpi_bytes_received": max(0, seq_diff(tcb.rcv_nxt, tcb.irs) - 1),
            # of Linux's TCPI_OPT_*: SACK (2) and WSCALE (4); no timestamps
            "tcpi_options": (TCPI_OPT_SACK if tcb.sack_ok else 0) | (TCPI_OPT_WSCALE if tcb.wscale_ok else 0),
            "tcpi_snd_wscale": tcb.snd_wscale, "tcpi_rcv_wscale": tcb.rcv_wscale,
        }

    def close(self):
        pass
