"""Host-level behaviour: ARP, the clock, and determinism."""

from conftest import A_IP, A_MAC, B_IP, make_pair

from model.host import Host
from model.packet import Arp, build_arp_frame, mac_bytes, parse_frame


def test_arp_request_is_answered_and_learnt():
    host = Host(A_MAC, A_IP)
    asker = mac_bytes("02:00:00:00:00:77")
    host.receive_frame(build_arp_frame(asker, b"\xff" * 6, Arp(1, asker, "192.0.2.77", bytes(6), A_IP)))
    reply = parse_frame(host.transmit()[0])
    assert reply.dst_mac == asker and reply.arp == Arp(2, mac_bytes(A_MAC), A_IP, asker, "192.0.2.77")
    assert host.neighbors["192.0.2.77"] == asker
    host.receive_frame(build_arp_frame(asker, b"\xff" * 6, Arp(1, asker, "192.0.2.77", bytes(6), "192.0.2.99")))
    assert host.transmit() == []                       # not our address: no answer


def run_blackhole(tick_by_tick: bool):
    """Data whose ACKs are lost, with the clock moved one tick at a time or in jumps."""
    pair = make_pair()
    pair.wire.block = lambda side, frame: side == "b" and pair.wire.now < 5000
    pair.pa.send(pair.ca, b"r" * 3000)
    end = pair.wire.now + 8000
    if tick_by_tick:
        while pair.wire.now < end:
            pair.wire.settle()
            pair.wire.advance_to(pair.wire.now + 1)
            pair.wire.settle()
    else:
        pair.wire.run(max_ticks=end - pair.wire.now)
    return [(e.time, e.side, e.frame, e.fate) for e in pair.wire.log]


def test_timers_do_not_depend_on_how_the_clock_moves():
    jumps, ticks = run_blackhole(False), run_blackhole(True)
    assert jumps == ticks
    assert len(jumps) > 10


def test_same_seed_same_wire():
    runs = []
    for _ in range(2):
        pair = make_pair(seed=9, drop=0.2, duplicate=0.2, reorder=0.2, corrupt=0.05)
        pair.pa.send(pair.ca, bytes(range(256)) * 200)
        pair.settle(20_000)
        runs.append([(e.time, e.side, e.frame, e.fate) for e in pair.wire.log])
        assert pair.pb.recv(pair.sb, 100_000) == bytes(range(256)) * 200
    assert runs[0] == runs[1]
    assert B_IP != A_IP
