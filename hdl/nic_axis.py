"""The NIC as a drop-in block: AXI4-Stream frame ports towards the MAC, the rest as in `NIC`.

``nic_axis`` (``make verilog`` writes ``build/verilog/nic_axis.v``) connects to a MAC the way
verilog-ethernet's and Corundum's blocks do: frames without FCS, first byte in lane 0,
``tkeep`` packed from lane 0 on the last beat, and ``tuser`` set on a frame the MAC found bad
(FCS error, runt, overflow). The host, control and slow-path ports are the `NIC`'s own,
passed through unchanged (the README's register and stream map describes them).
"""

from amaranth import *
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from hdl.rx.frame_fifo import FrameFifo
from hdl.layouts import check_data_width
from hdl.nic import NIC

__all__ = ["NicAxis", "AXIS_PORTS"]

# The NIC's frame streams that face the MAC: NIC member -> AXI4-Stream prefix.
AXIS_PORTS = {"rx": "s_axis_rx", "tx": "m_axis_tx"}


class NicAxis(wiring.Component):
    """`NIC` with AXI4-Stream ports towards the MAC, dropping frames the MAC marks bad.

    A received frame is stored whole before it reaches the NIC (the MAC says a frame is bad
    only with its last beat): frames the MAC marked bad with ``tuser`` are dropped whole and
    counted in :attr:`rx_bad_frames`; frames that do not fit the store are dropped whole and
    counted in :attr:`rx_overflow_frames`. Storing adds the frame's own length to the
    receive latency (one beat per clock) plus three clocks.

    Parameters
    ----------
    data_width : int
        8 or 64: ``tdata`` is this wide, ``tkeep`` has one bit per byte.
    rx_store_beats : int
        Beats of the receive store, a power of two; default: room for two 1518-byte frames.
    **nic_kwargs
        Passed to `NIC` (connections, processes, policy, ...).

    Members
    -------
    s_axis_rx_tdata, s_axis_rx_tkeep, s_axis_rx_tlast, s_axis_rx_tvalid, s_axis_rx_tuser : In
    s_axis_rx_tready : Out(1)
        Frames from the MAC. ``tuser`` on any beat marks the frame bad.
    m_axis_tx_tdata, m_axis_tx_tkeep, m_axis_tx_tlast, m_axis_tx_tvalid, m_axis_tx_tuser : Out
    m_axis_tx_tready : In(1)
        Frames to the MAC; ``tuser`` is always 0 (no frame is ever aborted).
    rx_bad_frames, rx_overflow_frames : Out(32)
        Frames dropped before the NIC: marked bad by the MAC, or no room in the store
        (both saturate).
    host_cmd, host_wdata, host_rsp, host_rdata, ctl_cmd, ctl_rsp, slow_rx, slow_tx, events,
    tick, idle
        The `NIC`'s ports, unchanged.
    """

    def __init__(self, *, data_width=64, rx_store_beats=None, **nic_kwargs):
        check_data_width(data_width)
        self.nic = NIC(data_width=data_width, **nic_kwargs)
        lanes = data_width // 8
        self._data_width = data_width
        self._rx_store_beats = rx_store_beats or 1 << (2 * 1518 // lanes).bit_length()
        members = {}
        for name, prefix in AXIS_PORTS.items():
            # a sink (s_axis) takes everything but tready in; a source (m_axis) the reverse
            fwd, back = (In, Out) if prefix.startswith("s_") else (Out, In)
            members.update({
                f"{prefix}_tdata": fwd(data_width),
                f"{prefix}_tkeep": fwd(lanes),
                f"{prefix}_tlast": fwd(1),
                f"{prefix}_tuser": fwd(1),
                f"{prefix}_tvalid": fwd(1),
                f"{prefix}_tready": back(1),
            })
        members["rx_bad_frames"] = Out(32)
        members["rx_overflow_frames"] = Out(32)
        for name, member in self.nic.signature.members.items():
            if name not in AXIS_PORTS:
                members[name] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.nic = nic = self.nic

        # -- MAC -> store -> NIC: a bad frame is read out of the store into nothing ---------
        m.submodules.rx_store = store = FrameFifo(self._data_width, self._rx_store_beats)
        # one "bad" bit per input frame, in step with the store's status queue
        m.submodules.bad_queue = bad_queue = fifo.SyncFIFOBuffered(width=1, depth=store.status_depth)
        bad = Signal()                      # tuser seen on an earlier beat of this frame
        accept = Signal()
        m.d.comb += [
            self.s_axis_rx_tready.eq(store.i.ready & bad_queue.w_rdy),
            store.i.valid.eq(self.s_axis_rx_tvalid & bad_queue.w_rdy),
            store.i.payload.data.eq(self.s_axis_rx_tdata),
            store.i.payload.keep.eq(self.s_axis_rx_tkeep),
            store.i.payload.last.eq(self.s_axis_rx_tlast),
            accept.eq(self.s_axis_rx_tvalid & self.s_axis_rx_tready),
            bad_queue.w_data.eq(bad | self.s_axis_rx_tuser),
            bad_queue.w_en.eq(accept & self.s_axis_rx_tlast),
        ]
        with m.If(accept):
            m.d.sync += bad.eq((bad | self.s_axis_rx_tuser) & ~self.s_axis_rx_tlast)

        # Read side: take the next frame's status and bad bit; a stored good frame goes to the
        # NIC, a stored bad one is read and discarded, a frame the store dropped has no beats.
        forwarding = Signal()               # a stored frame is being read out
        discard = Signal()                  # ... and it is bad
        with m.If(~forwarding):
            with m.If(store.status.valid & bad_queue.r_rdy):
                m.d.comb += [store.status.ready.eq(1), bad_queue.r_en.eq(1)]
                with m.If(store.status.payload.stored):
                    m.d.sync += [forwarding.eq(1), discard.eq(bad_queue.r_data)]
                    with m.If(bad_queue.r_data & ~self.rx_bad_frames.all()):
                        m.d.sync += self.rx_bad_frames.eq(self.rx_bad_frames + 1)
        with m.Else():
            m.d.comb += [
                nic.rx.payload.eq(store.o.payload),
                nic.rx.valid.eq(store.o.valid & ~discard),
                store.o.ready.eq(discard | nic.rx.ready),
            ]
            with m.If(store.o.valid & store.o.ready & store.o.payload.last):
                m.d.sync += forwarding.eq(0)
        m.d.comb += self.rx_overflow_frames.eq(store.dropped)

        # -- NIC -> MAC ------------------------------------------------------------------
        m.d.comb += [
            self.m_axis_tx_tdata.eq(nic.tx.payload.data),
            self.m_axis_tx_tkeep.eq(nic.tx.payload.keep),
            self.m_axis_tx_tlast.eq(nic.tx.payload.last),
            self.m_axis_tx_tuser.eq(0),
            self.m_axis_tx_tvalid.eq(nic.tx.valid),
            nic.tx.ready.eq(self.m_axis_tx_tready),
        ]

        # -- everything else, unchanged ----------------------------------------------------
        for name, member in self.nic.signature.members.items():
            if name in AXIS_PORTS:
                continue
            if member.is_port:
                if member.flow == In:
                    m.d.comb += getattr(nic, name).eq(getattr(self, name))
                else:
                    m.d.comb += getattr(self, name).eq(getattr(nic, name))
            else:
                wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(nic, name))
        return m
