"""policy.yaml's cosigners as replicas to push to: where each lives and how to reach it (their
pinned keys and the quorum are `skyshard.ledger.policy_quorum`, which every `Ledger` applies)."""

from __future__ import annotations

from dataclasses import replace

from skyshard.config.policy import PolicyFile
from skyshard.ledger import policy_quorum
from skyshard.ledger.replica import ReplicaTarget
from skyshard.trust.ssh_replica import SshReplica


def replica_targets(policy: PolicyFile) -> list[ReplicaTarget]:
    """The configured cosigners with their pinned keys, each a folder or an ssh:// replica;
    NoteError or ValidationError names the bad entry."""
    targets = []
    verifiers = policy_quorum(policy.ledger).cosigners
    for cosigner, verifier in zip(policy.ledger.cosigners, verifiers, strict=True):
        target = ReplicaTarget(cosigner.name, verifier, cosigner.replica)
        if cosigner.replica.startswith("ssh://"):
            target = replace(target, push=SshReplica.of(cosigner, policy))
        targets.append(target)
    return targets
