"""Why a frame was not taken: one list of drop causes for the model, the RTL and the testbench.

Each received frame that is dropped is counted once, under one :class:`DropCause`. The model's
host counts its drops by it (``model.host.Host.drops``); the RTL classifier's cause field and
the NIC's drop counters (``hdl.nic.COUNTERS``, read with ``CtlOp.READ_COUNTER``) are indexed by
it; the RTL testbench's OS counts what host software drops by it too, so the two backends'
``drop_counts()`` (model/scenario.py) can be compared name for name.

The causes up to :data:`CLASSIFIER_CAUSES`'s last are the receive classifier's
(model/classify.py, hdl/rx/classifier.py), checked in that order; the rest are decided later, by
the NIC's queues and engine or by host software, for frames the classifier let through.
"""

import enum

__all__ = ["DropCause", "CLASSIFIER_CAUSES"]


class DropCause(enum.IntEnum):
    """Why a frame was dropped (NONE: it was not)."""
    NONE = 0
    # the receive classifier (model/classify.py; one counter each in hdl/rx/classifier.py)
    RUNT = 1             #: shorter than the headers it announces
    OVERSIZE = 2         #: longer than the MTU allows (Policy.mtu + 14, + 4 with an 802.1Q tag)
    WRONG_MAC = 3        #: destination MAC neither ours nor broadcast
    BAD_VERSION = 4      #: IP version is not 4
    BAD_IHL = 5          #: IP header length below 5 words
    BAD_IP_LENGTH = 6    #: IP total length below the header, or beyond the frame
    BAD_IP_CHECKSUM = 7  #: IP header checksum wrong
    BAD_TCP_OFFSET = 8   #: TCP data offset below 5 or beyond the segment
    BAD_UDP_LENGTH = 9   #: UDP length differs from the IP payload length
    BAD_L4_CHECKSUM = 10  #: TCP or UDP checksum wrong
    # the NIC's queues (the RTL only: the model has no queue that fills)
    RX_FIFO_FULL = 11    #: no room in the receive frame FIFO (a frame the classifier took)
    SLOW_FIFO_FULL = 12  #: no room in the slow-path queue to host software
    # after classification: the NIC's engine or host software (the slow path)
    NOT_FOR_US = 13      #: destination IP is not ours
    UNKNOWN_ETHERTYPE = 14  #: neither IPv4 nor ARP (IPv6, an 802.1Q tag: we have no VLANs)
    IP_FRAGMENT = 15     #: MF set or offset != 0: nothing reassembles
    UNKNOWN_PROTOCOL = 16  #: neither TCP nor UDP (nor a usable ARP)
    NO_SOCKET = 17       #: UDP to a port nobody bound, or not from a connected socket's peer
    QUEUE_FULL = 18      #: UDP receive queue or accept backlog full
    NO_NEIGHBOR = 19     #: transmit: destination IP not in the neighbour table


#: The causes the receive classifier decides, in rule order (its counters are indexed by value).
CLASSIFIER_CAUSES = tuple(c for c in DropCause if DropCause.NONE < c <= DropCause.BAD_L4_CHECKSUM)
