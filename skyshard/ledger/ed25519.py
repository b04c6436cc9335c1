"""Ed25519 signing keys and signature checks (libsodium through PyNaCl, for speed)."""

from __future__ import annotations

import os

import nacl.bindings
import nacl.exceptions

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


class SigningKey:
    """An Ed25519 private key held as its 32-byte RFC 8032 seed."""

    __slots__ = ("_secret", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise ValueError(f"Ed25519 seed must be {SEED_SIZE} bytes, got {len(seed)}")
        self.seed = seed
        self.public_key, self._secret = nacl.bindings.crypto_sign_seed_keypair(seed)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(SEED_SIZE))

    def sign(self, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(message, self._secret)[:SIGNATURE_SIZE]


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    if len(signature) != SIGNATURE_SIZE or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True
