"""What a host command does to its connection: the data-path half of ``model/host.py``.

A process's ``recv``, ``send``, ``poll``, ``shutdown``, ``getsockopt(SO_ERROR)`` and last
``close`` (``Process._recv``, ``_send``, ``_poll_mask``, ``_shutdown_connection``,
``getsockopt_error``, ``Host._release``) each decide, from the connection's record and its
rings' counts, the answer and what changes: a pure function of (record, command) ->
(answer, record, what the engine does next). :class:`HostCall` is that function and nothing
else (no register: the engine applies its verdict in the clock after it loads the record,
``EngineStep.HOST_DECODE``); ``tests/hdl/test_host_call.py`` checks it against the model's
own calls in every TCP state.

What stays in the engine: moving bytes (a READ's ring read, a WRITE's ring write, which takes
``count`` bytes), a UDP datagram's record header and its route (``UDP_READ_HEADER``,
``UDP_ROUTE``), the access check before the record is read (``hdl/engine/host_gate.py``).
"""

from amaranth import *
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from model.constants import POLLERR, POLLHUP, POLLIN, POLLOUT, SHUT_RD, SHUT_RDWR, SHUT_WR

from hdl.engine.tcb import SYNCHRONIZED, ConnKind, Errno, TcpState, one_of
from hdl.ports import HostCommand, HostOp, HostResponse

__all__ = ["HostNext", "HostCallInput", "HostCallVerdict", "HostCall"]


class HostNext(enum.Enum, shape=3):
    """What the engine does after a host command's verdict."""
    IDLE = 0            # answer; nothing changed
    WRITE_BACK = 1      # answer; the record changed (an error taken, shutdown, UDP close)
    DISPATCH = 2        # answer; then send what the connection has to send (a FIN, an ACK)
    CLEAR_SEND_RING = 3  # answer; the connection closed: empty its send ring, then dispatch
    READ_DATA = 4       # answer ``count`` bytes, then read them out of the receive ring
    WRITE_RING = 5      # the send ring takes ``count`` bytes at its tail, then answer, dispatch
    UDP_READ = 6        # a datagram is queued: read its record header (the answer follows it)
    UDP_ROUTE = 7       # a datagram to send: find its destination (the answer follows it)


class HostCallInput(data.StructLayout):
    """The connection's record fields and ring counts a host command reads, and the command.
    ``readable``: in-order bytes in the receive ring (a UDP socket's: queued records);
    ``snd_space``: free send ring bytes within ``snd_cap`` (``Tcb.send_space``);
    ``rcv_cap``, ``snd_cap``: SO_RCVBUF and SO_SNDBUF, the bytes the rings may hold."""

    def __init__(self, pid_bits, ring_bits):
        super().__init__({
            "kind": ConnKind,
            "state": TcpState,
            "error": Errno,             # Tcb.error (OK: none)
            "reset": 1,
            "fin_received": 1,
            "was_connected": 1,
            "shut_rd": 1,
            "shut_wr": 1,
            "peer_valid": 1,            # a UDP socket's peer is set (connect())
            "readable": ring_bits,
            "snd_space": ring_bits,
            "rcv_cap": ring_bits,
            "snd_cap": ring_bits,
            "command": HostCommand(pid_bits),
        })


class HostCallVerdict(data.StructLayout):
    """The answer (``status``, ``count``, ``revents``, ``error``: :class:`HostResponse`'s
    fields), the record's new fields, and what follows. ``drain``: the WRITE's data beats
    are dropped (the send ring takes none of them). ``closed``: ``Tcb._enter_closed`` (its
    timers stop); ``abort_rst``: the outbox sends <SEQ=SND.MAX><CTL=RST,ACK>; ``fin_wait_2_timer``:
    ``Tcb.orphaned`` arms the FIN-WAIT-2 timeout."""

    def __init__(self, ring_bits):
        response = HostResponse()
        super().__init__({
            "next": HostNext,
            "status": Errno,
            "count": ring_bits,
            "revents": response["revents"].shape,
            "error": Errno,
            "drain": 1,
            "state": TcpState,
            "fin_queued": 1,            # set (Tcb.close_send)
            "closed": 1,
            "abort_rst": 1,
            "orphan": 1,                # set
            "fin_wait_2_timer": 1,
            "shut_rd": 1,               # the new values
            "shut_wr": 1,
            "clear_error": 1,
            "free": 1,                  # the slot is free (a UDP socket's close)
        })


class HostCall(wiring.Component):
    """A host command's verdict (combinational; see the module's docstring).

    Parameters
    ----------
    pid_bits : bits of the command's pid field.
    ring_bits : bits of the ring counts (``hdl.engine.tcb.ring_count_bits``).
    """

    def __init__(self, *, pid_bits, ring_bits):
        self._ring_bits = ring_bits
        super().__init__({"inputs": In(HostCallInput(pid_bits, ring_bits)),
                          "verdict": Out(HostCallVerdict(ring_bits))})

    def elaborate(self, platform):
        m = Module()
        i, v = self.inputs, self.verdict
        hc = i.command
        state = i.state
        is_tcp = i.kind == ConnKind.TCP
        is_udp = i.kind == ConnKind.UDP
        has_error = i.error != Errno.OK
        in_syn_states = one_of(state, TcpState.SYN_SENT, TcpState.SYN_RECEIVED)
        synchronized = one_of(state, *SYNCHRONIZED)

        def answer(next_step, status=Errno.OK):
            m.d.comb += [v.next.eq(next_step), v.status.eq(status)]

        def take_error(next_step):
            """The pending error is the answer, and is consumed."""
            m.d.comb += v.clear_error.eq(1)
            answer(next_step, i.error)

        def close_send():
            """``Tcb.close_send``: our FIN queued after the data (SYN-SENT: given up)."""
            with m.If(state == TcpState.SYN_SENT):
                m.d.comb += [v.closed.eq(1), v.state.eq(TcpState.CLOSED)]
            with m.Elif(state == TcpState.SYN_RECEIVED):
                m.d.comb += v.fin_queued.eq(1)
            with m.Elif(state == TcpState.ESTABLISHED):
                m.d.comb += [v.fin_queued.eq(1), v.state.eq(TcpState.FIN_WAIT_1)]
            with m.Elif(state == TcpState.CLOSE_WAIT):
                m.d.comb += [v.fin_queued.eq(1), v.state.eq(TcpState.LAST_ACK)]

        def min_of(a, b):
            return Mux(a < b, a, b)

        # unchanged unless said below
        m.d.comb += [v.state.eq(state), v.shut_rd.eq(i.shut_rd), v.shut_wr.eq(i.shut_wr)]
        with m.If(~is_tcp & ~is_udp):
            m.d.comb += v.drain.eq((hc.op == HostOp.WRITE) & (hc.length != 0))
            answer(HostNext.IDLE, Errno.EBADF)
        with m.Else():
            with m.Switch(hc.op):
                with m.Case(HostOp.READ):
                    # Process._recv
                    at_end = i.fin_received | i.shut_rd | (state == TcpState.CLOSED) | has_error
                    wanted = min_of(hc.length, i.rcv_cap)
                    with m.If(is_udp):
                        with m.If(i.readable != 0):
                            answer(HostNext.UDP_READ)
                        with m.Else():
                            answer(HostNext.IDLE, Mux(i.shut_rd, Errno.OK, Errno.EAGAIN))
                    with m.Elif((i.readable != 0) & hc.waitall & ~hc.nonblock & ~at_end
                                & (i.readable < wanted)):
                        answer(HostNext.IDLE, Errno.EAGAIN)
                    with m.Elif((i.readable != 0) | (hc.length == 0)):
                        m.d.comb += v.count.eq(min_of(hc.length, i.readable))
                        answer(HostNext.READ_DATA)
                    with m.Elif(has_error & (state == TcpState.CLOSED)):
                        take_error(HostNext.WRITE_BACK)
                    with m.Elif((state == TcpState.CLOSED) & ~i.was_connected & ~i.fin_received):
                        answer(HostNext.IDLE, Errno.ENOTCONN)
                    with m.Elif(at_end):
                        answer(HostNext.IDLE)                   # end of file: count 0
                    with m.Else():
                        answer(HostNext.IDLE, Errno.EAGAIN)
                with m.Case(HostOp.WRITE):
                    # Process._send (a UDP datagram's checks need its route: UDP_SEND)
                    some = hc.length != 0
                    may_send = one_of(state, TcpState.SYN_SENT, TcpState.SYN_RECEIVED,
                                      TcpState.ESTABLISHED, TcpState.CLOSE_WAIT)
                    with m.If(is_udp):
                        answer(HostNext.UDP_ROUTE)
                    with m.Elif(has_error):
                        m.d.comb += v.drain.eq(some)
                        take_error(HostNext.WRITE_BACK)
                    with m.Elif(i.shut_wr | ~may_send):
                        m.d.comb += v.drain.eq(some)
                        answer(HostNext.IDLE, Errno.EPIPE)
                    with m.Elif(~some):
                        answer(HostNext.IDLE)
                    with m.Elif(in_syn_states | (i.snd_space == 0)
                                | (~hc.nonblock & (i.snd_space < hc.length)
                                   & (hc.length <= i.snd_cap))):
                        m.d.comb += v.drain.eq(1)
                        answer(HostNext.IDLE, Errno.EAGAIN)
                    with m.Else():
                        # the ring takes min(length, space) bytes at its tail; the rest drains
                        m.d.comb += v.count.eq(min_of(hc.length, i.snd_space))
                        answer(HostNext.WRITE_RING)
                with m.Case(HostOp.POLL):
                    # Process._poll_mask
                    rcv_shut = i.shut_rd | i.fin_received | i.reset
                    tcp_mask = (Mux(has_error, POLLERR, 0)
                                | Mux((rcv_shut & i.shut_wr) | (state == TcpState.CLOSED),
                                      POLLHUP, 0)
                                | Mux(rcv_shut, POLLIN, 0)
                                | Mux(~in_syn_states & (i.readable != 0), POLLIN, 0)
                                | Mux(~in_syn_states & (i.shut_wr | (i.snd_space != 0)),
                                      POLLOUT, 0))
                    udp_mask = POLLOUT | Mux(i.readable != 0, POLLIN, 0)
                    m.d.comb += v.revents.eq(Mux(is_udp, udp_mask, tcp_mask))
                    answer(HostNext.IDLE)
                with m.Case(HostOp.SHUTDOWN):
                    # Process._shutdown_connection
                    shut_rd = i.shut_rd | (hc.how != SHUT_WR)
                    shut_wr = i.shut_wr | (hc.how != SHUT_RD)
                    with m.If(hc.how > SHUT_RDWR):
                        answer(HostNext.IDLE, Errno.EINVAL)
                    with m.Elif(is_udp):
                        with m.If(~i.peer_valid):
                            answer(HostNext.IDLE, Errno.ENOTCONN)
                        with m.Else():
                            m.d.comb += [v.shut_rd.eq(shut_rd), v.shut_wr.eq(shut_wr)]
                            answer(HostNext.WRITE_BACK)
                    with m.Elif(state == TcpState.CLOSED):
                        answer(HostNext.IDLE, Errno.ENOTCONN)
                    with m.Elif(state == TcpState.SYN_SENT):
                        close_send()                # abandons the connection attempt
                        answer(HostNext.CLEAR_SEND_RING)
                    with m.Else():
                        m.d.comb += v.shut_rd.eq(shut_rd)
                        with m.If((hc.how != SHUT_RD) & ~i.shut_wr):
                            m.d.comb += v.shut_wr.eq(1)
                            close_send()
                        answer(HostNext.DISPATCH)
                with m.Case(HostOp.CLOSE):
                    # Host._release: the socket's last descriptor is gone
                    with m.If(is_udp):
                        m.d.comb += v.free.eq(1)
                        answer(HostNext.WRITE_BACK)
                    with m.Elif((hc.abort | (i.readable != 0)) & (state != TcpState.CLOSED)):
                        # Tcb.abort (unread data, or SO_LINGER {1, 0}), then Tcb.orphaned
                        with m.If(synchronized & (state != TcpState.TIME_WAIT)):
                            m.d.comb += v.abort_rst.eq(1)
                        m.d.comb += [v.closed.eq(1), v.state.eq(TcpState.CLOSED), v.orphan.eq(1)]
                        answer(HostNext.CLEAR_SEND_RING)
                    with m.Else():
                        # Tcb.close_send, then Tcb.orphaned
                        close_send()
                        m.d.comb += [v.orphan.eq(1),
                                     v.fin_wait_2_timer.eq(state == TcpState.FIN_WAIT_2)]
                        answer(Mux(state == TcpState.SYN_SENT, HostNext.CLEAR_SEND_RING,
                                   HostNext.DISPATCH))
                with m.Case(HostOp.GETERR):
                    m.d.comb += [v.error.eq(i.error), v.clear_error.eq(1)]
                    answer(Mux(has_error, HostNext.WRITE_BACK, HostNext.IDLE))
                with m.Default():
                    answer(HostNext.IDLE, Errno.EINVAL)
        return m

