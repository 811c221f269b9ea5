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
NO_LIMIT = 100_000  # columns, for output that is not a terminal
debug_enabled = False


@lru_cache(maxsize=None)
def _console(stream: str):
    # rich is imported on first output, not at start-up (`--help` stays fast)
    from rich.console import Console

    console = Console(stderr=(stream == "err"), markup=False, highlight=False, emoji=False, soft_wrap=True)
    if stream == "out" and not console.is_terminal:
        console.width = NO_LIMIT  # not 80 columns: tables keep one line per row for a pipe or a file
    return console


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
    """A table on stdout. Cells are plain text (never markup) and no word in a cell is ever split:
    an IPv6 literal must stay copyable. A terminal narrower than the table wraps cells at spaces
    only; a pipe or file gets one line per row."""
    from rich.cells import cell_len
    from rich.table import Table

    texts = [[_text("" if cell is None else str(cell)) for cell in row] for row in rows]
    t = Table(title=title, title_justify="left", show_lines=False)
    for i, column in enumerate(columns):
        words = [w for row in texts for w in row[i].plain.split()] + column.split()
        t.add_column(column, min_width=max(map(cell_len, words), default=1))
    for row in texts:
        t.add_row(*row)
    with _lock:
        _console("out").print(t)


def traceback() -> None:
    """The current exception's traceback, only in --debug mode, never with local variables."""
    with _lock:
        _console("err").print_exception(show_locals=False)
