"""When to try again: the errors that mean "not up yet", and watchdogs for paramiko's unbounded waits."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

# Errors that mean "the server is not up yet" (booting, sshd restarting): try again until the deadline.
RETRY_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.EHOSTDOWN,
    errno.EPIPE,
}
ATTEMPT_TIMEOUT = 20.0  # one TCP connect + SSH handshake
MAX_RETRY_DELAY = 5.0
MAX_RERUNS = 3  # an idempotent command whose connection dropped is run again at most this often


class _Dropped(Exception):
    """The transport died while a command ran."""


class _NotStarted(Exception):
    """The transport died before the command could start: running it again is always safe."""


class _NotUpYet(Exception):
    """Refused, reset, timed out, no banner: the server may still be booting."""


class _NoRoute(Exception):
    """ENETUNREACH: this machine has no route to that address family."""


@contextlib.contextmanager
def _watchdog(transport: paramiko.Transport, seconds: float) -> Iterator[threading.Event]:
    """Cut the connection when the block outlasts `seconds`; the event tells that it did. paramiko
    waits without limit in places: opening the SFTP channel, writing into full TCP buffers."""
    fired = threading.Event()

    def cut() -> None:
        fired.set()
        transport.close()

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def _transport_died(transport: paramiko.Transport, grace: float = 1.0) -> bool:
    """Whether the connection is gone. paramiko closes a dead transport's channels a moment before
    it marks the transport inactive, so after a failed channel wait (up to `grace`) for its thread
    to finish before deciding."""
    if transport.is_active():
        transport.join(grace)
    return not transport.is_active()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _paramiko():
    import paramiko

    return paramiko
