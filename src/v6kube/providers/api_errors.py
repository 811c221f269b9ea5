"""HTTP failures -> typed errors, for every API provider: the API's own messages, whatever the
body looks like, and how long the API asked us to wait. No requests objects here (they hold the
request headers, credentials included), only status, headers and body.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from typing import Callable, Mapping

from v6kube.errors import (
    AuthenticationError,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServerError,
    Unprocessable,
)
from v6kube.redact import redact


def api_messages(content: bytes | str | None) -> list[str]:
    """The API's own messages from {"error": ...}, {"errors": [...]}, {"message", "validationErrors"}
    (phoenixNAP) or a non-JSON body."""
    if not content:
        return []
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    messages: list[str] = []
    if isinstance(document, dict):
        for key in ("errors", "validationErrors"):
            value = document.get(key)
            if isinstance(value, list):
                messages += [str(e) for e in value if e]
            elif isinstance(value, str) and value:
                messages.append(value)
        if isinstance(document.get("message"), str) and document["message"]:
            messages.insert(0, document["message"])
        if isinstance(document.get("error"), str) and document["error"]:
            messages.append(document["error"])
    if not messages and document is None:
        # Not JSON (a load balancer's page): one short line of it is better than nothing.
        line = " ".join(text.split())[:200]
        if line:
            messages.append(line)
    return [redact(m) for m in messages]


def error_for(method: str, path: str, status: int, reason: str | None,
              headers: Mapping[str, str] | None, content: bytes | str | None, *,
              service: str = "the API", auth_hint: str | None = None,
              clock: Callable[[], float] = time.time) -> ProviderError:
    """The one mapping from an HTTP failure to a typed error, whatever the body looks like."""
    messages = api_messages(content)
    detail = "; ".join(messages) if messages else (reason or "no details")
    text = f"{method} {path}: {status} {detail}"
    if status == 401:
        return AuthenticationError(f"{text} ({service} rejected the credentials)", status=status, hint=auth_hint)
    if status == 403:
        return PermissionDenied(text, status=status,
                                hint="the credentials may lack access to this resource, or it failed provisioning")
    if status == 404:
        return NotFound(text, status=status)
    if status in (400, 406, 409, 422):
        return Unprocessable(text, errors=messages, status=status)
    if status == 429:
        wait = retry_delay(status, headers or {}, clock)
        return RateLimited(f"{text} (rate limited{f', retry after {wait:.0f}s' if wait is not None else ''})",
                           status=status, retry_after=wait,
                           hint="wait a minute and run the command again; it resumes where it stopped")
    if status >= 500:
        return ServerError(text, status=status, hint=f"{service} failed; run the command again to resume")
    return ProviderError(text, status=status)


def _retry_after(value: str | None, clock: Callable[[], float]) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - clock()


def retry_delay(status: int, headers: Mapping[str, str], clock: Callable[[], float] = time.time) -> float | None:
    """Seconds the API asked us to wait: Retry-After on any answer; X-RateLimit-Reset only when
    rate limited (the API may send the rate-limit headers on every answer, and a 503 must not wait
    for the end of the rate window)."""
    hinted = _retry_after(headers.get("Retry-After"), clock)
    if hinted is None and (status == 429 or str(headers.get("X-RateLimit-Remaining", "")).strip() == "0"):
        hinted = _rate_limit_reset(headers.get("X-RateLimit-Reset"), clock)
    # a hostile or broken answer ("nan", "1e999") must neither crash time.sleep nor wait forever
    return None if hinted is None or not math.isfinite(hinted) else max(hinted, 0.0)


def _rate_limit_reset(value: str | None, clock: Callable[[], float]) -> float | None:
    try:
        reset = float(value) if value else None
    except ValueError:
        return None
    if reset is None:
        return None
    # packngo reads Unix seconds; a small number is a delay in seconds.
    return reset - clock() if reset > 1e9 else reset
