"""The golden model: a pure-Python TCP/UDP endpoint with UNIX socket semantics.

Read in this order: ``policy.py`` (every wire-visible choice), ``tcp.py`` (one connection),
``host.py`` (a host: frames, clock, processes, socket calls), ``wire.py`` (a lossy wire),
``scenario.py`` (the backend contract shared with the RTL, and the trace scoreboard).
``packet.py`` builds and parses frames, ``checksum.py`` and ``bytestream.py`` are the
references for their hardware blocks, ``errors.py`` and ``constants.py`` hold the API's
names.
"""
