"""Transmit path: the framer (headers and checksums) and the arbiter onto the wire."""
