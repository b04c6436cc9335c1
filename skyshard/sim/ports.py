"""A block of loopback ports free right now, so a demo sky (or a test's) does not collide with
another demo, a test run or anything else listening on the machine."""

from __future__ import annotations

import socket

DEMO_PORT_START = 22000
STEP = 100


def _free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def free_port_block(count: int, start: int = DEMO_PORT_START, address: str = "127.0.0.1") -> int:
    """The first base from `start`, in steps of STEP, whose `count` ports are all free on
    `address`; a port taken between this check and its use is reported by whoever binds it."""
    for base in range(start, 65536 - count, STEP):
        if all(_free(address, base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on {address} from {start} on")
