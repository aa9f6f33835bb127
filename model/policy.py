"""Every wire-visible policy of the model, written down once.

The hardware follows these exactly so that the model and the RTL can be compared packet by
packet. Each choice is the simplest one a TCP that interoperates with Linux can make; the
comment beside it says why. Time is in ticks of the virtual clock (1 tick = 1 ms when the
clock is mapped to wall time, as the Linux interop test does).

Policies that are code, not numbers (kept here so they are in one place):

- ACK timing: every segment that carries data or FIN, every out-of-order or unacceptable
  segment, and every SYN is answered at once (no delayed ACK). Hardware needs no ACK timer.
- Window: the advertised window is the free receive-buffer space
  (``StreamBuffer.free``), never more than what the window field can say: 65535, or with
  window scaling negotiated ``65535 << wscale``. After a read the receiver sends a window
  update when the window it would advertise grew by at least
  ``min(effective MSS, rcv_buffer // 2)`` beyond the last advertised window.
- Window scaling (RFC 7323, `window_scaling`; off in the reference NIC): the SYN offers the
  window scale option with shift count `wscale` (after the MSS option, as NOP and the option,
  Linux's layout); the SYN-ACK offers it only when the peer's SYN did. When both SYNs carried
  it, every later segment's window field is the window shifted right by `wscale` (rounded
  down, as Linux), and the peer's window field is shifted left by its count (at most 14:
  RFC 7323 2.3); a SYN's window is never scaled. Otherwise neither side scales and the
  window stays at most 65535 whatever the buffer. Linux picks its shift from its largest
  receive buffer (7 for tcp_rmem's 6 MiB); here it is a setting, the packetdrill model runs
  use Linux's 7, and a ring larger than 64 KiB needs ``rcv_buffer <= 65535 << wscale``.
- Segment sizing: no Nagle; data is sent as soon as it is queued and the window allows, in
  segments of ``min(effective MSS, usable window, queued data)``. Every data segment has
  PSH. A FIN rides on the segment that carries the last queued byte, else goes alone.
- MSS: the MSS option (kind 2) is sent on SYN and SYN-ACK with `mss`; the effective MSS is
  ``min(mss, peer's option or default_mss)``. Besides it only the window scale option is
  sent or honoured (see Window scaling).
- RTO: with `rtt_estimation` off (the default, and the reference NIC's), fixed
  `rto_initial` (one counter per connection and no multiplier). With it on, RFC 6298: one
  segment per window is timed (new data only; any retransmission stops the timing, Karn's
  rule), the ACK that covers it gives a sample R in ticks, and SRTT and RTTVAR follow RFC 6298
  2.2-2.3 in Jacobson's scaled form, shifts and adds a timer unit can do (``srtt8`` = 8 SRTT,
  ``rttvar4`` = 4 RTTVAR; first sample ``srtt8 = 8R``, ``rttvar4 = 2R``; then ``err = R -
  srtt8/8``, ``srtt8 += err``, ``rttvar4 += |err| - rttvar4/4``, divisions rounding down). The
  RTO is ``srtt8/8 + max(rto_min, rttvar4)``, RFC 6298 2.3 with the clock-granularity term G
  = `rto_min`, which is Linux's rule (tcp_set_rto: srtt + max(rttvar, tcp_rto_min); Linux's
  rttvar also tracks the largest deviation per window, which this does not); `rto_initial`
  until the first sample (Linux: 1 s, `LINUX_RTO`). Either way the RTO is doubled
  (`rto_backoff`) on every expiry up to `rto_max`, and back to the unbacked value when an ACK
  advances SND.UNA (as Linux clears its backoff). On expiry the sender goes back to
  SND.UNA (go-back-N: SND.NXT = SND.UNA) and resends as the window allows. After
  `max_retries` expiries without progress the connection fails with ETIMEDOUT (no RST sent).
- Fast retransmit: the 3rd duplicate ACK (same ACK, no data, same nonzero window, data outstanding)
  resends one segment from SND.UNA; SND.NXT and the timer are left alone.
- Persist: while data is queued, the RTO timer is not running and the peer's window is 0, a probe
  (ACK with SEQ = SND.UNA - 1 and no data, which forces the peer to answer with its window,
  as Linux does) is sent every `persist_initial` ticks, doubling up to `persist_max`. An RTO
  expiry while the window is 0 and data is queued does not count as a retry: it stops the
  RTO, sets SND.NXT = SND.UNA and starts the persist timer instead (Linux, too, never times
  out a peer that keeps answering zero-window probes).
- ISS: ``(iss_base + iss_step * n) mod 2**32`` for the host's n-th connection (0, 1, ...);
  `iss_base` is per host and settable, so a test can start near 2**32.
- RST: RFC 5961. A RST is honoured only when SEQ == RCV.NXT; inside the window but not
  exact gets a challenge ACK; outside the window it is ignored. A SYN in a synchronized
  state gets a challenge ACK. A segment for no connection gets a RST per RFC 9293. In
  SYN-RECEIVED a challenge ACK (or the ACK of an unacceptable segment) is a pure ACK
  <SEQ=SND.NXT><ACK=RCV.NXT>, as Linux sends; only a retransmitted SYN gets the SYN-ACK again.
- TIME-WAIT (Linux's tcp_timewait_state_process, without timestamps and without its 500 ms
  rate limit on ACKs of empty segments): a RST with SEQ = RCV.NXT ends TIME-WAIT, any other
  RST is ignored (no challenge ACK); an empty segment at RCV.NXT restarts the 2 MSL timer and
  is not answered; every other segment (data in the window or not, a retransmitted FIN, a
  SYN) is ACKed and, if it has ACK, restarts the 2 MSL timer (RFC 9293 3.10.7.4).
- close() with unread received data sends RST|ACK with SEQ = the highest sequence number
  sent (SND.MAX) and window 0 (like Linux); data arriving for a connection whose socket has
  been closed gets the same RST (like Linux).
- SACK (RFC 2018, `sack`; off in the reference NIC): the SYN offers SACK-permitted (NOP, NOP
  and the option after the MSS, Linux's layout), the SYN-ACK only when the peer's SYN did.
  When both did, every segment with ACK but a SYN or RST carries the held out-of-order
  ranges as SACK blocks (NOP, NOP, the option), at most 4: first the range holding the most
  recently received out-of-order segment, then the others from the most recently to the
  least recently touched (RFC 2018 4; Linux's tcp_sack_new_ofo_skb order). A data segment
  carries ``SACK option bytes`` fewer payload bytes than the effective MSS (RFC 6691, as
  Linux's tcp_current_mss). Not as Linux: no D-SACK (RFC 2883) for a duplicate segment, and
  the sender side ignores the peer's SACK blocks (no scoreboard: it retransmits go-back-N
  and by fast retransmit as without SACK, which RFC 2018 allows).
- Receive: a FIN is taken only when all data before it is in (an out-of-order FIN is dropped
  and ACKed; the peer resends it). Data on a SYN or SYN-ACK is ignored (not acknowledged).
  Out-of-order data beyond `max_ooo_ranges` ranges is dropped whole (StreamBuffer).
- Listen: a SYN is dropped (no answer) while the listener's handshakes in progress plus
  established-but-unaccepted connections exceed the backlog (Linux keeps backlog + 1).
  A SYN with FIN is dropped (Linux). Closing a listener resets its unaccepted connections but
  drops its handshakes in progress silently (Linux); the peer's later ACK gets a RST.
- MTU: `mtu` bytes of IP packet; a received frame (without FCS) longer than ``mtu + 14``
  (``mtu + 18`` with an 802.1Q tag) is dropped as OVERSIZE, by the model's host and the NIC's
  classifier alike (model/classify.py), and `mss` must fit in it.
- Socket options (model/host.py's setsockopt/getsockopt, levels and names as Linux's):
  SO_RCVBUF caps the receive buffer of the connections a socket makes or accepts: the buffer
  holds ``cap`` bytes, so the advertised window is ``min(ring free, cap - readable)`` (never
  more than `rcv_buffer`, the ring), data beyond ``head + cap`` is clipped as beyond any
  window, and the window-update threshold is ``min(effective MSS, cap // 2)``. SO_SNDBUF caps
  the send queue: send() takes at most ``cap - queued`` and a blocking send of at most ``cap``
  bytes waits to go whole. A set value v gives ``cap = clamp(v, SOCK_MIN_BUFFER, ring)`` (a
  negative v, a huge u32 to Linux, gives the ring) and getsockopt reports ``2 * cap``, as
  Linux doubles the value it keeps and reports the doubled one; never set, it reports twice
  the ring. On UDP, SO_RCVBUF reads twice the datagram queue (`udp_rcv_buffer`) and SO_SNDBUF
  twice one datagram (UDP sends go at once); setting either is EOPNOTSUPP.
  TCP_MAXSEG (0, or 88..32767 as Linux, else EINVAL) caps our MSS: the SYN/SYN-ACK offers
  ``min(value, mss)`` and the effective MSS is ``min(that, peer's)``; getsockopt reports the
  set value (536, Linux's TCP_MSS_DEFAULT, if none) before a connection, the effective MSS
  once there is one. These three shaping options are fixed when the connection is made (they
  reach the NIC in the INSTALL_TCP command): setting them on a socket with a connection is
  EISCONN (Linux accepts it; changing a live connection's buffers would need another control
  command). A listener's options are inherited by the sockets accept() returns (as Linux).
  TCP_NODELAY: stored and reported (0/1); there is no Nagle either way. SO_KEEPALIVE: 0;
  setting 1 is EOPNOTSUPP (keepalive probes are not implemented, and saying so beats a
  connection that silently never probes). SO_LINGER {1, 0}: close() aborts with RST|ACK
  (SEQ = SND.MAX, window 0) instead of FIN, as Linux's tcp_disconnect; {0, x} is the normal
  close and reads back {0, 0}; {1, t > 0} (a blocking lingering close) is EOPNOTSUPP.
  SO_ERROR reads and consumes the pending error (setting it: ENOPROTOOPT, as Linux);
  SO_REUSEADDR is stored (a port is free as soon as its socket is released). Every other
  option is EOPNOTSUPP.
- IPv4: no options, TTL `ip_ttl`, DF set, identification 0 (RFC 6864 allows any value
  when DF is set; a constant needs no counter). Ethernet frames are padded to 60 bytes.
"""

from dataclasses import dataclass

from .protocol import WSCALE_MAX

__all__ = ["Policy", "DEFAULT_POLICY", "LINUX_RTO", "LINUX_WSCALE", "LINUX_LIKE_OOO_RANGES",
           "LINUX_SACK", "RTT_SAMPLE_BITS", "wscale_for"]

# An RTT sample is counted in at most this many bits of ticks: a longer one (over 131 s at
# 1 ms a tick, beyond Linux's 120 s RTO maximum) counts as the largest. So the estimate's
# registers have fixed widths: 8 SRTT below 2**(RTT_SAMPLE_BITS + 3), 4 RTTVAR below
# 2**(RTT_SAMPLE_BITS + 2) (hdl/engine/rtt.py says why).
RTT_SAMPLE_BITS = 17


@dataclass(frozen=True)
class Policy:
    # segment sizing
    mtu: int = 1500                  # IP MTU of the port: frames of up to mtu + 14 bytes (no FCS)
    mss: int = 1460                  # 1500-byte Ethernet MTU less 40 bytes of IP and TCP header
    default_mss: int = 536           # RFC 9293 3.7.1: what to assume when the peer sends no MSS
    # buffers (bytes per connection)
    rcv_buffer: int = 65535          # the window we advertise from; <= 65535 << wscale
    snd_buffer: int = 65536          # unacknowledged + unsent bytes a connection holds
    max_ooo_ranges: int = 1          # out-of-order ranges kept (StreamBuffer.max_ranges)
    udp_rcv_buffer: int = 65536      # bytes of datagrams queued per UDP socket, 8 per datagram
                                     # (its length and source) plus its payload, as the
                                     # hardware's ring stores them
    # window scaling (RFC 7323)
    window_scaling: bool = False     # offer and honour the window scale option
    wscale: int = 0                  # our shift count when scaling (Linux: 7)
    # selective acknowledgment (RFC 2018)
    sack: bool = False               # offer SACK-permitted; report held ranges in SACK blocks
    # retransmission
    rtt_estimation: bool = False     # RFC 6298 RTO from RTT samples; off: rto_initial, fixed
    rto_initial: int = 200           # ticks; the RTO (fixed), or the RTO before an RTT sample
    rto_min: int = 200               # ticks; RFC 6298's G with rtt_estimation (Linux 200 ms)
    rto_max: int = 6400              # ticks; backoff cap (5 doublings of rto_initial)
    rto_backoff: int = 2             # multiplier per expiry
    max_retries: int = 10            # expiries without progress before ETIMEDOUT
    dupack_threshold: int = 3        # duplicate ACKs that trigger a fast retransmit
    # zero-window persist
    persist_initial: int = 200       # ticks before the first probe
    persist_max: int = 6400          # ticks; probe interval cap
    # connection end
    time_wait: int = 1000            # ticks in TIME-WAIT (short 2*MSL: 2 x 500 ms, test-friendly)
    fin_wait_2_timeout: int = 6000   # ticks an orphaned (closed) socket waits in FIN-WAIT-2
    # identity
    iss_base: int = 0x1000_0000      # first ISS of a host (settable per Host)
    iss_step: int = 64000            # ISS distance between a host's successive connections
    ephemeral_first: int = 49152     # first local port picked for connect()/autobind (IANA range)
    ephemeral_last: int = 65535
    ip_ttl: int = 64                 # Linux default

    def __post_init__(self):
        if not 0 <= self.wscale <= (WSCALE_MAX if self.window_scaling else 0):
            raise ValueError(f"Window scale must be 0..{WSCALE_MAX} with window scaling, 0 without, "
                             f"not {self.wscale!r}")
        if not 0 < self.rcv_buffer <= 65535 << self.wscale:
            raise ValueError(f"Receive buffer must be 1..{65535 << self.wscale} bytes (65535 << wscale), "
                             f"not {self.rcv_buffer!r}")
        if self.snd_buffer <= 0:
            raise ValueError(f"Send buffer must be positive, not {self.snd_buffer!r}")
        if not 64 <= self.mss <= 1460:
            raise ValueError(f"MSS must be 64..1460, not {self.mss!r}")
        if self.rtt_estimation and not 0 < self.rto_min <= self.rto_initial <= self.rto_max < 2 ** RTT_SAMPLE_BITS:
            raise ValueError(f"RTO bounds must satisfy 0 < rto_min <= rto_initial <= rto_max < "
                             f"{2 ** RTT_SAMPLE_BITS}, not {self.rto_min}, {self.rto_initial}, {self.rto_max}")
        if not self.mss + 40 <= self.mtu <= 9000:
            raise ValueError(f"MTU must be MSS + 40 ({self.mss + 40})..9000, not {self.mtu!r}")

    def rto_after(self, expiries: int, base: int | None = None) -> int:
        """The RTO in force after `expiries` consecutive expiries without progress, from
        `base` (the fixed `rto_initial` unless given: `Tcb.rto_after` gives its estimate)."""
        return min((self.rto_initial if base is None else base) * self.rto_backoff ** expiries,
                   self.rto_max)

    def persist_after(self, probes: int) -> int:
        """The persist interval after `probes` probes sent without the window opening."""
        return min(self.persist_initial * 2 ** probes, self.persist_max)


DEFAULT_POLICY = Policy()

# Linux's retransmission timing in ticks of 1 ms: RTT estimation, initial RTO 1 s (RFC 6298
# 2.1; TCP_TIMEOUT_INIT), at least 200 ms (TCP_RTO_MIN), at most 120 s (TCP_RTO_MAX), 15
# expiries before the connection fails (tcp_retries2).
LINUX_RTO = dict(rtt_estimation=True, rto_initial=1000, rto_min=200, rto_max=120_000,
                 max_retries=15)

def wscale_for(buffer_bytes: int) -> int:
    """The smallest shift count whose window field says `buffer_bytes` (at most 14)."""
    shift = 0
    while buffer_bytes > 65535 << shift and shift < WSCALE_MAX:
        shift += 1
    return shift


# Linux's window scaling: offered on every SYN (tcp_window_scaling = 1) with the shift its
# default largest receive buffer gives (tcp_rmem[2] = 6 MiB: 6 MiB >> 7 fits 16 bits).
LINUX_WSCALE = dict(window_scaling=True, wscale=7)

# Out-of-order ranges kept per connection where the model and the NIC stand in for Linux
# (the packetdrill runs, the NIC's Linux-like build): Linux keeps every out-of-order segment
# (its out-of-order queue is bounded by the receive buffer only); four holes per window is
# what the issue asks the hardware to track.
LINUX_LIKE_OOO_RANGES = 4

# Linux's SACK (tcp_sack = 1): SACK-permitted on every SYN, blocks for what is held.
LINUX_SACK = dict(sack=True)
