"""Lookup tables: the socket hash table (key -> connection) and the access table
((connection, process) -> allowed)."""
