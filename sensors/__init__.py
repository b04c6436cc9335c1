"""Dagster sensors (migration triggers, run-status ledger writers)."""
