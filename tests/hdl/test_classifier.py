"""hdl/rx/classifier.py against model/classify.py, on crafted (scapy) and fuzzed frames, at both widths."""

import itertools
import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, IPOption_RR, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from flow.build import lint_component
from hdl.rx.classifier import Classifier
from model.checksum import ones_complement_sum, pseudo_header_sum
from model.classify import Classification, ParsedFields, Verdict, classify
from model.drops import CLASSIFIER_CAUSES, DropCause
from model.protocol import ETH_HEADER, IPV4_HEADER, IpProto, TcpFlag
from tb.amaranth_sim import send_frame
from flow.tools import BUILD

WIDTHS = (8, 64)
OUR_MAC = 0x02_00_00_00_00_01
OUR_IP = 0x0A_00_00_01
OUR_MAC_TEXT = "02:00:00:00:00:01"
OUR_IP_TEXT = "10.0.0.1"
PEER_MAC = "02:00:00:00:00:02"
PEER_IP = "10.0.0.2"


# -- running the RTL --------------------------------------------------------------------------

@dataclass
class Run:
    results: list = field(default_factory=list)    # Classification per frame
    verdict_counts: list = field(default_factory=list)
    drop_counts: list = field(default_factory=list)
    beats: int = 0            # input beats accepted
    cycles: int = 0           # cycles from the first beat accepted to the last one
    stalls: int = 0           # cycles with i.valid high and i.ready low
    beats_before_stall: int = None  # input beats accepted before the first stall
    latencies: list = field(default_factory=list)  # last beat to verdict, per frame
    keys: list = field(default_factory=list)       # the key stream's entries, as dicts
    key_latencies: list = field(default_factory=list)  # key beat (or last) to key, per frame
    keys_first: bool = True   # every key came before its frame's verdict


def verdict_latencies(frames, width):
    """Each frame's verdict latency on an empty queue: LONG_LATENCY for a TCP SYN whose
    options are walked (a whole TCP header; byte 23, the IP protocol, is 6; byte 47, the
    flags, has SYN) and for a frame of at most SHORT_FRAME_BEATS beats, LATENCY otherwise."""
    lanes = width // 8
    protocol_at = ETH_HEADER + 9                    # the IPv4 header's protocol byte
    flags_at = ETH_HEADER + IPV4_HEADER + 13        # the TCP header's flags byte

    def long(frame):
        walked_syn = (len(frame) >= Classifier.HEADER_BYTES and frame[protocol_at] == IpProto.TCP
                      and frame[flags_at] & TcpFlag.SYN)
        return walked_syn or -(-len(frame) // lanes) <= Classifier.SHORT_FRAME_BEATS

    return [Classifier.LONG_LATENCY if long(frame) else Classifier.LATENCY for frame in frames]


def run_classifier(width, frames, pauses=None, sink_pauses=None, timeout=200_000, mtu=1500,
                   key_pauses=None):
    dut = Classifier(width, mtu=mtu)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run()
    sink_pauses = iter(sink_pauses) if sink_pauses is not None else itertools.repeat(False)
    key_pauses = iter(key_pauses) if key_pauses is not None else itertools.repeat(False)
    key_beat = (Classifier.KEY_BYTES - 1) // (width // 8)

    async def key_sink(ctx):
        while True:
            ready = not next(key_pauses)
            ctx.set(dut.key.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.key.valid, dut.key.payload)
            if valid and ready:
                run.keys.append({name: getattr(payload, name) for name in
                                 ("protocol", "src_ip", "dst_ip", "src_port", "dst_port")})

    async def source(ctx):
        ctx.set(dut.our_mac, OUR_MAC)
        ctx.set(dut.our_ip, OUR_IP)
        for frame in frames:
            await send_frame(ctx, dut.i, frame, width, pauses)

    async def sink(ctx):
        for _ in range(timeout):
            if len(run.results) == len(frames):
                break
            ready = not next(sink_pauses)
            ctx.set(dut.verdict.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.verdict.valid, dut.verdict.payload)
            if valid and ready:
                fields = {name: getattr(payload.fields, name) for name in ParsedFields.__dataclass_fields__}
                run.results.append(Classification(Verdict(payload.verdict), DropCause(payload.cause),
                                                  ParsedFields(**fields)))
        else:
            raise TimeoutError(f"{len(run.results)} verdicts for {len(frames)} frames")
        ctx.set(dut.verdict.ready, 0)
        await ctx.tick().repeat(3)
        assert not ctx.get(dut.verdict.valid), "a verdict more than frames sent"
        run.verdict_counts = [ctx.get(dut.verdict_counts[v]) for v in Verdict]
        run.drop_counts = {c: ctx.get(dut.drop_counts[c]) for c in CLASSIFIER_CAUSES}

    async def monitor(ctx):
        cycle, first, last_beats, verdicts = 0, None, [], 0
        beat, key_beats, keys = 0, [], 0
        async for _, _, valid, ready, last, o_valid, o_ready, k_valid, k_ready in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload.last, dut.verdict.valid, dut.verdict.ready,
                dut.key.valid, dut.key.ready):
            if k_valid and k_ready:
                run.key_latencies.append(cycle - key_beats[keys])
                keys += 1
            if valid and ready:
                run.beats += 1
                first = cycle if first is None else first
                run.cycles = cycle - first + 1
                if beat == key_beat or (last and beat < key_beat):
                    key_beats.append(cycle)
                beat = 0 if last else beat + 1
                if last:
                    last_beats.append(cycle)
            if valid and not ready:
                run.stalls += 1
                if run.beats_before_stall is None:
                    run.beats_before_stall = run.beats
            if o_valid and o_ready:
                run.latencies.append(cycle - last_beats[verdicts])
                verdicts += 1
                run.keys_first &= keys >= verdicts
            cycle += 1

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_testbench(key_sink, background=True)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return run


def header_key(frame):
    """The flow key of a frame with at least Classifier.KEY_BYTES bytes, from its bytes."""
    word = lambda start, length: int.from_bytes(frame[start:start + length], "big")
    return {"protocol": frame[23], "src_ip": word(26, 4), "dst_ip": word(30, 4),
            "src_port": word(34, 2), "dst_port": word(36, 2)}


def check_against_model(run, frames, names=None, mtu=1500):
    expected = [classify(frame, OUR_MAC, OUR_IP, mtu) for frame in frames]
    assert len(run.results) == len(frames)
    # One key per frame, in order: its header's flow fields; a FAST verdict's fields equal it.
    assert len(run.keys) == len(frames)
    for n, (frame, want, key) in enumerate(zip(frames, expected, run.keys)):
        if len(frame) >= Classifier.KEY_BYTES:
            assert key == header_key(frame), (names[n] if names else f"frame {n}", key)
        if want.verdict == Verdict.FAST:
            assert key == {name: getattr(want.fields, name) for name in key}
    for n, (frame, want, got) in enumerate(zip(frames, expected, run.results)):
        label = names[n] if names else f"frame {n}"
        assert got == want, (f"{label} ({len(frame)} bytes: {frame[:64].hex()}...)\n"
                             f"  model: {want}\n  rtl:   {got}")
    # Counters: one per verdict and per cause, adding up to the frames seen.
    for verdict in Verdict:
        assert run.verdict_counts[verdict] == sum(r.verdict == verdict for r in expected)
    for cause in CLASSIFIER_CAUSES:
        assert run.drop_counts[cause] == sum(r.cause == cause for r in expected if r.verdict == Verdict.DROP)
    assert sum(run.verdict_counts) == len(frames)
    assert sum(run.drop_counts.values()) == run.verdict_counts[Verdict.DROP]


# -- crafted frames -----------------------------------------------------------------------------

def pad(frame):
    return frame + bytes(max(0, 60 - len(frame)))


def eth(dst=OUR_MAC_TEXT, vlan=False, **kw):
    head = Ether(dst=dst, src=PEER_MAC, **kw)
    return head / Dot1Q(vlan=42) if vlan else head


def ip(dst=OUR_IP_TEXT, **kw):
    return IP(src=PEER_IP, dst=dst, **kw)


def tcp(flags="A", **kw):
    return TCP(sport=40000, dport=80, seq=0x12345678, ack=0x9ABCDEF0, flags=flags, window=0x4321, **kw)


def udp(**kw):
    return UDP(sport=5353, dport=9999, **kw)


def with_byte(frame, offset, value):
    return frame[:offset] + bytes([value]) + frame[offset + 1:]


def refix_ip_checksum(frame, l3=14):
    ihl = (frame[l3] & 0xF) * 4
    header = frame[:l3 + 10] + b"\0\0" + frame[l3 + 12:]
    value = ~ones_complement_sum(header[l3:l3 + ihl]) & 0xFFFF
    return header[:l3 + 10] + value.to_bytes(2, "big") + header[l3 + 12:]


def syn_frame(options, flags="S", payload=b""):
    """A SYN with `options` (raw bytes, EOL-padded to a multiple of 4), unpadded."""
    options = options + bytes(-len(options) % 4)
    return bytes(eth() / ip() / tcp(flags=flags, dataofs=5 + len(options) // 4) / Raw(options + payload))


MSS = lambda value: bytes([2, 4]) + value.to_bytes(2, "big")
NOP, EOL = b"\x01", b"\x00"
SACKOK = b"\x04\x02"
LINUX_SYN_OPTIONS = MSS(1460) + SACKOK + b"\x08\x0a" + bytes(8) + NOP + b"\x03\x03\x07"


def syn_cases():
    """SYNs: FAST with their MSS option while the walk of SYN_OPTIONS_WALKED options ends,
    SLOW when it does not (rule 21)."""
    fast, slow, none = Verdict.FAST, Verdict.SLOW, DropCause.NONE
    return [
        ("syn", pad(bytes(eth() / ip() / tcp(flags="S"))), fast, none),
        ("syn of 54 bytes", bytes(eth() / ip() / tcp(flags="S")), fast, none),
        ("syn with mss option", pad(bytes(eth() / ip() / tcp(flags="S", options=[("MSS", 1460)]))), fast, none),
        ("syn, linux's options", syn_frame(LINUX_SYN_OPTIONS), fast, none),
        ("syn-ack, linux's options and data", syn_frame(LINUX_SYN_OPTIONS, "SA", b"early"), fast, none),
        ("syn, mss 65535", syn_frame(MSS(65535)), fast, none),
        ("syn, mss option 0 is ignored", syn_frame(MSS(1000) + MSS(0)), fast, none),
        ("syn, the last mss option counts", syn_frame(MSS(1000) + MSS(1200)), fast, none),
        ("syn, mss option of length 3 is skipped", syn_frame(b"\x02\x03\x05" + MSS(900)), fast, none),
        ("syn, a bad option ends the walk", syn_frame(b"\x08\x00" + MSS(900)), fast, none),
        ("syn, an option past the header ends it", syn_frame(MSS(900) + b"\x08\x0a"), fast, none),
        ("syn, eol ends it", syn_frame(EOL + MSS(900)), fast, none),
        ("syn, 7 options to the end", syn_frame(NOP * 5 + b"\x03\x03\x07" + MSS(1400)), fast, none),
        ("syn, 8 options", syn_frame(NOP * 6 + b"\x04\x02" + MSS(1400)), slow, none),
        ("syn, mss then 6 nops and eol padding", syn_frame(MSS(1400) + NOP * 6), slow, none),
        ("syn, 40 bytes of nops", syn_frame(NOP * 40), slow, none),
        ("ack with an mss option: not read", pad(syn_frame(MSS(700), "A")), fast, none),
        ("syn, mss and wscale 7", syn_frame(MSS(1460) + NOP + b"\x03\x03\x07"), fast, none),
        ("syn, wscale 0", syn_frame(NOP + b"\x03\x03\x00"), fast, none),
        ("syn, wscale 15 counts as 14", syn_frame(NOP + b"\x03\x03\x0f"), fast, none),
        ("syn, wscale 255 counts as 14", syn_frame(NOP + b"\x03\x03\xff"), fast, none),
        ("syn, wscale of length 4 is skipped", syn_frame(b"\x03\x04\x07\x00"), fast, none),
        ("syn, the last wscale counts", syn_frame(b"\x03\x03\x02\x03\x03\x09" + NOP * 2), fast, none),
        ("syn, wscale past the header", syn_frame(MSS(900) + NOP * 2 + b"\x03\x03"), fast, none),
        ("syn, wscale as the 8th option", syn_frame(NOP * 7 + b"\x03\x03\x07"), slow, none),
        ("ack with a wscale option: not read", pad(syn_frame(NOP + b"\x03\x03\x07", "A")), fast, none),
        ("syn, sackok", syn_frame(SACKOK + NOP * 2), fast, none),
        ("syn, linux's options without timestamps",
         syn_frame(MSS(1460) + NOP * 2 + SACKOK + NOP + b"\x03\x03\x07"), fast, none),
        ("syn, sackok of length 3 is skipped", syn_frame(b"\x04\x03\x00" + NOP), fast, none),
        ("syn, sackok as the last 2 bytes", syn_frame(MSS(1460) + NOP * 2 + SACKOK), fast, none),
        # its length byte is the payload's first: a 2 the walk must not read
        ("syn, sackok past the header", syn_frame(MSS(900) + NOP * 3 + b"\x04", payload=b"\x02"), fast, none),
        ("syn, sackok as the 7th option", syn_frame(NOP * 6 + SACKOK), fast, none),
        ("syn, sackok as the 8th option", syn_frame(NOP * 7 + SACKOK), slow, none),
        ("syn, sackok stays after a bad option", syn_frame(SACKOK + b"\x08\x00"), fast, none),
        ("syn, sackok after a bad option", syn_frame(b"\x08\x00" + SACKOK), fast, none),
        ("syn, sack blocks walked past", syn_frame(b"\x05\x0a" + bytes(8) + SACKOK), fast, none),
        ("ack with a sackok option: not read", pad(syn_frame(NOP * 2 + SACKOK, "A")), fast, none),
    ]


def crafted_frames():
    """(name, frame, expected verdict, expected cause): every verdict and every drop cause."""
    payload = Raw(b"hello, fast path!")
    fast, slow, drop = Verdict.FAST, Verdict.SLOW, Verdict.DROP
    none = DropCause.NONE
    ok_tcp = pad(bytes(eth() / ip() / tcp() / payload))
    cases = [
        ("tcp ack with data", ok_tcp, fast, none),
        ("pure ack, padded to 60", pad(bytes(eth() / ip() / tcp())), fast, none),
        ("tcp fin+rst", pad(bytes(eth() / ip() / tcp(flags="FR"))), fast, none),
        # Linux stops parsing options at a bad one and keeps the segment
        ("tcp option of length 0", pad(bytes(eth() / ip() / tcp(dataofs=6) / Raw(b"\x08\x00\x00\x00data"))), fast, none),
        ("tcp option past the header", pad(bytes(eth() / ip() / tcp(dataofs=6) / Raw(b"\x01\x08\x0a\x00data"))), fast, none),
        ("tcp timestamps option", pad(bytes(eth() / ip() / tcp(options=[("Timestamp", (1, 2))]) / payload)), fast, none),
        ("udp", pad(bytes(eth() / ip() / udp() / payload)), fast, none),
        ("udp without checksum", pad(bytes(eth() / ip() / udp(chksum=0) / payload)), fast, none),
        ("tcp 1514 bytes (mtu 1500)", bytes(eth() / ip() / tcp() / Raw(bytes(1460))), fast, none),
        ("ttl 0 is delivered", pad(bytes(eth() / ip(ttl=0) / tcp())), fast, none),
        ("trailing bytes after ip packet", bytes(eth() / ip() / tcp() / payload) + b"\xEE" * 30, fast, none),
        ("arp", pad(bytes(eth() / ARP(pdst=OUR_IP_TEXT))), slow, none),
        ("ipv6", pad(bytes(eth() / IPv6() / UDP())), slow, none),
        ("broadcast udp", pad(bytes(eth(dst="ff:ff:ff:ff:ff:ff") / ip(dst="255.255.255.255") / udp())), slow, none),
        ("ip options", pad(bytes(eth() / ip(options=[IPOption_RR()]) / tcp())), slow, none),
        ("fragment, more fragments", pad(bytes(eth() / ip(flags="MF") / tcp())), slow, none),
        ("fragment, offset", pad(bytes(eth() / ip(frag=100) / Raw(bytes(30)))), slow, none),
        ("other destination ip", pad(bytes(eth() / ip(dst="10.0.0.9") / tcp())), slow, none),
        ("icmp", pad(bytes(eth() / ip() / ICMP())), slow, none),
        *syn_cases(),
        # a tagged frame is host software's, whatever it holds: the socket table has no VLAN
        ("tcp in vlan 5", pad(bytes(eth(vlan=True) / ip() / tcp() / payload)), slow, none),
        ("udp in vlan, 1518 bytes", bytes(eth(vlan=True) / ip() / udp() / Raw(bytes(1472))), slow, none),
        ("bad tcp checksum in vlan", pad(bytes(eth(vlan=True) / ip() / tcp(chksum=0xBEEF))), slow, none),
        ("double vlan tag", pad(bytes(eth(vlan=True) / Dot1Q(vlan=7) / ip() / tcp())), slow, none),
        ("runt: 13 bytes", ok_tcp[:13], drop, DropCause.RUNT),
        ("runt: 1 byte", ok_tcp[:1], drop, DropCause.RUNT),
        ("runt: vlan tag cut", bytes(eth(vlan=True) / ip())[:16], drop, DropCause.RUNT),
        ("runt: ip header cut", ok_tcp[:30], drop, DropCause.RUNT),
        ("runt: tcp segment of 10 bytes", pad(bytes(eth() / ip(proto=6) / Raw(bytes(10)))), drop, DropCause.RUNT),
        ("runt: udp datagram of 4 bytes", pad(bytes(eth() / ip(proto=17) / Raw(bytes(4)))), drop, DropCause.RUNT),
        ("oversize 1515", bytes(eth() / ip() / tcp() / Raw(bytes(1461))), drop, DropCause.OVERSIZE),
        ("oversize 1518 (mtu 1504)", bytes(eth() / ip() / tcp() / Raw(bytes(1464))), drop, DropCause.OVERSIZE),
        ("oversize 1519 with vlan", bytes(eth(vlan=True) / ip() / tcp() / Raw(bytes(1461))), drop, DropCause.OVERSIZE),
        ("oversize 9000", bytes(eth() / ip() / udp() / Raw(bytes(9000 - 42))), drop, DropCause.OVERSIZE),
        ("wrong mac", pad(bytes(eth(dst="02:00:00:00:00:03") / ip() / tcp())), drop, DropCause.WRONG_MAC),
        ("multicast mac", pad(bytes(eth(dst="01:00:5e:00:00:01") / ip() / udp())), drop, DropCause.WRONG_MAC),
        ("ip version 6 in ipv4 ethertype", pad(bytes(eth(type=0x0800) / ip(version=6) / tcp())), drop, DropCause.BAD_VERSION),
        ("ihl 4", pad(bytes(eth() / ip(ihl=4) / tcp())), drop, DropCause.BAD_IHL),
        ("total length beyond frame", pad(bytes(eth() / ip(len=200) / tcp())), drop, DropCause.BAD_IP_LENGTH),
        ("total length below header", pad(bytes(eth() / ip(len=16) / tcp())), drop, DropCause.BAD_IP_LENGTH),
        ("bad ip checksum", pad(bytes(eth() / ip(chksum=0x1234) / tcp())), drop, DropCause.BAD_IP_CHECKSUM),
        ("tcp data offset 4", pad(bytes(eth() / ip() / tcp(dataofs=4))), drop, DropCause.BAD_TCP_OFFSET),
        ("tcp data offset past segment", pad(bytes(eth() / ip() / tcp(dataofs=15) / payload)), drop, DropCause.BAD_TCP_OFFSET),
        ("udp length mismatch", pad(bytes(eth() / ip() / udp(len=12) / payload)), drop, DropCause.BAD_UDP_LENGTH),
        ("bad tcp checksum", pad(bytes(eth() / ip() / tcp(chksum=0xBEEF) / payload)), drop, DropCause.BAD_L4_CHECKSUM),
        ("bad udp checksum", pad(bytes(eth() / ip() / udp(chksum=0xBEEF) / payload)), drop, DropCause.BAD_L4_CHECKSUM),
    ]
    return cases


def test_crafted_frames_model():
    """The reference classifier gives each crafted frame the verdict it was built for."""
    for name, frame, verdict, cause in crafted_frames():
        got = classify(frame, OUR_MAC_TEXT, OUR_IP_TEXT)
        assert (got.verdict, got.cause) == (verdict, cause), name
    covered = {(v, c) for _, _, v, c in crafted_frames()}
    assert {c for v, c in covered if v == Verdict.DROP} == set(CLASSIFIER_CAUSES)
    assert {v for v, _ in covered} == set(Verdict)
    # Parsed fields of a FAST frame.
    frame = bytes(eth() / ip() / tcp(options=[("NOP", None)] * 4) / Raw(b"abc"))
    got = classify(frame, OUR_MAC, OUR_IP)
    assert got.fields == ParsedFields(protocol=IpProto.TCP, src_ip=0x0A000002, dst_ip=OUR_IP, src_port=40000,
                                      dst_port=80, seq=0x12345678, ack=0x9ABCDEF0, flags=TcpFlag.ACK,
                                      window=0x4321, data_offset=6, payload_offset=14 + 20 + 24,
                                      payload_length=3)
    assert frame[got.fields.payload_offset:] == b"abc"


def test_syn_wscale_model():
    """The window scale each SYN case carries on the fast path ((offered, shift)), as Linux
    reads it: only on a SYN, a shift above 14 as 14, the last valid option counts."""
    want = {"syn, mss and wscale 7": (1, 7), "syn, wscale 0": (1, 0), "syn, wscale 15 counts as 14": (1, 14),
            "syn, wscale 255 counts as 14": (1, 14), "syn, wscale of length 4 is skipped": (0, 0),
            "syn, the last wscale counts": (1, 9), "syn, wscale past the header": (0, 0),
            "ack with a wscale option: not read": (0, 0), "syn, linux's options": (1, 7),
            "syn, linux's options without timestamps": (1, 7), "syn": (0, 0)}
    for name, frame, verdict, _ in syn_cases():
        if name in want:
            f = classify(frame, OUR_MAC, OUR_IP).fields
            assert (f.wscale_offered, f.wscale) == want[name], name


def test_syn_sack_permitted_model():
    """The SYN cases whose SACK-permitted option the fast path carries, as Linux reads it:
    only on a SYN, only of length 2, kept once seen, not read past a bad option."""
    want = {"syn, linux's options", "syn-ack, linux's options and data",
            "syn, linux's options without timestamps", "syn, sackok", "syn, sackok as the last 2 bytes",
            "syn, sackok as the 7th option", "syn, sackok stays after a bad option",
            "syn, sack blocks walked past"}
    got = {name for name, frame, _, _ in syn_cases() if classify(frame, OUR_MAC, OUR_IP).fields.sack_permitted}
    assert got == want


def test_syn_mss_model():
    """The MSS each SYN case carries on the fast path (0: none), as Linux reads it."""
    want = {"syn": 0, "syn of 54 bytes": 0, "syn with mss option": 1460, "syn, linux's options": 1460,
            "syn-ack, linux's options and data": 1460, "syn, mss 65535": 65535,
            "syn, mss option 0 is ignored": 1000, "syn, the last mss option counts": 1200,
            "syn, mss option of length 3 is skipped": 900, "syn, a bad option ends the walk": 0,
            "syn, an option past the header ends it": 900, "syn, eol ends it": 0,
            "syn, 7 options to the end": 1400, "ack with an mss option: not read": 0,
            "syn, linux's options without timestamps": 1460}
    got = {name: classify(frame, OUR_MAC, OUR_IP).fields.mss for name, frame, verdict, _ in syn_cases()
           if verdict == Verdict.FAST and "wscale" not in name and "sack" not in name}
    assert got == want
    payload = classify(syn_frame(LINUX_SYN_OPTIONS, "SA", b"early"), OUR_MAC, OUR_IP).fields
    assert payload.payload_length == 5 and payload.data_offset == 10


@pytest.mark.parametrize("width", WIDTHS)
def test_crafted_frames(width):
    cases = crafted_frames()
    frames = [frame for _, frame, _, _ in cases]
    run = run_classifier(width, frames)
    check_against_model(run, frames, [name for name, *_ in cases])
    assert run.stalls == 0
    assert run.latencies == verdict_latencies(frames, width)
    assert set(run.key_latencies) == {Classifier.KEY_LATENCY} and run.keys_first


@pytest.mark.parametrize("width", WIDTHS)
def test_truncated_at_every_byte(width):
    """Every prefix of a TCP frame and of a VLAN UDP frame: a verdict each, and no hang."""
    frames = []
    for whole in (pad(bytes(eth() / ip() / tcp() / Raw(b"0123456789"))),
                  pad(bytes(eth(vlan=True) / ip() / udp() / Raw(b"abcdef")))):
        frames += [whole[:n] for n in range(1, len(whole) + 1)]
    frames.append(pad(bytes(eth() / ip() / tcp())))   # and the next frame still classifies
    check_against_model(run_classifier(width, frames), frames)


# -- fuzzing --------------------------------------------------------------------------------

def fix_checksums(frame, fix_ip, fix_l4):
    """Recompute the IP and/or L4 checksum of a mutated frame, as far as its bytes allow."""
    l3 = 18 if frame[12:14] == b"\x81\x00" else 14
    if len(frame) < l3 + 20:
        return frame
    ihl = (frame[l3] & 0xF) * 4
    if fix_ip and 20 <= ihl and l3 + ihl <= len(frame):
        frame = refix_ip_checksum(frame, l3)
    total = int.from_bytes(frame[l3 + 2:l3 + 4], "big")
    proto = frame[l3 + 9]
    at = {6: 16, 17: 6}.get(proto)
    l4 = l3 + ihl
    if fix_l4 and at is not None and ihl >= 20 and l4 + at + 2 <= l3 + total <= len(frame):
        segment = frame[l4:l3 + total]
        segment = segment[:at] + b"\0\0" + segment[at + 2:]
        pseudo = pseudo_header_sum(int.from_bytes(frame[l3 + 12:l3 + 16], "big"),
                                   int.from_bytes(frame[l3 + 16:l3 + 20], "big"), proto, total - ihl)
        value = ~ones_complement_sum(segment, pseudo) & 0xFFFF
        frame = frame[:l4 + at] + value.to_bytes(2, "big") + frame[l4 + at + 2:]
    return frame


@st.composite
def fuzz_frames(draw):
    """A valid-looking frame, then malformed: fields overwritten, bytes flipped, cut short."""
    vlan = draw(st.booleans())
    proto = draw(st.sampled_from(["tcp", "udp", "tcp", "udp", "icmp"]))
    payload = Raw(draw(st.binary(max_size=48)))
    options = draw(st.lists(st.sampled_from([NOP, EOL, MSS(1460), MSS(536), MSS(0), b"\x04\x02",
                                             b"\x03\x03\x07", b"\x08\x0a" + bytes(8), b"\x02\x03\x05",
                                             b"\x05\x01", b"\x1e\x2a"]), max_size=9))
    head = eth(vlan=vlan,
               dst=draw(st.sampled_from([OUR_MAC_TEXT, OUR_MAC_TEXT, OUR_MAC_TEXT, "ff:ff:ff:ff:ff:ff",
                                         "02:00:00:00:00:07"])))
    dst = draw(st.sampled_from([OUR_IP_TEXT, OUR_IP_TEXT, "10.0.0.3"]))
    options = b"".join(options)[:40]
    options += bytes(-len(options) % 4)
    l4 = {"tcp": lambda: tcp(flags=draw(st.sampled_from(["A", "PA", "S", "SA", "S", "SA", "F", "R", ""])),
                             dataofs=5 + len(options) // 4) / Raw(options),
          "udp": udp, "icmp": ICMP}[proto]()
    frame = pad(bytes(head / ip(dst=dst) / l4 / payload))
    l3 = 18 if vlan else 14
    # Overwrite header fields with chosen or random values.
    for _ in range(draw(st.integers(0, 3))):
        offset = draw(st.sampled_from([
            l3, l3, l3 + 2, l3 + 3, l3 + 6, l3 + 7, l3 + 9, l3 + 32, l3 + 32, l3 + 24, l3 + 25, l3 + 33,
            12, 13, 16, 17, draw(st.integers(0, len(frame) - 1))]))
        if offset < len(frame):
            frame = with_byte(frame, offset, draw(st.integers(0, 255)))
    # Random bit flips anywhere.
    for _ in range(draw(st.integers(0, 2))):
        offset = draw(st.integers(0, len(frame) - 1))
        frame = with_byte(frame, offset, frame[offset] ^ (1 << draw(st.integers(0, 7))))
    frame = fix_checksums(frame, draw(st.booleans()), draw(st.booleans()))
    # Extra trailing bytes or a cut at any byte.
    choice = draw(st.sampled_from(["keep", "keep", "cut", "extend"]))
    if choice == "cut":
        frame = frame[:draw(st.integers(1, len(frame)))]
    elif choice == "extend":
        frame += draw(st.binary(min_size=1, max_size=20))
    return frame


@pytest.mark.parametrize("width", WIDTHS)
@settings(max_examples=15)
@given(frames=st.lists(fuzz_frames(), min_size=1, max_size=25))
def test_fuzz_against_model(width, frames):
    run = run_classifier(width, frames)
    check_against_model(run, frames)
    assert run.latencies == verdict_latencies(frames, width)


@pytest.mark.campaign
@pytest.mark.parametrize("width", WIDTHS)
@settings(max_examples=400)
@given(frames=st.lists(fuzz_frames(), min_size=1, max_size=40))
def test_campaign_fuzz_against_model(width, frames):
    check_against_model(run_classifier(width, frames), frames)


# -- streaming ------------------------------------------------------------------------------

def stream_mix(rng, count):
    """Back-to-back frames of every kind and size, short ones (one beat) included."""
    cases = crafted_frames()
    frames = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.2:
            frames.append(rng.randbytes(rng.randrange(1, 9)))
        elif kind < 0.6:
            frames.append(rng.choice(cases)[1])
        else:
            frames.append(pad(bytes(eth() / ip() / tcp() / Raw(rng.randbytes(rng.randrange(0, 600))))))
    return frames


@pytest.mark.parametrize("width", WIDTHS)
def test_back_to_back_line_rate(width):
    rng = random.Random(99 + width)
    frames = stream_mix(rng, 120 if width == 64 else 40)
    run = run_classifier(width, frames)
    check_against_model(run, frames)
    assert run.stalls == 0, "ready dropped with the verdict sink always ready"
    assert run.cycles == run.beats
    assert run.latencies == verdict_latencies(frames, width)
    assert set(run.key_latencies) == {Classifier.KEY_LATENCY} and run.keys_first
    print(f"\nclassifier width {width}: {len(frames)} frames, {run.beats} beats in {run.cycles} cycles "
          f"({run.beats / run.cycles:.3f} beats/clock), verdict {Classifier.LATENCY} cycles after last beat "
          f"({Classifier.LONG_LATENCY} for a SYN or a frame of {Classifier.SHORT_FRAME_BEATS} beats or fewer)")


@pytest.mark.parametrize("width", WIDTHS)
def test_syn_options_back_to_back(width):
    """SYNs with options right behind each other and behind or before runts, unpadded, at
    line rate: each SYN's option walk ends before the next frame's option bytes overwrite its
    own and before the next walk starts (the shortest SYN is as many beats as the walk)."""
    rng = random.Random(7 + width)
    syns = [frame for _, frame, *_ in syn_cases()]
    frames = []
    for _ in range(60 if width == 64 else 20):
        frames.append(rng.choice(syns))
        if rng.random() < 0.3:
            frames.append(rng.randbytes(rng.randrange(1, 9)))
    run = run_classifier(width, frames)
    check_against_model(run, frames)
    assert run.stalls == 0 and run.cycles == run.beats


@pytest.mark.parametrize("width", WIDTHS)
def test_verdict_backpressure(width):
    """A slow verdict sink stalls the input; no verdict is lost, duplicated or reordered."""
    rng = random.Random(5 + width)
    frames = stream_mix(rng, 80 if width == 64 else 30) + [b"\x01"] * 20
    run = run_classifier(width, frames, pauses=(rng.random() < 0.1 for _ in itertools.count()),
                         sink_pauses=(rng.random() < 0.8 for _ in itertools.count()))
    check_against_model(run, frames)
    assert run.stalls > 0


@pytest.mark.parametrize("width", WIDTHS)
def test_queue_fills_before_ready_drops(width):
    """With the verdict sink held off, one-beat frames back to back: the classifier takes
    exactly as many frames as its verdict queue holds (it drops `i.ready` no later, so no
    verdict is written into a full queue and lost, and no sooner), then gives every verdict."""
    depth = Classifier.QUEUE_DEPTH
    frames = [bytes([n]) for n in range(depth + 8)]
    held = 4 * depth
    run = run_classifier(width, frames, sink_pauses=(n < held for n in itertools.count()))
    check_against_model(run, frames)
    assert run.beats_before_stall == depth


@pytest.mark.parametrize("width", WIDTHS)
def test_key_queue_fills_before_ready_drops(width):
    """With the key sink held off, one-beat frames back to back: the classifier takes exactly
    as many frames as its key queue holds, then gives every key and verdict; a key sink that
    pauses at random loses, duplicates or reorders no key."""
    depth = Classifier.KEY_QUEUE_DEPTH
    frames = [bytes([n]) for n in range(depth + 8)]
    run = run_classifier(width, frames, key_pauses=(n < 4 * depth for n in itertools.count()))
    check_against_model(run, frames)
    assert run.beats_before_stall == depth
    rng = random.Random(9 + width)
    frames = stream_mix(rng, 40 if width == 64 else 12)
    run = run_classifier(width, frames, key_pauses=(rng.random() < 0.7 for _ in itertools.count()))
    check_against_model(run, frames)


# -- construction and lint ----------------------------------------------------------------

def test_data_width_message():
    with pytest.raises(TypeError, match=r"^Data width must be 8 or 64, not 32$"):
        Classifier(32)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "32", True])
def test_counter_width_message(bad):
    with pytest.raises(TypeError, match=rf"^Counter width must be a positive integer, not {bad!r}$"):
        Classifier(8, counter_width=bad)


@pytest.mark.parametrize("bad", [67, 9001, 1500.0, True])
def test_mtu_message(bad):
    with pytest.raises(TypeError, match=rf"^MTU must be an integer from 68 to 9000, not {bad!r}$"):
        Classifier(8, mtu=bad)


@pytest.mark.parametrize("width", WIDTHS)
def test_mtu(width):
    """The frame limit follows the MTU (Policy.mtu): MTU + 14 bytes, MTU + 18 when tagged."""
    frames = [bytes(eth(vlan=vlan) / ip() / udp() / Raw(bytes(n)))
              for vlan in (False, True) for n in (1000 - 29, 1000 - 28, 1000 - 27)]
    assert [len(f) for f in frames] == [1013, 1014, 1015, 1017, 1018, 1019]
    run = run_classifier(width, frames, mtu=1000)
    check_against_model(run, frames, mtu=1000)
    assert [r.cause == DropCause.OVERSIZE for r in run.results] == [False, False, True] * 2


def test_counters_saturate():
    dut = Classifier(64, counter_width=2)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        ctx.set(dut.verdict.ready, 1)
        for _ in range(5):
            await send_frame(ctx, dut.i, b"\x00", 64)
        await ctx.tick().repeat(Classifier.LATENCY + 2)
        assert ctx.get(dut.verdict_counts[Verdict.DROP]) == 3
        assert ctx.get(dut.drop_counts[DropCause.RUNT]) == 3

    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", WIDTHS)
def test_lint(width):
    lint_component(Classifier(width), f"classifier_{width}", BUILD / "test" / "classifier")


@pytest.mark.parametrize("width", WIDTHS)
def test_destination_mac_off_by_one_byte(width):
    """Our MAC with any one of its 6 bytes changed is dropped as WRONG_MAC: the compare is
    made in 16-bit parts a clock ahead, so each part and each byte lane is tried, back to back
    with frames to our MAC between them."""
    ours = OUR_MAC.to_bytes(6, "big")
    frames = []
    for n in range(6):
        for flip in (0x01, 0x80):
            other = bytearray(ours)
            other[n] ^= flip
            frames.append(pad(bytes(eth(dst=":".join(f"{b:02x}" for b in other)) / ip() / tcp())))
            frames.append(pad(bytes(eth() / ip() / tcp())))
    run = run_classifier(width, frames)
    check_against_model(run, frames)
    expected = [classify(frame, OUR_MAC, OUR_IP, 1500) for frame in frames]
    assert [r.cause for r in expected[0::2]] == [DropCause.WRONG_MAC] * 12
    assert all(r.verdict == Verdict.FAST for r in expected[1::2])
