"""Hosts: the thread that runs one incarnation of an agent (deadlines, answers, reports), and
the runners it delegates to by ChildSpec(isolation=...): in its own thread, or in a worker
process."""
