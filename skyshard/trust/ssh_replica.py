"""Ledger replicas on a provider's host, reached over SSH with the host key pinned in
policy.yaml: the covered log and the checkpoint go over the channel's stdin to
`python -m skyshard.ledger.replica` there, which verifies, remembers and cosigns with a key
that never leaves that host."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from skyshard.config.policy import LedgerCosigner, PolicyFile
from skyshard.ledger.log import LedgerError
from skyshard.ledger.note import Ed25519Verifier, check_key_name
from skyshard.ledger.replica import ReplicaTarget
from skyshard.transport.access import AccessPolicy
from skyshard.transport.commands import RemoteCommand, RemotePath
from skyshard.transport.ssh import ConnectFailed, RemoteCommandFailed, SshEndpoint, SshSession
from skyshard.transport.validate import ValidationError
from skyshard.trust.contracts import access_grants

SYNC_ACTION = "sync_ledger"
REPLICA_MODULE = "skyshard.ledger.replica"


@dataclass(frozen=True)
class SshReplica:
    """How to push to one cosigner's replica over SSH, as `ReplicaTarget.push`."""

    endpoint: SshEndpoint
    root: RemotePath
    access: AccessPolicy
    operator: str

    @classmethod
    def of(cls, cosigner: LedgerCosigner, policy: PolicyFile) -> SshReplica:
        """From `ssh://user@host[:port]/absolute/root`; ValidationError names the field."""
        field = f"policy.yaml: ledger.cosigners[{cosigner.name}]"
        url = urlsplit(cosigner.replica)
        if url.scheme != "ssh" or not url.hostname or not url.username:
            raise ValidationError(f"{field}.replica", cosigner.replica, "not ssh://user@host/root")
        if not cosigner.client_key:
            raise ValidationError(f"{field}.client_key", "", "an ssh replica needs a client key")
        endpoint = SshEndpoint(
            host_id=cosigner.name,
            provider_id=cosigner.name,
            address=url.hostname,
            host_key=cosigner.host_key,
            client_key=Path(cosigner.client_key),
            port=url.port or 22,
            user=url.username,
            python=cosigner.python,
        )
        access = AccessPolicy.from_mapping(access_grants(policy))
        return cls(endpoint, RemotePath(url.path), access, policy.ledger.sync_operator)

    def __call__(
        self, target: ReplicaTarget, log: bytes, note: str, genesis: Ed25519Verifier
    ) -> str:
        check_key_name(target.name)
        argv = (self.endpoint.python, "-m", REPLICA_MODULE, self.root.text, target.name)
        command = RemoteCommand("ledger replica", (*argv, genesis.vkey(), str(len(log))))
        session = SshSession(self.endpoint, self.access, self.operator)
        try:
            result = session.run(command, action=SYNC_ACTION, stdin=log + note.encode())
        except ConnectFailed as exc:
            raise ConnectionError(str(exc)) from exc  # unreachable: retried next checkpoint
        except RemoteCommandFailed as exc:
            raise LedgerError(f"replica {target.name} refused the push: {exc}") from exc
        finally:
            session.pool.close()
        return result.stdout.decode(errors="replace")
