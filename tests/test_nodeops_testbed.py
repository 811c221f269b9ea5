"""Node preparation on testbed nodes: real sshd, real kernel state (sysctl, routes, /etc), stubs
for what cannot run here (apt, systemctl, modprobe, ...), a BIRD router as the BGP peers."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from testbed.lab import BGP_PASSWORD, Lab, Node, target_for
from v6kube.errors import DownloadHostUnreachable, RemoteCommandFailed, UnsupportedOS
from v6kube.nodes import (
    PrepareSpec,
    StepResult,
    check_script,
    gather_facts,
    plan_node,
    prepare_nodes,
    render_prepare_script,
    step_script,
    steps_for,
)
from v6kube.nodes.managed import (
    CONTAINERD_CONFIG,
    DOCKER_SOURCES,
    KUBERNETES_LIST,
    MODULES_FILE,
    NETWORKD_DROPIN,
    RESOLVED_DROPIN,
    SYSCTL_FILE,
)
from v6kube.ssh import open_connections

pytestmark = pytest.mark.testbed
RESOLVERS = ("2001:4860:4860::8888", "2001:4860:4860::8844")
# Stub calls that only read: a run that changes nothing makes no other calls.
READ_ONLY = ("lsmod", "dpkg-query", "apt-mark showhold", "systemctl is-enabled", "systemctl is-active")


def spec_for(lab: Lab, node: Node, minor: str = "1.33") -> PrepareSpec:
    return PrepareSpec(node=node.name, os_id_hint=node.os, kubernetes_minor=minor, resolvers=RESOLVERS,
                       gateway=lab.gateway, peers=lab.peers)


def connections_for(nodes, options):
    return open_connections([target_for(n) for n in nodes], options)


def close_all(connections):
    for conn in connections.values():
        conn.close()


def changing_calls(lab: Lab, node: Node, since: int = 0) -> list[str]:
    return [c for c in lab.calls(node)[since:] if not c.startswith(READ_ONLY)]


def test_three_nodes_prepared_in_parallel_then_nothing_to_do(lab, new_node, ssh_options):
    nodes = [new_node(os_name="debian-12"), new_node(os_name="ubuntu-24.04", resolved=True),
             new_node(os_name="ubuntu-22.04")]
    for node in nodes:  # before: the peers are unreachable (their /128s are not on the LAN)
        connected, error = lab.tcp_connect_md5(node, lab.peers[0])
        assert not connected and "Network is unreachable" in error
    specs = {n.name: spec_for(lab, n) for n in nodes}
    connections = connections_for(nodes, ssh_options)
    try:
        started = time.monotonic()
        first = prepare_nodes(connections, specs)
        first_seconds = time.monotonic() - started
        assert all(any(r.changed for r in results) for results in first.values())

        for node in nodes:
            read_back(lab, node)
            for peer in lab.peers:  # a BGP speaker on the node can reach both peers, from its own address
                connected, source = lab.tcp_connect_md5(node, peer, password=BGP_PASSWORD)
                assert connected, source
                assert source == str(node.address)

        hashes = {n.name: lab.etc_hash(n) for n in nodes}
        calls = {n.name: len(lab.calls(n)) for n in nodes}
        second = prepare_nodes(connections, specs)
        for node in nodes:
            assert [r.step for r in second[node.name] if r.changed] == []
            assert lab.etc_hash(node) == hashes[node.name], f"{node.name}: /etc changed on the second run"
            assert changing_calls(lab, node, calls[node.name]) == []
    finally:
        close_all(connections)
    assert first_seconds < 20


def read_back(lab: Lab, node: Node) -> None:
    """Check the results inside the node's namespaces, without v6kube."""
    values = lab.node_exec(node, "sysctl -n net.ipv6.conf.all.forwarding net.ipv6.conf.default.forwarding "
                                 "net.ipv6.conf.all.accept_ra net.ipv6.conf.default.accept_ra "
                                 "net.ipv6.conf.eth0.accept_ra").stdout.split()
    assert values == ["1", "1", "2", "2", "2"]  # eth0 existed before: all.accept_ra does not reach it
    sysctl_file = lab.read_file(node, SYSCTL_FILE)
    for line in ("net.ipv6.conf.all.forwarding = 1", "net.ipv6.conf.default.forwarding = 1",
                 "net.ipv6.conf.all.accept_ra = 2", "net.ipv6.conf.default.accept_ra = 2"):
        assert line in sysctl_file.splitlines()
    assert lab.read_file(node, MODULES_FILE).splitlines()[1:] == ["br_netfilter", "overlay"]
    assert {"modprobe br_netfilter", "modprobe overlay"} <= set(lab.calls(node))

    if node.resolved:
        assert lab.read_file(node, RESOLVED_DROPIN).splitlines()[1:] == ["[Resolve]", "DNS=" + " ".join(RESOLVERS)]
        assert "systemctl restart systemd-resolved" in lab.calls(node)
        assert lab.read_file(node, "/etc/resolv.conf") == "nameserver 127.0.0.53\noptions edns0 trust-ad\n"
    else:
        resolv = lab.read_file(node, "/etc/resolv.conf")
        assert [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")] == list(RESOLVERS)
        assert "search example.net" in resolv  # other lines are kept
        assert lab.read_file(node, RESOLVED_DROPIN) is None

    config = lab.read_file(node, CONTAINERD_CONFIG)
    assert "version = 3" in config.splitlines()
    assert "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true" in config
    assert "https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /" in lab.read_file(node, KUBERNETES_LIST)
    os_id, codename = {"debian-12": ("debian", "bookworm"), "ubuntu-22.04": ("ubuntu", "jammy"),
                       "ubuntu-24.04": ("ubuntu", "noble")}[node.os]
    assert (f"URIs: https://download.docker.com/linux/{os_id}\nSuites: {codename}\nComponents: stable\n"
            "Architectures: amd64\n") in lab.read_file(node, DOCKER_SOURCES)
    assert lab.read_file(node, "/etc/apt/sources.list.d/docker.list") is None
    assert "  sandbox = 'registry.k8s.io/pause:3.10'\n" in config
    assert (node.state_dir / "dpkg" / "kubelet").read_text().startswith("1.33.")
    assert (node.state_dir / "dpkg" / "containerd.io").read_text().startswith("2.")
    assert sorted(p.name for p in (node.state_dir / "holds").iterdir()) == ["kubeadm", "kubectl", "kubelet"]

    routes = lab.node_exec(node, "ip -6 route show").stdout
    for peer in lab.peers:
        assert f"{peer} via {lab.gateway} dev eth0" in routes
    fstab = lab.read_file(node, "/etc/fstab")
    assert "#/swap.img\tnone\tswap\tsw\t0\t0" in fstab.splitlines()
    assert lab.node_exec(node, "readlink /etc/systemd/system/swap.target").stdout.strip() == "/dev/null"


def test_settings_survive_a_reboot(lab, new_node, ssh_options):
    node = new_node(os_name="ubuntu-22.04")
    connections = connections_for([node], ssh_options)
    try:
        prepare_nodes(connections, {node.name: spec_for(lab, node)})
        lab.simulate_boot(node)  # routes flushed, sysctls reset, then what systemd runs at boot
        routes = lab.node_exec(node, "ip -6 route show").stdout
        assert all(f"{peer} via {lab.gateway}" in routes for peer in lab.peers)
        assert lab.node_exec(node, "sysctl -n net.ipv6.conf.all.forwarding").stdout.strip() == "1"
        assert not any(r.changed for r in plan_node(gather_facts(connections[node.name]), spec_for(lab, node)))
    finally:
        close_all(connections)


def test_an_unsupported_os_stops_everything_before_any_change(lab, new_node, ssh_options):
    good, bad = new_node(os_name="debian-12"), new_node(os_name="rocky-9")
    hashes = {n.name: lab.etc_hash(n) for n in (good, bad)}
    connections = connections_for([good, bad], ssh_options)
    try:
        with pytest.raises(UnsupportedOS, match=f"{bad.name}: Rocky Linux 9.4 .* is not supported"):
            prepare_nodes(connections, {n.name: spec_for(lab, n) for n in (good, bad)})
    finally:
        close_all(connections)
    for node in (good, bad):
        assert lab.etc_hash(node) == hashes[node.name]
        assert changing_calls(lab, node) == []


def test_the_shell_checks_agree_with_the_python_decisions(lab, new_node, ssh_options):
    """The two sides of every step, on one real node, before and after preparing it."""
    nodes = [new_node(os_name="ubuntu-24.04", resolved=True), new_node(os_name="debian-12")]
    connections = connections_for(nodes, ssh_options)
    try:
        for round_ in ("fresh", "prepared"):
            for node in nodes:
                conn, spec = connections[node.name], spec_for(lab, node)
                facts = gather_facts(conn)
                for step, result in zip(steps_for(spec, facts.os), plan_node(facts, spec)):
                    status = conn.run(check_script(step), check=False).exit_status
                    shell_says = {0: "no-op", 3: "no-op", 1: "run"}[status]
                    python_says = "run" if result.changed else "no-op"
                    assert shell_says == python_says, f"{round_} {node.name} {step.name}: {result.reason}"
            prepare_nodes(connections, {n.name: spec_for(lab, n) for n in nodes})
    finally:
        close_all(connections)


def upper_tree(lab: Lab, node: Node) -> dict[str, str]:
    """The node's changed /etc files, minus the ones the testbed seeded per node."""
    seeded = {"passwd", "hostname", "hosts", "sudoers.d/v6kube-testbed"}
    tree = {}
    for path in sorted(node.etc_upper.rglob("*")):
        rel = str(path.relative_to(node.etc_upper))
        if rel in seeded:
            continue
        tree[rel] = ("-> " + str(path.readlink())) if path.is_symlink() else (
            path.read_text() if path.is_file() else "dir")
    return tree


@pytest.mark.parametrize("os_name, resolved", [("debian-12", False), ("ubuntu-24.04", True)])
def test_prepare_sh_does_what_create_does(lab, new_node, ssh_options, os_name, resolved):
    """The rendered script, run on a fresh node, leaves it exactly as the steps run over SSH do."""
    by_script, by_steps = new_node(os_name=os_name, resolved=resolved), new_node(os_name=os_name, resolved=resolved)
    connections = connections_for([by_script, by_steps], ssh_options)
    try:
        prepare_nodes({by_steps.name: connections[by_steps.name]}, {by_steps.name: spec_for(lab, by_steps)})
        script = render_prepare_script(spec_for(lab, by_script))
        conn = connections[by_script.name]
        conn.upload(script, "/etc/v6kube-test/prepare.sh", mode=0o755)
        first = conn.run("bash /etc/v6kube-test/prepare.sh").stdout
        assert "run: packages" in first and first.rstrip().endswith(f"done: {by_script.name} is prepared")
        conn.run("rm -r /etc/v6kube-test")
        assert upper_tree(lab, by_script) == upper_tree(lab, by_steps)
        assert not any(r.changed for r in plan_node(gather_facts(conn), spec_for(lab, by_script)))
        before, calls = lab.etc_hash(by_script), len(lab.calls(by_script))
        conn.upload(script, "/tmp/v6kube-prepare-again.sh", mode=0o755)
        again = conn.run("bash /tmp/v6kube-prepare-again.sh; rm /tmp/v6kube-prepare-again.sh").stdout
        *steps, last = again.splitlines()
        assert all(line.startswith(("ok: ", "skip: ")) for line in steps), again
        assert len(steps) == len(steps_for(spec_for(lab, by_script), gather_facts(conn).os))
        assert lab.etc_hash(by_script) == before
        assert changing_calls(lab, by_script, calls) == []
    finally:
        close_all(connections)


def test_prepare_sh_refuses_an_unsupported_os(lab, new_node, ssh_options):
    node = new_node(os_name="rocky-9")
    connections = connections_for([node], ssh_options)
    try:
        conn = connections[node.name]
        conn.upload(render_prepare_script(dataclasses.replace(spec_for(lab, node), os_id_hint=None)), "/tmp/v6k-p.sh")
        result = conn.run("bash /tmp/v6k-p.sh; status=$?; rm -f /tmp/v6k-p.sh; exit $status", check=False)
    finally:
        close_all(connections)
    assert result.exit_status == 1
    assert "unsupported operating system: rocky-9.4" in result.stderr
    assert changing_calls(lab, node) == []


def test_a_connection_dropped_mid_step_is_retried_and_the_step_completes(lab, new_node, ssh_options):
    node = new_node(os_name="ubuntu-24.04")
    (node.state_dir / "apt-get.delay").write_text("1.5")  # apt-get takes a while, like a real one
    connections = connections_for([node], ssh_options)

    def restart_sshd_during_apt():
        deadline = time.monotonic() + 30
        while not any(c.startswith("apt-get update") for c in lab.calls(node)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        lab.stop_sshd(node)
        lab.kill_sessions(node)  # the connection dies in the middle of the packages step
        time.sleep(0.7)
        lab.start_sshd(node)

    restarter = threading.Thread(target=restart_sshd_during_apt)
    restarter.start()
    try:
        results = prepare_nodes(connections, {node.name: spec_for(lab, node)})
    finally:
        restarter.join()
        close_all(connections)
    assert any(r.step == "packages" and r.changed for r in results[node.name])
    assert sum(c.startswith("apt-get update") for c in lab.calls(node)) == 2  # the step ran again
    assert (node.state_dir / "dpkg" / "kubeadm").read_text().startswith("1.33.")
    assert "connection dropped" in (ssh_options.log_dir / f"{node.name}.log").read_text()


def test_steps_on_one_node_run_one_at_a_time(lab, new_node, ssh_options):
    # After a drop the first copy of a step may still run when the step is sent again.
    node = new_node()
    step = StepResult("slow", ("echo start >> /etc/steps.log", "sleep 1", "echo end >> /etc/steps.log"), "test")
    connections = connections_for([node], ssh_options)
    second = connections_for([node], ssh_options)
    try:
        runs = [threading.Thread(target=c[node.name].run, args=(step_script(step),)) for c in (connections, second)]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
    finally:
        close_all(connections)
        close_all(second)
    assert lab.read_file(node, "/etc/steps.log") == "start\nend\nstart\nend\n"


def test_packages_wait_for_a_dpkg_lock_held_by_someone_else(lab, new_node, ssh_options):
    node = new_node(os_name="ubuntu-24.04")
    # unattended-upgrades on a freshly booted server holds dpkg's lock for a while
    holder = lab.popen_in(node, ["flock", str(node.state_dir / "dpkg.lock"), "sleep", "2"])
    connections = connections_for([node], ssh_options)
    try:
        results = prepare_nodes(connections, {node.name: spec_for(lab, node)})
    finally:
        close_all(connections)
        holder.wait(10)
    assert any(r.step == "packages" and r.changed for r in results[node.name])
    assert (node.state_dir / "dpkg" / "kubeadm").read_text().startswith("1.33.")


def test_a_failing_step_names_the_step_and_the_other_nodes_finish(lab, new_node, ssh_options):
    blocked, fine = new_node(os_name="debian-12"), new_node(os_name="debian-12")
    (blocked.state_dir / "apt-get.fail").write_text("E: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    connections = connections_for([blocked, fine], ssh_options)
    try:
        with pytest.raises(RemoteCommandFailed) as failed:
            prepare_nodes(connections, {n.name: spec_for(lab, n) for n in (blocked, fine)})
    finally:
        close_all(connections)
    assert str(failed.value).startswith(f"{blocked.name}: command failed with exit status 100: step packages")
    assert "dpkg returned an error code" in str(failed.value)
    assert not any(r.changed for r in plan_node_for(lab, fine, ssh_options))


def test_a_minor_change_on_a_prepared_node_unholds_installs_and_holds_again(lab, new_node, ssh_options):
    node = new_node(os_name="ubuntu-24.04")
    connections = connections_for([node], ssh_options)
    try:
        prepare_nodes(connections, {node.name: spec_for(lab, node, "1.33")})
        assert sorted(p.name for p in (node.state_dir / "holds").iterdir()) == ["kubeadm", "kubectl", "kubelet"]
        since = len(lab.calls(node))
        changed = prepare_nodes(connections, {node.name: spec_for(lab, node, "1.34")})[node.name]
        assert [r.step for r in changed if r.changed] == ["kubernetes-repo", "packages", "containerd-config"]
        assert not any(r.changed for r in prepare_nodes(connections, {node.name: spec_for(lab, node, "1.34")})[node.name])
    finally:
        close_all(connections)
    calls = changing_calls(lab, node, since)
    unhold = calls.index("apt-mark unhold kubelet kubeadm kubectl")
    install = next(i for i, c in enumerate(calls) if c.startswith("apt-get install") and "kubelet=1.34.*" in c)
    hold = calls.index("apt-mark hold kubelet kubeadm kubectl", install)
    assert unhold < install < hold
    assert not any("--allow-change-held-packages" in c for c in calls)
    for package in ("kubelet", "kubeadm", "kubectl"):
        assert (node.state_dir / "dpkg" / package).read_text().startswith("1.34.")
    assert sorted(p.name for p in (node.state_dir / "holds").iterdir()) == ["kubeadm", "kubectl", "kubelet"]
    assert "https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /" in lab.read_file(node, KUBERNETES_LIST)
    assert "  sandbox = 'registry.k8s.io/pause:3.10.1'\n" in lab.read_file(node, CONTAINERD_CONFIG)


def test_a_minimal_image_gets_curl_and_ca_certificates_first(lab, new_node, ssh_options):
    node = new_node(os_name="debian-12", minimal=True)
    connections = connections_for([node], ssh_options)
    try:
        result = connections[node.name].run("curl -fsSL https://download.docker.com/linux/debian/gpg", check=False)
        assert result.exit_status == 127  # the image really has no curl
        prepare_nodes(connections, {node.name: spec_for(lab, node)})
        assert not any(r.changed for r in plan_node(gather_facts(connections[node.name]), spec_for(lab, node)))
    finally:
        close_all(connections)
    calls = lab.calls(node)
    base = next(i for i, c in enumerate(calls) if c.startswith("apt-get install") and c.endswith(" curl ca-certificates"))
    first_curl = next(i for i, c in enumerate(calls) if c.startswith("curl -fsSL --retry"))  # a key fetch
    assert base < first_curl
    assert (node.state_dir / "dpkg" / "ca-certificates").exists()
    read_back(lab, node)


def test_a_download_host_the_node_cannot_reach_is_named_before_anything_changes(lab, new_node, ssh_options):
    # quay.io has only an IPv4 address here, and the node has no IPv4 at all
    node = new_node(os_name="ubuntu-22.04", download_hosts={"quay.io": "192.0.2.99"})
    before = lab.etc_hash(node)
    connections = connections_for([node], ssh_options)
    try:
        with pytest.raises(DownloadHostUnreachable) as raised:
            prepare_nodes(connections, {node.name: spec_for(lab, node)})
        conn = connections[node.name]
        conn.upload(render_prepare_script(spec_for(lab, node)), "/tmp/v6k-p.sh")
        script = conn.run("bash /tmp/v6k-p.sh; status=$?; rm -f /tmp/v6k-p.sh; exit $status", check=False)
    finally:
        close_all(connections)
    assert str(raised.value) == (f"{node.name}: cannot reach every host it downloads from: "
                                 "no route to quay.io (its IPv4 addresses: 192.0.2.99)")
    assert script.exit_status == 1
    assert "no route to any address of: quay.io (" in script.stderr
    assert lab.etc_hash(node) == before
    assert changing_calls(lab, node) == []


def routes_to_peers(lab: Lab, node: Node) -> list[str]:
    routes = lab.node_exec(node, "ip -6 route show").stdout
    return [str(peer) for peer in lab.peers if f"{peer} via {lab.gateway} dev eth0" in routes]


def test_peer_routes_survive_the_network_manager_restarting(lab, new_node, ssh_options):
    """systemd-networkd (the stub's stand-in) deletes foreign routes when it starts, unless told not to."""
    node = new_node(os_name="ubuntu-24.04", networkd=True)
    connections = connections_for([node], ssh_options)
    try:
        conn = connections[node.name]
        conn.run("ip -6 route replace " + " ".join(f"{lab.peers[0]}/128 via {lab.gateway}".split()))
        conn.run("systemctl restart systemd-networkd")  # before preparing: the stand-in really drops them
        assert routes_to_peers(lab, node) == []

        prepare_nodes(connections, {node.name: spec_for(lab, node)})
        assert "systemctl try-restart systemd-networkd.service" in lab.calls(node)
        for _ in range(2):
            conn.run("systemctl restart systemd-networkd")
            assert routes_to_peers(lab, node) == [str(p) for p in lab.peers]
            for peer in lab.peers:  # the BGP sessions' TCP connections still get through
                connected, source = lab.tcp_connect_md5(node, peer, password=BGP_PASSWORD)
                assert connected, source

        # Someone deletes the drop-in: the next restart drops the routes, and preparing again
        # restores both the routes and the setting.
        conn.run(f"rm {NETWORKD_DROPIN}")
        conn.run("systemctl restart systemd-networkd")
        assert routes_to_peers(lab, node) == []
        assert not lab.tcp_connect_md5(node, lab.peers[0], password=BGP_PASSWORD)[0]
        changed = prepare_nodes(connections, {node.name: spec_for(lab, node)})[node.name]
        assert [r.step for r in changed if r.changed] == ["networkd-keeps-routes", "peer-routes"]
        assert routes_to_peers(lab, node) == [str(p) for p in lab.peers]
        assert lab.tcp_connect_md5(node, lab.peers[1], password=BGP_PASSWORD)[0]
    finally:
        close_all(connections)


def plan_node_for(lab, node, options):
    connections = connections_for([node], options)
    try:
        return plan_node(gather_facts(connections[node.name]), spec_for(lab, node))
    finally:
        close_all(connections)


def test_prepare_through_a_sudo_user(lab, new_node, ssh_options, sudo_installed):
    node = new_node(os_name="ubuntu-22.04")
    lab.add_user(node, "ops", uid=2001, sudo="ALL=(ALL) NOPASSWD:ALL")
    options = dataclasses.replace(ssh_options, user="ops")
    connections = connections_for([node], options)
    try:
        prepare_nodes(connections, {node.name: spec_for(lab, node)})
        assert not any(r.changed for r in prepare_nodes(connections, {node.name: spec_for(lab, node)})[node.name])
    finally:
        close_all(connections)
    read_back(lab, node)
