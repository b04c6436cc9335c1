"""Fetch one payload: `file://` reads a saved capture, `http(s)://` GETs with retries."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, PayloadError

log = logging.getLogger(__name__)

BACKOFF_S = 0.25
"""First retry waits this long; each further retry doubles it (capped at MAX_BACKOFF_S)."""
MAX_BACKOFF_S = 5.0
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def redact(url: str) -> str:
    """The URL without `user:password@`, safe for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def file_url_path(url: str) -> Path:
    """The local path of an absolute `file:///...` URL."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ValueError(f"not an absolute file URL (expected file:///path): {url}")
    return Path(unquote(parts.path))


def fetch(
    url: str,
    timeout_s: float,
    retries: int,
    source_id: str,
    *,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The payload at `url`; raises PayloadError (naming source and redacted URL) on failure.

    HTTP connection errors, timeouts, 429 and 5xx are retried up to `retries` times with
    exponential backoff; other 4xx answers fail at once.
    """
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return _read_file(url, source_id)
    if scheme not in ("http", "https"):
        raise PayloadError(source_id, redact(url), f"unsupported URL scheme {scheme!r}")
    return _get_with_retries(url, timeout_s, retries, source_id, headers or {})


def fetch_for_source(source: Source, request: FetchRequest) -> bytes:
    """Fetch one request of `source`, with its timeout, retries and bearer token (if any)."""
    return fetch(
        request.url,
        source.timeout_s,
        source.retries,
        source.id,
        headers=auth_headers(source, request.url),
    )


def auth_headers(source: Source, url: str) -> dict[str, str]:
    """`Authorization: Bearer <token>` when `params.token_env` names a set environment variable."""
    env_name = source.params.get("token_env")
    if env_name is None or urlsplit(url).scheme == "file":
        return {}
    if not isinstance(env_name, str) or not env_name:
        raise PayloadError(
            source.id, redact(url), f"params.token_env: got {env_name!r}: expected a variable name"
        )
    token = os.environ.get(env_name)
    if not token:
        raise PayloadError(
            source.id,
            redact(url),
            f"params.token_env: environment variable {env_name} is not set or empty",
        )
    return {"Authorization": f"Bearer {token}"}


def _read_file(url: str, source_id: str) -> bytes:
    try:
        path = file_url_path(url)
    except ValueError as exc:
        raise PayloadError(source_id, url, str(exc)) from None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PayloadError(source_id, url, f"capture file {path} does not exist") from None
    except OSError as exc:
        raise PayloadError(source_id, url, f"cannot read capture file {path}: {exc}") from None


def _get_with_retries(
    url: str, timeout_s: float, retries: int, source_id: str, headers: dict[str, str]
) -> bytes:
    shown = redact(url)
    problem = ""
    for attempt in range(retries + 1):
        if attempt:
            delay = min(BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S)
            log.warning(
                "source %s (%s): %s; retry %d/%d in %.2fs",
                source_id,
                shown,
                problem,
                attempt,
                retries,
                delay,
            )
            time.sleep(delay)
        try:
            response = requests.get(url, headers=headers, timeout=timeout_s)
        except requests.Timeout:
            problem = f"timed out after {timeout_s}s"
            continue
        except requests.exceptions.ChunkedEncodingError as exc:
            problem = f"truncated body: {_redacted_reason(exc, url)}"
            continue
        except requests.RequestException as exc:
            problem = f"connection failed: {_redacted_reason(exc, url)}"
            continue
        if response.status_code in RETRY_STATUS:
            problem = f"HTTP {response.status_code} {response.reason}"
            continue
        if response.status_code >= 400:
            raise PayloadError(
                source_id,
                shown,
                f"HTTP {response.status_code} {response.reason}{_error_detail(response)}",
            )
        _check_complete(response, source_id, shown)
        return response.content
    attempts = retries + 1
    raise PayloadError(source_id, shown, f"{problem} (gave up after {attempts} attempts)")


MAX_ERROR_TEXT = 500
"""Characters of an error body kept in the message (APIs explain a 4xx there)."""


def _error_detail(response: requests.Response) -> str:
    """What the server said about its 4xx: a JSON `error` (Prometheus, most APIs) or the text."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        message = document.get("error") or document.get("message")
        if isinstance(message, dict):  # {"error": {"code": ..., "message": ...}} (Azure, GCP)
            message = message.get("message")
        kind = document.get("errorType") or document.get("code")
        if isinstance(message, str) and message:
            prefix = f"{kind}: " if isinstance(kind, str) and kind else ""
            return f": {prefix}{message[:MAX_ERROR_TEXT]}"
    text = " ".join(response.text.split())
    return f": {text[:MAX_ERROR_TEXT]}" if text else ""


def _check_complete(response: requests.Response, source_id: str, shown_url: str) -> None:
    """A body shorter than Content-Length is truncated (checked only when not re-encoded)."""
    declared = response.headers.get("Content-Length")
    if declared is None or response.headers.get("Content-Encoding"):
        return
    if declared.isdigit() and int(declared) != len(response.content):
        raise PayloadError(
            source_id,
            shown_url,
            f"truncated body: got {len(response.content)} of {declared} bytes",
        )


def _redacted_reason(exc: Exception, url: str) -> str:
    return str(exc).replace(url, redact(url))
