"""Secrets: a value type that never shows itself, and one registry that masks known secrets.

Everything v6kube prints, logs or saves goes through `redact()`: console lines, --debug tracebacks,
error messages, node logs, the state file and plan.json. It masks

- every registered value (a Secret registers itself: API tokens, OAuth client secrets, BGP
  passwords, bootstrap tokens, certificate keys, private host keys), and each long line of a
  multi-line one, so a PEM key cut into lines by a log is still masked;
- by shape, what may reach a message before anyone registered it: PEM private key blocks, kubeadm
  bootstrap tokens (abcdef.0123456789abcdef), certificate keys after --certificate-key, and the
  values of X-Auth-Token / Authorization headers and OAuth client_secret / access_token fields.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
MIN_LENGTH = 6  # shorter values would mask ordinary words; real secrets are long
MIN_LINE = 16  # a line of a multi-line secret (a PEM body line is 64 or 70 characters)

_lock = threading.Lock()
_known: set[str] = set()
_ordered: tuple[str, ...] = ()  # longest first, so a secret that contains another is masked whole

# Public values that look like secrets: the offline plan's placeholders (planner.py) must stay visible.
PUBLIC = frozenset({"v6kube.placeholder00000"})

BOOTSTRAP_TOKEN = re.compile(r"\b([a-z0-9]{6})\.([a-z0-9]{16})\b")
_SHAPES = (
    (re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S),
     lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY----- {MASK} -----END {m.group(1)}PRIVATE KEY-----"),
    (re.compile(r"(certificate[-_]?key[\"']?\s*[:= ]\s*[\"']?)[0-9a-fA-F]{64}", re.I),
     lambda m: m.group(1) + MASK),
    (re.compile(r"((?:x-auth-token|authorization|client[-_]?secret|access[-_]?token|refresh[-_]?token)"
                r"[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?)[^\s\"',;&}\]]{4,}", re.I),
     lambda m: m.group(1) + MASK),
)


class Secret:
    """A secret string. str() and repr() are masked; `.reveal()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str):
            raise TypeError("Secret holds a string")
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def register(value: str | None) -> None:
    """Remember a secret value so that redact() masks it wherever it appears: the value, each long
    line of a multi-line value, and the secret half of a bootstrap token."""
    global _ordered
    if not value:
        return
    parts = {value.strip()} if len(value.strip()) >= MIN_LENGTH else set()
    if "\n" in value:
        parts |= {line.strip() for line in value.splitlines()
                  if len(line.strip()) >= MIN_LINE and not line.strip().startswith("-----")}
    token = BOOTSTRAP_TOKEN.fullmatch(value.strip())
    if token:
        parts.add(token.group(2))
    parts -= PUBLIC
    if parts:
        with _lock:
            _known.update(parts)
            _ordered = tuple(sorted(_known, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every registered secret and every secret-shaped value masked."""
    if not isinstance(text, str):
        text = str(text)
    for value in _ordered:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replace in _SHAPES:
        text = pattern.sub(replace, text)
    return BOOTSTRAP_TOKEN.sub(lambda m: m.group(0) if m.group(0) in PUBLIC else f"{m.group(1)}.{MASK}", text)


def format_exception(exc: BaseException) -> str:
    """The exception's traceback (with its causes) as text, redacted; never with local variables."""
    import traceback

    return redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
