"""The skyshard Dagster code location: definitions, resources, jobs and schedules."""
