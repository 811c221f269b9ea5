"""Reading a cluster file safely: bounded size, UTF-8, one YAML document, no surprises.

Every failure is a ConfigError naming the file (and the line when there is one), so a hostile or
broken file exits 2 and never hangs: the size is capped before parsing, only regular files, pipes
and stdin are read (a pipe with a deadline), nesting and alias expansion are bounded on the node
graph before any Python object is built, and a key written twice is an error naming both lines.
"""

from __future__ import annotations

import os
import re
import select
import stat
import sys
import time
from typing import Any

import yaml

from v6kube.errors import ConfigError, Problem

MAX_BYTES = 1024 * 1024  # 1 MiB: a cluster file of thousands of nodes is far smaller
MAX_DEPTH = 64  # nesting levels, after alias expansion; a cluster file needs 4
MAX_VALUES = 50_000  # YAML values after alias expansion (scalars, lists and mappings)
READ_IDLE_SECONDS = 30.0  # a pipe that sends nothing for this long is abandoned
STDIN = "-"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: fast, and bounds flow nesting
_IPV6ISH = re.compile(r"[0-9A-Fa-f]*::[0-9A-Fa-f:.]*|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){2,}")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_HINT = "fix the file and run the command again"


def source_name(path: str | os.PathLike[str]) -> str:
    return "<stdin>" if str(path) == STDIN else str(path)


def _fail(source: str, where: str, message: str, hint: str | None = _HINT) -> ConfigError:
    return ConfigError(source, [Problem(where, message, hint)])


# --- bytes ------------------------------------------------------------------------------------


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, at most MAX_BYTES; `-` reads stdin. Refuses what is not a file."""
    source = source_name(path)
    if str(path) == STDIN:
        if sys.stdin is None or sys.stdin.closed:
            raise _fail(source, "(file)", "stdin is closed", "pipe the cluster file in: v6kube plan - < cluster.yaml")
        fd = sys.stdin.fileno()
        if os.isatty(fd):
            raise _fail(source, "(file)", "stdin is a terminal, not a cluster file",
                        "pipe the cluster file in: v6kube plan - < cluster.yaml")
        return _read_fd(fd, source, stat.S_ISREG(os.fstat(fd).st_mode))
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _fail(source, "(file)", f"cannot read the cluster file: {_reason(exc)}",
                    "check the path") from None
    kind = _not_a_file(info)
    if kind:
        raise _fail(source, "(file)", f"is {kind}, not a cluster file",
                    "name a YAML file; v6kube plan - < FILE reads one from stdin")
    regular = stat.S_ISREG(info.st_mode)
    if regular and info.st_size > MAX_BYTES:
        raise _too_large(source)
    try:
        # O_NONBLOCK: opening a FIFO that has no writer must not wait forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _fail(source, "(file)", f"cannot read the cluster file: {_reason(exc)}",
                    "check the path and its permissions") from None
    try:
        kind = _not_a_file(os.fstat(fd))  # it may have changed since stat()
        if kind:
            raise _fail(source, "(file)", f"is {kind}, not a cluster file", "name a YAML file")
        return _read_fd(fd, source, regular)
    finally:
        os.close(fd)


def _not_a_file(info: os.stat_result) -> str | None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISFIFO(mode) and info.st_dev != _pipefs_device():
        # a named pipe may never get a writer; process substitution <(...) is an anonymous pipe
        return "a named pipe (FIFO)"
    return None  # a regular file, or an anonymous pipe (v6kube plan <(envsubst < cluster.yaml))


def _pipefs_device() -> int:
    read_end, write_end = os.pipe()
    try:
        return os.fstat(read_end).st_dev
    finally:
        os.close(read_end)
        os.close(write_end)


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.strerror else str(exc)


def _too_large(source: str) -> ConfigError:
    return _fail(source, "(file)", f"is larger than {MAX_BYTES // (1024 * 1024)} MiB, the most a cluster file may hold",
                 "a cluster file is a few kilobytes; is this the right file?")


def _read_fd(fd: int, source: str, regular: bool) -> bytes:
    chunks: list[bytes] = []
    total = 0
    deadline = time.monotonic() + READ_IDLE_SECONDS
    while True:
        if not regular:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise _fail(source, "(file)", f"nothing arrived for {READ_IDLE_SECONDS:.0f} seconds",
                            "pipe a complete cluster file in")
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError as exc:
            raise _fail(source, "(file)", f"cannot read the cluster file: {_reason(exc)}", "check the file") from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_BYTES:
            raise _too_large(source)
        chunks.append(chunk)
        deadline = time.monotonic() + READ_IDLE_SECONDS


# --- text -------------------------------------------------------------------------------------


def decode(data: bytes, source: str) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped). NUL bytes and other encodings are refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail(source, "(file)", "is UTF-16 text; a cluster file must be UTF-8", "save the file as UTF-8")
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\x00" in data:
        line, column = _position(data, data.index(b"\x00"))
        raise _fail(source, f"line {line}, column {column}", "holds a NUL byte: this is not a text file",
                    "name the YAML cluster file, not a binary file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise _fail(source, f"line {line}, column {column}",
                    f"byte 0x{data[exc.start]:02x} is not UTF-8 text",
                    "save the file as UTF-8 (iconv -f latin1 -t utf-8 may help)") from None


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


# --- YAML -------------------------------------------------------------------------------------


def load_yaml(text: str, source: str) -> Any:
    """One YAML document as plain Python values, with every bound and duplicate check applied."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, text, source) from None
        except RecursionError:
            raise _fail(source, "(file)", f"is nested more than {MAX_DEPTH} levels deep") from None
        if node is None:
            raise _fail(source, "(file)", "is empty", "start from examples/minimal.yaml")
        problems = _check_graph(node)
        if problems:
            raise ConfigError(source, problems)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, text, source) from None
        except (ValueError, OverflowError, TypeError) as exc:  # int("1" * 5000): Python's digit limit
            what = "a number has too many digits" if "digits" in str(exc) else "a value cannot be read"
            raise _fail(source, "(file)", what, "write numbers of a few digits; quote anything else") from None
    finally:
        loader.dispose()


def _check_graph(root: yaml.Node) -> list[Problem]:
    """Bounds on the composed node graph, before anything is built from it: no alias cycle, at most
    MAX_DEPTH levels and MAX_VALUES values once aliases are expanded (a "billion laughs" file is a
    few lines of text), and no key written twice in a mapping."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) once expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    problems: list[Problem] = []
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            kids = _children(node)
            values = 1 + sum(sizes[id(k)][0] for k in kids)
            depth = 1 + max((sizes[id(k)][1] for k in kids), default=0)
            if depth > MAX_DEPTH:
                return [Problem(_where(node), f"is nested more than {MAX_DEPTH} levels deep (after expanding aliases)",
                                "a cluster file needs only a few levels")]
            if values > MAX_VALUES:
                return [Problem(_where(node), f"expands to more than {MAX_VALUES} values through aliases",
                                "YAML anchors and aliases (&name, *name) may repeat small values only")]
            sizes[key] = (values, depth)
            continue
        if key in sizes:
            continue
        if key in on_path:
            return [Problem(_where(node), "an alias refers to the value that contains it (a loop)",
                            "remove the alias (*name) that points back to its own anchor")]
        on_path.add(key)
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            problems += _duplicate_keys(node)
        for child in _children(node):
            if id(child) not in sizes:
                stack.append((child, False))
    return problems


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _duplicate_keys(node: yaml.MappingNode) -> list[Problem]:
    seen: dict[tuple[str, str], yaml.Node] = {}
    problems = []
    for key, _value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key.tag, key.value)
        first = seen.get(ident)
        if first is not None:
            problems.append(Problem(
                _where(key), f"key {_short(key.value)!r} is written twice (lines {first.start_mark.line + 1} "
                f"and {key.start_mark.line + 1}); YAML would silently keep the last one",
                "keep one of them"))
        else:
            seen[ident] = key
    return problems


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}" if mark is not None else "(file)"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# libyaml's words for the common mistakes, in a user's words
_SYNTAX = (
    ("mapping values are not allowed", "a ':' where YAML does not expect one"),
    ("cannot start any token", "a character YAML does not allow here (a tab, or one of @ ` % at the start of a value)"),
    ("did not find expected key", "a line is indented differently from the keys around it"),
    ("did not find expected '-' indicator", "a list item ('- ') is indented differently from the items around it"),
    ("could not find expected ':'", "a key has no ':' after it"),
    ("did not find expected ',' or ']'", "a [ list ] is not closed"),
    ("did not find expected ',' or '}'", "a { mapping } is not closed"),
    ("found unexpected end of stream", "the file ends inside a quoted value"),
    ("unknown escape character", "a backslash escape that YAML does not know inside \"double quotes\""),
    ("undefined alias", "an alias (*name) whose anchor (&name) is not defined before it"),
    ("expected alphabetic or numeric character", "an anchor or alias without a name"),
)


def _syntax_error(exc: yaml.YAMLError, text: str, source: str) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses
        line, column = _char_position(text, exc.position)
        return _fail(source, f"line {line}, column {column}",
                     f"holds the control character U+{exc.character:04X}, which YAML does not allow"
                     if isinstance(exc.character, int) else "holds a character YAML does not allow",
                     "remove it; is this the right file?")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
    problem = getattr(exc, "problem", None) or "the file is not valid YAML"
    if isinstance(exc, yaml.constructor.ConstructorError):
        tag = re.search(r"tag '([^']*)'", problem)
        if tag:
            name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            return _fail(source, where, f"the YAML tag {_short(name)!r} is not allowed",
                         "a cluster file holds plain values: strings, numbers, booleans, lists and mappings")
        if "unhashable" in problem:
            return _fail(source, where, "a mapping key is a list or a mapping", "keys are plain words such as name:")
    if "expected a single document" in problem or "another document" in problem or "<document start>" in problem:
        return _fail(source, where, "holds more than one YAML document, or text after the document",
                     "keep one document (remove the extra ---)")
    if "maximum nesting depth" in problem:
        return _fail(source, where, "is nested too deeply", "a cluster file needs only a few levels")
    words = next((mine for theirs, mine in _SYNTAX if theirs in problem), problem)
    hint = "check the indentation (spaces, not tabs) and the ':' after each key"
    if mark is not None and _unquoted_ipv6_near(text, mark.line):
        hint = "quote IPv6 literals, e.g. \"2001:db8::1\": a ':' in an unquoted value confuses YAML"
    return _fail(source, where, f"YAML syntax: {words}", hint)


def _char_position(text: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(text)))
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _unquoted_ipv6_near(text: str, line: int) -> bool:
    """Is there an unquoted IPv6-looking word on the error's line or the one before it?"""
    lines = text.splitlines()
    for number in (line, line - 1):
        if 0 <= number < len(lines):
            bare = _QUOTED.sub("", lines[number].split(" #", 1)[0])
            if _IPV6ISH.search(bare):
                return True
    return False
