"""System: a running tree (start, shutdown, dynamic children, inspection) and its ask/tell API."""
