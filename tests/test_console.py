"""The console: markup off (brackets survive), progress on stderr, data on stdout, secrets masked."""

from __future__ import annotations

import subprocess
import sys

from v6kube.redact import Secret, redact

SCRIPT = """
from v6kube import console
from v6kube.redact import Secret
token = Secret("tok-abcdef.0123456789abcdef")
console.progress("prepare", "cp-0", "connecting to [2001:db8::1]:22 [bold]x[/bold]")
console.data("endpoint [2001:db8::1]:6443")
console.table("t", ["a"], [["[fd00::1]"]])
console.error("join failed with token tok-abcdef.0123456789abcdef", "retry")
print(repr(token), str(token), f"{token}")
"""


def test_console_output_streams_and_markup():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "[prepare] cp-0: connecting to [2001:db8::1]:22 [bold]x[/bold]" in result.stderr
    assert "endpoint [2001:db8::1]:6443" in result.stdout
    assert "[fd00::1]" in result.stdout
    assert "[prepare]" not in result.stdout  # progress is not data
    assert "tok-abcdef.0123456789abcdef" not in result.stdout + result.stderr
    assert "error: join failed with token ***" in result.stderr
    assert "Secret('***') *** ***" in result.stdout


def test_redact_masks_every_registered_secret():
    Secret("Abcdef12345zz")
    assert redact("md5 Abcdef12345zz and again Abcdef12345zz") == "md5 *** and again ***"
    assert redact("nothing secret") == "nothing secret"


def test_one_live_line_per_node_only_on_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    from v6kube import console

    for terminal in (True, False):
        out = io.StringIO()
        fake = Console(file=out, force_terminal=terminal, width=100, markup=False, highlight=False)
        monkeypatch.setattr(console, "_console", lambda stream, fake=fake: fake)
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("TERM", "xterm")
        with console.node_lines("prepare", ["n1", "n2"]):
            for i in range(3):
                console.progress("prepare", "n1", f"step {i}")
            console.progress("prepare", "n2", "done")
            console.progress("prepare", None, "a phase-wide message")
        text = out.getvalue()
        assert "[prepare] n1: step 2" in text and "[prepare] n2: done" in text
        assert "a phase-wide message" in text
        # on a terminal the earlier lines of a node are replaced, elsewhere each one stays
        kept = [line for line in text.splitlines() if "step 0" in line and "\x1b" not in line]
        assert bool(kept) is (not terminal)
