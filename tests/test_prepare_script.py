"""The rendered prepare.sh: valid bash, clean under shellcheck, every step in it, values quoted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testbed.fixtures import unavailable

from v6kube.errors import UnsupportedOS, UsageError
from v6kube.nodes import SUPPORTED_OS, OSRelease, PrepareSpec, render_prepare_script, steps_for

HINTS = {"ubuntu_22_04": "ubuntu-22.04", "ubuntu_24_04": "ubuntu-24.04", "debian_12": "debian-12", None: None}


def spec(hint: str | None) -> PrepareSpec:
    return PrepareSpec(node="cp1", os_id_hint=hint, kubernetes_minor="1.33",
                       resolvers=("2001:4860:4860::8888", "2001:4860:4860::8844"),
                       gateway="2604:1380:4641:c500::1", peers=("fc00::e", "fc00::f"))


@pytest.fixture(params=list(HINTS), ids=lambda h: h or "any-os")
def script(request, tmp_path: Path) -> tuple[str | None, Path]:
    path = tmp_path / "prepare.sh"
    path.write_text(render_prepare_script(spec(request.param)))
    return request.param, path


def test_bash_accepts_it(script):
    _, path = script
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def need_shellcheck() -> None:
    """Skip without shellcheck, except in CI (CI=true), where that is a failure."""
    if shutil.which("shellcheck") is None:
        unavailable("shellcheck is not installed (apt-get install shellcheck)")


def test_without_shellcheck_skips_but_fails_in_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="shellcheck is not installed"):
        need_shellcheck()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="shellcheck is not installed"):
        need_shellcheck()


def test_shellcheck_finds_nothing(script):
    need_shellcheck()
    _, path = script
    errors = subprocess.run(["shellcheck", "-S", "error", str(path)], capture_output=True, text=True)
    assert errors.returncode == 0, errors.stdout
    everything = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)  # info level too
    assert everything.returncode == 0, everything.stdout


def test_it_has_every_step_and_strict_mode(script):
    hint, path = script
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    keys = [HINTS[hint]] if hint else list(SUPPORTED_OS)
    for key in keys:
        for step in steps_for(spec(hint), OSRelease.from_key(key)):
            assert f"\n# --- {step.name}: " in text
            assert step.check in text
            for command in step.commands:
                assert command in text


def test_one_os_or_every_supported_one():
    only = render_prepare_script(spec("ubuntu_24_04"))
    assert "URIs: https://download.docker.com/linux/ubuntu\nSuites: noble\n" in only
    assert "jammy" not in only and "bookworm" not in only
    assert "  ubuntu-24.04) ;;" in only  # the OS guard at the top
    anyos = render_prepare_script(spec(None))
    for os_id, codename in (("ubuntu", "jammy"), ("ubuntu", "noble"), ("debian", "bookworm")):
        assert f"URIs: https://download.docker.com/linux/{os_id}\nSuites: {codename}\n" in anyos
    assert "  ubuntu-22.04|ubuntu-24.04|debian-12) ;;" in anyos
    assert "case \"$os\" in\n  ubuntu-22.04)" in anyos  # the OS-specific step branches at run time


def test_values_are_quoted_and_sysctl_applies_only_its_file():
    text = render_prepare_script(spec("debian_12"))
    assert "sysctl --system" not in text
    assert "sysctl -p /etc/sysctl.d/90-v6kube.conf" in text
    assert "ip -6 route replace fc00::e/128 via 2604:1380:4641:c500::1" in text
    assert "'containerd.io=2.*' 'kubelet=1.33.*' 'kubeadm=1.33.*' 'kubectl=1.33.*'" in text
    assert "apt-mark hold kubelet kubeadm kubectl" in text
    assert "[plugins.'\"'\"'io.containerd.cri.v1.runtime'\"'\"'.containerd.runtimes.runc.options]" in text
    assert "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /" in text
    # deb822 Docker source for this architecture; the old one-line list goes
    assert "Architectures: amd64\nSigned-By: /etc/apt/keyrings/docker.asc\n" in text
    assert "rm -f /etc/apt/sources.list.d/docker.list" in text
    assert "sandbox = '\"'\"'registry.k8s.io/pause:3.10'\"'\"'" in text
    assert "apt-mark unhold kubelet kubeadm kubectl" in text
    assert "for host in download.docker.com pkgs.k8s.io prod-cdn.packages.k8s.io registry.k8s.io quay.io; do" in text


@pytest.mark.parametrize(("minor", "pause"), [("1.31", "3.10"), ("1.33", "3.10"), ("1.34", "3.10.1"), ("1.35", "3.10.1"),
                                              ("1.37", "3.10.1")])
def test_containerd_pins_the_pause_image_of_the_minor(minor: str, pause: str):
    from v6kube.nodes.package_steps import containerd_config

    text = containerd_config(PrepareSpec(node="cp1", os_id_hint=None, kubernetes_minor=minor,
                                         resolvers=("2001:4860:4860::8888",), gateway="2001:db8::1", peers=()))
    assert f"[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.k8s.io/pause:{pause}'\n" in text
    if sys.version_info >= (3, 11):  # and it is TOML that says so
        import tomllib

        plugins = tomllib.loads(text)["plugins"]
        assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == f"registry.k8s.io/pause:{pause}"
        assert plugins["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_a_spec_that_could_break_the_script_is_refused():
    with pytest.raises(UsageError, match="not a DNS label"):
        PrepareSpec(node="cp1\nrm -rf /", os_id_hint="debian_12", kubernetes_minor="1.33",
                    resolvers=("2001:4860:4860::8888",), gateway="2001:db8::1", peers=("fc00::e",))
    with pytest.raises(UsageError, match="must look like 1.33"):
        PrepareSpec(node="cp1", os_id_hint=None, kubernetes_minor="1.33; reboot",
                    resolvers=("2001:4860:4860::8888",), gateway="2001:db8::1", peers=("fc00::e",))
    with pytest.raises(ValueError):
        PrepareSpec(node="cp1", os_id_hint=None, kubernetes_minor="1.33",
                    resolvers=("2001:4860:4860::8888",), gateway="2001:db8::1 && reboot", peers=("fc00::e",))
    with pytest.raises(UnsupportedOS):
        render_prepare_script(spec("centos_7"))


def test_the_boot_time_peer_routes_script_is_clean_posix_sh(tmp_path: Path):
    from v6kube.nodes.system_steps import peer_routes_script

    path = tmp_path / "peer-routes.sh"
    path.write_text(peer_routes_script(spec(None)))
    assert subprocess.run(["sh", "-n", str(path)]).returncode == 0
    text = path.read_text()
    assert "ip -6 route replace fc00::e/128 via 2604:1380:4641:c500::1" in text
    assert "ip -6 route replace fc00::f/128 via 2604:1380:4641:c500::1" in text
    need_shellcheck()
    result = subprocess.run(["shellcheck", "--shell=sh", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# A producer that keeps writing after the line the check looks for: with `producer | grep -q` the
# producer is killed by SIGPIPE once grep has exited, and pipefail then turns the match into a
# failure (this made a CI run flaky). The pause makes the race certain instead of occasional.
SLOW_PRODUCERS = {
    "apt-mark": "printf 'kubeadm\\n'; sleep 0.2; printf 'kubectl\\nkubelet\\n'",
    "lsmod": "printf 'Module Size Used by\\noverlay 1 0\\n'; sleep 0.2; printf 'br_netfilter 1 0\\n'",
    "ip": "printf 'fc00::e via fe80::1 dev eth0 metric 1024 pref medium\\n'; sleep 0.2; printf 'x\\n'",
}


@pytest.mark.parametrize("check", ["package_held kubeadm", "module_loaded overlay", "route_via fc00::e fe80::1"])
def test_checks_hold_under_pipefail_when_the_producer_outlives_the_match(tmp_path: Path, check: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in SLOW_PRODUCERS.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    helpers = Path(__file__).parents[1] / "templates" / "node" / "helpers.sh"
    result = subprocess.run(["bash", "-c", f'set -euo pipefail; . "$1"; {check}', "check", str(helpers)],
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, (check, result.stderr)
