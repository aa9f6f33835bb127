"""The pcapng files of a run: every frame at its simulation time, with its fate on the wire.

A lossy scenario (tb.scenarios' ``lossy_wire``, on the golden model) is written with
`model.scenario.write_pcap` and read back with scapy, as Wireshark would show it.
"""

from collections import Counter

import pytest
from scapy.utils import rdpcap

from model.host import Host
from model.scenario import PCAP_SECONDS_PER_TICK, ModelBackend, Runner, write_pcap
from tb.scenarios import DUT_IP, DUT_MAC, NIC_POLICY, SCENARIOS, model_runner, peer_host


def lossy_runner(corrupt):
    """The ``lossy_wire`` scenario run on the model, as `make sim` runs it (corrupt=None),
    or with `corrupt` of the frames corrupted instead of 1% (its 88 frames have none)."""
    if corrupt is None:
        runner = model_runner("lossy_wire", 16)
    else:
        runner = Runner(ModelBackend(Host(DUT_MAC, DUT_IP, NIC_POLICY, name="dut")), peer_host(),
                        seed=1, drop=0.1, duplicate=0.1, reorder=0.1, corrupt=corrupt)
    SCENARIOS["lossy_wire"].fn(runner)
    return runner


@pytest.mark.parametrize("corrupt, fates_seen", [
    (None, {"ok", "drop", "dup", "reorder"}),
    (0.2, {"ok", "drop", "dup", "reorder", "corrupt"}),
])
def test_lossy_scenario_pcapng_has_simulation_times_and_fates(tmp_path, corrupt, fates_seen):
    runner = lossy_runner(corrupt)
    log = runner.wire.log
    path = tmp_path / "lossy_wire.pcapng"
    write_pcap(str(path), log)
    assert path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"          # a pcapng section header
    packets = rdpcap(str(path))
    assert len(packets) == len(log)
    fates = Counter()
    for event, packet in zip(log, packets):
        assert packet.time == event.time * PCAP_SECONDS_PER_TICK
        (comment,) = [c.decode() for c in packet.comments]
        sender = "dut" if event.side == "a" else "peer"
        assert comment.endswith(f"sent tick {event.time} by {sender}"), comment
        if event.fate == "drop":
            assert comment.startswith("dropped by the wire"), comment
            assert not event.delivered
        else:
            assert f"delivered tick {' and '.join(map(str, event.delivered))}" in comment
            assert all(t > event.time for t in event.delivered)
        if "corrupt" in event.fates:
            i, bit = event.flipped
            assert f"corrupted (byte {i} bit {bit} flipped)" in comment
            assert bytes(packet) == event.received != event.frame      # as delivered
            assert event.received[i] ^ event.frame[i] == 1 << bit
        else:
            assert bytes(packet) == event.frame
        if "reorder" in event.fates:
            assert "reordered" in comment
        if "dup" in event.fates:
            assert "duplicated" in comment and len(event.delivered) == 2
        fates.update(event.fates or [event.fate])
    # the run shows every fate the wire deals, and the times move as the run did
    assert fates_seen <= set(fates), fates
    times = [p.time for p in packets]
    assert times == sorted(times) and times[-1] > times[0] + 1     # seconds: the run took 3,000 ticks and more


def test_plain_frames_are_written_too(tmp_path):
    runner = lossy_runner(None)
    path = tmp_path / "dut.pcapng"
    write_pcap(str(path), runner.frames("dut")[:5])
    assert [bytes(p) for p in rdpcap(str(path))] == runner.frames("dut")[:5]
