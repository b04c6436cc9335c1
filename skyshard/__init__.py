"""skyshard: move workload shards between provider networks before they hit a wall."""

__version__ = "0.1.0"
