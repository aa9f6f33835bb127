"""The Linux kernel's TCP as the stack under test, as packetdrill itself runs it.

The runner creates a private network namespace with a TUN device (tb/netns.py): Linux is
192.0.2.1 on ``tun0``, the script is 192.0.2.2 beyond it. Packets the script injects are
written to the TUN descriptor; what Linux sends is read from it with a timestamp.

Syscalls are made by one worker thread that has entered the namespace with ``setns`` (so the
sockets it creates live there) and runs the calls in order; a blocking call blocks only that
thread, while the main thread keeps injecting and reading packets on time. Needs root.
"""

import ctypes
import errno
import fcntl
import os
import queue
import select
import socket
import threading
import time

from tb.netns import NamespacedDevice, unavailable_reason

from ..runner import CONSTANTS, CallHandle, Config, _const

__all__ = ["LinuxBackend"]

CLONE_NEWNET = 0x40000000
# Linux's documented defaults, set in the namespace so that what the script sees (window
# scale, initial windows) does not depend on the memory of the machine running it.
SYSCTLS = {
    "net.ipv4.tcp_rmem": "4096 131072 6291456",
    "net.ipv4.tcp_wmem": "4096 16384 4194304",
}


def _setns(path: str):
    libc = ctypes.CDLL(None, use_errno=True)
    with open(path) as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")


class LinuxBackend:
    name = "linux"

    def __init__(self, config: Config):
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"the linux backend {reason}")
        self.cfg = config
        self.dev = NamespacedDevice(mode="tun", address=f"{config.local_ip}/24",
                                    peer_ip=config.remote_ip, mtu=config.mss + 40)
        self.sockets: dict[int, socket.socket] = {}
        self.queue: list[tuple[float, bytes]] = []
        self.calls: queue.Queue = queue.Queue()
        # a byte on this pipe wakes the main thread's select when a call returns
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for key, value in SYSCTLS.items():
            self.dev.ns.sysctl(key, value)
        self.t0 = time.monotonic()
        self.worker = threading.Thread(target=self._work, name=f"pd-{self.dev.ns.name}", daemon=True)
        self.worker.start()

    # ----- clock and packets --------------------------------------------------------

    def start_clock(self):
        """Script time 0 is now."""
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _read(self, timeout: float):
        fd = self.dev.device.fd
        ready, _, _ = select.select([fd, self.wake_r], [], [], max(0.0, timeout))
        if self.wake_r in ready:
            os.read(self.wake_r, 4096)
        if fd not in ready:
            return
        while True:
            try:
                raw = os.read(fd, 65536)
            except BlockingIOError:
                return
            self.queue.append((self.now(), raw))

    def wait_until(self, t: float):
        while (remaining := t - self.now()) > 0:
            self._read(remaining)
        self._read(0)

    def inject(self, raw: bytes):
        self.dev.device.write(raw)

    def pending(self) -> bool:
        self._read(0)
        return bool(self.queue)

    def next_packet(self, deadline: float):
        self._read(0)
        while not self.queue and (remaining := deadline - self.now()) > 0:
            self._read(remaining)
        return self.queue.pop(0) if self.queue else None

    # ----- syscalls -------------------------------------------------------------------

    def start_call(self, call) -> CallHandle:
        handle = CallHandle(call)
        handle.event = threading.Event()
        self.calls.put(handle)
        return handle

    def wait_call(self, handle: CallHandle, deadline: float) -> bool:
        while not handle.event.is_set() and (remaining := deadline - self.now()) > 0:
            # keep reading the wire while we wait, so arrival times stay exact
            self._read(remaining)
        return handle.event.is_set()

    def _work(self):
        try:
            _setns(self.dev.ns.path)
        except OSError as err:
            self._fatal = err
            return
        while (handle := self.calls.get()) is not None:
            try:
                handle.result = self._do(handle)
            except OSError as err:
                handle.result = -1
                handle.errno = errno.errorcode.get(err.errno, str(err.errno))
            except Exception as err:       # a runner bug: report it as the call's result
                handle.result, handle.errno = -1, f"RUNNER-ERROR({err!r})"
            handle.returned_at = self.now()
            handle.done = True
            handle.event.set()
            os.write(self.wake_w, b"x")

    def _poll(self, handle: CallHandle) -> int:
        fds, timeout = handle.call.args[0], _int(handle.call.args[2])
        poller = select.poll()
        for fd, events in fds:
            if fd >= 0:
                poller.register(fd, events)
        ready = dict(poller.poll(timeout))
        revents = [ready.get(fd, 0) if fd >= 0 else CONSTANTS["POLLNVAL"] for fd, _ in fds]
        handle.outputs["revents"] = revents
        return sum(1 for r in revents if r)

    def close(self):
        """Unblock and close every socket, stop the worker, delete the namespace."""
        for sock in list(self.sockets.values()):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.sockets.clear()
        self.calls.put(None)
        self.worker.join(timeout=1)
        self.dev.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _sock(self, fd: int) -> socket.socket:
        sock = self.sockets.get(fd)
        if sock is None:
            raise OSError(errno.EBADF, "bad fd")
        return sock

    def _do(self, handle: CallHandle) -> int:
        call = handle.call
        a = call.args
        name = call.name
        if name == "poll":
            return self._poll(handle)
        if name == "socket":
            domain, kind, proto = (socket.AF_INET if a is ... else _int(a) for a in call.args[:3])
            sock = socket.socket(domain, kind, proto)
            self.sockets[sock.fileno()] = sock
            return sock.fileno()
        sock = self._sock(call.fd)
        if name == "bind":
            sock.bind(call.address)
        elif name == "listen":
            sock.listen(_int(call.args[1]))
        elif name == "accept":
            conn, _ = sock.accept()
            self.sockets[conn.fileno()] = conn
            return conn.fileno()
        elif name == "connect":
            code = sock.connect_ex(call.address)
            if code:
                raise OSError(code, os.strerror(code))
        elif name in ("read", "recv"):
            flags = _int(call.args[3]) if name == "recv" and len(a) > 3 else 0
            return len(sock.recv(_int(call.args[2]), flags))
        elif name in ("write", "send"):
            flags = _int(call.args[3]) if name == "send" and len(a) > 3 else 0
            return sock.send(bytes(_int(call.args[2])), flags)
        elif name == "close":
            del self.sockets[call.fd]
            sock.close()
        elif name == "shutdown":
            sock.shutdown(_int(call.args[1]))
        elif name == "fcntl":
            cmd = _int(call.args[1])
            if len(call.args) > 2:
                return fcntl.fcntl(call.fd, cmd, _int(call.args[2]))
            return fcntl.fcntl(call.fd, cmd)
        elif name == "setsockopt":
            value = call.args[3][0] if isinstance(call.args[3], list) else call.args[3]
            sock.setsockopt(_int(call.args[1]), _int(call.args[2]), _int(value))
        elif name == "getsockopt":
            handle.outputs["optval"] = sock.getsockopt(_int(call.args[1]), _int(call.args[2]))
        return 0


def _int(value) -> int:
    value = _const(value)
    if not isinstance(value, int):
        raise OSError(errno.EINVAL, f"expected a number, not {value!r}")
    return value
