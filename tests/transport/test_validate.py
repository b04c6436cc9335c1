from __future__ import annotations

import pytest

from skyshard.transport import validate
from skyshard.transport.access import ACTIONS, AccessDenied, AccessPolicy, Denial
from skyshard.transport.validate import ValidationError

BAD_IDS = ["", "-lead", "UPPER", "a b", "a;rm", "a$(id)", "a`id`", "x" * 64, "a/b", "a\nb", "ä"]


@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_shard_ids_are_refused_naming_field_and_value(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate.shard_id(value)
    assert caught.value.field == "shard_id"
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", ["a", "kv-store-01", "0", "x" * 63])
def test_good_shard_ids_pass(value: str) -> None:
    assert validate.shard_id(value) == value


def test_node_ids_allow_dots_but_not_metacharacters() -> None:
    assert validate.node_id("aws-eu.west_1") == "aws-eu.west_1"
    with pytest.raises(ValidationError, match="provider_id"):
        validate.node_id("aws|x", "provider_id")
    with pytest.raises(ValidationError, match="expected a string"):
        validate.node_id(5)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("../etc/passwd", "'..'"),
        ("a/../../b", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\x00b", "NUL"),
        ("a\nb", "newline"),
        ("a b", "shell metacharacters"),
        ("a;b", "shell metacharacters"),
        ("$(reboot)", "shell metacharacters"),
        ("a/-rf", "start with '-'"),
        ("", "empty"),
        ("./.", "empty"),
    ],
)
def test_bad_relative_paths_are_refused(value: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as caught:
        validate.relative_path(value, "target_dir")
    assert caught.value.field == "target_dir"


def test_relative_paths_are_normalized() -> None:
    assert validate.relative_path("a//./b/") == "a/b"


def test_remote_roots_must_be_absolute_and_not_slash() -> None:
    assert validate.remote_root("/srv//skyshard/") == "/srv/skyshard"
    with pytest.raises(ValidationError, match="absolute"):
        validate.remote_root("srv")
    with pytest.raises(ValidationError, match="filesystem root"):
        validate.remote_root("/")
    with pytest.raises(ValidationError, match=r"'\.\.'"):
        validate.remote_root("/srv/../etc")


def test_access_policy_grants_by_provider_pattern() -> None:
    denials: list[Denial] = []
    policy = AccessPolicy.from_mapping(
        {"alice": [("aws-*", ["read_telemetry", "receive_migration"])], "root": [("*", ACTIONS)]},
        on_denied=denials.append,
    )
    policy.check("alice", "aws-eu", "receive_migration")
    policy.check("root", "gcp", "stop_shard")
    with pytest.raises(AccessDenied, match="'alice' may not stop_shard on provider 'aws-eu'"):
        policy.check("alice", "aws-eu", "stop_shard")
    with pytest.raises(AccessDenied):
        policy.check("alice", "gcp-us", "read_telemetry")
    with pytest.raises(AccessDenied):
        policy.check("mallory", "aws-eu", "read_telemetry")
    assert denials == [
        Denial("alice", "aws-eu", "stop_shard"),
        Denial("alice", "gcp-us", "read_telemetry"),
        Denial("mallory", "aws-eu", "read_telemetry"),
    ]


def test_access_policy_refuses_unknown_actions() -> None:
    with pytest.raises(ValidationError, match=r"operators.bob\[0\].actions"):
        AccessPolicy.from_mapping({"bob": [("*", ["format_disk"])]})
    with pytest.raises(ValidationError, match="unknown action"):
        AccessPolicy.from_mapping({}).check("bob", "p", "format_disk")
