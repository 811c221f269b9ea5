"""Secrets: a value type that never shows itself, and one registry that masks known secrets.

Every line the console prints or a node log records goes through `redact()`, so a token that
reaches a message by accident (an API echo, a remote command line) is still masked.
"""

from __future__ import annotations

import threading

MASK = "***"

_lock = threading.Lock()
_known: set[str] = set()


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
    """Remember a secret value so that redact() masks it wherever it appears."""
    # Very short values would mask ordinary words; real tokens are long.
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text
