"""Access control in front of every remote action: which operator may do what on which provider."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import get_args

from skyshard.config.policy import Action
from skyshard.transport.validate import ValidationError

ACTIONS = frozenset(get_args(Action))


@dataclass(frozen=True)
class Denial:
    """One refused request, as recorded by the trust ledger."""

    operator: str
    provider: str
    action: str


class AccessDenied(PermissionError):
    """The policy does not grant this operator this action on this provider."""

    def __init__(self, denial: Denial) -> None:
        self.denial = denial
        super().__init__(
            f"operator {denial.operator!r} may not {denial.action} on provider "
            f"{denial.provider!r}: no grant in the access policy allows it"
        )


@dataclass(frozen=True)
class Grant:
    """Actions allowed on every provider whose id matches a glob pattern (`aws-*`, `*`)."""

    provider_pattern: str
    actions: frozenset[str]

    def allows(self, provider: str, action: str) -> bool:
        return action in self.actions and fnmatchcase(provider, self.provider_pattern)


def _check_action(action: object, field: str) -> str:
    if action not in ACTIONS:
        raise ValidationError(field, action, f"unknown action; known: {sorted(ACTIONS)}")
    return str(action)


class AccessPolicy:
    """Grants per operator; `check` refuses anything not granted and reports the denial."""

    def __init__(
        self,
        grants: Mapping[str, Iterable[Grant]],
        on_denied: Callable[[Denial], None] | None = None,
    ) -> None:
        self._grants = {operator: tuple(items) for operator, items in grants.items()}
        for operator, items in self._grants.items():
            for index, grant in enumerate(items):
                for action in grant.actions:
                    _check_action(action, f"operators.{operator}[{index}].actions")
        self._on_denied = on_denied

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Iterable[tuple[str, Iterable[str]]]],
        on_denied: Callable[[Denial], None] | None = None,
    ) -> AccessPolicy:
        """Build from `{operator: [(provider pattern, [action, ...]), ...]}`."""
        grants: dict[str, list[Grant]] = {}
        for operator, entries in mapping.items():
            grants[operator] = [
                Grant(str(pattern), frozenset(actions)) for pattern, actions in entries
            ]
        return cls(grants, on_denied)

    def allows(self, operator: str, provider: str, action: str) -> bool:
        _check_action(action, "action")
        return any(grant.allows(provider, action) for grant in self._grants.get(operator, ()))

    def check(self, operator: str, provider: str, action: str) -> None:
        """Return if granted; otherwise report the denial and raise `AccessDenied`."""
        if self.allows(operator, provider, action):
            return
        denial = Denial(operator, provider, action)
        if self._on_denied is not None:
            self._on_denied(denial)
        raise AccessDenied(denial)
