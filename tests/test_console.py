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
