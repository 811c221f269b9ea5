"""The testbed itself: isolated, real where it claims to be, stubbed where it must be, and it cleans up."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from testbed.lab import Lab, missing_prerequisites, target_for
from testbed.stubs import STUBS
from v6kube.ssh import connect

pytestmark = pytest.mark.testbed


def test_the_test_process_has_no_way_out(lab):
    # tests/run-in-netns: no default route here, so nothing can leave the machine.
    assert missing_prerequisites() == []
    for family in ("-4", "-6"):
        assert subprocess.run(["ip", family, "route", "show", "default"], capture_output=True, text=True).stdout == ""


def test_a_node_reaches_only_its_lan(lab, new_node):
    node = new_node()
    for outside in ("2001:db8::1", "2600:1901:0:1013::", str(lab.peers[0])):  # the peers need their route first
        result = lab.node_exec(node, f"ip -6 route get {outside}", check=False)
        assert result.returncode != 0 and "unreachable" in result.stderr.lower()
    assert lab.node_exec(node, "ip -6 route show default").stdout == ""


def test_stubs_come_first_on_the_path_and_everything_else_is_real(lab, new_node, ssh_options):
    node = new_node()
    with connect(target_for(node), ssh_options) as conn:
        paths = conn.run("for c in " + " ".join(STUBS) + " sysctl ip sh; do command -v $c; done").stdout.split()
        assert paths[:len(STUBS)] == [str(node.bin_dir / name) for name in STUBS]
        real = paths[len(STUBS):]
        assert len(real) == 3 and not any(p.startswith(str(node.dir)) for p in real)
        # net.* sysctls are the node's own: the test's namespace keeps its value
        conn.run("sysctl -w net.ipv6.conf.all.forwarding=1")
        assert Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text().strip() == "0"
        # /etc is the node's overlay: writes land in its upper dir, the host's /etc is untouched
        conn.run("echo node-only > /etc/v6kube-testbed-probe")
        assert (node.etc_upper / "v6kube-testbed-probe").read_text() == "node-only\n"
        assert not Path("/etc/v6kube-testbed-probe").exists()
        assert conn.run("hostname").stdout.strip() == node.name
        assert conn.run("echo $HOME").stdout.strip() == str(node.dir / "home")


def test_the_apt_stub_behaves_like_apt(lab, new_node, ssh_options):
    node = new_node(os_name="ubuntu-24.04")
    with connect(target_for(node), ssh_options) as conn:
        missing = conn.run("apt-get install -y kubelet", check=False)
        assert missing.exit_status == 100 and "Unable to locate package kubelet" in missing.stderr
        conn.run("mkdir -p /etc/apt/sources.list.d && echo 'deb [signed-by=/etc/apt/keyrings/k.gpg] "
                 "https://pkgs.k8s.io/core:/stable:/v1.32/deb/ /' > /etc/apt/sources.list.d/kubernetes.list")
        unsigned = conn.run("apt-get update", check=False)
        assert unsigned.exit_status == 100 and "NO_PUBKEY" in unsigned.stderr
        conn.run("mkdir -p /etc/apt/keyrings && echo key > /etc/apt/keyrings/k.gpg && apt-get update")
        wrong = conn.run("apt-get install -y 'kubelet=1.33.*'", check=False)
        assert wrong.exit_status == 100 and "Version '1.33.*' for 'kubelet' was not found" in wrong.stderr
        conn.run("apt-get install -y 'kubelet=1.32.*' && apt-mark hold kubelet")
        shown = conn.run("dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\\n' kubelet kubeadm", check=False)
        assert shown.stdout == "kubelet installed 1.32.4-1.1\n" and shown.exit_status == 1
        assert conn.run("apt-mark showhold").stdout == "kubelet\n"
        unknown_unit = conn.run("systemctl enable nothing.service", check=False)
        assert unknown_unit.exit_status != 0 and "not found" in unknown_unit.stderr
        assert conn.run("systemctl is-enabled kubelet", check=False).stdout == "disabled\n"
        conn.run("systemctl enable kubelet")
        assert conn.run("systemctl is-enabled kubelet.service").stdout == "enabled\n"
    assert lab.calls(node)[0] == "apt-get install -y kubelet"


def test_closing_a_lab_kills_what_it_started_and_removes_its_namespaces(ssh_options):
    lab = Lab.create()  # a second lab, besides the session's (ssh_options needs that one: skip or fail)
    try:
        node = lab.add_node()
        with connect(target_for(node), dataclasses.replace(ssh_options, private_key=lab.client_key)) as conn:
            pid = int(conn.run("sleep 600 > /dev/null 2>&1 & echo $!").stdout)
        holder, sshd, birds = node.holder.pid, node.sshd.pid, [b.pid for b in lab._birds]
        namespaces = list(lab._namespaces)
        root = lab.root
    finally:
        lab.close()
    for name, process in (("sleep over ssh", pid), ("holder", holder), ("sshd", sshd),
                          *(("bird", b) for b in birds)):
        assert not _running(process), f"{name} (pid {process}) still runs"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in namespaces if ns in listed], listed
    assert not root.exists(), sorted(str(p) for p in root.rglob("*"))[:20]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_namespace_names_are_unique_per_session(lab):
    assert all(ns.startswith(f"v6kt{os.getpid()}-{lab.token}-") for ns in lab._namespaces)


def test_a_node_has_its_own_proc_swaps_with_no_swap(lab, new_node):
    # swap is machine-wide; the node's own file keeps the swap-off step independent of the host
    node = new_node()
    assert lab.node_exec(node, "findmnt -n -o TARGET /proc/swaps").stdout.strip() == "/proc/swaps"
    assert lab.node_exec(node, "awk 'NR > 1' /proc/swaps").stdout == ""
