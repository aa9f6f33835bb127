"""The Linux kernel's TCP as the stack under test, as packetdrill itself runs it.

The runner creates a private network namespace with a TUN device (tb/netns.py): Linux is
192.0.2.1 on ``tun0``, the script is 192.0.2.2 beyond it. Packets the script injects are
written to the TUN descriptor; what Linux sends is read from it with a timestamp.

Syscalls are made by one worker thread that has entered the namespace with ``setns`` (so the
sockets it creates live there) and runs the calls in order; a blocking call blocks only that
thread, while the main thread keeps injecting and reading packets on time. Needs root.

The TUN is set up as packetdrill sets up its own (IFF_VNET_HDR, checksum and TSO offloads),
so Linux hands over TSO super-segments (``> P. 1:4001(4000)``) with their segment size, and
an injected packet longer than ``--mss`` goes in as a GSO packet of that segment size.
Backquoted shell lines run inside the namespace (``ip netns exec``); ``%{ }%`` blocks get
the fields of ``getsockopt(TCP_INFO)``.
"""

import ctypes
import errno
import fcntl
import os
import queue
import select
import socket
import struct
import subprocess
import threading
import time

from model.checksum import internet_checksum
from tb.netns import NamespacedDevice, unavailable_reason

from ..grammar import Null, Struct
from ..runner import CONSTANTS, CallHandle, Config, _const

__all__ = ["LinuxBackend"]

CLONE_NEWNET = 0x40000000
# <linux/virtio_net.h>: struct virtio_net_hdr (little-endian on a little-endian host)
VNET_HDR = struct.Struct("<BBHHHH")      # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 = 1, 1
# struct tcp_info (<linux/tcp.h>), in order; the kernel fills as much as it knows
TCP_INFO_FIELDS = (
    ("B", "state"), ("B", "ca_state"), ("B", "retransmits"), ("B", "probes"), ("B", "backoff"),
    ("B", "options"), ("B", "wscales"), ("B", "app_limited_bits"),
    *(("I", name) for name in (
        "rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans", "fackets",
        "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv", "pmtu",
        "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss", "reordering",
        "rcv_rtt", "rcv_space", "total_retrans")),
    ("Q", "pacing_rate"), ("Q", "max_pacing_rate"), ("Q", "bytes_acked"), ("Q", "bytes_received"),
    ("I", "segs_out"), ("I", "segs_in"), ("I", "notsent_bytes"), ("I", "min_rtt"),
    ("I", "data_segs_in"), ("I", "data_segs_out"), ("Q", "delivery_rate"), ("Q", "busy_time"),
    ("Q", "rwnd_limited"), ("Q", "sndbuf_limited"), ("I", "delivered"), ("I", "delivered_ce"),
    ("Q", "bytes_sent"), ("Q", "bytes_retrans"), ("I", "dsack_dups"), ("I", "reord_seen"),
    ("I", "rcv_ooopack"), ("I", "snd_wnd"), ("I", "rcv_wnd"), ("I", "rehash"),
    ("H", "total_rto"), ("H", "total_rto_recoveries"), ("I", "total_rto_time"),
)
_libc = ctypes.CDLL(None, use_errno=True)
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
    offload = True          # TSO super-segments out, GSO packets in

    def __init__(self, config: Config):
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"the linux backend {reason}")
        self.cfg = config
        self.dev = NamespacedDevice(mode="tun", address=f"{config.local_ip}/24",
                                    peer_ip=config.remote_ip, mtu=config.mtu, offload=True)
        self.sockets: dict[int, socket.socket] = {}
        self.epolls: dict[int, tuple[select.epoll, dict]] = {}   # fd -> (epoll, fd -> data)
        self.queue: list[tuple[float, bytes, int]] = []
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
                frame = os.read(fd, VNET_HDR.size + 65536)
            except BlockingIOError:
                return
            flags, gso_type, _, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(frame)
            raw = bytearray(frame[VNET_HDR.size:])
            if flags & VNET_F_NEEDS_CSUM:
                # checksum offload: the kernel left the pseudo-header sum; finish it (pcap)
                at = csum_start + csum_offset
                raw[at:at + 2] = internet_checksum(bytes(raw[csum_start:])).to_bytes(2, "big")
            self.queue.append((self.now(), bytes(raw), gso_size if gso_type else 0))

    def wait_until(self, t: float):
        while (remaining := t - self.now()) > 0:
            self._read(remaining)
        self._read(0)

    def inject(self, raw: bytes, gso_size: int = 0):
        header = VNET_HDR.pack(0, VNET_GSO_TCPV4 if gso_size else 0, 0, gso_size, 0, 0)
        self.dev.device.write(header + raw)

    def shell(self, command: str, cwd: str, timeout: float) -> tuple[int, str]:
        """Run a script's backquoted command in the namespace (sh -c), from `cwd`."""
        try:
            done = subprocess.run(self.dev.ns.exec_argv(["sh", "-c", command]), cwd=cwd,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, f"timed out after {timeout} s"
        return done.returncode, (done.stdout + done.stderr)

    def tcp_info(self, fd: int) -> dict | None:
        """getsockopt(TCP_INFO) as packetdrill's ``tcpi_*`` names (None: not a TCP socket)."""
        sock = self.sockets.get(fd)
        if sock is None or sock.type != socket.SOCK_STREAM:
            return None
        layout = "=" + "".join(code for code, _ in TCP_INFO_FIELDS)
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, struct.calcsize(layout))
        raw = raw + bytes(struct.calcsize(layout) - len(raw))
        values = dict(zip((name for _, name in TCP_INFO_FIELDS), struct.unpack(layout, raw)))
        values["snd_wscale"], values["rcv_wscale"] = values["wscales"] & 0xF, values["wscales"] >> 4
        values["delivery_rate_app_limited"] = values["app_limited_bits"] & 1
        values["fastopen_client_fail"] = (values["app_limited_bits"] >> 1) & 3
        del values["wscales"], values["app_limited_bits"]
        return {f"tcpi_{name}": value for name, value in values.items()}

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
        for poller, _ in self.epolls.values():
            poller.close()
        self.epolls.clear()
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
        if name in ("epoll_create", "epoll_create1"):
            if name == "epoll_create" and _int(a[0]) <= 0:
                raise OSError(errno.EINVAL, "epoll_create size must be positive")
            poller = select.epoll()
            self.epolls[poller.fileno()] = (poller, {})
            return poller.fileno()
        if name in ("epoll_ctl", "epoll_wait"):
            return self._epoll(handle)
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
        elif name in ("read", "recv", "recvfrom"):
            flags = _int(call.args[3]) if name != "read" and len(a) > 3 else 0
            if a[1] is Null:
                return _libc_call("recv", call.fd, None, _int(a[2]), flags)
            return len(sock.recv(_int(call.args[2]), flags))
        elif name in ("write", "send", "sendto"):
            flags = _int(call.args[3]) if name != "write" and len(a) > 3 else 0
            if a[1] is Null:
                return _libc_call("send", call.fd, None, _int(a[2]), flags)
            if name == "sendto" and sock.type == socket.SOCK_DGRAM and len(a) > 4 and a[4] is not ...:
                return sock.sendto(bytes(_int(a[2])), flags, call.address)
            return sock.send(bytes(_int(call.args[2])), flags)
        elif name in ("writev", "sendmsg"):
            lengths = a[0]
            flags = a[1] if name == "sendmsg" else 0
            if any(n < 0 for n in lengths):       # a NULL iov_base
                return _libc_call("send", call.fd, None, -1 - min(lengths), flags)
            return sock.sendmsg([bytes(n) for n in lengths], [], flags)
        elif name in ("readv", "recvmsg"):
            lengths = a[0]
            flags = a[1] if name == "recvmsg" else 0
            buffers = [bytearray(max(n, 0)) for n in lengths]
            count, _, msg_flags, _ = sock.recvmsg_into(buffers, 0, flags)
            handle.outputs["msg_flags"] = msg_flags
            return count
        elif name == "ioctl":
            request = _int(a[1])
            if request == CONSTANTS["FIONBIO"]:
                sock.setblocking(not _int(a[2][0] if isinstance(a[2], list) else a[2]))
                return 0
            out = fcntl.ioctl(call.fd, request, bytes(4))
            handle.outputs["optval"] = struct.unpack("i", out)[0]
        elif name in ("getsockname", "getpeername"):
            getattr(sock, name)()
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
            sock.setsockopt(_int(call.args[1]), _int(call.args[2]), _optval(value))
        elif name == "getsockopt":
            want = a[3][0] if len(a) > 3 and isinstance(a[3], list) and a[3] else a[3] if len(a) > 3 else 0
            level, option = _int(call.args[1]), _int(call.args[2])
            if isinstance(want, str):
                raw = sock.getsockopt(level, option, 64)
                handle.outputs["optval"] = raw.split(b"\0")[0].decode()
            elif isinstance(want, Struct):
                raw = sock.getsockopt(level, option, 8 * len(want.fields))
                handle.outputs["optval"] = _unpack_struct(want, raw)
            else:
                handle.outputs["optval"] = sock.getsockopt(level, option)
        return 0

    def _epoll(self, handle: CallHandle) -> int:
        call, a = handle.call, handle.call.args
        entry = self.epolls.get(call.fd)
        if entry is None:
            raise OSError(errno.EBADF if call.fd not in self.sockets else errno.EINVAL, "not an epoll fd")
        poller, data = entry
        if call.name == "epoll_ctl":
            op, fd, mask, value = a
            if op == CONSTANTS["EPOLL_CTL_ADD"]:
                poller.register(fd, mask)
            elif op == CONSTANTS["EPOLL_CTL_MOD"]:
                poller.modify(fd, mask)
            elif op == CONSTANTS["EPOLL_CTL_DEL"]:
                poller.unregister(fd)
            else:
                raise OSError(errno.EINVAL, f"epoll_ctl op {op}")
            data[fd] = value
            return 0
        maxevents, timeout = _int(a[2]), _int(a[3])
        if maxevents <= 0:
            raise OSError(errno.EINVAL, "maxevents must be positive")
        ready = poller.poll(timeout / 1000 if timeout >= 0 else -1, maxevents)
        handle.outputs["events"] = [(mask, data.get(fd, fd)) for fd, mask in ready]
        return len(ready)


def _libc_call(name: str, fd: int, buffer, length: int, flags: int) -> int:
    """send/recv through libc, for a NULL buffer (Python's socket API cannot pass one)."""
    result = getattr(_libc, name)(fd, buffer, ctypes.c_size_t(length), flags)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _optval(value):
    """A setsockopt value: an int, a string (TCP_CONGESTION) or a struct of ints (SO_LINGER)."""
    value = _const(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, Struct):
        return struct.pack(f"{len(value.fields)}i", *(_int(v) for v in value.fields.values()))
    return _int(value)


def _unpack_struct(want: Struct, raw: bytes) -> dict:
    count = min(len(want.fields), len(raw) // 4)
    return dict(zip(want.fields, struct.unpack(f"{count}i", raw[:4 * count])))


def _int(value) -> int:
    value = _const(value)
    if not isinstance(value, int):
        raise OSError(errno.EINVAL, f"expected a number, not {value!r}")
    return value
