"""Shared by the suites that need a real OpenSSH sshd: skip where it is missing, fail in CI."""

from __future__ import annotations

import os

import pytest

from skyshard.testing.sshd import sshd_missing_reason


def require_sshd() -> None:
    reason = sshd_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the sshd tests: {reason}")
        pytest.skip(reason)
