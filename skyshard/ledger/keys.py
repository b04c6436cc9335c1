"""Ed25519 key files (PEM PKCS#8 or a raw 32-byte seed, mode 0600) and the key chain that
follows signed key_rotation entries."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from skyshard.ledger.ed25519 import SEED_SIZE, SigningKey
from skyshard.ledger.note import Ed25519Verifier, NoteError

KEY_SUFFIX = ".ed25519"


class KeyFileError(ValueError):
    """A key file is missing, unreadable, too widely readable, or not an Ed25519 key."""


def write_signing_key(path: Path, key: SigningKey) -> None:
    """Write `key` as PEM PKCS#8 to a new file only its owner can read."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.from_private_bytes(key.seed).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: key file already exists, refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())


def load_signing_key(path: Path) -> SigningKey:
    """Read a PEM (PKCS#8) or raw 32-byte Ed25519 key file that only its owner may read."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror})") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: key file mode is {stat.S_IMODE(mode):04o}, group or others may read it; "
            f"run chmod 600 {path}"
        )
    if len(data) == SEED_SIZE:
        return SigningKey(data)
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"{path}: not an unencrypted PEM private key or a raw 32-byte seed"
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: key is {type(private).__name__}, expected Ed25519")
    raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return SigningKey(raw)


def load_or_create_signing_key(path: Path) -> SigningKey:
    if not path.exists():
        write_signing_key(path, SigningKey.generate())
    return load_signing_key(path)


def rotation_payload(new_key: Ed25519Verifier, reason: str = "") -> dict[str, Any]:
    """The payload of a key_rotation entry: the new verifier key, announced under the old."""
    payload: dict[str, Any] = {"new_key": new_key.vkey()}
    if reason:
        payload["reason"] = reason
    return payload


class KeyChain:
    """Which log key is active at each point of the log, following key_rotation entries."""

    def __init__(self, genesis: Ed25519Verifier) -> None:
        self.active = genesis
        self.history: list[tuple[int, Ed25519Verifier]] = [(0, genesis)]
        self.by_id: dict[str, Ed25519Verifier] = {genesis.key_id.hex(): genesis}

    def rotate(self, seq: int, payload: Mapping[str, Any]) -> Ed25519Verifier:
        """Apply the key_rotation entry at `seq`: entries after it must use the new key."""
        vkey = payload.get("new_key")
        if not isinstance(vkey, str):
            raise NoteError(f"key_rotation at seq {seq}: payload.new_key is missing")
        new_key = Ed25519Verifier.from_vkey(vkey)
        self.active = new_key
        self.history.append((seq + 1, new_key))
        self.by_id[new_key.key_id.hex()] = new_key
        return new_key

    def active_at(self, size: int) -> Ed25519Verifier:
        """The key that signs checkpoints of `size` entries: active after entry size-1."""
        chosen = self.history[0][1]
        for starts_at, key in self.history:
            if starts_at <= size:
                chosen = key
        return chosen
