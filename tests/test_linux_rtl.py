"""The RTL NIC (on Verilator) and the golden model against the Linux kernel's TCP over a TAP.

Each program of ``tb.linux_programs`` runs twice: with the golden model in this process
(fast) and with the RTL NIC in a cocotb simulation that creates its own network namespace.
Both must give the outcome every byte arriving and every close being clean implies
(``expected_outcome``: lengths and SHA-256 of what each side received, how each connection
ended, who sent RSTs), so the kernel checks the RTL, and any difference between RTL and model
shows as one of them failing. A failure names the pcapng of the wire (build/linux/).

Skipped only when not root, without /dev/net/tun or without ``ip``, and never when ``CI``
is set. The 1 MiB echo (1 MiB each way) runs with ``--campaign``.
"""

import os

import pytest

from tb.linux_bridge import Impairment
from tb.linux_programs import PROGRAMS, expected_outcome, outcome
from tb.netns import unavailable_reason

pytestmark = pytest.mark.netns

CI_PROGRAMS = ["kernel_connects", "host_connects", "kernel_resets", "lossy_echo"]


@pytest.fixture(autouse=True)
def _needs_namespace():
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this test must run, not skip")
        pytest.skip(reason)


def _check(name: str, report: dict):
    assert outcome(report) == expected_outcome(PROGRAMS[name]), (
        f"{name}: the outcome differs from a clean exchange (pcapng: {report['pcapng']})\n"
        f"expected {expected_outcome(PROGRAMS[name])}\nactual   {outcome(report)}")


@pytest.mark.parametrize("name", CI_PROGRAMS)
def test_model_against_linux(name):
    from tb.linux_rtl import run_on_model
    report = run_on_model(name)
    _check(name, report)
    if PROGRAMS[name].impairment is None:
        assert report["retransmissions"] == {"linux": {}, "host": {}}, report["pcapng"]


@pytest.mark.parametrize("name", CI_PROGRAMS)
def test_rtl_against_linux(name):
    from tb.linux_rtl import run_on_rtl
    report = run_on_rtl(name, "verilator")
    _check(name, report)
    if PROGRAMS[name].impairment is not None:
        assert report["fates"].get("dropped") and report["fates"].get("reordered") \
            and report["fates"].get("duplicated"), f"the bridge impaired nothing: {report['fates']}"
    else:
        # nothing lost: any retransmission is the simulator's slowness, which the waiting
        # clock keeps from the NIC's timers; the kernel's adapt (RTT estimate)
        assert "loss" not in report["retransmissions"]["host"], report["retransmissions"]
        assert report["fates"] == {"delivered": report["frames"]}


@pytest.mark.campaign
@pytest.mark.parametrize("side", ["model", "rtl"])
def test_one_mib_each_way(side):
    from tb.linux_rtl import run_on_model, run_on_rtl
    report = run_on_model("echo_1mib") if side == "model" else run_on_rtl("echo_1mib")
    _check("echo_1mib", report)


# --- the bridge's own behaviour, without a simulator -----------------------------------------


def test_impairment_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="loss must be a probability in \\[0, 1\\), not 1.5"):
        Impairment(loss=1.5)
    with pytest.raises(ValueError, match="must add up to less than 1"):
        Impairment(loss=0.5, duplicate=0.3, reorder=0.3)


def test_unknown_program_is_named():
    from tb.linux_rtl import run_on_model
    with pytest.raises(KeyError, match="No Linux program 'nope'; there are kernel_connects"):
        run_on_model("nope")


def _segment(direction, seq, ack=0, length=0, flags="A", window=2048, fate="delivered"):
    """A Crossing: Linux (192.0.2.1:5000) and the host (192.0.2.2:7) exchanging segments."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from tb.linux_bridge import TO_HOST, Crossing
    ends = (("192.0.2.1", 5000), ("192.0.2.2", 7))
    src, dst = ends if direction == TO_HOST else ends[::-1]
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                  IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags, window=window)
                  / (b"x" * length))
    return Crossing(0.0, direction, frame, fate)


@pytest.mark.parametrize("fates, causes", [
    (("delivered", "delivered"), {"slow_simulator": 1}),     # the ACK simply came late
    (("dropped", "delivered"), {"loss": 1}),                 # the original was lost
    (("delivered", "dropped"), {"loss": 1}),                 # its ACK was lost
    (("reordered", "delivered"), {"reorder": 1}),
])
def test_retransmission_causes(fates, causes):
    from tb.linux_bridge import TO_HOST, TO_LINUX, retransmissions
    original, ack_fate = fates
    trace = [_segment(TO_LINUX, 100, 1, flags="S"), _segment(TO_HOST, 1, 101, flags="SA"),
             _segment(TO_LINUX, 101, 2),
             _segment(TO_LINUX, 101, 2, length=500, flags="PA", fate=original),
             _segment(TO_LINUX, 601, 2, length=500, flags="PA"),
             _segment(TO_HOST, 2, 601 if original == "delivered" else 101, fate=ack_fate),
             _segment(TO_LINUX, 601, 2, length=500, flags="PA")]      # sent again
    assert retransmissions(trace) == {"linux": {}, "host": causes}


def test_retransmission_into_a_zero_window_is_a_probe():
    from tb.linux_bridge import TO_HOST, TO_LINUX, retransmissions
    trace = [_segment(TO_HOST, 100, 1, flags="S"), _segment(TO_LINUX, 1, 101, flags="SA"),
             _segment(TO_HOST, 101, 2, window=0),
             _segment(TO_LINUX, 2, 101, length=1, flags="PA"),
             _segment(TO_LINUX, 2, 101, length=1, flags="PA")]
    assert retransmissions(trace) == {"linux": {}, "host": {"window_probe": 1}}


def _closed_by_both(last_ack_fate="delivered"):
    """An exchange the host closes second: Linux's FIN, the host's FIN, Linux's last ACK."""
    from tb.linux_bridge import TO_HOST, TO_LINUX
    return [_segment(TO_HOST, 100, 1, flags="S"), _segment(TO_LINUX, 1, 101, flags="SA"),
            _segment(TO_HOST, 101, 2),
            _segment(TO_HOST, 101, 2, length=10, flags="FA"),
            _segment(TO_LINUX, 2, 112, flags="FA"),
            _segment(TO_HOST, 112, 3, fate=last_ack_fate)]


def test_an_rst_after_a_clean_close_is_late_not_an_abort():
    from tb.linux_bridge import TO_HOST, TO_LINUX, resets
    trace = _closed_by_both("duplicated") + [_segment(TO_LINUX, 3, 0, flags="R")]
    assert resets(trace) == ({"linux": 0, "host": 0}, {"linux": 0, "host": 1})
    # the same RST before the host's FIN was acknowledged aborts the connection
    trace = _closed_by_both("dropped") + [_segment(TO_LINUX, 3, 0, flags="R")]
    assert resets(trace) == ({"linux": 0, "host": 1}, {"linux": 0, "host": 0})
    # and so does one from Linux, which never got the host's FIN before it
    trace = _closed_by_both()[:4] + [_segment(TO_HOST, 112, 2, flags="R")]
    assert resets(trace)[0] == {"linux": 1, "host": 0}
