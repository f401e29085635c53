"""Supervision: supervisor nodes and actors, the tree index, child records, and carrying out
the pure decisions of strategies/ (restart, escalate, remove)."""
