"""Socket API constants, with Linux's values so traces read like strace."""

__all__ = [
    "SOCK_STREAM", "SOCK_DGRAM", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
    "MSG_PEEK", "MSG_DONTWAIT", "MSG_WAITALL",
    "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
    "INADDR_ANY", "UDP_MAX_PAYLOAD", "UDP_RECORD_BYTES",
    "SOL_SOCKET", "SOL_TCP", "SO_REUSEADDR", "SO_ERROR", "SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE",
    "SO_LINGER", "TCP_NODELAY", "TCP_MAXSEG", "TCP_MSS_DEFAULT", "TCP_MIN_MSS", "TCP_MAX_MSS",
    "SOCK_MIN_BUFFER",
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

# socket options (<sys/socket.h>, <netinet/tcp.h>): levels and names
SOL_SOCKET = 1
SOL_TCP = 6                 # = IPPROTO_TCP
SO_REUSEADDR = 2
SO_ERROR = 4
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_KEEPALIVE = 9
SO_LINGER = 13
TCP_NODELAY = 1
TCP_MAXSEG = 2
# TCP_MAXSEG: what getsockopt reports before a connection has an MSS (Linux's mss_cache starts
# at TCP_MSS_DEFAULT), and the range setsockopt takes (Linux: TCP_MIN_MSS..MAX_TCP_WINDOW)
TCP_MSS_DEFAULT = 536
TCP_MIN_MSS = 88
TCP_MAX_MSS = 32767
# SO_RCVBUF/SO_SNDBUF: the smallest buffer a set value gives (bytes the socket holds; Linux's
# own floor, SOCK_MIN_RCVBUF / 2, is about 1152 and depends on its sk_buff size)
SOCK_MIN_BUFFER = 256
