"""One TCP connection: its transmission control block (TCB) and state machine.

Shaped like smoltcp's ``socket/tcp.rs`` and named as RFC 9293 names things: `process()`
handles one arriving segment (RFC 9293 3.10.7, in its order of checks), `dispatch()` returns
the segments to send now, `on_timer()` fires the timers that are due. Every policy (ACK
timing, window, sizing, RTO, persist, ...) comes from `model.policy.Policy`; read its
docstring first. Nothing here knows about sockets, processes or frames.

Sequence numbers are 32-bit and wrap; compare them only with `seq_diff` and friends.
Received bytes live in a `StreamBuffer` at absolute stream offsets (offset 0 = IRS + 1), so
RCV.NXT is derived, never stored: ``RCV.NXT = IRS + 1 + rcv.tail + FIN``.
"""

import enum
from dataclasses import dataclass, field

from .bytestream import StreamBuffer
from .errors import Errno
from .protocol import SACK_BLOCK_BYTES, SACK_MAX_BLOCKS, TcpFlag
from .packet import TcpSegment
from .policy import RTT_SAMPLE_BITS, Policy

__all__ = ["State", "SYNCHRONIZED", "RECEIVING", "Tcb", "seq_add", "seq_diff", "seq_lt", "seq_le"]

MASK = 0xFFFF_FFFF


def seq_add(a: int, n: int) -> int:
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in sequence space, as a signed number in [-2**31, 2**31)."""
    d = (a - b) & MASK
    return d - (1 << 32) if d & 0x8000_0000 else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


class State(enum.Enum):
    """RFC 9293's connection states: the value is the RFC's name, `number` the NIC's code.

    The numbers are what the NIC's connection record and control port carry
    (``hdl.engine.tcb.TcpState`` is built from this list). LISTEN has none: listeners live in
    host software, never in the NIC.
    """
    number: int | None

    def __new__(cls, name: str, number: int | None):
        member = object.__new__(cls)
        member._value_ = name
        member.number = number
        return member

    CLOSED = "CLOSED", 0
    LISTEN = "LISTEN", None
    SYN_SENT = "SYN-SENT", 1
    SYN_RECEIVED = "SYN-RECEIVED", 2
    ESTABLISHED = "ESTABLISHED", 3
    FIN_WAIT_1 = "FIN-WAIT-1", 4
    FIN_WAIT_2 = "FIN-WAIT-2", 5
    CLOSE_WAIT = "CLOSE-WAIT", 6
    CLOSING = "CLOSING", 7
    LAST_ACK = "LAST-ACK", 8
    TIME_WAIT = "TIME-WAIT", 9


SYNCHRONIZED = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT,
                          State.CLOSING, State.LAST_ACK, State.TIME_WAIT})
# states in which received data is accepted (RFC 9293 3.10.7.4, seventh step)
RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})


@dataclass
class Tcb:
    """Transmission control block of one connection (local and remote address fixed)."""
    local: tuple[str, int]
    remote: tuple[str, int]
    iss: int
    policy: Policy
    passive: bool = False                 # created by a listener (else by connect())
    # socket options that shape the connection (SO_RCVBUF, SO_SNDBUF, TCP_MAXSEG), fixed when
    # it is created; 0: the policy's rcv_buffer, snd_buffer and mss
    rcv_cap: int = 0                      # bytes the receive buffer holds: the window's bound
    snd_cap: int = 0                      # bytes the send queue holds
    adv_mss: int = 0                      # the MSS we advertise and never exceed when sending
    state: State = State.CLOSED
    # send sequence space: send_queue[0] is at SND.UNA once the SYN is acknowledged
    snd_una: int = 0
    snd_nxt: int = 0
    snd_max: int = 0                      # highest SND.NXT ever (go-back-N lowers SND.NXT)
    snd_wnd: int = 0
    snd_wl1: int = 0
    snd_wl2: int = 0
    send_queue: bytearray = field(default_factory=bytearray)
    fin_queued: bool = False              # the user closed its sending side
    fin_acked: bool = False
    peer_mss: int = 0
    # window scaling (RFC 7323): both SYNs carried the option; the shift counts then in force
    wscale_ok: bool = False
    snd_wscale: int = 0                   # the peer's: its window fields are shifted left by it
    rcv_wscale: int = 0                   # ours: our window fields are shifted right by it
    # SACK (RFC 2018): both SYNs carried SACK-permitted; receive-buffer offsets of the
    # out-of-order segments, most recent first (which held range to report first)
    sack_ok: bool = False
    sack_recent: list[int] = field(default_factory=list)
    # receive sequence space
    irs: int = 0
    rcv: StreamBuffer | None = None
    fin_received: bool = False
    fin_seq: int | None = None            # sequence number of a FIN that arrived beyond a hole
    last_adv_wnd: int = 0                 # window of the last segment we sent, in bytes
    ack_needed: bool = False
    # timers (absolute ticks, None when stopped)
    rto: int = 0
    retries: int = 0
    rto_deadline: int | None = None
    # RTT estimate (policy.rtt_estimation): RFC 6298 in Jacobson's scaled form
    srtt8: int = 0                        # 8 x smoothed RTT in ticks, once rtt_sampled
    rttvar4: int = 0                      # 4 x RTT variation
    rtt_sampled: bool = False
    rtt_seq: int | None = None            # end of the timed segment; None: nothing timed
    rtt_start: int = 0                    # tick the timed segment was sent
    persist_deadline: int | None = None
    persist_probes: int = 0
    close_deadline: int | None = None     # TIME-WAIT end, or orphan FIN-WAIT-2 timeout
    dupacks: int = 0
    # user-visible outcome
    error: Errno | None = None            # pending error (Linux sk_err), consumed by the socket
    reset: bool = False                   # ended by RST or timeout (not by a clean close)
    orphan: bool = False                  # no socket refers to it any more (closed by the user)
    # segments queued by process()/timers (RSTs, challenge ACKs, probes, fast retransmits)
    outbox: list[TcpSegment] = field(default_factory=list)
    # what happened, for tests: (tick, kind, seq) with kind "rto", "fast", "probe", "retx"
    events: list[tuple[int, str, int]] = field(default_factory=list)

    def __post_init__(self):
        self.snd_una = self.snd_nxt = self.snd_max = self.iss
        self.rto = self.rto_after(0)
        self.peer_mss = self.policy.default_mss
        self.rcv_cap = self.rcv_cap or self.policy.rcv_buffer
        self.snd_cap = self.snd_cap or self.policy.snd_buffer
        self.adv_mss = self.adv_mss or self.policy.mss
        if not 0 < self.rcv_cap <= self.policy.rcv_buffer:
            raise ValueError(f"Receive cap must be 1..{self.policy.rcv_buffer}, not {self.rcv_cap!r}")
        if not 0 < self.snd_cap <= self.policy.snd_buffer:
            raise ValueError(f"Send cap must be 1..{self.policy.snd_buffer}, not {self.snd_cap!r}")
        if not 0 < self.adv_mss <= self.policy.mss:
            raise ValueError(f"MSS must be 1..{self.policy.mss}, not {self.adv_mss!r}")
        self.rcv = StreamBuffer(self.rcv_cap, self.policy.max_ooo_ranges)

    # ----- derived quantities ---------------------------------------------------------

    @property
    def rcv_nxt(self) -> int:
        return seq_add(self.irs, 1 + self.rcv.tail + self.fin_received)

    @property
    def rcv_wnd(self) -> int:
        """The receive window: free space, at most what the window field can say."""
        return min(self.rcv.free, 65535 << self.rcv_wscale)

    @property
    def adv_wnd(self) -> int:
        """The window a segment sent now advertises, in bytes (scaling rounds it down)."""
        return self.rcv_wnd >> self.rcv_wscale << self.rcv_wscale

    @property
    def eff_mss(self) -> int:
        return min(self.adv_mss, self.peer_mss)

    @property
    def syn_acked(self) -> bool:
        return seq_lt(self.iss, self.snd_una)

    @property
    def send_space(self) -> int:
        return self.snd_cap - len(self.send_queue)

    @property
    def unsent(self) -> int:
        return len(self.send_queue) - seq_diff(self.snd_nxt, self.snd_una)

    def next_deadline(self) -> int | None:
        times = [t for t in (self.rto_deadline, self.persist_deadline, self.close_deadline) if t is not None]
        return min(times) if times else None

    # ----- user calls -----------------------------------------------------------------

    def open_active(self):
        """connect(): send SYN on the next dispatch."""
        self.state = State.SYN_SENT

    def open_passive(self, syn: TcpSegment):
        """A listener got `syn`: answer with SYN-ACK on the next dispatch."""
        self.state = State.SYN_RECEIVED
        self.irs = syn.seq
        self.snd_wnd, self.snd_wl1, self.snd_wl2 = syn.window, syn.seq, self.iss
        self.peer_mss = syn.mss if syn.mss is not None else self.policy.default_mss
        self._negotiate_options(syn)

    def _negotiate_options(self, syn: TcpSegment):
        """The peer's SYN: scale windows both ways when it and ours carry the window scale
        option (RFC 7323 2.2), send SACK blocks when both carry SACK-permitted (RFC 2018)."""
        self.wscale_ok = self.policy.window_scaling and syn.wscale is not None
        self.snd_wscale = syn.wscale if self.wscale_ok else 0
        self.rcv_wscale = self.policy.wscale if self.wscale_ok else 0
        self.sack_ok = self.policy.sack and syn.sack_permitted

    def send(self, data: bytes) -> int:
        """Queue what fits of `data` for sending; return how many bytes were taken."""
        n = min(len(data), self.send_space)
        self.send_queue += data[:n]
        return n

    def receive(self, n: int, peek: bool = False) -> bytes:
        """Take up to `n` in-order bytes; schedule a window update if the window grew enough."""
        data = self.rcv.read(n, peek)
        if data and not peek and self.state in SYNCHRONIZED and not self.fin_received:
            if self.adv_wnd - self.last_adv_wnd >= min(self.eff_mss, self.rcv.capacity // 2):
                self.ack_needed = True
        return data

    def close_send(self):
        """shutdown(SHUT_WR) or close(): queue our FIN after the data."""
        if self.state == State.SYN_SENT:
            self._enter_closed()
        elif self.state in (State.SYN_RECEIVED, State.ESTABLISHED):
            self.fin_queued = True
            if self.state == State.ESTABLISHED:
                self.state = State.FIN_WAIT_1
        elif self.state == State.CLOSE_WAIT:
            self.fin_queued = True
            self.state = State.LAST_ACK

    def orphaned(self, now: int):
        """The last socket referring to this connection was closed."""
        self.orphan = True
        if self.state == State.FIN_WAIT_2:
            self.close_deadline = now + self.policy.fin_wait_2_timeout

    def abort(self):
        """close() with unread data, or a listener dropping a pending connection: send RST.

        In SYN-RECEIVED (a closed listener's handshake in progress) nothing is sent: Linux
        drops the request silently, and the peer's later ACK, for no connection, gets a RST."""
        if self.state in SYNCHRONIZED - {State.TIME_WAIT}:
            self.outbox.append(self._segment(self.snd_max, TcpFlag.RST | TcpFlag.ACK))
        self._enter_closed()

    # ----- segment arrival (RFC 9293 3.10.7) --------------------------------------------

    def process(self, seg: TcpSegment, now: int):
        kept = self._check_segment(seg, now)
        if kept is None:
            return
        payload, fin = kept
        # fifth: ACK (the ACK bit and SYN-RECEIVED's handshake were _check_segment's)
        if not self._process_ack(seg, bool(seg.payload) or bool(seg.flags & TcpFlag.FIN), now):
            return
        if self.state == State.CLOSED:
            return
        # seventh: segment text
        if payload and self.state in RECEIVING:
            if self.orphan and seq_lt(self.rcv_nxt, seq_add(seg.seq, len(payload))):
                # data for a closed socket: RST in reply to the segment (RFC 9293 3.10.7.4,
                # <SEQ=SEG.ACK><CTL=RST>), as Linux does, and the connection is gone
                self.outbox.append(self._segment(seg.ack, TcpFlag.RST, with_ack=False))
                self._enter_closed()
                return
            offset = self.rcv.tail + seq_diff(seg.seq, self.rcv_nxt)
            if self.rcv.write(offset, payload) == 0 and offset > self.rcv.tail:
                self.sack_recent.insert(0, offset)      # held out of order: report it first
            self.ack_needed = True
        # eighth: FIN, taken when everything before it is in; one beyond a hole is remembered
        # by its sequence number and taken when the hole is filled (as Linux queues it)
        if fin and not self.fin_received and self.state in RECEIVING | {State.SYN_RECEIVED}:
            self.ack_needed = True
            self.fin_seq = seq_add(seg.seq, len(payload))
        if self.fin_seq is not None and not self.fin_received and self.fin_seq == self.rcv_nxt:
            self._take_fin(now)

    def _check_segment(self, seg: TcpSegment, now: int) -> tuple[bytes, bool] | None:
        """Tcb.process up to the fifth step's ACK processing: SYN-SENT, TIME-WAIT and the
        SYN-RECEIVED special cases whole, then the sequence number check, RST, SYN and the
        ACK bit (SYN-RECEIVED's ACK completing the handshake). Returns the payload and FIN
        the later steps take (none at a zero window), or None: the segment ends here."""
        if self.state == State.SYN_SENT:
            self._process_syn_sent(seg, now)
            return None
        if self.state in (State.CLOSED, State.LISTEN):
            return None
        if self.state == State.TIME_WAIT:
            self._process_time_wait(seg, now)
            return None
        flags = seg.flags
        # SYN-RECEIVED: a retransmitted SYN means our SYN-ACK was lost; send it again
        if self.state == State.SYN_RECEIVED and flags & TcpFlag.SYN and not flags & TcpFlag.ACK \
                and seg.seq == self.irs:
            self.snd_nxt = self.iss
            return None
        # SYN-RECEIVED after a simultaneous open: the peer's SYN-ACK completes the handshake
        if self.state == State.SYN_RECEIVED and flags & TcpFlag.SYN and flags & TcpFlag.ACK \
                and seg.seq == self.irs and not flags & TcpFlag.RST:
            if seq_lt(self.snd_una, seg.ack) and seq_le(seg.ack, self.snd_max):
                self.state = State.FIN_WAIT_1 if self.fin_queued else State.ESTABLISHED
                self.snd_una = seg.ack
                self._rtt_ack(seg.ack, now)
                self.rto_deadline, self.retries, self.rto = None, 0, self.rto_after(0)
                self.snd_wnd, self.snd_wl1, self.snd_wl2 = seg.window, seg.seq, seg.ack
                self.ack_needed = True
            return None
        # first: sequence number check
        payload, fin = seg.payload, bool(flags & TcpFlag.FIN)
        if not self._acceptable(seg):
            if self.rcv_wnd == 0 and seg.seq == self.rcv_nxt and not flags & (TcpFlag.RST | TcpFlag.SYN):
                payload, fin = b"", False          # RFC 9293: still take ACKs at a zero window
                self.ack_needed = True
            else:
                if not flags & TcpFlag.RST:
                    self.ack_needed = True
                return None
        # second: RST (RFC 5961 3.2)
        if flags & TcpFlag.RST:
            if seg.seq != self.rcv_nxt:
                self._challenge_ack()
            elif self.state == State.SYN_RECEIVED:
                self._enter_reset(None if self.passive else Errno.ECONNREFUSED)
            elif self.state in (State.CLOSING, State.LAST_ACK):
                self._enter_closed()
            else:
                self._enter_reset(Errno.ECONNRESET)
            return None
        # fourth: SYN in a synchronized state (RFC 5961 4.2)
        if flags & TcpFlag.SYN:
            self._challenge_ack()
            return None
        # fifth: ACK
        if not flags & TcpFlag.ACK:
            return None
        if self.state == State.SYN_RECEIVED:
            if seq_lt(self.snd_una, seg.ack) and seq_le(seg.ack, self.snd_max):
                self.state = State.FIN_WAIT_1 if self.fin_queued else State.ESTABLISHED
                self.snd_wnd, self.snd_wl1, self.snd_wl2 = self._peer_wnd(seg), seg.seq, seg.ack
            else:
                self.outbox.append(self._segment(seg.ack, TcpFlag.RST, with_ack=False))
                return None
        return payload, fin

    def _take_fin(self, now: int):
        self.fin_received = True
        if self.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            self.state = State.CLOSE_WAIT
        elif self.state == State.FIN_WAIT_1:
            if self.fin_acked:
                self._enter_time_wait(now)
            else:
                self.state = State.CLOSING
        elif self.state == State.FIN_WAIT_2:
            self._enter_time_wait(now)

    def _process_time_wait(self, seg: TcpSegment, now: int):
        """TIME-WAIT as Linux's tcp_timewait_state_process (no timestamps, no rate limit).

        A RST with SEQ = RCV.NXT ends TIME-WAIT (Linux's default, tcp_rfc1337 = 0); any other
        RST is ignored. An empty segment at RCV.NXT (a bare ACK) restarts the 2 MSL timer and
        gets no answer. Every other segment (data, in the window or not, a retransmitted FIN,
        a SYN) is acknowledged <SEQ=SND.NXT><ACK=RCV.NXT>, and restarts the timer if it has
        ACK (RFC 9293 3.10.7.4 restarts it for a FIN; a FIN always carries ACK).
        """
        flags = seg.flags
        if flags & TcpFlag.RST:
            if seg.seq == self.rcv_nxt:
                self._enter_closed()
            return
        bare = seg.seq == self.rcv_nxt and seg.seg_len == 0
        if bare or flags & TcpFlag.ACK:
            self.close_deadline = now + self.policy.time_wait
        if not bare:
            self.ack_needed = True

    def _process_syn_sent(self, seg: TcpSegment, now: int):
        flags = seg.flags
        ack_ok = False
        if flags & TcpFlag.ACK:
            if seq_le(seg.ack, self.iss) or seq_lt(self.snd_max, seg.ack):
                if not flags & TcpFlag.RST:
                    self.outbox.append(self._segment(seg.ack, TcpFlag.RST, with_ack=False))
                return
            ack_ok = True
        if flags & TcpFlag.RST:
            if ack_ok:
                self._enter_reset(Errno.ECONNREFUSED)
            return
        if not flags & TcpFlag.SYN:
            return
        self.irs = seg.seq
        self.peer_mss = seg.mss if seg.mss is not None else self.policy.default_mss
        self._negotiate_options(seg)
        self.ack_needed = True
        if ack_ok:
            self.snd_una = seg.ack
            self._rtt_ack(seg.ack, now)
            self.rto_deadline, self.retries, self.rto = None, 0, self.rto_after(0)
            self.state = State.ESTABLISHED
            self.snd_wnd, self.snd_wl1, self.snd_wl2 = seg.window, seg.seq, seg.ack
        else:                                       # simultaneous open: answer SYN-ACK
            self.state = State.SYN_RECEIVED
            self.snd_nxt = self.iss
            self.snd_wnd, self.snd_wl1, self.snd_wl2 = seg.window, seg.seq, self.iss

    def _acceptable(self, seg: TcpSegment) -> bool:
        """RFC 9293 3.10.7.4 table of segment acceptability."""
        wnd, length = self.rcv_wnd, seg.seg_len
        start = seq_diff(seg.seq, self.rcv_nxt)
        if length == 0:
            return start == 0 if wnd == 0 else 0 <= start < wnd
        if wnd == 0:
            return False
        end = start + length - 1
        return 0 <= start < wnd or 0 <= end < wnd

    def _process_ack(self, seg: TcpSegment, carries_data: bool, now: int) -> bool:
        """Fifth step for synchronized states; return False when the segment is dropped."""
        advance = seq_diff(seg.ack, self.snd_una)
        if seq_lt(self.snd_max, seg.ack):
            self.ack_needed = True                  # acknowledges what we never sent
            return False
        if advance > 0:
            acked = advance
            if not self.syn_acked:
                acked -= 1                          # the SYN's sequence number
            taken = min(acked, len(self.send_queue))
            del self.send_queue[:taken]
            if acked > taken:
                self.fin_acked = True
            self.snd_una = seg.ack
            if seq_lt(self.snd_nxt, self.snd_una):
                self.snd_nxt = self.snd_una
            self._rtt_ack(seg.ack, now)
            self.retries, self.rto, self.dupacks = 0, self.rto_after(0), 0
            self.rto_deadline = None if self.snd_una == self.snd_max else now + self.rto
        elif advance == 0 and not carries_data and self._peer_wnd(seg) == self.snd_wnd != 0 \
                and self.snd_una != self.snd_max:
            self.dupacks += 1
            if self.dupacks == self.policy.dupack_threshold:
                self._fast_retransmit(now)
        if seq_lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, seg.ack)):
            self.snd_wnd, self.snd_wl1, self.snd_wl2 = self._peer_wnd(seg), seg.seq, seg.ack
            if self.snd_wnd > 0:
                self.persist_deadline, self.persist_probes = None, 0
        if self.fin_acked:
            if self.state == State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
                if self.orphan:
                    self.close_deadline = now + self.policy.fin_wait_2_timeout
            elif self.state == State.CLOSING:
                self._enter_time_wait(now)
            elif self.state == State.LAST_ACK:
                self._enter_closed()
        return True

    # ----- timers -----------------------------------------------------------------

    def on_timer(self, now: int):
        """Fire every timer whose deadline is `now` or earlier."""
        if self.close_deadline is not None and now >= self.close_deadline:
            self._enter_closed()
            return
        if self.rto_deadline is not None and now >= self.rto_deadline and self.state in SYNCHRONIZED \
                and self.snd_wnd == 0 and self.send_queue:
            # the peer's window is closed: what is in flight cannot be resent, so probe
            # instead (persist), without counting towards ETIMEDOUT; resend from SND.UNA later
            self.events.append((now, "zwnd", self.snd_una))
            self.rto_deadline, self.retries, self.rto = None, 0, self.rto_after(0)
            self.snd_nxt, self.rtt_seq = self.snd_una, None
            self.persist_deadline = now + self.policy.persist_after(self.persist_probes)
        if self.rto_deadline is not None and now >= self.rto_deadline:
            self.retries += 1
            if self.retries > self.policy.max_retries:
                self._enter_reset(Errno.ETIMEDOUT)
                return
            self.rto = self.rto_after(self.retries)
            self.rto_deadline = now + self.rto
            self.events.append((now, "rto", self.snd_una))
            self.snd_nxt = self.snd_una             # go-back-N (SYN states: resend the SYN)
            self.rtt_seq = None                     # Karn: no sample from what is resent
            self.dupacks = 0
        if self.persist_deadline is not None and now >= self.persist_deadline:
            self.events.append((now, "probe", seq_add(self.snd_una, -1)))
            self.outbox.append(self._segment(seq_add(self.snd_una, -1), TcpFlag.ACK))
            self.persist_probes += 1
            self.persist_deadline = now + self.policy.persist_after(self.persist_probes)

    # ----- what to send -----------------------------------------------------------

    def dispatch(self, now: int) -> list[TcpSegment]:
        """Segments to transmit now, in order; starts the RTO and persist timers as needed."""
        out, self.outbox = self.outbox, []
        for seg in out:                             # queued earlier: carry today's ACK and window
            if seg.flags & TcpFlag.ACK:
                seg.ack, self.ack_needed = self.rcv_nxt, False
                if not seg.flags & TcpFlag.RST:
                    seg.window = self._window_field(seg.flags)
                    seg.sack = self._sack_blocks()
                    self.last_adv_wnd = self.adv_wnd
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            if self.snd_nxt == self.iss:
                flags = TcpFlag.SYN | (TcpFlag.ACK if self.state == State.SYN_RECEIVED else 0)
                seg = self._segment(self.iss, flags, with_ack=self.state == State.SYN_RECEIVED)
                seg.mss = self.adv_mss
                if self.policy.window_scaling and (self.state == State.SYN_SENT or self.wscale_ok):
                    seg.wscale = self.policy.wscale
                seg.sack_permitted = self.policy.sack and (self.state == State.SYN_SENT or self.sack_ok)
                self.snd_nxt = seq_add(self.iss, 1)
                self._sent(seg, now)
                out.append(seg)
            elif self.ack_needed and self.state == State.SYN_RECEIVED:
                # a challenge ACK or the answer to an unacceptable segment: a pure ACK
                # <SEQ=SND.NXT><ACK=RCV.NXT> (RFC 5961 3.2, Linux); only a retransmitted
                # SYN gets the SYN-ACK again (process() rewinds SND.NXT for it)
                seg = self._segment(self.snd_nxt, TcpFlag.ACK)
                self._sent(seg, now)
                out.append(seg)
        elif self.state in SYNCHRONIZED:
            while (seg := self._next_segment()) is not None:
                self._sent(seg, now)
                out.append(seg)
            if self.ack_needed:
                seg = self._segment(self.snd_nxt, TcpFlag.ACK)
                self._sent(seg, now)
                out.append(seg)
            if self.unsent > 0 and self.snd_wnd == 0 and self.rto_deadline is None \
                    and self.persist_deadline is None:
                self.persist_deadline = now + self.policy.persist_after(self.persist_probes)
        return out

    def _next_segment(self) -> TcpSegment | None:
        """The next new (or go-back-N) segment the window allows, advancing SND.NXT."""
        offset = seq_diff(self.snd_nxt, self.snd_una)
        queued = len(self.send_queue)
        if offset > queued:
            return None                             # everything, FIN included, is out
        usable = seq_diff(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
        n = max(0, min(self._data_room(), usable, queued - offset))
        fin = self.fin_queued and not self.fin_acked and offset + n == queued
        if n == 0 and not fin:
            return None
        flags = TcpFlag.ACK | (TcpFlag.PSH if n else 0) | (TcpFlag.FIN if fin else 0)
        seg = self._segment(self.snd_nxt, flags, bytes(self.send_queue[offset:offset + n]))
        self.snd_nxt = seq_add(self.snd_nxt, seg.seg_len)
        return seg

    def _fast_retransmit(self, now: int):
        n = min(self._data_room(), len(self.send_queue))
        fin = self.fin_queued and n == len(self.send_queue) and seq_diff(self.snd_max, self.snd_una) > n
        flags = TcpFlag.ACK | (TcpFlag.PSH if n else 0) | (TcpFlag.FIN if fin else 0)
        self.events.append((now, "fast", self.snd_una))
        self.rtt_seq = None                         # Karn: no sample from what is resent
        self.outbox.append(self._segment(self.snd_una, flags, bytes(self.send_queue[:n])))

    def _segment(self, seq: int, flags, payload: bytes = b"", with_ack: bool = True) -> TcpSegment:
        if with_ack:
            flags |= TcpFlag.ACK
        seg = TcpSegment(self.local[1], self.remote[1], seq, self.rcv_nxt if with_ack else 0,
                         TcpFlag(flags), self._window_field(flags), payload)
        if with_ack and not flags & (TcpFlag.SYN | TcpFlag.RST):
            seg.sack = self._sack_blocks()
        return seg

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """The SACK blocks a segment sent now carries: each held range once, the one holding
        the most recent out-of-order segment first (RFC 2018 4), at most SACK_MAX_BLOCKS."""
        if not self.sack_ok:
            return ()
        blocks, recent = [], []
        for offset in self.sack_recent:
            held = next(((lo, hi) for lo, hi in self.rcv.ranges if lo <= offset < hi), None)
            if held is not None and held not in blocks:
                blocks.append(held)
                recent.append(offset)
        self.sack_recent = recent                   # ranges delivered or merged are forgotten
        base = seq_add(self.irs, 1)
        return tuple((seq_add(base, lo), seq_add(base, hi)) for lo, hi in blocks[:SACK_MAX_BLOCKS])

    def _data_room(self) -> int:
        """Payload bytes a data segment sent now may carry: the effective MSS less the SACK
        option's bytes (RFC 6691; Linux's tcp_current_mss), and at least 1 (a peer that
        offers an MSS below the option's 36 bytes still gets data)."""
        blocks = len(self._sack_blocks())
        return max(1, self.eff_mss - (4 + SACK_BLOCK_BYTES * blocks if blocks else 0))

    def _window_field(self, flags) -> int:
        """The window field of a segment with `flags`: a SYN's is never scaled, a RST's is 0."""
        if flags & TcpFlag.RST:
            return 0
        return min(self.rcv.free, 65535) if flags & TcpFlag.SYN else self.rcv_wnd >> self.rcv_wscale

    def _peer_wnd(self, seg: TcpSegment) -> int:
        """The peer's window in bytes from a segment other than a SYN."""
        return seg.window << self.snd_wscale

    def _sent(self, seg: TcpSegment, now: int):
        """Bookkeeping for a segment that dispatch() hands out."""
        self.last_adv_wnd = seg.window << (0 if seg.flags & TcpFlag.SYN else self.rcv_wscale)
        self.ack_needed = False
        if seg.seg_len:
            end = seq_add(seg.seq, seg.seg_len)
            if seq_lt(seg.seq, self.snd_max):
                self.events.append((now, "retx", seg.seq))
                self.rtt_seq = None                 # Karn: no sample from what is resent
            elif self.policy.rtt_estimation and self.rtt_seq is None:
                self.rtt_seq, self.rtt_start = end, now     # time this one
            if seq_lt(self.snd_max, end):
                self.snd_max = end
            if self.rto_deadline is None:
                self.rto_deadline = now + self.rto

    # ----- retransmission timing ----------------------------------------------------

    def rto_after(self, expiries: int) -> int:
        """The RTO after `expiries` consecutive expiries without progress: the fixed
        `rto_initial`, or (policy.rtt_estimation, once sampled) ``srtt8/8 + max(rto_min,
        rttvar4)``, doubled per expiry, at most `rto_max` (model/policy.py's RTO)."""
        P = self.policy
        if P.rtt_estimation and self.rtt_sampled:
            return P.rto_after(expiries, (self.srtt8 >> 3) + max(P.rto_min, self.rttvar4))
        return P.rto_after(expiries)

    def _rtt_ack(self, ack: int, now: int):
        """An ACK at or past the timed segment's end: one RTT sample (RFC 6298 2.2-2.3)."""
        if self.rtt_seq is None or seq_lt(ack, self.rtt_seq):
            return
        r = min(now - self.rtt_start, 2 ** RTT_SAMPLE_BITS - 1)
        if not self.rtt_sampled:
            self.srtt8, self.rttvar4, self.rtt_sampled = r << 3, r << 1, True
        else:
            err = r - (self.srtt8 >> 3)
            self.srtt8 += err
            self.rttvar4 += abs(err) - (self.rttvar4 >> 2)
        self.rtt_seq = None

    # ----- state changes ------------------------------------------------------------

    def _challenge_ack(self):
        self.ack_needed = True

    def _enter_time_wait(self, now: int):
        self.state = State.TIME_WAIT
        self.rto_deadline = self.persist_deadline = None
        self.close_deadline = now + self.policy.time_wait

    def _enter_reset(self, error: Errno | None):
        self.error, self.reset = error, True
        self._enter_closed()

    def _enter_closed(self):
        self.state = State.CLOSED
        self.rto_deadline = self.persist_deadline = self.close_deadline = None
        self.send_queue.clear()
        self.ack_needed = False
