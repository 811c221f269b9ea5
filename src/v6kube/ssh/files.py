"""Files on a node over the connection: atomic uploads (SFTP, then moved into place as root) and
reads, each with a watchdog (paramiko's SFTP calls can wait without limit) and a reconnect when the
connection drops."""

from __future__ import annotations

import base64
import posixpath
import secrets as random_tokens
import shlex
from typing import TYPE_CHECKING

from v6kube.errors import SSHError
from v6kube.ssh.retries import _paramiko, _transport_died, _watchdog

if TYPE_CHECKING:  # pragma: no cover
    from v6kube.ssh.connection import SSHConnection


def upload(conn: SSHConnection, data: bytes | str, path: str, *, mode: int, owner: str, group: str,
           phase: str) -> None:
    """Write a file atomically: staged under a temporary name, owner and mode set, then renamed."""
    payload = data.encode() if isinstance(data, str) else data
    directory, name = posixpath.split(path)
    token = random_tokens.token_hex(6)
    # Same directory as the target, so the final rename is atomic; a sudo user can only
    # write its own files, so it stages in /tmp and root moves the file into place.
    staging = f"{directory}/.{name}.v6kube-{token}" if conn.is_root else f"/tmp/.v6kube-upload-{token}"
    conn.log.write(f"[{phase}] upload {path} ({len(payload)} bytes, mode {mode:04o}, {owner}:{group})")
    _put(conn, payload, staging, directory, phase)
    q = shlex.quote
    if conn.is_root:
        place = (f"chown {q(owner)}:{q(group)} {q(staging)} && chmod {mode:04o} {q(staging)} "
                 f"&& mv -f {q(staging)} {q(path)}")
    else:
        final_tmp = f"{directory}/.{name}.v6kube-{token}"
        place = (f"mkdir -p {q(directory)} && install -m {mode:04o} -o {q(owner)} -g {q(group)} "
                 f"{q(staging)} {q(final_tmp)} && mv -f {q(final_tmp)} {q(path)}")
    place += f"; status=$?; rm -f {q(staging)}; exit $status"  # no staged copy is left behind
    conn.run(place, phase=phase, idempotent=True)

def download(conn: SSHConnection, path: str, *, phase: str) -> bytes:
    """Read a file as root: over SFTP when logged in as root, else through `sudo base64`."""
    if conn.is_root:
        for attempt in (1, 2):
            with conn.lock:
                transport = conn.transport(phase)
                with _watchdog(transport, conn.options.command_timeout) as stalled:
                    try:
                        with conn.sftp().open(path, "rb") as remote:
                            return remote.read()
                    except FileNotFoundError:
                        raise SSHError(f"{conn.node}: {path}: no such file") from None
                    except (EOFError, OSError, _paramiko().SSHException):
                        if not stalled.is_set() and not _transport_died(transport):
                            raise
                conn.discard()
                if stalled.is_set():
                    raise SSHError(f"{conn.node}: reading {path} timed out after {conn.options.command_timeout:g} s")
                if attempt == 2:
                    raise SSHError(f"{conn.node}: the connection dropped while reading {path}")
    # The file may be secret (a kubeconfig): its contents go neither to the log nor the console.
    result = conn.run(f"base64 < {shlex.quote(path)}", phase=phase, idempotent=True, log_output=False,
                      echo=False)
    return base64.b64decode(result.stdout)

def _put(conn: SSHConnection, payload: bytes, staging: str, directory: str, phase: str) -> None:
    paramiko = _paramiko()
    for attempt in (1, 2, 3):
        with conn.lock:
            transport = conn.transport(phase)
            with _watchdog(transport, conn.options.command_timeout) as stalled:
                try:
                    sftp = conn.sftp()
                    try:
                        remote = sftp.open(staging, "wb")
                    except FileNotFoundError:
                        # The target directory does not exist yet (only for root, who stages there).
                        conn.run(f"mkdir -p {shlex.quote(directory)}", phase=phase, idempotent=True)
                        remote = sftp.open(staging, "wb")
                    with remote:
                        remote.chmod(0o600)  # may be secret: nobody else reads it while it is staged
                        remote.write(payload)
                    return
                except (EOFError, OSError, paramiko.SSHException) as exc:
                    failure = exc
            if stalled.is_set():
                conn.discard()
                raise SSHError(f"{conn.node}: uploading {staging} timed out after {conn.options.command_timeout:g} s",
                               hint="the node may be slow or stuck; ssh.command_timeout sets the limit")
            if not _transport_died(transport):
                raise SSHError(f"{conn.node}: cannot write {staging}: {failure}")
            conn.discard()
            if attempt == 3:
                raise SSHError(f"{conn.node}: the connection kept dropping while uploading {staging}")
            conn.log.note(phase, "connection dropped during an upload; reconnecting", loud=True)
