"""End to end on the testbed with the static provider: create, a second create that changes
nothing, join-worker, kubeconfig, destroy — the real CLI in a subprocess, real sshd, real BIRD
router and the stand-in kubeadm/kubectl/calicoctl that check what the real ones would refuse."""

from __future__ import annotations

import signal
import stat
import time

import pytest
import yaml

from lifecycle_helpers import (DownloadServer, api_dir, cli_env, phases_done, run_cli, start_cli,
                               static_cluster, write_cluster)
from testbed.lab import BGP_PASSWORD

pytestmark = pytest.mark.testbed
# Stub calls that only read: a run that changes nothing makes no other calls.
READ_ONLY = ("lsmod", "dpkg-query", "apt-mark showhold", "systemctl is-enabled", "systemctl is-active",
             "kubeadm version", "kubectl --kubeconfig=/etc/kubernetes/admin.conf get")


@pytest.fixture
def downloads(lab, tmp_path):
    server = DownloadServer(lab, tmp_path / "www")
    yield server
    server.close()


def changing_calls(lab, node, since=0):
    return [c for c in lab.calls(node)[since:] if not c.startswith(READ_ONLY)]


def test_create_join_destroy_static(lab, new_node, downloads, tmp_path):
    cp, w1, w2 = new_node(), new_node(os_name="ubuntu-24.04"), new_node(os_name="ubuntu-22.04")
    cluster = static_cluster(lab, "e2e", [cp, w1, w2])
    path = write_cluster(tmp_path / "cluster.yaml", cluster)
    state = tmp_path / "state"
    env = cli_env(downloads.env(tmp_path / "cache"))

    first = run_cli(["create", str(path), "--state-dir", str(state)], env)
    assert first.returncode == 0, first.stderr
    # what each node received, in order: prepared, then kubeadm init (cp) or join (workers)
    cp_calls = changing_calls(lab, cp)
    init = next(i for i, c in enumerate(cp_calls) if c.startswith("kubeadm init"))
    assert any(c.startswith("apt-get install") for c in cp_calls[:init])
    assert cp_calls[init] == "kubeadm init --config /etc/v6kube/kubeadm/init.yaml --skip-token-print"
    for worker in (w1, w2):
        calls = changing_calls(lab, worker)
        assert calls[-1] == "kubeadm join --config /etc/v6kube/kubeadm/join.yaml"
        assert not any(c.startswith("kubeadm init") for c in calls)
    api = api_dir(lab, cp)
    assert sorted(p.name for p in (api / "nodes").iterdir()) == sorted([cp.name, w1.name, w2.name])
    assert not list((api / "tokens").iterdir())  # every bootstrap token deleted after use
    peers = sorted(p.name for p in (api / "calico" / "BGPPeer").iterdir())
    assert len(peers) == 3 * len(lab.peers)
    assert (api / "calico" / "BGPConfiguration" / "default.json").exists()
    assert len(list((api / "calico" / "CalicoNodeStatus").iterdir())) == 3
    assert (api / "objects" / "Secret" / "v6kube-bgp-password").exists()
    # init.yaml pins the exact kubeadm version and is private
    init_yaml = lab.read_file(cp, "/etc/v6kube/kubeadm/init.yaml")
    docs = list(yaml.safe_load_all(init_yaml))
    assert docs[1]["kubernetesVersion"] == "v1.33.4"
    assert lab.node_exec(cp, "stat -c %a /etc/v6kube/kubeadm/init.yaml").stdout.strip() == "600"

    kubeconfig = state / "kubeconfig"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://[{cp.address}]:6443"
    assert config["current-context"] == "e2e" and config["contexts"][0]["name"] == "e2e"

    # a second create changes nothing on any node
    before = {n.name: len(lab.calls(n)) for n in (cp, w1, w2)}
    second = run_cli(["create", str(path), "--state-dir", str(state)], env)
    assert second.returncode == 0, second.stderr
    for node in (cp, w1, w2):
        assert changing_calls(lab, node, before[node.name]) == []
    assert second.stderr.count("done already (confirmed)") == 9

    # the BGP password never leaves the nodes and the Secret
    everything = first.stdout + first.stderr + second.stdout + second.stderr
    for file in state.rglob("*"):
        if file.is_file():
            everything += file.read_text(errors="replace")
    assert BGP_PASSWORD not in everything

    # join-worker adds one worker of the file, once
    w3 = new_node()
    cluster["nodes"].append({"name": w3.name, "role": "worker", "address": str(w3.address),
                             "gateway": str(lab.gateway), "host_key": w3.host_key})
    write_cluster(path, cluster)
    joined = run_cli(["join-worker", str(path), "--node", w3.name, "--state-dir", str(state)], env)
    assert joined.returncode == 0, joined.stderr
    assert changing_calls(lab, w3)[-1] == "kubeadm join --config /etc/v6kube/kubeadm/join.yaml"
    assert len(list((api / "calico" / "BGPPeer").iterdir())) == 4 * len(lab.peers)
    before = len(lab.calls(w3))
    again = run_cli(["join-worker", str(path), "--node", w3.name, "--state-dir", str(state)], env)
    assert again.returncode == 0, again.stderr
    assert not any(c.startswith("kubeadm join") for c in lab.calls(w3)[before:])

    # kubeconfig --merge into $KUBECONFIG, keeping other contexts
    user_config = tmp_path / "user-kubeconfig"
    user_config.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
                                           "clusters": [{"name": "other", "cluster": {"server": "https://[::1]:1"}}],
                                           "contexts": [{"name": "other", "context": {"cluster": "other"}}],
                                           "users": []}))
    merged = run_cli(["kubeconfig", str(path), "--merge", "--state-dir", str(state)],
                     {**env, "KUBECONFIG": str(user_config)})
    assert merged.returncode == 0, merged.stderr
    doc = yaml.safe_load(user_config.read_text())
    assert sorted(c["name"] for c in doc["contexts"]) == ["e2e", "other"] and doc["current-context"] == "other"
    assert stat.S_IMODE(user_config.stat().st_mode) == 0o600
    assert list(tmp_path.glob("user-kubeconfig.v6kube-backup-*"))

    # destroy: refuses without a terminal unless --yes, then resets every node and removes the state
    refused = run_cli(["destroy", str(path), "--state-dir", str(state)], env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    gone = run_cli(["destroy", str(path), "--yes", "--state-dir", str(state)], {**env, "KUBECONFIG": str(user_config)})
    assert gone.returncode == 0, gone.stderr
    assert not state.exists()
    for node in (cp, w1, w2, w3):
        assert lab.read_file(node, "/etc/kubernetes/kubelet.conf") is None
        assert lab.node_exec(node, "test -e /etc/v6kube", check=False).returncode != 0
    assert [c["name"] for c in yaml.safe_load(user_config.read_text())["contexts"]] == ["other"]


CREATE_ORDER = ["provision", "bgp", "prepare", "control-plane", "kubeconfig", "calico", "calico-bgp", "workers",
                "announce"]


def _kill_when(process, condition, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.communicate()
            return True
        time.sleep(0.005)
    process.communicate()
    return False


@pytest.mark.parametrize("boundary", CREATE_ORDER[:-1] + ["mid-prepare"])
def test_create_killed_then_resumed(lab, new_node, downloads, tmp_path, boundary):
    cp, worker = new_node(), new_node()
    path = write_cluster(tmp_path / "cluster.yaml", static_cluster(lab, "resume", [cp, worker]))
    state = tmp_path / "state"
    env = cli_env(downloads.env(tmp_path / "cache"))
    args = ["create", str(path), "--state-dir", str(state)]
    process = start_cli(args, env)
    if boundary == "mid-prepare":  # some packages installed on the worker, not all steps done
        killed = _kill_when(process, lambda: any(c.startswith("apt-get install") for c in lab.calls(worker)))
    else:
        killed = _kill_when(process, lambda: boundary in phases_done(state))
    assert killed, f"create finished before it could be killed at {boundary}"
    done_before = phases_done(state)

    resumed = run_cli(args, env)
    assert resumed.returncode == 0, resumed.stderr
    for phase in done_before:  # a finished phase is confirmed, not redone
        assert f"[{phase}] done already (confirmed)" in resumed.stderr
    api = api_dir(lab, cp)
    assert sorted(p.name for p in (api / "nodes").iterdir()) == sorted([cp.name, worker.name])
    assert sum(c.startswith("kubeadm init") for c in lab.calls(cp)) == 1
    assert sum(c.startswith("kubeadm join") for c in lab.calls(worker)) == 1
    assert sorted(phases_done(state)) == sorted(CREATE_ORDER)


def test_create_waits_for_ssh_refused_while_a_server_boots(lab, new_node, downloads, tmp_path):
    cp, worker = new_node(), new_node(start_sshd=False)  # the worker refuses SSH for a while
    path = write_cluster(tmp_path / "cluster.yaml", static_cluster(lab, "boot", [cp, worker]))
    env = cli_env(downloads.env(tmp_path / "cache"))
    process = start_cli(["create", str(path), "--state-dir", str(tmp_path / "state")], env)
    time.sleep(3)
    lab.start_sshd(worker)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "waiting for SSH" in err
    assert changing_calls(lab, worker)[-1] == "kubeadm join --config /etc/v6kube/kubeadm/join.yaml"


def test_a_failed_step_exits_1_naming_phase_and_node_and_the_next_run_finishes(lab, new_node, downloads, tmp_path):
    cp, worker = new_node(), new_node()
    path = write_cluster(tmp_path / "cluster.yaml", static_cluster(lab, "fail", [cp, worker]))
    env = cli_env(downloads.env(tmp_path / "cache"))
    args = ["create", str(path), "--state-dir", str(tmp_path / "state")]
    # the worker's kubeadm join fails once (as with an API server not reachable yet)
    stub = worker.bin_dir / "kubeadm"
    original = stub.read_text()
    stub.write_text(original.replace('  join)\n', '  join)\n    echo "error execution phase preflight: couldn\'t validate the identity of the API Server" >&2; exit 1\n', 1))
    failed = run_cli(args, env)
    assert failed.returncode == 1
    assert "phase 'workers' failed" in failed.stderr and worker.name in failed.stderr
    assert f"v6kube create {path}" in failed.stderr  # how to resume
    stub.write_text(original)
    again = run_cli(args, env)
    assert again.returncode == 0, again.stderr
    for phase in CREATE_ORDER[:CREATE_ORDER.index("workers")]:
        assert f"[{phase}] done already (confirmed)" in again.stderr
    assert (api_dir(lab, cp) / "nodes" / worker.name).exists()
