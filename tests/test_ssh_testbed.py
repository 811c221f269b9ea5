"""ssh against real OpenSSH servers in the testbed (IPv6-only network namespaces)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from ipaddress import IPv6Address

import paramiko
import pytest

from testbed.lab import target_for
from v6kube import console
from v6kube.errors import HostKeyMismatch, RemoteCommandFailed, SSHError, SudoPasswordRequired
from v6kube.redact import Secret
from v6kube.ssh import Target, connect, describe_key, open_connections, record_host_keys
from v6kube.state import load_state

pytestmark = pytest.mark.testbed


def other_key(kind: str = "ed25519") -> str:
    """A host key nobody uses (paramiko cannot generate ed25519 keys, ssh-keygen can)."""
    if kind == "rsa":
        rsa = paramiko.RSAKey.generate(2048)
        return f"{rsa.get_name()} {rsa.get_base64()}"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/k"], check=True)
        return " ".join(open(f"{tmp}/k.pub").read().split()[:2])


def test_connect_run_and_log(lab, new_node, ssh_options, capsys):
    node = new_node()
    with connect(target_for(node), ssh_options) as conn:
        result = conn.run("hostname; echo to-stderr >&2; ip -6 -br addr show dev eth0", phase="test")
    assert result.ok
    assert result.stdout.splitlines()[0] == node.name  # its own UTS namespace
    assert str(node.address) in result.stdout
    assert result.stderr == "to-stderr\n"
    assert conn.host_key == node.host_key
    log = (ssh_options.log_dir / f"{node.name}.log").read_text()
    assert f"[test] | {node.name}" in log and "[test] ! to-stderr" in log and "[test] exit 0" in log
    err = capsys.readouterr().err
    assert f"[test] {node.name}: to-stderr" in err  # streamed line by line, prefixed with the node
    assert f"[test] {node.name}: {node.name}" in err
    with connect(target_for(node), ssh_options) as conn:
        conn.run("echo quiet-facts", phase="test", echo=False)
    assert "quiet-facts" not in capsys.readouterr().err
    assert "[test] | quiet-facts" in (ssh_options.log_dir / f"{node.name}.log").read_text()
    assert (ssh_options.log_dir / f"{node.name}.log").stat().st_mode & 0o777 == 0o600


def test_secrets_are_masked_in_logs_and_errors(lab, new_node, ssh_options, capsys, monkeypatch):
    node = new_node()
    monkeypatch.setattr(console, "debug_enabled", True)
    token = "abcdef.0123456789abcdef"
    short = "pw9"  # too short for the global registry, still masked where it was passed
    with connect(target_for(node), ssh_options) as conn:
        conn.run(f"echo joining with {token} {short}", secrets=[token, short])
        with pytest.raises(RemoteCommandFailed) as failure:
            conn.run(f"echo {token} >&2; exit 3", secrets=[Secret(token)])
    message = str(failure.value)
    assert failure.value.exit_status == 3 and token not in message and "***" in message
    log = (ssh_options.log_dir / f"{node.name}.log").read_text()
    assert token not in log and f" {short}" not in log and "joining with *** ***" in log
    assert token not in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_host_key_mismatch_is_refused_and_nothing_runs(lab, new_node, ssh_options, kind):
    node = new_node()
    before = lab.etc_hash(node)
    wrong = other_key(kind)
    target = target_for(node, host_key=wrong)
    with pytest.raises(HostKeyMismatch) as mismatch:
        connect(target, ssh_options).run("touch /etc/should-not-exist; apt-get update")
    error = mismatch.value
    assert error.expected == describe_key(wrong) and error.got == describe_key(node.host_key)
    assert "SHA256:" in str(error) and "nothing was run" in str(error)
    assert lab.calls(node) == []
    assert lab.etc_hash(node) == before
    assert "Accepted publickey" not in node.sshd_log.read_text()  # we never even authenticated


def test_no_pinned_key_without_trust_on_first_use_is_refused(lab, new_node, ssh_options):
    node = new_node()
    with pytest.raises(SSHError, match="no pinned host key") as refused:
        connect(target_for(node, host_key=None), ssh_options)
    assert describe_key(node.host_key) in str(refused.value)
    assert "Accepted publickey" not in node.sshd_log.read_text()


def new_host_key(lab, node) -> None:
    """The server gets a new key (reinstalled, or someone in the middle)."""
    lab.stop_sshd(node)
    lab.kill_sessions(node)
    key = node.dir / "ssh_host_ed25519_key"
    key.unlink()
    key.with_suffix(".pub").unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    lab.start_sshd(node)


def test_trust_on_first_use_records_the_key_in_the_state_and_later_runs_pin_it(lab, new_node, ssh_options, tmp_path):
    node, pinned = new_node(), new_node()
    options = dataclasses.replace(ssh_options, trust_on_first_use=True)
    state = load_state(tmp_path / "state", "lab", "static")
    with connect(target_for(pinned), options) as known, connect(target_for(node, host_key=None), options) as conn:
        assert conn.trusted_on_first_use and not known.trusted_on_first_use
        assert record_host_keys(state, {node.name: conn, pinned.name: known}) == [node.name]
        state.save()
    entry = json.loads(state.path.read_text())["host_keys"][node.name]
    assert entry == {"key": node.host_key, "source": "trust-on-first-use"}

    # The next run starts from the state: the recorded key is pinned, trust on first use or not.
    again = load_state(tmp_path / "state", "lab", "static").host_keys()
    with connect(Target(node.name, node.address, again[node.name]), options) as conn:
        assert not conn.trusted_on_first_use and conn.run("true").ok
    new_host_key(lab, node)
    with pytest.raises(HostKeyMismatch):
        connect(Target(node.name, node.address, again[node.name]), options)


def test_a_key_trusted_on_first_use_is_pinned_for_the_reconnects(lab, new_node, ssh_options):
    node = new_node()
    options = dataclasses.replace(ssh_options, trust_on_first_use=True)
    conn = connect(target_for(node, host_key=None), options)
    assert conn.host_key == node.host_key
    conn.run("true")
    new_host_key(lab, node)
    with pytest.raises(HostKeyMismatch):
        conn.run("true")
    conn.close()


def test_a_late_sshd_is_waited_for(lab, new_node, ssh_options):
    node = new_node(start_sshd=False)
    starter = threading.Timer(1.5, lab.start_sshd, args=[node])
    started = time.monotonic()
    starter.start()
    try:
        with connect(target_for(node), ssh_options) as conn:
            waited = time.monotonic() - started
            assert conn.run("hostname").stdout.strip() == node.name
    finally:
        starter.join()
    assert waited >= 1.4
    assert "waiting for SSH" in (ssh_options.log_dir / f"{node.name}.log").read_text()


GARBLED_SERVER = r"""
import socket, sys, time
listener = socket.socket(socket.AF_INET6)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], 22))
listener.listen()
listener.settimeout(0.1)
end = time.monotonic() + float(sys.argv[2])
served = 0
while time.monotonic() < end or not served:  # a port that answers but is not (yet) an SSH server
    try:
        conn, _ = listener.accept()
    except socket.timeout:
        continue
    conn.sendall(b"booting...\r\n")
    conn.close()
    served += 1
"""


def test_banner_errors_while_booting_are_retried(lab, new_node, ssh_options):
    node = new_node(start_sshd=False)
    garbled = lab.popen_in(node, ["python3", "-c", GARBLED_SERVER, str(node.address), "1.2"])

    def then_sshd():
        garbled.wait(10)
        lab.start_sshd(node)

    starter = threading.Thread(target=then_sshd)
    lab.wait_listening(node)  # the fake server answers our first attempt
    starter.start()
    try:
        with connect(target_for(node), ssh_options) as conn:
            assert conn.run("hostname").stdout.strip() == node.name
    finally:
        starter.join()
    log = (ssh_options.log_dir / f"{node.name}.log").read_text()
    assert "waiting for SSH" in log and "banner" in log.lower()


def test_connect_gives_up_at_the_deadline(lab, new_node, ssh_options):
    node = new_node(start_sshd=False)
    options = dataclasses.replace(ssh_options, connect_timeout=1.5)
    started = time.monotonic()
    with pytest.raises(SSHError, match=r"no SSH answer on \[.*\]:22 within 1.5 s \(connection refused\)"):
        connect(target_for(node), options)
    assert 1.0 < time.monotonic() - started < 5


def drop_sessions_once_running(lab, node, marker: str) -> None:
    """Kill the node's SSH sessions as soon as the command has written `marker`: a fixed delay
    could fire before a command on a loaded machine has even started."""
    deadline = time.monotonic() + 30
    while lab.read_file(node, marker) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    lab.kill_sessions(node)


def test_a_connection_dropped_mid_command_is_retried(lab, new_node, ssh_options):
    node = new_node()
    conn = connect(target_for(node), ssh_options)
    command = "echo run >> /etc/drop-test.runs; sleep 1.5; echo done >> /etc/drop-test.done"
    dropper = threading.Thread(target=drop_sessions_once_running, args=(lab, node, "/etc/drop-test.runs"))
    dropper.start()
    result = conn.run(command, idempotent=True)
    dropper.join()
    assert result.ok
    assert lab.read_file(node, "/etc/drop-test.runs") == "run\nrun\n"
    assert "connection dropped" in (ssh_options.log_dir / f"{node.name}.log").read_text()
    conn.close()


def test_a_dropped_command_that_is_not_idempotent_is_not_run_again(lab, new_node, ssh_options):
    node = new_node()
    conn = connect(target_for(node), ssh_options)
    dropper = threading.Thread(target=drop_sessions_once_running, args=(lab, node, "/etc/once.runs"))
    dropper.start()
    with pytest.raises(SSHError, match="dropped while running.*may or may not have finished"):
        conn.run("echo run >> /etc/once.runs; sleep 1.5")
    dropper.join()
    time.sleep(1.2)
    assert lab.read_file(node, "/etc/once.runs") == "run\n"
    assert conn.run("true").ok  # and the connection comes back for the next command
    conn.close()


def test_reconnects_transparently_when_the_transport_dropped_between_commands(lab, new_node, ssh_options):
    node = new_node()
    conn = connect(target_for(node), ssh_options)
    conn.run("true")
    lab.stop_sshd(node)  # a restart: the old session dies, the server comes back a moment later
    lab.kill_sessions(node)
    restart = threading.Timer(0.8, lab.start_sshd, args=[node])
    restart.start()
    try:
        assert conn.run("hostname").stdout.strip() == node.name
    finally:
        restart.join()
    conn.close()


def test_a_command_is_run_once_when_the_connection_died_just_before_it(lab, new_node, ssh_options):
    node = new_node()
    conn = connect(target_for(node), ssh_options)
    conn.run("true")
    lab.kill_sessions(node)  # whether paramiko has noticed yet or not, nothing of the next one ran
    conn.run("echo ran >> /etc/once.runs")  # not idempotent, yet safe to send again: it never started
    assert lab.read_file(node, "/etc/once.runs") == "ran\n"
    conn.close()


def test_a_command_killed_by_a_signal_fails_and_is_not_taken_for_a_drop(lab, new_node, ssh_options):
    node = new_node()
    with connect(target_for(node), ssh_options) as conn:
        with pytest.raises(RemoteCommandFailed, match="command was killed by a signal"):
            conn.run("echo run >> /etc/killed.runs; kill -KILL $$", idempotent=True)
        assert lab.read_file(node, "/etc/killed.runs") == "run\n"  # not run again
        assert conn.run("echo still usable").ok
    assert "connection dropped" not in (ssh_options.log_dir / f"{node.name}.log").read_text()


def test_every_command_has_a_timeout(lab, new_node, ssh_options):
    node = new_node()
    with connect(target_for(node), ssh_options) as conn:
        started = time.monotonic()
        with pytest.raises(SSHError, match="timed out after 0.5 s"):
            conn.run("sleep 5", timeout=0.5)
        assert time.monotonic() - started < 2
        assert conn.run("echo still usable").ok


def test_a_stalled_sftp_transfer_times_out(lab, new_node, ssh_options):
    node = new_node()
    options = dataclasses.replace(ssh_options, command_timeout=2)
    conn = connect(target_for(node), options)
    conn.run("true")
    stopped = lab.session_pids(node)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)  # the server stops answering, the TCP connection stays up
    try:
        started = time.monotonic()
        with pytest.raises(SSHError):
            conn.upload(os.urandom(4 << 20), "/etc/v6kube/big.bin")
        assert time.monotonic() - started < 15
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        conn.close()


def test_upload_is_atomic_with_mode_and_owner(lab, new_node, ssh_options):
    node = new_node()
    with connect(target_for(node), ssh_options) as conn:
        conn.upload("first\n", "/etc/v6kube/new-dir/file.conf", mode=0o640, owner="root", group="daemon")
        conn.upload(b"second\n", "/etc/v6kube/new-dir/file.conf", mode=0o600)
        assert conn.download("/etc/v6kube/new-dir/file.conf") == b"second\n"
    listing = lab.node_exec(node, "stat -c '%a %U %G' /etc/v6kube/new-dir/file.conf; ls -A /etc/v6kube/new-dir").stdout
    assert listing == "600 root root\nfile.conf\n"  # no temp files left behind
    with connect(target_for(node), ssh_options) as conn:
        conn.upload("x\n", "/etc/v6kube/grouped", mode=0o640, group="daemon")
    assert lab.node_exec(node, "stat -c '%a %U %G' /etc/v6kube/grouped").stdout == "640 root daemon\n"


def test_a_sudo_user_runs_as_root_and_uploads(lab, new_node, ssh_options, sudo_installed, capsys):
    node = new_node()
    lab.add_user(node, "ops", uid=2001, sudo="ALL=(ALL) NOPASSWD:ALL")
    options = dataclasses.replace(ssh_options, user="ops")
    with connect(target_for(node), options) as conn:
        assert conn.run("id -un").stdout == "root\n"
        assert conn.run("command -v apt-get").stdout.strip() == str(node.bin_dir / "apt-get")
        conn.upload("via sudo\n", "/etc/v6kube/sudo.conf", mode=0o640, group="daemon")
        assert conn.download("/etc/v6kube/sudo.conf") == b"via sudo\n"
    # a downloaded file may be secret: neither it nor its base64 form reaches the console or the log
    shown = capsys.readouterr().err + (ssh_options.log_dir / f"{node.name}.log").read_text()
    assert "via sudo" not in shown.replace("upload", "") and "dmlhIHN1ZG8K" not in shown
    assert lab.node_exec(node, "stat -c '%a %U %G' /etc/v6kube/sudo.conf").stdout == "640 root daemon\n"
    assert lab.node_exec(node, "ls /tmp/.v6kube-upload-* 2>/dev/null | wc -l").stdout.strip() == "0"


def test_a_sudo_user_that_needs_a_password_gets_a_clear_error(lab, new_node, ssh_options, sudo_installed):
    node = new_node()
    lab.add_user(node, "alice", uid=2002, sudo="ALL=(ALL) ALL")
    options = dataclasses.replace(ssh_options, user="alice")
    with pytest.raises(SudoPasswordRequired) as refused:
        connect(target_for(node), options).run("apt-get update")
    assert "alice needs a password for sudo" in str(refused.value)
    assert "NOPASSWD" in refused.value.hint
    assert lab.calls(node) == []


def test_auto_address_family_uses_ipv4_without_an_ipv6_route(lab, new_node, ssh_options):
    node = new_node(ipv4=True)
    unroutable = IPv6Address("fd6b:7636:dead::1")  # no route to this from the test's namespace
    target = dataclasses.replace(target_for(node), address=unroutable)
    with connect(target, ssh_options) as conn:
        assert conn.address == node.ipv4
        assert conn.run("hostname").stdout.strip() == node.name
    with pytest.raises(SSHError, match="no route from this machine"):
        connect(target, dataclasses.replace(ssh_options, address_family="ipv6"))
    with connect(target_for(node), ssh_options) as conn:  # with a route, IPv6 is used
        assert conn.address == node.address


def test_open_connections_to_several_nodes(lab, new_node, ssh_options):
    nodes = [new_node() for _ in range(3)]
    connections = open_connections([target_for(n) for n in nodes], ssh_options)
    try:
        assert {name: c.run("hostname").stdout.strip() for name, c in connections.items()} == {
            n.name: n.name for n in nodes}
    finally:
        for c in connections.values():
            c.close()
    bad = [target_for(nodes[0]), target_for(nodes[1], host_key=other_key())]
    with pytest.raises(HostKeyMismatch, match=nodes[1].name):
        open_connections(bad, ssh_options)
