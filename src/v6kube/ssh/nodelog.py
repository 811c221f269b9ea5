"""A node's log file: every command, its output and what the connection did, secrets redacted."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path

from v6kube import console
from v6kube.redact import redact


class NodeLog:
    """`<log dir>/<node>.log` (0600, like the state file: it names hosts, commands and their output),
    and notes that also go to the console: loud ones as progress, the others as debug lines."""

    def __init__(self, node: str, log_dir: Path | None):
        self.node = node
        self.path = log_dir / f"{node}.log" if log_dir else None
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        if self.path is None:
            return
        stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(fd, "a", encoding="utf-8") as log:
                log.write(f"{stamp} {redact(line)}".replace("\n", "\n    ") + "\n")

    def note(self, phase: str, message: str, *, loud: bool = False) -> None:
        self.write(f"[{phase}] {message}")
        if loud:
            console.progress(phase, self.node, message)
        else:
            console.debug(f"[{phase}] {self.node}: {message}")
