"""Delivery: the envelope of one message, the slot (mailbox and routing, the one owner of
slot state), answers and fallback chains, breakers in use, rate limiters, dead letters,
per-slot stats, the messages supervisors receive, and the runtime services of a system."""
