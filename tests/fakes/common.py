"""What the HTTP fakes share: a manual clock, the request record, injectable faults, the handler.

A fake is an object with `handle(handler, method)`; `serve(fake, host)` runs it on loopback.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class ManualClock:
    """A clock that moves only when slept on: share it between the fake and the code under test.
    It starts at a Unix time, so rate-limit resets computed from it are Unix seconds like the API's."""

    def __init__(self, start: float = 1_750_000_000.0):
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)


@dataclass
class Recorded:
    method: str
    path: str  # API path without the /metal/v1 prefix, e.g. /projects/<id>/devices
    query: dict[str, list[str]]
    json: Any
    headers: dict[str, str]  # without X-Auth-Token
    status: int | None = None
    response: Any = None  # the JSON body the fake answered (None: empty, reset or not JSON)


@dataclass
class Fault:
    """One injected failure for requests matching `method` and the regex `path` (full match)."""

    method: str
    path: str
    status: int | None = None  # answer this status (without handling, unless after=True)
    body: Any = None  # JSON body; default {"errors": [...]}
    raw_body: bytes | None = None  # a non-JSON body (a load balancer's page)
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # drop the connection with a TCP reset, no answer
    delay: float = 0.0  # sleep this long before answering
    after: bool = False  # handle the request first (it takes effect), then delay / fail
    times: int = 1  # how many requests it hits (0 = every one)
    when: Callable[[Recorded], bool] | None = None
    hits: int = 0

    def matches(self, record: Recorded) -> bool:
        return (self.times == 0 or self.hits < self.times) and self.method == record.method \
            and re.fullmatch(self.path, record.path) is not None and (self.when is None or self.when(record))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "v6kube-fake/1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.server.fake.handle(self, "GET")  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.fake.handle(self, "POST")  # type: ignore[attr-defined]

    def do_DELETE(self) -> None:
        self.server.fake.handle(self, "DELETE")  # type: ignore[attr-defined]

    def do_PUT(self) -> None:
        self.server.fake.handle(self, "PUT")  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer_json(self, status: int, body: Any, headers: dict[str, str] | None = None,
                    record: Recorded | None = None) -> None:
        if record is not None:
            record.status, record.response = status, body
        payload = b"" if body is None or status == 204 else json.dumps(body).encode()
        self.answer(status, payload, "application/json", headers)

    def answer(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None,
               record: Recorded | None = None) -> None:
        if record is not None and record.status is None:
            record.status = status
        try:
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up (its read timeout): nothing to tell it

    def reset(self) -> None:
        """Drop the connection with a TCP RST and no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            fd = self.connection.detach()
            socket.close(fd)
        except OSError:
            pass


def serve(fake: Any, host: str, name: str) -> ThreadingHTTPServer:
    """A threaded HTTP server on (host, a free port) whose requests go to fake.handle()."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    server = Server((host, 0), Handler)
    server.fake = fake  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=name, daemon=True).start()
    return server


class Served:
    """What every fake API shares: starting and stopping its HTTP server on loopback (a with-block
    does both) and the requests it recorded. The fake sets `host`, `lock`, `requests` and
    `_server = None`, and names its thread with `thread_name`."""

    host: str
    lock: threading.RLock
    requests: list[Recorded]
    thread_name = "fake-api"
    _server: ThreadingHTTPServer | None

    def recorded(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.recorded(method, path))

    def start(self):
        self._server = serve(self, self.host, self.thread_name)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://host:port, the host bracketed when it is IPv6."""
        assert self._server is not None, "start() the fake first"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"
