"""The shard runtime: a helper script run on hosts (`host_helper.py`) and its client."""
