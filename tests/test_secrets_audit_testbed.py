"""Secrets audit on the testbed: every command with --debug (placed after the command), a forced
failure whose error carries remote output holding the bootstrap token and the BGP password, then a
scan of every byte printed and every file written (state, logs; the kubeconfig aside, which holds
its own credentials). Nothing secret may appear: not the BGP password, not a bootstrap token, not a
certificate key, not a private key."""

from __future__ import annotations

import pytest

from lifecycle_helpers import DownloadServer, cli_env, leaks, run_cli, static_cluster, write_cluster
from testbed.lab import BGP_PASSWORD

pytestmark = pytest.mark.testbed

@pytest.fixture
def downloads(lab, tmp_path):
    server = DownloadServer(lab, tmp_path / "www")
    yield server
    server.close()


def test_no_command_leaks_a_secret_with_debug_or_on_failure(lab, new_node, downloads, tmp_path):
    cp, worker = new_node(), new_node()
    path = write_cluster(tmp_path / "cluster.yaml", static_cluster(lab, "audit", [cp, worker]))
    state = tmp_path / "state"
    env = cli_env(downloads.env(tmp_path / "cache"))
    printed = []

    def run(*args, expect=None):
        result = run_cli([args[0], str(path), *args[1:], "--debug", "--state-dir", str(state)], env)
        printed.append(result.stdout + result.stderr)
        if expect is not None:
            assert result.returncode == expect, result.stderr
        return result

    # a join that fails and prints what an unlucky tool might: the token from its config, the password
    stub = worker.bin_dir / "kubeadm"
    original = stub.read_text()
    stub.write_text(original.replace(
        '  join)\n',
        '  join)\n    echo "md5 password {0}" >&2; grep -h "token" /etc/v6kube/kubeadm/join.yaml >&2; exit 1\n'
        .format(BGP_PASSWORD), 1))
    failed = run("create", expect=1)
    assert "phase 'workers' failed" in failed.stderr and "Traceback" in failed.stderr
    assert "***" in failed.stderr  # the remote output was shown, masked
    stub.write_text(original)

    run("create", expect=0)
    run("status", "--output", "json")
    run("announce-services", expect=0)
    run("kubeconfig", expect=0)
    run("plan", "--out", str(tmp_path / "plan"), expect=0)

    written = {p: p.read_text(errors="replace") for p in state.rglob("*") if p.is_file() and p.name != "kubeconfig"}
    assert any(p.suffix == ".log" for p in written), sorted(map(str, written))  # the node logs were scanned
    written |= {p: p.read_text(errors="replace") for p in (tmp_path / "plan").rglob("*") if p.is_file()}
    run("destroy", "--yes", expect=0)

    for text in printed:
        assert leaks(text) == [], text[-2000:]
    for file, text in written.items():
        assert leaks(text) == [], file
