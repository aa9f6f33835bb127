"""A private network namespace with a TAP or TUN device whose file descriptor we hold.

Tests that put real packets on a real interface do it only here: the namespace is created
for the test and deleted afterwards, its addresses (192.0.2.0/24, TEST-NET-1) exist nowhere
else, and the device is created *inside* the namespace (by a short-lived thread that enters
it with ``setns``), so nothing ever appears in the caller's namespace, not even briefly.

The device is not persistent: it lives as long as this process holds its file descriptor.
Everything the kernel sends through the interface is read from that descriptor, and every
frame (TAP) or IPv4 packet (TUN) written to it is received by the kernel as if from a wire.

Typical use::

    with tap_namespace(peer_ip="192.0.2.2", peer_mac=MODEL_MAC) as ns:
        ns.device.write(frame)                 # deliver a frame to Linux
        frame = ns.device.read(timeout=0.1)    # what Linux sent, or None
        ns.run_python("import socket; ...", timeout=10)

Names carry the process id and a counter, so parallel pytest workers cannot collide.
Namespaces left behind by a process that died hard (SIGKILL) are removed by the next run.
"""

import contextlib
import ctypes
import fcntl
import ipaddress
import itertools
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import threading

__all__ = [
    "unavailable_reason", "NetNamespace", "TunTapDevice", "NamespacedDevice", "tap_namespace",
    "tun_namespace",
]

PREFIX = "tcpnic"
NETNS_DIR = "/run/netns"
TUN_PATH = "/dev/net/tun"

# <linux/if_tun.h>, <sched.h>
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
# TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN: the offloads packetdrill sets, "like a
# typical Ethernet device", so the kernel hands over TSO super-segments with partial checksums
TUN_OFFLOADS = 0x1 | 0x2 | 0x4 | 0x8
CLONE_NEWNET = 0x40000000

MAX_FRAME = 65536

_counter = itertools.count()


def unavailable_reason() -> str | None:
    """Why a namespace with a TAP device cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace and a TAP device"
    if not os.path.exists(TUN_PATH):
        return f"{TUN_PATH} is absent"
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    return None


def _run(argv: list[str], timeout: float = 10, check: bool = True,
         **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def _setns(fd: int):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _reap_stale():
    """Delete namespaces of ours whose creating process no longer exists."""
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return
    for name in names:
        match = re.fullmatch(rf"{PREFIX}-(\d+)-\d+", name)
        if match is None:
            continue
        pid = int(match[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _run(["ip", "netns", "delete", name], check=False)
        except PermissionError:
            pass


class NetNamespace:
    """A named network namespace (``ip netns``), deleted by :meth:`close`.

    Parameters
    ----------
    name : str, optional
        Defaults to ``tcpnic-<pid>-<n>``, unique per process and call.

    Members
    -------
    name : str
        The namespace's name, for ``ip -n NAME`` and ``ip netns exec NAME``.
    """

    def __init__(self, name: str | None = None):
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        _reap_stale()
        self.name = name or f"{PREFIX}-{os.getpid()}-{next(_counter)}"
        self._children: list[subprocess.Popen] = []
        _run(["ip", "netns", "add", self.name])
        self._open = True
        try:
            # No IPv6 at all: no router solicitations, DAD or MLD reports on the wire.
            self.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
            self.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        return os.path.join(NETNS_DIR, self.name)

    def exec_argv(self, argv: list[str]) -> list[str]:
        """`argv` prefixed so that it runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def ip(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """Run ``ip -n NAME ARGS...``; raise with its stderr when it fails."""
        return _run(["ip", "-n", self.name, *args], timeout=timeout)

    def sysctl(self, key: str, value):
        """Set a sysctl of this namespace (``net.*`` keys are per namespace)."""
        def write():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(f"{value}\n")

        self.call_inside(write)

    def read_sysctl(self, key: str) -> str:
        def read():
            with open("/proc/sys/" + key.replace(".", "/")) as f:
                return f.read().strip()

        return self.call_inside(read)

    def run(self, argv: list[str], timeout: float, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command inside the namespace and wait at most `timeout` seconds for it."""
        return _run(self.exec_argv(argv), timeout=timeout, check=check, input=input)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start a command inside the namespace; :meth:`close` kills it if still running."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        proc = subprocess.Popen(self.exec_argv(argv), **kwargs)
        self._children.append(proc)
        return proc

    def python_argv(self, code: str, *args: str) -> list[str]:
        """This interpreter running `code` (argv[1:] = `args`), for :meth:`run`/:meth:`popen`."""
        return [sys.executable, "-I", "-c", code, *args]

    def run_python(self, code: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
        return self.run(self.python_argv(code, *args), timeout=timeout)

    def call_inside(self, fn, *args):
        """Call ``fn(*args)`` on a thread that has entered the namespace; return its result.

        Only that thread changes namespace (``setns`` is per thread), and it ends right after,
        so sockets or devices `fn` opens belong to the namespace and nothing else moves.
        """
        outcome = {}

        def body():
            try:
                with open(self.path) as target, open("/proc/thread-self/ns/net") as home:
                    _setns(target.fileno())
                    try:
                        outcome["value"] = fn(*args)
                    finally:
                        _setns(home.fileno())
            except BaseException as exc:  # re-raised on the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=body, name=f"setns-{self.name}")
        thread.start()
        thread.join(timeout=10)
        if thread.is_alive():
            raise TimeoutError(f"call inside namespace {self.name} did not return in 10 s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def snmp(self) -> str:
        """``/proc/net/snmp`` as seen inside the namespace (TCP/IP error counters)."""
        def read():
            with open("/proc/thread-self/net/snmp") as f:
                return f.read()

        return self.call_inside(read)

    def close(self):
        """Kill our children still running inside, then delete the namespace (idempotent)."""
        for proc in self._children:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(Exception):
                proc.communicate(timeout=5)
        self._children.clear()
        if getattr(self, "_open", False):
            self._open = False
            _run(["ip", "netns", "delete", self.name], check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TunTapDevice:
    """A TAP (Ethernet frames) or TUN (IPv4 packets) device created inside `ns`.

    Parameters
    ----------
    ns : NetNamespace
        Where the interface lives.
    mode : "tap" or "tun"
    ifname : str
        Interface name inside the namespace (it is alone there, so no collision).
    offload : bool
        TUN only: as packetdrill sets its TUN up (IFF_VNET_HDR and TUNSETOFFLOAD with checksum
        and TSO offloads): every read and write starts with a 10-byte ``virtio_net_hdr``.

    Members
    -------
    fd : int
        Non-blocking descriptor: one ``read`` is one frame or packet, no packet-info header.
    """

    def __init__(self, ns: NetNamespace, mode: str = "tap", ifname: str | None = None,
                 offload: bool = False):
        if mode not in ("tap", "tun"):
            raise ValueError(f"Mode must be 'tap' or 'tun', not {mode!r}")
        if offload and mode != "tun":
            raise ValueError("offload is for a TUN device only")
        self.ns, self.mode = ns, mode
        self.ifname = ifname or f"{mode}0"
        if len(self.ifname.encode()) > 15:
            raise ValueError(f"Interface name must be at most 15 bytes, not {self.ifname!r}")
        flags = (IFF_TAP if mode == "tap" else IFF_TUN) | IFF_NO_PI | (IFF_VNET_HDR if offload else 0)
        self.fd = ns.call_inside(self._create, self.ifname, flags)

    @staticmethod
    def _create(ifname: str, flags: int) -> int:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", ifname.encode(), flags))
            if flags & IFF_VNET_HDR:
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_OFFLOADS)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, timeout: float = 0.0) -> bytes | None:
        """One frame (TAP) or packet (TUN) from the kernel, or None if none came in `timeout`."""
        if self.fd < 0:
            raise ValueError("device is closed")
        try:
            return os.read(self.fd, MAX_FRAME)
        except BlockingIOError:
            pass
        if timeout <= 0:
            return None
        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return None
        try:
            return os.read(self.fd, MAX_FRAME)
        except BlockingIOError:
            return None

    def write(self, frame: bytes):
        """Hand one frame (TAP) or packet (TUN) to the kernel."""
        os.write(self.fd, frame)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class NamespacedDevice:
    """A namespace plus one configured device: what a test usually wants.

    Parameters
    ----------
    mode : "tap" or "tun"
    address : str
        Linux's side, with prefix length (``192.0.2.1/24``).
    peer_ip : str
        The far end (a model, a responder, packetdrill); on TAP it gets a permanent neighbour
        entry for `peer_mac`, so Linux never sends ARP.
    mac : str
        Linux's MAC on the TAP (fixed, so traces are reproducible).
    mtu : int
    offload : bool
        TUN only: checksum and TSO offloads, as packetdrill (see TunTapDevice).

    Members
    -------
    ns : NetNamespace
    device : TunTapDevice
    ip, mac, peer_ip, peer_mac : str
    """

    def __init__(self, mode: str = "tap", address: str = "192.0.2.1/24",
                 peer_ip: str = "192.0.2.2", peer_mac: str = "02:00:00:00:00:02",
                 mac: str = "02:00:00:00:00:01", mtu: int = 1500, name: str | None = None,
                 offload: bool = False):
        iface = ipaddress.IPv4Interface(address)
        if iface.network.is_global:
            raise ValueError(f"Address must be private or documentation-only, not {address!r}")
        self.ip, self.mac = str(iface.ip), mac
        self.peer_ip, self.peer_mac = peer_ip, peer_mac
        self.ns = NetNamespace(name)
        self.device = None
        try:
            self.device = TunTapDevice(self.ns, mode, offload=offload)
            ifname = self.device.ifname
            self.ns.sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", 1)
            if mode == "tap":
                self.ns.ip("link", "set", ifname, "address", mac)
            self.ns.ip("link", "set", ifname, "mtu", str(mtu))
            self.ns.ip("addr", "add", address, "dev", ifname)
            self.ns.ip("link", "set", ifname, "up")
            if mode == "tap":
                self.ns.ip("neigh", "replace", peer_ip, "lladdr", peer_mac, "dev", ifname,
                           "nud", "permanent")
        except BaseException:
            self.close()
            raise

    @property
    def ifname(self) -> str:
        return self.device.ifname

    def close(self):
        try:
            if self.device is not None:
                self.device.close()
        finally:
            self.ns.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tap_namespace(**kwargs) -> NamespacedDevice:
    """A namespace with a configured TAP device (context manager); see NamespacedDevice."""
    return NamespacedDevice(mode="tap", **kwargs)


def tun_namespace(**kwargs) -> NamespacedDevice:
    """A namespace with a configured TUN device (context manager); see NamespacedDevice."""
    return NamespacedDevice(mode="tun", **kwargs)
