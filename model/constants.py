"""Socket API constants, with Linux's values so traces read like strace."""

__all__ = [
    "SOCK_STREAM", "SOCK_DGRAM", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
    "MSG_PEEK", "MSG_DONTWAIT", "MSG_WAITALL",
    "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
    "INADDR_ANY", "UDP_MAX_PAYLOAD", "UDP_RECORD_BYTES",
]

SOCK_STREAM = 1
SOCK_DGRAM = 2

SHUT_RD = 0
SHUT_WR = 1
SHUT_RDWR = 2

MSG_PEEK = 0x02
MSG_DONTWAIT = 0x40
MSG_WAITALL = 0x100

POLLIN = 0x001
POLLPRI = 0x002
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010
POLLNVAL = 0x020

INADDR_ANY = "0.0.0.0"

# the largest UDP payload one unfragmented 1500-byte IPv4 packet carries (larger: EMSGSIZE)
UDP_MAX_PAYLOAD = 1500 - 20 - 8
# A received UDP datagram is queued as an 8-byte record header (payload length, source IPv4
# address, source port; big-endian in the NIC's ring) followed by its payload; the header
# counts against the socket's receive buffer.
UDP_RECORD_BYTES = 8
