"""What a command returns, the connection protocol the rest of v6kube uses, and masking output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

from v6kube.redact import MASK, Secret, redact, register


@dataclass(frozen=True)
class CommandResult:
    node: str
    command: str  # as shown in logs: secrets masked
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class Connection(Protocol):
    """What node operations need from a connection to one node."""

    node: str

    @property
    def host_key(self) -> str | None:
        """The host key the server presented ("ssh-ed25519 AAAA..."), once connected."""

    def run(self, command: str, *, phase: str = "ssh", timeout: float | None = None, check: bool = True,
            secrets: Iterable[str | Secret] = (), idempotent: bool = False,
            log_output: bool = True, echo: bool = True) -> CommandResult:
        """Run a shell command as root (through `sudo -n` for other users). Its output goes line by
        line to the node's log (log_output) and to the console prefixed with the node (echo)."""

    def upload(self, data: bytes | str, path: str, *, mode: int = 0o644, owner: str = "root",
               group: str = "root", phase: str = "ssh") -> None:
        """Write a file atomically (temp name in the same directory, then rename)."""

    def download(self, path: str, *, phase: str = "ssh") -> bytes:
        """Read a file (as root)."""

    def close(self) -> None: ...


class _LineStream:
    """Collects a stream's bytes and hands on each complete line."""

    def __init__(self, on_line):
        self._pending = b""
        self._chunks: list[bytes] = []
        self._on_line = on_line

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._on_line(line.decode("utf-8", "replace"))

    def finish(self) -> str:
        if self._pending:
            self._on_line(self._pending.decode("utf-8", "replace"))
            self._pending = b""
        return b"".join(self._chunks).decode("utf-8", "replace")


def _secret_values(secrets: Iterable[str | Secret]) -> tuple[str, ...]:
    values = []
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else str(secret)
        if value:
            register(value)
            values.append(value)
    return tuple(sorted(values, key=len, reverse=True))


def _mask(text: str, masks: tuple[str, ...]) -> str:
    for value in masks:
        text = text.replace(value, MASK)
    return redact(text)
