"""Typed errors. Raised below, turned into exit codes only in cli.main().

Exit codes (DESIGN section 4): 0 ok; 1 a step failed (state kept, the message says how to
resume); 2 bad input or usage; 3 state missing, locked or from a newer version; 130 interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass

from v6kube.redact import redact


class V6kubeError(Exception):
    """Base of every error v6kube raises on purpose. `hint` tells the user what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        # Messages are often built from API answers or remote output: mask what they may carry.
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.hint = redact(hint) if hint else hint

    def __str__(self) -> str:
        return self.message


# --- bad input (exit 2) -------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (a dotted field path), what, and how to fix it."""

    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(V6kubeError):
    exit_code = 2


MAX_PROBLEMS_SHOWN = 50  # a file with thousands of bad entries still gives a readable message


class ConfigError(UsageError):
    """The cluster file is invalid. Carries every problem found, not just the first."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{source}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  - {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if count > MAX_PROBLEMS_SHOWN:
            lines.append(f"  ... and {count - MAX_PROBLEMS_SHOWN} more")
        super().__init__("\n".join(lines), hint="fix the fields above and run the command again")


# --- state (exit 3) -----------------------------------------------------------------------


class StateError(V6kubeError):
    """State missing, locked by another run, or written by a newer v6kube."""

    exit_code = 3


# --- a step failed (exit 1) ---------------------------------------------------------------


class PhaseError(V6kubeError):
    """A named phase failed; what finished before it is saved in the state file."""

    def __init__(self, phase: str, cause: Exception, *, resume: str | None = None):
        self.phase = phase
        self.cause = cause
        super().__init__(f"phase {phase!r} failed: {cause}", hint=resume)


class ProviderError(V6kubeError):
    """The provider API refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        self.status = status
        super().__init__(message, hint=hint)


class AuthenticationError(ProviderError):
    pass


class PermissionDenied(ProviderError):
    pass


class NotFound(ProviderError):
    pass


class Unprocessable(ProviderError):
    """422: the API rejected the request; `errors` holds the API's own messages."""

    def __init__(self, message: str, *, errors: list[str] | None = None, status: int | None = 422):
        self.errors = list(errors or [])
        super().__init__(message, status=status)


class RateLimited(ProviderError):
    def __init__(self, message: str, *, status: int | None = 429, hint: str | None = None,
                 retry_after: float | None = None):
        self.retry_after = retry_after  # seconds the API asked for, when it said
        super().__init__(message, status=status, hint=hint)


class ServerError(ProviderError):
    pass


class ConnectionFailed(ProviderError):
    """No HTTP answer: connection refused or reset, or a timeout. A POST may still have happened."""


class ProvisioningFailed(ProviderError):
    """A server ended in a failed state or did not become ready before the deadline."""


class SSHError(V6kubeError):
    """Could not reach, authenticate to, or run a command on a node."""


class HostKeyMismatch(SSHError):
    def __init__(self, node: str, expected: str, got: str):
        self.node, self.expected, self.got = node, expected, got
        super().__init__(
            f"{node}: host key mismatch: pinned {expected}, server offered {got}; nothing was run",
            hint="if the server was reinstalled on purpose, update its pinned key in the cluster file "
            "or the state file; otherwise treat this as a possible attack",
        )


class SudoPasswordRequired(SSHError):
    pass


class RemoteCommandFailed(SSHError):
    def __init__(self, node: str, command: str, exit_status: int, output: str = ""):
        self.node, self.command, self.exit_status, self.output = node, command, exit_status, output
        tail = f": {output.strip().splitlines()[-1]}" if output.strip() else ""
        how = "was killed by a signal" if exit_status == -1 else f"failed with exit status {exit_status}"
        super().__init__(f"{node}: command {how}: {command}{tail}")


class UnsupportedOS(V6kubeError):
    pass


class DownloadHostUnreachable(V6kubeError):
    """A node has no route to any address of a host it must download from."""


class NodeNotConverged(V6kubeError):
    """A node still differs from what was wanted after its preparation steps ran."""


class Interrupted(V6kubeError):
    exit_code = 130
