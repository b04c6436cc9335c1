"""Dagster asset modules, one per domain; each exposes a small `defs`."""
