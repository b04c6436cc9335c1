"""Move-scoped OpenSSH user certificates, signed by the broker's transfer CA.

A source host pushes a move's chunks straight to the target with OpenSSH `ssh`. It gets, for
that one move, a fresh key and a certificate that the target's sshd accepts only
(a) until it expires (minutes), (b) from the source's address (`source-address`), and
(c) to run the one forced command that receives exactly this move's expected chunks
(`force-command`); no pty, forwarding or agent is permitted (no extensions). A compromised
source can therefore use it for nothing but this transfer. The target's sshd must trust the
CA (`TrustedUserCAKeys`, see docs/migrations.md).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from skyshard.transport import validate
from skyshard.transport.validate import ValidationError

# Tolerated clock difference between the broker and the target host.
CLOCK_SKEW = 60


@dataclass(frozen=True)
class MoveGrant:
    """What one move's certificate allows: log in as `user` from `source_address` until
    `valid_seconds` from now, to run `force_command` and nothing else."""

    move_id: str
    user: str
    source_address: str
    force_command: str
    valid_seconds: int

    def __post_init__(self) -> None:
        validate.node_id(self.move_id, "move_id")
        validate.user(self.user, "user")
        try:
            ipaddress.ip_address(self.source_address)
        except ValueError:
            raise ValidationError(
                "source_address", self.source_address, "must be the source host's IP address"
            ) from None
        if not 0 < self.valid_seconds <= 24 * 3600:
            raise ValidationError("valid_seconds", self.valid_seconds, "must be in 1..86400")


@dataclass(frozen=True)
class MoveCredentials:
    """The private key (OpenSSH format) and its certificate line, for the source host."""

    private_key: bytes
    certificate: bytes


class TransferCA:
    """The broker's Ed25519 certificate authority for transfer certificates."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def load(cls, path: Path) -> TransferCA:
        """An unencrypted OpenSSH Ed25519 private key file (`ssh-keygen -t ed25519 -N ''`)."""
        try:
            key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as error:
            raise ValidationError("transfer_ca", str(path), f"unreadable: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValidationError("transfer_ca", str(path), "must be an Ed25519 key")
        return cls(key)

    @classmethod
    def generate(cls, path: Path) -> TransferCA:
        """Write a new CA key to `path` (mode 0600) and `<path>.pub`."""
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(_openssh_private(key))
        path.with_name(path.name + ".pub").write_text(cls(key).public_line() + "\n")
        return cls(key)

    def public_line(self) -> str:
        """The `ssh-ed25519 AAAA...` line a host lists in its TrustedUserCAKeys file."""
        public = self._key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        return public.decode() + " skyshard-transfer-ca"

    def issue(self, grant: MoveGrant, *, now: float | None = None) -> MoveCredentials:
        """A fresh key and its certificate for `grant` (serial: the issue time in ns)."""
        issued = time.time() if now is None else now
        user_key = Ed25519PrivateKey.generate()
        certificate = (
            serialization.SSHCertificateBuilder()
            .public_key(user_key.public_key())
            .serial(time.time_ns())
            .type(serialization.SSHCertificateType.USER)
            .key_id(f"skyshard-move-{grant.move_id}".encode())
            .valid_principals([grant.user.encode()])
            .valid_after(int(issued) - CLOCK_SKEW)
            .valid_before(int(issued) + grant.valid_seconds)
            .add_critical_option(b"force-command", grant.force_command.encode())
            .add_critical_option(b"source-address", grant.source_address.encode())
            .sign(self._key)
        )
        return MoveCredentials(_openssh_private(user_key), certificate.public_bytes() + b"\n")


def _openssh_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
