"""A small client for the Equinix Metal (ex-Packet) API v1.

One session, connect and read timeouts on every call, one function that maps HTTP failures to
typed errors, one pagination helper, and retries only where repeating a request cannot create
anything twice (GET and DELETE). A POST is never repeated here: whatever its failure (a timeout,
a 5xx, even a 429), it may have been acted on, so the caller looks the resource up first.

The token never leaves this module except in the X-Auth-Token header: it is a registered Secret,
no error keeps a reference to a requests object (they hold the request headers), and errors are
raised outside `except` blocks so no exception context carries those objects either.
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import os
import random
import threading
import time
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter

import v6kube
from v6kube import console
from v6kube.errors import (
    AuthenticationError,
    ConnectionFailed,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServerError,
    Unprocessable,
    UsageError,
)
from v6kube.redact import Secret, redact

DEFAULT_BASE_URL = "https://api.equinix.com/metal/v1"
TOKEN_VARIABLES = ("METAL_AUTH_TOKEN", "PACKET_AUTH_TOKEN")
URL_VARIABLE = "METAL_API_URL"
PAGE_SIZE = 100  # the API's default is 10; 100 is within every resource's documented maximum
RETRY_STATUSES = frozenset({429, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "DELETE"})  # DELETE converges: a repeat gets 404 = gone



def token_from_env(environ: Mapping[str, str] | None = None) -> Secret:
    environ = os.environ if environ is None else environ
    for name in TOKEN_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return Secret(value)
    raise AuthenticationError(
        "no Equinix Metal API token: set METAL_AUTH_TOKEN (or PACKET_AUTH_TOKEN)",
        hint="create an API key in the Metal console and export METAL_AUTH_TOKEN=<key>",
    )


def base_url_from(api_url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """METAL_API_URL wins over the cluster file's provider.api_url, which wins over the default."""
    environ = os.environ if environ is None else environ
    return (environ.get(URL_VARIABLE) or api_url or DEFAULT_BASE_URL).rstrip("/")


class _TokenAuth(requests.auth.AuthBase):
    def __init__(self, token: Secret):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-Auth-Token"] = self._token.reveal()
        return request

    def __repr__(self) -> str:
        return "_TokenAuth('***')"


class MetalClient:
    """requests against one Metal API base URL. `sleep`, `clock` and `rng` are injectable for tests."""

    def __init__(
        self,
        token: Secret | str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_wait: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        pool_size: int = 32,
    ):
        self._token = token if isinstance(token, Secret) else Secret(token)
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"invalid Metal API URL {self.base_url!r}: expected https://host/path")
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            # The token goes in a header: over plain HTTP anyone on the path could read it.
            raise UsageError(f"refusing to send the API token over plain HTTP to {parts.hostname}",
                             hint="use an https:// URL (plain http is allowed only to this machine, e.g. a test fake)")
        self.origin = f"{parts.scheme}://{parts.netloc}"  # hrefs carry /metal/v1: join them with this
        self._base_path = parts.path
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self._rng_lock = threading.Lock()
        self.session = requests.Session()
        self.session.auth = _TokenAuth(self._token)
        self.session.headers.update({
            "User-Agent": f"v6kube/{v6kube.__version__}",
            "Accept": "application/json",
        })
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @classmethod
    def from_env(cls, api_url: str | None = None, environ: Mapping[str, str] | None = None, **options: Any) -> "MetalClient":
        return cls(token_from_env(environ), base_url_from(api_url, environ), **options)

    def __repr__(self) -> str:
        return f"MetalClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    # --- verbs -------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, params=params, json=body)

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("DELETE", path, params=params)

    def list_all(self, path: str, key: str, params: Mapping[str, Any] | None = None,
                 page_size: int | None = PAGE_SIZE) -> list[dict]:
        """Every item of a list endpoint, following meta.next (page_size None: the endpoint has no paging)."""
        query = dict(params or {})
        if page_size:
            query["per_page"] = page_size
        items: list[dict] = []
        seen: set[str] = set()
        url_path = path
        while True:
            document = self.request("GET", url_path, params=query) or {}
            items.extend(document.get(key) or [])
            href = ((document.get("meta") or {}).get("next") or {}).get("href")
            if not href or href in seen or len(seen) > 10000:
                return items
            seen.add(href)
            # Keep our filters even if the API's next link drops them; take its page number.
            parts = urlsplit(href)
            query.update({k: v[-1] for k, v in parse_qs(parts.query).items()})
            url_path = parts.path  # absolute path with /metal/v1, joined with the origin below

    # --- the one request function --------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, timeout: tuple[float, float] | None = None) -> Any:
        """One API call with retries where safe. Returns parsed JSON, or None for an empty body."""
        method = method.upper()
        url = self._url(path)
        for attempt in range(1, self.attempts + 1):
            response, failure = self._send(method, url, params, json, timeout or self.timeout)
            if response is not None and response.status_code < 300:
                return _body(response)
            # Only safe methods: even a 429 does not promise that a POST was not acted on, so a
            # failed POST goes back to the provider, which looks the resource up first.
            retryable = method in SAFE_METHODS and (failure is not None or response.status_code in RETRY_STATUSES)
            if not retryable or attempt == self.attempts:
                break
            wait = self._wait_for(response, attempt)
            reason = failure or f"{response.status_code} {response.reason}"
            console.debug(f"{method} {_short(url)}: {reason}; retrying in {wait:.1f}s (attempt {attempt + 1}/{self.attempts})")
            self.sleep(wait)
        if response is None:
            raise ConnectionFailed(f"{method} {_short(url)}: no answer from the Metal API at {self.origin}: {failure}",
                                   hint="check the network and METAL_API_URL; run the command again to resume")
        raise error_for(method, _short(url), response.status_code, response.reason, response.headers, response.content)

    def _url(self, path: str) -> str:
        # Paths only: an absolute URL could name another host, and the token goes wherever we ask.
        if "://" in path:
            raise ProviderError(f"refusing to call an absolute URL; expected an API path, got {_short(path)!r}")
        if self._base_path and path.startswith(self._base_path + "/"):
            return self.origin + path  # an href from the API: already carries the base path
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def _send(self, method: str, url: str, params: Any, json: Any,
              timeout: tuple[float, float]) -> tuple[requests.Response | None, str | None]:
        started = time.monotonic()
        try:
            # No redirects: requests would carry X-Auth-Token along to whatever host a redirect names.
            response = self.session.request(method, url, params=params, json=json, timeout=timeout,
                                            allow_redirects=False)
        except requests.Timeout as exc:
            kind = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
            return None, f"{kind} timeout after {timeout[0] if kind == 'connect' else timeout[1]:g}s"
        except requests.RequestException as exc:
            return None, f"connection failed ({_root_cause(exc)})"
        console.debug(f"{method} {_short(url)} -> {response.status_code} in {time.monotonic() - started:.2f}s")
        return response, None

    def _wait_for(self, response: requests.Response | None, attempt: int) -> float:
        """Retry-After or X-RateLimit-Reset when the API sent one, else capped backoff with jitter."""
        if response is not None:
            hinted = retry_delay(response.status_code, response.headers, self.clock)
            if hinted is not None:
                return min(hinted, self.max_wait)
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        with self._rng_lock:
            jitter = self.rng()
        return delay / 2 + jitter * delay / 2


# --- failures -> typed errors -------------------------------------------------------------------


def api_messages(content: bytes | str | None) -> list[str]:
    """The API's own messages from {"error": ...}, {"errors": [...]} or a non-JSON body."""
    import json as _json

    if not content:
        return []
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    try:
        document = _json.loads(text)
    except ValueError:
        document = None
    messages: list[str] = []
    if isinstance(document, dict):
        errors = document.get("errors")
        if isinstance(errors, list):
            messages += [str(e) for e in errors if e]
        elif isinstance(errors, str) and errors:
            messages.append(errors)
        if isinstance(document.get("error"), str) and document["error"]:
            messages.append(document["error"])
    if not messages and document is None:
        # Not JSON (a load balancer's page): one short line of it is better than nothing.
        line = " ".join(text.split())[:200]
        if line:
            messages.append(line)
    return [redact(m) for m in messages]


def error_for(method: str, path: str, status: int, reason: str | None,
              headers: Mapping[str, str] | None, content: bytes | str | None) -> ProviderError:
    """The one mapping from an HTTP failure to a typed error, whatever the body looks like."""
    messages = api_messages(content)
    detail = "; ".join(messages) if messages else (reason or "no details")
    text = f"{method} {path}: {status} {detail}"
    if status == 401:
        return AuthenticationError(f"{text} (the Metal API rejected the token)", status=status,
                                   hint="check METAL_AUTH_TOKEN (or PACKET_AUTH_TOKEN)")
    if status == 403:
        return PermissionDenied(text, status=status,
                                hint="the token may lack access to this project, or the resource failed provisioning")
    if status == 404:
        return NotFound(text, status=status)
    if status == 422:
        return Unprocessable(text, errors=messages)
    if status == 429:
        wait = retry_delay(status, headers or {})
        return RateLimited(f"{text} (rate limited{f', retry after {wait:.0f}s' if wait is not None else ''})",
                           status=status, retry_after=wait,
                           hint="wait a minute and run the command again; it resumes where it stopped")
    if status >= 500:
        return ServerError(text, status=status, hint="the Metal API failed; run the command again to resume")
    return ProviderError(text, status=status)


def _body(response: requests.Response) -> Any:
    if not response.content or response.status_code == 204:
        return None
    try:
        return response.json()
    except ValueError:
        pass
    raise ProviderError(f"{response.request.method} {_short(response.url)}: {response.status_code} "
                        "with a body that is not JSON")


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's class name (ConnectionResetError, ...): no URLs, no headers."""
    seen = exc
    for _ in range(10):
        inner = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        nxt = getattr(seen, "reason", None) or (inner[-1] if inner else None) or seen.__cause__ or seen.__context__
        if not isinstance(nxt, BaseException):
            break
        seen = nxt
    return type(seen).__name__


def _short(url: str) -> str:
    """The path of a URL (no query, no host) for messages."""
    return urlsplit(url).path or url
