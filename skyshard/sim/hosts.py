"""Embedded-host settings of a simulated sky: per host a root folder, interpreter and pinned key.

Every simulated host is served by `skyshard.embedded_hosts` from the sky's own key files:
  keys/hosts/<host_id>      the host's Ed25519 private key (0600), pinned in providers.yaml
  keys/client_ed25519(.pub) the broker's client key
  keys/transfer_ca(.pub)    the broker's CA for move-scoped transfer certificates
  keys/authorized_keys      the client keys every embedded host accepts, and the transfer CA
                            (a `cert-authority` line: hosts push snapshot chunks to each other)

Unlike everything else the simulator writes, key material is random, never derived from the
seed (a seeded private key would be a published one). Key files already present are reused, so
rewriting a sky keeps the pins of hosts that are running.
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEYS_DIR = "keys"
HOST_KEYS_DIR = f"{KEYS_DIR}/hosts"
CLIENT_KEY = f"{KEYS_DIR}/client_ed25519"
TRANSFER_CA = f"{KEYS_DIR}/transfer_ca"
AUTHORIZED_KEYS = f"{KEYS_DIR}/authorized_keys"
HOSTS_DIR = "hosts"


@dataclass(frozen=True)
class SkyKeys:
    """Public key lines of every host and of the broker's client key, and the files behind them."""

    host_keys: dict[str, str]
    client_key: str
    files: tuple[Path, ...]


def host_key_path(home: Path, host_id: str) -> Path:
    return home / HOST_KEYS_DIR / host_id


def host_root(home: Path, host_id: str) -> Path:
    return (home / HOSTS_DIR / host_id).absolute()


def ensure_ed25519_key(path: Path, comment: str) -> str:
    """The public key line of the OpenSSH Ed25519 private key at `path`, generated if missing."""
    if path.exists():
        try:
            key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except ValueError as error:
            raise ValueError(f"{path}: not a readable OpenSSH private key: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
    else:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        _write_private(path, private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {comment}"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def write_sky_keys(home: Path, host_ids: list[str]) -> SkyKeys:
    """Host keys, the client key and `authorized_keys` under `<home>/keys` (reused if present)."""
    host_keys = {
        host_id: ensure_ed25519_key(host_key_path(home, host_id), f"skyshard-host-{host_id}")
        for host_id in host_ids
    }
    client_path = home / CLIENT_KEY
    client_key = ensure_ed25519_key(client_path, "skyshard-broker")
    public_path = client_path.with_name(client_path.name + ".pub")
    public_path.write_text(client_key + "\n")
    ca_path = home / TRANSFER_CA
    transfer_ca = ensure_ed25519_key(ca_path, "skyshard-transfer-ca")
    ca_public = ca_path.with_name(ca_path.name + ".pub")
    ca_public.write_text(transfer_ca + "\n")
    authorized = home / AUTHORIZED_KEYS
    authorized.write_text(f"{client_key}\ncert-authority {transfer_ca}\n")
    files = [host_key_path(home, h) for h in host_ids]
    files += [client_path, public_path, ca_path, ca_public, authorized]
    return SkyKeys(host_keys, client_key, tuple(files))


def embed_hosts(providers_doc: dict, home: Path, host_keys: dict[str, str]) -> dict:
    """A copy of the providers document with every host's pinned key, root and interpreter."""
    document = copy.deepcopy(providers_doc)
    for provider in document["providers"]:
        for host in provider["hosts"]:
            host["host_key"] = host_keys[host["id"]]
            host["root"] = str(host_root(home, host["id"]))
            host["python"] = sys.executable
    return document
