"""The command line as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKET = ROOT / "examples" / "packet.yaml"


def v6kube(*args, cwd=None, env=None, python=sys.executable):
    return subprocess.run([python, "-m", "v6kube", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_help_does_not_import_heavy_modules():
    code = ("import sys; sys.argv = ['v6kube', '--help']\n"
            "from v6kube.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('paramiko', 'requests', 'jinja2', 'pydantic', 'yaml') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stdout, result.stdout
    assert "plan" in result.stdout


def test_version():
    from v6kube import __version__

    result = v6kube("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"v6kube {__version__}"


def test_unknown_option_is_a_usage_error():
    result = v6kube("plan", PACKET, "--frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_plan_prints_a_summary_and_marks_assumed_facts():
    result = v6kube("plan", PACKET)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for words in ("Addressing", "2001:db8:0:2a01::/64", "2001:db8:0:2a02::/108", "Phases of create",
                  "provision", "control-plane", "Provider API calls", "/bgp/sessions", "Assumed", "fc00::e",
                  "cp-0", "worker-1"):
        assert words in out, words


def test_plan_out_writes_the_design_layout(tmp_path):
    out = tmp_path / "plan"
    result = v6kube("plan", PACKET, "--out", out, "--block", "2604:1380:4641:c500::/56")
    assert result.returncode == 0, result.stderr
    expected = {"plan.json", "kubeadm/init.yaml", "kubeadm/join-worker-0.yaml", "kubeadm/join-worker-1.yaml",
                "nodes/cp-0/prepare.sh", "nodes/worker-0/prepare.sh", "nodes/worker-1/prepare.sh",
                "calico/installation.yaml", "calico/bgp.yaml"}
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected
    assert os.access(out / "nodes/cp-0/prepare.sh", os.X_OK)
    doc = json.loads((out / "plan.json").read_text())
    assert doc["addressing"]["block"] == "2604:1380:4641:c500::/56"
    assert doc["addressing"]["pod_subnet"] == "2604:1380:4641:c501::/64"
    assert doc["addressing"]["service_subnet"] == "2604:1380:4641:c502::/108"
    assert "block" not in doc["assumed"]  # given with --block
    assert {"node_addresses", "bgp_peers", "local_asn", "max_prefix"} <= set(doc["assumed"])
    assert [p["name"] for p in doc["phases"]][0] == "provision"
    assert doc["provider_calls"][0] == {"method": "GET", "path": "/projects/{project}/bgp-config",
                                        "purpose": "is BGP enabled for the project?"}
    assert sorted(doc["files"]) == sorted(expected)
    init = list(yaml.safe_load_all((out / "kubeadm/init.yaml").read_text()))
    assert init[1]["networking"]["podSubnet"] == "2604:1380:4641:c501::/64"


def test_plan_without_block_assumes_the_documentation_prefix(tmp_path):
    result = v6kube("plan", PACKET, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["assumed"]["block"].startswith("2001:db8:0:2a00::/56")


def test_plan_rejects_a_bad_block():
    result = v6kube("plan", PACKET, "--block", "10.0.0.0/8")
    assert result.returncode == 2
    assert "--block" in result.stderr and "IPv4" in result.stderr
    assert "Traceback" not in result.stderr


def test_static_plan_needs_no_block(tmp_path):
    result = v6kube("plan", ROOT / "examples" / "static.yaml", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["assumed"] == {} and doc["provider_calls"] == []
    assert doc["bgp"]["peers"] == ["2001:db8:ffff::e", "2001:db8:ffff::f"]


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_plan_out_that_cannot_be_a_directory_is_a_usage_error(tmp_path, where):
    (tmp_path / "a-file").write_text("mine\n")
    out = tmp_path / "a-file" if where == "a-file" else tmp_path / "a-file" / "plan"
    result = v6kube("plan", PACKET, "--out", out)
    assert result.returncode == 2, result.stderr
    assert f"--out {out}" in result.stderr and "internal error" not in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert (tmp_path / "a-file").read_text() == "mine\n"


def test_plan_out_refuses_a_directory_that_holds_no_plan(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = v6kube("plan", PACKET, "--out", tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"--out {tmp_path}" in result.stderr and "no plan.json" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_plan_out_replaces_an_earlier_plan_without_stale_files(tmp_path):
    out = tmp_path / "plan"
    assert v6kube("plan", PACKET, "--out", out).returncode == 0
    (out / "README").write_text("mine\n")  # not part of a plan: kept
    smaller = yaml.safe_load(PACKET.read_text())
    smaller["nodes"] = [n for n in smaller["nodes"] if n["name"] != "worker-1"]
    cluster = tmp_path / "smaller.yaml"
    cluster.write_text(yaml.safe_dump(smaller))
    result = v6kube("plan", cluster, "--out", out)
    assert result.returncode == 0, result.stderr
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert not (out / "nodes" / "worker-1").exists() and "kubeadm/join-worker-1.yaml" not in files
    assert files == set(json.loads((out / "plan.json").read_text())["files"]) | {"README"}


def addresses_in(plan_dir: Path) -> set[str]:
    """Every IPv6 literal the plan's summary shows, taken from plan.json."""
    doc = json.loads((plan_dir / "plan.json").read_text())
    a = doc["addressing"]
    found = {a["block"], a["pod_subnet"], a["service_subnet"], a["api_service_ip"], a["dns_service_ip"],
             *a["server_networks"], *doc["bgp"]["peers"], *doc["kubernetes"]["dns_resolvers"]}
    for node in a["nodes"]:
        found |= {f"{node['address']}/{node['prefixlen']}", node["gateway"]}
    return found


def test_summary_never_splits_an_address_when_piped(tmp_path):
    env = dict(os.environ, COLUMNS="40")
    result = v6kube("plan", PACKET, "--block", "2604:1380:4641:c500::/56", "--out", tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for address in addresses_in(tmp_path):
        assert any(address in line for line in lines), address
    # too narrow for the tables side by side: each row is "column: value" lines within 40 columns
    assert all(len(line) <= 40 or len(line.split()) == 1 for line in lines[1:]), lines
    assert "  address: 2604:1380:4641:c500::3/127" in lines


def test_summary_never_splits_an_address_in_a_narrow_terminal(tmp_path):
    import fcntl
    import pty
    import re
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))  # a 40-column terminal
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm", "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "v6kube", "plan", PACKET, "--block", "2604:1380:4641:c500::/56",
                                "--out", tmp_path], stdout=secondary, stderr=subprocess.PIPE, env=env)
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert process.wait(timeout=120) == 0, process.stderr.read()
    process.stderr.close()
    lines = re.sub(r"\x1b\[[0-9;]*m", "", output.decode()).splitlines()
    for address in addresses_in(tmp_path):
        assert any(address in line for line in lines), address
    # prose still wraps, at spaces: the third phase's summary goes on in the next line
    third = next(i for i, line in enumerate(lines) if line == "  phase: prepare")
    assert lines[third + 1].startswith("  what it does: ") and lines[third + 2].startswith("    ")


def test_internal_errors_show_no_traceback_without_debug(tmp_path):
    # an unreadable templates directory is a bug-like failure, not a user error
    env = dict(os.environ, V6KUBE_TEMPLATES=str(tmp_path / "missing"))
    result = v6kube("plan", PACKET, "--out", tmp_path / "o", env=env)
    assert result.returncode == 1
    assert "internal error" in result.stderr and "Traceback" not in result.stderr
    result = v6kube("--debug", "plan", PACKET, "--out", tmp_path / "o", env=env)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_wheel_installs_and_plans_from_a_fresh_virtualenv(tmp_path):
    """Build the wheel, install it (not editable) into a new virtualenv, run plan from there."""
    wheelhouse = os.environ.get("V6KUBE_WHEELHOUSE")
    if not wheelhouse:
        if os.environ.get("CI"):
            pytest.fail("V6KUBE_WHEELHOUSE is not set: .ci/run prepares it before the tests")
        pytest.skip("set V6KUBE_WHEELHOUSE to a folder with the dependencies' wheels (see .ci/run)")
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("v6kube-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = subprocess.run([env_dir / "bin/pip", "install", "-q", "--no-index", "--find-links", wheelhouse, wheel],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    out = tmp_path / "plan"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "V6KUBE_TEMPLATES")}
    result = subprocess.run([env_dir / "bin/v6kube", "plan", PACKET, "--out", out], capture_output=True,
                            text=True, cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (out / "kubeadm/init.yaml").is_file() and (out / "calico/bgp.yaml").is_file()
    assert (out / "nodes/cp-0/prepare.sh").is_file()
    # the templates came from the installed package, not from this checkout
    where = subprocess.run([env_dir / "bin/python", "-c", "from v6kube.render import templates_dir; print(templates_dir())"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert str(env_dir) in where.stdout
