"""The golden model (model/host.py) as the stack under test, on its virtual clock.

One `Host` (192.0.2.1) and one process make the calls. The script's side is a neighbour
with a fixed MAC; injected IPv4 packets are wrapped in Ethernet, the model's frames are
unwrapped. Time is exact: the clock only moves when the runner waits (1 tick = 1 ms, so
script times are rounded to the millisecond), and every timer fires at its own tick.

A call that raises ``WouldBlock`` stays pending and is retried, in order, after every
injected packet and every timer, and its return time is the tick it completed on.
"""

from model.constants import SOCK_DGRAM, SOCK_STREAM
from model.errors import Errno, SocketError, WouldBlock
from model.host import Host
from model.policy import DEFAULT_POLICY, Policy

from ..runner import CONSTANTS, CallHandle, Config, _const

__all__ = ["ModelBackend"]

LOCAL_MAC, REMOTE_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
O_RDWR, O_NONBLOCK = CONSTANTS["O_RDWR"], CONSTANTS["O_NONBLOCK"]
# socket options the model accepts and ignores, each because the model has no such knob:
# SO_REUSEADDR (ports are reusable as soon as the socket is released), TCP_NODELAY (no
# Nagle), SO_KEEPALIVE (no keepalive), SO_RCVBUF/SO_SNDBUF (buffers are fixed by the policy)
IGNORED_OPTIONS = {(1, 2), (6, 1), (1, 9), (1, 8), (1, 7)}


def _ms(t: float) -> int:
    return round(t * 1000)


class ModelBackend:
    name = "model"

    def __init__(self, config: Config):
        self.cfg = config
        mss = config.mtu - 40
        policy = Policy(mss=mss) if mss != DEFAULT_POLICY.mss else DEFAULT_POLICY
        self.host = Host(LOCAL_MAC, config.local_ip, policy)
        self.host.add_neighbor(config.remote_ip, REMOTE_MAC)
        self.proc = self.host.spawn()
        self.queue: list[tuple[float, bytes]] = []
        self.blocked: list[CallHandle] = []

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
        handle.returned_at = self.now()
        handle.done = True
        self._collect()
        return True

    def _do(self, handle: CallHandle) -> int:
        call, proc = handle.call, self.proc
        args = [_const(a) for a in call.args] if call.name != "poll" else call.args
        name = call.name
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
            proc.socket_of(fd)
            if (args[1], args[2]) not in IGNORED_OPTIONS:
                raise SocketError("EOPNOTSUPP", f"socket option {args[1]}/{args[2]}")
        elif name == "getsockopt":
            proc.socket_of(fd)
            if (args[1], args[2]) != (CONSTANTS["SOL_SOCKET"], CONSTANTS["SO_ERROR"]):
                raise SocketError("EOPNOTSUPP", f"socket option {args[1]}/{args[2]}")
            error = proc.getsockopt_error(fd)
            handle.outputs["optval"] = Errno(error).number if error else 0
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

    def close(self):
        pass
