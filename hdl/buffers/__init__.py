"""Per-connection byte rings (the receive and send stream buffers)."""
