"""Node preparation without a node: fact parsers, the gathered-output splitter, file writes, specs."""

from __future__ import annotations

import subprocess
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v6kube.errors import UnsupportedOS, UsageError
from v6kube.nodes.apply import check_script
from v6kube.nodes.facts import (
    FACT_MARKER,
    FACTS,
    Route,
    gather_script,
    parse_files,
    parse_fstab_swaps,
    parse_os_release,
    parse_packages,
    parse_routes,
    split_gathered,
)
from v6kube.nodes.plan import steps_for
from v6kube.nodes.spec import OSRelease, PrepareSpec, os_key
from v6kube.nodes.step import write_file


def test_os_release():
    text = 'PRETTY_NAME="Ubuntu 24.04.3 LTS"\nID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n'
    assert parse_os_release(text) == OSRelease("ubuntu", "24.04", "noble", "Ubuntu 24.04.3 LTS")
    debian = parse_os_release('ID=debian\nVERSION_ID="12"\n')
    assert debian.key == "debian-12" and debian.codename == "bookworm" and debian.supported
    assert not parse_os_release("").supported


@pytest.mark.parametrize("hint, key", [("ubuntu_24_04", "ubuntu-24.04"), ("ubuntu-22.04", "ubuntu-22.04"),
                                       ("Debian 12", "debian-12"), ("debian_12", "debian-12")])
def test_os_hints(hint, key):
    assert os_key(hint) == key


@pytest.mark.parametrize("hint", ["ubuntu_20_04", "centos_7", "flatcar", ""])
def test_unsupported_os_hints(hint):
    with pytest.raises(UnsupportedOS):
        os_key(hint)


def test_fstab_swap_lines_follow_the_same_rule_as_the_shell():
    fstab = ("UUID=abc / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n#/old none swap sw 0 0\n"
             "  /dev/sdb2   none   swap   sw  0 0\n# comment swap swap swap\n\n")
    assert parse_fstab_swaps(fstab) == ("/swap.img none swap sw 0 0", "  /dev/sdb2   none   swap   sw  0 0")
    # The shell side: the awk rule the step and its check use picks the same lines.
    awk = subprocess.run(["awk", '$1 !~ /^#/ && $3 == "swap"'], input=fstab, capture_output=True, text=True)
    assert awk.stdout.splitlines() == list(parse_fstab_swaps(fstab))


def test_routes():
    text = ("default via fe80::1 dev eth0 proto ra metric 1024 expires 1798sec pref medium\n"
            "2604:1380::/64 dev bond0 proto kernel metric 256 pref medium\n"
            "fc00::e via 2604:1380::1 dev bond0 metric 1024 pref medium\n"
            "unreachable fc00::f dev lo metric 1024 pref medium\n"
            "2001:db8::/64 metric 1024 pref medium\n"
            "\tnexthop via fe80::2 dev eth1 weight 1\n")
    assert parse_routes(text) == (
        Route(IPv6Network("::/0"), "fe80::1"),
        Route(IPv6Network("2604:1380::/64"), None),
        Route(IPv6Network("fc00::e/128"), "2604:1380::1"),
        Route(IPv6Network("fc00::f/128"), None),
        Route(IPv6Network("2001:db8::/64"), None),
    )


def test_packages():
    text = "containerd.io installed 2.1.5-1\nkubelet not-installed \nkubeadm installed 1.33.4-1.1\n"
    assert parse_packages(text) == {"containerd.io": ("installed", "2.1.5-1"), "kubelet": ("not-installed", ""),
                                    "kubeadm": ("installed", "1.33.4-1.1")}


def test_files_fact_keeps_content_exactly():
    script = FACTS[[f.name for f in FACTS].index("files")].command
    assert "==> %s <==" in script
    text = "==> /etc/a <==\nline 1\n\nline 3 without newline\n<== end\n==> /etc/b <==\n\n<== end\n"
    assert parse_files(text) == {"/etc/a": "line 1\n\nline 3 without newline", "/etc/b": ""}


def test_the_files_fact_command_round_trips_real_files(tmp_path: Path):
    contents = {"a.conf": "x = 1\n", "b.conf": "no newline", "c.conf": "\n\ntwo blank lines\n\n", "empty": ""}
    for name, content in contents.items():
        (tmp_path / name).write_text(content)
    paths = [str(tmp_path / n) for n in contents] + [str(tmp_path / "missing")]
    from v6kube.nodes.facts import _files_command

    output = subprocess.run(["sh", "-c", _files_command(paths)], capture_output=True, text=True).stdout
    assert parse_files(output) == {str(tmp_path / n): c for n, c in contents.items()}


fact_output = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=200).filter(
    lambda t: not any(line.startswith(FACT_MARKER) for line in t.splitlines()))


@given(st.fixed_dictionaries({fact.name: fact_output for fact in FACTS}))
@settings(max_examples=200)
def test_gathered_output_splits_back_into_each_fact(outputs):
    # What the remote gather script prints: a marker line before each fact's output.
    printed = "".join(f"\n{FACT_MARKER} {name}\n{text}" for name, text in outputs.items())
    assert split_gathered(printed) == outputs


def test_gather_script_runs_every_fact_under_sh(tmp_path: Path):
    result = subprocess.run(["sh", "-n", "-c", gather_script()], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    output = subprocess.run(["sh", "-c", gather_script()], capture_output=True, text=True).stdout
    assert set(split_gathered(output)) == {fact.name for fact in FACTS}


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300))
@settings(max_examples=100, deadline=None)
def test_write_file_writes_exactly_the_content(content):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/sub dir/file's name.conf"
        script = "set -eu\n" + "\n".join(write_file(path, content, "0640"))
        subprocess.run(["sh", "-c", script], check=True)
        assert Path(path).read_bytes() == content.encode()
        assert oct(Path(path).stat().st_mode & 0o777) == "0o640"
        assert sorted(p.name for p in Path(path).parent.iterdir()) == ["file's name.conf"]
        # and the shell check agrees that the file now holds exactly that content
        check = subprocess.run(["sh", "-c", 'file_is() { [ -f "$1" ] && [ "$(cat "$1"; echo x)" = "${2}x" ]; }; file_is "$0" "$1"',
                                path, content], capture_output=True)
        assert check.returncode == 0


def spec(**changes) -> PrepareSpec:
    values = dict(node="n1", os_id_hint=None, kubernetes_minor="1.33", resolvers=("2001:4860:4860::8888",),
                  gateway="2001:db8:0:1::1", peers=("fc00::e", "fc00::f"))
    values.update(changes)
    return PrepareSpec(**values)


def test_spec_parses_addresses():
    s = spec(resolvers=["2001:4860:4860:0::8888"], peers=["FC00::E"])
    assert s.resolvers == (IPv6Address("2001:4860:4860::8888"),) and s.peers == (IPv6Address("fc00::e"),)
    assert s.gateway == IPv6Address("2001:db8:0:1::1")


@pytest.mark.parametrize("changes, message", [
    ({"containerd_major": 1}, "containerd 1.x is not supported"),
    ({"kubernetes_minor": "v1.33"}, "must look like 1.33"),
    ({"resolvers": ()}, "at least one IPv6 resolver"),
    ({"resolvers": ("2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4")}, "at most 3"),
    ({"gateway": "fe80::1"}, "link-local"),
    ({"node": "Node_1"}, "not a DNS label"),
])
def test_spec_refuses_what_it_cannot_do(changes, message):
    with pytest.raises(UsageError, match=message):
        spec(**changes)


def test_check_scripts_are_valid_sh():
    for key in ("debian-12", "ubuntu-24.04"):
        for step in steps_for(spec(), OSRelease.from_key(key)):
            result = subprocess.run(["sh", "-n", "-c", check_script(step)], capture_output=True, text=True)
            assert result.returncode == 0, (step.name, result.stderr)
