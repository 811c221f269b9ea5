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
