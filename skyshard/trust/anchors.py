"""policy.yaml's `ledger` section as the ledger's outside anchors: the cosigners whose keys are
pinned there, where their replicas live, and the quorum of them a checkpoint needs."""

from __future__ import annotations

from dataclasses import replace

from skyshard.config import paths
from skyshard.config.loader import load_yaml_model
from skyshard.config.policy import PolicyFile
from skyshard.config.sky import POLICY_FILE
from skyshard.ledger.cosignature import CosignatureVerifier
from skyshard.ledger.note import NoteError
from skyshard.ledger.replica import ReplicaTarget
from skyshard.trust.ssh_replica import SshReplica


def sky_policy() -> PolicyFile:
    """The sky's policy.yaml (defaults without one); unlike `current_sky()` it never
    generates the demo sky."""
    home = paths.skyshard_home() or paths.demo_home()
    return load_yaml_model(home / POLICY_FILE, PolicyFile, required=False)


def replica_targets(policy: PolicyFile) -> list[ReplicaTarget]:
    """The configured cosigners with their pinned keys, each a folder or an ssh:// replica;
    NoteError or ValidationError names the bad entry."""
    targets = []
    for index, cosigner in enumerate(policy.ledger.cosigners):
        field = f"policy.yaml: ledger.cosigners[{index}].vkey"
        try:
            verifier = CosignatureVerifier.from_vkey(cosigner.vkey)
        except NoteError as exc:
            raise NoteError(f"{field}: {exc}") from None
        if verifier.name != cosigner.name:
            raise NoteError(f"{field}: key name {verifier.name!r} is not {cosigner.name!r}")
        target = ReplicaTarget(cosigner.name, verifier, cosigner.replica)
        if cosigner.replica.startswith("ssh://"):
            target = replace(target, push=SshReplica.of(cosigner, policy))
        targets.append(target)
    return targets
