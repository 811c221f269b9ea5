"""A table of hostile cluster files: each must give exit 2, the file named, words a user reads, no
traceback, and no hang. Shared by tests/test_hostile_files.py (exit code and message) and
benchmarks/hostile_files.py (how long each takes).

A case is (id, make, words): make(directory) returns the path to pass to `plan` (or "-" with the
bytes for stdin as a second value); words must appear in stderr.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VALID = (ROOT / "examples" / "static.yaml").read_text()


def _file(name: str, data: bytes | str):
    def make(directory: Path):
        path = directory / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path
    return make


def _laughs(levels: int = 9, width: int = 10) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + f"\nname: *l{levels - 1}\n"


def _merge_bomb() -> str:
    lines = ["m0: &m0 {a: 1, b: 2}"]
    for i in range(1, 12):
        lines.append(f"m{i}: &m{i} {{x{i}: [*m{i - 1}, *m{i - 1}, *m{i - 1}, *m{i - 1}]}}")
    return "\n".join(lines) + "\nannounce: {<<: *m11}\n"


def _chain(length: int = 3000) -> str:
    return "c0: &c0 [1]\n" + "".join(f"c{i}: &c{i} [*c{i - 1}]\n" for i in range(1, length))


def _directory(directory: Path):
    path = directory / "a-directory.yaml"
    path.mkdir()
    return path


def _fifo(directory: Path):
    path = directory / "fifo.yaml"
    os.mkfifo(path)
    return path


def _socket(directory: Path):
    path = directory / "socket.yaml"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


def _stdin(data: bytes):
    def make(directory: Path):
        return "-", data
    return make


def _many_problems() -> str:
    nodes = "".join(f"  - {{name: N_{i}, role: boss}}\n" for i in range(3000))
    return f"name: s\nprovider: {{type: static, block: '2001:db8::/56', peers: ['2001:db8:ffff::e']}}\nnodes:\n{nodes}"


CASES = [
    ("alias-loop-in-list", _file("loop.yaml", "name: &a [*a]\n"), "refers to the value that contains it"),
    ("alias-loop-in-mapping", _file("loop-map.yaml", "provider: &p {type: static, again: *p}\n"),
     "refers to the value that contains it"),
    ("billion-laughs", _file("laughs.yaml", _laughs()), "expands to more than"),
    ("merge-key-bomb", _file("merge.yaml", _merge_bomb()), "expands to more than"),
    ("alias-chain-deep", _file("chain.yaml", _chain()), "nested more than"),
    ("flow-nesting-deep", _file("flow.yaml", "name: " + "[" * 100_000), "nested too deeply"),
    ("block-nesting-deep", _file("block.yaml", "".join(" " * i + "k:\n" for i in range(1300))), "nested"),
    ("latin-1", _file("latin1.yaml", VALID.replace("seed", "s\u00e9ed").encode("latin-1")), "is not UTF-8"),
    ("utf-16", _file("utf16.yaml", VALID.encode("utf-16")), "UTF-16"),
    ("nul-bytes", _file("nul.yaml", VALID.encode()[:100] + b"\x00\x00" + VALID.encode()[100:]), "NUL byte"),
    ("random-binary", _file("random.yaml", random.Random(11).randbytes(4096)), "problem"),
    ("control-character", _file("bell.yaml", VALID.replace("seed", "se\x07ed", 1)), "control character U+0007"),
    ("too-large", _file("huge.yaml", "# " + "x" * (1024 * 1024) + "\n" + VALID), "larger than 1 MiB"),
    ("empty", _file("empty.yaml", ""), "is empty"),
    ("directory", _directory, "is a directory"),
    ("device", lambda d: Path("/dev/zero"), "is a device"),
    ("named-pipe-without-writer", _fifo, "named pipe"),
    ("unix-socket", _socket, "is a socket"),
    ("duplicate-type", _file("dup.yaml", VALID.replace("  type: static\n", "  type: static\n  type: packet\n")),
     "key 'type' is written twice (lines 7 and 8)"),
    ("duplicate-top-level", _file("dup-top.yaml", VALID + "name: other\n"), "key 'name' is written twice (lines 5 and"),
    ("python-tag", _file("tag.yaml", "name: !!python/object/apply:os.system ['true']\n"),
     "the YAML tag '!!python/object/apply:os.system' is not allowed"),
    ("two-documents", _file("two.yaml", VALID + "---\n" + VALID), "more than one YAML document"),
    ("list-as-key", _file("listkey.yaml", "? [a, b]\n: c\n"), "a mapping key is a list or a mapping"),
    ("huge-integer", _file("bigint.yaml", VALID.replace("  user: root\n", "  user: root\n  port: 1" + "0" * 100_000 + "\n")),
     "too many digits"),
    ("long-scalar", _file("long.yaml", "name: " + "a" * (1024 * 1024 - 100) + "\n"), "is not a DNS label"),
    ("thousands-of-problems", _file("many.yaml", _many_problems()), "more"),
    ("tab-indentation", _file("tabs.yaml", VALID.replace("  type: static", "\ttype: static")),
     "spaces, not tabs"),
    ("stdin-binary", _stdin(b"\xff\xfe\x00garbage"), "UTF-16"),
    ("stdin-alias-loop", _stdin(b"nodes: &n [*n]\n"), "refers to the value that contains it"),
    ("missing-file", lambda d: d / "no-such-file.yaml", "no such file"),
]


def run_case(make, directory: Path, timeout: float = 60.0):
    """Run `plan` on the case. Returns (completed process, path shown in messages, seconds)."""
    import time

    made = make(directory)
    stdin = None
    if isinstance(made, tuple):
        made, stdin = made
    shown = "<stdin>" if str(made) == "-" else str(made)
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "v6kube", "plan", str(made)], input=stdin,
                            capture_output=True, timeout=timeout)  # a guard against a hang only
    return result, shown, time.monotonic() - start
