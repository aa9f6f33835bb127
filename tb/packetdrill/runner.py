"""Run a parsed packetdrill script against a backend and judge it.

The runner owns what is the same for every backend: the script clock, the translation of
the script's relative sequence numbers (inbound relative to the script's ISN, 0; outbound
relative to the stack's ISN, learned from the first SYN it sends), the script-fd to
backend-fd map, the comparison of every expected packet and syscall result, and the report
(first mismatch with expected and actual side by side, plus a pcap of the run).

A backend (tb/packetdrill/backends/) provides the stack under test through a small interface:

    now() -> float                      seconds since the backend opened
    wait_until(t)                       let time pass until `t`, keeping what the stack sends
    inject(raw[, gso_size])             one IPv4 packet to the stack (a GSO packet of
                                        `gso_size`-byte segments: only with `offload`)
    next_packet(deadline) -> (t, raw[, gso_size]) | None    the oldest packet the stack
                                        sent (a TSO super-segment with its segment size),
                                        waiting at most until `deadline`
    pending() -> bool                   whether packets are already waiting (no waiting)
    start_call(Call) -> CallHandle      start a syscall (it may block)
    wait_call(handle, deadline) -> bool whether it has returned by `deadline`
    close()
    offload                             True: TSO/GSO as packetdrill's TUN (linux)
    shell(command, cwd, timeout) -> (status, output)    optional: runs shell lines
    tcp_info(fd) -> {"tcpi_...": value} | None           optional: for %{ }% blocks

Packets are matched in order: each ``>`` line takes the next packet the stack sent. A packet
the script did not expect fails the script when it is still unconsumed at the next ``<``
line, the next syscall, or the end of the script (so an extra ACK cannot go unnoticed);
packetdrill itself is laxer here, and ``--outbound packetdrill`` keeps its rule (only a
``>`` line that takes an unscripted packet can fail). Inbound packets carry zero bytes as payload, ``win``
65535 when the line gives none, and their TS ecr is the stack's latest TS val (as
packetdrill does); the stack's own TS values are not compared, only the option's place.

Strict mode compares everything the script states. Lenient mode (``--lenient``) leaves out
the fields listed in `LENIENT_FIELDS`, each of which the model's written policy
(model/policy.py) sets differently from Linux on purpose, and names them in the report.
"""

import errno as errno_mod
import os
import time as time_mod
from dataclasses import dataclass, field
from pathlib import Path

from model import constants as C
from model.protocol import IpProto

from .grammar import (ICMP_CODES, ICMP_TYPES, Code, Flags, Null, Option, Packet, Script, Shell,
                      Skipped, Struct, Symbol, Syscall)
from .packets import Wire, build_icmp_error, build_tcp, build_udp, parse_ipv4

__all__ = ["Config", "Call", "CallHandle", "Result", "Runner", "LENIENT_FIELDS", "CONSTANTS",
           "PCAP_DIR"]

PCAP_DIR = Path(__file__).resolve().parents[2] / "build" / "packetdrill"

# Fields lenient mode does not compare, each with the reason (model/policy.py has the policy).
LENIENT_FIELDS = {
    "win": "the model advertises its free receive-buffer space (65535 bytes at most, scaled "
           "by 7 when window scaling is on); Linux advertises from tcp_rmem with its own rounding",
    "options": "the model sends MSS, sackOK and wscale 7 (on its SYN, and on its SYN-ACK when "
               "the peer offered them) and SACK blocks; Linux also sends timestamps and D-SACK "
               "blocks (the NIC's Linux-like build sends the model's options with wscale 0: "
               "its rings are 2 KiB)",
    "psh": "the model sets PSH on every data segment; Linux sets it only where a write's data "
           "ends (and on its own push heuristics), so flags are compared without P",
    "window-update": "after a read the model sends a window update once the window grew by an "
                     "MSS (its buffer is 64 KiB); Linux's larger buffer rarely "
                     "needs one, so a model ACK that only raises the window is passed over",
    "time": "the model has no delayed ACK, a 200 ms persist timer and its own TIME-WAIT "
            "(the model's and the NIC's runs estimate the RTO as Linux does, `LINUX_RTO`); "
            "Linux's timers differ, so only the order of packets and results is compared, not "
            "when they happen",
}

# Linux's values (x86-64), so scripts read as strace output; shutdown, poll and message flags
# are model.constants' (C), protocol numbers model.protocol's.
CONSTANTS = {
    "AF_INET": 2, "PF_INET": 2, "SOCK_STREAM": 1, "SOCK_DGRAM": 2,
    "IPPROTO_TCP": IpProto.TCP.value, "IPPROTO_UDP": IpProto.UDP.value, "IPPROTO_IP": 0,
    "SOL_SOCKET": C.SOL_SOCKET, "SOL_TCP": C.SOL_TCP, "SO_REUSEADDR": C.SO_REUSEADDR,
    "SO_ERROR": C.SO_ERROR, "SO_SNDBUF": C.SO_SNDBUF, "SO_RCVBUF": C.SO_RCVBUF,
    "SO_KEEPALIVE": C.SO_KEEPALIVE, "SO_LINGER": C.SO_LINGER,
    "SO_REUSEPORT": 15, "TCP_NODELAY": C.TCP_NODELAY, "F_GETFL": 3, "F_SETFL": 4, "O_RDONLY": 0,
    "O_WRONLY": 1, "O_RDWR": 2, "O_NONBLOCK": 0x800,
    "SHUT_RD": C.SHUT_RD, "SHUT_WR": C.SHUT_WR, "SHUT_RDWR": C.SHUT_RDWR,
    "POLLIN": C.POLLIN, "POLLPRI": C.POLLPRI, "POLLOUT": C.POLLOUT, "POLLERR": C.POLLERR,
    "POLLHUP": C.POLLHUP, "POLLNVAL": C.POLLNVAL, "POLLRDNORM": 0x40, "POLLWRNORM": 0x100,
    "POLLRDHUP": 0x2000,
    "MSG_PEEK": C.MSG_PEEK, "MSG_DONTWAIT": C.MSG_DONTWAIT, "MSG_WAITALL": C.MSG_WAITALL,
    "MSG_NOSIGNAL": 0x4000,
    # <netinet/tcp.h>
    "TCP_MAXSEG": C.TCP_MAXSEG, "TCP_CORK": 3, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 6,
    "TCP_SYNCNT": 7, "TCP_LINGER2": 8, "TCP_DEFER_ACCEPT": 9, "TCP_WINDOW_CLAMP": 10,
    "TCP_INFO": 11, "TCP_QUICKACK": 12, "TCP_CONGESTION": 13, "TCP_USER_TIMEOUT": 18,
    "TCP_FASTOPEN": 23, "TCP_NOTSENT_LOWAT": 25, "TCP_FASTOPEN_CONNECT": 30,
    "TCP_FASTOPEN_NO_COOKIE": 34, "TCP_INQ": 36, "TCP_CM_INQ": 36, "TCP_TX_DELAY": 37,
    # <netinet/in.h>, IP_* at SOL_IP (= IPPROTO_IP)
    "SOL_IP": 0, "IP_TOS": 1, "IP_TTL": 2, "IP_HDRINCL": 3, "IP_OPTIONS": 4, "IP_RECVOPTS": 6,
    "IP_MTU_DISCOVER": 10, "IP_RECVERR": 11, "IP_RECVTTL": 12, "IP_RECVTOS": 13, "IP_MTU": 14,
    "IP_FREEBIND": 15, "IP_TRANSPARENT": 19, "IP_BIND_ADDRESS_NO_PORT": 24,
    "IP_PMTUDISC_DONT": 0, "IP_PMTUDISC_WANT": 1, "IP_PMTUDISC_DO": 2, "IP_PMTUDISC_PROBE": 3,
    "INADDR_ANY": 0, "AF_UNSPEC": 0, "AF_INET6": 10, "PF_INET6": 10,
    # <sys/socket.h>
    "SO_DEBUG": 1, "SO_TYPE": 3, "SO_DONTROUTE": 5, "SO_BROADCAST": 6, "SO_OOBINLINE": 10,
    "SO_PRIORITY": 12, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19, "SO_RCVTIMEO": 20,
    "SO_SNDTIMEO": 21, "SO_ACCEPTCONN": 30, "SO_SNDBUFFORCE": 32, "SO_RCVBUFFORCE": 33,
    "SO_MARK": 36, "SO_TIMESTAMPING": 37, "SO_PROTOCOL": 38, "SO_DOMAIN": 39,
    "SO_MAX_PACING_RATE": 47, "SO_INCOMING_CPU": 49, "SO_ZEROCOPY": 60,
    "SOCK_NONBLOCK": 0x800, "SOCK_CLOEXEC": 0x80000, "SOCK_RAW": 3,
    "MSG_OOB": 0x1, "MSG_DONTROUTE": 0x4, "MSG_CTRUNC": 0x8, "MSG_TRUNC": 0x20, "MSG_EOR": 0x80,
    "MSG_ERRQUEUE": 0x2000, "MSG_MORE": 0x8000, "MSG_ZEROCOPY": 0x4000000,
    "MSG_FASTOPEN": 0x20000000, "SCM_RIGHTS": 1, "SCM_TIMESTAMPING": 37,
    # <sys/ioctl.h>, <linux/sockios.h>, <fcntl.h>
    "SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411,
    "SIOCOUTQNSD": 0x894B, "FIONBIO": 0x5421, "F_GETFD": 1, "F_SETFD": 2, "FD_CLOEXEC": 1,
    "O_CLOEXEC": 0x80000,
    # <sys/epoll.h>
    "EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8, "EPOLLHUP": 0x10,
    "EPOLLRDNORM": 0x40, "EPOLLWRNORM": 0x100, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28,
    "EPOLLONESHOT": 1 << 30, "EPOLLET": 1 << 31, "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2,
    "EPOLL_CTL_MOD": 3, "EPOLL_CLOEXEC": 0x80000,
}
# errno names are values too (getsockopt(..., SO_ERROR, [ECONNREFUSED], [4]) = 0): Linux's
CONSTANTS.update({name: number for number, name in errno_mod.errorcode.items()
                  if name not in CONSTANTS})

SYSCALLS = ("socket", "bind", "listen", "accept", "connect", "read", "write", "recv", "send",
            "close", "shutdown", "fcntl", "setsockopt", "getsockopt", "poll", "sendto",
            "recvfrom", "sendmsg", "recvmsg", "writev", "readv", "ioctl", "epoll_create",
            "epoll_create1", "epoll_ctl", "epoll_wait", "getsockname", "getpeername")
FD_RESULT = ("socket", "accept", "epoll_create", "epoll_create1")
# the argument positions that are fds (mapped from the script's numbers to the backend's)
FD_ARGS = {"epoll_ctl": (0, 2)}
NONBLOCKING_WAIT = 0.05     # seconds a call written without "..." may take on a busy machine


@dataclass
class Config:
    local_ip: str = "192.0.2.1"      # the stack under test
    remote_ip: str = "192.0.2.2"     # the script's side
    local_port: int = 8080           # bind() and the port inbound connections go to
    remote_port: int = 40123         # the script's port for connections it opens
    connect_port: int = 8080         # the script's port that connect() reaches
    tolerance_usecs: int = 4000
    mss: int | None = None           # packetdrill's --mss: the GSO segment size of injected
                                     # TCP packets (a longer one reaches the stack as a
                                     # super-segment of that many bytes per segment)
    mtu: int = 1500                  # the path's MTU (the TUN's; the model's MSS is mtu - 40)
    lenient: bool = False
    pcap_dir: Path = PCAP_DIR
    any_time_limit: float = 5.0      # how long a "*" expectation waits
    shell_timeout: float = 30.0      # how long a backquoted shell line may run
    defines: dict = field(default_factory=dict)   # -D NAME[=VALUE]
    outbound: str = "strict"         # "strict": an unscripted outbound packet fails the script
                                     # at the next < line, syscall or the end; "packetdrill":
                                     # only a > line that takes it can fail (packetdrill's rule)


@dataclass
class Call:
    """One syscall for a backend: `args` evaluated, fds already the backend's own."""
    name: str
    args: list
    fd: int | None = None            # the backend fd of the first argument, if an fd
    address: tuple | None = None     # bind/connect: the address the runner chose


@dataclass
class CallHandle:
    call: Call
    done: bool = False
    result: int = 0
    errno: str | None = None
    outputs: dict = field(default_factory=dict)     # optval / revents, for comparison
    returned_at: float | None = None


@dataclass
class Result:
    path: str
    backend: str
    passed: bool
    lenient: bool
    failure: str = ""
    skipped: list = field(default_factory=list)
    not_compared: list = field(default_factory=list)
    pcap: str = ""
    events: int = 0
    passed_over: int = 0


    def report(self) -> str:
        mode = "lenient" if self.lenient else "strict"
        lines = [f"{'PASS' if self.passed else 'FAIL'} {self.path} [{self.backend}, {mode}]"]
        if self.not_compared:
            lines.append("  not compared (lenient): " + ", ".join(self.not_compared))
        if self.passed_over:
            lines.append(f"  passed over {self.passed_over} window-update ACK(s) (lenient)")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} line(s) not executed by this runner:")
            lines += [f"    line {s.line} ({s.kind}): {s.text.splitlines()[0][:70]}" for s in self.skipped]
        if self.failure:
            lines += ["  " + line for line in self.failure.splitlines()]
        if self.pcap:
            lines.append(f"  pcap: {self.pcap}")
        return "\n".join(lines)


class Mismatch(Exception):
    pass


# the script's -D NAME=VALUE definitions, read by _const (one script runs at a time per process)
_DEFINES: dict = {}


def _const(value):
    if isinstance(value, Symbol):
        if value.name in _DEFINES:
            text = _DEFINES[value.name]
            try:
                return int(text, 0)
            except (TypeError, ValueError):
                return CONSTANTS.get(text, text)
        if value.name not in CONSTANTS:
            raise Mismatch(f"unknown constant {value.name}")
        return CONSTANTS[value.name]
    if isinstance(value, Flags):
        total = 0
        for term in value.terms:
            total |= _const(term)
        return total
    return value


def _seq(value: int) -> int:
    return value & 0xFFFFFFFF


def _split(wire: Wire, size: int) -> tuple[Wire, Wire]:
    """A super-segment cut after `size` payload bytes (as TSO segments it)."""
    import dataclasses
    head = dataclasses.replace(wire, flags="".join(f for f in wire.flags if f not in "PF"),
                               payload=wire.payload[:size], gso_size=wire.gso_size)
    tail = dataclasses.replace(wire, flags="".join(f for f in wire.flags if f != "W"),
                               seq=_seq(wire.seq + size), payload=wire.payload[size:],
                               gso_size=wire.gso_size if wire.length - size > wire.gso_size else 0)
    return head, tail


def _join(first: Wire, second: Wire) -> Wire:
    """Two contiguous segments as one super-segment (the flags of both: PSH, FIN of the last)."""
    import dataclasses
    flags = "".join(f for f in "SFRPUEW." if f in first.flags or f in second.flags)
    return dataclasses.replace(first, flags=flags, payload=first.payload + second.payload,
                               gso_size=first.gso_size or first.length)


class Runner:
    def __init__(self, script: Script, backend, config: Config | None = None):
        self.script, self.backend = script, backend
        self.cfg = config or Config()
        opts = script.options
        if "tolerance_usecs" in opts:
            self.cfg.tolerance_usecs = int(opts["tolerance_usecs"])
        self.tol = self.cfg.tolerance_usecs / 1e6
        self.fds: dict[int, int] = {}              # script fd -> backend fd
        self.kinds: dict[int, int] = {}            # script fd -> SOCK_STREAM / SOCK_DGRAM
        self.local_isn: int | None = None
        self.remote_isn = 0
        self.lport: int | None = None              # the TCP connection's ports
        self.rport: int | None = None
        self.udp_lport: int | None = None
        self.udp_rport: int | None = None
        self.last_tsval = 0
        self.trace: list[tuple[float, str, bytes]] = []   # (time, "<"/">", raw) for the pcap
        self.pending: tuple[Syscall, CallHandle, float, float] | None = None
        self.last_out: Wire | None = None
        self.passed_over = 0                       # lenient: model window updates skipped
        self.held: list[tuple[float, Wire]] = []   # the rest of a split super-segment, or a
                                                   # segment read ahead while coalescing
        self.socket_under_test: int | None = None  # the script fd %{ }% blocks read tcp_info of
        self.code_env: dict = {}                   # %{ }% blocks share their variables
        self.skipped: list[Skipped] = []
        self.offload = getattr(backend, "offload", False)
        _DEFINES.clear()
        _DEFINES.update(script.defines)

    # ----- the script clock ----------------------------------------------------------

    def _window(self, ev, base: float) -> tuple[float, float] | None:
        t = ev.time
        if t.kind == "any":
            return None
        origin = base if t.kind == "rel" else 0.0
        hi = t.end if t.end is not None else t.start
        return origin + t.start, origin + hi

    # ----- main loop ------------------------------------------------------------------

    def run(self) -> Result:
        result = Result(self.script.path, self.backend.name, False, self.cfg.lenient,
                        skipped=self.skipped,
                        not_compared=sorted(LENIENT_FIELDS) if self.cfg.lenient else [])
        base = 0.0
        self.backend.start_clock()
        try:
            for ev in self.script.events:
                if isinstance(ev, Skipped):
                    self.skipped.append(ev)
                    continue
                result.events += 1
                try:
                    base = self._event(ev, base)
                except Mismatch as err:
                    kind = {Packet: "packet", Shell: "shell command", Code: "Python block"}.get(
                        type(ev), "syscall")
                    raise Mismatch(f"line {ev.line}: {kind} {ev.text.splitlines()[0]}\n{err}") from None
            self._finish_pending(final=True)
            self._no_unexpected("at the end of the script")
            result.passed = True
        except Mismatch as err:
            result.failure = str(err)
        finally:
            result.pcap = self._write_pcap()
            result.passed_over = self.passed_over
        return result

    def _event(self, ev, base: float) -> float:
        window = self._window(ev, base)
        if isinstance(ev, Packet) and ev.direction == ">":
            return self._expect(ev, window, base)
        start = window[0] if window else self.backend.now()
        self._wait(start)
        self._check_pending(start)
        if isinstance(ev, Packet):
            self._no_unexpected(f"before line {ev.line}")
            self._inject(ev)
            return start
        if isinstance(ev, Shell):
            return self._shell(ev, start)
        if isinstance(ev, Code):
            return self._code(ev, start)
        return self._syscall(ev, start, base)

    # ----- shell lines and Python blocks ----------------------------------------------

    def _shell(self, ev: Shell, start: float) -> float:
        """Run the command in the stack's namespace, from the script's folder; the next
        relative time counts from when it ended (its own run time is not charged to it)."""
        run = getattr(self.backend, "shell", None)
        if run is None:
            self.skipped.append(Skipped(ev.line, "shell", ev.text))
            return start
        cwd = str(Path(self.script.path).resolve().parent)
        code, output = run(ev.command, cwd, self.cfg.shell_timeout)
        if code != 0:
            raise Mismatch(f"the command exited with status {code}" + (f":\n{output.rstrip()}" if output else ""))
        return max(start, self.backend.now())

    def _code(self, ev: Code, start: float) -> float:
        """Run the block with the tcp_info fields of the socket under test (``tcpi_*``)."""
        info_of = getattr(self.backend, "tcp_info", None)
        fd = self.fds.get(self.socket_under_test) if self.socket_under_test is not None else None
        info = info_of(fd) if info_of is not None and fd is not None else None
        if info is None:
            why = "no socket yet" if fd is None else f"tcp_info is not supported on {self.backend.name}"
            self.skipped.append(Skipped(ev.line, "python", f"{ev.text} ({why})"))
            return start
        self.code_env.update(info)
        try:
            exec(compile(ev.source, f"<line {ev.line}>", "exec"), self.code_env)
        except AssertionError as err:
            import traceback
            frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == f"<line {ev.line}>"]
            where = frames[-1].lineno if frames else 1
            statement = ev.source.splitlines()[where - 1].strip()
            names = sorted(n for n in info if n in statement)
            values = ", ".join(f"{n}={info[n]}" for n in names)
            raise Mismatch(f"  assertion failed: {statement}" + (f"  ({err})" if str(err) else "")
                           + (f"\n  with {values}" if values else "")) from None
        except Exception as err:
            raise Mismatch(f"  the block raised {err!r}") from None
        return start

    def _wait(self, t: float):
        self.backend.wait_until(t)

    # ----- packets --------------------------------------------------------------------

    def _inject(self, ev: Packet):
        cfg = self.cfg
        tos = ev.ip.get("tos", 0)
        if ev.ip.get("ecn"):
            tos = (tos & ~3) | {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3, "ect01": 2}[ev.ip["ecn"]]
        ip = {"tos": tos, "ttl": ev.ip.get("ttl", 64)}
        if ev.proto == "icmp":
            raw = self._icmp(ev)
            self.trace.append((self.backend.now(), "<", raw))
            self.backend.inject(raw)
            return
        if ev.proto == "udp":
            if self.udp_lport is None:
                raise Mismatch("a UDP packet before any UDP socket was bound or connected")
            raw = build_udp(cfg.remote_ip, cfg.local_ip, self.udp_rport, self.udp_lport,
                            bytes(ev.length))
        else:
            if self.lport is None:
                if "S" in ev.flags and "." not in ev.flags:
                    self.lport, self.rport = cfg.local_port, cfg.remote_port
                else:
                    raise Mismatch("a TCP packet before any connection exists (no SYN yet)")
            local_isn = self.local_isn or 0
            ack = _seq(local_isn + ev.ack) if ev.ack is not None else 0
            options = []
            for opt in ev.options:
                if opt.kind == "TS":
                    opt = Option("TS", (opt.values[0], self.last_tsval if opt.values[1] else 0))
                elif opt.kind == "sack":
                    opt = Option("sack", tuple((_seq(local_isn + a), _seq(local_isn + b))
                                               for a, b in opt.values))
                options.append(opt)
            win = ev.win if ev.win is not None else 65535
            mss = cfg.mss
            if mss and ev.length > mss and not self.offload:
                # no GSO on this backend: the segments the super-segment stands for, in order
                for offset in range(0, ev.length, mss):
                    size = min(mss, ev.length - offset)
                    last = offset + size == ev.length
                    flags = ev.flags if last else ev.flags.replace("P", "").replace("F", "")
                    raw = build_tcp(cfg.remote_ip, cfg.local_ip, self.rport, self.lport, flags,
                                    _seq(self.remote_isn + ev.seq + offset), ack, win, options,
                                    bytes(size), ev.urg or 0, **ip)
                    self.trace.append((self.backend.now(), "<", raw))
                    self.backend.inject(raw)
                return
            raw = build_tcp(cfg.remote_ip, cfg.local_ip, self.rport, self.lport, ev.flags,
                            _seq(self.remote_isn + ev.seq), ack, win, options,
                            bytes(ev.length), ev.urg or 0, **ip)
            if mss and ev.length > mss:
                self.trace.append((self.backend.now(), "<", raw))
                self.backend.inject(raw, gso_size=mss)
                return
        self.trace.append((self.backend.now(), "<", raw))
        self.backend.inject(raw)

    def _icmp(self, ev: Packet) -> bytes:
        """An ICMP error about the connection's outbound segment ``[SEQ:END(LEN)]``."""
        cfg = self.cfg
        if self.lport is None:
            raise Mismatch("an ICMP line before any TCP connection exists")
        icmp_type, code = ICMP_TYPES[ev.icmp[0]], ICMP_CODES[ev.icmp[1]]
        offending = build_tcp(cfg.local_ip, cfg.remote_ip, self.lport, self.rport, ".",
                              _seq((self.local_isn or 0) + ev.seq), _seq(self.remote_isn + 1),
                              0, [], bytes(ev.length))
        return build_icmp_error(cfg.remote_ip, cfg.local_ip, icmp_type, code, offending[:28],
                                ev.win or 0)

    def _next_wire(self, deadline: float, expected: Packet | None = None):
        if self.held:
            return self.held.pop(0)
        while True:
            got = self.backend.next_packet(deadline)
            if got is None:
                return None
            t, raw, *gso = got
            self.trace.append((t, ">", raw))
            wire = parse_ipv4(raw)
            if wire is None:
                continue
            if gso and gso[0] and wire.length > gso[0]:
                wire.gso_size = gso[0]
            last, self.last_out = self.last_out, wire
            if self.cfg.lenient and self._window_update(wire, last) and \
                    (expected is None or self._compare(expected, wire, None, t)):
                self.passed_over += 1
                continue
            return t, wire

    @staticmethod
    def _window_update(wire: Wire, last: Wire | None) -> bool:
        """A pure ACK that repeats the previous segment's SEQ and ACK and only raises the window."""
        return (last is not None and wire.proto == last.proto == "tcp" and wire.flags == "."
                and not wire.payload and wire.ack == last.ack and wire.win > last.win
                and wire.seq == _seq(last.seq + len(last.payload) + ("S" in last.flags)
                                     + ("F" in last.flags)))

    def _no_unexpected(self, where: str):
        if self.cfg.outbound == "packetdrill":
            return
        while self.held or self.backend.pending():
            got = self._next_wire(self.backend.now())
            if got is None:
                return
            t, wire = got
            raise Mismatch(f"unexpected packet {where} at {t:.6f}: the script expects none here\n"
                           + self._describe_actual(wire))

    def _expect(self, ev: Packet, window, base: float) -> float:
        if window is None:
            deadline = max(base, self.backend.now()) + self.cfg.any_time_limit
        elif self.cfg.lenient:
            deadline = window[1] + max(self.tol, self.cfg.any_time_limit)
        else:
            deadline = window[1] + self.tol
        self._check_pending(min(self.backend.now(), deadline))
        got = self._next_wire(deadline, ev)
        if got is None:
            raise Mismatch(f"expected packet not seen by {deadline:.6f}\n"
                           + self._table(ev, None, window, None))
        t, wire = got
        if ev.proto == wire.proto == "tcp" and wire.length != ev.length and ev.length:
            wire = self._resegment(ev, wire, deadline, t)
        if "S" in wire.flags and wire.proto == "tcp" and self.local_isn is None:
            self.local_isn = wire.seq
        if wire.proto == "tcp":
            if self.lport is None and "S" in wire.flags:
                self.lport, self.rport = wire.sport, wire.dport
            for opt in wire.options:
                if opt.kind == "TS":
                    self.last_tsval = opt.values[0]
        elif self.udp_lport is None:
            self.udp_lport, self.udp_rport = wire.sport, wire.dport
        bad = self._compare(ev, wire, window, t)
        if bad:
            raise Mismatch("packet differs in " + ", ".join(bad) + "\n"
                           + self._table(ev, wire, window, t, bad))
        return t

    def _resegment(self, ev: Packet, wire: Wire, deadline: float, t: float) -> Wire:
        """Make the segment the script expects from what the stack sent, as a wire would.

        A TSO super-segment (linux) longer than the line is cut at a segment boundary, the
        rest kept for the next ``>`` line (PSH and FIN only on the last piece, CWR only on
        the first, as the NIC's segmentation does). On a backend without segmentation offload
        (model, rtl), full segments that follow one another (contiguous, same ACK) are joined
        into the super-segment the line expects."""
        if wire.length > ev.length and wire.gso_size and ev.length % wire.gso_size == 0:
            head, tail = _split(wire, ev.length)
            self.held.insert(0, (t, tail))
            return head
        if wire.length < ev.length and not self.offload:
            while wire.length < ev.length and not set("SFR") & set(wire.flags):
                got = self._next_wire(deadline)
                if got is None:
                    break
                t, more = got
                if not (more.proto == "tcp" and (more.sport, more.dport) == (wire.sport, wire.dport)
                        and more.seq == _seq(wire.seq + wire.length) and more.ack == wire.ack
                        and more.length and not set("SR") & set(more.flags)):
                    self.held.insert(0, got)
                    break
                wire = _join(wire, more)
        return wire

    def _compare(self, ev: Packet, wire: Wire, window, t: float) -> list[str]:
        bad = []
        cfg = self.cfg
        if ev.proto != wire.proto:
            return ["protocol"]
        if (wire.src, wire.dst) != (cfg.local_ip, cfg.remote_ip):
            bad.append("addresses")
        if wire.proto == "udp":
            if (wire.sport, wire.dport) != (self.udp_lport, self.udp_rport):
                bad.append("ports")
            if wire.length != ev.length:
                bad.append("length")
        else:
            if (wire.sport, wire.dport) != (self.lport, self.rport):
                bad.append("ports")
            ignore = {"P"} if cfg.lenient else set()
            if set(wire.flags) - ignore != set(ev.flags) - ignore:
                bad.append("flags")
            if _seq(wire.seq - (self.local_isn or 0)) != _seq(ev.seq):
                bad.append("seq")
            if ev.ack is not None and _seq(wire.ack - self.remote_isn) != _seq(ev.ack):
                bad.append("ack")
            if wire.length != ev.length:
                bad.append("length")
            if ev.win is not None and wire.win != ev.win and not cfg.lenient:
                bad.append("win")
            if ev.urg is not None and wire.urg != ev.urg:
                bad.append("urg")
            if ev.options is not None and not cfg.lenient and \
                    not self._options_match(ev.options, wire.options):
                bad.append("options")
        if "tos" in ev.ip and wire.tos >> 2 != ev.ip["tos"] >> 2:
            bad.append("tos")
        if "ttl" in ev.ip and wire.ttl != ev.ip["ttl"]:
            bad.append("ttl")
        ecn = ev.ip.get("ecn")
        if ecn and not (wire.tos & 3 in (1, 2) if ecn == "ect01" else
                        wire.tos & 3 == {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}[ecn]):
            bad.append("ecn")
        if window is not None and not cfg.lenient and \
                not window[0] - self.tol <= t <= window[1] + self.tol:
            bad.append("time")
        return bad

    def _options_match(self, expected: list[Option], actual: list[Option]) -> bool:
        if len(expected) != len(actual):
            return False
        for exp, act in zip(expected, actual):
            if exp.kind != act.kind:
                return False
            if exp.kind == "TS":
                continue            # packetdrill does not check the stack's own TS values
            if exp.kind == "sack":
                rel = tuple((_seq(a - self.remote_isn), _seq(b - self.remote_isn)) for a, b in act.values)
                if rel != tuple((_seq(a), _seq(b)) for a, b in exp.values):
                    return False
            elif exp.values != act.values:
                return False
        return True

    def _describe_actual(self, wire: Wire) -> str:
        return self._table(None, wire, None, None)

    def _table(self, ev: Packet | None, wire: Wire | None, window, t, bad=()) -> str:
        isn = self.local_isn or 0
        rows = [("field", "expected", "actual")]

        def rel_abs(value, origin):
            return f"{_seq(value - origin)} (abs {value})"

        def opts(options):
            return "<...>" if options is None else "<" + ", ".join(map(str, options)) + ">"

        exp = {}
        if ev is not None:
            exp = {"proto": ev.proto, "flags": ev.flags or "-", "length": str(ev.length),
                   "seq": f"{ev.seq} (abs {_seq(isn + ev.seq)})",
                   "ack": "-" if ev.ack is None else f"{ev.ack} (abs {_seq(self.remote_isn + ev.ack)})",
                   "win": "(any)" if ev.win is None else str(ev.win),
                   "options": opts(ev.options),
                   "time": "*" if window is None else
                   f"{window[0]:.6f}..{window[1]:.6f} +-{self.tol:.6f}"}
        act = {}
        if wire is not None:
            act = {"proto": wire.proto, "flags": wire.flags or "-", "length": str(wire.length),
                   "seq": rel_abs(wire.seq, isn), "ack": rel_abs(wire.ack, self.remote_isn)
                   if "." in wire.flags else "-", "win": str(wire.win),
                   "options": opts(wire.options), "time": "" if t is None else f"{t:.6f}",
                   "ports": f"{wire.sport} > {wire.dport}"}
        for key in ("proto", "flags", "seq", "ack", "win", "length", "options", "time", "ports"):
            if key in exp or key in act:
                mark = "*" if key in bad else " "
                rows.append((f"{mark}{key}", exp.get(key, ""), act.get(key, "")))
        width = max(len(r[1]) for r in rows) + 2
        return "\n".join(f"  {a:9} {b:{width}} {c}" for a, b, c in rows)

    # ----- syscalls -------------------------------------------------------------------

    def _make_call(self, ev: Syscall) -> Call:
        if ev.name not in SYSCALLS:
            raise Mismatch(f"syscall {ev.name}() is not supported by this runner "
                           f"(supported: {', '.join(SYSCALLS)})")
        args = list(ev.args)
        call = Call(ev.name, args)
        no_fd = ("socket", "poll", "epoll_create", "epoll_create1")
        if ev.name not in no_fd:
            if not args:
                raise Mismatch(f"{ev.name}() needs an fd")
            call.fd = self._backend_fd(args[0])
        kind = self.kinds.get(_const(args[0])) if args and ev.name not in no_fd else None
        if ev.name in ("sendmsg", "recvmsg"):
            msg = args[1] if len(args) > 1 else None
            if not isinstance(msg, Struct) or not isinstance(msg.fields.get("msg_iov"), list):
                raise Mismatch(f"{ev.name}() needs a msghdr {{msg_name(...)=..., msg_iov(N)=[...], msg_flags=0}}")
            call.args = [self._iov_lengths(msg.fields["msg_iov"]),
                         _const(args[2]) if len(args) > 2 else 0, msg.fields.get("msg_control")]
        elif ev.name in ("writev", "readv"):
            if len(args) < 2 or not isinstance(args[1], list):
                raise Mismatch(f"{ev.name}() needs a list of iovecs [{{..., LEN}}, ...]")
            call.args = [self._iov_lengths(args[1])]
        elif ev.name == "epoll_ctl":
            if len(args) < 3:
                raise Mismatch("epoll_ctl(EPFD, OP, FD, {events=..., fd=FD}) needs four arguments")
            event = args[3] if len(args) > 3 else Null
            mask, data = self._epoll_event(event) if isinstance(event, Struct) else (0, 0)
            call.args = [_const(args[1]), self._backend_fd(args[2]), mask, data]
        elif ev.name in ("sendto", "recvfrom"):
            call.address = (self.cfg.remote_ip, self.udp_rport or self.cfg.connect_port)
        if ev.name == "bind":
            call.address = (self.cfg.local_ip, self.cfg.local_port)
            if kind == 2:
                self.udp_lport = self.cfg.local_port
                self.udp_rport = self.udp_rport or self.cfg.remote_port
        elif ev.name == "connect":
            call.address = (self.cfg.remote_ip, self.cfg.connect_port)
            if kind == 2:
                self.udp_rport = self.cfg.connect_port
        elif ev.name == "poll":
            if not args or not isinstance(args[0], list):
                raise Mismatch("poll() needs a list of {fd=..., events=...}")
            call.args = [[(self.fds.get(_const(s.fields["fd"]), -1), _const(s.fields.get("events", 0)))
                          for s in args[0]], *args[1:]]
        return call

    def _backend_fd(self, value) -> int:
        script_fd = _const(value)
        return self.fds.get(script_fd, 10_000 + script_fd if isinstance(script_fd, int) else -1)

    @staticmethod
    def _iov_lengths(iovecs: list) -> list[int]:
        """An iovec is ``{..., LEN}`` or ``{iov_base=..., iov_len=LEN}``; its base is NULL or any."""
        lengths = []
        for iov in iovecs:
            if not isinstance(iov, Struct):
                raise Mismatch(f"an iovec is {{..., LEN}}, not {iov}")
            length = iov.fields.get("iov_len", iov.fields.get(1))
            base = iov.fields.get("iov_base", iov.fields.get(0, ...))
            if not isinstance(_const(length), int):
                raise Mismatch(f"an iovec needs a length: {iov}")
            lengths.append(-1 - _const(length) if base is Null else _const(length))
        return lengths

    def _epoll_event(self, event: Struct) -> tuple[int, int]:
        """``{events=MASK, fd=FD}`` (or ``u32=``/``u64=``/``ptr=``): the mask and the data word."""
        mask = _const(event.fields.get("events", 0))
        for key in ("fd", "u32", "u64", "ptr"):
            if key in event.fields:
                return mask, _const(event.fields[key])
        return mask, 0

    def _syscall(self, ev: Syscall, start: float, base: float) -> float:
        self._finish_pending(final=False)
        self._no_unexpected(f"before line {ev.line}")
        call = self._make_call(ev)
        handle = self.backend.start_call(call)
        if ev.end is not None:
            end = (base + ev.end) if ev.time.kind == "rel" else ev.end
            self.pending = (ev, handle, start, end)
            return start
        if not self.backend.wait_call(handle, self.backend.now() + max(self.tol, NONBLOCKING_WAIT)):
            raise Mismatch(f"{ev.name}() blocked; a call that may block is written "
                           f"'TIME...END {ev.name}(...)'")
        self._check_result(ev, handle)
        return start

    def _check_pending(self, now: float):
        if self.pending is None:
            return
        ev, handle, start, end = self.pending
        if handle.done:
            self._finish_pending(final=False)
        elif now > end + self.tol and not self.cfg.lenient:
            self._finish_pending(final=True)

    def _finish_pending(self, final: bool):
        """Wait for a blocking call (the next syscall or the script end needs its result)."""
        if self.pending is None:
            return
        ev, handle, start, end = self.pending
        limit = end + (max(self.tol, self.cfg.any_time_limit) if self.cfg.lenient else self.tol)
        self.backend.wait_call(handle, limit)
        self.pending = None
        try:
            if not handle.done:
                raise Mismatch(f"{ev.name}() started at {start:.6f} had not returned by "
                               f"{limit:.6f} (expected by {end:.6f})")
            if not self.cfg.lenient and not start - self.tol <= handle.returned_at <= end + self.tol:
                raise Mismatch(f"{ev.name}() returned at {handle.returned_at:.6f}, outside "
                               f"{start:.6f}..{end:.6f} +-{self.tol:.6f}")
            self._check_result(ev, handle)
        except Mismatch as err:
            raise Mismatch(f"line {ev.line}: syscall {ev.text}\n{err}") from None

    def _check_result(self, ev: Syscall, handle: CallHandle):
        expected = _const(ev.result)
        got = "-1 " + handle.errno if handle.errno else str(handle.result)
        want = f"-1 {ev.errno}" if ev.errno else str(expected)
        if ev.name in FD_RESULT and not handle.errno and not ev.errno:
            self.fds[expected] = handle.result
            kind = 1 if ev.name == "accept" else _const(ev.args[1]) & 0xF if ev.name == "socket" else 0
            self.kinds[expected] = kind
            if ev.name in ("socket", "accept"):
                self.socket_under_test = expected
            return
        if ev.name == "fcntl" and not handle.errno and not ev.errno and \
                _const(ev.args[1]) == CONSTANTS["F_GETFL"]:
            # the access mode and O_NONBLOCK are what scripts state; other bits (O_LARGEFILE
            # on 32-bit) are not part of the contract
            if (handle.result & 0x803) != expected:
                raise Mismatch(f"  result   expected {want}   actual {handle.result:#x}")
            return
        if got != want:
            raise Mismatch(f"  result   expected {want}   actual {got}")
        if ev.name == "close" and not ev.errno:
            fd = _const(ev.args[0])
            self.fds.pop(fd, None)
            self.kinds.pop(fd, None)
        if ev.name in ("getsockopt", "ioctl") and not ev.errno and len(ev.args) > (3 if ev.name == "getsockopt" else 2):
            arg = ev.args[3] if ev.name == "getsockopt" else ev.args[2]
            want_val = arg[0] if isinstance(arg, list) and arg else arg
            got_val = handle.outputs.get("optval")
            if isinstance(want_val, Struct):
                for key, value in want_val.fields.items():
                    if value is not ... and (got_val or {}).get(key) != _const(value):
                        raise Mismatch(f"  optval   expected {want_val}   actual {got_val}")
            elif want_val is not ... and got_val != _const(want_val):
                raise Mismatch(f"  optval   expected {want_val}   actual {got_val}")
        if ev.name == "recvmsg" and not ev.errno and isinstance(ev.args[1], Struct):
            want_flags = ev.args[1].fields.get("msg_flags", ...)
            if want_flags is not ... and handle.outputs.get("msg_flags", 0) != _const(want_flags):
                raise Mismatch(f"  msg_flags  expected {want_flags}   actual {handle.outputs.get('msg_flags', 0):#x}")
        if ev.name == "epoll_wait" and not ev.errno and len(ev.args) > 1:
            wanted = ev.args[1] if isinstance(ev.args[1], list) else [ev.args[1]]
            got = handle.outputs.get("events", [])
            for struct, (mask, data) in zip(wanted, got):
                if isinstance(struct, Struct):
                    want_mask, want_data = self._epoll_event(struct)
                    if (want_mask, want_data) != (mask, data):
                        raise Mismatch(f"  event    expected {struct} ({want_mask:#x}, {want_data})   "
                                       f"actual ({mask:#x}, {data})")
        if ev.name == "poll" and not ev.errno:
            revents = handle.outputs.get("revents", [])
            for struct, actual in zip(ev.args[0], revents):
                if isinstance(struct, Struct) and "revents" in struct.fields:
                    if _const(struct.fields["revents"]) != actual:
                        raise Mismatch(f"  revents  expected {struct.fields['revents']} "
                                       f"({_const(struct.fields['revents']):#x})   actual {actual:#x}")

    # ----- pcap -----------------------------------------------------------------------

    def _write_pcap(self) -> str:
        if not self.trace:
            return ""
        from scapy.layers.inet import IP
        from scapy.layers.l2 import Ether
        from scapy.utils import wrpcap
        self.cfg.pcap_dir.mkdir(parents=True, exist_ok=True)
        path = self.cfg.pcap_dir / f"{Path(self.script.path).stem}.{self.backend.name}.pcap"
        origin = time_mod.time()
        frames = []
        for t, direction, raw in self.trace:
            src, dst = ("02:00:00:00:00:02", "02:00:00:00:00:01") if direction == "<" else \
                ("02:00:00:00:00:01", "02:00:00:00:00:02")
            frame = Ether(src=src, dst=dst) / IP(raw)
            frame.time = origin + t
            frames.append(frame)
        wrpcap(str(path), frames)
        relative = os.path.relpath(path)
        return str(path) if relative.startswith("..") else relative

