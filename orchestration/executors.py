"""Where the scale-out location's partitioned steps run: Celery workers when a broker is
configured (`SKYSHARD_CELERY_BROKER`, e.g. `redis://host:6379/0`), else a process per step on
this machine."""

import os

import dagster as dg

CELERY_BROKER_ENV = "SKYSHARD_CELERY_BROKER"


def scale_out_executor() -> dg.ExecutorDefinition:
    """The Celery executor (Redis as broker and result backend, both from the environment, so
    no URL with a password lands in a file) or the multiprocess executor."""
    if not os.environ.get(CELERY_BROKER_ENV):
        return dg.multiprocess_executor
    from dagster_celery import celery_executor  # Celery loads only where a broker is set

    broker = {"env": CELERY_BROKER_ENV}
    return celery_executor.configured({"broker": broker, "backend": broker}, name="celery")
