"""Isolation on a host that cannot enforce limits (a non-root login): `auto` with cpu/memory
limits is refused naming why, instead of silently running the shard unlimited; without limits
(or with `signals`) it starts under signal isolation."""

from __future__ import annotations

import pytest

from skyshard.runtime.client import ShardLimits
from skyshard.transport.ssh import RemoteCommandFailed


def test_limits_that_cannot_be_enforced_are_refused(site) -> None:
    with site.access() as hosts:
        runtime = hosts["host-a"].runtime()
        address = site.address("host-a")
        limits = ShardLimits(cpu_millicores=500)
        for isolation in ("auto", "cgroup"):
            with pytest.raises(RemoteCommandFailed) as refused:
                runtime.start(site.shard, site.port, generation=1, bind=address, limits=limits,
                              isolation=isolation)  # fmt: skip
            message = str(refused.value)
            assert "cannot enforce cpu/memory limits here: the login user is not root" in message
            assert not runtime.status(site.shard).running
        status = runtime.start(site.shard, site.port, generation=1, bind=address)
        assert (status.running, status.isolation) == (True, "signals")
