"""ssh: the pure parts (host key fingerprints and comparison, targets, address choice)."""

from __future__ import annotations

import base64
import hashlib
from ipaddress import IPv4Address, IPv6Address

import paramiko
import pytest

from v6kube.config import parse_cluster
from v6kube.errors import SSHError
from v6kube.ssh import SSHOptions, Target, choose_address, describe_key, fingerprint, same_key, targets_for

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb7Q1dKb7p3b5CzYtX3Bq2VnL2Xx0KcYF1y2kqPQ1mO"


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def test_fingerprint_matches_openssh_format():
    blob = base64.b64decode(ED25519.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(ED25519) == expected
    assert fingerprint(ED25519 + " root@host") == expected  # comments do not matter
    assert describe_key(ED25519) == f"ssh-ed25519 {expected}"


def test_fingerprint_of_generated_key_equals_paramikos():
    rsa = paramiko.RSAKey.generate(2048)
    assert fingerprint(key_line(rsa)) == rsa.fingerprint


def test_same_key_compares_key_bytes_not_text():
    assert same_key(ED25519, ED25519 + " comment")
    other = key_line(paramiko.RSAKey.generate(2048))
    assert not same_key(ED25519, other)


@pytest.mark.parametrize("bad", ["", "ssh-ed25519", "ssh-ed25519 not*base64"])
def test_malformed_keys_are_errors(bad):
    with pytest.raises(SSHError):
        fingerprint(bad)


def test_choose_address_explicit_families():
    target = Target("n1", IPv6Address("2001:db8::10"), public_ipv4=IPv4Address("192.0.2.10"))
    assert choose_address(target, "ipv6") == IPv6Address("2001:db8::10")
    assert choose_address(target, "ipv4") == IPv4Address("192.0.2.10")
    with pytest.raises(SSHError, match="no public IPv4"):
        choose_address(Target("n1", IPv6Address("2001:db8::10")), "ipv4")


def test_choose_address_auto_without_ipv4_stays_on_ipv6():
    target = Target("n1", IPv6Address("2001:db8::10"))
    assert choose_address(target, "auto") == IPv6Address("2001:db8::10")


CLUSTER = """
name: demo
provider:
  type: static
  block: "2001:db8:100::/56"
  peers: ["2001:db8:ffff::e", "2001:db8:ffff::f"]
nodes:
  - name: cp1
    role: control-plane
    address: "2001:db8:0:1::11"
    gateway: "2001:db8:0:1::1"
    host_key: "%s"
  - name: w1
    role: worker
    address: "2001:db8:0:1::12"
    gateway: "2001:db8:0:1::1"
    public_ipv4: "192.0.2.12"
ssh:
  user: admin
  port: 2222
  private_key: ~/.ssh/v6kube
  address_family: ipv6
  trust_on_first_use: true
  connect_timeout: 30
""" % ED25519


def test_targets_and_options_from_a_cluster_file():
    cluster = parse_cluster(CLUSTER)
    recorded = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIeZ4pfNHbwGzjN+jDBoc0lHJqSYnIUmSt7uYH20Qyo4"
    targets = targets_for(cluster, host_keys={"cp1": "ignored: the cluster file wins", "w1": recorded})
    assert targets == [
        Target("cp1", IPv6Address("2001:db8:0:1::11"), ED25519, None),
        Target("w1", IPv6Address("2001:db8:0:1::12"), recorded, IPv4Address("192.0.2.12")),
    ]
    options = SSHOptions.from_config(cluster.ssh)
    assert (options.user, options.port, options.address_family, options.trust_on_first_use) == ("admin", 2222, "ipv6", True)
    assert options.private_key is not None and options.private_key.name == "v6kube" and options.private_key.is_absolute()
    assert options.connect_timeout == 30


PACKET = """
name: demo
provider: {type: packet, project: 0c6a1d3e-2b4f-4d8a-9c71-5e3f2a1b7c90}
nodes:
  - {name: cp1, role: control-plane}
"""


class Server:  # the fields of providers.base.Server that targets_for reads
    def __init__(self, hostname, ipv6=None, ipv4_public=None, host_public_key=None):
        self.hostname, self.ipv6, self.ipv4_public = hostname, ipv6, ipv4_public
        self.host_public_key = host_public_key


def test_targets_from_provider_servers():
    cluster = parse_cluster(PACKET)
    with pytest.raises(SSHError, match="no IPv6 address"):
        targets_for(cluster)
    server = Server("cp1", IPv6Address("2604:1380::5"), IPv4Address("198.51.100.5"), ED25519)
    assert targets_for(cluster, servers=[server]) == [
        Target("cp1", IPv6Address("2604:1380::5"), ED25519, IPv4Address("198.51.100.5"))]
