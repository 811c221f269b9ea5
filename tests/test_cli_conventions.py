"""CLI conventions users know from kubectl, gh and pip: global options anywhere, -h, NO_COLOR and
TERM=dumb, a quiet closed pipe, plurals, piped tables that fit, plan --output json, --out rules."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import typer
import yaml

from v6kube import cli, console

ROOT = Path(__file__).resolve().parents[1]
PACKET = ROOT / "examples" / "packet.yaml"
STATIC = ROOT / "examples" / "static.yaml"


def v6kube(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "v6kube", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


def in_terminal(args, env) -> tuple[int, bytes]:
    """Run v6kube with stdout and stderr on a pseudo-terminal; returns (exit code, every byte shown)."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "v6kube", *map(str, args)], stdout=secondary,
                               stderr=secondary, env=env)
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    return process.wait(timeout=120), output


# --- --debug and --state-dir, before or after any command -------------------------------------


def demo_app() -> typer.Typer:
    """Two commands as the lead writes them: one declares StateDir, one does not."""
    app = typer.Typer(cls=cli.V6kubeGroup, add_completion=False, rich_markup_mode=None)
    app.callback()(cli._main)

    @app.command()
    def declares(state_dir: Optional[Path] = cli.StateDir) -> None:
        console.data(f"state_dir={state_dir} debug={console.debug_enabled}")

    @app.command()
    def plain() -> None:
        console.data(f"state_dir={cli.options.state_dir} debug={console.debug_enabled}")

    return app


@pytest.mark.parametrize("command", ["declares", "plain"])
@pytest.mark.parametrize("where", ["before", "after", "after-with-equals"])
def test_global_options_work_before_and_after_every_command(command, where, capsys):
    args = {"before": ["--debug", "--state-dir", "/tmp/s", command],
            "after": [command, "--state-dir", "/tmp/s", "--debug"],
            "after-with-equals": [command, "--debug", "--state-dir=/tmp/s"]}[where]
    demo_app()(args, standalone_mode=False)
    assert capsys.readouterr().out.strip() == "state_dir=/tmp/s debug=True"
    demo_app()([command], standalone_mode=False)  # not carried over to the next invocation
    assert capsys.readouterr().out.strip() == "state_dir=None debug=False"


def test_every_command_help_mentions_the_global_options():
    for name in ("plan",):
        result = v6kube(name, "-h")
        assert result.returncode == 0, result.stderr
        assert "--debug" in result.stdout and "--state-dir" in result.stdout


def test_debug_after_the_command_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad_Name\n")
    result = v6kube("plan", bad, "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr
    assert "Traceback" not in v6kube("plan", bad).stderr


@pytest.mark.parametrize("args", [["-h"], ["plan", "-h"], ["--help"], ["plan", "--help"]])
def test_dash_h_is_help(args):
    result = v6kube(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage: v6kube" in result.stdout


# --- colour ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", [{"NO_COLOR": "1"}, {"NO_COLOR": ""}, {"TERM": "dumb"}])
def test_no_escape_codes_with_no_color_or_a_dumb_terminal(variable, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "FORCE_COLOR")}
    env.setdefault("TERM", "xterm-256color")
    env |= variable
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad_Name\n")
    for args in (["plan", PACKET], ["plan", bad], ["plan", PACKET, "--frobnicate"], ["--debug", "plan", bad]):
        code, output = in_terminal(args, env)
        assert code in (0, 2), output
        assert b"\x1b" not in output, (args, output[:400])
    # without them, a terminal does get colour (so the checks above are not vacuous)
    code, output = in_terminal(["plan", bad], {k: v for k, v in env.items() if k != "NO_COLOR"} | {"TERM": "xterm"})
    assert b"\x1b[" in output


# --- pipes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["plan", PACKET], ["plan", PACKET, "-o", "json"], ["--help"], ["plan", "-h"],
                                  ["--version"]])
def test_a_closed_pipe_ends_quietly_like_cat(args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before v6kube writes a byte (as `| head -0`)
    process = subprocess.Popen([sys.executable, "-m", "v6kube", *map(str, args)], stdout=write_end,
                               stderr=subprocess.PIPE)
    os.close(write_end)
    _, err = process.communicate(timeout=120)
    assert err == b""  # no message, no "Exception ignored", no traceback
    assert process.returncode == 141  # as a shell reports cat ended by SIGPIPE

    cat = subprocess.Popen(["cat", str(PACKET)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cat.stdout.close()
    assert cat.wait(timeout=10) in (0, -13) and cat.stderr.read() == b""  # cat: killed by SIGPIPE, silent


def test_a_broken_pipe_that_is_not_stdout_is_an_error(tmp_path):
    """A BrokenPipeError from a socket (an SSH or API connection) must never pass for a closed stdout."""
    script = ("import sys\nfrom v6kube import cli, planner\n"
              "def broken(plan, secrets=None):\n    raise BrokenPipeError(32, 'Broken pipe')\n"
              "planner.render_files = broken\nsys.argv = ['v6kube', *sys.argv[1:]]\ncli.main()\n")
    result = subprocess.run([sys.executable, "-c", script, "plan", str(PACKET), "--out", str(tmp_path / "p")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "internal error: BrokenPipeError" in result.stderr


def test_piped_tables_are_at_most_100_columns_without_a_terminal():
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = v6kube("plan", PACKET, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    widths = [len(line) for line in result.stdout.splitlines() if len(line.split()) > 1]
    assert max(widths) <= 100, max(widths)
    assert "2001:db8:0:2a00::3/127" in result.stdout  # no address split to fit


def test_piped_tables_follow_columns():
    result = v6kube("plan", PACKET, env=dict(os.environ, COLUMNS="90"))
    assert result.returncode == 0
    # a line may be wider only when it is one word (an address or a URL is never split)
    assert all(len(line) <= 90 or len(line.split()) == 1 for line in result.stdout.splitlines()[1:])


def test_plurals():
    assert console.plural(1, "node") == "1 node" and console.plural(0, "node") == "0 nodes"
    assert console.plural(3, "file") == "3 files" and console.plural(2, "key", "keys") == "2 keys"
    result = v6kube("plan", ROOT / "examples" / "minimal.yaml")
    assert "cluster tiny: 1 node on provider packet" in result.stdout


# --- plan --output json and --out --------------------------------------------------------------


def test_plan_output_json_is_plan_json(tmp_path):
    result = v6kube("plan", PACKET, "--output", "json", "--out", tmp_path / "p")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads((tmp_path / "p" / "plan.json").read_text())
    alone = v6kube("plan", PACKET, "-o", "json")
    assert json.loads(alone.stdout) == printed  # without --out, the same document
    assert "Addressing" not in alone.stdout
    assert v6kube("plan", PACKET, "-o", "yaml").returncode == 2


def test_out_never_replaces_another_clusters_plan(tmp_path):
    out = tmp_path / "plan"
    assert v6kube("plan", PACKET, "--out", out).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = yaml.safe_load(STATIC.read_text()) | {"name": "other"}
    other_file = tmp_path / "other.yaml"
    other_file.write_text(yaml.safe_dump(other))
    result = v6kube("plan", other_file, "--out", out)
    assert result.returncode == 2
    assert "holds the plan of another cluster, 'seed', not 'other'" in result.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_out_lists_what_it_replaced(tmp_path):
    out = tmp_path / "plan"
    assert v6kube("plan", PACKET, "--out", out).returncode == 0
    smaller = yaml.safe_load(PACKET.read_text())
    smaller["nodes"] = smaller["nodes"][:2]
    path = tmp_path / "smaller.yaml"
    path.write_text(yaml.safe_dump(smaller))
    result = v6kube("plan", path, "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"replaced the earlier plan of cluster seed in {out}: plan.json, " in result.stderr
    assert "kubeadm/join-worker-1.yaml" in result.stderr and "nodes/worker-1/prepare.sh" in result.stderr
    assert "wrote 7 files" in result.stderr


def test_plan_reads_stdin():
    result = v6kube("plan", "-", input=STATIC.read_text())
    assert result.returncode == 0, result.stderr
    assert "cluster seed: 3 nodes on provider static" in result.stdout


# --- the test runner ---------------------------------------------------------------------------


def test_run_in_netns_without_root_says_it_needs_root():
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        if os.environ.get("CI"):
            pytest.fail("needs root and setpriv (util-linux) to run the script as another user")
        pytest.skip("needs root and setpriv")
    result = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                             str(ROOT / "tests" / "run-in-netns"), "true"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "needs root" in result.stderr and "mount" not in result.stderr


def test_a_table_of_long_words_becomes_records_that_fit():
    script = ("from v6kube import console\n"
              "url = 'https://raw.githubusercontent.com/projectcalico/calico/v3.30.3/manifests/tigera-operator.yaml'\n"
              "console.table('Downloads checked against a checksum kept in the cache', ['url', 'checked against'],\n"
              "              [(url, 'https://github.com/projectcalico/calico/releases/download/v3.30.3/SHA256SUMS')])\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            stdin=subprocess.DEVNULL, timeout=60)
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100, lines
    assert "  url: https://raw.githubusercontent.com/projectcalico/calico/v3.30.3/manifests/tigera-operator.yaml" in lines
    assert "  checked against: https://github.com/projectcalico/calico/releases/download/v3.30.3/SHA256SUMS" in lines
