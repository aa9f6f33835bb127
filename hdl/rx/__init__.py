"""Receive path, in the order a frame meets it: the frame FIFO and the classifier (side by
side), the dispatcher, the payload slicer."""
