"""Free loopback port blocks for tests, chosen below the kernel's ephemeral range.

A port in the ephemeral range (32768-60999 by default) can be taken by any outgoing
connection between the check and the bind; below it only listeners compete, and a random
start keeps parallel runs and a running demo off each other's block.
"""

from __future__ import annotations

import random

from skyshard.sim.ports import free_port_block

BELOW_EPHEMERAL = (20000, 32000)


def free_test_ports(count: int) -> int:
    """The base of `count` consecutive free ports from a random start below 32000."""
    low, high = BELOW_EPHEMERAL
    return free_port_block(count, start=random.randrange(low, high - count, 100))
