"""The TCP/UDP engine and the connection record it keeps per slot."""
