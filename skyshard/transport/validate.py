"""Validation of every identifier and path that is sent to a remote host, before any connection.

Rules (all allow-lists, so nothing a shell could interpret gets through):
- shard ids: `^[a-z0-9][a-z0-9-]{0,62}$` (DNS-label-like: lowercase, digits, dashes, ≤ 63 chars);
- provider and host ids: `^[a-z0-9][a-z0-9._-]{0,62}$` (dots and underscores also allowed);
- remote relative paths: `/`-separated components of `[A-Za-z0-9._@+=,-]`, no component
  starting with `-` (never mistaken for an option), no `..`, not absolute, no NUL, newline,
  space or shell metacharacter; returned normalized (`a//./b` becomes `a/b`);
- remote roots: absolute paths whose components follow the same rule;
- addresses: host names or IPv4/IPv6 literals; chunk hashes: 64 lowercase hex digits.
"""

from __future__ import annotations

import re

SHARD_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
NODE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
PATH_COMPONENT = re.compile(r"[A-Za-z0-9._@+=,][A-Za-z0-9._@+=,-]*")
ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")
CHUNK_HASH = re.compile(r"[0-9a-f]{64}")
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
MAX_PATH = 1024


class ValidationError(ValueError):
    """A value that must not reach a remote host; names the field and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field} {value!r}: {reason}")


def _require_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, value, f"expected a string, got {type(value).__name__}")
    return value


def _match(pattern: re.Pattern[str], value: object, field: str, rule: str) -> str:
    text = _require_str(value, field)
    if not pattern.fullmatch(text):
        raise ValidationError(field, value, f"must match {rule}")
    return text


def shard_id(value: object, field: str = "shard_id") -> str:
    """A valid shard id (see module docstring)."""
    return _match(SHARD_ID, value, field, "^[a-z0-9][a-z0-9-]{0,62}$")


def node_id(value: object, field: str = "host_id") -> str:
    """A valid provider or host id."""
    return _match(NODE_ID, value, field, "^[a-z0-9][a-z0-9._-]{0,62}$")


def address(value: object, field: str = "address") -> str:
    """A host name or an IP literal."""
    return _match(ADDRESS, value, field, "a host name or IP address")


def user(value: object, field: str = "user") -> str:
    """A POSIX login name."""
    return _match(USER, value, field, "^[a-z_][a-z0-9_-]{0,31}$")


def chunk_hash(value: object, field: str = "chunk") -> str:
    """A chunk's SHA-256 as 64 lowercase hex digits."""
    return _match(CHUNK_HASH, value, field, "64 lowercase hex digits")


def _components(text: str, value: object, field: str) -> list[str]:
    if len(text) > MAX_PATH:
        raise ValidationError(field, value, f"longer than {MAX_PATH} characters")
    for bad, name in (("\x00", "NUL"), ("\n", "newline"), ("\r", "carriage return")):
        if bad in text:
            raise ValidationError(field, value, f"contains a {name}")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise ValidationError(field, value, "contains a '..' component")
        if not PATH_COMPONENT.fullmatch(part):
            raise ValidationError(
                field,
                value,
                f"component {part!r} must be [A-Za-z0-9._@+=,-] and not start with '-' "
                "(no spaces or shell metacharacters)",
            )
    return parts


def relative_path(value: object, field: str = "path") -> str:
    """A normalized path relative to a remote root that cannot leave that root."""
    text = _require_str(value, field)
    if text.startswith("/"):
        raise ValidationError(field, value, "must be relative, not absolute")
    parts = _components(text, value, field)
    if not parts:
        raise ValidationError(field, value, "is empty")
    return "/".join(parts)


def remote_root(value: object, field: str = "remote_root") -> str:
    """A normalized absolute directory on a remote host (never `/` itself)."""
    text = _require_str(value, field)
    if not text.startswith("/"):
        raise ValidationError(field, value, "must be absolute")
    parts = _components(text, value, field)
    if not parts:
        raise ValidationError(field, value, "must not be the filesystem root")
    return "/" + "/".join(parts)
