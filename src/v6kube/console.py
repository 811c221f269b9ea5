"""The only module that prints. Progress and messages go to stderr, data to stdout.

Rich markup and highlighting are off everywhere: rich would eat "[fd00::1]" and "[phase]".
Every line passes through redact() so a registered secret never reaches the terminal.
"""

from __future__ import annotations

import json
import sys
import threading
from functools import lru_cache
from typing import Any, Iterable, Sequence

from v6kube.redact import redact

_lock = threading.Lock()
debug_enabled = False


@lru_cache(maxsize=None)
def _console(stream: str):
    # rich is imported on first output, not at start-up (`--help` stays fast)
    from rich.console import Console

    return Console(stderr=(stream == "err"), markup=False, highlight=False, emoji=False, soft_wrap=True)


def _text(text: str, style: str | None = None):
    from rich.text import Text

    return Text(redact(text), style=style or "")


def _emit(stream: str, text: str, style: str | None = None) -> None:
    with _lock:
        _console(stream).print(_text(text, style))


def progress(phase: str, node: str | None, message: str) -> None:
    """One progress line: "[phase] node: message"."""
    where = f"{node}: " if node else ""
    _emit("err", f"[{phase}] {where}{message}")


def info(message: str) -> None:
    _emit("err", message)


def warn(message: str) -> None:
    _emit("err", f"warning: {message}", "yellow")


def error(message: str, hint: str | None = None) -> None:
    _emit("err", f"error: {message}", "red")
    if hint:
        _emit("err", f"hint: {hint}")


def debug(message: str) -> None:
    if debug_enabled:
        _emit("err", f"debug: {message}", "dim")


def data(text: str) -> None:
    """Data for the user or a pipe, on stdout."""
    _emit("out", text)


def data_json(document: Any) -> None:
    text = json.dumps(document, indent=2, sort_keys=False, default=str)
    with _lock:
        sys.stdout.write(redact(text) + "\n")
        sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table on stdout. Cells are plain text (never markup)."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*(_text("" if cell is None else str(cell)) for cell in row))
    with _lock:
        _console("out").print(t)


def traceback() -> None:
    """The current exception's traceback, only in --debug mode, never with local variables."""
    with _lock:
        _console("err").print_exception(show_locals=False)
