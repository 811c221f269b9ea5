"""Running one command on an SSH channel: output streamed line by line, a time limit, and telling a
dropped connection from a command that failed."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from v6kube import console
from v6kube.errors import SSHError
from v6kube.ssh.nodelog import NodeLog
from v6kube.ssh.output import CommandResult, _LineStream, _mask
from v6kube.ssh.retries import ATTEMPT_TIMEOUT, _Dropped, _NotStarted, _paramiko, _transport_died, _watchdog

if TYPE_CHECKING:  # pragma: no cover
    import paramiko


def run_command(transport: paramiko.Transport, log: NodeLog, wrapped: str, shown: str, phase: str, limit: float,
                masks: tuple[str, ...], log_output: bool, echo: bool) -> CommandResult:
    """Run one command on a new channel, streaming its output line by line to the log and the
    console. Raises _NotStarted when the transport died before the command was sent (safe to send
    again) and _Dropped when it died while the command may have been running."""
    started = time.monotonic()
    log.write(f"[{phase}] $ {shown}")
    console.debug(f"[{phase}] {log.node}: $ {shown}")

    def emitter(mark: str):
        def emit(line: str) -> None:
            line = _mask(line, masks)
            if log_output:
                log.write(f"[{phase}] {mark} {line}")
            if echo:
                console.progress(phase, log.node, line)
        return emit

    out, err = _LineStream(emitter("|")), _LineStream(emitter("!"))
    try:
        channel = transport.open_session(timeout=ATTEMPT_TIMEOUT)
    except (EOFError, OSError, _paramiko().SSHException):
        if _transport_died(transport):
            raise _NotStarted() from None
        raise
    try:
        with _watchdog(transport, ATTEMPT_TIMEOUT):  # paramiko waits for the reply without limit
            channel.exec_command(wrapped)  # once sent, the command may have started
            channel.shutdown_write()
    except (EOFError, OSError, _paramiko().SSHException):
        channel.close()
        if _transport_died(transport):
            raise _Dropped() from None
        raise
    try:
        channel.settimeout(0.05)
        stdout_done = False
        while True:
            if not stdout_done:
                try:
                    data = channel.recv(65536)
                    if data:
                        out.feed(data)
                    else:
                        stdout_done = True
                except socket.timeout:
                    pass
            while channel.recv_stderr_ready():
                err.feed(channel.recv_stderr(65536))
            if stdout_done and channel.exit_status_ready() and not channel.recv_stderr_ready():
                break
            if time.monotonic() - started > limit:
                log.write(f"[{phase}] timed out after {limit:g} s")
                raise SSHError(f"{log.node}: command timed out after {limit:g} s: {shown}",
                               hint="the node may be slow or stuck; ssh.command_timeout sets the limit")
            if stdout_done:
                channel.status_event.wait(0.05)
        status = channel.exit_status
    finally:
        channel.close()
    stdout, stderr = out.finish(), err.finish()
    seconds = time.monotonic() - started
    if status == -1 and _transport_died(transport):  # -1 alone may also be a command killed by a signal
        log.write(f"[{phase}] connection dropped after {seconds:.1f} s")
        raise _Dropped()
    log.write(f"[{phase}] exit {status} ({seconds:.1f} s)")
    return CommandResult(log.node, shown, status, stdout, stderr, seconds)
