"""The demo workload: a small stateful key-value HTTP service (see `server.py`)."""
