"""The only module that prints. Progress and messages go to stderr, data to stdout.

Rich markup and highlighting are off everywhere: rich would eat "[fd00::1]" and "[phase]".
Every line passes through redact() so a registered secret never reaches the terminal, tracebacks
included. NO_COLOR (any value) and TERM=dumb mean no escape codes at all. Tables on a pipe are as
wide as the terminal the user sits at, or 100 columns without one; a cell is never split inside a
word (an IPv6 literal must stay copyable), so a table of long words may still be wider.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterable, Iterator, Sequence

from v6kube.redact import redact

_lock = threading.Lock()
PIPE_WIDTH = 100  # columns for output that is not a terminal, when no terminal is known
debug_enabled = False


def plain() -> bool:
    """No escape codes at all: NO_COLOR is set (https://no-color.org) or the terminal is dumb."""
    return "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"


def plural(count: int, word: str, words: str | None = None) -> str:
    """ "1 node", "3 nodes", "0 nodes"; `words` for an irregular plural."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _pipe_width() -> int:
    """The width of the user's terminal when stdout is a pipe (`v6kube plan | less`), else 100."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for stream in (sys.stderr, sys.stdin):
        try:
            return os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            continue
    return PIPE_WIDTH


@lru_cache(maxsize=None)
def _console(stream: str):
    # rich is imported on first output, not at start-up (`--help` stays fast)
    from rich.console import Console

    options = {"color_system": None} if plain() else {}
    console = Console(stderr=(stream == "err"), markup=False, highlight=False, emoji=False, soft_wrap=True,
                      **options)
    if stream == "out" and not console.is_terminal:
        console.width = _pipe_width()
    console.on_broken_pipe = _broken_pipe  # rich would exit 1 itself; cli.main() ends quietly instead
    return console


class OutputClosed(Exception):
    """The reader of our output went away (`v6kube plan x.yaml | head`). Not an OSError, so that
    nothing on the way up mistakes it for another failure; cli.main() ends quietly on it."""


def _broken_pipe() -> None:
    raise OutputClosed()


def stdout_closed() -> bool:
    """Is stdout a pipe whose reader has gone? (A BrokenPipeError may also come from a socket.)"""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _text(text: str, style: str | None = None):
    from rich.text import Text

    return Text(redact(text), style=style or "")


def _emit(stream: str, text: str, style: str | None = None) -> None:
    with _lock:
        _console(stream).print(_text(text, style))


_live: dict[str, Any] = {}  # while node_lines() shows live lines: the phase, each node's line, the display


def progress(phase: str, node: str | None, message: str) -> None:
    """One progress line: "[phase] node: message". While node_lines() is showing, a node's message
    replaces that node's live line instead."""
    where = f"{node}: " if node else ""
    with _lock:
        live = _live.get("display")
        if live is not None and node in _live["lines"] and phase == _live["phase"]:
            _live["lines"][node] = redact(message)
            live.update(_live_text())
            return
    _emit("err", f"[{phase}] {where}{message}")


def _live_text():
    from rich.text import Text

    return Text("\n".join(f"[{_live['phase']}] {node}: {line}" for node, line in _live["lines"].items()))


@contextmanager
def node_lines(phase: str, nodes: Sequence[str]) -> Iterator[None]:
    """While a phase works on several nodes: on an interactive terminal, one live line per node
    (its latest message), and each node's last line kept at the end. Anywhere else (a pipe, a
    log, NO_COLOR, TERM=dumb) every message stays a line of its own."""
    err = _console("err")
    if not nodes or not err.is_terminal or plain() or _live:
        yield
        return
    from rich.live import Live

    with _lock:
        _live.update(phase=phase, lines={node: "..." for node in nodes})
    try:
        with Live(_live_text(), console=err, transient=True, refresh_per_second=8) as display:
            _live["display"] = display
            yield
    finally:
        with _lock:
            last = _live_text()
            _live.clear()
        err.print(last)


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
        try:
            sys.stdout.write(redact(text) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            raise OutputClosed() from None


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table on stdout, at most as wide as the console (see the module docstring). Cells are plain
    text (never markup) and no word in a cell is ever split: an IPv6 literal or a URL must stay
    copyable, so cells wrap at spaces only. When even the longest words do not fit side by side,
    each row is printed as "column: value" lines instead (as kubectl describe does)."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table

    texts = [[_text("" if cell is None else str(cell)) for cell in row] for row in rows]
    out = _console("out")
    natural, shortest = [], []
    for i, column in enumerate(columns):
        cells = [row[i].plain for row in texts] + [column]
        natural.append(max(cell_len(line) for cell in cells for line in (cell.splitlines() or [""])))
        shortest.append(max((cell_len(w) for cell in cells for w in cell.split()), default=1))
    room = out.width - 3 * len(columns) - 1  # borders and padding
    widths = _fit(natural, shortest, room)
    if sum(widths) > room:
        _records(title, columns, [[cell.plain for cell in row] for row in texts], out.width)
        return

    t = Table(show_lines=False, box=box.ASCII if os.environ.get("TERM") == "dumb" else box.HEAVY_HEAD)
    for column, width, least in zip(columns, widths, shortest):
        t.add_column(column, width=width, min_width=least)
    for row in texts:
        t.add_row(*row)
    with _lock:
        out.print(_text("\n".join(_wrap(title, out.width))))
        out.print(t)


def _records(title: str, columns: Sequence[str], rows: list[list[str]], width: int) -> None:
    """A table too wide for the console, one "column: value" line per cell, rows apart."""
    lines = _wrap(title, width)
    for row in rows:
        lines.append("")
        for column, cell in zip(columns, row):
            lines += _wrap(f"{column}: {cell}", width, "  ", "    ")
    with _lock:
        _console("out").print(_text("\n".join(lines) + "\n"))


def _wrap(text: str, width: int, indent: str = "", more: str = "") -> list[str]:
    """Lines of at most `width` columns, broken at spaces only (never inside an address or a URL)."""
    import textwrap

    lines = textwrap.wrap(text, width=max(width, 20), initial_indent=indent, subsequent_indent=more,
                          break_long_words=False, break_on_hyphens=False) or [indent]
    return [line.strip() if len(line) > width else line for line in lines]  # a long word: no indent


def _fit(natural: list[int], shortest: list[int], room: int) -> list[int]:
    """Column widths within `room`: the widest wrappable column gives up a column at a time, never
    below its longest word."""
    widths = list(natural)
    while sum(widths) > room:
        slack, i = max((w - s, i) for i, (w, s) in enumerate(zip(widths, shortest)))
        if slack <= 0:
            break
        widths[i] -= 1
    return widths


def traceback() -> None:
    """The current exception's traceback, for --debug: plain text, redacted (messages built from
    API or remote data may carry a secret), never with local variables."""
    from v6kube.redact import format_exception

    exc = sys.exc_info()[1]
    if exc is not None:
        _emit("err", format_exception(exc).rstrip("\n"))
