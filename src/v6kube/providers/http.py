"""The HTTP layer every API provider shares (Packet, phoenixNAP).

One session, connect and read timeouts on every call, one function that maps HTTP failures to
typed errors (api_errors.py), one pagination helper, and retries only where repeating a request cannot create
anything twice: reads (GET, HEAD) and DELETE are retried on a dropped connection, 429 and any
5xx, 500 included (the live Metal API answered one-off "Oh snap" 500s). A POST, PUT or PATCH is
never repeated here: whatever its failure (a timeout, a 5xx, even a 429), it may have been acted
on, so the provider looks the resource up first (`post_or_find`).

Every retry loop has a total deadline (`retry_budget`), not only a per-wait cap, and a wait
longer than `LONG_WAIT` seconds is shown on the console, not only under --debug.

Credentials never leave this module except in the request headers: they are registered Secrets,
no error keeps a reference to a requests object (they hold the request headers), and errors are
raised outside `except` blocks so no exception context carries those objects either.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter

import v6kube
from v6kube import console
from v6kube.errors import ConnectionFailed, ProviderError, ProvisioningFailed, RateLimited, ServerError, UsageError
from v6kube.providers.api_errors import error_for, retry_delay

T = TypeVar("T")

PAGE_SIZE = 100
SAFE_METHODS = frozenset({"GET", "HEAD", "DELETE"})  # DELETE converges: a repeat gets 404 = gone
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
LONG_WAIT = 5.0  # seconds: a wait at least this long is shown on the console
# Failures after which a POST may or may not have happened: look before trying again. A 429
# counts too: nothing in an API's contract promises it was refused before being acted on.
AMBIGUOUS = (ServerError, ConnectionFailed, RateLimited)


class Listing(list):
    """The items of a list endpoint; `pages` says how many reads made it (1: one consistent snapshot)."""

    pages: int = 1


class HeaderAuth(requests.auth.AuthBase):
    """A fixed secret in one header (Metal: X-Auth-Token)."""

    def __init__(self, header: str, secret: Any, prefix: str = ""):
        self._header, self._secret, self._prefix = header, secret, prefix

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self._header] = self._prefix + self._secret.reveal()
        return request

    def __repr__(self) -> str:
        return f"HeaderAuth({self._header!r}, '***')"


class ApiClient:
    """requests against one API base URL. `sleep`, `clock` and `rng` are injectable for tests.

    `service` names the API in messages; `auth_hint` is the hint of a 401; `phase` prefixes the
    console line of a long wait.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: requests.auth.AuthBase,
        service: str = "the API",
        auth_hint: str | None = None,
        url_hint: str = "check the network and the API URL",
        timeout: tuple[float, float] = (10.0, 60.0),
        attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_wait: float = 300.0,
        retry_budget: float = 600.0,
        phase: str = "provision",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        pool_size: int = 32,
    ):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"invalid {service} URL {self.base_url!r}: expected https://host/path")
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            # Credentials go in a header: over plain HTTP anyone on the path could read them.
            raise UsageError(f"refusing to send API credentials over plain HTTP to {parts.hostname}",
                             hint="use an https:// URL (plain http is allowed only to this machine, e.g. a test fake)")
        self.origin = f"{parts.scheme}://{parts.netloc}"  # hrefs carry the base path: join them with this
        self._base_path = parts.path
        self.service = service
        self.auth_hint = auth_hint
        self.url_hint = url_hint
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_wait = max_wait
        self.retry_budget = retry_budget
        self.phase = phase
        self.page_size = PAGE_SIZE
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self._rng_lock = threading.Lock()
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update({"User-Agent": f"v6kube/{v6kube.__version__}", "Accept": "application/json"})
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    # --- verbs -------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, what: str | None = None) -> Any:
        return self.request("GET", path, params=params, what=what)

    def post(self, path: str, body: Any = None, params: Mapping[str, Any] | None = None, *,
             what: str | None = None) -> Any:
        return self.request("POST", path, params=params, json=body, what=what)

    def put(self, path: str, body: Any = None, *, what: str | None = None) -> Any:
        return self.request("PUT", path, json=body, what=what)

    def delete(self, path: str, params: Mapping[str, Any] | None = None, *, what: str | None = None) -> Any:
        return self.request("DELETE", path, params=params, what=what)

    def list_all(self, path: str, key: str, params: Mapping[str, Any] | None = None,
                 page_size: int | None = 0) -> Listing:
        """Every item of a list endpoint that pages with `meta.next.href` (page_size None: the
        endpoint has no paging; 0: the client's page_size).

        Pages can shift while they are read (an item deleted between pages moves the next one
        back a page), so a list is never proof that something is missing: confirm before creating.
        """
        query = dict(params or {})
        if page_size is not None:
            query["per_page"] = page_size or self.page_size
        items = Listing()
        seen: set[str] = set()
        url_path = path
        while True:
            document = self.request("GET", url_path, params=query) or {}
            items.extend(document.get(key) or [])
            href = ((document.get("meta") or {}).get("next") or {}).get("href")
            if not href or href in seen or len(seen) > 10000:
                items.pages = len(seen) + 1
                return items
            seen.add(href)
            # Keep our filters even if the API's next link drops them; take its page number.
            parts = urlsplit(href)
            query.update({k: v[-1] for k, v in parse_qs(parts.query).items()})
            url_path = parts.path  # absolute path with the base path, joined with the origin below

    # --- the one request function --------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, timeout: tuple[float, float] | None = None, what: str | None = None) -> Any:
        """One API call with retries where safe. Returns parsed JSON, or None for an empty body.
        `what` names the resource in an error ("cp-0 (device 1234)")."""
        method = method.upper()
        url = self._url(path)
        deadline = self.clock() + self.retry_budget
        refreshed = False
        attempt = 0
        while attempt < self.attempts:
            attempt += 1
            response, failure = self._send(method, url, params, json, timeout or self.timeout)
            if response is not None and response.status_code < 300:
                return _body(response)
            if response is not None and response.status_code == 401 and not refreshed \
                    and hasattr(self.session.auth, "invalidate"):
                # An OAuth token can expire or be revoked early: a 401 was not acted on, so one
                # fresh token and one more try is safe for any method.
                refreshed = True
                self.session.auth.invalidate()
                attempt -= 1
                continue
            retryable = method in SAFE_METHODS and (failure is not None or response.status_code in RETRY_STATUSES)
            if not retryable or attempt == self.attempts:
                break
            wait = self._wait_for(response, attempt)
            if self.clock() + wait > deadline:
                console.warn(f"{method} {_short(url)}: giving up: waiting {wait:.0f} s more would pass the "
                             f"{self.retry_budget:g} s retry deadline")
                break
            reason = failure or f"{response.status_code} {response.reason}"
            self._announce(wait, response, f"{method} {_short(url)}: {reason}; retrying in {wait:.1f}s "
                                            f"(attempt {attempt + 1}/{self.attempts})")
            self.sleep(wait)
        prefix = f"{what}: " if what else ""
        if response is None:
            raise ConnectionFailed(f"{prefix}{method} {_short(url)}: no answer from {self.service} at {self.origin}: "
                                   f"{failure}", hint=f"{self.url_hint}; run the command again to resume")
        error = error_for(method, _short(url), response.status_code, response.reason, response.headers,
                          response.content, service=self.service, auth_hint=self.auth_hint, clock=self.clock)
        if what:
            error.message = f"{what}: {error.message}"
            error.args = (error.message,)
        raise error

    def _announce(self, wait: float, response: requests.Response | None, detail: str) -> None:
        """Long waits on the console (one line each), short ones only under --debug."""
        console.debug(detail)
        if wait >= LONG_WAIT:
            why = "rate limited by the API" if response is not None and response.status_code == 429 else \
                f"{self.service} is not answering" if response is None else \
                f"{self.service} answered {response.status_code}"
            console.progress(self.phase, None, f"waiting {wait:.0f} s: {why}")

    def _url(self, path: str) -> str:
        # Paths only: an absolute URL could name another host, and the credentials go wherever we ask.
        if "://" in path:
            raise ProviderError(f"refusing to call an absolute URL; expected an API path, got {_short(path)!r}")
        if self._base_path and path.startswith(self._base_path + "/"):
            return self.origin + path  # an href from the API: already carries the base path
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def _send(self, method: str, url: str, params: Any, json: Any,
              timeout: tuple[float, float]) -> tuple[requests.Response | None, str | None]:
        started = time.monotonic()
        try:
            # No redirects: requests would carry the credentials along to whatever host a redirect names.
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
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        with self._rng_lock:
            jitter = self.rng()
        return delay / 2 + jitter * delay / 2


# --- a POST that may have happened ---------------------------------------------------------------


def post_or_find(client: ApiClient, post: Callable[[], T], find: Callable[[], T | None], what: str, *,
                 attempts: int = 3, sleep: Callable[[float], None] | None = None) -> T:
    """POST once; after an ambiguous failure wait, then look the resource up right before trying
    again (the wait first: a POST that timed out may still be creating it)."""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return post()
        except AMBIGUOUS as exc:
            failure = exc
        console.warn(f"{what}: {failure}; looking it up before trying again")
        wait = failure.retry_after if isinstance(failure, RateLimited) else None
        wait = min(client.max_wait, wait) if wait is not None else client.backoff(attempt + 1)
        if wait >= LONG_WAIT:
            console.progress(client.phase, None, f"waiting {wait:.0f} s: "
                             f"{'rate limited by the API' if isinstance(failure, RateLimited) else 'the API failed'}")
        (sleep or client.sleep)(wait)
        found = find()
        if found is not None:
            return found
    raise failure


# --- answers ------------------------------------------------------------------------------


def _body(response: requests.Response) -> Any:
    if not response.content or response.status_code == 204:
        return None
    try:
        return response.json()
    except ValueError:
        pass
    raise ProviderError(f"{response.request.method} {_short(response.url)}: {response.status_code} "
                        "with a body that is not JSON")


def is_loopback(host: str) -> bool:
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


def wait_until_ready(servers: Sequence[Any], poll: Callable[[dict, dict], None], *, who: str, goal: str,
                     reached: str, things: str, timeout: float, interval: float,
                     clock: Callable[[], float], sleep: Callable[[float], None],
                     named: Callable[[Any], str]) -> list[Any]:
    """One poll loop for all servers, with a total deadline. `poll(done, last_state)` reads them
    once, putting each ready one in `done` (by id) and each one's state in `last_state`; a read
    that failed in a way that may pass is tried again until the deadline. Wording: "waiting ...
    to {goal}", "{things}" polled, "servers not {reached} after ..."."""
    deadline = clock() + timeout
    done: dict[str, Any] = {}
    last_state: dict[str, str] = {}
    if servers:
        console.progress(who, None, f"waiting up to {timeout:g} s for {len(servers)} server(s) to {goal}")
    while True:
        try:
            poll(done, last_state)
        except AMBIGUOUS as exc:
            console.warn(f"polling {things} failed ({exc}); trying again until the deadline")
        if len(done) == len(servers):
            return [done[s.id] for s in servers]
        remaining = deadline - clock()
        if remaining <= 0:
            late = ", ".join(f"{named(s)} {last_state.get(s.id, 'unknown')}" for s in servers if s.id not in done)
            raise ProvisioningFailed(f"servers not {reached} after {timeout:g}s: {late}",
                                     hint="run create again to keep waiting; it will not create them twice")
        sleep(min(interval, remaining))
