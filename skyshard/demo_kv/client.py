"""Tiny HTTP client for the demo key-value service (tests, bench, demo checks)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote


def _url(address: str, port: int, path: str) -> str:
    return f"http://{address}:{port}{path}"


def put(address: str, port: int, key: str, value: bytes, timeout: float = 10.0) -> None:
    request = urllib.request.Request(  # noqa: S310 - http to a shard we started
        _url(address, port, f"/kv/{quote(key, safe='')}"), data=value, method="PUT"
    )
    with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310
        pass


def get(address: str, port: int, key: str, timeout: float = 10.0) -> bytes | None:
    """The value, or None when the key is absent."""
    url = _url(address, port, f"/kv/{quote(key, safe='')}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def checksum(address: str, port: int, timeout: float = 10.0) -> dict:
    """`{"sha256": ..., "keys": N}` over every pair."""
    url = _url(address, port, "/checksum")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())
