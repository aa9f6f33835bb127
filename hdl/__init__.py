"""The NIC in Amaranth 0.5, one block per file, laid out as the data flows (see
docs/ARCHITECTURE.md): rx/ -> tables/ -> engine/ (with buffers/) -> tx/; the top (nic.py,
nic_axis.py), its ports (ports.py, control_port.py) and what the paths share (layouts.py,
checksum.py) at this level."""
